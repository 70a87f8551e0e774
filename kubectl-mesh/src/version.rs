//! `kubectl mesh version [--release-data FILE]`: the dispatcher's version and each
//! subcommand's `--version`, with a warning when they differ (a stale binary on PATH, a
//! half-finished upgrade), and up to which Istio minor their release data knows — each binary
//! that judges versions reports that itself (a `release data:` line of its `--version`), so the
//! answer is always the one the commands will use. `--release-data FILE` asks them about FILE.
//! Exits 1 on any mismatch or a subcommand that cannot say its version, 2 on a bad release data
//! file or argument, else 0.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};

use crate::exit::{self, Exit, Failure};
use crate::lookup::{Finder, Found, Origin};

/// The line of a subcommand's `--version` that says what its release data knows.
pub const RELEASE_PREFIX: &str = "release data: ";

/// The environment variable the subcommands read a release data file from.
pub const RELEASE_DATA_ENV: &str = "KUBECTL_MESH_RELEASE_DATA";

/// The report: stdout text, stderr warnings, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `binary  version` lines, then the release data line(s).
    pub stdout: String,
    /// `warning:`, `error:` and `hint:` lines.
    pub stderr: String,
    /// [`Exit::Success`], [`Exit::Mismatch`] or [`Exit::Usage`] (a bad release data file).
    pub exit: Exit,
}

/// What a subcommand's `--version` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Its version.
    pub version: Option<String>,
    /// What its release data knows (`Istio 1.20 to 1.31 (...)`, or `error: ...`), if it judges
    /// versions.
    pub releases: Option<String>,
}

/// Runs `--version` of every subcommand `finder` sees and prints the report.
pub fn run(finder: &Finder, args: &[OsString]) -> ExitCode {
    let data = match release_data_arg(args) {
        Ok(d) => d,
        Err(failure) => return failure.report(),
    };
    let subs: Vec<(Found, Answer)> = finder
        .available()
        .into_iter()
        .map(|f| {
            let a = ask_version(&f, data.as_ref());
            (f, a)
        })
        .collect();
    let report = report(crate::VERSION, &subs);
    exit::stdout(&report.stdout);
    exit::stderr(&report.stderr);
    report.exit.into()
}

/// Whether `version`'s arguments name clusters (`--context`, `--all-contexts`,
/// `--contexts-from`): then precheck answers what Istio runs in each
/// (`kubectl-mesh-precheck --mesh-versions ARGS…`), with every other flag it takes.
pub fn names_clusters(args: &[OsString]) -> bool {
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        ["--context", "--all-contexts", "--contexts-from"]
            .iter()
            .any(|f| a == *f || a.starts_with(&format!("{f}=")))
    })
}

/// `--release-data FILE` or `--release-data=FILE`, the only argument `version` takes.
fn release_data_arg(args: &[OsString]) -> Result<Option<OsString>, Failure> {
    let usage = |what: String| {
        Failure::new(Exit::Usage, what).hint("usage: `kubectl mesh version [--release-data FILE]`")
    };
    let mut it = args.iter();
    let mut data = None;
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        if text == "--release-data" {
            let Some(v) = it.next() else {
                return Err(usage("`--release-data` needs a file".to_owned()));
            };
            data = Some(v.clone());
        } else if let Some(v) = text.strip_prefix("--release-data=") {
            data = Some(OsString::from(v));
        } else {
            return Err(usage(format!(
                "`kubectl mesh version` takes no argument `{text}`"
            )));
        }
    }
    Ok(data)
}

fn ask_version(found: &Found, data: Option<&OsString>) -> Answer {
    let mut cmd = Command::new(&found.path);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    if let Some(d) = data {
        cmd.env(RELEASE_DATA_ENV, d);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            Answer {
                version: parse_version(&text),
                releases: parse_releases(&text),
            }
        }
        _ => Answer::default(),
    }
}

