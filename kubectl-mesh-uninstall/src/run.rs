//! The uninstall flow: request from flags → snapshot and labelled objects (cluster or file) →
//! plan → show → refuse, or carry out on the change engine (server-side dry run of every
//! delete, confirmation, backup, deletion phase by phase with waits, rollback on failure) →
//! verify no webhook calls a deleted Service → report.

use std::collections::BTreeMap;

use mesh_common::{
    carry::{Carried, How, carry_out},
    cli::OutputFormat,
    cluster::{self, Connection, FetchOptions, OpStatus, StateSource},
    exit::{ExitStatus, MeshError},
    inventory::Inventory,
    output::{Printer, Style},
    plan::uninstall::{
        self, CHART_RBAC_SELECTOR, Candidate, INSTALLED_SELECTOR, Input, LISTED, Target,
        UninstallPlan, rbac_kinds, webhooks_calling,
    },
    snapshot::ClusterSnapshot,
};

use crate::{args::Args, report};

/// What was read: the snapshot, the labelled objects and, for a live cluster, the connection.
struct Loaded {
    snap: ClusterSnapshot,
    listed: Vec<Candidate>,
    conn: Option<Connection>,
}

async fn load(args: &Args) -> Result<Loaded, MeshError> {
    let source = args.snapshot.source(&args.kube)?;
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access: Vec::new(),
        skip: Vec::new(),
        read_remote_secrets: false,
    };
    let (snap, conn) = cluster::load(&source, &opts).await?;
    let listed = match (&source, &conn) {
        (StateSource::Cluster(_), Some(conn)) => {
            let rbac_kinds = rbac_kinds();
            let (installed, rbac) = tokio::join!(
                cluster::list_labelled(conn, &LISTED, &[INSTALLED_SELECTOR]),
                cluster::list_labelled(conn, &rbac_kinds, &[CHART_RBAC_SELECTOR]),
            );
            installed?.iter().chain(&rbac?).map(Candidate::of).collect()
        }
        _ => snap.others.iter().map(Candidate::of).collect(),
    };
    Ok(Loaded { snap, listed, conn })
}

/// Runs uninstall and returns the exit status.
pub async fn run(args: Args) -> Result<ExitStatus, MeshError> {
    let req = args.request()?;
    let mut printer = Printer::stdio(&args.output);
    printer.progress("reading cluster state...")?;
    let loaded = load(&args).await?;
    let inv = Inventory::from_snapshot(&loaded.snap);
    let listed = match (&req.target, &loaded.conn) {
        (Target::Purge { .. }, Some(conn)) => {
            printer.progress("listing Istio resources...")?;
            cluster::list_resources(conn, &uninstall::istio_crds(&loaded.snap)).await?
        }
        _ => BTreeMap::new(),
    };
    let counts: BTreeMap<String, usize> = listed
        .iter()
        .map(|(crd, rs)| (crd.clone(), rs.len()))
        .collect();
    let resources: Vec<_> = listed.into_values().flatten().collect();
    let input = Input {
        snapshot: &loaded.snap,
        inventory: &inv,
        listed: &loaded.listed,
        crd_counts: &counts,
        resources: &resources,
    };
    let plan = uninstall::plan(&input, &req)?;
    let table = printer.format == OutputFormat::Table;
    if table {
        let text = report::plan_text(&plan, &inv, &loaded.snap.origin, printer.color());
        printer.data(&text)?;
    }
    let mut rep = report::Report::new(&plan, &loaded.snap.origin, args.change.dry_run);
    let result = proceed(
        &args,
        &plan,
        &inv,
        loaded.conn.as_ref(),
        &mut printer,
        &mut rep,
    )
    .await;
    if !table {
        rep.success = result.is_ok();
        printer.structured(&rep)?;
    }
    result
}

