//! The precheck flow: target from flags → access reviews to ask → snapshot (cluster or file)
//! → inventory → catalogue → output → exit code.

use anyhow::Context as _;
use mesh_common::{
    ambient::{PlannedAgent, planned_agents},
    checks::{self, Context, ObjectKind, Outcome, Target},
    cli::OutputFormat,
    cluster::{self, FetchOptions},
    exit::{ExitStatus, MeshError},
    inventory::Inventory,
    manifest::Manifest,
    output::{self, Printer},
    snapshot::ClusterSnapshot,
    version::IstioVersion,
};

use crate::{
    args::{Args, FailOn},
    report,
};

/// What the flags ask about, before the cluster is read.
pub(crate) struct Wanted {
    pub(crate) version: Option<IstioVersion>,
    pub(crate) revision: Option<String>,
    pub(crate) objects: Vec<ObjectKind>,
    /// The istio-cni and ztunnel a manifest applies (`-f` only).
    pub(crate) agents: Option<Vec<PlannedAgent>>,
    /// The images a manifest pulls (`-f` only).
    pub(crate) images: Vec<String>,
    /// Whether the target moves istiod: a component manifest (istio-cni, ztunnel or gateways
    /// alone) does not, and is judged beside the installed istiod of its revision.
    pub(crate) istiod: bool,
}

pub(crate) fn wanted(args: &Args) -> Result<Wanted, MeshError> {
    if let Some(path) = &args.manifest {
        let text = mesh_common::input::read_text(path, "manifest")?;
        let m = Manifest::parse(&text).map_err(|e| {
            MeshError::usage(
                anyhow::Error::new(e).context(format!("cannot use manifest `{}`", path.display())),
            )
            .hint("generate it with `istioctl manifest generate` or `helm template`")
        })?;
        let objects = m.object_kinds();
        return Ok(Wanted {
            agents: Some(planned_agents(&m.objects, &args.kube.istio_namespace)),
            images: m.images(),
            revision: args.revision.clone().or(Some(m.revision)),
            version: m.version,
            istiod: m.istiod,
            objects,
        });
    }
    let version = args
        .target_version
        .as_deref()
        .map(IstioVersion::parse_release)
        .transpose()
        .map_err(|e| {
            MeshError::usage(e).hint(
                "pass a released version like 1.30.3 (release candidates only of .0: 1.31.0-rc.1)",
            )
        })?;
    if version.is_none() && (args.canary || args.revision.is_some()) {
        return Err(
            MeshError::usage(anyhow::anyhow!("--canary and --revision need a target"))
                .hint("add --target-version VERSION or -f MANIFEST"),
        );
    }
    Ok(Wanted {
        version,
        revision: args.revision.clone(),
        objects: Vec::new(),
        agents: None,
        images: Vec::new(),
        istiod: true,
    })
}

/// Runs precheck and returns the exit status.
pub async fn run(args: Args) -> Result<ExitStatus, MeshError> {
    if args.fleet.is_fleet() || args.mesh_versions {
        return crate::fleet::run(args).await;
    }
    let want = wanted(&args)?;
    let loaded = args.release.load()?;
    let mut printer = Printer::stdio(&args.output);
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access: checks::required_access(&want.objects, &args.kube.istio_namespace),
        skip: Vec::new(),
        read_remote_secrets: true,
    };
    printer.progress("reading cluster state...")?;
    let source = args.snapshot.source(&args.kube)?;
    let (snap, conn) = cluster::load(&source, &opts).await?;
    if let Some(path) = &args.dump_snapshot {
        return dump(snap, conn.as_ref(), path, &mut printer).await;
    }
    let (snap, inv) = scope(snap, args.namespace.as_deref())?;
    let installed = want
        .revision
        .as_deref()
        .and_then(|r| inv.revision_version(r))
        .map(IstioVersion::without_variant);
    // A component manifest: its own version, shown beside the istiod that stays.
    let components = (!want.istiod).then(|| (want.version.clone(), installed.is_some()));
    let version = if want.istiod {
        want.version
    } else {
        installed.or(want.version)
    };
    let target = version.map(|v| Target {
        agents: want.agents,
        images: want.images,
        ..Target::resolve(&inv, v, want.revision, args.canary)
    });
    let ctx = Context {
        snap: &snap,
        inv: &inv,
        target: target.as_ref(),
        canary_requested: args.canary,
        knowledge: loaded.knowledge(),
    };
    let findings = checks::run_all(&ctx);
    let blocked = findings.iter().any(|f| blocks(args.fail_on, f));
    match printer.format {
        OutputFormat::Table => {
            let color = printer.color();
            let mut text = format!(
                "Cluster: {} (Kubernetes {})\n\n",
                snap.origin,
                kube_text(&snap)
            );
            text.push_str(&output::inventory_tables(&inv, color));
            text.push_str(&output::ambient_tables(&inv.ambient, color));
            match (&target, &components) {
                (Some(t), Some((v, has_istiod))) => {
                    let v = v
                        .as_ref()
                        .map_or("no Istio image".to_owned(), |v| format!("Istio {v}"));
                    text.push_str(&if *has_istiod {
                        format!("\nTarget: a manifest without istiod ({v}) for revision `{}`, judged beside its istiod {}, which stays\n", t.revision, t.version)
                    } else {
                        format!("\nTarget: a manifest without istiod ({v}) for revision `{}`, which has no istiod: install istiod first (kubectl mesh upgrade -f <a manifest with istiod>)\n", t.revision)
                    });
                }
                (Some(t), None) => text.push_str(&format!(
                    "\nTarget: Istio {} as revision `{}` ({})\n",
                    t.version, t.revision, t.mode
                )),
                (None, _) => {}
            }
            text.push('\n');
            text.push_str(&output::findings(&findings, color));
            text.push_str(&verdict(blocked, target.is_some()));
            printer.data(&text)?;
        }
        _ => printer.structured(&report::Report::new(
            &snap,
            &inv,
            target.as_ref(),
            &findings,
            !blocked,
        ))?,
    }
    Ok(if blocked {
        ExitStatus::Blocked
    } else {
        ExitStatus::Success
    })
}

