//! Blast radius: which namespaces and pods a change of injector webhooks moves to another
//! revision on their next restart.
//!
//! Found the way the API server decides it: every injector webhook's namespace and object
//! selectors are evaluated against each namespace's labels (and each pod's labels) with the
//! webhooks as they are and as they will be. So tags, the `default` tag, the legacy injector,
//! `istio-injection` precedence, pod-level `istio.io/rev` labels and `sidecar.istio.io/inject`
//! opt-outs need no special cases.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use serde::Serialize;

use crate::{
    inventory::{
        DEFAULT_REVISION, INJECTION_LABEL, REV_LABEL, TAG_LABEL, injected_revision, is_injector,
    },
    selector,
    snapshot::{ClusterSnapshot, PodInfo, label, labels, name},
    version::{IstioVersion, image_version},
};

/// What injects a namespace's (or a pod's) pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Injects {
    /// No injector matches: pods start without a proxy.
    Nothing,
    /// Exactly one injector matches.
    Revision {
        /// The revision that injects.
        revision: String,
        /// The tag it goes through, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// The webhook configuration.
        webhook: String,
    },
    /// Several injectors match: pods are injected twice or rejected.
    Overlap {
        /// The webhook configurations that match.
        webhooks: Vec<String>,
    },
}

impl Injects {
    /// The injecting revision, if exactly one.
    pub fn revision(&self) -> Option<&str> {
        match self {
            Self::Revision { revision, .. } => Some(revision),
            _ => None,
        }
    }

    /// Whether one of the given webhook configurations takes part.
    fn involves(&self, webhooks: &BTreeSet<String>) -> bool {
        match self {
            Self::Nothing => false,
            Self::Revision { webhook, .. } => webhooks.contains(webhook),
            Self::Overlap { webhooks: w } => w.iter().any(|n| webhooks.contains(n)),
        }
    }

    /// Short text: `1-30-3 (tag prod)`, `nothing`, `2 injectors (overlap)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Nothing => "nothing".to_owned(),
            Self::Revision {
                revision,
                tag: Some(t),
                ..
            } => format!("{revision} (tag {t})"),
            Self::Revision { revision, .. } => revision.clone(),
            Self::Overlap { webhooks } => format!("{} injectors (overlap)", webhooks.len()),
        }
    }
}

/// Which injector matches `ns_labels` and `pod_labels`.
pub fn resolve(
    injectors: &[&MutatingWebhookConfiguration],
    ns_labels: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
) -> Injects {
    let matching: Vec<&MutatingWebhookConfiguration> = injectors
        .iter()
        .copied()
        .filter(|m| {
            m.webhooks.iter().flatten().any(|w| {
                selector::matches(w.namespace_selector.as_ref(), ns_labels)
                    && selector::matches(w.object_selector.as_ref(), pod_labels)
            })
        })
        .collect();
    match matching.as_slice() {
        [] => Injects::Nothing,
        [one] => Injects::Revision {
            revision: label(&one.metadata, REV_LABEL)
                .unwrap_or(DEFAULT_REVISION)
                .to_owned(),
            tag: label(&one.metadata, TAG_LABEL).map(str::to_owned),
            webhook: name(&one.metadata).to_owned(),
        },
        many => Injects::Overlap {
            webhooks: many.iter().map(|m| name(&m.metadata).to_owned()).collect(),
        },
    }
}

/// One namespace the change touches.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceImpact {
    /// Namespace name.
    pub namespace: String,
    /// The label that selects the injector (`istio.io/rev=prod`), or `pod labels`.
    pub selected_by: String,
    /// What injects its pods now.
    pub before: Injects,
    /// What injects its pods after the change.
    pub after: Injects,
    /// Pods that get a different proxy (or none) on their next restart.
    pub pods: usize,
    /// Current proxy versions of those pods (`none` for pods without a proxy).
    pub proxies: BTreeMap<String, usize>,
}

