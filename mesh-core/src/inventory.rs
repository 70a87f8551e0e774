//! The Istio view of a snapshot: control planes, tags, injectors, namespaces, proxies.
//!
//! Derived once from a [`ClusterSnapshot`] and shared by every check and planner. Which revision
//! a namespace gets is answered the way the apiserver answers it — by evaluating the injector
//! webhooks' selectors against the namespace's labels — so tags, the `default` tag, deactivated
//! legacy injectors and `istio-injection` precedence need no special cases here.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration},
    apps::v1::Deployment,
};
use serde::Serialize;

use crate::{
    ambient::{AmbientView, is_waypoint_pod},
    selector,
    snapshot::{ClusterSnapshot, PodInfo, Source, annotation, label, labels, name, namespace},
    version::{IstioVersion, image_version},
};

/// Revision name of the non-revisioned control plane.
pub const DEFAULT_REVISION: &str = "default";
/// Label naming a revision on control-plane objects, tags and namespaces.
pub const REV_LABEL: &str = "istio.io/rev";
/// Label naming a tag on tag objects.
pub const TAG_LABEL: &str = "istio.io/tag";
/// The legacy namespace injection label.
pub const INJECTION_LABEL: &str = "istio-injection";
/// Pod annotation written by the injector.
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// Selector value istioctl uses to deactivate the legacy injector.
pub const DEACTIVATED_LABEL: &str = "istio.io/deactivated";

/// How a control plane was installed (ISTIO.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "method")]
pub enum InstallMethod {
    /// `istioctl install` (owner labels).
    Istioctl {
        /// `operator.istio.io/version`.
        version: Option<String>,
    },
    /// A Helm release.
    Helm {
        /// Release name.
        release: String,
        /// Release namespace.
        namespace: String,
    },
    /// Applied some other way (e.g. `kubectl apply` of a generated manifest).
    Unknown,
}

impl InstallMethod {
    fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        if let Some(release) = annotation(meta, "meta.helm.sh/release-name") {
            return Self::Helm {
                release: release.to_owned(),
                namespace: annotation(meta, "meta.helm.sh/release-namespace")
                    .unwrap_or(namespace(meta))
                    .to_owned(),
            };
        }
        if label(meta, "operator.istio.io/managed") == Some("Reconcile") {
            return Self::Istioctl {
                version: label(meta, "operator.istio.io/version").map(str::to_owned),
            };
        }
        Self::Unknown
    }

    /// Short name for tables.
    pub fn short(&self) -> &'static str {
        match self {
            Self::Istioctl { .. } => "istioctl",
            Self::Helm { .. } => "helm",
            Self::Unknown => "unknown",
        }
    }
}

/// One istiod control plane (a revision).
#[derive(Debug, Clone, Serialize)]
pub struct ControlPlane {
    /// Revision (`default` when unlabelled).
    pub revision: String,
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Deployment name.
    pub deployment: String,
    /// istiod image.
    pub image: Option<String>,
    /// Version from the image tag.
    pub version: Option<IstioVersion>,
    /// Desired replicas.
    pub replicas: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Who installed it.
    pub install: InstallMethod,
}

/// An Istio injector webhook configuration (a revision's own, or a tag's).
#[derive(Debug, Clone, Serialize)]
pub struct Injector {
    /// MutatingWebhookConfiguration name.
    pub name: String,
    /// Revision it injects (`istio.io/rev`).
    pub revision: String,
    /// Tag, if it is a tag's webhook.
    pub tag: Option<String>,
    /// Every webhook is deactivated (never matches).
    pub deactivated: bool,
}

/// A revision tag.
#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// Revision it points at.
    pub revision: String,
    /// Its MutatingWebhookConfiguration.
    pub webhook: String,
    /// Made by an installer (carries `operator.istio.io/component`), not by `tag set`.
    pub installer_managed: bool,
}

/// How a namespace's pods get a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Injection {
    /// Injected by this revision.
    Revision {
        /// Revision that injects.
        revision: String,
        /// The tag it goes through, if any.
        tag: Option<String>,
        /// The webhook configuration that matches.
        webhook: String,
    },
    /// `istio-injection=disabled`.
    Disabled,
    /// No injection asked.
    NotEnabled,
    /// Labels ask for injection but no injector matches.
    Dangling {
        /// The label that asks (`istio.io/rev=canary`).
        label: String,
    },
    /// More than one injector matches: pods are injected twice or rejected.
    Overlap {
        /// Webhook configurations that match.
        webhooks: Vec<String>,
    },
}

