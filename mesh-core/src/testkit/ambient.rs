//! Ambient-mode builders: istio-cni and ztunnel as istioctl's `profile=ambient` renders them
//! (`mesh-core/fixtures/manifests/ambient-*.yaml`), Linux nodes, ambient namespaces with
//! captured pods, and waypoints as istiod's gateway controller renders them.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::json;

use super::{Snap, labels, pod_object};
use crate::snapshot::{GatewayInfo, NodeInfo, PodInfo};

/// An istio-cni or ztunnel DaemonSet of revision `rev` (`default`: no revision) at `version`,
/// ready on `ready` of `desired` nodes, with istioctl's update strategies.
pub fn node_agent(ztunnel: bool, rev: &str, version: &str, desired: i32, ready: i32) -> DaemonSet {
    let svc = if rev == "default" {
        "istiod".to_owned()
    } else {
        format!("istiod-{rev}")
    };
    let address = format!("{svc}.istio-system.svc:15012");
    let (name, container, image, strategy, pod_labels) = if ztunnel {
        (
            "ztunnel",
            "istio-proxy",
            format!("docker.io/istio/ztunnel:{version}-distroless"),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
            json!({"app": "ztunnel", "sidecar.istio.io/inject": "false"}),
        )
    } else {
        (
            "istio-cni-node",
            "install-cni",
            format!("docker.io/istio/install-cni:{version}-distroless"),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
            json!({"k8s-app": "istio-cni-node", "sidecar.istio.io/inject": "false"}),
        )
    };
    let mut meta = json!({"name": name, "namespace": "istio-system",
        "labels": {"operator.istio.io/component": if ztunnel { "Ztunnel" } else { "Cni" }}});
    if rev != "default" || !ztunnel {
        meta["labels"]["istio.io/rev"] = rev.into();
    }
    let env = if ztunnel {
        json!([{"name": "CA_ADDRESS", "value": address}, {"name": "XDS_ADDRESS", "value": address}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": pod_labels.clone()},
            "updateStrategy": strategy,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"effect": "NoSchedule", "operator": "Exists"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"effect": "NoExecute", "operator": "Exists"}],
                    "containers": [{"name": container, "image": image, "env": env}],
                },
            },
        },
        "status": {"desiredNumberScheduled": desired, "numberReady": ready,
            "updatedNumberScheduled": desired, "currentNumberScheduled": desired,
            "numberMisscheduled": 0},
    }))
    .expect("a DaemonSet")
}

/// A Ready Linux node, optionally with taints (`(key, effect)`).
pub fn node(name: &str, taints: &[(&str, &str)]) -> NodeInfo {
    let taints: Vec<_> = taints
        .iter()
        .map(|(k, e)| json!({"key": k, "effect": e}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .expect("a Node")
}

/// A Gateway of class `istio-waypoint`, `Programmed`, with `istio.io/rev` when given.
pub fn waypoint_gateway(ns: &str, name: &str, rev: Option<&str>) -> GatewayInfo {
    let mut meta = json!({"name": name, "namespace": ns});
    if let Some(r) = rev {
        meta["labels"] = json!({"istio.io/rev": r});
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"gatewayClassName": "istio-waypoint"},
        "status": {"conditions": [{"type": "Accepted", "status": "True"},
            {"type": "Programmed", "status": "True"}]},
    }))
    .expect("a Gateway")
}

/// A waypoint pod of Gateway `name`, as the gateway controller's Deployment makes it.
pub fn waypoint_pod(ns: &str, name: &str, rev: &str, version: &str) -> PodInfo {
    let mut p = pod_object(ns, &format!("{name}-7c9d8"), None, "");
    p.metadata.labels = Some(labels(&[
        ("gateway.networking.k8s.io/gateway-name", name),
        (
            "gateway.networking.k8s.io/gateway-class-name",
            "istio-waypoint",
        ),
        ("gateway.istio.io/managed", "istio.io-mesh-controller"),
        ("sidecar.istio.io/inject", "false"),
        ("istio.io/dataplane-mode", "none"),
        ("service.istio.io/canonical-name", name),
        ("pod-template-hash", "7c9d8"),
    ]));
    p.metadata.annotations = Some(labels(&[("istio.io/rev", rev)]));
    p.spec.containers = vec![crate::snapshot::ContainerInfo {
        name: "istio-proxy".into(),
        image: Some(format!("docker.io/istio/proxyv2:{version}")),
    }];
    if let Some(o) = p
        .metadata
        .owner_references
        .as_mut()
        .and_then(|o| o.first_mut())
    {
        o.name = format!("{name}-7c9d8");
    }
    p.into()
}

/// A pod of an ambient namespace that istio-cni captured.
pub fn captured_pod(ns: &str, name: &str) -> PodInfo {
    let mut p = pod_object(ns, name, None, "");
    p.metadata.annotations = Some(labels(&[("ambient.istio.io/redirection", "enabled")]));
    p.into()
}

impl Snap {
    /// istio-cni and ztunnel of `rev` at `version`, ready on `nodes` nodes, and those nodes.
    pub fn ambient(mut self, rev: &str, version: &str, nodes: usize) -> Self {
        let n = i32::try_from(nodes).expect("a few nodes");
        self.0
            .daemonsets
            .push(node_agent(false, rev, version, n, n));
        self.0.daemonsets.push(node_agent(true, rev, version, n, n));
        for i in 0..nodes {
            self.0.nodes.push(node(&format!("node-{i}"), &[]));
        }
        self
    }

    /// A namespace labelled ambient (plus `extra` labels) with `pods` captured pods.
    pub fn ambient_namespace(mut self, ns: &str, extra: &[(&str, &str)], pods: usize) -> Self {
        let mut l = vec![("istio.io/dataplane-mode", "ambient")];
        l.extend_from_slice(extra);
        self = self.namespace(ns, &l);
        for i in 0..pods {
            self.0.pods.push(captured_pod(ns, &format!("app-{i}")));
        }
        self
    }

    /// A waypoint: its Gateway (`istio.io/rev` when `rev_label`) and one ready pod rendered by
    /// revision `rendered_by` at proxy `version`.
    pub fn waypoint(
        mut self,
        ns: &str,
        name: &str,
        rev_label: Option<&str>,
        rendered_by: &str,
        version: &str,
    ) -> Self {
        self.0.gateways.push(waypoint_gateway(ns, name, rev_label));
        self.0
            .pods
            .push(waypoint_pod(ns, name, rendered_by, version));
        self
    }
}