/// Whether a finding is at or above `--fail-on`.
pub(crate) fn blocks(fail_on: FailOn, f: &mesh_common::checks::Finding) -> bool {
    match fail_on {
        FailOn::Error => f.result == Outcome::Error,
        FailOn::Warning => matches!(f.result, Outcome::Error | Outcome::Warning),
    }
}

/// `--dump-snapshot`: what precheck read, plus what a plan from the file compares besides (the
/// kinds of an Istio manifest, kept whole), written to `path`.
async fn dump(
    mut snap: ClusterSnapshot,
    conn: Option<&cluster::Connection>,
    path: &std::path::Path,
    printer: &mut Printer,
) -> Result<ExitStatus, MeshError> {
    if let Some(conn) = conn {
        cluster::fetch_whole(conn, &mut snap).await?;
    }
    let text = snap
        .to_yaml()
        .context("cannot serialise the snapshot")
        .map_err(MeshError::failed)?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write `{}`", path.display()))
        .map_err(|e| MeshError::usage(e).hint("pass a writable path to --dump-snapshot"))?;
    printer.note(&format!(
        "snapshot of {} written to {}",
        snap.origin,
        path.display()
    ))?;
    Ok(ExitStatus::Success)
}

/// Keeps only one namespace's namespace-level data (`-n`). The inventory is derived from the
/// whole cluster first, so revisions and tags are still seen in full.
fn scope(
    mut snap: ClusterSnapshot,
    ns: Option<&str>,
) -> Result<(ClusterSnapshot, Inventory), MeshError> {
    let mut inv = Inventory::from_snapshot(&snap);
    let Some(ns) = ns else { return Ok((snap, inv)) };
    if snap
        .gap(mesh_common::snapshot::Source::Namespaces)
        .is_none()
        && snap.namespace(ns).is_none()
    {
        return Err(MeshError::usage(anyhow::anyhow!(
            "namespace `{ns}` does not exist in {}",
            snap.origin
        ))
        .hint("check the name with `kubectl get namespaces`"));
    }
    inv.namespaces.retain(|n| n.name == ns);
    inv.proxies.retain(|p| p.namespace == ns);
    inv.ambient.namespaces.retain(|n| n.name == ns);
    inv.ambient.waypoints.retain(|w| w.namespace == ns);
    snap.pods.retain(|p| p.namespace() == ns);
    snap.envoy_filters
        .retain(|e| e.metadata.namespace.as_deref() == Some(ns));
    Ok((snap, inv))
}

pub(crate) fn kube_text(snap: &ClusterSnapshot) -> String {
    snap.kube_version
        .as_ref()
        .map_or_else(|| "version unknown".into(), ToString::to_string)
}

fn verdict(blocked: bool, has_target: bool) -> String {
    match (blocked, has_target) {
        (true, true) => "Not safe to upgrade: fix the findings above (exit 1).\n".into(),
        (true, false) => "The mesh has problems: see the findings above (exit 1).\n".into(),
        (false, true) => "Safe to upgrade: no blocking findings.\n".into(),
        (false, false) => "No blocking findings.\n".into(),
    }
}
