//! Carrying out a planned change, the same way for every command: against a snapshot file only
//! the plan exists; against a cluster the engine dry-runs every operation on the server, then —
//! unless `--dry-run` — confirms, backs up, executes and, on failure, rolls back.

use std::time::Duration;

use crate::{
    change::ChangePlan,
    cli::ChangeFlags,
    cluster::{Checked, Connection, Engine, EngineOptions, Execution},
    exit::MeshError,
    output::Printer,
};

/// How a command wants its plan carried out.
#[derive(Debug, Clone)]
pub struct How<'a> {
    /// The confirmation question.
    pub question: String,
    /// What the change is (`tag-set`, `uninstall`, `upgrade`, `dataplane`).
    pub operation: String,
    /// The revision it is about, when the operation does not name it: the backup file is named
    /// `<date>-<operation>-<revision>.yaml`.
    pub revision: Option<String>,
    /// The plugin command (`tag`, `uninstall`, `upgrade`: the binary's, never a subcommand of
    /// it), for the command line recorded in the backup: its arguments follow as typed.
    pub command: &'static str,
    /// `--dry-run`, `--yes`, `--backup-dir`, `--force-conflicts`.
    pub flags: &'a ChangeFlags,
    /// Restore the backup automatically on failure.
    pub rollback: bool,
    /// Longest each wait may take.
    pub timeout: Duration,
}

impl How<'_> {
    /// The engine's options.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            yes: self.flags.yes,
            force_conflicts: self.flags.force_conflicts,
            rollback: self.rollback,
            backup_dir: self.flags.backup_dir(),
            operation: self.operation.clone(),
            backup_name: match &self.revision {
                Some(rev) => format!("{}-{rev}", self.operation),
                None => self.operation.clone(),
            },
            command: crate::cli::command_line(self.command),
            timeout: self.timeout,
        }
    }
}

/// What happened.
#[derive(Debug)]
pub enum Carried {
    /// `--dry-run` against a snapshot: nothing was checked by a server.
    Snapshot,
    /// `--dry-run` against a cluster: the server accepted every operation.
    DryRun,
    /// The cluster was changed.
    Done(Execution),
}

impl Carried {
    /// The backup file, if the cluster was changed.
    pub fn backup(&self) -> Option<String> {
        match self {
            Self::Done(e) => Some(e.backup.display().to_string()),
            _ => None,
        }
    }
}

/// A change that did not complete, with what it did before it stopped.
#[derive(Debug)]
pub struct NotCarried {
    /// The error to report.
    pub error: MeshError,
    /// What was done, if the change started.
    pub execution: Option<Execution>,
}

impl From<MeshError> for NotCarried {
    fn from(error: MeshError) -> Self {
        Self {
            error,
            execution: None,
        }
    }
}

impl From<crate::cluster::Error> for NotCarried {
    fn from(e: crate::cluster::Error) -> Self {
        MeshError::from(e).into()
    }
}

impl From<std::io::Error> for NotCarried {
    fn from(e: std::io::Error) -> Self {
        MeshError::from(e).into()
    }
}

impl From<NotCarried> for MeshError {
    fn from(n: NotCarried) -> Self {
        n.error
    }
}

/// Server-side dry run of `plan`; shows what the dry run noted (skipped deletes, fields taken
/// over). The checked plan is what [`Ready::carry_out`] takes.
pub async fn check(
    engine: &Engine,
    plan: &ChangePlan,
    printer: &mut Printer,
) -> Result<Checked, MeshError> {
    let checked = engine.check(plan).await?;
    for n in checked.notes() {
        printer.note(&format!("note: {n}"))?;
    }
    Ok(checked)
}

/// A plan after its dry run, before anything changed: what the server said can still shape
/// what is carried out ([`Ready::retain`]), then [`Ready::carry_out`] finishes. Against a
/// snapshot file there is no server: nothing was checked.
pub struct Ready<'a> {
    checked: Option<(Engine, Checked)>,
    how: &'a How<'a>,
}

impl Ready<'_> {
    /// What the API server accepted (none against a snapshot).
    pub fn checked(&self) -> Option<&Checked> {
        self.checked.as_ref().map(|(_, c)| c)
    }

    /// Keeps only the operations `keep` accepts (see [`Checked::retain`]).
    #[must_use]
    pub fn retain(self, keep: impl Fn(&crate::change::Op) -> bool) -> Self {
        Self {
            checked: self.checked.map(|(e, c)| (e, c.retain(keep))),
            how: self.how,
        }
    }

    /// Dry run: says so and stops. Otherwise confirms (`question`), backs up, executes and, on
    /// failure, rolls back, per `how`.
    pub async fn carry_out(
        self,
        question: &str,
        printer: &mut Printer,
    ) -> Result<Carried, NotCarried> {
        let Some((engine, checked)) = self.checked else {
            printer.note(
                "dry run against a snapshot: the plan was not checked by an API server; nothing was changed",
            )?;
            return Ok(Carried::Snapshot);
        };
        if self.how.flags.dry_run {
            printer.note(&format!(
                "dry run: the API server accepted all {} change(s); nothing was changed",
                checked.plan().len()
            ))?;
            return Ok(Carried::DryRun);
        }
        match engine.execute(checked, printer, question).await {
            Ok(done) => Ok(Carried::Done(done)),
            Err(stopped) => Err(NotCarried {
                execution: stopped.execution,
                error: MeshError::from(stopped.error),
            }),
        }
    }
}

/// The dry run of `plan` against the cluster (none against a snapshot file, where only
/// `--dry-run` is allowed): the first half of [`carry_out`], for a command that shapes its plan
/// by what the server said (`upgrade` drops what would not change).
pub async fn check_plan<'a>(
    conn: Option<&Connection>,
    plan: &ChangePlan,
    how: &'a How<'a>,
    printer: &mut Printer,
) -> Result<Ready<'a>, NotCarried> {
    let Some(conn) = conn else {
        if how.flags.dry_run {
            return Ok(Ready { checked: None, how });
        }
        return Err(
            MeshError::usage(anyhow::anyhow!("--snapshot cannot change a cluster"))
                .hint("add --dry-run to see the plan against the snapshot, or drop --snapshot")
                .into(),
        );
    };
    let engine = Engine::new(conn.clone(), how.engine_options());
    let checked = check(&engine, plan, printer).await?;
    Ok(Ready {
        checked: Some((engine, checked)),
        how,
    })
}

/// Dry run, or confirm + back up + execute, per `how`: the one path from a plan to the cluster.
pub async fn carry_out(
    conn: Option<&Connection>,
    plan: &ChangePlan,
    how: &How<'_>,
    printer: &mut Printer,
) -> Result<Carried, NotCarried> {
    check_plan(conn, plan, how, printer)
        .await?
        .carry_out(&how.question, printer)
        .await
}