/// A pod whose next restart gives it a different revision's proxy (or none).
#[derive(Debug, Clone)]
pub struct PodChange {
    /// `Pod/<ns>/<name>`.
    pub pod: String,
    /// Its proxy version now (`None`: no proxy, or no version in the image tag).
    pub current: Option<IstioVersion>,
    /// Whether it has a proxy now.
    pub has_proxy: bool,
    /// The revision that will inject it (`None`: nothing will).
    pub after: Option<String>,
}

/// The result of comparing the webhooks before and after a change.
#[derive(Debug, Clone, Default)]
pub struct Impact {
    /// Touched namespaces, sorted by name.
    pub namespaces: Vec<NamespaceImpact>,
    /// Pods that change on restart.
    pub pods: Vec<PodChange>,
}

/// Compares injection with `before` and `after` webhooks; `tag_webhooks` are the names of the
/// tag's webhook configurations (before and after), whose namespaces are always reported.
pub fn compute(
    snap: &ClusterSnapshot,
    before: &[MutatingWebhookConfiguration],
    after: &[MutatingWebhookConfiguration],
    tag_webhooks: &BTreeSet<String>,
) -> Impact {
    let before: Vec<_> = before.iter().filter(|m| is_injector(m)).collect();
    let after: Vec<_> = after.iter().filter(|m| is_injector(m)).collect();
    let mut pods_by_ns: HashMap<&str, Vec<&PodInfo>> = HashMap::new();
    for p in snap.pods.iter().filter(|p| !p.is_finished()) {
        pods_by_ns.entry(p.namespace()).or_default().push(p);
    }
    let no_labels = BTreeMap::new();
    let mut out = Impact::default();
    for ns in &snap.namespaces {
        let ns_name = name(&ns.metadata);
        let ns_labels = labels(&ns.metadata);
        let ns_before = resolve(&before, ns_labels, &no_labels);
        let ns_after = resolve(&after, ns_labels, &no_labels);
        let mut touched = ns_before != ns_after
            || ns_before.involves(tag_webhooks)
            || ns_after.involves(tag_webhooks);
        let mut changes = Vec::new();
        for pod in pods_by_ns.get(ns_name).into_iter().flatten() {
            let pod_labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
            let p_before = resolve(&before, ns_labels, pod_labels);
            let p_after = resolve(&after, ns_labels, pod_labels);
            let relevant = p_before != p_after
                || p_after.involves(tag_webhooks)
                || p_before.involves(tag_webhooks);
            touched |= relevant;
            if let Some(change) = relevant.then(|| change(pod, &p_after)).flatten() {
                changes.push(change);
            }
        }
        if !touched {
            continue;
        }
        let mut proxies = BTreeMap::new();
        for c in &changes {
            let key = match (&c.current, c.has_proxy) {
                (Some(v), _) => v.to_string(),
                (None, true) => "unknown".to_owned(),
                (None, false) => "none".to_owned(),
            };
            *proxies.entry(key).or_default() += 1;
        }
        out.namespaces.push(NamespaceImpact {
            namespace: ns_name.to_owned(),
            selected_by: selected_by(ns_labels),
            before: ns_before,
            after: ns_after,
            pods: changes.len(),
            proxies,
        });
        out.pods.extend(changes);
    }
    out.namespaces.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    out
}

/// The change a restart makes to a pod, if any. Pods whose proxy is part of their template
/// (gateways with a pinned image: a proxy but no injection status) are not changed by injection.
fn change(pod: &PodInfo, after: &Injects) -> Option<PodChange> {
    let image = pod.proxy_image();
    let injected = injected_revision(pod);
    if image.is_some() && injected.is_none() {
        return None;
    }
    let after = after.revision().map(str::to_owned);
    (after != injected).then(|| PodChange {
        pod: format!("Pod/{}/{}", pod.namespace(), pod.name()),
        current: image.and_then(image_version),
        has_proxy: image.is_some(),
        after,
    })
}

fn selected_by(ns_labels: &BTreeMap<String, String>) -> String {
    match (ns_labels.get(INJECTION_LABEL), ns_labels.get(REV_LABEL)) {
        (Some(v), _) => format!("{INJECTION_LABEL}={v}"),
        (None, Some(v)) => format!("{REV_LABEL}={v}"),
        (None, None) => "pod labels".to_owned(),
    }
}
