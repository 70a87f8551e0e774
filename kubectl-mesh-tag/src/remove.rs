//! `remove`: plan → show who still uses the tag → refuse while it is used (unless --yes) →
//! (dry run) → confirm → validate, back up, delete.

use mesh_common::{
    carry::{How, carry_out},
    cli::OutputFormat,
    exit::{ExitStatus, MeshError},
    output::Printer,
    plan::tag::{RemovePlan, plan_remove},
};
use serde::Serialize;

use crate::{args::RemoveArgs, load::Loaded, set::TIMEOUT, show};

/// What `remove -o json|yaml` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoveReport<'a> {
    schema_version: u32,
    plan: &'a RemovePlan,
    dry_run: bool,
    removed: bool,
    backup: Option<String>,
}

fn report(
    printer: &mut Printer,
    plan: &RemovePlan,
    dry_run: bool,
    backup: Option<String>,
) -> Result<(), MeshError> {
    if printer.format == OutputFormat::Table {
        return Ok(());
    }
    let removed = backup.is_some();
    printer.structured(&RemoveReport {
        schema_version: 1,
        plan,
        dry_run,
        removed,
        backup,
    })?;
    Ok(())
}

fn users(plan: &RemovePlan) -> String {
    let names: Vec<&str> = plan
        .namespaces
        .iter()
        .map(|n| n.namespace.as_str())
        .collect();
    format!("{} namespace(s) use it ({})", names.len(), names.join(", "))
}

/// `remove`.
pub async fn remove(
    args: &RemoveArgs,
    loaded: &Loaded,
    printer: &mut Printer,
) -> Result<ExitStatus, MeshError> {
    let plan = plan_remove(&loaded.snap, &loaded.inv, &args.tag)?;
    if printer.format == OutputFormat::Table {
        printer.data(&show::remove_plan(&plan, printer.color()))?;
    }
    if plan.in_use() && !args.change.yes {
        report(printer, &plan, args.change.dry_run, None)?;
        return Err(MeshError::blocked(anyhow::anyhow!(
            "refusing to remove tag `{}` while {}; nothing was changed",
            plan.tag,
            users(&plan)
        ))
        .hint(format!(
            "relabel them (`istio.io/rev=<revision>`) first, or pass --yes to remove `{}` anyway",
            plan.tag
        )));
    }
    let how = How {
        question: format!("Remove tag `{}`?", plan.tag),
        operation: format!("tag-remove-{}", plan.tag),
        revision: None,
        command: "tag",
        flags: &args.change,
        rollback: true,
        timeout: TIMEOUT,
    };
    let backup = carry_out(loaded.conn.as_ref(), &plan.changes(), &how, printer)
        .await?
        .backup();
    report(printer, &plan, backup.is_none(), backup.clone())?;
    if backup.is_some() && printer.format == OutputFormat::Table {
        printer.data(&format!("\nTag `{}` removed.\n", plan.tag))?;
    }
    Ok(ExitStatus::Success)
}
