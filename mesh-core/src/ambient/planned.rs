//! The node agents a manifest applies (`precheck -f`, `upgrade -f`): which istio-cni and
//! ztunnel DaemonSets, at what version, rolled how. The order check judges the cluster as the
//! plan leaves it: these agents at their new version, the others as they run now.

use k8s_openapi::api::apps::v1::DaemonSet;

use super::agents::{AgentKind, Rollout, agent_kind};
use crate::{manifest::ManifestObject, version::IstioVersion};

/// An istio-cni or ztunnel DaemonSet of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAgent {
    /// CNI or ztunnel.
    pub kind: AgentKind,
    /// Namespace (the manifest's, else the Istio namespace).
    pub namespace: String,
    /// DaemonSet name.
    pub name: String,
    /// The version of its image.
    pub version: Option<IstioVersion>,
    /// Its update strategy.
    pub rollout: Rollout,
}

/// The agents among a manifest's objects; `istio_namespace` for objects without a namespace.
pub fn planned_agents(objects: &[ManifestObject], istio_namespace: &str) -> Vec<PlannedAgent> {
    objects
        .iter()
        .filter(|o| o.kind() == "DaemonSet")
        .filter_map(|o| {
            let ds: DaemonSet = serde_json::from_value(o.value.clone()).ok()?;
            let kind = agent_kind(&ds)?;
            let image = o
                .value
                .pointer("/spec/template/spec/containers")
                .and_then(|c| c.as_array())
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| {
                            matches!(
                                c.get("name").and_then(|n| n.as_str()),
                                Some("istio-proxy" | "install-cni" | "ztunnel")
                            )
                        })
                        .or_else(|| cs.first())
                })
                .and_then(|c| c.get("image"))
                .and_then(|i| i.as_str());
            Some(PlannedAgent {
                kind,
                namespace: o.namespace().unwrap_or(istio_namespace).to_owned(),
                name: o.name().to_owned(),
                version: image.and_then(crate::version::image_release),
                rollout: Rollout::of_json(o.value.pointer("/spec/updateStrategy")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn istioctls_ambient_profile_has_both_agents() {
        let m =
            Manifest::parse(include_str!("../../fixtures/manifests/ambient-1.30.3.yaml")).unwrap();
        let agents = planned_agents(&m.objects, "istio-system");
        let kinds: Vec<_> = agents.iter().map(|a| (a.kind, a.name.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (AgentKind::Cni, "istio-cni-node"),
                (AgentKind::Ztunnel, "ztunnel")
            ]
        );
        for a in &agents {
            assert_eq!(
                a.version.as_ref().map(ToString::to_string).as_deref(),
                Some("1.30.3")
            );
            assert_eq!(a.namespace, "istio-system");
        }
        let z = &agents[1].rollout;
        assert_eq!(
            (z.max_unavailable.as_deref(), z.max_surge.as_deref()),
            (Some("0"), Some("1"))
        );
        assert_eq!(z.nodes_at_once(3), Some(1));
    }
}
