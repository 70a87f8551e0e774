//! `ClusterSnapshot`: everything the core may look at, read once.
//!
//! The shell fills it from a live cluster (`cluster::fetch`) with a fixed set of LIST calls, or
//! from a file in the format `kubectl get <kinds> -A -o yaml` prints (`--snapshot FILE`). Checks
//! and planners only ever see this struct, so they are pure and testable on small builders.
//! What could not be read is recorded as a [`Gap`], so a check can say `skipped` with the reason
//! instead of passing on missing data. Secrets are never part of a snapshot.

mod presence;

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

use k8s_openapi::{
    ClusterResourceScope, NamespaceResourceScope,
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        apps::v1::{DaemonSet, Deployment},
        core::v1::{ConfigMap, Namespace, Service},
        discovery::v1::EndpointSlice,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::version::KubeVersion;

pub use presence::{
    Presence, WHOLE_ANNOTATION, WHOLE_KINDS, WholeKind, WholeScope, in_whole_scope, slimmed,
    whole_kind,
};

/// The data sources a snapshot is made of; each may be missing with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `GET /version`.
    Version,
    /// Namespaces.
    Namespaces,
    /// Deployments labelled `istio` (istiod, gateways) cluster-wide.
    Deployments,
    /// Istio DaemonSets (ztunnel, CNI).
    DaemonSets,
    /// Services in the Istio namespace.
    Services,
    /// EndpointSlices in the Istio namespace.
    EndpointSlices,
    /// Istio ConfigMaps in the Istio namespace.
    ConfigMaps,
    /// MutatingWebhookConfigurations.
    MutatingWebhooks,
    /// ValidatingWebhookConfigurations.
    ValidatingWebhooks,
    /// CustomResourceDefinitions.
    Crds,
    /// PodDisruptionBudgets.
    Pdbs,
    /// Pods cluster-wide.
    Pods,
    /// EnvoyFilters cluster-wide.
    EnvoyFilters,
    /// Gateway API Gateways cluster-wide (waypoints are Gateways of class `istio-waypoint`).
    Gateways,
    /// Nodes (name, labels, taints, readiness).
    Nodes,
    /// Services labelled `istio.io/use-waypoint`, cluster-wide (who uses a waypoint).
    WaypointServices,
    /// SelfSubjectAccessReviews.
    Access,
    /// Remote secrets: Secrets labelled `istio/multiCluster=true` in the Istio namespace, by
    /// their metadata only (never their data).
    RemoteSecrets,
}

impl Source {
    /// Human name, as used in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Version => "the Kubernetes version",
            Self::Namespaces => "namespaces",
            Self::Deployments => "deployments",
            Self::DaemonSets => "daemonsets",
            Self::Services => "services",
            Self::EndpointSlices => "endpointslices",
            Self::ConfigMaps => "configmaps",
            Self::MutatingWebhooks => "mutatingwebhookconfigurations",
            Self::ValidatingWebhooks => "validatingwebhookconfigurations",
            Self::Crds => "customresourcedefinitions",
            Self::Pdbs => "poddisruptionbudgets",
            Self::Pods => "pods",
            Self::EnvoyFilters => "envoyfilters",
            Self::Gateways => "gateways (gateway.networking.k8s.io)",
            Self::Nodes => "nodes",
            Self::WaypointServices => "services labelled istio.io/use-waypoint",
            Self::Access => "permissions (SelfSubjectAccessReview)",
            Self::RemoteSecrets => "remote secrets (labelled istio/multiCluster=true)",
        }
    }
}

/// A source that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// What is missing.
    pub source: Source,
    /// Why (forbidden, timeout, not in the snapshot file, ...).
    pub reason: String,
    /// The kind of reason, which decides what to tell the user.
    #[serde(default)]
    pub cause: GapCause,
}

/// Why a source is missing: what fixes it differs (permissions, a fuller dump, a retry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapCause {
    /// The API server refused the read (403).
    Forbidden,
    /// A snapshot file does not hold it.
    NotInFile,
    /// The command does not read it.
    NotRead,
    /// Anything else (a server error, a timeout).
    #[default]
    Failed,
}

/// A source a plan cannot do without is missing: the one error every planner returns for it,
/// classified and hinted by why it is missing — never a permission hint for a kind a snapshot
/// file simply does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {}: {}", gap.source.describe(), gap.reason)]
pub struct Unread {
    /// The missing source and why.
    pub gap: Gap,
}

impl crate::error::Classify for Unread {
    fn class(&self) -> crate::error::Class {
        match self.gap.cause {
            GapCause::NotInFile => crate::error::Class::Usage,
            GapCause::Forbidden | GapCause::NotRead | GapCause::Failed => {
                crate::error::Class::Failed
            }
        }
    }

    fn hints(&self) -> Vec<String> {
        let what = self.gap.source.describe();
        match self.gap.cause {
            GapCause::Forbidden => vec![format!(
                "check your permissions with `kubectl auth can-i list {what}`"
            )],
            GapCause::NotInFile => vec![format!(
                "add them to the snapshot (`kubectl get {what} -A -o yaml`), or write it with `kubectl mesh precheck --dump-snapshot`"
            )],
            GapCause::Failed => {
                vec!["run the command again once the API server answers".to_owned()]
            }
            GapCause::NotRead => Vec::new(),
        }
    }
}

/// One SelfSubjectAccessReview asked and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCheck {
    /// Verb asked.
    pub verb: String,
    /// API group (empty for core).
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Namespace, if namespaced.
    pub namespace: Option<String>,
    /// Whether it is allowed.
    pub allowed: bool,
    /// The authorizer's reason, if any.
    pub reason: Option<String>,
}

