//! `kubectl mesh precheck` over a fleet: several `--context`s, `--all-contexts`,
//! `--contexts-from FILE` or several `--snapshot` files. Every cluster is read (at most
//! `--parallel` at once) and judged as a single precheck would judge it; then the checks across
//! the clusters that share a mesh run, and one fleet table, then each cluster's findings, are
//! printed (or one `kubectl-mesh.dev/precheck-fleet/v1` document). `--mesh-versions` (what
//! `kubectl mesh version --context …` runs) shows only what Istio runs in each context.
//!
//! Exit status: the worst of the clusters — 3 when a cluster could not be read (unless
//! `--allow-unreachable`), else 1 when a cluster or a cross-cluster finding is at or above
//! `--fail-on`, else 0.

mod json;
mod judge;
mod show;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mesh_common::{
    checks::{self, Category, Finding},
    cli::{OutputFormat, context_list},
    cluster::{
        self, FetchOptions,
        fleet::{ClusterRead, Failure, FleetRead, read_contexts},
    },
    exit::{ExitStatus, MeshError},
    fleet::{Member, check, plan::Want},
    output::Printer,
    snapshot::{ClusterSnapshot, Source},
};

use crate::{args::Args, run::blocks};
pub use judge::{Ask, Judged};

/// What `kubectl mesh version` never reads: it shows revisions, tags and proxies.
const VERSION_SKIPS: [Source; 5] = [
    Source::EndpointSlices,
    Source::Crds,
    Source::Pdbs,
    Source::EnvoyFilters,
    Source::ValidatingWebhooks,
];

/// Runs precheck over a fleet.
pub async fn run(args: Args) -> Result<ExitStatus, MeshError> {
    refuse_single_cluster_flags(&args)?;
    let want = crate::run::wanted(&args)?;
    if !want.istiod {
        return Err(MeshError::usage(anyhow::anyhow!(
            "the manifest has no istiod (istio-cni, ztunnel or gateways alone): it is judged beside each cluster's own istiod, which a fleet run does not do"
        ))
        .hint("run `kubectl mesh precheck -f FILE --context CLUSTER` for each cluster"));
    }
    let mut printer = Printer::stdio(&args.output);
    let ask = Ask {
        want: want.version.clone().map(|version| Want {
            version,
            revision: want.revision.clone(),
            canary: args.canary,
            agents: want.agents.clone(),
            images: want.images.clone(),
        }),
        releases: std::sync::Arc::new(args.release.load()?),
        fail_on: args.fail_on,
        report: printer.format != OutputFormat::Table,
        row_only: args.mesh_versions,
    };
    if let Some(dir) = &args.dump_snapshot {
        return dump(&args, dir, &mut printer).await;
    }
    let access = checks::required_access(&want.objects, &args.kube.istio_namespace);
    let reads = read(&args, access, ask.clone(), &mut printer).await?;
    let unread = reads.iter().filter(|r| r.result.is_err()).count();
    if args.mesh_versions {
        show::versions(&mut printer, &reads)?;
        return Ok(unread_status(unread, args.fleet.allow_unreachable));
    }
    let (members, aliases) = members(&reads);
    let mut fleet = check(&members, want.version.as_ref());
    fleet.findings.splice(0..0, aliases);
    let status = status(&args, &reads, &fleet.findings);
    let view = show::Fleet {
        reads: &reads,
        fleet: &fleet,
        ask: &ask,
        verbose: args.verbose,
        status,
    };
    match printer.format {
        OutputFormat::Table => {
            let text = show::render(&view, printer.color());
            printer.data(&text)?;
        }
        _ => printer.structured(&json::Report::new(&view))?,
    }
    Ok(status)
}

