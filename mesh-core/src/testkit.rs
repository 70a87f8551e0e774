//! Tiny builders of cluster snapshots for unit tests of checks and planners.
//!
//! Objects have the shapes the real istioctl makes (ISTIO.md §3), reduced to the fields the
//! core reads: `Snap::new().control_plane("default", "1.29.6").namespace("a", &[..]).build()`.

mod ambient;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        admissionregistration::v1::{
            MutatingWebhook, MutatingWebhookConfiguration, ServiceReference, WebhookClientConfig,
        },
        apps::v1::{Deployment, DeploymentSpec, DeploymentStatus},
        core::v1::{Container, Namespace, PodSpec, PodTemplateSpec, Service},
        discovery::v1::{Endpoint, EndpointConditions, EndpointSlice},
    },
    apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
    },
};

use crate::{
    inventory::Inventory,
    snapshot::{
        ClusterSnapshot, ConditionInfo, ContainerInfo, PodInfo, PodObject, PodSpecInfo,
        PodStatusInfo,
    },
    version::KubeVersion,
};

pub use ambient::{captured_pod, node, node_agent, waypoint_gateway, waypoint_pod};

/// Builds a `BTreeMap` of labels.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Metadata with a name, a namespace and labels.
pub fn meta(ns: &str, name: &str, l: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: (!ns.is_empty()).then(|| ns.to_owned()),
        labels: (!l.is_empty()).then(|| labels(l)),
        ..Default::default()
    }
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

fn sel(exprs: Vec<LabelSelectorRequirement>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_expressions: Some(exprs),
        match_labels: None,
    })
}

fn hook(
    name: &str,
    svc: &str,
    ns: Option<LabelSelector>,
    obj: Option<LabelSelector>,
) -> MutatingWebhook {
    MutatingWebhook {
        name: format!("{name}.sidecar-injector.istio.io"),
        client_config: WebhookClientConfig {
            service: Some(ServiceReference {
                name: svc.to_owned(),
                namespace: "istio-system".into(),
                path: Some("/inject".into()),
                port: Some(443),
            }),
            ..Default::default()
        },
        namespace_selector: ns,
        object_selector: obj,
        failure_policy: Some("Fail".into()),
        admission_review_versions: vec!["v1".into()],
        side_effects: "None".into(),
        ..Default::default()
    }
}

/// The injector webhooks of a revision (or of a tag pointing at `rev` when `tag` is set).
pub fn injector(rev: &str, tag: Option<&str>) -> MutatingWebhookConfiguration {
    let key = tag.unwrap_or(rev);
    let svc = if rev == "default" {
        "istiod".to_owned()
    } else {
        format!("istiod-{rev}")
    };
    let not_false = || expr("sidecar.istio.io/inject", "NotIn", &["false"]);
    let mut hooks = vec![
        hook(
            "rev.namespace",
            &svc,
            sel(vec![
                expr("istio.io/rev", "In", &[key]),
                expr("istio-injection", "DoesNotExist", &[]),
            ]),
            sel(vec![not_false()]),
        ),
        hook(
            "rev.object",
            &svc,
            sel(vec![
                expr("istio.io/rev", "DoesNotExist", &[]),
                expr("istio-injection", "DoesNotExist", &[]),
            ]),
            sel(vec![not_false(), expr("istio.io/rev", "In", &[key])]),
        ),
    ];
    if key == "default" {
        hooks.push(hook(
            "namespace",
            &svc,
            sel(vec![expr("istio-injection", "In", &["enabled"])]),
            sel(vec![not_false()]),
        ));
        hooks.push(hook(
            "object",
            &svc,
            sel(vec![
                expr("istio-injection", "DoesNotExist", &[]),
                expr("istio.io/rev", "DoesNotExist", &[]),
            ]),
            sel(vec![
                expr("sidecar.istio.io/inject", "In", &["true"]),
                expr("istio.io/rev", "DoesNotExist", &[]),
            ]),
        ));
    }
    let (name, mut l) = match tag {
        Some(t) => (format!("istio-revision-tag-{t}"), vec![("istio.io/tag", t)]),
        None if rev == "default" => ("istio-sidecar-injector".to_owned(), vec![]),
        None => (format!("istio-sidecar-injector-{rev}"), vec![]),
    };
    l.extend([("app", "sidecar-injector"), ("istio.io/rev", rev)]);
    MutatingWebhookConfiguration {
        metadata: meta("", &name, &l),
        webhooks: Some(hooks),
    }
}

