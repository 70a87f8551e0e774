//! The change engine: the one way every command changes a cluster (tag, uninstall, upgrade,
//! dataplane, rollback).
//!
//! Always in this order:
//! 1. [`Engine::check`] — a server-side dry run of every operation; any rejection stops here,
//!    before the first change, naming the object and the server's reason. Fields another manager
//!    owns are a conflict unless that manager is the installer the plan takes over from, or
//!    `--force-conflicts`. Only a [`Checked`] plan can be carried out.
//! 2. [`Engine::execute`] — confirmation (asked through the caller's [`Sink`]) or `--yes`; a
//!    backup of every object the plan touches; the phases in order, each followed by its waits,
//!    reported as [`Event`]s to the caller's sink (the engine prints nothing).
//! 3. On failure (a rejected operation, a wait that times out, the API gone, Ctrl-C/SIGTERM):
//!    unless the command asks otherwise, an automatic restore from the backup, and one error
//!    saying what state the cluster is in, what was restored and where the backup is. A second
//!    Ctrl-C stops the rollback and says so.
//!
//! Deletes carry a UID precondition and waits follow UIDs, so an object recreated meanwhile is
//! never deleted or waited on by mistake. Transient API errors are retried ([`super::retry`]).
//!
//! What a failed change did is never assumed: an operation whose answer was lost may have
//! landed, so the objects it touched are compared with the backup before the cluster is called
//! "as before". The UID of every object the change creates is written into the backup file as
//! soon as it is known. The automatic rollback and `kubectl mesh upgrade rollback` share one
//! plan ([`Engine::rollback_plan`]) and one rule: put back what differs from the backup, and
//! delete only objects the backup records as created by the change, by their UID.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use futures::{StreamExt, future::try_join_all, stream};
use mesh_core::{
    change::{ChangePlan, Op, RESTARTED_AT, Verb, Wait},
    error::Classify,
    plan::rollback::{self, Restore, RollbackPlan},
};
use serde_json::{Value, json};

use super::{
    Connection, Error,
    backup::{Backup, ClusterIdentity},
    events::{Confirmation, Event, Sink},
    objects::{Deleted, FIELD_MANAGER, Objects},
    signals,
    wait::wait_for,
};
use crate::ObjRef;

/// Dry runs in flight at once.
const CONCURRENCY: usize = 8;

/// How a command wants its plan carried out.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Confirmed in advance (`--yes`).
    pub yes: bool,
    /// Take fields other managers own (`--force-conflicts`).
    pub force_conflicts: bool,
    /// Restore the backup automatically when the change fails (off: `--no-rollback`, and
    /// `dataplane`, which stops and reports instead).
    pub rollback: bool,
    /// Where backups go.
    pub backup_dir: PathBuf,
    /// What the change is (`tag-set`, `uninstall`, `upgrade`, `dataplane`), recorded in the
    /// backup.
    pub operation: String,
    /// The backup file's name after its date: the operation and, when it has one, the revision
    /// (`upgrade-1-31-1`).
    pub backup_name: String,
    /// The command line, recorded in the backup.
    pub command: String,
    /// Longest each wait may take.
    pub timeout: Duration,
}

/// What the dry run decided for one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Accepted; for an apply, what the object would look like.
    Accepted(Option<Value>),
    /// Accepted by taking over fields of the plan's installer (or with `--force-conflicts`).
    TakesOver(Option<Value>, Vec<String>),
    /// Cannot be dry-run before an earlier phase ran (its namespace or CRD is created by the
    /// plan): the API server validates it when it is applied.
    Deferred(String),
    /// Nothing to do (an object to delete is already gone, or was recreated: left alone).
    Skip(String),
}

/// A plan the API server accepted in a dry run: the only thing [`Engine::execute`] takes.
#[derive(Debug)]
pub struct Checked {
    plan: ChangePlan,
    /// One verdict per operation, in plan order.
    pub verdicts: Vec<Verdict>,
}

impl Checked {
    /// The plan.
    pub fn plan(&self) -> &ChangePlan {
        &self.plan
    }

