//! The text of `kubectl mesh --help`: only subcommands whose binary was found, then the
//! builtins.

use std::fmt::Write as _;

use crate::catalog;
use crate::lookup::Found;

/// Usage for the subcommands in `available` (as found by [`crate::lookup::Finder::available`]).
pub fn render(available: &[Found]) -> String {
    let rows: Vec<(&str, &str)> = available
        .iter()
        .map(|f| (f.name.as_str(), catalog::summary_of(&f.name)))
        .chain(catalog::BUILTIN.iter().map(|e| (e.name, e.summary)))
        .collect();
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);

    let mut text = format!(
        "kubectl-mesh {}: safe Istio control-plane upgrades\n\n\
         Usage: kubectl mesh <subcommand> [args...]\n\nSubcommands:\n",
        crate::VERSION
    );
    for (name, summary) in rows {
        let _ = writeln!(text, "  {name:<width$}  {summary}");
    }
    text.push('\n');
    if available.is_empty() {
        text.push_str(
            "No subcommand binaries (`kubectl-mesh-<name>`) were found beside kubectl-mesh or\n\
             on PATH; reinstall with `kubectl krew install mesh`.\n\n",
        );
    } else if available.iter().any(|f| f.name == "precheck") {
        text.push_str("Start with `kubectl mesh precheck`.\n");
    }
    text.push_str(
        "Run `kubectl mesh <subcommand> --help` for a subcommand's flags.\n\n\
         Exit codes: 0 success, 1 blocked (or `version` found mismatched binaries), 2 usage,\n\
         3 could not complete (or a subcommand binary could not be run).\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::Origin;
    use std::path::PathBuf;

    fn found(name: &str) -> Found {
        Found {
            name: name.to_owned(),
            path: PathBuf::from(format!("/x/kubectl-mesh-{name}")),
            origin: Origin::Beside,
        }
    }

    #[test]
    fn lists_found_subcommands_then_builtins_aligned() {
        let text = render(&[found("precheck"), found("tag"), found("extra")]);
        assert!(
            text.contains("Usage: kubectl mesh <subcommand> [args...]"),
            "{text}"
        );
        assert!(
            text.contains("\n  precheck    Show what Istio runs here"),
            "{text}"
        );
        assert!(text.contains("\n  tag         Set, list"), "{text}");
        assert!(text.contains("\n  extra       (no description"), "{text}");
        assert!(
            text.contains("\n  completion  Print a shell completion script"),
            "{text}"
        );
        assert!(
            !text.contains("\n  upgrade "),
            "not installed, not listed: {text}"
        );
        assert!(
            text.contains("Start with `kubectl mesh precheck`"),
            "{text}"
        );
    }

    #[test]
    fn says_so_when_nothing_is_installed() {
        let text = render(&[]);
        assert!(text.contains("No subcommand binaries"), "{text}");
        assert!(text.contains("\n  version     Print the version"), "{text}");
    }
}
