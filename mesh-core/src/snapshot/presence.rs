//! What a snapshot knows of one object: whole, only its metadata, known not to exist, or
//! unknown — the question an offline (`--snapshot`) plan asks of every manifest object.
//!
//! A snapshot reads each kind within a scope (Deployments labelled `istio`, the Istio
//! namespace's Services and `istio*` ConfigMaps, every webhook configuration, ...). An object
//! inside the scope of a kind that was read, and not in the snapshot, does not exist; anything
//! else the snapshot cannot tell, and says why, so a plan says "unknown", never "create".
//!
//! For the kinds an Istio manifest holds besides those, `--dump-snapshot` keeps the objects
//! whole ([`WHOLE_KINDS`]: the Istio CRDs with their schemas, the RBAC, service accounts and
//! autoscalers of the Istio namespace, the cluster roles and bindings), so a plan from the file
//! compares them as a live plan does. A hand-made `kubectl get` dump holding such objects keeps
//! them whole too.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{ClusterSnapshot, LAST_APPLIED, Source, TypedMeta, find, whole_key};
use crate::ObjRef;

/// Where the objects of a kind kept whole are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WholeScope {
    /// The Istio namespace.
    IstioNamespace,
    /// Cluster-scoped objects of Istio's API groups (`*.istio.io` CRDs).
    IstioCrds,
    /// Every object of the kind (cluster-scoped).
    Cluster,
}

/// A kind whose objects `--dump-snapshot` keeps whole: (apiVersion, kind, plural, scope).
pub type WholeKind = (&'static str, &'static str, &'static str, WholeScope);

/// The kinds of an Istio manifest that the fixed sources do not read (or not in full: the
/// ConfigMaps of the Istio namespace not named `istio*`, such as `values`), kept whole for
/// planning.
pub const WHOLE_KINDS: [WholeKind; 8] = [
    ("v1", "ConfigMap", "configmaps", WholeScope::IstioNamespace),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        WholeScope::IstioCrds,
    ),
    (
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        WholeScope::IstioNamespace,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "Role",
        "roles",
        WholeScope::IstioNamespace,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        WholeScope::IstioNamespace,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        WholeScope::IstioNamespace,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        WholeScope::Cluster,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        WholeScope::Cluster,
    ),
];

/// Annotation of the `List` `--dump-snapshot` writes: the kinds of [`WHOLE_KINDS`] it holds
/// whole and complete (comma-separated kinds).
pub const WHOLE_ANNOTATION: &str = "kubectl-mesh.dev/whole-kinds";

/// What a snapshot knows of an object.
#[derive(Debug, Clone, PartialEq)]
pub enum Presence {
    /// The whole object.
    Whole(Value),
    /// Only its type and metadata.
    Metadata(Value),
    /// It does not exist: its kind was read, in a scope that holds it.
    Absent,
    /// The snapshot cannot tell whether it exists; why.
    Unknown(String),
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The entry of [`WHOLE_KINDS`] for an object's group and kind.
pub fn whole_kind(api_version: &str, kind: &str) -> Option<&'static WholeKind> {
    WHOLE_KINDS
        .iter()
        .find(|(a, k, _, _)| *k == kind && group_of(a) == group_of(api_version))
}

/// Whether an object of a kind kept whole is inside the scope that kind is read in.
pub fn in_whole_scope(scope: WholeScope, namespace: Option<&str>, name: &str, istio: &str) -> bool {
    match scope {
        WholeScope::IstioNamespace => namespace == Some(istio),
        WholeScope::IstioCrds => name.ends_with(".istio.io"),
        WholeScope::Cluster => namespace.is_none(),
    }
}

/// What a scope holds, in words (`ServiceAccounts of namespace istio-system`).
fn scope_words(kind: &str, scope: WholeScope, istio: &str) -> String {
    match scope {
        WholeScope::IstioNamespace => format!("{kind}s of namespace `{istio}`"),
        WholeScope::IstioCrds => "the Istio CRDs".to_owned(),
        WholeScope::Cluster => format!("{kind}s"),
    }
}

