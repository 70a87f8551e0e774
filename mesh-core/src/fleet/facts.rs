//! What one cluster says about the multi-cluster mesh it may belong to, read from its snapshot:
//! its cluster name, mesh ID, trust domain and network (from the mesh config `istio[-<rev>]` and
//! the install's values in `istio-sidecar-injector[-<rev>]` or `values[-<rev>]`), its control
//! planes, the injectors it runs without a local istiod (a remote cluster's), where its own istiod
//! can be reached from other clusters, and the remote secrets it holds (metadata only).
//!
//! Kept small on purpose: a fleet run keeps these facts for every cluster after the cluster's
//! snapshot is dropped, so memory does not grow with the clusters' pods.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration, core::v1::ConfigMap,
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    inventory::{DEFAULT_REVISION, Injection, Inventory, REV_LABEL, TAG_LABEL, is_injector},
    snapshot::{
        ClusterSnapshot, REMOTE_CLUSTER_ANNOTATION, Source, annotation, label, name, namespace,
    },
    version::IstioVersion,
};

/// Istio's trust domain when the mesh config sets none.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The cluster name istiod uses when `global.multiCluster.clusterName` is not set.
pub const DEFAULT_CLUSTER_NAME: &str = "Kubernetes";
/// Annotation on a remote cluster's Istio namespace naming the clusters whose istiod may manage
/// it (istiod with `EXTERNAL_ISTIOD=true` leads only clusters that name it, or `*`).
pub const CONTROL_PLANE_CLUSTERS: &str = "topology.istio.io/controlPlaneClusters";
/// Port of istiod's webhook behind an east-west gateway or a `remotePilotAddress`.
const WEBHOOK_PORT: u16 = 15017;

/// A host and port other clusters reach an istiod (or its injector) at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    /// IP or DNS name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// The host and port of an `https://host[:port]/path` URL, and its path.
    pub fn of_url(url: &str) -> Option<(Self, String)> {
        let rest = url
            .strip_prefix("https://")
            .or(url.strip_prefix("http://"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, tail) = v6.split_once(']')?;
                (h, tail.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => 443,
        };
        (!host.is_empty()).then(|| {
            (
                Self {
                    host: host.to_owned(),
                    port,
                },
                path.to_owned(),
            )
        })
    }
}

/// An injector of a revision this cluster runs no istiod for: how a remote cluster injects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteInjector {
    /// The MutatingWebhookConfiguration.
    pub webhook: String,
    /// Revision it injects (`istio.io/rev`).
    pub revision: String,
    /// Tag, for a tag's webhook.
    pub tag: Option<String>,
    /// Where it sends pods, when that can be told.
    pub endpoint: Option<Endpoint>,
    /// The URL path (`/inject/cluster/<c>/net/<n>`), when given by URL.
    pub path: Option<String>,
    /// Namespaces whose pods it injects.
    pub namespaces: Vec<String>,
}

/// A remote secret this cluster holds (its metadata only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteSecretRef {
    /// Secret name.
    pub secret: String,
    /// The cluster it gives access to (`networking.istio.io/cluster`, else the name's suffix).
    pub cluster: String,
}

/// A namespace whose label asks for a revision or tag no injector of its cluster serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DanglingNamespace {
    /// Namespace.
    pub namespace: String,
    /// The revision or tag it asks for.
    pub wants: String,
}

/// One control plane: revision and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionVersion {
    /// Revision.
    pub revision: String,
    /// Version from the istiod image.
    pub version: Option<IstioVersion>,
}

/// What a cluster tells about its place in a multi-cluster mesh.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshFacts {
    /// `global.multiCluster.clusterName` of its installs (the cluster ID istiod uses).
    pub cluster_names: BTreeSet<String>,
    /// Mesh IDs set explicitly (`global.meshID`, `defaultConfig.meshId`).
    pub mesh_ids: BTreeSet<String>,
    /// Trust domains of its mesh configs.
    pub trust_domains: BTreeSet<String>,
    /// Networks (`global.network`).
    pub networks: BTreeSet<String>,
    /// istiod control planes.
    pub control_planes: Vec<RevisionVersion>,
    /// Versions its remote installs were made for (`global.tag` of a revision with no istiod).
    pub remote_install_versions: BTreeMap<String, IstioVersion>,
    /// Some istiod runs with `EXTERNAL_ISTIOD=true` (manages remote clusters that name it).
    pub external_istiod: bool,
    /// Injectors of revisions without a local istiod.
    pub remote_injectors: Vec<RemoteInjector>,
    /// Proxy versions (and pod counts) of the revisions injected through another cluster.
    pub remote_proxies: BTreeMap<String, BTreeMap<IstioVersion, usize>>,
    /// Where its own istiods can be reached.
    pub endpoints: BTreeSet<Endpoint>,
    /// Remote secrets it holds.
    pub remote_secrets: Vec<RemoteSecretRef>,
    /// `topology.istio.io/controlPlaneClusters` of its Istio namespace.
    pub control_plane_clusters: Option<Vec<String>>,
    /// Revisions and tags served here, each with the revision it injects.
    pub served: BTreeMap<String, String>,
    /// Tags and the revision each points at.
    pub tags: BTreeMap<String, String>,
    /// Namespaces asking for a revision or tag nothing here serves.
    pub dangling: Vec<DanglingNamespace>,
    /// Sources the facts needed but could not read, with the reason.
    pub unread: BTreeMap<Source, String>,
    /// `global.remotePilotAddress` of revisions without a local istiod.
    #[serde(skip)]
    remote_pilot: BTreeMap<String, String>,
}

