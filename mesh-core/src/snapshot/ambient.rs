//! The two kinds ambient mode adds to a snapshot, reduced to what its checks read: Gateway API
//! `Gateway`s (waypoints are Gateways of class `istio-waypoint`) and `Node`s (name, labels,
//! taints, readiness — where istio-cni and ztunnel must run, and the taint istio-cni leaves).

use k8s_openapi::{
    ClusterResourceScope, NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::{Deserialize, Serialize};

use super::ConditionInfo;

/// A Gateway API `Gateway` (gateway.networking.k8s.io/v1): metadata, class, status conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// Metadata (labels such as `istio.io/rev`).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The class.
    #[serde(default)]
    pub spec: GatewaySpecInfo,
    /// Conditions (`Accepted`, `Programmed`).
    #[serde(default)]
    pub status: GatewayStatusInfo,
}

/// The part of a Gateway spec read here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpecInfo {
    /// `istio-waypoint` for waypoints.
    #[serde(default)]
    pub gateway_class_name: String,
}

/// The part of a Gateway status read here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatusInfo {
    /// Conditions (only `type` and `status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionInfo>,
}

impl GatewayInfo {
    /// The status of a condition (`Programmed` → `True`), if the Gateway reports it.
    pub fn condition(&self, type_: &str) -> Option<&str> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.as_str())
    }
}

minimal_resource!(
    GatewayInfo,
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io",
    "Gateway",
    "v1",
    "gateways",
    NamespaceResourceScope
);

/// A Node: name, labels, taints and whether it is Ready — nothing more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Name and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Taints.
    #[serde(default)]
    pub spec: NodeSpecInfo,
    /// The Ready condition.
    #[serde(default)]
    pub status: NodeStatusInfo,
}

/// The part of a Node spec read here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSpecInfo {
    /// Taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<TaintInfo>,
}

/// A node taint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaintInfo {
    /// Key.
    pub key: String,
    /// Value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(default)]
    pub effect: String,
}

/// The part of a Node status read here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatusInfo {
    /// Conditions (only `Ready` is kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionInfo>,
}

/// The label every kubelet sets to its operating system.
pub const OS_LABEL: &str = "kubernetes.io/os";

impl NodeInfo {
    /// What a snapshot keeps of a node: name, UID, labels, taints and the Ready condition.
    #[must_use]
    pub fn kept(self) -> Self {
        let m = self.metadata;
        let mut conditions = self.status.conditions;
        conditions.retain(|c| c.type_ == "Ready");
        Self {
            metadata: ObjectMeta {
                name: m.name,
                uid: m.uid,
                labels: m.labels.filter(|l| !l.is_empty()),
                ..ObjectMeta::default()
            },
            spec: self.spec,
            status: NodeStatusInfo { conditions },
        }
    }

    /// Name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Its Ready condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// A Linux node (or one that does not say: the label is set by every kubelet).
    pub fn is_linux(&self) -> bool {
        super::label(&self.metadata, OS_LABEL).is_none_or(|os| os == "linux")
    }

    /// The taint with this key, if the node has it.
    pub fn taint(&self, key: &str) -> Option<&TaintInfo> {
        self.spec.taints.iter().find(|t| t.key == key)
    }
}

minimal_resource!(
    NodeInfo,
    "v1",
    "",
    "Node",
    "v1",
    "nodes",
    ClusterResourceScope
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_keeps_its_name_labels_taints_and_readiness_only() {
        let node: NodeInfo = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux"},
                "annotations": {"big": "x"}, "managedFields": [{"manager": "kubelet"}]},
            "spec": {"taints": [{"key": "cni.istio.io/not-ready", "effect": "NoSchedule"}],
                "podCIDR": "10.0.0.0/24"},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"}], "images": [{"names": ["a"]}]},
        }))
        .unwrap();
        let node = node.kept();
        assert_eq!(node.name(), "n1");
        assert!(node.is_ready() && node.is_linux());
        assert!(node.metadata.annotations.is_none() && node.metadata.managed_fields.is_none());
        assert_eq!(node.status.conditions.len(), 1);
        assert_eq!(
            node.taint("cni.istio.io/not-ready")
                .map(|t| t.effect.as_str()),
            Some("NoSchedule")
        );
    }

    #[test]
    fn a_gateway_keeps_its_class_and_conditions() {
        let gw: GatewayInfo = serde_json::from_value(json!({
            "metadata": {"name": "waypoint", "namespace": "shop"},
            "spec": {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh"}]},
            "status": {"conditions": [{"type": "Programmed", "status": "True", "reason": "x"}]},
        }))
        .unwrap();
        assert_eq!(gw.spec.gateway_class_name, "istio-waypoint");
        assert_eq!(gw.condition("Programmed"), Some("True"));
        assert_eq!(gw.condition("Accepted"), None);
    }
}
