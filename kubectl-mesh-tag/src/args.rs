//! Command-line arguments of `kubectl mesh tag` (plain data; validated by the planners).

use clap::{Args as ClapArgs, Parser, Subcommand};
use mesh_common::cli::{ChangeFlags, KubeFlags, OutputFlags, SnapshotFlags};

/// Istio revision tags: set, list, remove, generate — the objects istioctl makes, with the
/// guardrails it lacks.
///
/// A tag (`prod`) is an alias of a control-plane revision (`1-30-3`): namespaces labelled
/// `istio.io/rev=prod` are injected by whatever revision the tag points at, so moving the tag
/// moves every such namespace on its next restart. `set` shows that blast radius first.
///
/// Exit codes: 0 done; 1 refused (guardrail, answered no, no --yes without a terminal);
/// 2 bad input (unknown revision, bad tag name, missing --overwrite); 3 could not complete.
#[derive(Debug, Parser)]
#[command(name = "kubectl-mesh-tag", bin_name = "kubectl mesh tag", version)]
pub struct Args {
    /// What to do
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub kube: KubeFlags,
    #[command(flatten)]
    pub snapshot: SnapshotFlags,
    #[command(flatten)]
    pub output: OutputFlags,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a tag or move it to another revision (shows the blast radius, then asks)
    #[command(visible_alias = "create")]
    Set(SetArgs),
    /// List tags, the revisions they point at, and the namespaces they inject; also revisions
    /// without a tag and namespaces labelled with a revision directly
    #[command(visible_alias = "show")]
    List,
    /// Remove a tag (refuses while namespaces use it, unless --yes)
    #[command(visible_alias = "delete")]
    Remove(RemoveArgs),
    /// Print the objects of a tag as YAML without applying them
    Generate(GenerateArgs),
}

/// `set`.
#[derive(Debug, ClapArgs)]
#[command(mut_arg("dry_run", |a| a.help(
    "Show the plan and have the API server validate it; change nothing"
)))]
pub struct SetArgs {
    /// Tag name (e.g. prod, canary, default)
    pub tag: String,
    /// Control-plane revision the tag points at (e.g. 1-30-3, default)
    #[arg(short = 'r', long, value_name = "REV")]
    pub revision: String,
    /// Allow moving a tag that already points at another revision
    #[arg(long)]
    pub overwrite: bool,
    /// Proceed despite failed checks (version skew, unready control plane, overlapping injectors)
    #[arg(long)]
    pub force: bool,
    /// Name of the tag's MutatingWebhookConfiguration (default: the existing one, else
    /// istio-revision-tag-<tag>)
    #[arg(long, value_name = "NAME")]
    pub webhook_name: Option<String>,
    #[command(flatten)]
    pub change: ChangeFlags,
}

/// `remove`.
#[derive(Debug, ClapArgs)]
#[command(mut_arg("yes", |a| a.help("Remove even while namespaces use the tag, and do not ask")))]
#[command(mut_arg("dry_run", |a| a.help(
    "Show the plan and have the API server validate it; change nothing"
)))]
pub struct RemoveArgs {
    /// Tag name
    pub tag: String,
    #[command(flatten)]
    pub change: ChangeFlags,
}

/// `generate`.
#[derive(Debug, ClapArgs)]
pub struct GenerateArgs {
    /// Tag name
    pub tag: String,
    /// Control-plane revision the tag points at
    #[arg(short = 'r', long, value_name = "REV")]
    pub revision: String,
    /// Name of the tag's MutatingWebhookConfiguration (default: istio-revision-tag-<tag>)
    #[arg(long, value_name = "NAME")]
    pub webhook_name: Option<String>,
}