    /// Keeps only the operations `keep` accepts (all were checked; e.g. an upgrade drops the
    /// applies that change nothing). Waits stay.
    #[must_use]
    pub fn retain(self, keep: impl Fn(&Op) -> bool) -> Self {
        let mut verdicts = self.verdicts.into_iter();
        let mut plan = ChangePlan {
            phases: Vec::new(),
            takeover: self.plan.takeover,
            undo_proxies: self.plan.undo_proxies,
        };
        let mut kept = Vec::new();
        for mut phase in self.plan.phases {
            let ops = std::mem::take(&mut phase.ops);
            for op in ops {
                let v = verdicts.next().unwrap_or(Verdict::Accepted(None));
                if keep(&op) {
                    phase.ops.push(op);
                    kept.push(v);
                }
            }
            if !phase.ops.is_empty() {
                plan.phases.push(phase);
            }
        }
        Self {
            plan,
            verdicts: kept,
        }
    }

    /// What the server says each applied object would become, by reference.
    pub fn applied(&self) -> BTreeMap<ObjRef, Value> {
        self.plan
            .ops()
            .zip(&self.verdicts)
            .filter_map(|(op, v)| match (op, v) {
                (
                    Op::Apply { object },
                    Verdict::Accepted(Some(after)) | Verdict::TakesOver(Some(after), _),
                ) => Some((ObjRef::of(object)?, after.clone())),
                _ => None,
            })
            .collect()
    }

    /// Notes worth showing: skipped deletes and deferred checks one by one, fields taken over
    /// from the installer once per set of managers.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut taken: BTreeMap<&[String], usize> = BTreeMap::new();
        for (op, v) in self.plan.ops().zip(&self.verdicts) {
            let Some(r) = op.target() else { continue };
            match v {
                Verdict::Skip(why) | Verdict::Deferred(why) => out.push(format!("{r}: {why}")),
                Verdict::TakesOver(_, managers) => {
                    *taken.entry(managers.as_slice()).or_default() += 1;
                }
                Verdict::Accepted(_) => {}
            }
        }
        for (managers, n) in taken {
            let names: Vec<String> = managers.iter().map(|m| format!("`{m}`")).collect();
            out.push(format!(
                "{n} object(s): fields owned by {} are taken over (the installer that made them)",
                names.join(", ")
            ));
        }
        out
    }
}

/// How each operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpStatus {
    /// Not started.
    Pending,
    /// Done.
    Done,
    /// Nothing to do.
    Skipped(String),
    /// Failed with this reason.
    Failed(String),
}

/// What an execution did, operation by operation (plan order).
#[derive(Debug, Clone)]
pub struct Execution {
    /// The backup file.
    pub backup: PathBuf,
    /// Status per operation, in plan order.
    pub ops: Vec<(ObjRef, Verb, OpStatus)>,
    /// Index of the phase that failed, if one did.
    pub failed_phase: Option<usize>,
    /// The phase of each operation (same order as `ops`).
    pub phase_of: Vec<usize>,
    /// Objects the change touched: operations done or failed, and the one in flight when it
    /// was interrupted (it may have landed).
    pub touched: BTreeSet<ObjRef>,
    /// Ctrl-C/SIGTERM received when the change ended ([`signals::received`]): a step after it
    /// stops on the next one ([`signals::after`]).
    pub signals_seen: u32,
}

impl Execution {
    /// Whether operation `i` belongs to the phase that failed (its waits, if not itself).
    pub fn in_failed_phase(&self, i: usize) -> bool {
        self.failed_phase.is_some() && self.phase_of.get(i).copied() == self.failed_phase
    }

    /// Operations done.
    pub fn done(&self) -> impl Iterator<Item = &ObjRef> {
        self.ops
            .iter()
            .filter(|(_, _, s)| *s == OpStatus::Done)
            .map(|(r, _, _)| r)
    }
}

/// The failure of an execution, with what it did before.
#[derive(Debug)]
pub struct Stopped {
    /// The error to report (an [`Error::Failed`] naming the state of the cluster).
    pub error: Error,
    /// What was done, if the change started.
    pub execution: Option<Execution>,
}