/// An object without what only the server keeps (managed fields, kubectl's last-applied copy).
pub fn slimmed(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(LAST_APPLIED);
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// The one Deployment scope the snapshot reads: Istio's (labelled `istio`).
fn is_istio_deployment(obj: &Value) -> bool {
    obj.pointer("/metadata/labels/istio").is_some()
}

/// Istio's DaemonSets (ztunnel, istio-cni-node): the only ones the snapshot reads — recognised
/// as the ambient view recognises them ([`crate::ambient::agent_kind`]).
fn is_istio_daemonset(obj: &Value) -> bool {
    serde_json::from_value::<k8s_openapi::api::apps::v1::DaemonSet>(obj.clone())
        .is_ok_and(|d| crate::ambient::agent_kind(&d).is_some())
}

impl ClusterSnapshot {
    /// Keeps an object whole (slimmed), and its metadata with the others (CRDs are already
    /// among the typed ones).
    pub fn keep_whole(&mut self, obj: Value) {
        let obj = slimmed(obj);
        if obj["kind"] != "CustomResourceDefinition"
            && let Ok(t) = serde_json::from_value::<TypedMeta>(obj.clone())
        {
            self.others.push(t);
        }
        self.whole.push(obj);
    }

    /// Puts `whole` in its one order (kind, namespace, name), as a file read back has it.
    pub fn sort_whole(&mut self) {
        self.whole.sort_by_key(whole_key);
    }

    /// The objects of `whole` of a kind, as written to a file.
    pub(super) fn whole_kinds_text(&self) -> String {
        self.whole_kinds
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What the snapshot knows of `obj` (a manifest object: its type, name, namespace, labels).
    pub fn presence(&self, obj: &Value) -> Presence {
        let Some(r) = ObjRef::of(obj) else {
            return Presence::Unknown("not an object (no kind or name)".to_owned());
        };
        if let Some(v) = self.whole_object(&r).or_else(|| self.typed_object(&r)) {
            return Presence::Whole(v);
        }
        if let Some(t) = self.metas().into_iter().find(|t| {
            t.kind == r.kind
                && group_of(&t.api_version) == r.group()
                && t.metadata.name.as_deref() == Some(r.name.as_str())
                && t.metadata.namespace == r.namespace
        }) {
            return serde_json::to_value(t)
                .map_or_else(|e| Presence::Unknown(e.to_string()), Presence::Metadata);
        }
        match self.covers(&r, obj) {
            Ok(()) => Presence::Absent,
            Err(why) => Presence::Unknown(format!("not in the snapshot: {why}")),
        }
    }

    fn whole_object(&self, r: &ObjRef) -> Option<Value> {
        self.whole
            .iter()
            .find(|o| ObjRef::of(o).is_some_and(|x| x.same_object(r)))
            .cloned()
    }

    /// One object whole from a typed collection (those that keep objects whole).
    fn typed_object(&self, r: &ObjRef) -> Option<Value> {
        match (r.group(), r.kind.as_str()) {
            ("", "Namespace") => find(&self.namespaces, r),
            ("apps", "Deployment") => find(&self.deployments, r),
            ("apps", "DaemonSet") => find(&self.daemonsets, r),
            ("", "Service") => find(&self.services, r),
            ("", "ConfigMap") => find(&self.config_maps, r),
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
                find(&self.mutating_webhooks, r)
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
                find(&self.validating_webhooks, r)
            }
            ("policy", "PodDisruptionBudget") => find(&self.pdbs, r),
            _ => None,
        }
    }

    /// Whether an object missing from the snapshot is known not to exist: `Err` says why not.
    fn covers(&self, r: &ObjRef, obj: &Value) -> Result<(), String> {
        let istio = self.istio_namespace.as_str();
        if whole_kind(&r.api_version, &r.kind).is_some_and(|(_, k, _, scope)| {
            self.whole_kinds.contains(*k)
                && in_whole_scope(*scope, r.namespace.as_deref(), &r.name, istio)
        }) {
            return Ok(());
        }
        let in_istio = r.namespace.as_deref() == Some(istio);
        let source = |s: Source, in_scope: bool, scope: &str| match self.gap(s) {
            Some(g) => Err(g.reason.clone()),
            None if in_scope => Ok(()),
            None => Err(format!("it holds only {scope}")),
        };
        match (r.group(), r.kind.as_str()) {
            ("", "Namespace") => source(Source::Namespaces, true, ""),
            ("apps", "Deployment") => source(
                Source::Deployments,
                is_istio_deployment(obj),
                "Deployments labelled `istio`",
            ),
            ("apps", "DaemonSet") => source(
                Source::DaemonSets,
                is_istio_daemonset(obj),
                "Istio's DaemonSets (ztunnel, istio-cni-node)",
            ),
            ("", "Service") => source(
                Source::Services,
                in_istio,
                &format!("the Services of namespace `{istio}`"),
            ),
            ("", "ConfigMap") => source(
                Source::ConfigMaps,
                in_istio && r.name.starts_with("istio"),
                &format!("the `istio*` ConfigMaps of namespace `{istio}`"),
            ),
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
                source(Source::MutatingWebhooks, true, "")
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
                source(Source::ValidatingWebhooks, true, "")
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => source(Source::Crds, true, ""),
            ("policy", "PodDisruptionBudget") => source(Source::Pdbs, true, ""),
            ("networking.istio.io", "EnvoyFilter") => source(Source::EnvoyFilters, true, ""),
            ("", "Secret") => Err("a snapshot never holds Secrets".to_owned()),
            _ => self.covers_whole(r),
        }
    }

    fn covers_whole(&self, r: &ObjRef) -> Result<(), String> {
        let istio = self.istio_namespace.as_str();
        let Some((_, kind, _, scope)) = whole_kind(&r.api_version, &r.kind) else {
            return Err(format!("it holds no {}s", r.kind));
        };
        let words = scope_words(kind, *scope, istio);
        if !in_whole_scope(*scope, r.namespace.as_deref(), &r.name, istio) {
            return Err(format!("it holds only the {words}"));
        }
        if self.whole_kinds.contains(*kind) {
            Ok(())
        } else {
            Err(format!(
                "it holds no {words} (take it with `kubectl mesh precheck --dump-snapshot`)"
            ))
        }
    }
}

/// The kinds a file declares it holds whole, if it declares them.
pub(super) fn declared_whole(docs: &[Value]) -> Option<BTreeSet<String>> {
    let text = docs.iter().find_map(|d| {
        d.pointer("/metadata/annotations")?
            .get(WHOLE_ANNOTATION)?
            .as_str()
    })?;
    Some(
        text.split(',')
            .map(str::trim)
            .filter(|k| WHOLE_KINDS.iter().any(|(_, kind, _, _)| kind == k))
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A `kubectl get … -o yaml` dump: whole objects, no declaration of what was read.
    const HAND_MADE: &str = r#"# kube-version: v1.34.4
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: istio-system}}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: istiod, namespace: istio-system, labels: {app: istiod, istio: pilot}}
- apiVersion: v1
  kind: ServiceAccount
  metadata:
    name: istiod
    namespace: istio-system
    managedFields: [{manager: x}]
  automountServiceAccountToken: false
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: app, namespace: shop}}
- apiVersion: apiextensions.k8s.io/v1
  kind: CustomResourceDefinition
  metadata: {name: gateways.networking.istio.io}
  spec: {group: networking.istio.io, names: {kind: Gateway, plural: gateways}, scope: Namespaced,
    versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]}