/// Everything the checks and planners may read about a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    /// Where it came from (`context admin`, a file path).
    pub origin: String,
    /// The Istio namespace (`-i`).
    pub istio_namespace: String,
    /// Kubernetes server version.
    pub kube_version: Option<KubeVersion>,
    /// All namespaces.
    pub namespaces: Vec<Namespace>,
    /// Deployments labelled `istio` (istiod, gateways), cluster-wide.
    pub deployments: Vec<Deployment>,
    /// Istio DaemonSets (ztunnel, istio-cni-node).
    pub daemonsets: Vec<DaemonSet>,
    /// Services in the Istio namespace.
    pub services: Vec<Service>,
    /// EndpointSlices in the Istio namespace.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Istio's own ConfigMaps in the Istio namespace (`istio*`).
    pub config_maps: Vec<ConfigMap>,
    /// All mutating webhook configurations.
    pub mutating_webhooks: Vec<MutatingWebhookConfiguration>,
    /// All validating webhook configurations.
    pub validating_webhooks: Vec<ValidatingWebhookConfiguration>,
    /// CRDs (minimal).
    pub crds: Vec<CrdInfo>,
    /// PodDisruptionBudgets.
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Pods (minimal).
    pub pods: Vec<PodInfo>,
    /// EnvoyFilters (metadata only).
    pub envoy_filters: Vec<MetaOnly>,
    /// Gateway API Gateways (class, status conditions).
    pub gateways: Vec<GatewayInfo>,
    /// Nodes (name, labels, taints, readiness).
    pub nodes: Vec<NodeInfo>,
    /// Access reviews (live clusters only).
    pub access: Vec<AccessCheck>,
    /// Remote secrets of a multi-cluster mesh, metadata only ([`SecretMeta`]).
    pub remote_secrets: Vec<SecretMeta>,
    /// The kubeconfig context it was read through (live clusters, and dumps that record it).
    pub context: Option<String>,
    /// Objects of kinds not modelled above, by type and metadata only (from snapshot files,
    /// and what a command listed by label).
    pub others: Vec<TypedMeta>,
    /// Objects of [`WHOLE_KINDS`] kept whole, so a plan can be made from a snapshot file
    /// (`--dump-snapshot`, or a hand-made dump holding them); their metadata is in `others`
    /// (CRDs: in `crds`) too.
    pub whole: Vec<Value>,
    /// The kinds of [`WHOLE_KINDS`] that `whole` holds completely, within their scope: an
    /// object of such a kind that `whole` lacks does not exist.
    pub whole_kinds: BTreeSet<String>,
    /// Sources that could not be read.
    pub gaps: Vec<Gap>,
}

impl ClusterSnapshot {
    /// The gap for a source, if it could not be read.
    pub fn gap(&self, source: Source) -> Option<&Gap> {
        self.gaps.iter().find(|g| g.source == source)
    }

    /// Records that a source could not be read (for a reason other than those of
    /// [`add_gap_because`](Self::add_gap_because)).
    pub fn add_gap(&mut self, source: Source, reason: impl Into<String>) {
        self.add_gap_because(source, GapCause::Failed, reason);
    }

    /// Records that a source could not be read, and the kind of reason.
    pub fn add_gap_because(&mut self, source: Source, cause: GapCause, reason: impl Into<String>) {
        if self.gap(source).is_none() {
            self.gaps.push(Gap {
                source,
                reason: reason.into(),
                cause,
            });
        }
    }

    /// The first of `sources` that could not be read, as the planners' error.
    pub fn require(&self, sources: &[Source]) -> Result<(), Unread> {
        match sources.iter().find_map(|s| self.gap(*s)) {
            Some(gap) => Err(Unread { gap: gap.clone() }),
            None => Ok(()),
        }
    }

    /// Labels of a namespace, if it exists.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }
}

impl ClusterSnapshot {
    /// Every object of the snapshot by type and metadata (typed collections and `others`).
    pub fn metas(&self) -> Vec<TypedMeta> {
        let mut out = Vec::new();
        metas_of(&mut out, &self.namespaces);
        metas_of(&mut out, &self.deployments);
        metas_of(&mut out, &self.daemonsets);
        metas_of(&mut out, &self.services);
        metas_of(&mut out, &self.config_maps);
        metas_of(&mut out, &self.mutating_webhooks);
        metas_of(&mut out, &self.validating_webhooks);
        metas_of(&mut out, &self.crds);
        metas_of(&mut out, &self.pdbs);
        metas_of(&mut out, &self.envoy_filters);
        metas_of(&mut out, &self.gateways);
        out.extend(self.others.iter().cloned());
        out
    }
}

fn metas_of<K>(out: &mut Vec<TypedMeta>, items: &[K])
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    out.extend(items.iter().map(|o| TypedMeta {
        api_version: K::API_VERSION.to_owned(),
        kind: K::KIND.to_owned(),
        metadata: o.metadata().clone(),
    }));
}

fn find<K>(items: &[K], r: &crate::ObjRef) -> Option<Value>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta> + Serialize,
{
    let o = items.iter().find(|o| {
        o.metadata().name.as_deref() == Some(r.name.as_str())
            && o.metadata().namespace == r.namespace
    })?;
    let mut v = serde_json::to_value(o).ok()?;
    if let Value::Object(m) = &mut v {
        m.insert("apiVersion".into(), K::API_VERSION.into());
        m.insert("kind".into(), K::KIND.into());
    }
    Some(v)
}

/// Makes a minimal struct with a `metadata: ObjectMeta` field listable by kube like the
/// k8s-openapi type it stands for (the list kind is the kind plus `List`).
macro_rules! minimal_resource {
    ($ty:ident, $api:literal, $group:literal, $kind:literal, $version:literal, $plural:literal, $scope:ident) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = $api;
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }

        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = concat!($kind, "List");
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

mod ambient;

pub use ambient::{
    GatewayInfo, GatewaySpecInfo, GatewayStatusInfo, NodeInfo, NodeSpecInfo, NodeStatusInfo,
    OS_LABEL, TaintInfo,
};

/// A pod as the API and snapshot files carry it, reduced by serde to what a check may read
/// (full Pods are large; thousands are listed). Converted to a compact [`PodInfo`] to be kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodObject {
    /// Metadata (name, namespace, labels, annotations, owners).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Containers.
    #[serde(default)]
    pub spec: PodSpecInfo,
    /// Phase and readiness.
    #[serde(default)]
    pub status: PodStatusInfo,
}

