//! Command-line arguments of `kubectl mesh uninstall`, and their validation into a request.

use clap::Parser;
use mesh_common::{
    cli::{ChangeFlags, KubeFlags, NoRollbackFlag, OutputFlags, SnapshotFlags, TimeoutFlag},
    error::validate_revision,
    exit::MeshError,
    plan::uninstall::{Request, Target},
};

/// Remove an Istio control plane revision safely, or every control plane (--purge).
///
/// Lists every object of the revision (cluster-wide, by label) and refuses while namespaces,
/// tags, running pods or gateways still use it, showing the command that moves each. Then has
/// the API server dry-run every delete, backs the objects up, deletes them webhooks first (so no
/// webhook is left calling a Service that is gone), then workloads, then configuration and
/// RBAC, and waits until they are gone. If anything fails, everything deleted is restored from
/// the backup (unless --no-rollback). Base objects (CRDs, Istio resources) are never touched,
/// except by --purge --include-crds.
///
/// Exit codes: 0 uninstalled (or nothing to do, or a clean --dry-run); 1 refused (still in use,
/// Helm-installed, answered no, no terminal without --yes); 2 bad input; 3 could not complete
/// (the message says what state the cluster is in and where the backup is).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mesh-uninstall",
    bin_name = "kubectl mesh uninstall",
    version,
    mut_arg("dry_run", |a| a.help(
        "Show the plan (checked by the API server when connected) without changing anything"
    )),
    mut_arg("timeout", |a| a.help(
        "How long to wait for the deleted objects of each phase to be gone"
    )),
    mut_arg("no_rollback", |a| a.help(
        "On a failure, stop where it failed instead of restoring what was deleted (run the \
         same command again to finish)"
    ))
)]
pub struct Args {
    /// Revision to uninstall (`default` = the non-revisioned control plane)
    #[arg(
        short = 'r',
        long,
        value_name = "REV",
        required_unless_present = "purge",
        conflicts_with = "purge"
    )]
    pub revision: Option<String>,
    /// Uninstall every control plane, gateway and revision tag (the Istio CRDs and resources
    /// stay unless --include-crds)
    #[arg(long)]
    pub purge: bool,
    /// With --purge: also delete the Istio CRDs — and with them every Istio resource
    /// (VirtualServices, DestinationRules, ...) in the cluster
    #[arg(long, conflicts_with = "revision")]
    pub include_crds: bool,
    #[command(flatten)]
    pub change: ChangeFlags,
    /// Proceed although namespaces, tags, pods or gateways still use it; tags pointing at the
    /// revision are deleted with it. Never overrides a Helm install or a foreign webhook
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wait: TimeoutFlag,
    #[command(flatten)]
    pub rollback: NoRollbackFlag,
    #[command(flatten)]
    pub kube: KubeFlags,
    #[command(flatten)]
    pub snapshot: SnapshotFlags,
    #[command(flatten)]
    pub output: OutputFlags,
}

impl Args {
    /// The validated request.
    pub fn request(&self) -> Result<Request, MeshError> {
        if self.snapshot.snapshot.is_some() && !self.change.dry_run {
            return Err(MeshError::usage(anyhow::anyhow!(
                "--snapshot reads a file, so nothing can be uninstalled from it"
            ))
            .hint("add --dry-run to see the plan for that snapshot"));
        }
        let target = match &self.revision {
            Some(r) => {
                validate_revision(r)?;
                Target::Revision {
                    revision: r.clone(),
                }
            }
            None => Target::Purge {
                include_crds: self.include_crds,
            },
        };
        Ok(Request {
            target,
            force: self.force,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kubectl-mesh-uninstall").chain(args.iter().copied()))
    }

    #[test]
    fn revision_or_purge_is_required_and_exclusive() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--revision", "a", "--purge"]).is_err());
        assert!(parse(&["--include-crds", "-r", "a"]).is_err());
        let a = parse(&["--purge", "--include-crds"]).unwrap();
        assert_eq!(
            a.request().unwrap().target,
            Target::Purge { include_crds: true }
        );
    }

    #[test]
    fn bad_revision_names_and_snapshot_without_dry_run_are_usage_errors() {
        let e = parse(&["-r", "1.29.6"]).unwrap().request().unwrap_err();
        assert_eq!(e.error.to_string(), "`1.29.6` is not a valid revision name");
        assert_eq!(e.status as u8, 2);
        let e = parse(&["-r", "default", "--snapshot", "x.yaml"])
            .unwrap()
            .request()
            .unwrap_err();
        assert_eq!(e.status as u8, 2);
        assert!(
            parse(&["-r", "default", "--snapshot", "x.yaml", "--dry-run"])
                .unwrap()
                .request()
                .is_ok()
        );
    }
}