impl Injection {
    /// The injecting revision, if exactly one.
    pub fn revision(&self) -> Option<&str> {
        match self {
            Self::Revision { revision, .. } => Some(revision),
            _ => None,
        }
    }
}

/// A namespace and its injection.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceView {
    /// Name.
    pub name: String,
    /// `istio-injection` label value.
    pub injection_label: Option<String>,
    /// `istio.io/rev` label value.
    pub rev_label: Option<String>,
    /// What the webhooks do for its pods.
    pub injection: Injection,
}

/// A pod that runs an Istio proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Proxy {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Owning workload (`Deployment/web`), if known.
    pub workload: Option<String>,
    /// Revision that injected it (or the gateway's revision).
    pub revision: Option<String>,
    /// Proxy version from its image.
    pub version: Option<IstioVersion>,
    /// Running and Ready.
    pub ready: bool,
}

/// A gateway Deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    /// Namespace.
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// Revision label.
    pub revision: Option<String>,
    /// Proxy image (`auto` for injected gateways).
    pub image: Option<String>,
}

/// The Istio view of a cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    /// Control planes, sorted by revision.
    pub control_planes: Vec<ControlPlane>,
    /// Injector webhook configurations.
    pub injectors: Vec<Injector>,
    /// Tags, sorted by name.
    pub tags: Vec<Tag>,
    /// Namespaces, sorted by name.
    pub namespaces: Vec<NamespaceView>,
    /// Pods with a proxy.
    pub proxies: Vec<Proxy>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// Ambient mode: istio-cni and ztunnel, ambient namespaces, waypoints.
    pub ambient: AmbientView,
}

impl Inventory {
    /// Derives the Istio view of a snapshot.
    pub fn from_snapshot(snap: &ClusterSnapshot) -> Self {
        let injectors = snap
            .mutating_webhooks
            .iter()
            .filter(|m| is_injector(m))
            .collect::<Vec<_>>();
        let mut inv = Self {
            control_planes: control_planes(&snap.deployments),
            injectors: injectors.iter().map(|m| injector(m)).collect(),
            tags: Vec::new(),
            namespaces: Vec::new(),
            proxies: snap.pods.iter().filter_map(proxy).collect(),
            gateways: gateways(&snap.deployments),
            ambient: AmbientView::default(),
        };
        inv.tags = tags(&inv.injectors, &injectors);
        let by_webhooks = snap.gap(Source::MutatingWebhooks).is_none();
        inv.namespaces = snap
            .namespaces
            .iter()
            .map(|ns| {
                let labels = labels(&ns.metadata);
                let injection = if by_webhooks {
                    injection_by_webhooks(labels, &injectors)
                } else {
                    inv.injection_by_labels(labels)
                };
                NamespaceView {
                    name: name(&ns.metadata).to_owned(),
                    injection_label: labels.get(INJECTION_LABEL).cloned(),
                    rev_label: labels.get(REV_LABEL).cloned(),
                    injection,
                }
            })
            .collect();
        inv.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        inv.ambient = AmbientView::from_snapshot(
            snap,
            &inv.namespaces,
            &|name| inv.resolve(name),
            inv.default_revision(),
        );
        inv
    }

    /// A control plane by revision.
    pub fn control_plane(&self, revision: &str) -> Option<&ControlPlane> {
        self.control_planes.iter().find(|c| c.revision == revision)
    }