/// The part of a pod spec that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecInfo {
    /// Containers.
    #[serde(default)]
    pub containers: Vec<ContainerInfo>,
    /// Init containers (native sidecars live here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<ContainerInfo>,
}

/// A container's name and image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Image reference.
    #[serde(default)]
    pub image: Option<String>,
}

/// Phase and conditions of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodStatusInfo {
    /// `Running`, `Pending`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions (only `type` and `status` are read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionInfo>,
}

/// A status condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConditionInfo {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` / `False` / `Unknown`.
    pub status: String,
}

/// kubectl's copy of a whole object in an annotation: never read, often the largest field.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The pod annotations any check or planner reads; a pod keeps only these. Reading another
/// one means adding it here (debug builds assert it).
pub const POD_ANNOTATIONS: [&str; 6] = [
    "sidecar.istio.io/status",
    "sidecar.istio.io/inject",
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
    // Set by istio-cni on the pods ambient mode captured (`enabled`, or `pending`).
    "ambient.istio.io/redirection",
    // The revision that rendered a pod: injected sidecars and the Deployments istiod's gateway
    // controller makes (gateways, waypoints), whose pods carry no injection status.
    "istio.io/rev",
];

/// A pod's owner reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OwnerInfo {
    /// API version of the owner.
    pub api_version: String,
    /// Kind of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// UID of the owner.
    pub uid: String,
    /// Whether the owner is the pod's controller.
    pub controller: bool,
}

/// Labels or annotations, shared between the pods that have the same ones.
pub type SharedMap = Arc<BTreeMap<String, String>>;

/// A pod as a snapshot keeps it: what the checks read and nothing else, with what the pods of
/// one workload have in common (namespace, labels, annotations, owners, containers, phase)
/// held once and shared. At 20,000 pods this is a few hundred bytes per pod instead of kilobytes.
///
/// Built from a [`PodObject`] (`From`, or [`PodInterner::pod`] to share with earlier pods);
/// serialized as one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "PodObject", into = "PodObject")]
pub struct PodInfo {
    namespace: Arc<str>,
    name: Box<str>,
    uid: Option<Box<str>>,
    labels: SharedMap,
    annotations: SharedMap,
    owners: Arc<[OwnerInfo]>,
    spec: Arc<PodSpecInfo>,
    phase: Option<Arc<str>>,
    /// The status of the Ready condition.
    ready: Option<Arc<str>>,
}

/// Shares equal parts between pods as they are read: one copy of each distinct namespace,
/// label set, annotation set, owner list, container list and phase.
#[derive(Debug, Default)]
pub struct PodInterner {
    strs: HashSet<Arc<str>>,
    maps: HashSet<SharedMap>,
    owners: HashSet<Arc<[OwnerInfo]>>,
    specs: HashSet<Arc<PodSpecInfo>>,
}

/// The one shared copy of `value` in `set`.
fn shared<T: ?Sized + Eq + std::hash::Hash>(
    set: &mut HashSet<Arc<T>>,
    value: &T,
    make: impl FnOnce() -> Arc<T>,
) -> Arc<T> {
    if let Some(s) = set.get(value) {
        return s.clone();
    }
    let s = make();
    set.insert(s.clone());
    s
}

impl PodInterner {
    fn str(&mut self, s: &str) -> Arc<str> {
        shared(&mut self.strs, s, || Arc::from(s))
    }

    /// A label or annotation set, shared.
    pub fn map(&mut self, m: BTreeMap<String, String>) -> SharedMap {
        if let Some(s) = self.maps.get(&m) {
            return s.clone();
        }
        let s = Arc::new(m);
        self.maps.insert(s.clone());
        s
    }

    /// Converts a pod, sharing what it has in common with pods converted before.
    pub fn pod(&mut self, o: PodObject) -> PodInfo {
        let m = o.metadata;
        let mut annotations = m.annotations.unwrap_or_default();
        annotations.retain(|k, _| POD_ANNOTATIONS.contains(&k.as_str()));
        let owners: Vec<OwnerInfo> = m
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|r| OwnerInfo {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
                uid: r.uid,
                controller: r.controller == Some(true),
            })
            .collect();
        let ready = o
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| self.str(&c.status));
        PodInfo {
            namespace: self.str(m.namespace.as_deref().unwrap_or_default()),
            name: m.name.unwrap_or_default().into_boxed_str(),
            uid: m.uid.map(String::into_boxed_str),
            labels: self.map(m.labels.unwrap_or_default()),
            annotations: self.map(annotations),
            owners: shared(&mut self.owners, owners.as_slice(), || {
                Arc::from(owners.clone())
            }),
            spec: shared(&mut self.specs, &o.spec, || Arc::new(o.spec.clone())),
            phase: o.status.phase.as_deref().map(|p| self.str(p)),
            ready,
        }
    }
}

impl From<PodObject> for PodInfo {
    fn from(o: PodObject) -> Self {
        PodInterner::default().pod(o)
    }
}

impl From<PodInfo> for PodObject {
    fn from(p: PodInfo) -> Self {
        let map = |m: &SharedMap| Some(BTreeMap::clone(m)).filter(|m| !m.is_empty());
        let owners: Vec<OwnerReference> = p
            .owners
            .iter()
            .map(|o| OwnerReference {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
                controller: o.controller.then_some(true),
                block_owner_deletion: None,
            })
            .collect();
        PodObject {
            metadata: ObjectMeta {
                name: Some(p.name.into()),
                namespace: Some(p.namespace.to_string()).filter(|n| !n.is_empty()),
                uid: p.uid.map(Into::into),
                labels: map(&p.labels),
                annotations: map(&p.annotations),
                owner_references: Some(owners).filter(|o| !o.is_empty()),
                ..ObjectMeta::default()
            },
            spec: PodSpecInfo::clone(&p.spec),
            status: PodStatusInfo {
                phase: p.phase.map(|s| s.to_string()),
                conditions: p
                    .ready
                    .map(|s| ConditionInfo {
                        type_: "Ready".into(),
                        status: s.to_string(),
                    })
                    .into_iter()
                    .collect(),
            },
        }
    }
}