/// Sources the fleet checks read.
pub const FACT_SOURCES: [Source; 7] = [
    Source::Deployments,
    Source::ConfigMaps,
    Source::MutatingWebhooks,
    Source::Services,
    Source::Namespaces,
    Source::RemoteSecrets,
    Source::EndpointSlices,
];

impl MeshFacts {
    /// Reads the facts of one cluster.
    pub fn of(snap: &ClusterSnapshot, inv: &Inventory) -> Self {
        let mut f = Self {
            control_planes: inv
                .control_planes
                .iter()
                .map(|c| RevisionVersion {
                    revision: c.revision.clone(),
                    version: c.version.clone(),
                })
                .collect(),
            external_istiod: snap.deployments.iter().any(external_istiod),
            tags: inv
                .tags
                .iter()
                .map(|t| (t.name.clone(), t.revision.clone()))
                .collect(),
            remote_secrets: remote_secrets(snap),
            control_plane_clusters: snap
                .namespace(&snap.istio_namespace)
                .and_then(|n| annotation(&n.metadata, CONTROL_PLANE_CLUSTERS))
                .map(|v| v.split(',').map(|c| c.trim().to_owned()).collect()),
            unread: FACT_SOURCES
                .iter()
                .filter_map(|s| snap.gap(*s).map(|g| (*s, g.reason.clone())))
                .collect(),
            ..Self::default()
        };
        f.read_configs(snap);
        f.read_injectors(snap, inv);
        for p in &inv.proxies {
            let (Some(rev), Some(v)) = (&p.revision, &p.version) else {
                continue;
            };
            if f.remote_injectors.iter().any(|i| &i.revision == rev) {
                *f.remote_proxies
                    .entry(rev.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += 1;
            }
        }
        f.endpoints.extend(service_endpoints(snap));
        f.read_namespaces(inv);
        f
    }

    /// Whether this cluster runs an istiod.
    pub fn is_primary(&self) -> bool {
        !self.control_planes.is_empty()
    }

    /// Whether this cluster injects through an istiod elsewhere only.
    pub fn is_remote(&self) -> bool {
        self.control_planes.is_empty() && !self.remote_injectors.is_empty()
    }

    /// The one cluster name, when the installs agree on one.
    pub fn cluster_name(&self) -> Option<&str> {
        match self.cluster_names.len() {
            1 => self.cluster_names.first().map(String::as_str),
            _ => None,
        }
    }

    /// The version of a revision's istiod here.
    pub fn revision_version(&self, revision: &str) -> Option<&IstioVersion> {
        self.control_planes
            .iter()
            .find(|c| c.revision == revision)
            .and_then(|c| c.version.as_ref())
    }

    /// Whether an istiod of this revision runs here.
    pub fn runs(&self, revision: &str) -> bool {
        self.control_planes.iter().any(|c| c.revision == revision)
    }

    /// The reason a source these facts need was not read.
    pub fn missing(&self, sources: &[Source]) -> Option<String> {
        sources.iter().find_map(|s| {
            self.unread
                .get(s)
                .map(|r| format!("cannot read {}: {r}", s.describe()))
        })
    }

    fn read_configs(&mut self, snap: &ClusterSnapshot) {
        for cm in &snap.config_maps {
            let rev = label(&cm.metadata, REV_LABEL).unwrap_or(DEFAULT_REVISION);
            if let Some(mesh) = data(cm, "mesh").and_then(parse_yaml) {
                self.read_mesh_config(&mesh);
            }
            if let Some(v) = install_values(cm) {
                let local = self.runs(rev);
                self.read_values(&v, rev, local);
            }
        }
    }

    fn read_mesh_config(&mut self, mesh: &Value) {
        let domain = mesh["trustDomain"].as_str().unwrap_or(DEFAULT_TRUST_DOMAIN);
        self.trust_domains.insert(domain.to_owned());
        if let Some(id) = mesh["defaultConfig"]["meshId"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            self.mesh_ids.insert(id.to_owned());
        }
    }

    fn read_values(&mut self, v: &Value, revision: &str, local: bool) {
        let global = &v["global"];
        let text = |key: &str| global[key].as_str().filter(|s| !s.is_empty());
        if let Some(id) = text("meshID") {
            self.mesh_ids.insert(id.to_owned());
        }
        if let Some(net) = text("network") {
            self.networks.insert(net.to_owned());
        }
        let cluster = global["multiCluster"]["clusterName"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_CLUSTER_NAME);
        self.cluster_names.insert(cluster.to_owned());
        let tag = text("tag").and_then(|t| IstioVersion::parse(t).ok());
        if let (false, Some(tag)) = (local, tag) {
            self.remote_install_versions
                .insert(revision.to_owned(), tag);
        }
        if let (false, Some(addr)) = (local, text("remotePilotAddress")) {
            self.remote_pilot
                .insert(revision.to_owned(), addr.to_owned());
        }
    }
}

impl MeshFacts {
    fn read_injectors(&mut self, snap: &ClusterSnapshot, inv: &Inventory) {
        let remote = remote_revisions(snap, inv);
        for (mwc, revision, tag) in injectors(snap, inv) {
            let url = first_url(mwc);
            if self.runs(&revision) {
                self.endpoints
                    .extend(url.and_then(Endpoint::of_url).map(|(e, _)| e));
            } else if !remote.contains(&revision) {
                continue; // an injector left behind by a removed istiod: the local checks say so
            }
            let key = tag.clone().unwrap_or_else(|| revision.clone());
            self.served.insert(key, revision.clone());
            if self.runs(&revision) {
                continue;
            }
            let (endpoint, path) = match url.and_then(Endpoint::of_url) {
                Some((e, p)) => (Some(e), Some(p)),
                None => (self.service_endpoint(snap, mwc, &revision), None),
            };
            let webhook = name(&mwc.metadata).to_owned();
            let namespaces = injected_namespaces(inv, &webhook);
            self.remote_injectors.push(RemoteInjector {
                webhook,
                revision,
                tag,
                endpoint,
                path,
                namespaces,
            });
        }
    }