    /// A tag by name.
    pub fn tag(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.name == name)
    }

    /// Every revision that exists: a control plane or an untagged injector says so.
    pub fn revisions(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .control_planes
            .iter()
            .map(|c| c.revision.clone())
            .collect();
        out.extend(
            self.injectors
                .iter()
                .filter(|i| i.tag.is_none())
                .map(|i| i.revision.clone()),
        );
        out
    }

    /// The revision `istio-injection=enabled` namespaces get: the `default` tag's target,
    /// else the non-revisioned control plane.
    pub fn default_revision(&self) -> Option<&str> {
        self.tag(DEFAULT_REVISION)
            .map(|t| t.revision.as_str())
            .or_else(|| {
                self.revisions()
                    .contains(DEFAULT_REVISION)
                    .then_some(DEFAULT_REVISION)
            })
    }

    /// The revision a name (tag or revision) resolves to.
    pub fn resolve(&self, name: &str) -> Option<String> {
        if let Some(tag) = self.tag(name) {
            return Some(tag.revision.clone());
        }
        self.revisions().contains(name).then(|| name.to_owned())
    }

    /// Version of a revision's control plane.
    pub fn revision_version(&self, revision: &str) -> Option<&IstioVersion> {
        self.control_plane(revision)
            .and_then(|c| c.version.as_ref())
    }

    /// Proxies per (revision, version), for the inventory table.
    pub fn proxy_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for p in &self.proxies {
            let rev = p.revision.clone().unwrap_or_else(|| "?".into());
            let ver = p
                .version
                .as_ref()
                .map_or_else(|| "?".into(), ToString::to_string);
            *out.entry((rev, ver)).or_default() += 1;
        }
        out
    }

    /// Namespace-label fallback used when webhooks could not be read.
    fn injection_by_labels(&self, labels: &BTreeMap<String, String>) -> Injection {
        let via = |label: String, target: Option<String>, tag: Option<String>| match target {
            Some(revision) => Injection::Revision {
                revision,
                tag,
                webhook: String::new(),
            },
            None => Injection::Dangling { label },
        };
        match (
            labels.get(INJECTION_LABEL).map(String::as_str),
            labels.get(REV_LABEL),
        ) {
            (Some("disabled"), _) => Injection::Disabled,
            (Some("enabled"), _) => via(
                format!("{INJECTION_LABEL}=enabled"),
                self.default_revision().map(str::to_owned),
                self.tag(DEFAULT_REVISION).map(|t| t.name.clone()),
            ),
            (_, Some(rev)) => via(
                format!("{REV_LABEL}={rev}"),
                self.resolve(rev),
                self.tag(rev).map(|t| t.name.clone()),
            ),
            _ => Injection::NotEnabled,
        }
    }
}

/// Whether a mutating webhook configuration is an Istio sidecar injector.
pub fn is_injector(mwc: &MutatingWebhookConfiguration) -> bool {
    label(&mwc.metadata, "app") == Some("sidecar-injector")
        || mwc
            .webhooks
            .iter()
            .flatten()
            .any(|w| w.name.ends_with("sidecar-injector.istio.io"))
}

fn injector(mwc: &MutatingWebhookConfiguration) -> Injector {
    let hooks = mwc.webhooks.as_deref().unwrap_or_default();
    Injector {
        name: name(&mwc.metadata).to_owned(),
        revision: label(&mwc.metadata, REV_LABEL)
            .unwrap_or(DEFAULT_REVISION)
            .to_owned(),
        tag: label(&mwc.metadata, TAG_LABEL).map(str::to_owned),
        deactivated: !hooks.is_empty() && hooks.iter().all(is_deactivated),
    }
}

/// Whether a webhook carries istioctl's never-match selector.
pub fn is_deactivated(hook: &MutatingWebhook) -> bool {
    let never = |s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
        s.and_then(|s| s.match_labels.as_ref())
            .is_some_and(|m| m.contains_key(DEACTIVATED_LABEL))
    };
    never(hook.namespace_selector.as_ref()) || never(hook.object_selector.as_ref())
}

fn injection_by_webhooks(
    labels: &BTreeMap<String, String>,
    injectors: &[&MutatingWebhookConfiguration],
) -> Injection {
    let no_pod_labels = BTreeMap::new();
    let matching: Vec<&MutatingWebhookConfiguration> = injectors
        .iter()
        .copied()
        .filter(|m| {
            m.webhooks.iter().flatten().any(|w| {
                selector::matches(w.namespace_selector.as_ref(), labels)
                    && selector::matches(w.object_selector.as_ref(), &no_pod_labels)
            })
        })
        .collect();
    match matching.as_slice() {
        [one] => {
            let inj = injector(one);
            Injection::Revision {
                revision: inj.revision,
                tag: inj.tag,
                webhook: inj.name,
            }
        }
        [] => match (
            labels.get(INJECTION_LABEL).map(String::as_str),
            labels.get(REV_LABEL),
        ) {
            (Some("disabled"), _) => Injection::Disabled,
            (Some(v), _) => Injection::Dangling {
                label: format!("{INJECTION_LABEL}={v}"),
            },
            (None, Some(rev)) => Injection::Dangling {
                label: format!("{REV_LABEL}={rev}"),
            },
            (None, None) => Injection::NotEnabled,
        },
        many => Injection::Overlap {
            webhooks: many.iter().map(|m| name(&m.metadata).to_owned()).collect(),
        },
    }
}