impl k8s_openapi::Resource for PodInfo {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = NamespaceResourceScope;
}

impl PodInfo {
    /// Namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// UID.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// Every label.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// Every label, shared with the pods that have the same ones.
    pub fn shared_labels(&self) -> &SharedMap {
        &self.labels
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// An annotation's value; only [`POD_ANNOTATIONS`] are kept.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        debug_assert!(
            POD_ANNOTATIONS.contains(&key),
            "pod annotation {key} is read but not kept: add it to POD_ANNOTATIONS"
        );
        self.annotations.get(key).map(String::as_str)
    }

    /// Owner references.
    pub fn owners(&self) -> &[OwnerInfo] {
        &self.owners
    }

    /// Containers and init containers.
    pub fn spec(&self) -> &PodSpecInfo {
        &self.spec
    }

    /// The phase (`Running`, `Pending`, ...).
    pub fn phase(&self) -> Option<&str> {
        self.phase.as_deref()
    }

    /// Running and Ready.
    pub fn is_ready(&self) -> bool {
        self.phase() == Some("Running") && self.ready.as_deref() == Some("True")
    }

    /// Terminal (Succeeded / Failed): such pods no longer run a proxy.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase(), Some("Succeeded" | "Failed"))
    }

    /// The controlling owner reference.
    pub fn controller(&self) -> Option<&OwnerInfo> {
        self.owners.iter().find(|o| o.controller)
    }

    /// The image of the `istio-proxy` container (regular or native sidecar).
    pub fn proxy_image(&self) -> Option<&str> {
        self.spec.proxy_image()
    }
}

impl PodSpecInfo {
    /// The image of the `istio-proxy` container (regular or native sidecar).
    pub fn proxy_image(&self) -> Option<&str> {
        self.image_of("istio-proxy")
    }

    /// The image of a container (regular or init) by name.
    pub fn image_of(&self, container: &str) -> Option<&str> {
        self.containers
            .iter()
            .chain(&self.init_containers)
            .find(|c| c.name == container)
            .and_then(|c| c.image.as_deref())
    }
}

minimal_resource!(
    PodObject,
    "v1",
    "",
    "Pod",
    "v1",
    "pods",
    NamespaceResourceScope
);

/// A CRD, reduced to its names and served versions (Istio's schemas are large).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrdInfo {
    /// Metadata (name, labels, annotations such as the Gateway API bundle version).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Group, kind and versions.
    #[serde(default)]
    pub spec: CrdSpecInfo,
}

/// The part of a CRD spec that matters here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrdSpecInfo {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Names (kind).
    #[serde(default)]
    pub names: CrdNamesInfo,
    /// Versions with their served flag.
    #[serde(default)]
    pub versions: Vec<CrdVersionInfo>,
}

/// CRD names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrdNamesInfo {
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Plural.
    #[serde(default)]
    pub plural: String,
}

/// A CRD version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrdVersionInfo {
    /// Version name.
    pub name: String,
    /// Served.
    #[serde(default)]
    pub served: bool,
    /// Storage version.
    #[serde(default)]
    pub storage: bool,
}

impl CrdInfo {
    /// Names of the served versions.
    pub fn served(&self) -> impl Iterator<Item = &str> {
        self.spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.as_str())
    }
}

minimal_resource!(
    CrdInfo,
    "apiextensions.k8s.io/v1",
    "apiextensions.k8s.io",
    "CustomResourceDefinition",
    "v1",
    "customresourcedefinitions",
    ClusterResourceScope
);

/// An object of which only the metadata is kept (EnvoyFilters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaOnly {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
}

minimal_resource!(
    MetaOnly,
    "networking.istio.io/v1alpha3",
    "networking.istio.io",
    "EnvoyFilter",
    "v1alpha3",
    "envoyfilters",
    NamespaceResourceScope
);

/// Label Istio's secret controller selects remote secrets by (`pkg/kube/multicluster`).
pub const REMOTE_SECRET_LABEL: &str = "istio/multiCluster";
/// Annotation `istioctl create-remote-secret` puts on a remote secret: the name of the cluster
/// whose API server the secret reaches.
pub const REMOTE_CLUSTER_ANNOTATION: &str = "networking.istio.io/cluster";

/// Whether a Secret's metadata marks it as a remote secret (`istio/multiCluster=true`).
pub fn is_remote_secret(meta: &ObjectMeta) -> bool {
    label(meta, REMOTE_SECRET_LABEL) == Some("true")
}

/// Whether a ConfigMap of the Istio namespace is one of Istio's: `istio*` (mesh config,
/// injector), or the `values[-<rev>]` ConfigMap the istiod chart renders with the install's
/// values (the only place a remote profile keeps them).
pub fn is_istio_config_map(meta: &ObjectMeta) -> bool {
    let n = name(meta);
    let values = n == "values" || n.starts_with("values-");
    n.starts_with("istio") || (values && label(meta, "istio.io/rev").is_some())
}

/// A Secret known by its metadata only: name, namespace, UID, labels and the one annotation a
/// check reads. The type has no field for data, so a snapshot can never hold a secret's content
/// (nor kubectl's last-applied copy of it, which is an annotation and is dropped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// Metadata (reduced; see [`SecretMeta::kept`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
}

impl SecretMeta {
    /// What is kept of a Secret's metadata.
    pub fn kept(m: ObjectMeta) -> Self {
        let annotations = m.annotations.map(|mut a| {
            a.retain(|k, _| k == REMOTE_CLUSTER_ANNOTATION);
            a
        });
        Self {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                labels: m.labels.filter(|l| !l.is_empty()),
                annotations: annotations.filter(|a| !a.is_empty()),
                ..ObjectMeta::default()
            },
        }
    }
}

minimal_resource!(
    SecretMeta,
    "v1",
    "",
    "Secret",
    "v1",
    "secrets",
    NamespaceResourceScope
);

