//! Executing a tag plan: server-side dry run of every change, backup of every live object that
//! will be overwritten or deleted, apply in order, delete, wait; on a failure, restore what was
//! touched from the backup and say so.

use std::{path::PathBuf, time::Duration};

use mesh_common::{
    cluster::{
        Connection,
        backup::{Backup, default_dir},
        ops::{Executor, ObjRef},
    },
    exit::MeshError,
    output::Printer,
};
use serde_json::Value;

use crate::run::Loaded;

/// How long deletions may take before the run reports what is left.
const DELETE_TIMEOUT: Duration = Duration::from_secs(60);

/// The changes of a plan, in order: applies first, then deletions.
pub struct Changes<'a> {
    /// Objects to server-side apply.
    pub apply: &'a [Value],
    /// Objects to delete.
    pub delete: &'a [ObjRef],
}

impl Changes<'_> {
    fn count(&self) -> usize {
        self.apply.len() + self.delete.len()
    }

    fn refs(&self) -> Vec<ObjRef> {
        let mut out: Vec<ObjRef> = self.apply.iter().filter_map(ObjRef::of).collect();
        out.extend(self.delete.iter().cloned());
        out.dedup();
        out
    }
}

/// Has the API server validate every change without storing anything.
pub async fn dry_run(conn: &Connection, changes: &Changes<'_>) -> Result<usize, MeshError> {
    let exec = Executor::new(conn.clone(), true);
    let rejected = |e: anyhow::Error| {
        MeshError::failed(e.context("the API server rejected the plan in a dry run"))
            .hint("nothing was changed")
    };
    for obj in changes.apply {
        exec.apply(obj).await.map_err(rejected)?;
    }
    for r in changes.delete {
        exec.delete(r).await.map_err(rejected)?;
    }
    Ok(changes.count())
}

/// Validates, backs up, applies and deletes. Returns the backup's path.
pub async fn execute(
    conn: &Connection,
    changes: &Changes<'_>,
    backup_dir: Option<&PathBuf>,
    label: &str,
    printer: &mut Printer,
) -> Result<PathBuf, MeshError> {
    dry_run(conn, changes).await?;
    let exec = Executor::new(conn.clone(), false);
    let (backup, path) = take_backup(&exec, changes, backup_dir, label).await?;
    printer.note(&format!(
        "backup of {} object(s) written to {}",
        backup.objects.len(),
        path.display()
    ))?;
    if let Err(e) = change(&exec, changes).await {
        return Err(restore(&exec, &backup, &path, e).await);
    }
    let left = exec
        .wait_gone(changes.delete, DELETE_TIMEOUT)
        .await
        .map_err(MeshError::failed)?;
    if !left.is_empty() {
        let names: Vec<String> = left.iter().map(ToString::to_string).collect();
        printer.note(&format!(
            "warning: still being deleted after {DELETE_TIMEOUT:?}: {}",
            names.join(", ")
        ))?;
    }
    Ok(path)
}

async fn take_backup(
    exec: &Executor,
    changes: &Changes<'_>,
    dir: Option<&PathBuf>,
    label: &str,
) -> Result<(Backup, PathBuf), MeshError> {
    let cannot = |e: anyhow::Error| {
        MeshError::failed(e.context("cannot take the backup")).hint("nothing was changed")
    };
    let identity = exec.identity().await.map_err(cannot)?;
    let mut live = Vec::new();
    let mut created = Vec::new();
    for r in changes.refs() {
        match exec.get(&r).await.map_err(cannot)? {
            Some(obj) => live.push(obj),
            None => created.push(r),
        }
    }
    let backup = Backup::new(identity, &crate::run::command_line(), live, created);
    let dir = dir.cloned().unwrap_or_else(default_dir);
    let label = format!("{label}-{}", std::process::id());
    let path = backup.write(&dir, &label).map_err(cannot)?;
    Ok((backup, path))
}

async fn change(exec: &Executor, changes: &Changes<'_>) -> anyhow::Result<()> {
    for obj in changes.apply {
        exec.apply(obj).await?;
    }
    for r in changes.delete {
        exec.delete(r).await?;
    }
    Ok(())
}

/// Puts every backed-up object back and deletes what the run created.
async fn restore(
    exec: &Executor,
    backup: &Backup,
    path: &std::path::Path,
    cause: anyhow::Error,
) -> MeshError {
    let mut failures = Vec::new();
    for obj in &backup.objects {
        if let Err(e) = exec.apply(obj).await {
            failures.push(format!("{e:#}"));
        }
    }
    for r in &backup.created_objects {
        if let Err(e) = exec.delete(r).await {
            failures.push(format!("{e:#}"));
        }
    }
    let state = if failures.is_empty() {
        "the change failed and was rolled back: the cluster is as before".to_owned()
    } else {
        format!(
            "the change failed and the rollback is incomplete ({})",
            failures.join("; ")
        )
    };
    MeshError::failed(cause.context(state)).hint(format!(
        "the objects as they were are in {}",
        path.display()
    ))
}

/// Where a backup went, for JSON output.
pub fn display(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// How a planned change is carried out.
pub struct How<'a> {
    /// Only a dry run: server-side when there is a cluster.
    pub dry_run: bool,
    /// Confirmed in advance (`--yes`).
    pub yes: bool,
    /// The confirmation question.
    pub question: String,
    /// Backup file label.
    pub label: String,
    /// `--backup-dir`.
    pub backup_dir: Option<&'a PathBuf>,
}

/// After the guardrails passed: a dry run, or confirmation, backup and execution. Returns the
/// backup's path when the cluster was changed, `None` for a dry run.
pub async fn carry_out(
    loaded: &Loaded,
    changes: &Changes<'_>,
    how: &How<'_>,
    printer: &mut Printer,
) -> Result<Option<PathBuf>, MeshError> {
    if how.dry_run {
        dry_run_only(loaded, changes, printer).await?;
        return Ok(None);
    }
    let conn = loaded
        .conn
        .as_ref()
        .ok_or_else(|| MeshError::usage(anyhow::anyhow!("no cluster to change")))?;
    confirmed(&how.question, how.yes)?;
    let path = execute(conn, changes, how.backup_dir, &how.label, printer).await?;
    Ok(Some(path))
}

/// Server-side dry run when there is a cluster; with a snapshot the plan is all there is.
async fn dry_run_only(
    loaded: &Loaded,
    changes: &Changes<'_>,
    printer: &mut Printer,
) -> Result<(), MeshError> {
    match &loaded.conn {
        Some(conn) => {
            let n = dry_run(conn, changes).await?;
            printer.note(&format!("dry run: the API server accepted all {n} change(s); nothing was changed"))?;
        }
        None => printer.note("dry run against a snapshot: the plan was not checked by an API server; nothing was changed")?,
    }
    Ok(())
}

/// Reads the answer to a confirmation, mapping "no" to a refusal.
pub fn confirmed(question: &str, yes: bool) -> Result<(), MeshError> {
    if mesh_common::cluster::confirm(question, yes)? {
        Ok(())
    } else {
        Err(MeshError::blocked(anyhow::anyhow!(
            "aborted: nothing was changed"
        )))
    }
}
