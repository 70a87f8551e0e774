//! The shell's side of the release data ([`mesh_core::releases`]): which file a command judges
//! versions with (`--release-data`, `KUBECTL_MESH_RELEASE_DATA`, else the built-in one), today's
//! date for end-of-life verdicts (`KUBECTL_MESH_TODAY` pins it), and the `--version` text that
//! says up to which Istio minor a binary knows.

use std::{ffi::OsString, path::PathBuf};

use jiff::civil::Date;
use mesh_core::{
    checks::Knowledge,
    releases::{Origin, Releases},
};

use crate::{cli::ReleaseFlags, exit::MeshError};

/// The environment variable `--release-data` falls back to.
pub const RELEASE_DATA_ENV: &str = "KUBECTL_MESH_RELEASE_DATA";

/// Pins "today" (YYYY-MM-DD) for end-of-life verdicts: tests, or "what will precheck say then".
pub const TODAY_ENV: &str = "KUBECTL_MESH_TODAY";

/// Marks the release line of a `--version` output (the dispatcher reads it).
pub const VERSION_LINE_PREFIX: &str = "release data: ";

/// Release data and the date a command judges with.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The data.
    pub releases: Releases,
    /// Today.
    pub today: Date,
}

impl Loaded {
    /// What the checks take.
    pub fn knowledge(&self) -> Knowledge<'_> {
        Knowledge {
            releases: &self.releases,
            today: Some(self.today),
        }
    }
}

impl ReleaseFlags {
    /// Reads the release data the flags name (or the built-in data) and today's date. A bad
    /// file or date is a usage error (exit 2) naming the file and line.
    pub fn load(&self) -> Result<Loaded, MeshError> {
        Ok(Loaded {
            releases: load(self.release_data.as_ref())?,
            today: today()?,
        })
    }
}

/// The built-in data, or the file at `path`.
pub fn load(path: Option<&PathBuf>) -> Result<Releases, MeshError> {
    let Some(path) = path else {
        return Ok(Releases::builtin().clone());
    };
    let text = crate::input::read_text(path, "release data")?;
    Ok(Releases::parse(
        &text,
        Origin::File(path.display().to_string()),
    )?)
}

/// Today in UTC, or the date `KUBECTL_MESH_TODAY` pins.
pub fn today() -> Result<Date, MeshError> {
    match std::env::var(TODAY_ENV) {
        Ok(text) if !text.is_empty() => text.parse::<Date>().map_err(|_| {
            MeshError::usage(anyhow::anyhow!("{TODAY_ENV} `{text}` is not a date"))
                .hint(format!("give a date like 2026-12-04, or unset {TODAY_ENV}"))
        }),
        _ => Ok(jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()),
    }
}

/// `release data: Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)`, or what is wrong
/// with the file given.
pub fn version_line(path: Option<&PathBuf>) -> String {
    match load(path) {
        Ok(data) => format!("{VERSION_LINE_PREFIX}{}", data.summary()),
        Err(e) => format!("{VERSION_LINE_PREFIX}error: {:#}", e.error),
    }
}

/// The release data file named on a command line (`--release-data F`, `--release-data=F`), else
/// in the environment: what `--version` reports on, before the flags are parsed.
fn release_data_in(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--release-data" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--release-data=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os(RELEASE_DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Parses the command line of a binary that judges versions; its `--version` also says which
/// Istio minors its release data knows (`kubectl mesh version` shows that line).
pub fn parse_args<T: clap::Parser>() -> T {
    let args: Vec<OsString> = std::env::args_os().collect();
    let matches = with_release_version(T::command(), &args).get_matches_from(args);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// [`parse_args`] for a fleet command: `--context` and `--snapshot` may also repeat, and
/// `fleet(&mut T)` receives every occurrence ([`crate::cli::parse_fleet`]).
pub fn parse_fleet_args<T: clap::Parser>(
    fleet: impl FnOnce(&mut T) -> &mut crate::cli::FleetFlags,
) -> T {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cmd = crate::cli::fleet_command(with_release_version(T::command(), &args));
    let matches = cmd.get_matches_from(args);
    let mut parsed = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    crate::cli::fleet_values(&matches, fleet(&mut parsed));
    parsed
}

/// The command, its `--version` text extended with the release data line when asked for.
fn with_release_version(mut cmd: clap::Command, args: &[OsString]) -> clap::Command {
    if args.iter().skip(1).any(|a| a == "--version" || a == "-V") {
        let base = cmd.get_version().unwrap_or_default().to_owned();
        let text = format!("{base}\n{}", version_line(release_data_in(args).as_ref()));
        cmd = cmd.version(&*Box::leak(text.into_boxed_str()));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_file_is_found_before_flags_are_parsed() {
        assert_eq!(
            release_data_in(&args(&["bin", "-V", "--release-data", "a.yaml"])),
            Some(PathBuf::from("a.yaml"))
        );
        assert_eq!(
            release_data_in(&args(&["bin", "--release-data=b.yaml", "--version"])),
            Some(PathBuf::from("b.yaml"))
        );
        assert_eq!(
            release_data_in(&args(&["bin", "--", "--release-data=c.yaml"])),
            std::env::var_os(RELEASE_DATA_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        );
    }

    #[test]
    fn the_version_line_names_the_data() {
        assert_eq!(
            version_line(None),
            format!("release data: {}", Releases::builtin().summary())
        );
        assert!(version_line(None).starts_with("release data: Istio 1.20 to 1."));
        let missing = version_line(Some(&PathBuf::from("/nonexistent/r.yaml")));
        assert!(
            missing
                .starts_with("release data: error: cannot read release data `/nonexistent/r.yaml`"),
            "{missing}"
        );
        assert!(!missing.contains('\n'), "{missing}");
    }
}