/// An istiod Deployment installed by istioctl.
pub fn istiod(rev: &str, version: &str, replicas: i32, ready: i32) -> Deployment {
    let name = if rev == "default" {
        "istiod".to_owned()
    } else {
        format!("istiod-{rev}")
    };
    let mut m = meta(
        "istio-system",
        &name,
        &[
            ("app", "istiod"),
            ("istio.io/rev", rev),
            ("istio", "pilot"),
            ("operator.istio.io/component", "Pilot"),
            ("operator.istio.io/managed", "Reconcile"),
        ],
    );
    if rev == "default" {
        m.labels.as_mut().map(|l| l.remove("istio.io/rev"));
    }
    Deployment {
        metadata: m,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            template: PodTemplateSpec {
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "discovery".into(),
                        image: Some(format!("docker.io/istio/pilot:{version}")),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            ready_replicas: Some(ready),
            replicas: Some(replicas),
            ..Default::default()
        }),
    }
}

/// A Service in istio-system.
pub fn service(name: &str, l: &[(&str, &str)]) -> Service {
    Service {
        metadata: meta("istio-system", name, l),
        ..Default::default()
    }
}

/// An EndpointSlice for a Service with `ready` ready endpoints.
pub fn endpoints(service: &str, ready: usize) -> EndpointSlice {
    EndpointSlice {
        metadata: meta(
            "istio-system",
            &format!("{service}-abcde"),
            &[("kubernetes.io/service-name", service)],
        ),
        address_type: "IPv4".into(),
        endpoints: (0..ready)
            .map(|i| Endpoint {
                addresses: vec![format!("10.244.0.{i}")],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: None,
    }
}

/// A pod of a Deployment, injected by `rev` with proxy `version` (no proxy when `rev` is None).
pub fn pod(ns: &str, name: &str, rev: Option<&str>, version: &str) -> PodInfo {
    pod_object(ns, name, rev, version).into()
}

/// [`pod`] in the form a test can change before converting it (`.into()`).
pub fn pod_object(ns: &str, name: &str, rev: Option<&str>, version: &str) -> PodObject {
    let mut containers = vec![ContainerInfo {
        name: "app".into(),
        image: Some("nginx:1.27".into()),
    }];
    let mut m = meta(ns, name, &[("pod-template-hash", "5d9c7b")]);
    if let Some(rev) = rev {
        containers.push(ContainerInfo {
            name: "istio-proxy".into(),
            image: Some(format!("docker.io/istio/proxyv2:{version}")),
        });
        m.annotations = Some(labels(&[(
            "sidecar.istio.io/status",
            &format!(
                r#"{{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"{rev}"}}"#
            ),
        )]));
    }
    let app = name.rsplit_once('-').map_or(name, |(a, _)| a);
    m.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: format!("{app}-5d9c7b"),
        uid: "uid".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    PodObject {
        metadata: m,
        spec: PodSpecInfo {
            containers,
            init_containers: Vec::new(),
        },
        status: PodStatusInfo {
            phase: Some("Running".into()),
            conditions: vec![ConditionInfo {
                type_: "Ready".into(),
                status: "True".into(),
            }],
        },
    }
}

/// Fluent snapshot builder.
#[derive(Default)]
pub struct Snap(pub ClusterSnapshot);

impl Snap {
    /// An empty cluster running Kubernetes 1.34.4.
    pub fn new() -> Self {
        Self(ClusterSnapshot {
            origin: "test".into(),
            istio_namespace: "istio-system".into(),
            kube_version: Some(KubeVersion::parse("v1.34.4").unwrap()),
            ..Default::default()
        })
    }

    /// A healthy control plane: istiod, its Service with endpoints, its injector.
    pub fn control_plane(mut self, rev: &str, version: &str) -> Self {
        let d = istiod(rev, version, 2, 2);
        let svc = d.metadata.name.clone().unwrap();
        self.0.deployments.push(d);
        self.0.services.push(service(&svc, &[("app", "istiod")]));
        self.0.endpoint_slices.push(endpoints(&svc, 2));
        self.0.mutating_webhooks.push(injector(rev, None));
        self
    }

    /// A tag pointing at a revision.
    pub fn tag(mut self, tag: &str, rev: &str) -> Self {
        self.0.mutating_webhooks.push(injector(rev, Some(tag)));
        self
    }

    /// A namespace with labels.
    pub fn namespace(mut self, name: &str, l: &[(&str, &str)]) -> Self {
        self.0.namespaces.push(Namespace {
            metadata: meta("", name, l),
            ..Default::default()
        });
        self
    }

    /// An injected pod (`rev` None for a pod without proxy).
    pub fn pod(mut self, ns: &str, name: &str, rev: Option<&str>, version: &str) -> Self {
        self.0.pods.push(pod(ns, name, rev, version));
        self
    }

    /// Applies any change to the raw snapshot.
    pub fn with(mut self, f: impl FnOnce(&mut ClusterSnapshot)) -> Self {
        f(&mut self.0);
        self
    }

    /// The snapshot and its inventory.
    pub fn build(self) -> (ClusterSnapshot, Inventory) {
        let inv = Inventory::from_snapshot(&self.0);
        (self.0, inv)
    }
}

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingWebhook, ValidatingWebhookConfiguration,
};

/// Labels `istioctl install` and the chart put on a revision's injector (ISTIO.md §3.1, §3.4).
pub const INSTALLER_LABELS: [(&str, &str); 5] = [
    ("operator.istio.io/component", "Pilot"),
    ("install.operator.istio.io/owning-resource", "unknown"),
    ("operator.istio.io/managed", "Reconcile"),
    ("app.kubernetes.io/name", "istiod"),
    ("release", "istio"),
];

/// A revision's injector as `istioctl install` leaves it: installer labels, a CA bundle and a
/// reinvocation policy on every webhook; pointing at `url` when given (the test bed's injector),
/// else at the istiod Service.
pub fn installed_injector(rev: &str, url: Option<&str>) -> MutatingWebhookConfiguration {
    let mut mwc = injector(rev, None);
    mwc.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels(&INSTALLER_LABELS));
    for hook in mwc.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = Some(k8s_openapi::ByteString(
            b"-----BEGIN CERTIFICATE-----\nCA\n".to_vec(),
        ));
        hook.reinvocation_policy = Some("IfNeeded".into());
        if let Some(url) = url {
            hook.client_config.service = None;
            hook.client_config.url = Some(url.to_owned());
        }
    }
    mwc
}

