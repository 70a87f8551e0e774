//! `remove`: plan → show who still uses the tag → refuse while it is used (unless --yes) →
//! (dry run) → confirm → validate, back up, delete.

use mesh_common::{
    cli::OutputFormat,
    exit::{ExitStatus, MeshError},
    output::Printer,
    plan::tag::{RemovePlan, plan_remove},
};
use serde::Serialize;

use crate::{
    args::RemoveArgs,
    execute::{self, Changes},
    run::{Loaded, plan_error},
    show,
};

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
    let plan = plan_remove(&loaded.snap, &loaded.inv, &args.tag).map_err(plan_error)?;
    if printer.format == OutputFormat::Table {
        printer.data(&show::remove_plan(&plan, printer.color()))?;
    }
    if plan.in_use() && !args.yes {
        report(printer, &plan, args.dry_run, None)?;
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
    let changes = Changes {
        apply: &plan.apply,
        delete: &plan.delete,
    };
    let how = execute::How {
        dry_run: args.dry_run,
        yes: args.yes,
        question: format!("Remove tag `{}`?", plan.tag),
        label: format!("tag-remove-{}", plan.tag),
        backup_dir: args.backup_dir.as_ref(),
    };
    let backup = execute::carry_out(loaded, &changes, &how, printer).await?;
    report(
        printer,
        &plan,
        backup.is_none(),
        backup.as_deref().map(execute::display),
    )?;
    if backup.is_some() && printer.format == OutputFormat::Table {
        printer.data(&format!("\nTag `{}` removed.\n", plan.tag))?;
    }
    Ok(ExitStatus::Success)
}