/// The clusters read, each API server once (two contexts of one cluster — another user,
/// another namespace — are one member of a mesh, not two clusters sharing a name), and a note
/// for each context counted as another's.
fn members(reads: &[ClusterRead<Judged>]) -> (Vec<Member>, Vec<Finding>) {
    let mut members: Vec<Member> = Vec::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut notes = Vec::new();
    for r in reads {
        let Ok(j) = &r.result else { continue };
        if let Some(server) = r.server.as_deref() {
            if let Some((first, _)) = seen.iter().find(|(_, s)| *s == server) {
                notes.push(Finding::ok(
                    "fleet.meshes",
                    Category::MultiCluster,
                    format!("`{}` reaches the same API server as `{first}` ({server}): judged once across clusters", r.name),
                ));
                continue;
            }
            seen.push((&r.name, server));
        }
        members.push(Member {
            name: r.name.clone(),
            facts: j.facts.clone(),
        });
    }
    (members, notes)
}

/// Flags that pick one cluster have no meaning for many.
fn refuse_single_cluster_flags(args: &Args) -> Result<(), MeshError> {
    let one = [
        ("--cluster", args.kube.cluster.is_some()),
        ("--user", args.kube.user.is_some()),
        ("-n/--namespace", args.namespace.is_some()),
    ];
    if let Some((flag, _)) = one.iter().find(|(_, set)| *set) {
        return Err(MeshError::usage(anyhow::anyhow!(
            "{flag} picks one cluster's part and cannot be used with several clusters"
        ))
        .hint("name the clusters by context (`--context A --context B`), or run precheck on one context"));
    }
    if !args.fleet.snapshots.is_empty()
        && (!args.fleet.contexts.is_empty()
            || args.fleet.all_contexts
            || args.fleet.contexts_from.is_some())
    {
        return Err(MeshError::usage(anyhow::anyhow!(
            "a fleet is read from contexts or from snapshot files, not both"
        ))
        .hint("dump the live clusters first: `kubectl mesh precheck --all-contexts --dump-snapshot DIR`"));
    }
    Ok(())
}

/// The contexts to read: `--all-contexts`, `--contexts-from`, the `--context`s, or the
/// current context.
fn contexts(args: &Args) -> Result<Vec<String>, MeshError> {
    let base = args.kube.connect_options();
    let f = &args.fleet;
    let ways = [
        f.all_contexts,
        f.contexts_from.is_some(),
        !f.contexts.is_empty(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        return Err(MeshError::usage(anyhow::anyhow!(
            "--all-contexts, --contexts-from and --context each name the clusters: use one"
        ))
        .hint("list the contexts in one file for --contexts-from, or repeat --context"));
    }
    let names = if f.all_contexts {
        cluster::fleet::context_names(&base)?
    } else if let Some(path) = &f.contexts_from {
        let text = mesh_common::input::read_text(path, "contexts file")?;
        context_list(&text)
    } else if f.contexts.is_empty() {
        let kc = cluster::load_kubeconfig(&base)?;
        vec![kc.current_context.ok_or(cluster::Error::NoContext)?]
    } else {
        f.contexts.clone()
    };
    let mut names = names;
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    if names.is_empty() {
        return Err(MeshError::usage(anyhow::anyhow!("no context to read"))
            .hint("name one per line in the --contexts-from file, or check `kubectl config get-contexts`"));
    }
    cluster::fleet::check_contexts(&base, &names)?;
    Ok(names)
}

async fn read(
    args: &Args,
    access: Vec<checks::AccessRequest>,
    ask: Ask,
    printer: &mut Printer,
) -> Result<Vec<ClusterRead<Judged>>, MeshError> {
    if !args.fleet.snapshots.is_empty() {
        return read_files(args, &ask);
    }
    let names = contexts(args)?;
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access: if args.mesh_versions {
            Vec::new()
        } else {
            access
        },
        skip: if args.mesh_versions {
            VERSION_SKIPS.to_vec()
        } else {
            Vec::new()
        },
        read_remote_secrets: !args.mesh_versions,
    };
    printer.progress(&format!("reading {} cluster(s)...", names.len()))?;
    let how = FleetRead {
        fetch: opts,
        parallel: usize::from(args.fleet.parallel),
        whole: false,
    };
    let base = args.kube.connect_options();
    Ok(read_contexts(&base, &names, &how, move |_, snap| judge::judge(&ask, snap)).await)
}

