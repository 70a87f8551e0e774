//! The objects an upgrade applies and prunes: each manifest object with the owner labels
//! istioctl's installer adds (so `istioctl uninstall` and `kubectl mesh uninstall` each remove
//! what the other installed), its component, the phase it is applied in, and the live objects
//! of the same installation and revision that the manifest no longer has.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{
    ObjRef,
    inventory::{DEACTIVATED_LABEL, REV_LABEL, TAG_LABEL},
    manifest::ManifestObject,
    plan::tag::never_match,
    snapshot::TypedMeta,
};

/// Label naming the installer component of an object.
pub const COMPONENT: &str = "operator.istio.io/component";
/// Label marking objects an installer manages.
pub const MANAGED: &str = "operator.istio.io/managed";
/// Label carrying the installer's version.
pub const VERSION: &str = "operator.istio.io/version";
/// Label naming the namespace of the installing resource.
pub const OWNER_NAMESPACE: &str = "install.operator.istio.io/owning-resource-namespace";
/// Label of objects a prune must keep.
pub const NOT_PRUNED: &str = "install.operator.istio.io/owning-resource-not-pruned";

/// Kinds a prune may delete (never CRDs: deleting one deletes every resource of it).
pub const PRUNABLE: [&str; 15] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Deployment",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "EnvoyFilter",
    "RoleBinding",
    "Role",
    "ServiceAccount",
    "ClusterRoleBinding",
    "ClusterRole",
    "NetworkAttachmentDefinition",
];

/// The phases of an upgrade, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// The Istio namespace, on a fresh install.
    Namespace,
    /// CRDs, then wait until established.
    Crds,
    /// ClusterRoles and bindings.
    ClusterRbac,
    /// Namespaced configuration and Services.
    Config,
    /// istiod, then wait for the rollout.
    ControlPlane,
    /// Webhook configurations, once istiod runs the target.
    Webhooks,
    /// The istio-cni DaemonSet, then wait until it runs the target on every node.
    Cni,
    /// The ztunnel DaemonSet, then wait until it runs the target on every node (its update
    /// strategy decides how many nodes at once).
    Ztunnel,
    /// Gateways, then wait for their rollout.
    Gateways,
    /// Objects the manifest no longer has.
    Prune,
}

impl Step {
    /// Phase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Crds => "CRDs",
            Self::ClusterRbac => "cluster RBAC",
            Self::Config => "configuration and services",
            Self::ControlPlane => "control plane",
            Self::Webhooks => "webhooks",
            Self::Cni => "istio-cni",
            Self::Ztunnel => "ztunnel",
            Self::Gateways => "gateways",
            Self::Prune => "prune",
        }
    }
}

/// istioctl's component of istio-cni.
pub const CNI: &str = "Cni";
/// istioctl's component of ztunnel.
pub const ZTUNNEL: &str = "Ztunnel";

/// The component of a manifest object: its own label, else the live object's, else what its
/// kind and name say (CRDs and the reader account are Base, `ztunnel*` is Ztunnel, `istio-cni*`
/// is Cni, gateways are gateways, the rest is Pilot — as istioctl's installer labels them).
pub fn component(obj: &Value, live: Option<&Value>) -> String {
    let label = |v: &Value| {
        v.pointer("/metadata/labels")
            .and_then(|l| l.get(COMPONENT))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let Some(c) = label(obj).or_else(|| live.and_then(label)) {
        return c;
    }
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "CustomResourceDefinition" || name == "istio-reader-service-account" {
        "Base".to_owned()
    } else if name.starts_with("ztunnel") {
        ZTUNNEL.to_owned()
    } else if name.starts_with("istio-cni") {
        CNI.to_owned()
    } else if name.contains("egressgateway") {
        "EgressGateways".to_owned()
    } else if name.contains("ingressgateway") {
        "IngressGateways".to_owned()
    } else {
        "Pilot".to_owned()
    }
}

/// The phase an object is applied in.
pub fn step(kind: &str, component: &str) -> Step {
    match kind {
        "Namespace" => Step::Namespace,
        "CustomResourceDefinition" => Step::Crds,
        "ClusterRole" | "ClusterRoleBinding" => Step::ClusterRbac,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => Step::Webhooks,
        "Deployment" | "DaemonSet" | "StatefulSet"
            if matches!(component, "IngressGateways" | "EgressGateways") =>
        {
            Step::Gateways
        }
        "DaemonSet" if component == CNI => Step::Cni,
        "DaemonSet" if component == ZTUNNEL => Step::Ztunnel,
        "Deployment" | "DaemonSet" | "StatefulSet" => Step::ControlPlane,
        _ => Step::Config,
    }
}

/// What owner labels say about an installation.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    /// Revision (`default` for the non-revisioned control plane).
    pub revision: &'a str,
    /// Target version.
    pub version: String,
    /// The Istio namespace.
    pub namespace: &'a str,
}