/// A ValidatingWebhookConfiguration with one webhook of the given failure policy.
pub fn validator(
    name: &str,
    l: &[(&str, &str)],
    failure_policy: &str,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: meta("", name, l),
        webhooks: Some(vec![ValidatingWebhook {
            name: "validation.istio.io".into(),
            failure_policy: Some(failure_policy.into()),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            ..Default::default()
        }]),
    }
}

impl Snap {
    /// Replaces the webhook configuration of the same name, or adds it.
    pub fn webhook(mut self, mwc: MutatingWebhookConfiguration) -> Self {
        let name = mwc.metadata.name.clone();
        self.0.mutating_webhooks.retain(|m| m.metadata.name != name);
        self.0.mutating_webhooks.push(mwc);
        self
    }

    /// Deactivates the legacy injector the way istioctl does when it sets tag `default`.
    pub fn deactivate_legacy(mut self) -> Self {
        let never = LabelSelector {
            match_labels: Some(labels(&[("istio.io/deactivated", "never-match")])),
            match_expressions: None,
        };
        for m in &mut self.0.mutating_webhooks {
            if m.metadata.name.as_deref() == Some("istio-sidecar-injector") {
                for h in m.webhooks.iter_mut().flatten() {
                    h.namespace_selector = Some(never.clone());
                    h.object_selector = Some(never.clone());
                }
            }
        }
        self
    }

    /// A pod with extra labels (`istio.io/rev`, `sidecar.istio.io/inject`).
    pub fn labelled_pod(
        mut self,
        ns: &str,
        name: &str,
        rev: Option<&str>,
        version: &str,
        l: &[(&str, &str)],
    ) -> Self {
        let mut p = pod_object(ns, name, rev, version);
        p.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels(l));
        self.0.pods.push(p.into());
        self
    }

    /// A Service in istio-system.
    pub fn service(mut self, name: &str, l: &[(&str, &str)]) -> Self {
        self.0.services.push(service(name, l));
        self
    }

    /// A validating webhook configuration.
    pub fn validating(mut self, vwc: ValidatingWebhookConfiguration) -> Self {
        self.0.validating_webhooks.push(vwc);
        self
    }
}

/// A pod like [`pod`] but controlled by `owner` (`("StatefulSet", "db")`, `("Job", "migrate")`;
/// `None`: a bare pod). Only ReplicaSet pods keep the `pod-template-hash` label.
pub fn owned_pod(
    ns: &str,
    name: &str,
    rev: Option<&str>,
    version: &str,
    owner: Option<(&str, &str)>,
) -> PodInfo {
    let mut p = pod_object(ns, name, rev, version);
    if owner.is_none_or(|(kind, _)| kind != "ReplicaSet") {
        p.metadata.labels = None;
    }
    p.metadata.owner_references = owner.map(|(kind, owner_name)| {
        vec![OwnerReference {
            api_version: if kind == "Job" { "batch/v1" } else { "apps/v1" }.into(),
            kind: kind.into(),
            name: owner_name.into(),
            uid: "uid".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]
    });
    p.into()
}

impl Snap {
    /// Adds a pod as built (e.g. by [`owned_pod`], then changed).
    pub fn push_pod(mut self, p: PodInfo) -> Self {
        self.0.pods.push(p);
        self
    }
}