/// An object known by its type and metadata only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedMeta {
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// Labels of an object's metadata (empty map when none).
pub fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

/// A label value of an object's metadata.
pub fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// An annotation value of an object's metadata.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Name of an object's metadata.
pub fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// Namespace of an object's metadata (empty for cluster-scoped objects).
pub fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

/// Error reading a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// Not YAML.
    #[error("snapshot is not valid YAML: {0}")]
    Yaml(String),
    /// An item of a known kind did not match its schema.
    #[error("item {index} ({kind} `{name}`) does not match the {kind} schema")]
    Item {
        /// Position among the items.
        index: usize,
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The `# kube-version:` header is not a version.
    #[error("the snapshot header's kube-version is not a Kubernetes version")]
    KubeVersion(#[source] crate::version::VersionError),
}

/// Sources a snapshot file can hold (all but the version and the access reviews).
pub const FILE_SOURCES: [Source; 16] = [
    Source::Namespaces,
    Source::Deployments,
    Source::DaemonSets,
    Source::Services,
    Source::EndpointSlices,
    Source::ConfigMaps,
    Source::MutatingWebhooks,
    Source::ValidatingWebhooks,
    Source::Crds,
    Source::Pdbs,
    Source::Pods,
    Source::EnvoyFilters,
    Source::Gateways,
    Source::Nodes,
    Source::WaypointServices,
    Source::RemoteSecrets,
];

/// Annotation of the `List` `--dump-snapshot` writes: the sources it read (comma-separated,
/// e.g. `namespaces,pods`), so a kind with no objects reads back as "none", not "unknown".
pub const SOURCES_ANNOTATION: &str = "kubectl-mesh.dev/sources";

impl Source {
    /// The name used in [`SOURCES_ANNOTATION`].
    pub fn key(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The header line `--dump-snapshot` writes so the Kubernetes version survives a round trip.
pub const KUBE_VERSION_HEADER: &str = "# kube-version: ";
/// The header line `--dump-snapshot` writes with the kubeconfig context it read (fleet runs on
/// snapshot files name each cluster by it).
pub const CONTEXT_HEADER: &str = "# context: ";

impl ClusterSnapshot {
    /// Reads a snapshot from YAML: a `v1 List` or several documents of objects or Lists.
    /// Unknown kinds are ignored; Secrets are dropped.
    pub fn from_yaml(text: &str, istio_namespace: &str) -> Result<Self, SnapshotFileError> {
        let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, yaml_options())
            .map_err(|e| SnapshotFileError::Yaml(first_line(&e)))?;
        let mut snap = ClusterSnapshot {
            istio_namespace: istio_namespace.to_owned(),
            ..Default::default()
        };
        let declared = declared_sources(&docs);
        // A dump the tool wrote holds whole only the kinds it says; a hand-made one (`kubectl
        // get -o yaml`) holds every object whole.
        let whole = match &declared {
            Some(_) => presence::declared_whole(&docs).unwrap_or_default(),
            None => WHOLE_KINDS.iter().map(|k| k.1.to_owned()).collect(),
        };
        let mut items = Vec::new();
        for doc in docs {
            flatten_items(doc, &mut items);
        }
        for (index, item) in items.into_iter().enumerate() {
            snap.add_item(index, item, &whole)?;
        }
        snap.sort_whole();
        snap.whole_kinds = match &declared {
            Some(_) => whole,
            None => snap
                .whole
                .iter()
                .filter_map(|o| o["kind"].as_str().map(str::to_owned))
                .collect(),
        };
        if let Some(v) = header(text, KUBE_VERSION_HEADER) {
            snap.kube_version =
                Some(KubeVersion::parse(v).map_err(SnapshotFileError::KubeVersion)?);
        }
        snap.context = header(text, CONTEXT_HEADER)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        snap.access_gap_for_file();
        snap.unread_gaps(declared.as_ref());
        Ok(snap)
    }

    /// How many objects of a source the snapshot holds.
    fn count(&self, source: Source) -> usize {
        match source {
            Source::Namespaces => self.namespaces.len(),
            Source::Deployments => self.deployments.len(),
            Source::DaemonSets => self.daemonsets.len(),
            Source::Services => self.services.len(),
            Source::EndpointSlices => self.endpoint_slices.len(),
            Source::ConfigMaps => self.config_maps.len(),
            Source::MutatingWebhooks => self.mutating_webhooks.len(),
            Source::ValidatingWebhooks => self.validating_webhooks.len(),
            Source::Crds => self.crds.len(),
            Source::Pdbs => self.pdbs.len(),
            Source::Pods => self.pods.len(),
            Source::EnvoyFilters => self.envoy_filters.len(),
            Source::Gateways => self.gateways.len(),
            Source::Nodes => self.nodes.len(),
            // A dump of services holds any that use a waypoint: it was read if it has services.
            Source::WaypointServices => {
                self.services.len() + self.others.iter().filter(|o| o.kind == "Service").count()
            }
            Source::RemoteSecrets => self.remote_secrets.len(),
            Source::Version | Source::Access => 0,
        }
    }

    /// A kind a file does not hold is unknown, not empty: a gap, so the checks that need it
    /// say `skipped` instead of judging nothing. A file that declares what it read (the
    /// [`SOURCES_ANNOTATION`] `--dump-snapshot` writes) is taken at its word.
    fn unread_gaps(&mut self, declared: Option<&std::collections::BTreeSet<Source>>) {
        for source in FILE_SOURCES {
            let read = match declared {
                Some(d) => d.contains(&source),
                None => self.count(source) > 0,
            };
            if read {
                continue;
            }
            let reason = match declared {
                Some(_) => format!("the snapshot file was taken without {}", source.describe()),
                None => format!(
                    "the snapshot file has no {}: a dump cannot tell none from not dumped (add them, or use --dump-snapshot)",
                    source.describe()
                ),
            };
            self.add_gap_because(source, GapCause::NotInFile, reason);
        }
    }

    /// The sources read without a gap, for [`SOURCES_ANNOTATION`].
    pub fn read_sources(&self) -> Vec<Source> {
        FILE_SOURCES
            .into_iter()
            .filter(|s| self.gap(*s).is_none())
            .collect()
    }

    fn access_gap_for_file(&mut self) {
        self.add_gap_because(
            Source::Access,
            GapCause::NotInFile,
            "a snapshot file cannot answer access reviews; run against the cluster",
        );
        if self.kube_version.is_none() {
            self.add_gap_because(
                Source::Version,
                GapCause::NotInFile,
                "the snapshot has no Kubernetes version; pass --kube-version",
            );
        }
    }

    /// Adds one item of a file; objects of `whole` kinds inside their scope are kept whole.
    fn add_item(
        &mut self,
        index: usize,
        item: Value,
        whole: &BTreeSet<String>,
    ) -> Result<(), SnapshotFileError> {
        let id = ItemId::of(&item);
        let err = |source| SnapshotFileError::Item {
            index,
            kind: id.kind.clone(),
            name: id.name.clone(),
            source,
        };
        let keep = whole_kind(&id.api_version, &id.kind).is_some_and(|(_, k, _, scope)| {
            whole.contains(*k)
                && in_whole_scope(
                    *scope,
                    id.namespace.as_deref(),
                    &id.name,
                    &self.istio_namespace,
                )
        });
        if keep && id.kind == "CustomResourceDefinition" {
            self.keep_whole(item.clone());
        }
        let Some(item) = self.add_typed(&id, item).map_err(err)? else {
            return Ok(());
        };
        // Not a typed kind, or outside the typed scope: whole, or by type and metadata.
        let secret = id.kind == "Secret" && id.api_version == "v1";
        if id.kind.is_empty() || item.get("metadata").is_none() || secret {
            return Ok(());
        }
        let meta: TypedMeta = from(serde_json::json!({
            "apiVersion": id.api_version, "kind": id.kind, "metadata": item["metadata"],
        }))
        .map_err(err)?;
        if keep {
            self.keep_whole(item);
        } else {
            self.others.push(meta);
        }
        Ok(())
    }

    /// Adds an item to its typed collection; gives it back when it belongs to none.
    fn add_typed(&mut self, id: &ItemId, item: Value) -> Result<Option<Value>, serde_json::Error> {
        let in_istio_ns = id.namespace.as_deref() == Some(self.istio_namespace.as_str());
        match (id.group(), id.kind.as_str()) {
            ("", "Namespace") => self.namespaces.push(from(item)?),
            ("apps", "Deployment") => self.deployments.push(from(item)?),
            ("apps", "DaemonSet") => self.daemonsets.push(from(item)?),
            ("", "Service") if in_istio_ns => self.services.push(from(item)?),
            ("discovery.k8s.io", "EndpointSlice") if in_istio_ns => {
                self.endpoint_slices.push(from(item)?);
            }
            ("", "ConfigMap")
                if in_istio_ns && item_meta(&item).is_some_and(|m| is_istio_config_map(&m)) =>
            {
                self.config_maps.push(from(item)?);
            }
            ("", "Secret") => {
                // Only a remote secret's metadata is kept; every other Secret is dropped whole.
                let meta = item_meta(&item).unwrap_or_default();
                if in_istio_ns && is_remote_secret(&meta) {
                    self.remote_secrets.push(SecretMeta::kept(meta));
                }
            }
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
                self.mutating_webhooks.push(from(item)?);
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
                self.validating_webhooks.push(from(item)?);
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => self.crds.push(from(item)?),
            ("policy", "PodDisruptionBudget") => self.pdbs.push(from(item)?),
            ("", "Pod") => self.pods.push(from(item)?),
            ("networking.istio.io", "EnvoyFilter") => self.envoy_filters.push(from(item)?),
            ("gateway.networking.k8s.io", "Gateway") => self.gateways.push(from(item)?),
            ("", "Node") => self.nodes.push(NodeInfo::kept(from(item)?)),
            _ => return Ok(Some(item)),
        }
        Ok(None)
    }

    /// Writes the snapshot as one YAML `v1 List`, with the Kubernetes version in a header line.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        let mut items = Vec::new();
        push_items(&mut items, &self.namespaces);
        push_items(&mut items, &self.deployments);
        push_items(&mut items, &self.daemonsets);
        push_items(&mut items, &self.services);
        push_items(&mut items, &self.endpoint_slices);
        push_items(&mut items, &self.config_maps);
        push_items(&mut items, &self.mutating_webhooks);
        push_items(&mut items, &self.validating_webhooks);
        // Objects kept whole are written whole, in the place of their metadata.
        let mut whole: BTreeMap<(String, Option<String>, String), &Value> = self
            .whole
            .iter()
            .filter_map(|o| Some((whole_key(o)?, o)))
            .collect();
        let mut whole_or = |kind: &str, meta: &ObjectMeta, v: Value| {
            let key = (
                kind.to_owned(),
                meta.namespace.clone(),
                meta.name.clone().unwrap_or_default(),
            );
            whole.remove(&key).cloned().unwrap_or(v)
        };
        let mut crds = Vec::new();
        push_items(&mut crds, &self.crds);
        for (c, v) in self.crds.iter().zip(crds) {
            items.push(whole_or("CustomResourceDefinition", &c.metadata, v));
        }
        push_items(&mut items, &self.pdbs);
        push_items(&mut items, &self.pods);
        push_items(&mut items, &self.envoy_filters);
        push_items(&mut items, &self.gateways);
        push_items(&mut items, &self.nodes);
        push_items(&mut items, &self.remote_secrets);
        for o in &self.others {
            if let Ok(v) = serde_json::to_value(o) {
                items.push(whole_or(&o.kind, &o.metadata, v));
            }
        }
        items.extend(whole.into_values().cloned());
        let sources: Vec<String> = self.read_sources().into_iter().map(Source::key).collect();
        let mut annotations = serde_json::Map::new();
        annotations.insert(SOURCES_ANNOTATION.into(), sources.join(",").into());
        if !self.whole_kinds.is_empty() {
            annotations.insert(WHOLE_ANNOTATION.into(), self.whole_kinds_text().into());
        }
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"annotations": annotations},
            "items": items,
        });
        let mut out = String::new();
        if let Some(v) = &self.kube_version {
            out.push_str(&format!("{KUBE_VERSION_HEADER}{v}\n"));
        }
        if let Some(c) = self.context.as_deref().filter(|c| !c.contains('\n')) {
            out.push_str(&format!("{CONTEXT_HEADER}{c}\n"));
        }
        out.push_str(&serde_saphyr::to_string(&list)?);
        Ok(out)
    }
}

