//! Command-line arguments of `kubectl mesh precheck`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use mesh_common::cli::{FleetFlags, KubeFlags, OutputFlags, ReleaseFlags, SnapshotFlags};

/// Inventory, health and upgrade eligibility of an Istio mesh.
///
/// Without a target: what is installed (revisions, versions, tags, namespaces, proxies) and
/// whether it is healthy. With `--target-version` or `-f`: also whether that upgrade is safe.
///
/// Fleets: `--context A --context B`, `--all-contexts` or `--contexts-from FILE` (or several
/// `--snapshot` files) read every cluster, show a fleet table, then each cluster's findings and
/// the checks across clusters that share a mesh.
///
/// Exit codes: 0 nothing at or above --fail-on; 1 findings at or above --fail-on; 2 bad input;
/// 3 could not complete (API unreachable, unauthorized; in a fleet: any cluster not read,
/// unless --allow-unreachable).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mesh-precheck",
    bin_name = "kubectl mesh precheck",
    version
)]
pub struct Args {
    /// Manifest of the target control plane (`istioctl manifest generate` or `helm template`
    /// output; `-` for stdin): its istiod image gives the version, its label the revision
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "target_version"
    )]
    pub manifest: Option<PathBuf>,
    /// Target Istio version (e.g. 1.30.3)
    #[arg(long, value_name = "VERSION")]
    pub target_version: Option<String>,
    /// The target is a new revision installed beside the existing ones
    #[arg(long)]
    pub canary: bool,
    /// Target revision (default: the manifest's, else `default`, or the version's name with --canary)
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Lowest finding level that makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Error, value_name = "LEVEL")]
    pub fail_on: FailOn,
    /// Limit namespace-level findings and the inventory's namespaces and proxies to NS
    /// (control-plane, webhook and skew-of-control-plane checks stay cluster-wide)
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write the cluster state this check reads to FILE (usable with --snapshot) and exit; in a
    /// fleet run FILE is a directory that gets one `<context>.yaml` per cluster
    #[arg(long, value_name = "FILE")]
    pub dump_snapshot: Option<PathBuf>,
    /// Show every finding, passing ones too (a fleet run shows only what is not ok)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Only what Istio runs in each context (revisions, versions, tags, proxies): what
    /// `kubectl mesh version --context …` shows
    #[arg(long, hide = true)]
    pub mesh_versions: bool,
    #[command(flatten)]
    pub kube: KubeFlags,
    #[command(flatten)]
    pub snapshot: SnapshotFlags,
    #[command(flatten)]
    pub release: ReleaseFlags,
    #[command(flatten)]
    pub output: OutputFlags,
    #[command(flatten)]
    pub fleet: FleetFlags,
}

/// Which findings fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Errors only
    Error,
    /// Warnings and errors
    Warning,
}