/// A manifest object made ready to apply: owner labels added, an empty webhook `caBundle`
/// dropped (istiod fills it in; applying "" would take it away), the namespace defaulted.
pub fn prepare(o: &ManifestObject, component: &str, owner: &Owner<'_>) -> Value {
    let mut v = o.value.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(l) = labels.as_object_mut() {
            l.insert(MANAGED.into(), "Reconcile".into());
            l.insert(VERSION.into(), owner.version.clone().into());
            l.insert(REV_LABEL.into(), owner.revision.into());
            l.insert(COMPONENT.into(), component.into());
            l.insert(OWNER_NAMESPACE.into(), owner.namespace.into());
        }
    }
    drop_empty_ca_bundles(&mut v);
    v
}

/// Keeps a deactivated injector deactivated. istioctl deactivates the legacy (non-revisioned)
/// injector when the `default` tag takes over its namespaces; applying the chart's selectors
/// again would make both match and every injected pod would be injected twice or rejected.
pub fn keep_deactivated(v: &mut Value, live: Option<&Value>) {
    let deactivated = |w: &Value| {
        ["namespaceSelector", "objectSelector"].iter().any(|s| {
            w.pointer(&format!("/{s}/matchLabels"))
                .and_then(|m| m.get(DEACTIVATED_LABEL))
                .is_some()
        })
    };
    let Some(live_hooks) = live
        .and_then(|l| l.get("webhooks"))
        .and_then(Value::as_array)
    else {
        return;
    };
    if v["kind"] != "MutatingWebhookConfiguration"
        || live_hooks.is_empty()
        || !live_hooks.iter().all(deactivated)
    {
        return;
    }
    for h in v
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        h["namespaceSelector"] = never_match();
        h["objectSelector"] = never_match();
    }
}

fn drop_empty_ca_bundles(v: &mut Value) {
    let Some(hooks) = v.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for h in hooks {
        if let Some(cc) = h.get_mut("clientConfig").and_then(Value::as_object_mut)
            && cc.get("caBundle").and_then(Value::as_str) == Some("")
        {
            cc.remove("caBundle");
        }
    }
}

/// Key of an object regardless of API version.
pub fn key(r: &ObjRef) -> (String, String, Option<String>, String) {
    (
        r.group().to_owned(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

/// Live objects of this installation (same revision and owner namespace, a component the
/// manifest installs) that the manifest no longer has — never ones marked not-pruned, tag
/// objects, or kinds a prune must not delete.
pub fn prune(
    installed: &[TypedMeta],
    manifest: &BTreeSet<(String, String, Option<String>, String)>,
    components: &BTreeSet<String>,
    owner: &Owner<'_>,
) -> (Vec<(ObjRef, Option<String>)>, Vec<ObjRef>) {
    let mut out = BTreeMap::new();
    let mut kept = BTreeSet::new();
    for t in installed {
        let labels = t.metadata.labels.clone().unwrap_or_default();
        let get = |k: &str| labels.get(k).map(String::as_str);
        let ours = get(REV_LABEL) == Some(owner.revision)
            && get(COMPONENT).is_some_and(|c| components.contains(c))
            && get(OWNER_NAMESPACE).is_none_or(|n| n == owner.namespace)
            && get(TAG_LABEL).is_none()
            && PRUNABLE.contains(&t.kind.as_str());
        if !ours {
            continue;
        }
        let r = ObjRef::new(
            &t.api_version,
            &t.kind,
            t.metadata.namespace.as_deref(),
            t.metadata.name.as_deref().unwrap_or_default(),
        );
        if manifest.contains(&key(&r)) {
            continue;
        }
        if get(NOT_PRUNED) == Some("true") {
            kept.insert(r);
            continue;
        }
        out.insert(key(&r), (r, t.metadata.uid.clone()));
    }
    (out.into_values().collect(), kept.into_iter().collect())
}
