//! The ambient-mode view of a snapshot: the node agents (istio-cni and ztunnel DaemonSets, per
//! revision, with version, readiness on the nodes they should cover, the istiod ztunnel talks
//! to and how ztunnel rolls), the ambient namespaces with their captured pods, and the
//! waypoints (Gateways of class `istio-waypoint`) with revision, proxy version, readiness and
//! who uses them.
//!
//! Derived once, with the rest of the [`Inventory`](crate::inventory::Inventory), from what the
//! snapshot read; the ambient checks (`checks/ambient.rs`) and the planners read it. What the
//! snapshot could not read is never taken for "none": `coverage` is `None` without the nodes,
//! and the checks skip on the snapshot's gaps.

mod agents;
mod nodes;
mod planned;
mod waypoints;

use serde::Serialize;

use crate::{
    inventory::{INJECTION_LABEL, Injection, NamespaceView},
    snapshot::{ClusterSnapshot, PodInfo, Source, labels},
    version::IstioVersion,
};

pub use agents::{AgentKind, IstiodLink, NodeAgent, Rollout, agent_kind};
pub use nodes::{Coverage, eligible};
pub use planned::{PlannedAgent, planned_agents};
pub use waypoints::{USE_WAYPOINT_NAMESPACE_LABEL, Waypoint, is_waypoint_pod, waypoint_revision};

/// Namespace (and pod) label that puts workloads in ambient mode (`ambient`) or out (`none`).
pub const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
/// Pod annotation istio-cni sets on the pods it captured (`enabled`).
pub const REDIRECTION_ANNOTATION: &str = "ambient.istio.io/redirection";
/// Namespace and Service label naming the waypoint their traffic goes through.
pub const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
/// The GatewayClass of Istio's waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";
/// The taint istio-cni puts on a node while it is not ready there (Istio 1.25+).
pub const CNI_TAINT: &str = "cni.istio.io/not-ready";

/// The ambient view of a cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AmbientView {
    /// istio-cni and ztunnel DaemonSets, sorted by kind, revision, namespace.
    pub agents: Vec<NodeAgent>,
    /// Namespaces labelled `istio.io/dataplane-mode=ambient`, sorted by name.
    pub namespaces: Vec<AmbientNamespace>,
    /// Waypoints, sorted by namespace and name.
    pub waypoints: Vec<Waypoint>,
}

/// A namespace in ambient mode and its pods.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbientNamespace {
    /// Name.
    pub name: String,
    /// Running pods that ambient mode should capture (not waypoints, not opted out with
    /// `istio.io/dataplane-mode=none`, not finished).
    pub pods: usize,
    /// Of those, the pods istio-cni captured (`ambient.istio.io/redirection: enabled`).
    pub captured: usize,
    /// Of those, pods that run a sidecar instead (ambient never captures them).
    pub sidecars: usize,
    /// The waypoint its traffic goes through (`istio.io/use-waypoint`).
    pub waypoint: Option<String>,
    /// Sidecar injection is on too (a webhook injects its new pods): the sidecar wins.
    pub injected_by: Option<String>,
}

impl AmbientView {
    /// Derives the ambient view; `namespaces` is the inventory's (with injection resolved),
    /// `resolve` turns a revision or tag name into the revision, `default` is the default
    /// revision.
    pub fn from_snapshot(
        snap: &ClusterSnapshot,
        namespaces: &[NamespaceView],
        resolve: &dyn Fn(&str) -> Option<String>,
        default: Option<&str>,
    ) -> Self {
        let nodes = snap.gap(Source::Nodes).is_none().then_some(&snap.nodes[..]);
        let mut agents: Vec<NodeAgent> = snap
            .daemonsets
            .iter()
            .filter_map(|d| NodeAgent::of(d, snap, nodes))
            .collect();
        agents.sort_by(|a, b| {
            (a.kind, &a.revision, &a.namespace).cmp(&(b.kind, &b.revision, &b.namespace))
        });
        let waypoints = waypoints::all(snap, resolve, default);
        Self {
            agents,
            namespaces: ambient_namespaces(snap, namespaces),
            waypoints,
        }
    }

    /// Nothing of ambient mode was found (in what was read).
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty() && self.namespaces.is_empty() && self.waypoints.is_empty()
    }

    /// The agents of one kind.
    pub fn agents_of(&self, kind: AgentKind) -> impl Iterator<Item = &NodeAgent> {
        self.agents.iter().filter(move |a| a.kind == kind)
    }
}

/// Whether a namespace's labels put it in ambient mode.
pub fn is_ambient(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.get(DATAPLANE_MODE_LABEL).map(String::as_str) == Some("ambient")
}

fn ambient_namespaces(snap: &ClusterSnapshot, views: &[NamespaceView]) -> Vec<AmbientNamespace> {
    let mut out: Vec<AmbientNamespace> = snap
        .namespaces
        .iter()
        .filter(|ns| is_ambient(labels(&ns.metadata)))
        .map(|ns| {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let view = views.iter().find(|v| v.name == name);
            let mut n = AmbientNamespace {
                waypoint: labels(&ns.metadata).get(USE_WAYPOINT_LABEL).cloned(),
                injected_by: view.and_then(|v| injected_by(&v.injection)),
                name,
                pods: 0,
                captured: 0,
                sidecars: 0,
            };
            let ns_name = n.name.clone();
            for pod in snap.pods.iter().filter(|p| p.namespace() == ns_name) {
                count_pod(&mut n, pod);
            }
            n
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn count_pod(n: &mut AmbientNamespace, pod: &PodInfo) {
    let opted_out = pod.label(DATAPLANE_MODE_LABEL) == Some("none");
    if pod.is_finished() || opted_out || is_waypoint_pod(pod) {
        return;
    }
    n.pods += 1;
    if pod.annotation(REDIRECTION_ANNOTATION) == Some("enabled") {
        n.captured += 1;
    } else if pod.proxy_image().is_some() {
        n.sidecars += 1;
    }
}

/// The label that makes the injector inject a namespace, when one does.
fn injected_by(injection: &Injection) -> Option<String> {
    match injection {
        Injection::Revision { revision, tag, .. } => Some(match tag {
            Some(t) => format!("{revision} (tag {t})"),
            None => revision.clone(),
        }),
        Injection::Overlap { webhooks } => Some(format!("{} injectors", webhooks.len())),
        _ => None,
    }
}

/// The injection label value of a namespace view, for messages.
pub fn injection_labels(v: &NamespaceView) -> String {
    match (&v.injection_label, &v.rev_label) {
        (Some(i), Some(r)) => format!("{INJECTION_LABEL}={i}, istio.io/rev={r}"),
        (Some(i), None) => format!("{INJECTION_LABEL}={i}"),
        (None, Some(r)) => format!("istio.io/rev={r}"),
        (None, None) => "no injection label".to_owned(),
    }
}

/// The versions of a set of images, distinct and sorted.
fn versions(images: impl Iterator<Item = Option<IstioVersion>>) -> Vec<IstioVersion> {
    let mut v: Vec<IstioVersion> = images.flatten().collect();
    v.sort();
    v.dedup();
    v
}
