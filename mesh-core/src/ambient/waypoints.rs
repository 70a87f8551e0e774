//! Waypoints: Gateways of class `istio-waypoint`, whose Deployment istiod's gateway controller
//! renders (same name, in the Gateway's namespace, pods labelled
//! `gateway.networking.k8s.io/gateway-name`). The istiod that manages one is chosen as istiod
//! chooses it (`pkg/revisions/tag_watcher.go` `IsMine`): the Gateway's `istio.io/rev`, else its
//! namespace's, else the default revision; a label may name a revision or a tag.

use serde::Serialize;

use super::{USE_WAYPOINT_LABEL, WAYPOINT_CLASS, versions};
use crate::{
    inventory::REV_LABEL,
    snapshot::{ClusterSnapshot, GatewayInfo, PodInfo, label, labels, name, namespace},
    version::IstioVersion,
};

/// The pod label naming the Gateway a gateway or waypoint pod belongs to.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Label naming the namespace of the waypoint in `istio.io/use-waypoint` (default: own).
pub const USE_WAYPOINT_NAMESPACE_LABEL: &str = "istio.io/use-waypoint-namespace";
/// The `gateway.istio.io/managed` value of waypoint Deployments and pods.
pub const WAYPOINT_CONTROLLER_LABEL: &str = "istio.io-mesh-controller";

/// One waypoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waypoint {
    /// Namespace.
    pub namespace: String,
    /// Gateway (and Deployment) name.
    pub name: String,
    /// The `istio.io/rev` that picks its istiod: the Gateway's, else its namespace's; `None`
    /// means the default revision.
    pub rev_label: Option<String>,
    /// Where `rev_label` is set: `gateway` or `namespace`.
    pub rev_label_on: Option<String>,
    /// The revision whose istiod manages it; `None` when the label names no installed
    /// revision or tag (or no default revision exists).
    pub revision: Option<String>,
    /// The proxy versions its pods run (distinct, sorted).
    pub versions: Vec<IstioVersion>,
    /// Its pods (not finished).
    pub pods: usize,
    /// Its pods that are ready.
    pub ready: usize,
    /// The Gateway's `Programmed` condition, if istiod reported one.
    pub programmed: Option<bool>,
    /// Namespaces and Services whose `istio.io/use-waypoint` names it (`Namespace/shop`).
    pub used_by: Vec<String>,
}

/// Whether a pod is a waypoint's (made by istiod's gateway controller for class
/// `istio-waypoint`): a waypoint, never a sidecar.
pub fn is_waypoint_pod(pod: &PodInfo) -> bool {
    pod.label("gateway.istio.io/managed") == Some(WAYPOINT_CONTROLLER_LABEL)
        || pod.label("gateway.networking.k8s.io/gateway-class-name") == Some(WAYPOINT_CLASS)
}

/// The revision that rendered a waypoint pod: the `istio.io/rev` annotation istiod's gateway
/// controller puts on its pod template (waypoints carry no injection status); `None` for any
/// other pod.
pub fn waypoint_revision(pod: &PodInfo) -> Option<String> {
    if !is_waypoint_pod(pod) {
        return None;
    }
    pod.annotation(REV_LABEL).map(str::to_owned)
}

/// Every waypoint of the snapshot, sorted by namespace and name.
pub fn all(
    snap: &ClusterSnapshot,
    resolve: &dyn Fn(&str) -> Option<String>,
    default: Option<&str>,
) -> Vec<Waypoint> {
    let mut out: Vec<Waypoint> = snap
        .gateways
        .iter()
        .filter(|g| g.spec.gateway_class_name == WAYPOINT_CLASS)
        .map(|g| waypoint(snap, g, resolve, default))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn waypoint(
    snap: &ClusterSnapshot,
    g: &GatewayInfo,
    resolve: &dyn Fn(&str) -> Option<String>,
    default: Option<&str>,
) -> Waypoint {
    let (ns, gw) = (namespace(&g.metadata), name(&g.metadata));
    let ns_label = snap
        .namespace(ns)
        .and_then(|n| label(&n.metadata, REV_LABEL));
    let (rev_label, on) = match (label(&g.metadata, REV_LABEL), ns_label) {
        (Some(r), _) => (Some(r), Some("gateway")),
        (None, Some(r)) => (Some(r), Some("namespace")),
        (None, None) => (None, None),
    };
    let revision = match rev_label {
        Some(r) => resolve(r),
        None => default.map(str::to_owned),
    };
    let pods: Vec<&PodInfo> = snap
        .pods
        .iter()
        .filter(|p| p.namespace() == ns && p.label(GATEWAY_NAME_LABEL) == Some(gw))
        .filter(|p| !p.is_finished())
        .collect();
    Waypoint {
        namespace: ns.to_owned(),
        name: gw.to_owned(),
        rev_label: rev_label.map(str::to_owned),
        rev_label_on: on.map(str::to_owned),
        revision,
        versions: versions(
            pods.iter()
                .map(|p| p.proxy_image().and_then(crate::version::image_release)),
        ),
        pods: pods.len(),
        ready: pods.iter().filter(|p| p.is_ready()).count(),
        programmed: g.condition("Programmed").map(|s| s == "True"),
        used_by: users(snap, ns, gw),
    }
}

/// Namespaces and Services whose `istio.io/use-waypoint` names this waypoint.
fn users(snap: &ClusterSnapshot, ns: &str, gw: &str) -> Vec<String> {
    let uses = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, own: &str| {
        let l = labels(meta);
        l.get(USE_WAYPOINT_LABEL).map(String::as_str) == Some(gw)
            && l.get(USE_WAYPOINT_NAMESPACE_LABEL)
                .map_or(own, String::as_str)
                == ns
    };
    let mut out: Vec<String> = snap
        .namespaces
        .iter()
        .filter(|n| uses(&n.metadata, name(&n.metadata)))
        .map(|n| format!("Namespace/{}", name(&n.metadata)))
        .collect();
    let services = snap.services.iter().map(|s| &s.metadata).chain(
        snap.others
            .iter()
            .filter(|o| o.kind == "Service")
            .map(|o| &o.metadata),
    );
    let mut svcs: Vec<String> = services
        .filter(|m| uses(m, namespace(m)))
        .map(|m| format!("Service/{}/{}", namespace(m), name(m)))
        .collect();
    svcs.sort();
    svcs.dedup();
    out.extend(svcs);
    out
}
