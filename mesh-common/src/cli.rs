//! Shared command-line flags, flattened into every binary (kubectl's names and meanings).
//!
//! These are plain data; the shell turns them into a client ([`crate::cluster::connect`]) or a
//! snapshot file read, and into a [`crate::output::Printer`].

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use crate::{
    cluster::{ConnectOptions, StateSource},
    input::InputError,
};

/// How to reach the cluster (kubectl's flags).
#[derive(Debug, Clone, Default, Args)]
pub struct KubeFlags {
    /// Path to the kubeconfig file (default: $KUBECONFIG, merged first-wins, or ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Username to impersonate
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable)
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// UID to impersonate
    #[arg(long = "as-uid", global = true, value_name = "UID")]
    pub as_uid: Option<String>,
    /// Timeout of a single API request (e.g. 30s, 1m; 0 = no timeout)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Namespace where the Istio control plane lives
    #[arg(
        short = 'i',
        long,
        global = true,
        default_value = "istio-system",
        value_name = "NS"
    )]
    pub istio_namespace: String,
}

/// Reading the cluster from a dump instead of the API.
#[derive(Debug, Clone, Default, Args)]
pub struct SnapshotFlags {
    /// Read the cluster state from a file (`kubectl get ... -A -o yaml` output, or a
    /// `--dump-snapshot` file) instead of the cluster
    #[arg(long, global = true, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Kubernetes version of the cluster the snapshot came from (e.g. v1.34.4)
    #[arg(long, global = true, value_name = "VERSION", requires = "snapshot")]
    pub kube_version: Option<String>,
}

/// Which Istio release knowledge judges versions (support windows, minimums, hazards).
#[derive(Debug, Clone, Default, Args)]
pub struct ReleaseFlags {
    /// Istio release data to use instead of the built-in file, e.g. a newer one that knows a
    /// newer Istio (format: docs/release-data.md)
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "KUBECTL_MESH_RELEASE_DATA",
        hide_env_values = true
    )]
    pub release_data: Option<PathBuf>,
}

/// Output format of data on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables and findings
    #[default]
    Table,
    /// JSON (versioned schema)
    Json,
    /// YAML (same schema as JSON)
    Yaml,
}

/// When to colour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is unset
    #[default]
    Auto,
    /// Always
    Always,
    /// Never
    Never,
}

/// How to print.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputFlags {
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Colour output
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// Longest duration any flag takes (a week): more is a typo, not a timeout.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration the way kubectl does: a whole number of seconds (`30`, as
/// `--request-timeout` takes it) or Go's `time.ParseDuration` form — one or more decimal
/// numbers, each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`): `90s`, `1h30m`, `1.5h`,
/// `300ms`, and `0`. Negative, out-of-range (more than a week) and malformed values are errors.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| format!("`{text}` is out of range (at most 168h)"));
    }
    let nanos = go_duration(text).map_err(|why| format!("`{text}` {why}"))?;
    match u64::try_from(nanos).map(Duration::from_nanos) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!("`{text}` is out of range (at most 168h)")),
    }
}

/// Go's `time.ParseDuration` grammar, `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or `0`, in nanoseconds
/// (saturating far beyond a week). A negative duration is refused: no timeout is negative.
fn go_duration(text: &str) -> Result<u128, &'static str> {
    const HINT: &str = "is not a duration (use e.g. 90s, 5m, 1h30m)";
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err("is negative (give a duration like 5m)");
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(HINT);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len())),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(HINT);
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if !unit.chars().all(|c| c.is_alphabetic()) {
            return Err(HINT);
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("has a number without a unit (use ns, us, ms, s, m or h)"),
            _ => return Err("has an unknown unit (use ns, us, ms, s, m or h)"),
        };
        // Digits beyond what can matter are dropped (as Go does), never overflow.
        let whole: u128 = int[..int.len().min(30)].parse().unwrap_or(0);
        let whole = if int.len() > 30 { u128::MAX } else { whole };
        let frac = &frac[..frac.len().min(18)];
        let part: u128 = frac.parse().unwrap_or(0);
        let frac_nanos = part * scale / 10u128.pow(u32::try_from(frac.len()).unwrap_or(0));
        total = total
            .saturating_add(whole.saturating_mul(scale))
            .saturating_add(frac_nanos);
        rest = next;
    }
    Ok(total)
}

/// Parses a duration that must be more than zero (`--timeout`).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("`{}` is zero: give a timeout like 5m", s.trim()));
    }
    Ok(d)
}