    /// Where a remote injector that names a local Service sends pods: the Service's
    /// `externalName`, the address of its hand-made EndpointSlice, or `remotePilotAddress`.
    fn service_endpoint(
        &self,
        snap: &ClusterSnapshot,
        mwc: &MutatingWebhookConfiguration,
        revision: &str,
    ) -> Option<Endpoint> {
        let svc_ref = mwc
            .webhooks
            .iter()
            .flatten()
            .find_map(|w| w.client_config.service.as_ref());
        let by_service = svc_ref.and_then(|r| {
            let svc = snap
                .services
                .iter()
                .find(|s| name(&s.metadata) == r.name && namespace(&s.metadata) == r.namespace)?;
            let spec = svc.spec.as_ref()?;
            let host = spec.external_name.clone().or_else(|| {
                snap.endpoint_slices
                    .iter()
                    .filter(|e| label(&e.metadata, "kubernetes.io/service-name") == Some(&r.name))
                    .flat_map(|e| &e.endpoints)
                    .find_map(|e| e.addresses.first().cloned())
            })?;
            Some(Endpoint {
                host,
                port: WEBHOOK_PORT,
            })
        });
        by_service.or_else(|| {
            self.remote_pilot.get(revision).map(|host| Endpoint {
                host: host.clone(),
                port: WEBHOOK_PORT,
            })
        })
    }

    fn read_namespaces(&mut self, inv: &Inventory) {
        for ns in &inv.namespaces {
            if let Injection::Dangling { label } = &ns.injection {
                let wants = match label.split_once('=') {
                    Some(("istio-injection", _)) => DEFAULT_REVISION,
                    Some((_, v)) => v,
                    None => label.as_str(),
                };
                self.dangling.push(DanglingNamespace {
                    namespace: ns.name.clone(),
                    wants: wants.to_owned(),
                });
            }
        }
    }
}

/// The active injector webhook configurations, with their revision and tag.
fn injectors<'a>(
    snap: &'a ClusterSnapshot,
    inv: &'a Inventory,
) -> impl Iterator<Item = (&'a MutatingWebhookConfiguration, String, Option<String>)> {
    snap.mutating_webhooks
        .iter()
        .filter(|m| is_injector(m))
        .filter(|m| {
            !inv.injectors
                .iter()
                .any(|i| i.name == name(&m.metadata) && i.deactivated)
        })
        .map(|m| {
            let rev = label(&m.metadata, REV_LABEL).unwrap_or(DEFAULT_REVISION);
            let tag = label(&m.metadata, TAG_LABEL).map(str::to_owned);
            (m, rev.to_owned(), tag)
        })
}