/// What identifies an item of a file.
struct ItemId {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl ItemId {
    fn of(item: &Value) -> Self {
        let text = |p: &str| item.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Self {
            api_version: text("/apiVersion").unwrap_or_default(),
            kind: text("/kind").unwrap_or_default(),
            namespace: text("/metadata/namespace").filter(|n| !n.is_empty()),
            name: text("/metadata/name").unwrap_or_default(),
        }
    }

    fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// The sources a file declares it read, if it declares them.
fn declared_sources(docs: &[Value]) -> Option<std::collections::BTreeSet<Source>> {
    let text = docs.iter().find_map(|d| {
        d.pointer("/metadata/annotations")?
            .get(SOURCES_ANNOTATION)?
            .as_str()
    })?;
    Some(
        text.split(',')
            .filter(|k| !k.trim().is_empty())
            .filter_map(|k| serde_json::from_value(Value::String(k.trim().to_owned())).ok())
            .collect(),
    )
}

/// A parser error in one line (`line 6 column 13: unclosed bracket '{'`), without the source
/// excerpt the parser draws under it.
pub fn first_line(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

fn yaml_options() -> serde_saphyr::Options {
    // Snapshots of large clusters hold hundreds of thousands of nodes: no event budget.
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    options
}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

fn flatten_items(doc: Value, out: &mut Vec<Value>) {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"));
    match doc {
        Value::Object(mut map) if is_list => {
            let item_kind = map
                .get("kind")
                .and_then(Value::as_str)
                .and_then(|k| k.strip_suffix("List"))
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
            let api_version = map.get("apiVersion").cloned();
            if let Some(Value::Array(items)) = map.remove("items") {
                for mut item in items {
                    fill_type(&mut item, item_kind.as_deref(), api_version.as_ref());
                    flatten_items(item, out);
                }
            }
        }
        Value::Object(_) => out.push(doc),
        _ => {}
    }
}

/// Items of a typed list (`PodList`) may omit their own kind and apiVersion.
fn fill_type(item: &mut Value, kind: Option<&str>, api_version: Option<&Value>) {
    let Value::Object(map) = item else { return };
    if let Some(kind) = kind {
        map.entry("kind").or_insert_with(|| Value::from(kind));
        if let Some(api) = api_version {
            map.entry("apiVersion").or_insert_with(|| api.clone());
        }
    }
}

/// An item's metadata, when it has well-formed metadata.
fn item_meta(item: &Value) -> Option<ObjectMeta> {
    from(item.get("metadata")?.clone()).ok()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(v)
}

/// (kind, namespace, name) of a whole object.
pub(crate) fn whole_key(o: &Value) -> Option<(String, Option<String>, String)> {
    let r = crate::ObjRef::of(o)?;
    Some((r.kind, r.namespace, r.name))
}

fn push_items<K: k8s_openapi::Resource + Serialize>(out: &mut Vec<Value>, objs: &[K]) {
    for obj in objs {
        let Ok(Value::Object(mut map)) = serde_json::to_value(obj) else {
            continue;
        };
        map.insert("apiVersion".into(), K::API_VERSION.into());
        map.insert("kind".into(), K::KIND.into());
        out.push(Value::Object(map));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# kube-version: v1.34.4
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: prod, labels: {istio.io/rev: prod-tag}}
- apiVersion: v1
  kind: Secret
  metadata: {name: token, namespace: istio-system}
  data: {token: c2VjcmV0}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: user-data, namespace: istio-system}
---
apiVersion: v1
kind: PodList
items:
- metadata:
    name: web-1
    namespace: prod
    annotations: {sidecar.istio.io/status: '{"revision":"1-30-3"}'}
  spec:
    containers:
    - {name: app, image: nginx}
    - {name: istio-proxy, image: docker.io/istio/proxyv2:1.30.3}
  status:
    phase: Running
    conditions: [{type: Ready, status: "True"}]
"#;

    #[test]
    fn reads_lists_typed_lists_and_drops_secrets() {
        let snap = ClusterSnapshot::from_yaml(FILE, "istio-system").unwrap();
        assert_eq!(snap.namespaces.len(), 1);
        assert_eq!(snap.pods.len(), 1);
        assert!(
            snap.config_maps.is_empty(),
            "only istio* config maps are kept"
        );
        assert_eq!(snap.kube_version.as_ref().unwrap().minor, 34);
        assert_eq!(
            snap.others.len(),
            1,
            "the non-Istio ConfigMap, not the Secret"
        );
        assert_eq!(snap.others[0].kind, "ConfigMap");
        let pod = &snap.pods[0];
        assert!(pod.is_ready());
        assert_eq!(pod.proxy_image(), Some("docker.io/istio/proxyv2:1.30.3"));
        assert!(snap.gap(Source::Access).is_some());
        assert!(snap.gap(Source::Version).is_none());
    }

    #[test]
    fn round_trips_through_yaml_without_secrets() {
        let snap = ClusterSnapshot::from_yaml(FILE, "istio-system").unwrap();
        let text = snap.to_yaml().unwrap();
        assert!(text.starts_with("# kube-version: v1.34.4\n"));
        assert!(!text.contains("c2VjcmV0"));
        let again = ClusterSnapshot::from_yaml(&text, "istio-system").unwrap();
        assert_eq!(again.pods, snap.pods);
        assert_eq!(again.namespaces, snap.namespaces);
        assert_eq!(again.others, snap.others);
    }

    #[test]
    fn a_kind_a_dump_lacks_is_unknown_not_empty() {
        use crate::{
            checks::{Context, Outcome, run_all},
            inventory::Inventory,
            testkit::Snap,
        };
        let (healthy, _) = Snap::new().control_plane("default", "1.29.6").build();
        // A hand-made `kubectl get ... -o yaml` dump without EndpointSlices (and no annotation).
        let mut v: Value = serde_saphyr::from_str(&healthy.to_yaml().unwrap()).unwrap();
        v["metadata"] = Value::Null;
        let items = v["items"].as_array_mut().unwrap();
        items.retain(|i| i["kind"] != "EndpointSlice");
        let text = serde_saphyr::to_string(&v).unwrap();
        let snap = ClusterSnapshot::from_yaml(&text, "istio-system").unwrap();
        let gap = snap.gap(Source::EndpointSlices).unwrap();
        assert!(
            gap.reason.contains("cannot tell none from not dumped"),
            "{}",
            gap.reason
        );
        let inv = Inventory::from_snapshot(&snap);
        let ctx = Context {
            snap: &snap,
            inv: &inv,
            target: None,
            canary_requested: false,
            knowledge: Default::default(),
        };
        let findings = run_all(&ctx);
        // The Services were read: the webhooks are judged on them; only the endpoint readiness,
        // which needs the EndpointSlices, is skipped.
        let svc: Vec<_> = findings
            .iter()
            .filter(|f| f.id == "webhooks.service")
            .map(|f| (f.result, f.message.as_str()))
            .collect();
        // (The builder's cluster has no validating webhooks, so the dump holds none either.)
        assert_eq!(svc.len(), 3, "{svc:#?}");
        assert_eq!(svc[0].0, Outcome::Ok, "{svc:#?}");
        assert_eq!(svc[1].0, Outcome::Skipped, "{svc:#?}");
        assert!(svc[1].1.starts_with("validating webhooks"), "{svc:#?}");
        assert_eq!(svc[2].0, Outcome::Skipped, "{svc:#?}");
        assert!(svc[2].1.starts_with("endpoint readiness"), "{svc:#?}");
        assert!(
            !findings.iter().any(|f| f.result == Outcome::Error),
            "{findings:#?}"
        );
        // The tool's own dump declares what it read: an empty kind reads back as none.
        let dumped =
            ClusterSnapshot::from_yaml(&healthy.to_yaml().unwrap(), "istio-system").unwrap();
        assert!(
            dumped.gap(Source::EnvoyFilters).is_none(),
            "declared read, just empty"
        );
        assert!(dumped.gap(Source::EndpointSlices).is_none());
    }

    /// A remote secret as `istioctl create-remote-secret | kubectl apply -f -` leaves it: data,
    /// and kubectl's last-applied copy of the whole Secret (data included) in an annotation.
    const REMOTE: &str = r#"# kube-version: v1.34.4
# context: east
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata:
    name: istio-remote-secret-west
    namespace: istio-system
    labels: {istio/multiCluster: "true"}
    annotations:
      networking.istio.io/cluster: west
      kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"west":"token: c2VjcmV0"}}'
    managedFields: [{manager: kubectl, fieldsV1: {"f:data": {"f:west": {}}}}]
  data: {west: c2VjcmV0}
- apiVersion: v1
  kind: Secret
  metadata: {name: other, namespace: istio-system, labels: {istio/multiCluster: "false"}}
  data: {x: c2VjcmV0}
- apiVersion: v1
  kind: Secret
  metadata: {name: istio-remote-secret-x, namespace: elsewhere, labels: {istio/multiCluster: "true"}}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: values, namespace: istio-system, labels: {istio.io/rev: default}}
  data: {merged-values: '{}'}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: values-of-my-app, namespace: istio-system}