async fn proceed(
    args: &Args,
    plan: &UninstallPlan,
    inv: &Inventory,
    conn: Option<&Connection>,
    printer: &mut Printer,
    rep: &mut report::Report<'_>,
) -> Result<ExitStatus, MeshError> {
    let what = report::target_text(plan, inv);
    if plan.refused() {
        return Err(refusal(plan, &what));
    }
    if plan.steps.is_empty() {
        printer.note(&format!("nothing to uninstall for {what}"))?;
        return Ok(ExitStatus::Success);
    }
    let how = How {
        question: question(plan, &what),
        operation: match &plan.target {
            Target::Revision { revision } => format!("uninstall-{revision}"),
            Target::Purge { .. } => "uninstall-purge".to_owned(),
        },
        revision: None,
        command: "uninstall",
        flags: &args.change,
        rollback: !args.rollback.no_rollback,
        timeout: args.wait.timeout,
    };
    let carried = match carry_out(conn, &plan.changes(), &how, printer).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(stopped) = &e.execution {
                rep.backup = Some(stopped.backup.display().to_string());
                rep.deleted = stopped.done().cloned().collect();
                rep.state = Some(e.error.error.to_string());
            }
            return Err(e.into());
        }
    };
    let Carried::Done(done) = carried else {
        return Ok(ExitStatus::Success);
    };
    rep.backup = Some(done.backup.display().to_string());
    rep.deleted = done
        .ops
        .iter()
        .filter(|(_, _, s)| *s == OpStatus::Done)
        .map(|(r, _, _)| r.clone())
        .collect();
    if let Some(conn) = conn {
        // The change is done: a Ctrl-C/SIGTERM from its end on stops the verification, saying so.
        let deleted = rep.deleted.len();
        tokio::select! {
            r = verify(conn, plan) => r?,
            sig = cluster::signals::after(done.signals_seen) => {
                return Err(MeshError::failed(anyhow::anyhow!(
                    "interrupted by {sig} while verifying: the uninstall itself completed ({deleted} objects deleted; backup in {})",
                    done.backup.display()
                ))
                .hint("check that no webhook calls a deleted Service: `kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations`"));
            }
        }
    }
    if printer.format == OutputFormat::Table {
        let done = printer.paint("✔", Style::Ok);
        let text = format!(
            "\n{done} Uninstalled {what}: {} objects deleted\n",
            rep.deleted.len()
        );
        printer.data(&text)?;
    }
    Ok(ExitStatus::Success)
}

/// Checks that no webhook configuration calls a Service the plan deleted (one created after the
/// plan was made would).
async fn verify(conn: &Connection, plan: &UninstallPlan) -> Result<(), MeshError> {
    let services: std::collections::BTreeSet<String> = plan
        .objects()
        .into_iter()
        .filter(|r| r.kind == "Service")
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    if services.is_empty() {
        return Ok(());
    }
    let (mwcs, vwcs) = cluster::webhook_configurations(conn).await.map_err(|e| {
        MeshError::from(e).hint("the objects were deleted; check `kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations`")
    })?;
    let dangling = webhooks_calling(&mwcs, &vwcs, &services);
    if dangling.is_empty() {
        return Ok(());
    }
    Err(MeshError::failed(anyhow::anyhow!(
        "webhook configurations call a deleted Service: {}",
        dangling.join(", ")
    ))
    .hint(
        "they were created after the plan was made; delete them or point them at a running istiod",
    ))
}

fn question(plan: &UninstallPlan, what: &str) -> String {
    let mut q = format!("Delete these {} objects of {what}", plan.steps.len());
    if let Some(crds) = Some(plan.crds.iter().filter(|c| c.deleted).count()).filter(|n| *n > 0) {
        let resources = plan
            .deleted_resources()
            .map_or("all".to_owned(), |n| n.to_string());
        q.push_str(&format!(
            ", including {crds} Istio CRDs and the {resources} Istio resources in them"
        ));
    }
    q.push('?');
    q
}

fn refusal(plan: &UninstallPlan, what: &str) -> MeshError {
    if plan.hard_blockers().next().is_some() {
        return MeshError::blocked(anyhow::anyhow!(
            "refusing to uninstall {what}: nothing was deleted"
        ))
        .hint(
            "resolve the problems marked `--force does not override this` with the commands shown",
        );
    }
    let n = plan.blockers.len();
    let e = MeshError::blocked(anyhow::anyhow!(
        "{what} is still in use ({n} finding(s)): nothing was deleted"
    ));
    if plan.unread.is_empty() {
        return e.hint(
            "move what uses it with the commands shown, or pass --force to uninstall anyway",
        );
    }
    let unread: Vec<&str> = plan.unread.iter().map(|g| g.source.describe()).collect();
    e.hint("move what uses it with the commands shown")
        .hint(format!(
            "what else uses it is not known: {} could not be read (see `Not judged` above)",
            unread.join(", ")
        ))
}