impl KubeFlags {
    /// The connection options these flags describe.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            as_user: self.as_user.clone(),
            as_group: self.as_group.clone(),
            as_uid: self.as_uid.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

impl SnapshotFlags {
    /// Where the cluster state comes from: the snapshot file (read now), or the cluster.
    pub fn source(&self, kube: &KubeFlags) -> Result<StateSource, InputError> {
        match &self.snapshot {
            Some(path) => Ok(StateSource::File {
                text: crate::input::read_text(path, "snapshot")?,
                path: path.clone(),
                kube_version: self.kube_version.clone(),
            }),
            None => Ok(StateSource::Cluster(kube.connect_options())),
        }
    }
}

/// Clusters read at once by default in a fleet run.
pub const DEFAULT_PARALLEL: u16 = 4;

/// Choosing several clusters at once (fleet runs). With these, `--context` and `--snapshot`
/// may be given more than once (see [`parse_fleet`]).
#[derive(Debug, Clone, Default, Args)]
pub struct FleetFlags {
    /// Read every context of the kubeconfig
    #[arg(long)]
    pub all_contexts: bool,
    /// Read the contexts named in FILE: one per line; `#` starts a comment
    #[arg(long, value_name = "FILE")]
    pub contexts_from: Option<PathBuf>,
    /// How many clusters are read at once (each holds its snapshot in memory while it is judged)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARALLEL,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// A cluster that cannot be read (unreachable, credentials rejected, forbidden) is reported
    /// but does not make the exit code 3
    #[arg(long)]
    pub allow_unreachable: bool,
    /// Every `--context` given, in order (filled by [`parse_fleet`]).
    #[arg(skip)]
    pub contexts: Vec<String>,
    /// Every `--snapshot` given, in order (filled by [`parse_fleet`]).
    #[arg(skip)]
    pub snapshots: Vec<PathBuf>,
}

impl FleetFlags {
    /// Whether more than one cluster is asked for (or a way of naming many is used).
    pub fn is_fleet(&self) -> bool {
        self.all_contexts
            || self.contexts_from.is_some()
            || self.contexts.len() > 1
            || self.snapshots.len() > 1
    }
}

/// Parses a fleet command's arguments like `P::parse()`, but lets `--context` and `--snapshot`
/// repeat: the shared flags keep the first occurrence and `fleet(&mut P)` receives them all.
/// Exits like clap on `--help`, `--version` and usage errors.
pub fn parse_fleet<P>(fleet: impl FnOnce(&mut P) -> &mut FleetFlags) -> P
where
    P: clap::Parser,
{
    parse_fleet_from(std::env::args_os(), fleet).unwrap_or_else(|e| e.exit())
}

/// [`parse_fleet`] over given arguments (the first is the program name).
pub fn parse_fleet_from<P, I, T>(
    args: I,
    fleet: impl FnOnce(&mut P) -> &mut FleetFlags,
) -> Result<P, clap::Error>
where
    P: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = fleet_command(P::command()).try_get_matches_from(args)?;
    let mut parsed = P::from_arg_matches(&matches)?;
    fleet_values(&matches, fleet(&mut parsed));
    Ok(parsed)
}

/// A command whose `--context` and `--snapshot` may repeat (clap keeps every occurrence).
pub fn fleet_command(cmd: clap::Command) -> clap::Command {
    let repeat = |a: clap::Arg| a.action(clap::ArgAction::Append);
    cmd.mut_arg("context", repeat).mut_arg("snapshot", repeat)
}

/// Every `--context` and `--snapshot` of a [`fleet_command`]'s matches, in order.
pub fn fleet_values(matches: &clap::ArgMatches, f: &mut FleetFlags) {
    f.contexts = matches
        .get_many::<String>("context")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    f.snapshots = matches
        .get_many::<PathBuf>("snapshot")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
}

/// Context names from a `--contexts-from` file: one per line, blank lines and `#` comments
/// skipped, duplicates dropped (first kept).
pub fn context_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let name = line.split('#').next().unwrap_or_default().trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// Flags of every command that changes the cluster, declared here once and flattened into each
/// (`tag set`, `tag remove`, `uninstall`, `upgrade`, `upgrade dataplane`, `upgrade rollback`).
/// A command words a flag's help for itself with clap's `mut_arg` when the generic text is
/// not precise enough; the names, values and meaning stay these.
#[derive(Debug, Clone, Default, Args)]
pub struct ChangeFlags {
    /// Show the plan, checked by the API server in a dry run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short = 'y', long, alias = "skip-confirmation")]
    pub yes: bool,
    /// Where to write the backup of what is changed (default: ~/.kube/mesh-backups)
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Take over fields another field manager owns (shown first otherwise, and refused)
    #[arg(long)]
    pub force_conflicts: bool,
}

