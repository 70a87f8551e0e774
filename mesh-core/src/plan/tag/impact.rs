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

/// Resolves injection before and after a change, once per distinct set of relevant labels.
struct Resolver<'a> {
    before: Vec<&'a MutatingWebhookConfiguration>,
    after: Vec<&'a MutatingWebhookConfiguration>,
    /// Label keys any object selector reads: pods alike on these resolve alike.
    pod_keys: BTreeSet<&'a str>,
}

impl<'a> Resolver<'a> {
    fn new(
        before: &'a [MutatingWebhookConfiguration],
        after: &'a [MutatingWebhookConfiguration],
    ) -> Self {
        let before: Vec<_> = before.iter().filter(|m| is_injector(m)).collect();
        let after: Vec<_> = after.iter().filter(|m| is_injector(m)).collect();
        let pod_keys = before
            .iter()
            .chain(&after)
            .flat_map(|m| m.webhooks.iter().flatten())
            .filter_map(|w| w.object_selector.as_ref())
            .flat_map(|s| {
                let exprs = s.match_expressions.iter().flatten().map(|e| e.key.as_str());
                s.match_labels
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.as_str())
                    .chain(exprs)
            })
            .collect();
        Self {
            before,
            after,
            pod_keys,
        }
    }

    fn pair(
        &self,
        ns: &BTreeMap<String, String>,
        pod: &BTreeMap<String, String>,
    ) -> (Injects, Injects) {
        (
            resolve(&self.before, ns, pod),
            resolve(&self.after, ns, pod),
        )
    }

    /// The (before, after) of each pod of a namespace, in order.
    fn pods(&self, ns: &BTreeMap<String, String>, pods: &[&PodInfo]) -> Vec<(Injects, Injects)> {
        let mut cache: HashMap<BTreeMap<String, String>, (Injects, Injects)> = HashMap::new();
        pods.iter()
            .map(|p| {
                let relevant: BTreeMap<String, String> = p
                    .labels()
                    .iter()
                    .filter(|(k, _)| self.pod_keys.contains(k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                cache
                    .entry(relevant)
                    .or_insert_with_key(|l| self.pair(ns, l))
                    .clone()
            })
            .collect()
    }
}

/// Compares injection with `before` and `after` webhooks; `tag_webhooks` are the names of the
/// tag's webhook configurations (before and after), whose namespaces are always reported.
pub fn compute(
    snap: &ClusterSnapshot,
    before: &[MutatingWebhookConfiguration],
    after: &[MutatingWebhookConfiguration],
    tag_webhooks: &BTreeSet<String>,
) -> Impact {
    let resolver = Resolver::new(before, after);
    let mut pods_by_ns: HashMap<&str, Vec<&PodInfo>> = HashMap::new();
    for p in snap.pods.iter().filter(|p| !p.is_finished()) {
        pods_by_ns.entry(p.namespace()).or_default().push(p);
    }
    let involves = |(b, a): &(Injects, Injects)| {
        b != a || b.involves(tag_webhooks) || a.involves(tag_webhooks)
    };
    let no_labels = BTreeMap::new();
    let mut out = Impact::default();
    for ns in &snap.namespaces {
        let ns_labels = labels(&ns.metadata);
        let (ns_before, ns_after) = resolver.pair(ns_labels, &no_labels);
        let pods = pods_by_ns
            .get(name(&ns.metadata))
            .map_or(&[][..], Vec::as_slice);
        let resolved = resolver.pods(ns_labels, pods);
        let mut touched = involves(&(ns_before.clone(), ns_after.clone()));
        let mut changes = Vec::new();
        for (pod, pair) in pods.iter().zip(&resolved) {
            let relevant = involves(pair);
            touched |= relevant;
            changes.extend(relevant.then(|| change(pod, &pair.1)).flatten());
        }
        if touched {
            out.namespaces.push(NamespaceImpact {
                namespace: name(&ns.metadata).to_owned(),
                selected_by: selected_by(ns_labels),
                before: ns_before,
                after: ns_after,
                pods: changes.len(),
                proxies: proxy_versions(&changes),
            });
            out.pods.extend(changes);
        }
    }
    out.namespaces.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    out
}

fn proxy_versions(changes: &[PodChange]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in changes {
        let key = match (&c.current, c.has_proxy) {
            (Some(v), _) => v.to_string(),
            (None, true) => "unknown".to_owned(),
            (None, false) => "none".to_owned(),
        };
        *out.entry(key).or_default() += 1;
    }
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
