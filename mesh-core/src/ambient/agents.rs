//! The node agents of ambient mode: istio-cni and ztunnel, one DaemonSet each per revision.
//! For each: its version, how many nodes run it ready, the nodes it should cover (see
//! [`super::nodes`]), the istiod ztunnel talks to (its `XDS_ADDRESS`/`CA_ADDRESS` → Service →
//! revision) and how its pods roll when the DaemonSet changes.

use k8s_openapi::{
    api::{apps::v1::DaemonSet, core::v1::Container},
    apimachinery::pkg::util::intstr::IntOrString,
};
use serde::Serialize;

use super::nodes::{self, Coverage};
use crate::{
    inventory::{DEFAULT_REVISION, REV_LABEL},
    snapshot::{ClusterSnapshot, NodeInfo, Source, label, name, namespace},
    version::IstioVersion,
};

/// Which node agent a DaemonSet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// istio-cni (`istio-cni-node`): sets up the redirection of ambient pods.
    Cni,
    /// ztunnel: the per-node proxy of ambient pods.
    Ztunnel,
}

impl AgentKind {
    /// The name users know it by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cni => "istio-cni",
            Self::Ztunnel => "ztunnel",
        }
    }
}

/// Which node agent a DaemonSet is, by name or by the labels Istio's charts put on it or its
/// pods; `None` for any other DaemonSet.
pub fn agent_kind(d: &DaemonSet) -> Option<AgentKind> {
    let template = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
    let labelled = |key: &str, value: &str| {
        label(&d.metadata, key) == Some(value)
            || template.is_some_and(|m| label(m, key) == Some(value))
    };
    match name(&d.metadata) {
        "ztunnel" => Some(AgentKind::Ztunnel),
        "istio-cni-node" => Some(AgentKind::Cni),
        _ if labelled("app", "ztunnel") => Some(AgentKind::Ztunnel),
        _ if labelled("k8s-app", "istio-cni-node") || labelled("app", "istio-cni-node") => {
            Some(AgentKind::Cni)
        }
        _ => None,
    }
}

/// One istio-cni or ztunnel DaemonSet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAgent {
    /// CNI or ztunnel.
    pub kind: AgentKind,
    /// Namespace.
    pub namespace: String,
    /// DaemonSet name.
    pub name: String,
    /// `istio.io/rev` of the DaemonSet, else `default`.
    pub revision: String,
    /// Its image.
    pub image: Option<String>,
    /// The Istio version of its image.
    pub version: Option<IstioVersion>,
    /// Nodes that should run it (`status.desiredNumberScheduled`), `None` without a status.
    pub desired: Option<i32>,
    /// Nodes where it runs ready (`status.numberReady`).
    pub ready: Option<i32>,
    /// Nodes that run its current template (`status.updatedNumberScheduled`).
    pub updated: Option<i32>,
    /// Its pods that are not ready (when pods were read).
    pub unready_pods: Vec<String>,
    /// The nodes it should cover and those it misses (when nodes were read).
    pub coverage: Option<Coverage>,
    /// ztunnel: the istiod addresses it talks to, resolved.
    pub istiod: Vec<IstiodLink>,
    /// How its pods are replaced when the DaemonSet changes.
    pub rollout: Rollout,
}

/// An istiod address of ztunnel (`XDS_ADDRESS`, `CA_ADDRESS`), resolved to a Service and its
/// revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IstiodLink {
    /// The environment variable.
    pub env: String,
    /// Its value (`istiod-1-30-3.istio-system.svc:15012`).
    pub address: String,
    /// `namespace/name` of the Service it names; `None` when it names no Service of this
    /// cluster (an IP, an outside host).
    pub service: Option<String>,
    /// Whether that Service exists; `None` when it could not be told (services not read, or
    /// in a namespace the snapshot does not hold).
    pub exists: Option<bool>,
    /// The revision of that Service (`istio.io/rev`, else its name: `istiod-<rev>`).
    pub revision: Option<String>,
}

