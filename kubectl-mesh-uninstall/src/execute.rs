//! Executing a plan: server-side dry run, backup, deletion phase by phase with a wait after
//! each, and a final check that no webhook calls a deleted Service.
//!
//! The invariant: nothing but webhook configurations is deleted until every webhook
//! configuration of the plan is gone. So whatever fails later, no webhook is left calling a
//! Service that no longer exists; and a failure during the webhook phase leaves the control
//! plane running, so the webhooks left still work.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use anyhow::Context as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Api;
use mesh_common::{
    cluster::{
        backup::Backup,
        list_all,
        ops::{Executor, ObjRef},
    },
    exit::MeshError,
    output::Printer,
    plan::uninstall::{Phase, UninstallPlan, webhooks_calling},
};

/// How far a failed run got.
pub struct Failure {
    /// The error to report.
    pub error: MeshError,
    /// Objects deleted before it stopped.
    pub deleted: Vec<ObjRef>,
    /// The cluster's state, in words.
    pub state: String,
}

/// Asks the API server to dry-run every delete; nothing changes.
pub async fn dry_run(exec: &Executor, plan: &UninstallPlan) -> Result<(), MeshError> {
    for r in plan.objects() {
        exec.delete(&r).await.map_err(|e| {
            MeshError::failed(clean(e).context("the API server refused the dry run")).hint(
                "nothing was changed; check your permissions with `kubectl auth can-i delete ...`",
            )
        })?;
    }
    Ok(())
}

/// Writes every live object of the plan to a backup file (mode 0600) and returns its path.
pub async fn backup(
    exec: &Executor,
    plan: &UninstallPlan,
    dir: &std::path::Path,
    label: &str,
) -> Result<PathBuf, MeshError> {
    let not_deleted = |e: anyhow::Error| MeshError::failed(e).hint("nothing was deleted");
    let identity = exec.identity().await.map_err(not_deleted)?;
    let mut objects = Vec::new();
    for r in plan.objects() {
        if let Some(obj) = exec.get(&r).await.map_err(not_deleted)? {
            objects.push(obj);
        }
    }
    let command: Vec<String> = std::env::args().collect();
    let b = Backup::new(identity, &command.join(" "), objects, Vec::new());
    b.write(dir, label)
        .context("cannot write the backup")
        .map_err(|e| not_deleted(e).hint("pass --backup-dir DIR to write it elsewhere"))
}

/// Deletes the plan's objects phase by phase, waiting after each; returns what was deleted.
pub async fn delete(
    exec: &Executor,
    plan: &UninstallPlan,
    timeout: Duration,
    printer: &mut Printer,
    backup: &std::path::Path,
) -> Result<Vec<ObjRef>, Failure> {
    let mut deleted = Vec::new();
    for phase in [
        Phase::Webhooks,
        Phase::Workloads,
        Phase::Config,
        Phase::Crds,
    ] {
        let refs = plan.phase(phase);
        if refs.is_empty() {
            continue;
        }
        let _ = printer.progress(&format!(
            "deleting {} ({})...",
            phase.describe(),
            refs.len()
        ));
        for r in &refs {
            match exec.delete(r).await {
                Ok(_) => deleted.push(r.clone()),
                Err(e) => return Err(failure(e, phase, plan, deleted, backup)),
            }
        }
        let _ = printer.progress(&format!("waiting for {} to be gone...", phase.describe()));
        match exec.wait_gone(&refs, timeout).await {
            Ok(left) if left.is_empty() => {}
            Ok(left) => {
                let names: Vec<String> = left.iter().map(ToString::to_string).collect();
                let e = anyhow::anyhow!(
                    "timed out after {timeout:?} waiting for {} to be gone: {}",
                    phase.describe(),
                    names.join(", ")
                );
                return Err(failure(e, phase, plan, deleted, backup));
            }
            Err(e) => return Err(failure(e, phase, plan, deleted, backup)),
        }
    }
    Ok(deleted)
}

/// kube-rs prints an API error's whole Status and then its cause again: keep the message.
fn clean(e: anyhow::Error) -> anyhow::Error {
    let status = e
        .chain()
        .find_map(|c| match c.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.message.clone()),
            _ => None,
        });
    match status {
        Some(message) => anyhow::anyhow!("{e}: {message}"),
        None => e,
    }
}

fn failure(
    e: anyhow::Error,
    phase: Phase,
    plan: &UninstallPlan,
    deleted: Vec<ObjRef>,
    backup: &std::path::Path,
) -> Failure {
    let left: Vec<String> = plan
        .objects()
        .iter()
        .filter(|r| !deleted.contains(r))
        .map(ToString::to_string)
        .collect();
    let shown = left.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    let more = if left.len() > 8 {
        format!(" and {} more", left.len() - 8)
    } else {
        String::new()
    };
    let webhooks = if phase == Phase::Webhooks {
        "no workload was deleted: the control plane still runs, so the webhook configurations left still work"
    } else {
        "every webhook configuration of the plan is gone, so no webhook calls a deleted Service"
    };
    let state = format!(
        "stopped while deleting {}: {} of {} objects deleted; still present: {shown}{more}; {webhooks}",
        phase.describe(),
        deleted.len(),
        plan.steps.len()
    );
    let error = MeshError::failed(clean(e).context("the uninstall did not complete"))
        .hint(state.clone())
        .hint(format!(
            "backup of every object: {}; run the same command again to finish",
            backup.display()
        ));
    Failure {
        error,
        deleted,
        state,
    }
}

/// Checks that no webhook configuration calls a Service the plan deleted.
pub async fn verify(exec: &Executor, plan: &UninstallPlan) -> Result<(), MeshError> {
    let services: BTreeSet<String> = plan
        .objects()
        .into_iter()
        .filter(|r| r.kind == "Service")
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    if services.is_empty() {
        return Ok(());
    }
    let client = exec.connection().client.clone();
    let params = kube::api::ListParams::default();
    let mwcs = list_all(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        params.clone(),
    )
    .await;
    let vwcs = list_all(Api::<ValidatingWebhookConfiguration>::all(client), params).await;
    let (mwcs, vwcs) = match (mwcs, vwcs) {
        (Ok(m), Ok(v)) => (m, v),
        (Err(e), _) | (_, Err(e)) => {
            return Err(MeshError::failed(anyhow::Error::new(e).context("cannot re-read the webhook configurations"))
                .hint("the objects were deleted; check `kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations`"));
        }
    };
    let dangling = webhooks_calling(&mwcs, &vwcs, &services);
    if dangling.is_empty() {
        return Ok(());
    }
    Err(MeshError::failed(anyhow::anyhow!(
        "webhook configurations call a deleted Service: {}",
        dangling.join(", ")
    ))
    .hint(
        "they were created after the plan was made; delete them or point them at a running istiod",
    ))
}
