//! Which nodes istio-cni and ztunnel must run on, and which of those a DaemonSet keeps off.
//!
//! A node is *eligible* when ordinary workloads can run there: a Linux node with no
//! `NoSchedule`/`NoExecute` taint other than istio-cni's own `cni.istio.io/not-ready`. Ambient
//! pods scheduled on an eligible node without istio-cni are never captured; without ztunnel
//! they lose their traffic. A DaemonSet *targets* a node when its pod template's node
//! selector, required node affinity and tolerations let it run there, as the DaemonSet
//! controller decides.

use k8s_openapi::api::{
    apps::v1::DaemonSet,
    core::v1::{NodeSelectorRequirement, PodSpec, Toleration},
};
use serde::Serialize;

use super::CNI_TAINT;
use crate::snapshot::{NodeInfo, TaintInfo, labels};

/// The eligible nodes a DaemonSet should cover, and those it misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// How many nodes are eligible.
    pub eligible: usize,
    /// Eligible nodes its node selector, affinity or tolerations keep it off, sorted.
    pub missed: Vec<String>,
}

/// Whether ordinary workloads can run on a node (see the module header).
pub fn eligible(node: &NodeInfo) -> bool {
    node.is_linux()
        && !node
            .spec
            .taints
            .iter()
            .any(|t| blocks(t) && t.key != CNI_TAINT)
}

fn blocks(t: &TaintInfo) -> bool {
    matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
}

/// Which eligible nodes the DaemonSet misses.
pub fn coverage(d: &DaemonSet, nodes: &[NodeInfo]) -> Coverage {
    let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let eligible_nodes: Vec<&NodeInfo> = nodes.iter().filter(|n| eligible(n)).collect();
    let mut missed: Vec<String> = eligible_nodes
        .iter()
        .filter(|n| !spec.is_some_and(|s| targets(s, n)))
        .map(|n| n.name().to_owned())
        .collect();
    missed.sort();
    Coverage {
        eligible: eligible_nodes.len(),
        missed,
    }
}

/// Whether a pod of this spec may run on the node.
fn targets(spec: &PodSpec, node: &NodeInfo) -> bool {
    let node_labels = labels(&node.metadata);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node_labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    // Terms are ORed; an absent or empty list constrains nothing.
    let affinity_ok = terms.is_none_or(|terms| {
        terms.is_empty()
            || terms.iter().any(|t| {
                t.match_expressions
                    .iter()
                    .flatten()
                    .all(|e| requirement(e, node_labels.get(&e.key).map(String::as_str)))
                    && t.match_fields
                        .iter()
                        .flatten()
                        .all(|e| e.key != "metadata.name" || requirement(e, Some(node.name())))
            })
    });
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let tolerated = node
        .spec
        .taints
        .iter()
        .filter(|t| blocks(t))
        .all(|t| tolerations.iter().any(|tol| tolerates(tol, t)));
    selector_ok && affinity_ok && tolerated
}

fn requirement(e: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = e.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match e.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|b| number(b)),
            ) else {
                return false;
            };
            if e.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

fn tolerates(tol: &Toleration, taint: &TaintInfo) -> bool {
    let effect_ok = tol
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = match tol.operator.as_deref() {
        Some("Exists") => tol
            .key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == taint.key),
        _ => {
            tol.key.as_deref() == Some(taint.key.as_str())
                && tol.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
    };
    effect_ok && key_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> NodeInfo {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap()
    }

    fn ds(template_spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "istio-cni-node", "namespace": "istio-system"},
            "spec": {"selector": {}, "template": {"spec": template_spec}},
        }))
        .unwrap()
    }

    fn linux(name: &str) -> NodeInfo {
        node(
            name,
            json!({"kubernetes.io/os": "linux", "pool": "a"}),
            json!([]),
        )
    }

    #[test]
    fn eligible_nodes_take_ordinary_workloads() {
        assert!(eligible(&linux("a")));
        assert!(eligible(&node(
            "cni",
            json!({}),
            json!([{"key": CNI_TAINT, "effect": "NoSchedule"}])
        )));
        assert!(!eligible(&node(
            "cp",
            json!({}),
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
        )));
        assert!(eligible(&node(
            "soft",
            json!({}),
            json!([{"key": "x", "effect": "PreferNoSchedule"}])
        )));
        assert!(!eligible(&node(
            "win",
            json!({"kubernetes.io/os": "windows"}),
            json!([])
        )));
    }

    #[test]
    fn istios_charts_cover_every_eligible_node() {
        // The template of istioctl's ambient profile: Linux nodes, every taint tolerated.
        let charts = ds(json!({
            "containers": [],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"effect": "NoSchedule", "operator": "Exists"},
                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                {"effect": "NoExecute", "operator": "Exists"}],
        }));
        let tainted = node(
            "t",
            json!({"kubernetes.io/os": "linux"}),
            json!([{"key": CNI_TAINT, "effect": "NoSchedule"}]),
        );
        let c = coverage(&charts, &[linux("a"), linux("b"), tainted]);
        assert_eq!(
            c,
            Coverage {
                eligible: 3,
                missed: vec![]
            }
        );
    }

    #[test]
    fn a_node_selector_affinity_or_missing_toleration_misses_nodes() {
        let picky = ds(json!({"containers": [], "nodeSelector": {"pool": "b"}}));
        let nodes = [linux("a"), node("b", json!({"pool": "b"}), json!([]))];
        assert_eq!(coverage(&picky, &nodes).missed, ["a"]);
        let affinity = ds(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["a"]}]}]}}}}));
        assert_eq!(coverage(&affinity, &nodes).missed, ["a"]);
        let untolerant = ds(json!({"containers": []}));
        let cni_tainted = node(
            "c",
            json!({}),
            json!([{"key": CNI_TAINT, "effect": "NoSchedule"}]),
        );
        let c = coverage(&untolerant, &[linux("a"), cni_tainted]);
        assert_eq!((c.eligible, c.missed), (2, vec!["c".to_owned()]));
    }
}