/// How a DaemonSet's pods are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `RollingUpdate` (the default) or `OnDelete`.
    pub strategy: String,
    /// `maxUnavailable` as written (`1`, `25%`); `None` when unset (Kubernetes: 1).
    pub max_unavailable: Option<String>,
    /// `maxSurge` as written; `None` when unset (Kubernetes: 0).
    pub max_surge: Option<String>,
}

impl Rollout {
    /// Of a DaemonSet spec's `updateStrategy` (as JSON, so manifests and live objects share it).
    pub fn of_json(strategy: Option<&serde_json::Value>) -> Self {
        let text = |v: Option<&serde_json::Value>| {
            v.map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let s = strategy.cloned().unwrap_or_default();
        Self {
            strategy: s
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("RollingUpdate")
                .to_owned(),
            max_unavailable: text(s.pointer("/rollingUpdate/maxUnavailable")),
            max_surge: text(s.pointer("/rollingUpdate/maxSurge")),
        }
    }

    /// Whether pods change only when someone deletes them.
    pub fn on_delete(&self) -> bool {
        self.strategy == "OnDelete"
    }

    /// How many of `nodes` nodes a rolling update replaces at once: the larger of
    /// `maxUnavailable` and `maxSurge`, percentages of `nodes` rounded up as the DaemonSet
    /// controller rounds them (at least one); `None` for `OnDelete`.
    pub fn nodes_at_once(&self, nodes: usize) -> Option<usize> {
        if self.on_delete() {
            return None;
        }
        let scaled = |v: Option<&str>, default: usize| match v {
            None => default,
            Some(p) if p.ends_with('%') => {
                let pct: usize = p.trim_end_matches('%').trim().parse().unwrap_or(0);
                (pct * nodes).div_ceil(100)
            }
            Some(n) => n.trim().parse().unwrap_or(default),
        };
        let unavailable = scaled(self.max_unavailable.as_deref(), 1);
        let surge = scaled(self.max_surge.as_deref(), 0);
        Some(unavailable.max(surge).max(1).min(nodes.max(1)))
    }

    /// `maxUnavailable 25%, maxSurge 1` — what the strategy says, for messages.
    pub fn describe(&self) -> String {
        if self.on_delete() {
            return "OnDelete".to_owned();
        }
        format!(
            "RollingUpdate maxUnavailable {}, maxSurge {}",
            self.max_unavailable.as_deref().unwrap_or("1 (default)"),
            self.max_surge.as_deref().unwrap_or("0 (default)")
        )
    }
}

fn int_or_string(v: &IntOrString) -> serde_json::Value {
    match v {
        IntOrString::Int(i) => (*i).into(),
        IntOrString::String(s) => s.clone().into(),
    }
}

/// The container that carries the agent's image.
fn agent_container(d: &DaemonSet) -> Option<&Container> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| matches!(c.name.as_str(), "istio-proxy" | "install-cni" | "ztunnel"))
        .or_else(|| containers.first())
}

impl NodeAgent {
    /// The agent a DaemonSet is, if it is istio-cni or ztunnel; `nodes` when they were read.
    pub fn of(d: &DaemonSet, snap: &ClusterSnapshot, nodes: Option<&[NodeInfo]>) -> Option<Self> {
        let kind = agent_kind(d)?;
        let container = agent_container(d);
        let image = container.and_then(|c| c.image.clone());
        let status = d.status.as_ref();
        let strategy = d.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        let strategy = strategy.map(|s| {
            serde_json::json!({
                "type": s.type_,
                "rollingUpdate": s.rolling_update.as_ref().map(|r| serde_json::json!({
                    "maxUnavailable": r.max_unavailable.as_ref().map(int_or_string),
                    "maxSurge": r.max_surge.as_ref().map(int_or_string),
                })),
            })
        });
        let mut agent = Self {
            kind,
            namespace: namespace(&d.metadata).to_owned(),
            name: name(&d.metadata).to_owned(),
            revision: label(&d.metadata, REV_LABEL)
                .unwrap_or(DEFAULT_REVISION)
                .to_owned(),
            version: image.as_deref().and_then(crate::version::image_release),
            image,
            desired: status.map(|s| s.desired_number_scheduled),
            ready: status.map(|s| s.number_ready),
            updated: status.map(|s| s.updated_number_scheduled.unwrap_or(0)),
            unready_pods: Vec::new(),
            coverage: nodes.map(|n| nodes::coverage(d, n)),
            istiod: Vec::new(),
            rollout: Rollout::of_json(strip_nulls(strategy).as_ref()),
        };
        agent.unready_pods = unready_pods(snap, &agent);
        if kind == AgentKind::Ztunnel {
            agent.istiod = istiod_links(container, &agent.namespace, snap);
        }
        Some(agent)
    }