/// The `release data:` line of a `--version` output, without its prefix.
pub fn parse_releases(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(RELEASE_PREFIX))
        .map(|l| l.trim().to_owned())
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
pub fn report(own: &str, subs: &[(Found, Answer)]) -> Report {
    let rows: Vec<(String, &str)> = std::iter::once(("kubectl-mesh".to_owned(), own))
        .chain(subs.iter().map(|(f, a)| {
            (
                format!("kubectl-mesh-{}", f.name),
                a.version.as_deref().unwrap_or("unknown"),
            )
        }))
        .collect();
    let width = rows.iter().map(|(b, _)| b.len()).max().unwrap_or(0);
    let mut stdout = String::new();
    for (binary, version) in &rows {
        let _ = writeln!(stdout, "{binary:<width$}  {version}");
    }
    stdout.push_str(&releases_text(subs));
    let mut stderr = String::new();
    for (found, answer) in subs {
        let place = match found.origin {
            Origin::Beside => "",
            Origin::Path => ", found on PATH",
        };
        let what = match &answer.version {
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
    let mut exit = Exit::Success;
    if !stderr.is_empty() {
        stderr.push_str(
            "hint: install all binaries from one release (`kubectl krew upgrade mesh`) and remove \
             stale `kubectl-mesh-*` binaries from PATH\n",
        );
        exit = Exit::Mismatch;
    }
    if let Some(error) = subs
        .iter()
        .find_map(|(_, a)| a.releases.as_deref()?.strip_prefix("error: "))
    {
        let _ = writeln!(stderr, "error: {error}");
        stderr.push_str(
            "hint: fix the file (format: docs/release-data.md), or drop --release-data\n",
        );
        exit = Exit::Usage;
    }
    Report {
        stdout,
        stderr,
        exit,
    }
}

/// `release data: Istio 1.20 to 1.31 (...)` once when every binary that judges versions says the
/// same, else one line per binary. Nothing when none does (none installed).
fn releases_text(subs: &[(Found, Answer)]) -> String {
    let said: Vec<(&str, &str)> = subs
        .iter()
        .filter_map(|(f, a)| Some((f.name.as_str(), a.releases.as_deref()?)))
        .filter(|(_, r)| !r.starts_with("error: "))
        .collect();
    let Some((_, first)) = said.first() else {
        return String::new();
    };
    if said.iter().all(|(_, r)| r == first) {
        return format!("\n{RELEASE_PREFIX}{first}\n");
    }
    let mut text = String::from("\n");
    for (name, r) in said {
        let _ = writeln!(text, "{RELEASE_PREFIX}{r} (kubectl-mesh-{name})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn sub(name: &str, origin: Origin, v: Option<&str>) -> (Found, Answer) {
        let found = Found {
            name: name.to_owned(),
            path: PathBuf::from(format!("/d/kubectl-mesh-{name}")),
            origin,
        };
        let answer = Answer {
            version: v.map(str::to_owned),
            releases: None,
        };
        (found, answer)
    }

    fn knows(mut s: (Found, Answer), releases: &str) -> (Found, Answer) {
        s.1.releases = Some(releases.to_owned());
        s
    }

    #[test]
    fn release_data_lines_are_reported_once_or_per_binary() {
        let out = "kubectl-mesh-precheck 0.1.0\nrelease data: Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)\n";
        assert_eq!(
            parse_releases(out).as_deref(),
            Some("Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)")
        );
        assert_eq!(parse_releases("kubectl-mesh-tag 0.1.0\n"), None);
        let same = "Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)";
        let r = report(
            "0.1.0",
            &[
                knows(sub("precheck", Origin::Beside, Some("0.1.0")), same),
                sub("tag", Origin::Beside, Some("0.1.0")),
                knows(sub("upgrade", Origin::Beside, Some("0.1.0")), same),
            ],
        );
        assert!(
            r.stdout.ends_with(&format!(
                "kubectl-mesh-upgrade   0.1.0\n\nrelease data: {same}\n"
            )),
            "{}",
            r.stdout
        );
        assert_eq!(r.exit, Exit::Success);
        let r = report(
            "0.1.0",
            &[
                knows(sub("precheck", Origin::Beside, Some("0.1.0")), same),
                knows(
                    sub("upgrade", Origin::Path, Some("0.1.0")),
                    "Istio 1.20 to 1.30 (built-in data, checked 2026-09-01)",
                ),
            ],
        );
        assert!(
            r.stdout
                .contains(&format!("release data: {same} (kubectl-mesh-precheck)\n")),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("release data: Istio 1.20 to 1.30 (built-in data, checked 2026-09-01) (kubectl-mesh-upgrade)\n"), "{}", r.stdout);
        let bad = report(
            "0.1.0",
            &[knows(
                sub("precheck", Origin::Beside, Some("0.1.0")),
                "error: release data `x.yaml`, line 3: bad",
            )],
        );
        assert_eq!(bad.exit, Exit::Usage);
        assert!(
            bad.stderr
                .starts_with("error: release data `x.yaml`, line 3: bad\nhint: "),
            "{}",
            bad.stderr
        );
    }

    #[test]
    fn version_takes_only_a_release_data_file() {
        let a = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(release_data_arg(&a(&[])).unwrap(), None);
        assert_eq!(
            release_data_arg(&a(&["--release-data", "r.yaml"])).unwrap(),
            Some(OsString::from("r.yaml"))
        );
        assert_eq!(
            release_data_arg(&a(&["--release-data=s.yaml"])).unwrap(),
            Some(OsString::from("s.yaml"))
        );
        assert_eq!(
            release_data_arg(&a(&["--release-data"])).unwrap_err().exit,
            Exit::Usage
        );
        let f = release_data_arg(&a(&["-o", "json"])).unwrap_err();
        assert_eq!(f.message, "`kubectl mesh version` takes no argument `-o`");
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