fn tags(injectors: &[Injector], mwcs: &[&MutatingWebhookConfiguration]) -> Vec<Tag> {
    let mut out: Vec<Tag> = injectors
        .iter()
        .zip(mwcs)
        .filter_map(|(i, m)| {
            Some(Tag {
                name: i.tag.clone()?,
                revision: i.revision.clone(),
                webhook: i.name.clone(),
                installer_managed: label(&m.metadata, "operator.istio.io/component").is_some(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn container_image(d: &Deployment, preferred: &str) -> Option<String> {
    let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == preferred)
        .or_else(|| containers.first())
        .and_then(|c| c.image.clone())
}

fn is_istiod(d: &Deployment) -> bool {
    label(&d.metadata, "app") == Some("istiod")
}

fn control_planes(deployments: &[Deployment]) -> Vec<ControlPlane> {
    let mut out: Vec<ControlPlane> = deployments
        .iter()
        .filter(|d| is_istiod(d))
        .map(|d| {
            let image = container_image(d, "discovery");
            let status = d.status.as_ref();
            ControlPlane {
                revision: label(&d.metadata, REV_LABEL)
                    .unwrap_or(DEFAULT_REVISION)
                    .to_owned(),
                namespace: namespace(&d.metadata).to_owned(),
                deployment: name(&d.metadata).to_owned(),
                version: image.as_deref().and_then(image_version),
                image,
                replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
                install: InstallMethod::of(&d.metadata),
            }
        })
        .collect();
    out.sort_by(|a, b| a.revision.cmp(&b.revision));
    out
}

fn gateways(deployments: &[Deployment]) -> Vec<Gateway> {
    deployments
        .iter()
        .filter(|d| !is_istiod(d))
        .filter(|d| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|s| s.containers.iter().any(|c| c.name == "istio-proxy"))
        })
        .map(|d| Gateway {
            namespace: namespace(&d.metadata).to_owned(),
            name: name(&d.metadata).to_owned(),
            revision: label(&d.metadata, REV_LABEL).map(str::to_owned),
            image: container_image(d, "istio-proxy"),
        })
        .collect()
}

/// Whether a pod is ztunnel's (label `app=ztunnel`, as istio-cni tells them, or the ztunnel
/// image in its `istio-proxy` container).
pub fn is_ztunnel_pod(pod: &PodInfo) -> bool {
    pod.label("app") == Some("ztunnel")
        || pod.proxy_image().is_some_and(|i| {
            i.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("ztunnel:"))
        })
}

/// The revision recorded in a pod's `sidecar.istio.io/status` annotation.
pub fn injected_revision(pod: &PodInfo) -> Option<String> {
    let status = pod.annotation(STATUS_ANNOTATION)?;
    let v: serde_json::Value = serde_json::from_str(status).ok()?;
    v.get("revision")?.as_str().map(str::to_owned)
}

/// `Deployment/web` for a pod owned by ReplicaSet `web-5d9c7b8f9`.
pub fn workload_of(pod: &PodInfo) -> Option<String> {
    let owner = pod.controller()?;
    if owner.kind == "ReplicaSet" {
        let hash = pod.label("pod-template-hash");
        let name = hash
            .and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
            .unwrap_or(&owner.name);
        return Some(format!("Deployment/{name}"));
    }
    Some(format!("{}/{}", owner.kind, owner.name))
}

/// A pod's proxy, if it runs one: sidecars and gateways. Waypoints (listed with ambient mode)
/// and ztunnel (whose container is also named `istio-proxy`) are not sidecars.
fn proxy(pod: &PodInfo) -> Option<Proxy> {
    if pod.is_finished() || is_waypoint_pod(pod) || is_ztunnel_pod(pod) {
        return None;
    }
    let image = pod.proxy_image()?;
    Some(Proxy {
        namespace: pod.namespace().to_owned(),
        pod: pod.name().to_owned(),
        workload: workload_of(pod),
        // The injection status, else the revision label of gateways, else the revision
        // annotation of what istiod's gateway controller renders (Gateway API gateways).
        revision: injected_revision(pod)
            .or_else(|| pod.label(REV_LABEL).map(str::to_owned))
            .or_else(|| pod.annotation(REV_LABEL).map(str::to_owned)),
        version: image_version(image),
        ready: pod.is_ready(),
    })
}