impl From<Error> for Stopped {
    fn from(error: Error) -> Self {
        Self {
            error,
            execution: None,
        }
    }
}

/// Carries plans out.
pub struct Engine {
    objects: Objects,
    opts: EngineOptions,
}

impl Engine {
    /// An engine over a connection.
    pub fn new(conn: Connection, opts: EngineOptions) -> Self {
        Self {
            objects: Objects::new(conn),
            opts,
        }
    }

    /// The object access it uses.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Server-side dry run of every operation. Any rejection stops before the first change.
    pub async fn check(&self, plan: &ChangePlan) -> Result<Checked, Error> {
        if let Some(secret) = plan
            .targets()
            .into_iter()
            .find(|r| r.kind == "Secret" && r.api_version == "v1")
        {
            return Err(Error::Secret(Box::new(secret)));
        }
        let ops: Vec<&Op> = plan.ops().collect();
        let created_ns = plan.created_namespaces();
        let created_crds = plan.crd_kinds();
        let results: Vec<Result<Verdict, Error>> = stream::iter(ops.iter().copied())
            .map(|op| self.dry_run(op, plan, &created_ns, &created_crds))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut verdicts = Vec::new();
        let mut problems = Vec::new();
        for r in results {
            match r {
                Ok(v) => verdicts.push(v),
                Err(e @ (Error::Unreachable { .. } | Error::Unauthorized { .. })) => return Err(e),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(Checked {
                plan: plan.clone(),
                verdicts,
            })
        } else {
            Err(Error::DryRun {
                problems,
                total: ops.len(),
            })
        }
    }

    async fn dry_run(
        &self,
        op: &Op,
        plan: &ChangePlan,
        created_ns: &BTreeSet<String>,
        created_crds: &BTreeSet<(String, String)>,
    ) -> Result<Verdict, Error> {
        let result = match op {
            Op::Apply { object } => {
                return self.dry_apply(object, plan, created_ns, created_crds).await;
            }
            Op::Delete { target, uid } => {
                return Ok(
                    match self.objects.delete(target, uid.as_deref(), true).await? {
                        Deleted::Deleted => Verdict::Accepted(None),
                        Deleted::Gone => Verdict::Skip("already gone".into()),
                        Deleted::Replaced => Verdict::Skip(
                            "recreated since the plan was made (another UID): left alone".into(),
                        ),
                    },
                );
            }
            Op::Label { target, labels } => {
                self.objects
                    .merge_patch(target, &label_patch(labels), true, "label")
                    .await
            }
            Op::Restart { target } => {
                self.objects
                    .merge_patch(target, &restart_patch(), true, "restart")
                    .await
            }
            Op::Restore { object } => {
                return match self.objects.restore(object, true).await {
                    Ok(_) => Ok(Verdict::Accepted(None)),
                    Err(e) => deferred(object, &e, created_ns, created_crds).ok_or(e),
                };
            }
        };
        result.map(|_| Verdict::Accepted(None))
    }

    async fn dry_apply(
        &self,
        object: &Value,
        plan: &ChangePlan,
        created_ns: &BTreeSet<String>,
        created_crds: &BTreeSet<(String, String)>,
    ) -> Result<Verdict, Error> {
        match self.objects.apply(object, true, false).await {
            Ok(after) => Ok(Verdict::Accepted(Some(after))),
            Err(Error::Conflict {
                object: r,
                conflicts,
            }) => {
                let managers: BTreeSet<String> =
                    conflicts.iter().map(|c| c.manager.clone()).collect();
                // Our own fields (a restore writes them as an update, not an apply) are never
                // someone else's.
                let allowed = self.opts.force_conflicts
                    || managers
                        .iter()
                        .all(|m| m == FIELD_MANAGER || plan.takeover.contains(m));
                if !allowed {
                    return Err(Error::Conflict {
                        object: r,
                        conflicts,
                    });
                }
                let after = self.objects.apply(object, true, true).await?;
                Ok(Verdict::TakesOver(
                    Some(after),
                    managers.into_iter().collect(),
                ))
            }
            Err(e) => deferred(object, &e, created_ns, created_crds).ok_or(e),
        }
    }

    /// Confirms, backs up, and runs the phases of a checked plan with their waits; on failure,
    /// restores the backup unless the options say otherwise.
    pub async fn execute(
        &self,
        checked: Checked,
        sink: &mut dyn Sink,
        question: &str,
    ) -> Result<Execution, Stopped> {
        let answer = if self.opts.yes {
            Confirmation::Yes
        } else {
            sink.confirm(question).map_err(|e| Error::Backup {
                what: "cannot ask for confirmation".into(),
                source: e,
            })?
        };
        match answer {
            Confirmation::Yes => {}
            Confirmation::No => return Err(Error::Declined.into()),
            Confirmation::NoTerminal => return Err(Error::NoTerminal.into()),
        }
        // From here on a Ctrl-C or SIGTERM is counted, never lost: the first stops the change,
        // the next stops its rollback, whenever each comes.
        signals::listen();
        let start = signals::received();
        let (backup, path) = self.take_backup(&checked.plan).await?;
        sink.event(Event::BackupWritten {
            objects: backup.objects.len(),
            path: &path,
        });
        let mut run = Run::new(checked, backup, path.clone());
        let outcome = tokio::select! {
            r = self.run_phases(&mut run, sink) => r,
            sig = signals::after(start) => Err(Error::Interrupted(sig)),
        };
        let stopped = signals::received();
        match outcome {
            Ok(()) => {
                run.record.complete = true;
                if let Err(e) = run.record.rewrite(&path) {
                    // Every UID is already in the file (written as each object was created):
                    // only the mark of completion is missing.
                    sink.event(Event::BackupNotUpdated { error: &e });
                }
                let mut done = run.execution();
                done.signals_seen = stopped;
                Ok(done)
            }
            Err(cause) => {
                let execution = run.execution();
                let error = self
                    .after_failure(cause, &mut run.record, &path, &execution, stopped, sink)
                    .await;
                Err(Stopped {
                    error,
                    execution: Some(execution),
                })
            }
        }
    }

    async fn take_backup(&self, plan: &ChangePlan) -> Result<(Backup, PathBuf), Error> {
        let identity = self.identity().await?;
        let targets = plan.targets();
        // A kind whose CRD this plan creates: no such object yet.
        let live = self.objects.get_all(&targets, true).await;
        let live = live.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut objects = Vec::new();
        let mut created = Vec::new();
        for (r, obj) in targets.into_iter().zip(live) {
            match obj {
                Some(o) => objects.push(o),
                None => created.push(r),
            }
        }
        let mut backup = Backup::new(
            identity,
            &self.opts.command,
            &self.opts.operation,
            objects,
            created,
        );
        backup.undo_proxies.clone_from(&plan.undo_proxies);
        let path = backup.write(&self.opts.backup_dir, &self.opts.backup_name)?;
        Ok((backup, path))
    }

    /// The cluster's identity: server URL, context and the `kube-system` namespace UID.
    pub async fn identity(&self) -> Result<ClusterIdentity, Error> {
        let ks = ObjRef::new("v1", "Namespace", None, "kube-system");
        let ns =
            self.objects.get(&ks).await?.ok_or_else(|| {
                Error::Unexpected("the cluster has no kube-system namespace".into())
            })?;
        let conn = self.objects.connection();
        Ok(ClusterIdentity {
            server: conn.server.clone(),
            context: conn.context.clone(),
            uid: ns
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    async fn run_phases(&self, run: &mut Run, sink: &mut dyn Sink) -> Result<(), Error> {
        let phases = run.checked.plan.phases.clone();
        let total = phases.len();
        let mut index = 0;
        for (n, phase) in phases.iter().enumerate() {
            run.phase = Some(n);
            sink.event(Event::Phase {
                number: n + 1,
                total,
                name: &phase.name,
                changes: phase.ops.len(),
            });
            for op in &phase.ops {
                run.current = Some(index);
                self.run_op(run, index, op).await?;
                run.current = None;
                index += 1;
            }
            self.run_waits(&phase.waits, sink).await?;
        }
        run.phase = None;
        Ok(())
    }

    async fn run_op(&self, run: &mut Run, index: usize, op: &Op) -> Result<(), Error> {
        let verdict = run.checked.verdicts[index].clone();
        if let Verdict::Skip(why) = verdict {
            run.status[index] = OpStatus::Skipped(why);
            return Ok(());
        }
        let done = |_| (OpStatus::Done, None);
        // An apply or a restore answers with the object written: its UID, if it was created.
        let result = match op {
            Op::Apply { object } => {
                let force = matches!(verdict, Verdict::TakesOver(..));
                self.objects
                    .apply(object, false, force)
                    .await
                    .map(|after| (OpStatus::Done, Some(after)))
            }
            Op::Restore { object } => self
                .objects
                .restore(object, false)
                .await
                .map(|after| (OpStatus::Done, Some(after))),
            Op::Delete { target, uid } => self
                .objects
                .delete(target, uid.as_deref(), false)
                .await
                .map(|d| match d {
                    Deleted::Deleted => (OpStatus::Done, None),
                    Deleted::Gone => (OpStatus::Skipped("already gone".into()), None),
                    Deleted::Replaced => (
                        OpStatus::Skipped("recreated meanwhile (another UID): left alone".into()),
                        None,
                    ),
                }),
            Op::Label { target, labels } => self
                .objects
                .merge_patch(target, &label_patch(labels), false, "label")
                .await
                .map(done),
            Op::Restart { target } => self
                .objects
                .merge_patch(target, &restart_patch(), false, "restart")
                .await
                .map(done),
        };
        match result {
            Ok((status, after)) => {
                run.status[index] = status;
                // The UID of an object this change created goes into the backup file at once:
                // killed a moment later, the backup still says which object to remove, and a
                // rollback removes that one and no other.
                match (op.target(), after) {
                    (Some(r), Some(after)) if run.record_uid(&r, &after) => run.save(),
                    _ => Ok(()),
                }
            }
            Err(e) => {
                run.status[index] = OpStatus::Failed(e.to_string());
                Err(e)
            }
        }
    }

    async fn run_waits(&self, waits: &[Wait], sink: &mut dyn Sink) -> Result<(), Error> {
        if waits.is_empty() {
            return Ok(());
        }
        sink.event(Event::Waiting {
            conditions: waits.len(),
        });
        try_join_all(
            waits
                .iter()
                .map(|w| wait_for(&self.objects, w, self.opts.timeout)),
        )
        .await
        .map(drop)
    }

    async fn after_failure(
        &self,
        cause: Error,
        backup: &mut Backup,
        path: &std::path::Path,
        execution: &Execution,
        stopped: u32,
        sink: &mut dyn Sink,
    ) -> Error {
        let changed = execution.done().count();
        let touched = execution.touched.clone();
        let mut notes = Vec::new();
        let failed = |state: String, hints: Vec<String>, cause: Error| Error::Failed {
            state,
            cause: Box::new(cause),
            backup: Some(path.to_owned()),
            hints,
        };
        let stopped_by = |sig: &str| {
            format!(
                "the change failed and the rollback was stopped by {sig}: the cluster is partly changed; restore it with `kubectl mesh upgrade rollback {}`",
                path.display()
            )
        };
        // An operation that failed without an answer (a lost connection, a 5xx, Ctrl-C while it
        // was in flight) may have landed: what changed is found by comparing the touched objects
        // with the backup, never assumed. A signal from here on stops that too.
        let prepared = tokio::select! {
            p = async {
                if self.recover_uids(backup, execution).await
                    && let Err(e) = backup.rewrite(path)
                {
                    notes.push(format!("the backup file could not be updated: {e}"));
                }
                self.rollback_plan(backup, Some(&touched)).await
            } => p,
            sig = signals::after(stopped) => return failed(stopped_by(sig), notes, cause),
        };
        let pending = match prepared {
            Ok(p) => p,
            Err(e) => {
                return failed(
                    format!(
                        "the change stopped after {changed} of {} change(s) and the cluster cannot be read to check what else landed ({e}); nothing was rolled back",
                        execution.ops.len()
                    ),
                    vec![format!(
                        "once the API server answers, undo it with `kubectl mesh upgrade rollback {}`",
                        path.display()
                    )],
                    cause,
                );
            }
        };
        if pending.changes.is_empty() && pending.kept().next().is_none() {
            let when = if changed == 0 {
                "before changing anything".to_owned()
            } else {
                format!("after {changed} operation(s) that left every object as it was")
            };
            return failed(
                format!(
                    "the change failed {when}: the cluster is as before, checked against the backup ({cause})"
                ),
                notes,
                cause,
            );
        }
        let landed: Vec<String> = pending
            .steps
            .iter()
            .filter(|s| !matches!(s.action, Restore::Unchanged | Restore::Gone))
            .map(|s| s.object.to_string())
            .collect();
        if !self.opts.rollback {
            return failed(
                format!(
                    "the change stopped after {changed} of {} change(s) ({} changed: {}); nothing was rolled back",
                    execution.ops.len(),
                    landed.len(),
                    landed.join(", ")
                ),
                vec![format!(
                    "run the same command again to finish, or `kubectl mesh upgrade rollback {}` to undo",
                    path.display()
                )],
                cause,
            );
        }
        sink.event(Event::RollingBack { cause: &cause });
        let restored = tokio::select! {
            r = self.carry_restore(&pending, sink) => Ok(r),
            sig = signals::after(stopped) => Err(Error::Interrupted(sig)),
        };
        let state = match restored {
            Ok(report) if report.failures.is_empty() && report.kept.is_empty() => format!(
                "the change failed and was rolled back: the cluster is as before ({} object(s) restored, {} created object(s) removed)",
                report.restored, report.removed
            ),
            Ok(report) => format!(
                "the change failed and the rollback is incomplete: {}",
                report
                    .failures
                    .iter()
                    .chain(&report.kept)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(Error::Interrupted(sig)) => stopped_by(sig),
            Err(e) => format!("the change failed and the rollback failed too: {e}"),
        };
        failed(state, notes, cause)
    }

    /// For each object the change was creating when it failed (its answer never came, so its
    /// UID is not known): if it exists now, was created after the backup was taken and carries
    /// kubectl-mesh's apply, it is the one this change created; its UID goes into the backup.
    /// Whether a UID was recovered.
    async fn recover_uids(&self, backup: &mut Backup, execution: &Execution) -> bool {
        let done: BTreeSet<&ObjRef> = execution.done().collect();
        let taken = backup.created;
        let mut recovered = false;
        for c in &mut backup.created_objects {
            if c.uid.is_some() || !execution.touched.contains(&c.object) || done.contains(&c.object)
            {
                continue;
            }
            let Ok(Some(live)) = self.objects.get(&c.object).await else {
                continue;
            };
            if created_by_us_since(&live, taken) {
                c.uid = live
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                recovered |= c.uid.is_some();
            }
        }
        recovered
    }

    /// The rollback of a backup (of the objects in `only`, or all): each saved object compared
    /// with its live state, each created object by the UID the backup recorded. The one plan
    /// behind both the automatic rollback and `kubectl mesh upgrade rollback`.
    pub async fn rollback_plan(
        &self,
        backup: &Backup,
        only: Option<&BTreeSet<ObjRef>>,
    ) -> Result<RollbackPlan, Error> {
        let wanted = |r: &ObjRef| only.is_none_or(|o| o.contains(r));
        let saved: Vec<Value> = backup
            .objects
            .iter()
            .filter(|o| ObjRef::of(o).is_some_and(|r| wanted(&r)))
            .cloned()
            .collect();
        let created: Vec<(ObjRef, Option<String>)> = backup
            .created_objects
            .iter()
            .filter(|c| wanted(&c.object))
            .map(|c| (c.object.clone(), c.uid.clone()))
            .collect();
        let refs: Vec<ObjRef> = saved
            .iter()
            .filter_map(ObjRef::of)
            .chain(created.iter().map(|(r, _)| r.clone()))
            .collect();
        // Its CRD gone (a purge deleted it): so is the object.
        let got = self.objects.get_all(&refs, true).await;
        let mut live = BTreeMap::new();
        for (r, g) in refs.into_iter().zip(got) {
            live.insert(r, g?);
        }
        Ok(rollback::plan(
            &saved,
            &created,
            &live,
            &backup.undo_proxies,
        ))
    }

    /// Puts every object of a backup back as it was and removes what the change created (only
    /// objects whose UID the backup recorded), then waits for restored workloads to roll back.
    pub async fn restore(
        &self,
        backup: &Backup,
        sink: &mut dyn Sink,
    ) -> Result<RestoreReport, Error> {
        let plan = self.rollback_plan(backup, None).await?;
        Ok(self.carry_restore(&plan, sink).await)
    }

    /// Carries out a rollback plan without stopping at the first failure: each operation is
    /// tried, each wait waited on, and what could not be done is reported.
    async fn carry_restore(&self, plan: &RollbackPlan, sink: &mut dyn Sink) -> RestoreReport {
        let mut report = RestoreReport {
            kept: plan
                .kept()
                .map(|r| {
                    format!(
                        "{r} was left alone: created by the change, but its UID was never recorded"
                    )
                })
                .collect(),
            ..RestoreReport::default()
        };
        for phase in &plan.changes.phases {
            for op in &phase.ops {
                let Some(r) = op.target() else { continue };
                let result = match op {
                    Op::Delete { target, uid } => {
                        sink.event(Event::Removing { object: &r });
                        self.objects
                            .delete(target, uid.as_deref(), false)
                            .await
                            .map(|d| {
                                if d == Deleted::Deleted {
                                    report.removed += 1;
                                }
                            })
                    }
                    Op::Restore { object } => {
                        sink.event(Event::Restoring { object: &r });
                        self.objects
                            .restore(object, false)
                            .await
                            .map(|_| report.restored += 1)
                    }
                    _ => Err(Error::Unexpected(format!(
                        "a rollback does not {}",
                        op.verb()
                    ))),
                };
                if let Err(e) = result {
                    report
                        .failures
                        .push(format!("cannot {} {r}: {e}", op.verb()));
                }
            }
            for w in &phase.waits {
                if let Err(e) = wait_for(&self.objects, w, self.opts.timeout).await {
                    report.failures.push(e.to_string());
                }
            }
        }
        report
    }
}

/// What a restore did.
#[derive(Debug, Default, Clone)]
pub struct RestoreReport {
    /// Objects put back.
    pub restored: usize,
    /// Created objects removed.
    pub removed: usize,
    /// Objects the change created that were left alone (no UID recorded), in words.
    pub kept: Vec<String>,
    /// What could not be done.
    pub failures: Vec<String>,
}

/// Whether `obj` was created at or after `since` (seconds since the epoch) by an apply of
/// kubectl-mesh.
fn created_by_us_since(obj: &Value, since: u64) -> bool {
    let applied = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|m| m["manager"] == FIELD_MANAGER && m["operation"] == "Apply");
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_second()).ok());
    applied && created.is_some_and(|c| c >= since)
}

/// A dry run that cannot succeed before an earlier phase of the plan ran: the object's
/// namespace, or the CRD that defines its kind (matched by the CRD's `spec.group` and
/// `spec.names.kind`), is created by the plan.
fn deferred(
    object: &Value,
    e: &Error,
    created_ns: &BTreeSet<String>,
    created_crds: &BTreeSet<(String, String)>,
) -> Option<Verdict> {
    let r = ObjRef::of(object)?;
    let ns = r.namespace.as_deref().filter(|n| created_ns.contains(*n));
    match e {
        Error::Refused { code: 404, .. } if ns.is_some() => Some(Verdict::Deferred(format!(
            "checked when applied: namespace `{}` is created by this plan",
            ns.unwrap_or_default()
        ))),
        Error::NotServed { kind, .. }
            if created_crds.contains(&(r.group().to_owned(), kind.clone())) =>
        {
            Some(Verdict::Deferred(format!(
                "checked when applied: its CRD is created by this plan ({kind})"
            )))
        }
        _ => None,
    }
}

/// The merge patch of label changes.
pub fn label_patch(labels: &BTreeMap<String, Option<String>>) -> Value {
    let map: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
        .collect();
    json!({"metadata": {"labels": map}})
}

/// The merge patch `kubectl rollout restart` makes.
pub fn restart_patch() -> Value {
    let now = chrono_like_now();
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}})
}