/// The revisions this cluster injects through an istiod in another cluster (a remote
/// cluster's): no istiod of the revision runs here, and its install's values say so
/// (`istiodRemote.enabled`, istioctl's and Helm's `remote` profile) — or, when no values of the
/// revision are read, its injector sends pods to a URL or to a Service without a selector (an
/// `ExternalName`, or one with a hand-made EndpointSlice). An injector whose istiod was removed
/// (its Service selects pods, or its values say it is no remote) is not one.
pub fn remote_revisions(snap: &ClusterSnapshot, inv: &Inventory) -> BTreeSet<String> {
    let profile: BTreeMap<String, bool> = snap
        .config_maps
        .iter()
        .filter_map(|cm| {
            let v = install_values(cm)?;
            let rev = label(&cm.metadata, REV_LABEL).unwrap_or(DEFAULT_REVISION);
            Some((
                rev.to_owned(),
                v["istiodRemote"]["enabled"] == Value::Bool(true),
            ))
        })
        .collect();
    injectors(snap, inv)
        .filter(|(_, rev, _)| inv.control_plane(rev).is_none())
        .filter(|(mwc, rev, _)| match profile.get(rev) {
            Some(remote) => *remote,
            None => first_url(mwc).is_some() || selectorless_service(snap, mwc),
        })
        .map(|(_, rev, _)| rev)
        .collect()
}

fn selectorless_service(snap: &ClusterSnapshot, mwc: &MutatingWebhookConfiguration) -> bool {
    let Some(r) = mwc
        .webhooks
        .iter()
        .flatten()
        .find_map(|w| w.client_config.service.as_ref())
    else {
        return false;
    };
    snap.services.iter().any(|s| {
        name(&s.metadata) == r.name
            && namespace(&s.metadata) == r.namespace
            && s.spec.as_ref().is_some_and(|spec| {
                spec.type_.as_deref() == Some("ExternalName")
                    || spec.selector.as_ref().is_none_or(|sel| sel.is_empty())
            })
    })
}

/// The install's values a ConfigMap holds: the injector's `values`, or `merged-values` of the
/// `values[-<rev>]` ConfigMap.
fn install_values(cm: &ConfigMap) -> Option<Value> {
    data(cm, "values")
        .filter(|_| name(&cm.metadata).starts_with("istio-sidecar-injector"))
        .or_else(|| data(cm, "merged-values"))
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
}

fn first_url(mwc: &MutatingWebhookConfiguration) -> Option<&str> {
    mwc.webhooks
        .iter()
        .flatten()
        .find_map(|w| w.client_config.url.as_deref())
}

fn injected_namespaces(inv: &Inventory, webhook: &str) -> Vec<String> {
    inv.namespaces
        .iter()
        .filter(|n| matches!(&n.injection, Injection::Revision { webhook: w, .. } if w == webhook))
        .map(|n| n.name.clone())
        .collect()
}

/// Addresses other clusters reach this one's Istio Services at: load-balancer ingresses and
/// external IPs, on each of the Service's ports (an east-west gateway exposing istiod).
fn service_endpoints(snap: &ClusterSnapshot) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for svc in &snap.services {
        let Some(spec) = &svc.spec else { continue };
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()));
        let hosts: Vec<String> = ingress
            .chain(spec.external_ips.iter().flatten().cloned())
            .collect();
        for host in hosts {
            for p in spec.ports.iter().flatten() {
                out.push(Endpoint {
                    host: host.clone(),
                    port: u16::try_from(p.port).unwrap_or_default(),
                });
            }
        }
    }
    out
}

fn remote_secrets(snap: &ClusterSnapshot) -> Vec<RemoteSecretRef> {
    snap.remote_secrets
        .iter()
        .map(|s| {
            let secret = name(&s.metadata).to_owned();
            let cluster = annotation(&s.metadata, REMOTE_CLUSTER_ANNOTATION)
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    secret
                        .strip_prefix("istio-remote-secret-")
                        .unwrap_or(&secret)
                        .to_owned()
                });
            RemoteSecretRef { secret, cluster }
        })
        .collect()
}

fn external_istiod(d: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    label(&d.metadata, "app") == Some("istiod")
        && d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.env.iter().flatten())
            .any(|e| e.name == "EXTERNAL_ISTIOD" && e.value.as_deref() == Some("true"))
}

fn data<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.data.as_ref()?.get(key).map(String::as_str)
}

fn parse_yaml(text: &str) -> Option<Value> {
    serde_saphyr::from_str(text).ok()
}
