//! The change engine: the one way every command changes a cluster (tag, uninstall, upgrade,
//! dataplane, rollback).
//!
//! Always in this order:
//! 1. [`Engine::check`] — a server-side dry run of every operation; any rejection stops here,
//!    before the first change, naming the object and the server's reason. Fields another manager
//!    owns are a conflict unless that manager is the installer the plan takes over from, or
//!    `--force-conflicts`. Only a [`Checked`] plan can be carried out.
//! 2. [`Engine::execute`] — confirmation (a TTY) or `--yes`; a backup of every object the plan
//!    touches; the phases in order, progress on stderr, each followed by its waits.
//! 3. On failure (a rejected operation, a wait that times out, the API gone, Ctrl-C/SIGTERM):
//!    unless the command asks otherwise, an automatic restore from the backup, and one error
//!    saying what state the cluster is in, what was restored and where the backup is. A second
//!    Ctrl-C stops the rollback and says so.
//!
//! Deletes carry a UID precondition and waits follow UIDs, so an object recreated meanwhile is
//! never deleted or waited on by mistake. Transient API errors are retried ([`super::retry`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use futures::{StreamExt, future::try_join_all, stream};
use mesh_core::{
    change::{ChangePlan, Op, RESTARTED_AT, Wait, rollout_to},
    error::Classify,
};
use serde_json::{Value, json};

