//! Command-line arguments of `kubectl mesh upgrade` and its subcommands (plain data).

use std::{path::PathBuf, time::Duration};

use clap::{Args as ClapArgs, Parser, Subcommand};
use mesh_common::cli::{
    ChangeFlags, KubeFlags, OutputFlags, ReleaseFlags, SnapshotFlags, parse_positive_duration,
};

/// Upgrade, downgrade or canary-install an Istio control plane from a manifest, with the
/// guardrails istioctl lacks.
///
/// Give the output of `istioctl manifest generate` (or `helm template`) for the target version.
/// The mode follows from the cluster: an installed revision is upgraded (or downgraded) in
/// place; a new revision is a canary beside the installed ones (only with --canary); an empty
/// cluster gets a fresh install. Refused when the version skew is too large (in place: one minor
/// up or down; canary: two minors up), when the control plane was installed by Helm, or when
/// any precheck fails. The plan shows every object as create / update (with the fields that
/// matter: images, env, replicas, resources, mesh config, injector values) / unchanged / prune,
/// is checked by the API server in a dry run, confirmed, backed up, applied in phases (CRDs,
/// RBAC, config, istiod, webhooks, gateways, prune) with waits, and verified. Any failure rolls
/// back from the backup unless --no-rollback.
///
/// Exit codes: 0 done (or nothing to change, or a clean --dry-run); 1 refused (guardrail, Helm,
/// --canary missing, answered no, no --yes without a terminal, field conflict); 2 bad input;
/// 3 could not complete (rolled back: the message says what state the cluster is in).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mesh-upgrade",
    bin_name = "kubectl mesh upgrade",
    version,
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// Subcommand (without one: upgrade the control plane from -f)
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub upgrade: UpgradeArgs,
    #[command(flatten)]
    pub kube: KubeFlags,
    #[command(flatten)]
    pub snapshot: SnapshotFlags,
    #[command(flatten)]
    pub release: ReleaseFlags,
    #[command(flatten)]
    pub output: OutputFlags,
}

impl Args {
    /// Refuses the control-plane upgrade's own flags beside a subcommand (`upgrade -f x
    /// dataplane`): they would be silently ignored. Connection and output flags may go before
    /// or after the subcommand, as with kubectl.
    pub fn check(&self) -> Result<(), String> {
        let u = &self.upgrade;
        let given = !u.files.is_empty()
            || u.canary
            || u.dry_run
            || u.yes
            || u.force
            || u.no_rollback
            || u.change.backup_dir.is_some()
            || u.change.force_conflicts
            || u.timeout != std::time::Duration::from_secs(300);
        match &self.command {
            Some(c) if given => Err(format!(
                "flags of `kubectl mesh upgrade -f` were given before `{}`: put them after it",
                match c {
                    Command::Dataplane(_) => "dataplane",
                    Command::Rollback(_) => "rollback",
                }
            )),
            _ => Ok(()),
        }
    }
}

/// The control-plane upgrade.
#[derive(Debug, ClapArgs)]
pub struct UpgradeArgs {
    /// Manifest of the target version: a file, a directory of .yaml/.yml/.json files, or `-`
    /// for stdin (repeatable)
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Install the manifest's revision as a new control plane beside the installed ones
    #[arg(long)]
    pub canary: bool,
    /// Show the plan, checked by the API server in a dry run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short = 'y', long, alias = "skip-confirmation")]
    pub yes: bool,
    /// Proceed despite version-skew refusals (never despite other failed checks or bad input)
    #[arg(long)]
    pub force: bool,
    /// How long each wait may take (CRDs established, istiod and gateways rolled out)
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// On a failure, stop where it failed instead of restoring the backup
    #[arg(long)]
    pub no_rollback: bool,
    #[command(flatten)]
    pub change: ChangeFlags,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Move namespaces (and their waypoints) to a revision or tag and restart workloads onto
    /// its proxy, in batches; ambient namespaces need no restart
    Dataplane(DataplaneArgs),
    /// Undo a change: restore the latest backup of this cluster (or the one named)
    Rollback(RollbackArgs),
}

/// `dataplane`.
#[derive(Debug, ClapArgs)]
pub struct DataplaneArgs {
    /// Namespace to move or restart (repeatable)
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Every namespace (but the Istio namespace)
    #[arg(short = 'A', long = "all-namespaces", conflicts_with = "namespaces")]
    pub all: bool,
    /// Relabel the namespaces to this revision or tag first (`istio.io/rev=<it>`, without
    /// `istio-injection`; ambient namespaces keep their labels) and move their waypoints onto it
    #[arg(long, value_name = "REV|TAG")]
    pub to_revision: Option<String>,
    /// Waypoint to move onto --to-revision besides those of the namespaces (repeatable, or
    /// comma-separated)
    #[arg(
        long = "waypoint",
        visible_alias = "waypoints",
        value_name = "NS/NAME",
        value_delimiter = ','
    )]
    pub waypoints: Vec<String>,
    /// Workloads restarted at once; each batch must be ready before the next
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// How long each batch (and the waypoints) may take to become ready
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Show the plan, checked by the API server in a dry run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short = 'y', long, alias = "skip-confirmation")]
    pub yes: bool,
    #[command(flatten)]
    pub change: ChangeFlags,
}

/// `rollback`.
#[derive(Debug, ClapArgs)]
pub struct RollbackArgs {
    /// Backup file to restore (default: the latest upgrade or dataplane backup of this cluster
    /// in the backup directory)
    #[arg(value_name = "BACKUP")]
    pub backup: Option<PathBuf>,
    /// Show what would be restored, checked by the API server in a dry run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short = 'y', long, alias = "skip-confirmation")]
    pub yes: bool,
    /// How long each wait may take
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub change: ChangeFlags,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kubectl-mesh-upgrade").chain(args.iter().copied()))
    }

    #[test]
    fn manifest_is_required_without_a_subcommand_and_refused_with_one() {
        assert!(parse(&[]).is_err());
        let a = parse(&["-f", "a.yaml", "-f", "dir", "--canary"]).unwrap();
        assert_eq!(a.upgrade.files.len(), 2);
        assert!(a.upgrade.canary);
        assert!(parse(&["dataplane", "-A"]).is_ok());
        let before = parse(&["--context", "prod", "dataplane", "-A"]).unwrap();
        assert!(before.check().is_ok(), "connection flags may come first");
        let mixed = parse(&["-f", "x.yaml", "dataplane", "-A"]).unwrap();
        assert!(mixed.check().unwrap_err().contains("before `dataplane`"));
        assert!(parse(&["dataplane", "-A", "-n", "x"]).is_err());
        assert!(parse(&["dataplane", "-A", "--batch", "0"]).is_err());
        let w = parse(&["dataplane", "--waypoint", "a/w", "--waypoints", "b/x,c/y"]).unwrap();
        let Some(Command::Dataplane(d)) = w.command else {
            panic!("dataplane")
        };
        assert_eq!(d.waypoints, ["a/w", "b/x", "c/y"]);
        assert!(parse(&["rollback", "b.yaml", "--dry-run"]).is_ok());
        assert!(parse(&["-f", "x", "--timeout", "0s"]).is_err());
        assert!(parse(&["-f", "x", "--request-timeout", "99999999999999999999"]).is_err());
    }
}
