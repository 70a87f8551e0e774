//! `rollback`: restore a backup — the latest upgrade or dataplane backup of this cluster, or
//! the one named. Refuses a backup taken from another cluster. Puts back every saved object that
//! changed since, removes what the change created (by UID), waits for restored workloads to roll
//! back, and — like every change — dry-runs first, asks, and backs up the current state before
//! touching it, so a rollback can itself be undone.

use std::path::PathBuf;

use mesh_common::{
    carry::{Carried, How, carry_out},
    cli::OutputFormat,
    cluster::{self, Engine, backup::Backup},
    exit::{ExitStatus, MeshError},
    output::Printer,
    plan::rollback::{Restore, RollbackPlan},
};
use serde::Serialize;

use crate::{
    args::{Args, RollbackArgs},
    show,
};

/// Schema of the JSON/YAML report.
pub const SCHEMA: &str = "kubectl-mesh.dev/rollback/v1";

/// Operations whose backups `rollback` picks by default.
const ROLLED_BACK: [&str; 2] = ["upgrade", "upgrade-dataplane"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    schema_version: &'static str,
    success: bool,
    dry_run: bool,
    backup: String,
    #[serde(flatten)]
    plan: &'a RollbackPlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_backup: Option<String>,
}

/// `kubectl mesh upgrade rollback [BACKUP]`.
pub async fn run(args: &Args, r: &RollbackArgs) -> Result<ExitStatus, MeshError> {
    let mut printer = Printer::stdio(&args.output);
    if args.snapshot.snapshot.is_some() {
        return Err(MeshError::usage(anyhow::anyhow!(
            "rollback restores into a cluster; --snapshot cannot be used"
        ))
        .hint("drop --snapshot"));
    }
    let conn = cluster::connect(&args.kube.connect_options()).await?;
    let how = How {
        question: String::new(),
        operation: "upgrade-rollback".to_owned(),
        revision: None,
        command: "upgrade",
        flags: &r.change,
        rollback: true,
        timeout: r.wait.timeout,
    };
    let engine = Engine::new(conn.clone(), how.engine_options());
    let identity = engine.identity().await?;
    let (path, backup) = find(r, &how, &identity)?;
    backup.check_cluster(&path, &identity)?;
    let plan = engine.rollback_plan(&backup, None).await?;
    let shown = path.display().to_string();
    if printer.format == OutputFormat::Table {
        printer.data(&show::rollback(
            &plan,
            &shown,
            &backup.command,
            printer.color(),
        ))?;
    }
    if plan.changes.is_empty() {
        printer.note("nothing to restore: the cluster already matches the backup")?;
        return finish(&mut printer, &plan, shown, r.change.dry_run, None);
    }
    let how = How {
        question: format!(
            "Restore {} object(s) and remove {} from {shown}?",
            restored(&plan),
            removed(&plan)
        ),
        ..how
    };
    let carried = carry_out(Some(&conn), &plan.changes, &how, &mut printer).await?;
    if let Carried::Done(_) = &carried
        && printer.format == OutputFormat::Table
    {
        printer.data(
            "\n✔ rolled back: the saved objects are restored and the created ones removed\n",
        )?;
    }
    finish(
        &mut printer,
        &plan,
        shown,
        r.change.dry_run,
        carried.backup(),
    )
}

fn restored(plan: &RollbackPlan) -> usize {
    plan.steps
        .iter()
        .filter(|s| matches!(s.action, Restore::Restore | Restore::Recreate))
        .count()
}

fn removed(plan: &RollbackPlan) -> usize {
    plan.steps
        .iter()
        .filter(|s| s.action == Restore::Delete)
        .count()
}

fn find(
    r: &RollbackArgs,
    how: &How<'_>,
    identity: &cluster::backup::ClusterIdentity,
) -> Result<(PathBuf, Backup), MeshError> {
    if let Some(p) = &r.backup {
        return Ok((p.clone(), Backup::read(p)?));
    }
    let dir = how.flags.backup_dir();
    Backup::list(&dir, identity)?
        .into_iter()
        .find(|(_, b)| ROLLED_BACK.contains(&b.operation.as_str()))
        .ok_or_else(|| {
            MeshError::usage(anyhow::anyhow!(
                "no upgrade backup of this cluster in `{}`",
                dir.display()
            ))
            .hint(
                "name the backup file (`kubectl mesh upgrade rollback FILE`), or pass --backup-dir",
            )
        })
}

fn finish(
    printer: &mut Printer,
    plan: &RollbackPlan,
    backup: String,
    dry_run: bool,
    new_backup: Option<String>,
) -> Result<ExitStatus, MeshError> {
    if printer.format != OutputFormat::Table {
        printer.structured(&Report {
            schema_version: SCHEMA,
            success: true,
            dry_run,
            backup,
            plan,
            new_backup,
        })?;
    }
    Ok(ExitStatus::Success)
}
