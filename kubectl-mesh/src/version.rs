//! `kubectl mesh version`: the dispatcher's version and each subcommand's `--version`,
//! with a warning when they differ (a stale binary on PATH, a half-finished upgrade).
//! Exits 1 on any mismatch or a subcommand that cannot say its version, else 0.

use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};

use crate::exit::{self, Exit};
use crate::lookup::{Finder, Found, Origin};

/// The report: stdout text, stderr warnings, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `binary  version` lines.
    pub stdout: String,
    /// `warning:` and `hint:` lines.
    pub stderr: String,
    /// [`Exit::Success`] or [`Exit::Mismatch`].
    pub exit: Exit,
}

/// Runs `--version` of every subcommand `finder` sees and prints the report.
pub fn run(finder: &Finder) -> ExitCode {
    let subs: Vec<(Found, Option<String>)> = finder
        .available()
        .into_iter()
        .map(|f| {
            let v = ask_version(&f);
            (f, v)
        })
        .collect();
    let report = report(crate::VERSION, &subs);
    exit::stdout(&report.stdout);
    exit::stderr(&report.stderr);
    report.exit.into()
}

fn ask_version(found: &Found) -> Option<String> {
    let out = Command::new(&found.path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// The version in `--version` output: the last word of the first non-empty line that
/// starts with a digit (after an optional `v`), e.g. `kubectl-mesh-tag 0.1.0` → `0.1.0`.
pub fn parse_version(output: &str) -> Option<String> {
    let line = output.lines().find(|l| !l.trim().is_empty())?;
    let word = line.split_whitespace().last()?;
    let word = word.strip_prefix('v').unwrap_or(word);
    word.starts_with(|c: char| c.is_ascii_digit())
        .then(|| word.to_owned())
}

/// Builds the report for dispatcher version `own` and each subcommand's answer.
pub fn report(own: &str, subs: &[(Found, Option<String>)]) -> Report {
    let rows: Vec<(String, &str)> = std::iter::once(("kubectl-mesh".to_owned(), own))
        .chain(subs.iter().map(|(f, v)| {
            (
                format!("kubectl-mesh-{}", f.name),
                v.as_deref().unwrap_or("unknown"),
            )
        }))
        .collect();
    let width = rows.iter().map(|(b, _)| b.len()).max().unwrap_or(0);
    let mut stdout = String::new();
    for (binary, version) in &rows {
        let _ = writeln!(stdout, "{binary:<width$}  {version}");
    }

    let mut stderr = String::new();
    for (found, version) in subs {
        let place = match found.origin {
            Origin::Beside => "",
            Origin::Path => ", found on PATH",
        };
        let what = match version {
            Some(v) if v == own => continue,
            Some(v) => format!("is version {v}, `kubectl-mesh` is {own}"),
            None => "did not report a version with `--version`".to_owned(),
        };
        let _ = writeln!(
            stderr,
            "warning: `kubectl-mesh-{}` {what} ({}{place})",
            found.name,
            found.path.display()
        );
    }
    let exit = if stderr.is_empty() {
        Exit::Success
    } else {
        stderr.push_str(
            "hint: install all binaries from one release (`kubectl krew upgrade mesh`) and remove \
             stale `kubectl-mesh-*` binaries from PATH\n",
        );
        Exit::Mismatch
    };
    Report {
        stdout,
        stderr,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sub(name: &str, origin: Origin, v: Option<&str>) -> (Found, Option<String>) {
        let found = Found {
            name: name.to_owned(),
            path: PathBuf::from(format!("/d/kubectl-mesh-{name}")),
            origin,
        };
        (found, v.map(str::to_owned))
    }

    #[test]
    fn parses_common_version_lines() {
        assert_eq!(
            parse_version("kubectl-mesh-tag 0.1.0\n").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(
            parse_version("\nkubectl mesh tag v0.2.0-rc.1\n").as_deref(),
            Some("0.2.0-rc.1")
        );
        assert_eq!(parse_version("0.1.0").as_deref(), Some("0.1.0"));
        assert_eq!(parse_version("usage: foo"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn matching_versions_are_quiet() {
        let r = report("0.1.0", &[sub("precheck", Origin::Beside, Some("0.1.0"))]);
        assert_eq!(
            r.stdout,
            "kubectl-mesh           0.1.0\nkubectl-mesh-precheck  0.1.0\n"
        );
        assert_eq!((r.stderr.as_str(), r.exit), ("", Exit::Success));
    }

    #[test]
    fn mismatches_warn_and_exit_1() {
        let r = report(
            "0.1.0",
            &[
                sub("tag", Origin::Path, Some("0.0.9")),
                sub("foo", Origin::Beside, None),
            ],
        );
        assert!(
            r.stdout.contains("kubectl-mesh-tag  0.0.9\n"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout.contains("kubectl-mesh-foo  unknown\n"),
            "{}",
            r.stdout
        );
        assert!(
            r.stderr.contains(
                "warning: `kubectl-mesh-tag` is version 0.0.9, `kubectl-mesh` is 0.1.0 \
                 (/d/kubectl-mesh-tag, found on PATH)"
            ),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("`kubectl-mesh-foo` did not report a version"),
            "{}",
            r.stderr
        );
        assert_eq!(r.exit, Exit::Mismatch);
    }
}
