//! `dataplane`: relabel namespaces onto a revision or tag (when asked) and restart the
//! workloads whose pods run another proxy, batch by batch, each batch waited on until its new
//! pods are ready with the expected proxy. The first failure stops the run (no automatic
//! rollback: the namespace labels stay as planned, `rollback` reverts them) and the report says
//! which workloads are done, which failed and which were not touched. A re-run continues where
//! it stopped: current workloads are skipped.

use mesh_common::{
    carry::{Carried, How, carry_out},
    cli::OutputFormat,
    cluster::{Execution, OpStatus},
    exit::{ExitStatus, MeshError},
    output::Printer,
    plan::dataplane::{self, DataplanePlan},
};
use serde::Serialize;

use crate::{
    args::{Args, DataplaneArgs},
    load, show,
};

/// Schema of the JSON/YAML report.
pub const SCHEMA: &str = "kubectl-mesh.dev/dataplane/v1";

/// What `-o json|yaml` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    schema_version: &'static str,
    success: bool,
    dry_run: bool,
    source: &'a str,
    #[serde(flatten)]
    plan: &'a DataplanePlan,
    done: Vec<String>,
    failed: Vec<String>,
    untouched: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `kubectl mesh upgrade dataplane`.
pub async fn run(args: &Args, d: &DataplaneArgs) -> Result<ExitStatus, MeshError> {
    let mut printer = Printer::stdio(&args.output);
    if args.snapshot.snapshot.is_some() && !d.dry_run {
        return Err(
            MeshError::usage(anyhow::anyhow!("--snapshot cannot change a cluster"))
                .hint("add --dry-run to see the plan against the snapshot, or drop --snapshot"),
        );
    }
    let loaded = load::load(args, Vec::new(), &mut printer).await?;
    let req = dataplane::Request {
        namespaces: d.namespaces.clone(),
        all: d.all,
        to_revision: d.to_revision.clone(),
        batch: usize::try_from(d.batch).unwrap_or(1),
        waypoints: d.waypoints.clone(),
    };
    let plan = dataplane::plan(&loaded.snap, &loaded.inv, &req)?;
    let origin = loaded.snap.origin.clone();
    if printer.format == OutputFormat::Table {
        printer.data(&show::dataplane(&plan, &origin, printer.color()))?;
    }
    let changes = plan.changes();
    if changes.is_empty() {
        printer
            .note("nothing to do: every workload in scope runs the proxy its namespace selects")?;
        report(&mut printer, &plan, &origin, d.dry_run, None, None)?;
        return Ok(ExitStatus::Success);
    }
    let how = How {
        dry_run: d.dry_run,
        yes: d.yes,
        question: format!(
            "Relabel {} namespace(s), move {} waypoint(s) and restart {} workload(s)?",
            plan.relabel.len(),
            plan.waypoints.len(),
            plan.restart.len()
        ),
        operation: "upgrade-dataplane".to_owned(),
        command: "upgrade dataplane",
        flags: &d.change,
        rollback: false,
        timeout: d.timeout,
    };
    match carry_out(loaded.conn.as_ref(), &changes, &how, &mut printer).await {
        Ok(Carried::Done(done)) => {
            if printer.format == OutputFormat::Table {
                printer.data(&format!(
                    "\n✔ {} workload(s) restarted onto their new proxy; {} namespace(s) relabelled; {} waypoint(s) moved\n",
                    plan.restart.len(),
                    plan.relabel.len(),
                    plan.waypoints.len()
                ))?;
            }
            report(&mut printer, &plan, &origin, false, Some(&done), None)?;
            Ok(ExitStatus::Success)
        }
        Ok(_) => {
            report(&mut printer, &plan, &origin, true, None, None)?;
            Ok(ExitStatus::Success)
        }
        Err(failed) => {
            if let Some(e) = &failed.execution
                && printer.format == OutputFormat::Table
            {
                printer.note(&progress(e))?;
            }
            let text = failed.error.error.to_string();
            report(
                &mut printer,
                &plan,
                &origin,
                false,
                failed.execution.as_ref(),
                Some(text),
            )?;
            Err(failed.into())
        }
    }
}

/// Workloads and waypoint Gateways by outcome: (done, failed, not touched).
fn outcome(e: &Execution) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut untouched = Vec::new();
    for (i, (r, verb, s)) in e.ops.iter().enumerate() {
        // Workload restarts and waypoint moves (their Gateway's label, then the wait).
        if *verb != "restart" && r.kind != "Gateway" {
            continue;
        }
        match s {
            // Restarted, but its batch did not become ready: failed.
            OpStatus::Done if e.in_failed_phase(i) => failed.push(r.to_string()),
            OpStatus::Done | OpStatus::Skipped(_) => done.push(r.to_string()),
            OpStatus::Failed(_) => failed.push(r.to_string()),
            OpStatus::Pending => untouched.push(r.to_string()),
        }
    }
    (done, failed, untouched)
}

fn progress(e: &Execution) -> String {
    let (done, failed, untouched) = outcome(e);
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "restarted: {}\nfailed (its batch did not become ready): {}\nnot touched: {}\nfix the failure, then run the same command again: finished workloads are skipped",
        list(&done),
        list(&failed),
        list(&untouched)
    )
}

fn report(
    printer: &mut Printer,
    plan: &DataplanePlan,
    origin: &str,
    dry_run: bool,
    execution: Option<&Execution>,
    error: Option<String>,
) -> Result<(), MeshError> {
    if printer.format == OutputFormat::Table {
        return Ok(());
    }
    let (done, failed, untouched) = execution.map(outcome).unwrap_or_default();
    printer.structured(&Report {
        schema_version: SCHEMA,
        success: error.is_none(),
        dry_run,
        source: origin,
        plan,
        done,
        failed,
        untouched,
        backup: execution.map(|e| e.backup.display().to_string()),
        error,
    })?;
    Ok(())
}