    /// `DaemonSet/istio-system/ztunnel`.
    pub fn object(&self) -> String {
        crate::checks::obj("DaemonSet", &self.namespace, &self.name)
    }

    /// The revision of the istiod this agent serves: ztunnel's resolved address, else the
    /// DaemonSet's revision label (istio-cni talks to no istiod; its revision is its install's).
    pub fn istiod_revision(&self) -> &str {
        self.istiod
            .iter()
            .find_map(|l| l.revision.as_deref())
            .unwrap_or(&self.revision)
    }
}

fn strip_nulls(v: Option<serde_json::Value>) -> Option<serde_json::Value> {
    let mut v = v?;
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
        if let Some(r) = m.get_mut("rollingUpdate").and_then(|r| r.as_object_mut()) {
            r.retain(|_, x| !x.is_null());
        }
    }
    Some(v)
}

fn unready_pods(snap: &ClusterSnapshot, agent: &NodeAgent) -> Vec<String> {
    if snap.gap(Source::Pods).is_some() {
        return Vec::new();
    }
    let mut out: Vec<String> = snap
        .pods
        .iter()
        .filter(|p| p.namespace() == agent.namespace && !p.is_finished() && !p.is_ready())
        .filter(|p| {
            p.controller()
                .is_some_and(|o| o.kind == "DaemonSet" && o.name == agent.name)
        })
        .map(|p| crate::checks::obj("Pod", p.namespace(), p.name()))
        .collect();
    out.sort();
    out
}

/// ztunnel's istiod addresses (`XDS_ADDRESS` first, `CA_ADDRESS` when it differs).
fn istiod_links(c: Option<&Container>, own_ns: &str, snap: &ClusterSnapshot) -> Vec<IstiodLink> {
    let env = c.and_then(|c| c.env.as_ref());
    let mut out: Vec<IstiodLink> = Vec::new();
    for var in ["XDS_ADDRESS", "CA_ADDRESS"] {
        let value = env
            .into_iter()
            .flatten()
            .find(|e| e.name == var)
            .and_then(|e| e.value.clone());
        let Some(address) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if out.iter().any(|l| l.address == address) {
            continue;
        }
        out.push(resolve_address(var, &address, own_ns, snap));
    }
    out
}

/// `istiod-1-30-3.istio-system.svc:15012` → Service `istio-system/istiod-1-30-3` → revision.
fn resolve_address(var: &str, address: &str, own_ns: &str, snap: &ClusterSnapshot) -> IstiodLink {
    let host = address
        .split("://")
        .last()
        .unwrap_or(address)
        .rsplit_once(':')
        .map_or(address, |(h, _)| h);
    let parts: Vec<&str> = host.split('.').collect();
    let service = match parts.as_slice() {
        [svc] => Some((own_ns, *svc)),
        [svc, ns] | [svc, ns, "svc", ..] => Some((*ns, *svc)),
        _ => None,
    }
    .filter(|(_, svc)| is_service_name(svc));
    let mut link = IstiodLink {
        env: var.to_owned(),
        address: address.to_owned(),
        service: service.map(|(ns, svc)| format!("{ns}/{svc}")),
        exists: None,
        revision: None,
    };
    let Some((ns, svc)) = service else {
        return link;
    };
    let readable = ns == snap.istio_namespace && snap.gap(Source::Services).is_none();
    if !readable {
        return link;
    }
    let found = snap.services.iter().find(|s| name(&s.metadata) == svc);
    link.exists = Some(found.is_some());
    link.revision = found.map(|s| {
        label(&s.metadata, REV_LABEL).map_or_else(|| revision_of_name(svc), str::to_owned)
    });
    link
}

