//! `set` and `generate`: plan → show the blast radius → refuse on failed checks → (dry run) →
//! confirm → validate, back up, apply.

use std::time::Duration;

use mesh_common::{
    carry::{How, carry_out},
    cli::OutputFormat,
    exit::{ExitStatus, MeshError},
    output::Printer,
    plan::tag::{SetPlan, SetRequest, plan_set},
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    args::{GenerateArgs, SetArgs},
    load::Loaded,
    show,
};

/// How long the removal of a replaced tag object may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What `set -o json|yaml` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SetReport<'a> {
    schema_version: u32,
    plan: &'a SetPlan,
    dry_run: bool,
    applied: bool,
    backup: Option<String>,
}

fn request(args: &SetArgs) -> SetRequest {
    SetRequest {
        tag: args.tag.clone(),
        revision: args.revision.clone(),
        overwrite: args.overwrite,
        webhook_name: args.webhook_name.clone(),
        generate: false,
    }
}

fn report(
    printer: &mut Printer,
    plan: &SetPlan,
    dry_run: bool,
    backup: Option<String>,
) -> Result<(), MeshError> {
    if printer.format == OutputFormat::Table {
        return Ok(());
    }
    let applied = !dry_run && !plan.up_to_date && backup.is_some();
    printer.structured(&SetReport {
        schema_version: 1,
        plan,
        dry_run,
        applied,
        backup,
    })?;
    Ok(())
}

/// `set`.
pub async fn set(
    args: &SetArgs,
    loaded: &Loaded,
    printer: &mut Printer,
) -> Result<ExitStatus, MeshError> {
    let plan = plan_set(&loaded.snap, &loaded.inv, &request(args))?;
    if printer.format == OutputFormat::Table {
        let prev = plan
            .previous_revision
            .as_deref()
            .and_then(|r| loaded.inv.revision_version(r));
        printer.data(&show::set_plan(&plan, prev, printer.color()))?;
    }
    if plan.up_to_date {
        report(printer, &plan, args.change.dry_run, None)?;
        printer.note(&format!(
            "tag `{}` already points at `{}`: nothing to do (pass --overwrite to re-apply its objects)",
            plan.tag, plan.revision
        ))?;
        return Ok(ExitStatus::Success);
    }
    if plan.blocked() && !args.force {
        report(printer, &plan, args.change.dry_run, None)?;
        return Err(MeshError::blocked(anyhow::anyhow!(
            "refusing to set tag `{}`: a check failed",
            plan.tag
        ))
        .hint("fix what the checks above report, or pass --force to proceed anyway"));
    }
    let how = How {
        question: format!("Point tag `{}` at revision `{}`?", plan.tag, plan.revision),
        operation: format!("tag-set-{}", plan.tag),
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
        printer.data(&done(&plan))?;
    }
    Ok(ExitStatus::Success)
}

fn done(plan: &SetPlan) -> String {
    let mut out = format!(
        "\nTag `{}` now points at revision `{}`.\n",
        plan.tag, plan.revision
    );
    let restart: Vec<&str> = plan
        .namespaces
        .iter()
        .filter(|n| n.pods > 0)
        .map(|n| n.namespace.as_str())
        .collect();
    if !restart.is_empty() {
        out.push_str("Restart workloads to move their pods onto it, e.g.:\n");
        for ns in restart {
            out.push_str(&format!("  kubectl rollout restart deployment -n {ns}\n"));
        }
    } else if plan.previous_revision.is_none() {
        out.push_str(&format!(
            "Use it with `kubectl label namespace <NAMESPACE> istio.io/rev={}`.\n",
            plan.tag
        ));
    }
    out
}

/// `generate`: the tag's objects as YAML documents (or a JSON `v1 List`).
pub fn generate(
    args: &GenerateArgs,
    loaded: &Loaded,
    printer: &mut Printer,
) -> Result<ExitStatus, MeshError> {
    let req = SetRequest {
        tag: args.tag.clone(),
        revision: args.revision.clone(),
        overwrite: false,
        webhook_name: args.webhook_name.clone(),
        generate: true,
    };
    let plan = plan_set(&loaded.snap, &loaded.inv, &req)?;
    let objects: Vec<&Value> = plan.generated();
    let text = match printer.format {
        OutputFormat::Json => {
            serde_json::to_string_pretty(
                &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            )
            .map_err(MeshError::output)?
                + "\n"
        }
        OutputFormat::Yaml | OutputFormat::Table => {
            let docs = objects
                .iter()
                .map(serde_saphyr::to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(MeshError::output)?;
            docs.join("---\n")
        }
    };
    printer.data(&text)?;
    for n in &plan.notes {
        printer.note(&format!("note: {n}"))?;
    }
    Ok(ExitStatus::Success)
}