/// Default of `--timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// `--timeout`, of the changing commands that wait (all but `tag`).
#[derive(Debug, Clone, Args)]
pub struct TimeoutFlag {
    /// How long each wait may take
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

impl Default for TimeoutFlag {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// `--no-rollback`, of the changing commands that roll back on failure (`upgrade`,
/// `uninstall`).
#[derive(Debug, Clone, Default, Args)]
pub struct NoRollbackFlag {
    /// On a failure, stop where it failed instead of restoring the backup
    #[arg(long)]
    pub no_rollback: bool,
}

impl ChangeFlags {
    /// The backup directory.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(crate::cluster::backup::default_dir)
    }
}

/// The command line as typed after the plugin name, for backups: `kubectl mesh <sub> <args>`.
/// Values of flags that may carry credentials are never recorded.
pub fn command_line(sub: &str) -> String {
    let mut out = format!("kubectl mesh {sub}");
    let mut hide_next = false;
    for a in std::env::args().skip(1) {
        if hide_next {
            out.push_str(" ***");
            hide_next = false;
            continue;
        }
        let secret = ["--token", "--password", "--client-key"];
        if secret.iter().any(|s| a == *s) {
            hide_next = true;
            out.push(' ');
            out.push_str(&a);
        } else if secret.iter().any(|s| a.starts_with(&format!("{s}="))) {
            out.push_str(&format!(" {}=***", a.split('=').next().unwrap_or_default()));
        } else {
            out.push(' ');
            out.push_str(&a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Fleet {
        #[command(flatten)]
        kube: KubeFlags,
        #[command(flatten)]
        snapshot: SnapshotFlags,
        #[command(flatten)]
        fleet: FleetFlags,
    }

    #[test]
    fn context_and_snapshot_repeat_in_fleet_commands() {
        let f: Fleet = parse_fleet_from(
            [
                "p",
                "--context",
                "a",
                "--context=b",
                "--snapshot",
                "x.yaml",
                "--parallel",
                "2",
            ],
            |f: &mut Fleet| &mut f.fleet,
        )
        .unwrap();
        assert_eq!(f.fleet.contexts, ["a", "b"]);
        assert_eq!(
            f.kube.context.as_deref(),
            Some("a"),
            "the shared flag keeps the first"
        );
        assert_eq!(f.fleet.snapshots, [PathBuf::from("x.yaml")]);
        assert_eq!(f.fleet.parallel, 2);
        assert!(f.fleet.is_fleet());
        let one: Fleet =
            parse_fleet_from(["p", "--context", "a"], |f: &mut Fleet| &mut f.fleet).unwrap();
        assert!(
            !one.fleet.is_fleet(),
            "one context is the single-cluster precheck"
        );
        let bad = parse_fleet_from(["p", "--parallel", "0"], |f: &mut Fleet| &mut f.fleet);
        assert_eq!(
            bad.unwrap_err().kind(),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn contexts_file_lines_and_comments() {
        let text = "# production\neast\n\n  west   # the other one\neast\n#gone\n";
        assert_eq!(context_list(text), ["east", "west"]);
    }

    #[test]
    fn durations_like_kubectl() {
        let d = |s: &str| parse_duration(s);
        assert_eq!(d("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(d("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(d("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            d("2").unwrap(),
            Duration::from_secs(2),
            "kubectl's bare seconds"
        );
        // Go's time.ParseDuration forms, as kubectl's flags take them.
        assert_eq!(d("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(d("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(d("2m3.5s").unwrap(), Duration::from_millis(123_500));
        assert_eq!(d(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(d("1.s").unwrap(), Duration::from_secs(1));
        assert_eq!(d("+10s").unwrap(), Duration::from_secs(10));
        assert_eq!(d("0").unwrap(), Duration::ZERO);
        assert_eq!(d("1500us").unwrap(), Duration::from_micros(1500));
        assert_eq!(d("7\u{b5}s").unwrap(), Duration::from_micros(7));
        assert_eq!(d("7\u{3bc}s").unwrap(), Duration::from_micros(7));
        assert_eq!(d("10ns").unwrap(), Duration::from_nanos(10));
        assert_eq!(d("168h").unwrap(), MAX_DURATION);
        for bad in [
            "",
            "5 minutes",
            "m",
            "1h 30m",
            "1d",
            "1.5",
            "5M",
            ".s",
            "-1s",
            "-0",
            "1e3s",
            "s5",
            "1h30",
            "..5s",
            "99999999999999999999",
            "1e400",
            "169h",
            "10000000000000000000000000000000000000000h",
        ] {
            let e = d(bad).unwrap_err();
            assert!(!e.contains('\n') && e.contains('`'), "{bad:?}: {e}");
        }
        assert!(d("1.5").unwrap_err().contains("without a unit"));
        assert!(d("1d").unwrap_err().contains("unknown unit"));
        assert!(d("1h 30m").unwrap_err().contains("is not a duration"));
        assert!(d("-1s").unwrap_err().contains("negative"));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(
            parse_positive_duration("1m").unwrap(),
            Duration::from_secs(60)
        );
    }
}