/// A Service name is a DNS-1035 label (an IP address or `[::1]` is not).
fn is_service_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The revision an istiod Service's name spells: `istiod` → `default`, `istiod-<rev>` → rev.
fn revision_of_name(service: &str) -> String {
    service
        .strip_prefix("istiod-")
        .unwrap_or(DEFAULT_REVISION)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(max_unavailable: Option<&str>, max_surge: Option<&str>) -> Rollout {
        Rollout {
            strategy: "RollingUpdate".into(),
            max_unavailable: max_unavailable.map(Into::into),
            max_surge: max_surge.map(Into::into),
        }
    }

    #[test]
    fn nodes_at_once_follows_the_daemonset_controller() {
        assert_eq!(rollout(None, None).nodes_at_once(10), Some(1), "defaults");
        assert_eq!(rollout(Some("0"), Some("1")).nodes_at_once(10), Some(1));
        assert_eq!(rollout(Some("3"), None).nodes_at_once(10), Some(3));
        assert_eq!(
            rollout(Some("25%"), None).nodes_at_once(10),
            Some(3),
            "rounded up"
        );
        assert_eq!(rollout(Some("10%"), None).nodes_at_once(3), Some(1));
        assert_eq!(rollout(Some("100%"), None).nodes_at_once(3), Some(3));
        let on_delete = Rollout {
            strategy: "OnDelete".into(),
            ..Rollout::default()
        };
        assert_eq!(on_delete.nodes_at_once(3), None);
        assert_eq!(on_delete.describe(), "OnDelete");
    }

    #[test]
    fn addresses_resolve_to_services_and_their_revisions() {
        let mut snap = ClusterSnapshot {
            istio_namespace: "istio-system".into(),
            ..Default::default()
        };
        snap.services.push(crate::testkit::service(
            "istiod-1-30-3",
            &[("app", "istiod"), ("istio.io/rev", "1-30-3")],
        ));
        snap.services
            .push(crate::testkit::service("istiod", &[("app", "istiod")]));
        let l = resolve_address(
            "XDS_ADDRESS",
            "istiod-1-30-3.istio-system.svc:15012",
            "istio-system",
            &snap,
        );
        assert_eq!(l.service.as_deref(), Some("istio-system/istiod-1-30-3"));
        assert_eq!(
            (l.exists, l.revision.as_deref()),
            (Some(true), Some("1-30-3"))
        );
        let l = resolve_address(
            "CA_ADDRESS",
            "istiod.istio-system.svc.cluster.local:15012",
            "istio-system",
            &snap,
        );
        assert_eq!(l.revision.as_deref(), Some("default"));
        let gone = resolve_address(
            "XDS_ADDRESS",
            "istiod-old.istio-system.svc:15012",
            "istio-system",
            &snap,
        );
        assert_eq!((gone.exists, gone.revision), (Some(false), None));
        let outside = resolve_address("XDS_ADDRESS", "10.0.0.7:15012", "istio-system", &snap);
        assert_eq!((outside.service, outside.exists), (None, None));
        let v6 = resolve_address("XDS_ADDRESS", "[fd00::7]:15012", "istio-system", &snap);
        assert_eq!((v6.service, v6.exists), (None, None));
        let short = resolve_address("XDS_ADDRESS", "10.0.0.7", "istio-system", &snap);
        assert_eq!(short.service, None);
        let other_ns = resolve_address(
            "XDS_ADDRESS",
            "istiod.mesh.svc:15012",
            "istio-system",
            &snap,
        );
        assert_eq!(
            other_ns.exists, None,
            "a namespace the snapshot does not hold"
        );
        snap.add_gap(Source::Services, "forbidden");
        let unread = resolve_address(
            "XDS_ADDRESS",
            "istiod.istio-system.svc:15012",
            "istio-system",
            &snap,
        );
        assert_eq!(unread.exists, None);
    }
}
