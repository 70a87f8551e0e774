//! Waiting for what a phase promised: an object gone (followed by UID, so an object recreated
//! meanwhile does not count), a CRD established, a workload rolled out with its ready pods
//! running the expected images and proxy, a Service with a ready endpoint. Each wait polls until
//! done or until the timeout, then says what is still missing.

use std::time::Duration;

use k8s_openapi::{
    api::discovery::v1::EndpointSlice, apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{Api, api::ListParams};
use mesh_core::{
    ambient::waypoint_revision,
    change::{Expected, Wait},
    inventory::injected_revision,
    selector,
    snapshot::{PodInfo, PodObject},
    version::image_version,
};
use serde_json::Value;

use super::{Error, fetch::list_all, objects::Objects, retry::retry};
use crate::ObjRef;

/// Time between two polls.
const POLL: Duration = Duration::from_millis(500);

/// Waits for one condition; on timeout the error names what is missing.
pub async fn wait_for(objects: &Objects, wait: &Wait, timeout: Duration) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let missing = check(objects, wait).await?;
        let Some(missing) = missing else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("{} ({missing})", wait.describe()),
                after: humantime(timeout),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A duration in kubectl's words (`90s`, `5m0s`).
pub fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else if d.subsec_millis() > 0 && s < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{s}s")
    }
}

/// `None` when the condition holds, else what is missing.
pub async fn check(objects: &Objects, wait: &Wait) -> Result<Option<String>, Error> {
    match wait {
        Wait::Gone { target, uid } => gone(objects, target, uid.as_deref()).await,
        Wait::Established { .. } => established(objects, &wait.target()).await,
        Wait::Rollout { target, expect } => rollout(objects, target, expect).await,
        Wait::Endpoints { service } => endpoints(objects, service).await,
    }
}

async fn gone(objects: &Objects, r: &ObjRef, uid: Option<&str>) -> Result<Option<String>, Error> {
    let live = objects.get(r).await?;
    Ok(match live {
        None => None,
        Some(o) if uid.is_some() && o.pointer("/metadata/uid").and_then(Value::as_str) != uid => {
            None
        }
        Some(o) if o.pointer("/metadata/deletionTimestamp").is_some() => {
            Some("still terminating".into())
        }
        Some(_) => Some("still present".into()),
    })
}

async fn established(objects: &Objects, r: &ObjRef) -> Result<Option<String>, Error> {
    let Some(crd) = objects.get(r).await? else {
        return Ok(Some("not found".into()));
    };
    Ok((!condition(&crd, "Established")).then(|| "not established yet".into()))
}

fn condition(obj: &Value, kind: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// What a workload's status says is left to do, by kind.
fn rollout_status(w: &Value) -> Option<String> {
    let generation = int(w, "/metadata/generation");
    if int(w, "/status/observedGeneration") < generation {
        return Some("the controller has not seen the change yet".into());
    }
    let kind = w["kind"].as_str().unwrap_or_default();
    let (want, updated, ready, total) = match kind {
        "DaemonSet" => (
            int(w, "/status/desiredNumberScheduled"),
            int(w, "/status/updatedNumberScheduled"),
            int(w, "/status/numberReady"),
            int(w, "/status/currentNumberScheduled"),
        ),
        _ => (
            w.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            int(w, "/status/updatedReplicas"),
            int(w, "/status/readyReplicas"),
            int(w, "/status/replicas"),
        ),
    };
    if kind == "StatefulSet" {
        let (cur, upd) = (
            w.pointer("/status/currentRevision"),
            w.pointer("/status/updateRevision"),
        );
        if cur != upd && updated < want {
            return Some(format!("{updated} of {want} replicas updated"));
        }
    }
    // A DaemonSet rolls over nodes: its progress is counted in nodes.
    let unit = if kind == "DaemonSet" {
        "nodes"
    } else {
        "replicas"
    };
    if updated < want {
        return Some(format!("{updated} of {want} {unit} updated"));
    }
    if ready < want {
        return Some(format!("{ready} of {want} {unit} ready"));
    }
    if total > want {
        return Some(format!("{} old replica(s) still terminating", total - want));
    }
    None
}

async fn rollout(
    objects: &Objects,
    r: &ObjRef,
    expect: &Expected,
) -> Result<Option<String>, Error> {
    let Some(w) = objects.get(r).await? else {
        return Ok(Some("not found".into()));
    };
    if let Some(missing) = rollout_status(&w) {
        return Ok(Some(missing + &pending_reason(objects, r, &w).await?));
    }
    if expect.images.is_empty() && expect.proxy.is_none() {
        return Ok(None);
    }
    let pods = pods_of(objects, r, &w).await?;
    let want = match r.kind.as_str() {
        "DaemonSet" => int(&w, "/status/desiredNumberScheduled"),
        _ => w
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1),
    };
    let good = pods
        .iter()
        .filter(|(p, deleting)| p.is_ready() && !deleting)
        .filter(|(p, _)| runs_expected(p, expect).is_none())
        .count();
    if i64::try_from(good).unwrap_or(i64::MAX) >= want {
        return Ok(None);
    }
    let why = pods
        .iter()
        .find_map(|(p, _)| runs_expected(p, expect).map(|w| format!("pod {}: {w}", p.name())))
        .unwrap_or_else(|| "pods not ready yet".into());
    let unit = if r.kind == "DaemonSet" {
        "nodes run a ready pod"
    } else {
        "ready pods"
    };
    Ok(Some(format!("{good} of {want} {unit} as expected; {why}")))
}