/// Snapshot files, one at a time, each named by the context it records or its file name.
fn read_files(args: &Args, ask: &Ask) -> Result<Vec<ClusterRead<Judged>>, MeshError> {
    let mut out: Vec<ClusterRead<Judged>> = Vec::new();
    for path in &args.fleet.snapshots {
        let snap = read_file(args, path)?;
        let mut name = snap.context.clone().unwrap_or_else(|| stem(path));
        if out.iter().any(|r| r.name == name) {
            name = format!("{name} ({})", path.display());
        }
        out.push(ClusterRead {
            name,
            server: None,
            result: Ok(judge::judge(ask, snap)),
        });
    }
    Ok(out)
}

fn read_file(args: &Args, path: &Path) -> Result<ClusterSnapshot, MeshError> {
    let text = mesh_common::input::read_text(path, "snapshot")?;
    Ok(cluster::snapshot_from_text(
        path,
        &text,
        args.snapshot.kube_version.as_deref(),
        &args.kube.istio_namespace,
    )?)
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// 3 when a cluster was not read (unless allowed), else 1 when anything blocks, else 0.
fn status(args: &Args, reads: &[ClusterRead<Judged>], fleet: &[Finding]) -> ExitStatus {
    let unread = reads.iter().filter(|r| r.result.is_err()).count();
    if let ExitStatus::Failed = unread_status(unread, args.fleet.allow_unreachable) {
        return ExitStatus::Failed;
    }
    let blocked = reads
        .iter()
        .any(|r| r.result.as_ref().is_ok_and(|j| j.blocked))
        || fleet.iter().any(|f| blocks(args.fail_on, f));
    if blocked {
        ExitStatus::Blocked
    } else {
        ExitStatus::Success
    }
}

fn unread_status(unread: usize, allowed: bool) -> ExitStatus {
    if unread > 0 && !allowed {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    }
}

/// `--dump-snapshot DIR` in a fleet run: one `<context>.yaml` per cluster (no Secret data, the
/// context recorded in the file), then exit.
async fn dump(args: &Args, dir: &Path, printer: &mut Printer) -> Result<ExitStatus, MeshError> {
    if !args.fleet.snapshots.is_empty() {
        return Err(MeshError::usage(anyhow::anyhow!(
            "--dump-snapshot reads live clusters; the snapshot files are already dumps"
        ))
        .hint("name the clusters with --context, --all-contexts or --contexts-from"));
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory `{}`", dir.display()))
        .map_err(|e| MeshError::usage(e).hint("pass a writable directory to --dump-snapshot"))?;
    let names = contexts(args)?;
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access: Vec::new(),
        skip: Vec::new(),
        read_remote_secrets: true,
    };
    let target = dir.to_owned();
    let how = FleetRead {
        fetch: opts,
        parallel: usize::from(args.fleet.parallel),
        whole: true,
    };
    let writes = read_contexts(
        &args.kube.connect_options(),
        &names,
        &how,
        move |name, snap| write_dump(&target, name, &snap),
    )
    .await;
    let mut failed = 0;
    for w in &writes {
        let line = match &w.result {
            Ok(Ok(path)) => format!("snapshot of `{}` written to {}", w.name, path.display()),
            Ok(Err(e)) => format!("warning: snapshot of `{}` not written: {e}", w.name),
            Err(f) => format!("warning: `{}` not read: {}: {}", w.name, f.kind, f.message),
        };
        failed += usize::from(!matches!(w.result, Ok(Ok(_))));
        printer.note(&line)?;
    }
    Ok(unread_status(failed, args.fleet.allow_unreachable))
}

fn write_dump(dir: &Path, name: &str, snap: &ClusterSnapshot) -> Result<PathBuf, String> {
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file}.yaml"));
    let text = snap.to_yaml().map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}

/// A failure as the table shows it: kind and message.
pub fn failure_text(f: &Failure) -> String {
    format!("{}: {}", f.kind, f.message)
}