- apiVersion: apiextensions.k8s.io/v1
  kind: CustomResourceDefinition
  metadata: {name: httproutes.gateway.networking.k8s.io}
  spec: {group: gateway.networking.k8s.io, names: {kind: HTTPRoute, plural: httproutes}}
"#;

    fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}})
    }

    fn unknown(p: Presence) -> String {
        match p {
            Presence::Unknown(why) => why,
            other => panic!("not unknown: {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_knows_an_object_whole_by_metadata_absent_or_not_at_all() {
        let s = ClusterSnapshot::from_yaml(HAND_MADE, "istio-system").unwrap();
        let sa = |ns, name| obj("v1", "ServiceAccount", Some(ns), name);
        let Presence::Whole(v) = s.presence(&sa("istio-system", "istiod")) else {
            panic!("whole")
        };
        assert_eq!(v["automountServiceAccountToken"], false);
        assert!(v.pointer("/metadata/managedFields").is_none(), "{v}");
        assert_eq!(s.presence(&sa("istio-system", "gone")), Presence::Absent);
        assert_eq!(
            unknown(s.presence(&sa("shop", "gone"))),
            "not in the snapshot: it holds only the ServiceAccounts of namespace `istio-system`"
        );
        assert_eq!(
            unknown(s.presence(&obj(
                "rbac.authorization.k8s.io/v1",
                "Role",
                Some("istio-system"),
                "istiod"
            ))),
            "not in the snapshot: it holds no Roles of namespace `istio-system` (take it with `kubectl mesh precheck --dump-snapshot`)"
        );
        let crd = |name| {
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                name,
            )
        };
        assert!(matches!(
            s.presence(&crd("gateways.networking.istio.io")),
            Presence::Whole(v) if v.pointer("/spec/versions/0/schema").is_some()
        ));
        // Not an Istio CRD: only its names and versions are kept.
        assert!(matches!(
            s.presence(&crd("httproutes.gateway.networking.k8s.io")),
            Presence::Metadata(_)
        ));
        assert_eq!(
            s.presence(&crd("new.networking.istio.io")),
            Presence::Absent
        );
        let mut gateway = obj(
            "apps/v1",
            "Deployment",
            Some("istio-system"),
            "istio-ingressgateway",
        );
        gateway["metadata"]["labels"] = json!({"istio": "ingressgateway"});
        assert_eq!(s.presence(&gateway), Presence::Absent);
        assert_eq!(
            unknown(s.presence(&obj("apps/v1", "Deployment", Some("istio-system"), "other"))),
            "not in the snapshot: it holds only Deployments labelled `istio`"
        );
        assert_eq!(
            unknown(s.presence(&obj("v1", "Secret", Some("istio-system"), "cacerts"))),
            "not in the snapshot: a snapshot never holds Secrets"
        );
        // This dump has no DaemonSets: not "none", unknown.
        assert!(
            unknown(s.presence(&obj(
                "apps/v1",
                "DaemonSet",
                Some("istio-system"),
                "ztunnel"
            )))
            .contains("cannot tell none from not dumped")
        );
    }

    /// What the tool writes it reads back the same, whole objects included, and a dump that
    /// declares what it read is taken at its word: a whole kind it does not declare is unknown.
    #[test]
    fn whole_objects_round_trip_and_declarations_are_kept() {
        let s = ClusterSnapshot::from_yaml(HAND_MADE, "istio-system").unwrap();
        assert_eq!(
            s.whole_kinds,
            ["CustomResourceDefinition", "ServiceAccount"]
                .into_iter()
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
        );
        let text = s.to_yaml().unwrap();
        assert!(
            text.contains("kubectl-mesh.dev/whole-kinds: CustomResourceDefinition,ServiceAccount"),
            "{text}"
        );
        assert_eq!(
            text.matches("name: gateways.networking.istio.io").count(),
            1,
            "{text}"
        );
        assert_eq!(
            text.matches("name: istiod\n    namespace: istio-system")
                .count(),
            2
        );
        let again = ClusterSnapshot::from_yaml(&text, "istio-system").unwrap();
        assert_eq!(again.whole, s.whole);
        assert_eq!(again.whole_kinds, s.whole_kinds);
        assert_eq!(again.others, s.others);
        assert_eq!(again.crds, s.crds);
        let undeclared = text.replace("kubectl-mesh.dev/whole-kinds", "x-other");
        let old = ClusterSnapshot::from_yaml(&undeclared, "istio-system").unwrap();
        assert!(old.whole.is_empty());
        assert!(matches!(
            old.presence(&obj("v1", "ServiceAccount", Some("istio-system"), "istiod")),
            Presence::Metadata(_)
        ));
        assert!(matches!(
            old.presence(&obj("v1", "ServiceAccount", Some("istio-system"), "gone")),
            Presence::Unknown(_)
        ));
    }
}