use super::{
    Connection, Error,
    backup::{Backup, ClusterIdentity},
    objects::{Deleted, FIELD_MANAGER, Objects},
    wait::wait_for,
};
use crate::{
    ObjRef,
    output::{Confirmation, Printer},
};

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
    /// backup and used in its file name.
    pub operation: String,
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
    pub ops: Vec<(ObjRef, &'static str, OpStatus)>,
    /// Index of the phase that failed, if one did.
    pub failed_phase: Option<usize>,
    /// The phase of each operation (same order as `ops`).
    pub phase_of: Vec<usize>,
    /// Objects the change touched: operations done or failed, and the one in flight when it
    /// was interrupted (it may have landed).
    pub touched: BTreeSet<ObjRef>,
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
        let created_crds = plan.applied_crds();
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
        created_crds: &BTreeSet<String>,
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
            Op::Restore { object } => self.objects.restore(object, true).await,
        };
        result.map(|_| Verdict::Accepted(None))
    }

    async fn dry_apply(
        &self,
        object: &Value,
        plan: &ChangePlan,
        created_ns: &BTreeSet<String>,
        created_crds: &BTreeSet<String>,
    ) -> Result<Verdict, Error> {
        let deferred = |e: &Error| -> Option<Verdict> {
            let r = ObjRef::of(object)?;
            let ns = r.namespace.as_deref().filter(|n| created_ns.contains(*n));
            match e {
                Error::Refused { code: 404, .. } if ns.is_some() => {
                    Some(Verdict::Deferred(format!(
                        "checked when applied: namespace `{}` is created by this plan",
                        ns.unwrap_or_default()
                    )))
                }
                Error::NotServed { kind, .. } if crd_for(created_crds, r.group(), kind) => {
                    Some(Verdict::Deferred(format!(
                        "checked when applied: its CRD is created by this plan ({kind})"
                    )))
                }
                _ => None,
            }
        };
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
            Err(e) => deferred(&e).ok_or(e),
        }
    }

    /// Confirms, backs up, and runs the phases of a checked plan with their waits; on failure,
    /// restores the backup unless the options say otherwise.
    pub async fn execute(
        &self,
        checked: Checked,
        printer: &mut Printer,
        question: &str,
    ) -> Result<Execution, Stopped> {
        let answer = printer
            .confirm(question, self.opts.yes)
            .map_err(|e| Error::Backup {
                what: "cannot ask for confirmation".into(),
                source: e,
            })?;
        match answer {
            Confirmation::Yes => {}
            Confirmation::No => return Err(Error::Declined.into()),
            Confirmation::NoTerminal => return Err(Error::NoTerminal.into()),
        }
        let (backup, path) = self.take_backup(&checked.plan).await?;
        printer
            .note(&format!(
                "backup of {} object(s) written to {}",
                backup.objects.len(),
                path.display()
            ))
            .ok();
        let created: BTreeSet<ObjRef> = backup
            .created_objects
            .iter()
            .map(|c| c.object.clone())
            .collect();
        let mut run = Run::new(checked, path.clone(), created);
        let outcome = tokio::select! {
            r = self.run_phases(&mut run, printer) => r,
            sig = interrupted() => Err(Error::Interrupted(sig)),
        };
        let mut backup = backup;
        backup.created_objects = backup
            .created_objects
            .into_iter()
            .map(|mut c| {
                c.uid = run.created_uids.get(&c.object).cloned();
                c
            })
            .collect();
        match outcome {
            Ok(()) => {
                backup.complete = true;
                if let Err(e) = backup.rewrite(&path) {
                    printer.note(&format!("warning: {e}")).ok();
                }
                Ok(run.execution())
            }
            Err(cause) => {
                let _ = backup.rewrite(&path);
                let execution = run.execution();
                let error = self
                    .after_failure(cause, &backup, &path, &execution, printer)
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
        let live: Vec<Result<Option<Value>, Error>> = stream::iter(&targets)
            .map(|r| async move {
                match self.objects.get(r).await {
                    // A kind whose CRD this plan creates: no such object yet.
                    Err(Error::NotServed { .. }) => Ok(None),
                    other => other,
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let live = live.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut objects = Vec::new();
        let mut created = Vec::new();
        for (r, obj) in targets.into_iter().zip(live) {
            match obj {
                Some(o) => objects.push(o),
                None => created.push(r),
            }
        }
        let backup = Backup::new(
            identity,
            &self.opts.command,
            &self.opts.operation,
            objects,
            created,
        );
        let path = backup.write(&self.opts.backup_dir, &self.opts.operation)?;
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

    async fn run_phases(&self, run: &mut Run, printer: &mut Printer) -> Result<(), Error> {
        let phases = run.checked.plan.phases.clone();
        let total = phases.len();
        let mut index = 0;
        for (n, phase) in phases.iter().enumerate() {
            run.phase = Some(n);
            printer
                .progress(&format!(
                    "[{}/{total}] {} ({} change(s))...",
                    n + 1,
                    phase.name,
                    phase.ops.len()
                ))
                .ok();
            for op in &phase.ops {
                run.current = Some(index);
                self.run_op(run, index, op).await?;
                run.current = None;
                index += 1;
            }
            self.run_waits(&phase.waits, printer).await?;
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
        let result = match op {
            Op::Apply { object } => {
                let force = matches!(verdict, Verdict::TakesOver(..));
                let existed = run.existed(object);
                match self.objects.apply(object, false, force).await {
                    Ok(after) => {
                        if !existed
                            && let (Some(r), Some(uid)) = (
                                ObjRef::of(object),
                                after.pointer("/metadata/uid").and_then(Value::as_str),
                            )
                        {
                            run.created_uids.insert(r, uid.to_owned());
                        }
                        Ok(OpStatus::Done)
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Delete { target, uid } => {
                match self.objects.delete(target, uid.as_deref(), false).await {
                    Ok(Deleted::Deleted) => Ok(OpStatus::Done),
                    Ok(Deleted::Gone) => Ok(OpStatus::Skipped("already gone".into())),
                    Ok(Deleted::Replaced) => Ok(OpStatus::Skipped(
                        "recreated meanwhile (another UID): left alone".into(),
                    )),
                    Err(e) => Err(e),
                }
            }
            Op::Label { target, labels } => self
                .objects
                .merge_patch(target, &label_patch(labels), false, "label")
                .await
                .map(|_| OpStatus::Done),
            Op::Restart { target } => self
                .objects
                .merge_patch(target, &restart_patch(), false, "restart")
                .await
                .map(|_| OpStatus::Done),
            Op::Restore { object } => self
                .objects
                .restore(object, false)
                .await
                .map(|_| OpStatus::Done),
        };
        match result {
            Ok(s) => {
                run.status[index] = s;
                Ok(())
            }
            Err(e) => {
                run.status[index] = OpStatus::Failed(e.to_string());
                Err(e)
            }
        }
    }

    async fn run_waits(&self, waits: &[Wait], printer: &mut Printer) -> Result<(), Error> {
        if waits.is_empty() {
            return Ok(());
        }
        printer
            .progress(&format!("  waiting for {} condition(s)...", waits.len()))
            .ok();
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
        backup: &Backup,
        path: &std::path::Path,
        execution: &Execution,
        printer: &mut Printer,
    ) -> Error {
        let changed = execution.done().count();
        if changed == 0 && !matches!(cause, Error::Interrupted(_) | Error::Timeout { .. }) {
            return Error::Failed {
                state: format!(
                    "the change failed before changing anything: the cluster is as before ({cause})"
                ),
                cause: Box::new(cause),
                backup: Some(path.to_owned()),
                hints: Vec::new(),
            };
        }
        if !self.opts.rollback {
            return Error::Failed {
                state: format!(
                    "the change stopped after {changed} of {} change(s); nothing was rolled back",
                    execution.ops.len()
                ),
                hints: vec![format!(
                    "run the same command again to finish, or `kubectl mesh upgrade rollback {}` to undo",
                    path.display()
                )],
                cause: Box::new(cause),
                backup: Some(path.to_owned()),
            };
        }
        printer
            .note(&format!("error: {cause}\nrolling back from the backup..."))
            .ok();
        let touched = execution.touched.clone();
        let restored = tokio::select! {
            r = self.restore_only(backup, Some(&touched), printer) => r,
            sig = interrupted() => Err(Error::Interrupted(sig)),
        };
        let state = match restored {
            Ok(report) if report.failures.is_empty() => format!(
                "the change failed and was rolled back: the cluster is as before ({} object(s) restored, {} created object(s) removed)",
                report.restored, report.removed
            ),
            Ok(report) => format!(
                "the change failed and the rollback is incomplete: {}",
                report.failures.join("; ")
            ),
            Err(Error::Interrupted(sig)) => format!(
                "the change failed and the rollback was stopped by {sig}: the cluster is partly changed; restore it with `kubectl mesh upgrade rollback {}`",
                path.display()
            ),
            Err(e) => format!("the change failed and the rollback failed too: {e}"),
        };
        Error::Failed {
            state,
            cause: Box::new(cause),
            backup: Some(path.to_owned()),
            hints: Vec::new(),
        }
    }

    /// Puts every object of a backup back as it was and removes what the change created (by
    /// UID, or — without a recorded UID — only objects kubectl-mesh applied), in reverse order,
    /// then waits for restored workloads to roll back.
    pub async fn restore(
        &self,
        backup: &Backup,
        printer: &mut Printer,
    ) -> Result<RestoreReport, Error> {
        self.restore_only(backup, None, printer).await
    }

    /// [`Engine::restore`] of the objects in `only` (all when `None`): an automatic rollback
    /// puts back only what the change touched, so an edit someone made meanwhile to an object
    /// the change never reached is not reverted.
    pub async fn restore_only(
        &self,
        backup: &Backup,
        only: Option<&BTreeSet<ObjRef>>,
        printer: &mut Printer,
    ) -> Result<RestoreReport, Error> {
        let wanted = |r: &ObjRef| only.is_none_or(|o| o.contains(r));
        let mut report = RestoreReport::default();
        for c in backup
            .created_objects
            .iter()
            .rev()
            .filter(|c| wanted(&c.object))
        {
            printer.progress(&format!("removing {}...", c.object)).ok();
            match self.remove_created(&c.object, c.uid.as_deref()).await {
                Ok(true) => report.removed += 1,
                Ok(false) => {}
                Err(e) => report
                    .failures
                    .push(format!("cannot remove {}: {e}", c.object)),
            }
        }
        // In reverse order, each workload waited before the next is put back (an ambient
        // upgrade is undone ztunnel → istio-cni → istiod).
        for obj in backup.objects.iter().rev() {
            let Some(r) = ObjRef::of(obj) else { continue };
            if !wanted(&r) {
                continue;
            }
            printer.progress(&format!("restoring {r}...")).ok();
            match self.objects.restore(obj, false).await {
                Ok(_) => report.restored += 1,
                Err(e) => {
                    report.failures.push(format!("cannot restore {r}: {e}"));
                    continue;
                }
            }
            if let Some(w) = rollout_to(&r, obj)
                && let Err(e) = wait_for(&self.objects, &w, self.opts.timeout).await
            {
                report.failures.push(e.to_string());
            }
        }
        Ok(report)
    }

    async fn remove_created(&self, r: &ObjRef, uid: Option<&str>) -> Result<bool, Error> {
        let uid = match uid {
            Some(u) => u.to_owned(),
            None => {
                let Some(live) = self.objects.get(r).await? else {
                    return Ok(false);
                };
                if !applied_by_us(&live) {
                    return Ok(false);
                }
                live.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        let deleted = self.objects.delete(r, Some(&uid), false).await?;
        if deleted != Deleted::Deleted {
            return Ok(false);
        }
        let gone = Wait::Gone {
            target: r.clone(),
            uid: Some(uid),
        };
        wait_for(&self.objects, &gone, self.opts.timeout).await?;
        Ok(true)
    }
}

/// What a restore did.
#[derive(Debug, Default, Clone)]
pub struct RestoreReport {
    /// Objects put back.
    pub restored: usize,
    /// Created objects removed.
    pub removed: usize,
    /// What could not be done.
    pub failures: Vec<String>,
}

fn applied_by_us(obj: &Value) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|m| m["manager"] == FIELD_MANAGER)
}

fn crd_for(crds: &BTreeSet<String>, group: &str, kind: &str) -> bool {
    let kind = kind.to_lowercase();
    crds.iter()
        .any(|c| c.ends_with(&format!(".{group}")) && c.starts_with(&kind))
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

/// RFC 3339 UTC timestamp of now (what kubectl writes), without a date library.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let (y, mo, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Waits for Ctrl-C or SIGTERM; returns which.
pub async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            () = term => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Bookkeeping of one execution.
struct Run {
    checked: Checked,
    status: Vec<OpStatus>,
    created_uids: BTreeMap<ObjRef, String>,
    /// Objects that did not exist when the backup was taken.
    created: BTreeSet<ObjRef>,
    backup: PathBuf,
    phase: Option<usize>,
    /// The operation in flight.
    current: Option<usize>,
}

impl Run {
    fn new(checked: Checked, backup: PathBuf, created: BTreeSet<ObjRef>) -> Self {
        let n = checked.verdicts.len();
        Self {
            checked,
            status: vec![OpStatus::Pending; n],
            created_uids: BTreeMap::new(),
            created,
            backup,
            phase: None,
            current: None,
        }
    }

    /// Whether the object existed when the backup was taken.
    fn existed(&self, object: &Value) -> bool {
        ObjRef::of(object).is_some_and(|r| !self.created.contains(&r))
    }

    fn execution(&self) -> Execution {
        Execution {
            backup: self.backup.clone(),
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
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_424), (2025, 12, 2));
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
        let crds: BTreeSet<String> = ["envoyfilters.networking.istio.io".to_owned()].into();
        assert!(crd_for(&crds, "networking.istio.io", "EnvoyFilter"));
        assert!(!crd_for(&crds, "networking.istio.io", "Gateway"));
    }
}