"#;

    #[test]
    fn remote_secrets_are_kept_by_their_metadata_only() {
        let snap = ClusterSnapshot::from_yaml(REMOTE, "istio-system").unwrap();
        assert_eq!(snap.remote_secrets.len(), 1, "{:?}", snap.remote_secrets);
        let m = &snap.remote_secrets[0].metadata;
        assert_eq!(name(m), "istio-remote-secret-west");
        assert_eq!(annotation(m, REMOTE_CLUSTER_ANNOTATION), Some("west"));
        assert!(annotation(m, LAST_APPLIED).is_none());
        assert!(m.managed_fields.is_none());
        assert!(snap.gap(Source::RemoteSecrets).is_none());
        assert_eq!(snap.context.as_deref(), Some("east"));
        let names: Vec<&str> = snap.config_maps.iter().map(|c| name(&c.metadata)).collect();
        assert_eq!(
            names,
            ["values"],
            "the install's values, not a user's ConfigMap"
        );
        let text = snap.to_yaml().unwrap();
        assert!(!text.contains("c2VjcmV0"), "no secret data: {text}");
        assert!(!text.contains("stringData"), "no last-applied copy: {text}");
        assert!(text.contains("# context: east\n"), "{text}");
        let again = ClusterSnapshot::from_yaml(&text, "istio-system").unwrap();
        assert_eq!(again.remote_secrets, snap.remote_secrets);
        assert_eq!(again.context.as_deref(), Some("east"));
        let without = ClusterSnapshot::from_yaml(FILE, "istio-system").unwrap();
        assert!(
            without.gap(Source::RemoteSecrets).is_some(),
            "a dump without remote secrets cannot say there are none"
        );
    }

    #[test]
    fn missing_version_is_a_gap_and_bad_items_are_named() {
        let snap = ClusterSnapshot::from_yaml("kind: List\nitems: []\n", "istio-system").unwrap();
        assert!(snap.gap(Source::Version).is_some());
        let bad = "apiVersion: v1\nkind: Namespace\nmetadata: {name: 3, labels: [x]}\n";
        let err = ClusterSnapshot::from_yaml(bad, "istio-system").unwrap_err();
        assert!(err.to_string().contains("Namespace"), "{err}");
    }
}
