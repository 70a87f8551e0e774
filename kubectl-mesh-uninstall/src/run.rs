//! The uninstall flow: request from flags → snapshot and labelled objects (cluster or file) →
//! plan → show → refuse, dry-run or confirm → backup → delete → verify → report.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context as _;
use mesh_common::{
    cli::OutputFormat,
    cluster::{self, Connection, FetchOptions, backup::default_dir, ops::Executor},
    exit::{ExitStatus, MeshError},
    inventory::Inventory,
    output::{Printer, Style},
    plan::uninstall::{self, Candidate, ErrorKind, Input, Target, UninstallError, UninstallPlan},
    snapshot::ClusterSnapshot,
};

use crate::{args::Args, execute, gather, report};

/// What was read: the snapshot, the labelled objects and, for a live cluster, the connection.
struct Loaded {
    snap: ClusterSnapshot,
    listed: Vec<Candidate>,
    conn: Option<Connection>,
}

async fn load(args: &Args) -> Result<Loaded, MeshError> {
    let ns = &args.kube.istio_namespace;
    if let Some(path) = &args.snapshot.snapshot {
        let text = read_file(path)?;
        let mut snap = ClusterSnapshot::from_yaml(&text, ns).map_err(|e| {
            MeshError::usage(
                anyhow::Error::new(e).context(format!("cannot use snapshot `{}`", path.display())),
            )
        })?;
        snap.origin = format!("snapshot {}", path.display());
        let listed = gather::from_file(&text)?;
        return Ok(Loaded {
            snap,
            listed,
            conn: None,
        });
    }
    let opts = FetchOptions {
        istio_namespace: ns.clone(),
        access: Vec::new(),
    };
    let (snap, conn) = cluster::load(&args.kube, &args.snapshot, &opts).await?;
    let conn = conn.context("no connection to the cluster")?;
    let listed = gather::listed(&conn).await?;
    Ok(Loaded {
        snap,
        listed,
        conn: Some(conn),
    })
}

fn read_file(path: &Path) -> Result<String, MeshError> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the snapshot from stdin")
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read snapshot `{}`", path.display()))
    }
    .map_err(|e| {
        MeshError::usage(e)
            .hint("pass a file written by `kubectl get ... -A -o yaml` or `--dump-snapshot`")
    })
}

fn plan_error(e: UninstallError) -> MeshError {
    let hint = e.hint();
    let err = match e.kind() {
        ErrorKind::Usage => MeshError::usage(e),
        ErrorKind::Failed => MeshError::failed(e),
    };
    err.hint(hint)
}

/// Runs uninstall and returns the exit status.
pub async fn run(args: Args) -> Result<ExitStatus, MeshError> {
    let req = args.request()?;
    let mut printer = Printer::stdio(&args.output);
    printer.progress("reading cluster state...")?;
    let loaded = load(&args).await?;
    let inv = Inventory::from_snapshot(&loaded.snap);
    let counts = match (&req.target, &loaded.conn) {
        (Target::Purge { .. }, Some(conn)) => {
            printer.progress("counting Istio resources...")?;
            gather::count_resources(conn, &uninstall::istio_crds(&loaded.snap)).await?
        }
        _ => BTreeMap::new(),
    };
    let input = Input {
        snapshot: &loaded.snap,
        inventory: &inv,
        listed: &loaded.listed,
        crd_counts: &counts,
    };
    let plan = uninstall::plan(&input, &req).map_err(plan_error)?;
    let table = printer.format == OutputFormat::Table;
    if table {
        let text = report::plan_text(&plan, &inv, &loaded.snap.origin, printer.color());
        printer.data(&text)?;
    }
    let mut rep = report::Report::new(&plan, &loaded.snap.origin, args.dry_run);
    let result = proceed(&args, &plan, &inv, loaded.conn, &mut printer, &mut rep).await;
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
    conn: Option<Connection>,
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
    let Some(conn) = conn else {
        printer.note("dry run of a snapshot: nothing was changed")?;
        return Ok(ExitStatus::Success);
    };
    if args.dry_run {
        execute::dry_run(&Executor::new(conn, true), plan).await?;
        printer.note("dry run: the API server accepted every delete; nothing was changed")?;
        return Ok(ExitStatus::Success);
    }
    if !cluster::confirm(&question(plan, &what), args.yes)? {
        return Err(MeshError::blocked(anyhow::anyhow!(
            "cancelled: nothing was deleted"
        )));
    }
    let exec = Executor::new(conn, false);
    let label = match &plan.target {
        Target::Revision { revision } => format!("uninstall-{revision}"),
        Target::Purge { .. } => "uninstall-purge".to_owned(),
    };
    let dir = args.backup_dir.clone().unwrap_or_else(default_dir);
    let backup = execute::backup(&exec, plan, &dir, &label).await?;
    rep.backup = Some(backup.display().to_string());
    printer.note(&format!(
        "backup of {} objects written to {}",
        plan.steps.len(),
        backup.display()
    ))?;
    match execute::delete(&exec, plan, args.timeout, printer, &backup).await {
        Ok(deleted) => rep.deleted = deleted,
        Err(f) => {
            rep.deleted = f.deleted;
            rep.state = Some(f.state);
            return Err(f.error);
        }
    }
    execute::verify(&exec, plan).await?;
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
    MeshError::blocked(anyhow::anyhow!(
        "{what} is still in use ({n} finding(s)): nothing was deleted"
    ))
    .hint("move what uses it with the commands shown, or pass --force to uninstall anyway")
}