/// Why a pod does not run what is expected, if it does not.
pub fn runs_expected(pod: &PodInfo, expect: &Expected) -> Option<String> {
    for (container, image) in &expect.images {
        let has = pod.spec().image_of(container);
        if has != Some(image.as_str()) {
            return Some(format!(
                "container `{container}` runs {}, not {image}",
                has.unwrap_or("nothing")
            ));
        }
    }
    if let Some(p) = &expect.proxy {
        let rev = injected_revision(pod).or_else(|| waypoint_revision(pod));
        if rev.as_deref() != Some(p.revision.as_str()) {
            return Some(format!(
                "proxy injected by {}, not `{}`",
                rev.map_or("no revision".to_owned(), |r| format!("`{r}`")),
                p.revision
            ));
        }
        if let Some(v) = &p.version {
            let has = pod.proxy_image().and_then(image_version);
            if has.as_ref() != Some(v) {
                return Some(format!(
                    "proxy {}, not {v}",
                    has.map_or("of unknown version".to_owned(), |h| h.to_string())
                ));
            }
        }
    }
    None
}

/// The pods a workload selects — by its whole `spec.selector`, `matchLabels` and
/// `matchExpressions` alike — each with whether it is being deleted. The LIST asks the server
/// for `matchLabels`; the expressions are evaluated here on what it returns.
async fn pods_of(objects: &Objects, r: &ObjRef, w: &Value) -> Result<Vec<(PodInfo, bool)>, Error> {
    let selector: LabelSelector = w
        .pointer("/spec/selector")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .ok_or_else(|| Error::Unexpected(format!("{r} has no label selector")))?;
    let server_side: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let ns = r.namespace.clone().unwrap_or_default();
    let api: Api<PodObject> = Api::namespaced(objects.connection().client.clone(), &ns);
    let pods = list_all(api, ListParams::default().labels(&server_side.join(",")))
        .await
        .map_err(|e| objects.connection().error("list pods of", r, e))?;
    Ok(pods
        .into_iter()
        .map(|p| {
            let deleting = p.metadata.deletion_timestamp.is_some();
            (PodInfo::from(p), deleting)
        })
        .filter(|(p, _)| selector::matches(Some(&selector), p.labels()))
        .collect())
}

/// For a workload stuck with unscheduled pods, the scheduler's reason (e.g. "0/3 nodes are
/// available: 3 node(s) didn't match Pod's node affinity/selector").
async fn pending_reason(objects: &Objects, r: &ObjRef, w: &Value) -> Result<String, Error> {
    let pods = pods_of(objects, r, w).await?;
    let api_pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(
        objects.connection().client.clone(),
        r.namespace.as_deref().unwrap_or_default(),
    );
    for (p, _) in pods.iter().filter(|(p, _)| p.phase() == Some("Pending")) {
        let Ok(Some(full)) = retry(|| api_pods.get_opt(p.name())).await else {
            continue;
        };
        let msg = full
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.message);
        if let Some(m) = msg {
            return Ok(format!("; pod {} is not scheduled: {m}", p.name()));
        }
    }
    Ok(String::new())
}

async fn endpoints(objects: &Objects, svc: &ObjRef) -> Result<Option<String>, Error> {
    let ns = svc.namespace.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(objects.connection().client.clone(), &ns);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={}", svc.name));
    let slices = list_all(api, params)
        .await
        .map_err(|e| objects.connection().error("list endpoints of", svc, e))?;
    let ready = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .any(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
    Ok((!ready).then(|| "no ready endpoint".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollout_status_reads_each_kind() {
        let d = json!({"kind": "Deployment", "metadata": {"generation": 2},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 1, "replicas": 2}});
        assert_eq!(rollout_status(&d).unwrap(), "1 of 2 replicas ready");
        let old = json!({"kind": "Deployment", "metadata": {"generation": 3},
            "spec": {"replicas": 1}, "status": {"observedGeneration": 2}});
        assert!(rollout_status(&old).unwrap().contains("not seen"));
        let done = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 1, "replicas": 1}});
        assert!(rollout_status(&done).is_none());
        let ds = json!({"kind": "DaemonSet", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                "numberReady": 2, "currentNumberScheduled": 3}});
        assert_eq!(rollout_status(&ds).unwrap(), "2 of 3 nodes ready");
        let rolling = json!({"kind": "DaemonSet", "metadata": {"generation": 2},
            "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1,
                "numberReady": 3, "currentNumberScheduled": 3}});
        assert_eq!(rollout_status(&rolling).unwrap(), "1 of 3 nodes updated");
        let surge = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 1, "replicas": 2}});
        assert!(rollout_status(&surge).unwrap().contains("old replica"));
        assert_eq!(humantime(Duration::from_secs(300)), "5m0s");
        assert_eq!(humantime(Duration::from_secs(30)), "30s");
    }

    /// A waypoint's pod carries no injection status: the revision that rendered it is its
    /// `istio.io/rev` annotation (istiod's waypoint template).
    #[test]
    fn a_waypoint_pod_runs_the_revision_that_rendered_it() {
        use mesh_core::{change::ExpectedProxy, testkit::waypoint_pod, version::IstioVersion};
        let expect = |revision: &str, version: &str| Expected {
            images: std::collections::BTreeMap::new(),
            proxy: Some(ExpectedProxy {
                revision: revision.into(),
                version: Some(IstioVersion::parse(version).unwrap()),
            }),
        };
        let pod = waypoint_pod("shop", "waypoint", "1-31-1", "1.31.1");
        assert_eq!(runs_expected(&pod, &expect("1-31-1", "1.31.1")), None);
        assert_eq!(
            runs_expected(&pod, &expect("default", "1.31.1")).unwrap(),
            "proxy injected by `1-31-1`, not `default`"
        );
        assert_eq!(
            runs_expected(&pod, &expect("1-31-1", "1.30.5")).unwrap(),
            "proxy 1.31.1, not 1.30.5"
        );
    }
}
