//! "Did you mean" for a mistyped subcommand: the nearest known name by edit distance.

/// Edit distance between `a` and `b` by char: insertions, deletions, substitutions and
/// transpositions of two adjacent chars cost 1 each (optimal string alignment), so the
/// common typo `tga` is one edit from `tag`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j] = distance between a[..i] and b[..j]; three rolling rows suffice.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `typed`, if close enough to be a plausible typo: an
/// unambiguous prefix (`pre` → `precheck`), or at most a third of the longer name's
/// length in edits (at least one) and fewer edits than `typed` has characters.
/// Ties go to the earlier candidate.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let prefixed: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| typed.len() >= 2 && c.starts_with(typed))
        .collect();
    if let [only] = prefixed[..] {
        return Some(only);
    }
    let typed_len = typed.chars().count();
    candidates
        .into_iter()
        .map(|c| (edit_distance(typed, c), c))
        .filter(|&(d, c)| {
            let longest = typed_len.max(c.chars().count());
            d < typed_len && d <= (longest / 3).max(1)
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 7] = [
        "precheck",
        "upgrade",
        "tag",
        "uninstall",
        "version",
        "completion",
        "help",
    ];

    #[test]
    fn distance_counts_single_char_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("tag", ""), 3);
        assert_eq!(edit_distance("", "tag"), 3);
        assert_eq!(edit_distance("tag", "tag"), 0);
        assert_eq!(
            edit_distance("tga", "tag"),
            1,
            "a transposition is one edit"
        );
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("prechek", "precheck"), 1);
        assert_eq!(edit_distance("über", "uber"), 1);
    }

    #[test]
    fn typos_find_the_intended_name() {
        let near = |typed| closest(typed, NAMES);
        assert_eq!(near("tags"), Some("tag"));
        assert_eq!(near("tga"), Some("tag"));
        assert_eq!(near("prechek"), Some("precheck"));
        assert_eq!(near("pre-check"), Some("precheck"));
        assert_eq!(near("upgarde"), Some("upgrade"));
        assert_eq!(near("unistall"), Some("uninstall"));
        assert_eq!(near("verison"), Some("version"));
        assert_eq!(near("pre"), Some("precheck"), "unique prefix");
        assert_eq!(near("un"), Some("uninstall"), "unique prefix");
    }

    #[test]
    fn nonsense_gets_no_suggestion() {
        let near = |typed| closest(typed, NAMES);
        assert_eq!(near("foo"), None);
        assert_eq!(near("x"), None);
        assert_eq!(near(""), None);
        assert_eq!(near("kubernetes"), None);
        assert_eq!(near("u"), None, "one letter is not a prefix hint");
    }

    #[test]
    fn only_names_offered_are_suggested() {
        assert_eq!(closest("upgrde", ["precheck", "tag"]), None);
        assert_eq!(
            closest("tg", ["tag", "tog"]),
            Some("tag"),
            "ties go to the first"
        );
    }
}