/// RFC 3339 UTC timestamp of now to the second (what `kubectl rollout restart` writes).
fn chrono_like_now() -> String {
    rfc3339_seconds(jiff::Timestamp::now())
}

fn rfc3339_seconds(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Bookkeeping of one execution.
struct Run {
    checked: Checked,
    status: Vec<OpStatus>,
    /// The backup, as written to `path`: what existed, what the change creates and, once
    /// created, their UIDs.
    record: Backup,
    path: PathBuf,
    phase: Option<usize>,
    /// The operation in flight.
    current: Option<usize>,
}

impl Run {
    fn new(checked: Checked, record: Backup, path: PathBuf) -> Self {
        let n = checked.verdicts.len();
        Self {
            checked,
            status: vec![OpStatus::Pending; n],
            record,
            path,
            phase: None,
            current: None,
        }
    }

    /// Records the UID of `after` if the backup lists `r` as created by the change and holds
    /// no UID for it yet; whether it did.
    fn record_uid(&mut self, r: &ObjRef, after: &Value) -> bool {
        let Some(uid) = after.pointer("/metadata/uid").and_then(Value::as_str) else {
            return false;
        };
        match self
            .record
            .created_objects
            .iter_mut()
            .find(|c| &c.object == r && c.uid.is_none())
        {
            Some(c) => {
                c.uid = Some(uid.to_owned());
                true
            }
            None => false,
        }
    }

    /// Writes the backup file again (what it records changed).
    fn save(&self) -> Result<(), Error> {
        self.record.rewrite(&self.path)
    }

    fn execution(&self) -> Execution {
        Execution {
            backup: self.path.clone(),
            ops: self
                .checked
                .plan
                .ops()
                .zip(&self.status)
                .map(|(op, s)| {
                    (
                        op.target().unwrap_or_else(|| ObjRef::new("", "", None, "")),
                        op.verb(),
                        s.clone(),
                    )
                })
                .collect(),
            failed_phase: self.phase,
            touched: self
                .checked
                .plan
                .ops()
                .zip(&self.status)
                .enumerate()
                .filter(|(i, (_, s))| {
                    matches!(s, OpStatus::Done | OpStatus::Failed(_)) || self.current == Some(*i)
                })
                .filter_map(|(_, (op, _))| op.target())
                .collect(),
            signals_seen: 0,
            phase_of: self
                .checked
                .plan
                .phases
                .iter()
                .enumerate()
                .flat_map(|(i, p)| std::iter::repeat_n(i, p.ops.len()))
                .collect(),
        }
    }
}

/// The error of a stopped execution, for `?` in commands.
impl From<Stopped> for Error {
    fn from(s: Stopped) -> Self {
        s.error
    }
}

impl Classify for Stopped {
    fn class(&self) -> mesh_core::error::Class {
        self.error.class()
    }
    fn hints(&self) -> Vec<String> {
        self.error.hints()
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Stopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let at = |secs| rfc3339_seconds(jiff::Timestamp::from_second(secs).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_764_683_999), "2025-12-02T13:59:59Z");
        let now = chrono_like_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }

    #[test]
    fn patches_have_kubectls_shapes() {
        let mut l = BTreeMap::new();
        l.insert("istio.io/rev".to_owned(), Some("canary".to_owned()));
        l.insert("istio-injection".to_owned(), None);
        assert_eq!(
            label_patch(&l),
            json!({"metadata": {"labels": {"istio-injection": null, "istio.io/rev": "canary"}}})
        );
        assert!(
            restart_patch()["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
                .is_string()
        );
    }
}
