//! The objects of a revision tag, shaped exactly as istioctl renders them (ISTIO.md §4.2), so
//! that istioctl reads our tags and we read its tags.
//!
//! Facts taken from Istio's `revision-tags-mwc.yaml`, `revision-tags-svc.yaml`, the `default`
//! chart's `validatingwebhook.yaml` and `istioctl/pkg/tag/generate.go`: the tag's injector copies
//! the client config (URL, or service name and path), CA bundle, reinvocation policy, labels
//! (minus `app`) and annotations of its revision's own injector; every label containing
//! `operator.istio.io` is stripped (istioctl's `UserManaged`), so installers never prune a tag
//! a user made. Objects are JSON values ready for server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use serde_json::{Map, Value, json};

use crate::{
    inventory::{DEACTIVATED_LABEL, DEFAULT_REVISION, REV_LABEL, TAG_LABEL},
    snapshot::{annotation, labels, name},
};

/// Suffix of every sidecar-injector webhook name.
pub const INJECTOR_SUFFIX: &str = "sidecar-injector.istio.io";
/// Name of the validator the `default` tag owns.
pub const DEFAULT_VALIDATOR: &str = "istiod-default-validator";
/// Label keys containing this are installer ownership labels, stripped from user tags.
const OPERATOR_MARK: &str = "operator.istio.io";
/// Value of istioctl's never-match selector.
const NEVER_MATCH: &str = "never-match";
/// Namespaces the `auto.` webhook never injects.
const AUTO_EXCLUDED: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];
/// API version of webhook configurations.
const ADMISSION: &str = "admissionregistration.k8s.io/v1";

/// Name of a tag's injector (`istio-revision-tag-<tag>`, `-<ns>` outside istio-system).
pub fn webhook_name(tag: &str, istio_ns: &str) -> String {
    if istio_ns == "istio-system" {
        format!("istio-revision-tag-{tag}")
    } else {
        format!("istio-revision-tag-{tag}-{istio_ns}")
    }
}

/// Name of a tag's Service (Istio 1.28+).
pub fn service_name(tag: &str) -> String {
    format!("istiod-revision-tag-{tag}")
}

/// Where a webhook sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// `clientConfig.url`.
    Url(String),
    /// `clientConfig.service`.
    Service {
        /// Service name (`istiod-1-30-3`).
        name: String,
        /// Its namespace.
        namespace: String,
        /// Path (`/inject`).
        path: String,
        /// Port (443).
        port: i32,
    },
}

/// What a tag copies from its revision's own injector.
#[derive(Debug, Clone)]
pub struct TagSource {
    /// The revision (`istio.io/rev` of the injector; `default` for the non-revisioned one).
    pub revision: String,
    /// The injector's client.
    pub client: Client,
    /// CA bundle, as the base64 JSON string the API uses.
    pub ca_bundle: Option<Value>,
    /// `reinvocationPolicy` (the chart's default is `Never`).
    pub reinvocation: String,
    /// Labels to carry over (minus `app` and installer labels).
    pub labels: BTreeMap<String, String>,
    /// Annotations to carry over.
    pub annotations: BTreeMap<String, String>,
}

impl TagSource {
    /// Reads the copy source from a revision's injector; `None` when it has no
    /// `*sidecar-injector.istio.io` webhook.
    pub fn from_injector(mwc: &MutatingWebhookConfiguration, istio_ns: &str) -> Option<Self> {
        let hook = mwc
            .webhooks
            .iter()
            .flatten()
            .find(|w| w.name.ends_with(INJECTOR_SUFFIX))?;
        let all = labels(&mwc.metadata);
        Some(Self {
            revision: all
                .get(REV_LABEL)
                .cloned()
                .unwrap_or_else(|| DEFAULT_REVISION.to_owned()),
            client: client_of(hook, istio_ns),
            ca_bundle: hook
                .client_config
                .ca_bundle
                .as_ref()
                .filter(|b| !b.0.is_empty())
                .and_then(|b| serde_json::to_value(b).ok()),
            reinvocation: hook
                .reinvocation_policy
                .clone()
                .unwrap_or_else(|| "Never".to_owned()),
            labels: strip_operator(all.iter().filter(|(k, _)| *k != "app")),
            annotations: mwc
                .metadata
                .annotations
                .iter()
                .flatten()
                .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    fn client_json(&self, validate: bool) -> Value {
        let mut out = match &self.client {
            Client::Url(url) if validate => json!({"url": with_path(url, "/validate")}),
            Client::Url(url) => json!({"url": url}),
            Client::Service {
                name,
                namespace,
                path,
                port,
            } => {
                let path = if validate { "/validate" } else { path.as_str() };
                json!({"service": {"name": name, "namespace": namespace, "path": path, "port": port}})
            }
        };
        if let (Some(ca), Value::Object(map)) = (&self.ca_bundle, &mut out) {
            map.insert("caBundle".into(), ca.clone());
        }
        out
    }
}

fn client_of(hook: &MutatingWebhook, istio_ns: &str) -> Client {
    let cc = &hook.client_config;
    match (&cc.url, &cc.service) {
        (Some(url), _) => Client::Url(url.clone()),
        (None, Some(svc)) => Client::Service {
            name: svc.name.clone(),
            namespace: if svc.namespace.is_empty() {
                istio_ns.to_owned()
            } else {
                svc.namespace.clone()
            },
            path: svc
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/inject".to_owned()),
            port: svc.port.unwrap_or(443),
        },
        (None, None) => Client::Service {
            name: "istiod".to_owned(),
            namespace: istio_ns.to_owned(),
            path: "/inject".to_owned(),
            port: 443,
        },
    }
}

/// Replaces the path of a URL (`https://h:1/inject/rev/x?q` → `https://h:1/validate?q`), as
/// istioctl does to derive the validation URL from the injection URL.
pub fn with_path(url: &str, path: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let path_start = rest
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let tail_start = url[path_start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| path_start + i);
    format!("{}{path}{}", &url[..path_start], &url[tail_start..])
}

/// Drops every label whose key contains `operator.istio.io`.
fn strip_operator<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a String)>,
) -> BTreeMap<String, String> {
    pairs
        .filter(|(k, _)| !k.contains(OPERATOR_MARK))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn expr(key: &str, op: &str, values: &[&str]) -> Value {
    if values.is_empty() {
        json!({"key": key, "operator": op})
    } else {
        json!({"key": key, "operator": op, "values": values})
    }
}

fn exprs(list: Vec<Value>) -> Value {
    json!({"matchExpressions": list})
}

/// The chart's (namespace, object) selectors of the injector webhook with this prefix, for a
/// revision or tag named `key` (`rev.namespace`, `rev.object`; `namespace`, `object` and `auto`
/// exist only for the default revision and the `default` tag). `None` for unknown prefixes.
pub fn chart_selectors(prefix: &str, key: &str) -> Option<(Value, Value)> {
    let not_false = || expr("sidecar.istio.io/inject", "NotIn", &["false"]);
    let no_rev = || expr(REV_LABEL, "DoesNotExist", &[]);
    let no_injection = || expr("istio-injection", "DoesNotExist", &[]);
    Some(match prefix {
        "rev.namespace" => (
            exprs(vec![expr(REV_LABEL, "In", &[key]), no_injection()]),
            exprs(vec![not_false()]),
        ),
        "rev.object" => (
            exprs(vec![no_rev(), no_injection()]),
            exprs(vec![not_false(), expr(REV_LABEL, "In", &[key])]),
        ),
        "namespace" => (
            exprs(vec![expr("istio-injection", "In", &["enabled"])]),
            exprs(vec![not_false()]),
        ),
        "object" => (
            exprs(vec![no_injection(), no_rev()]),
            exprs(vec![
                expr("sidecar.istio.io/inject", "In", &["true"]),
                no_rev(),
            ]),
        ),
        "auto" => (
            exprs(vec![
                no_injection(),
                no_rev(),
                expr("kubernetes.io/metadata.name", "NotIn", &AUTO_EXCLUDED),
            ]),
            exprs(vec![
                expr("sidecar.istio.io/inject", "DoesNotExist", &[]),
                no_rev(),
            ]),
        ),
        _ => return None,
    })
}

/// The prefix of an injector webhook name (`rev.namespace` of `rev.namespace.sidecar-injector.istio.io`).
pub fn hook_prefix(hook_name: &str) -> &str {
    hook_name
        .strip_suffix(INJECTOR_SUFFIX)
        .map_or(hook_name, |p| p.trim_end_matches('.'))
}

/// The webhook prefixes of a tag's injector, in the chart's order.
fn tag_prefixes(tag: &str, auto_inject: bool) -> Vec<&'static str> {
    let mut out = vec!["rev.namespace", "rev.object"];
    if tag == DEFAULT_REVISION {
        out.extend(["namespace", "object"]);
        if auto_inject {
            out.push("auto");
        }
    }
    out
}

/// The template's labels, overridden by the copied ones, minus installer labels.
fn labels_json(fixed: &[(&str, &str)], copied: &BTreeMap<String, String>) -> Value {
    let mut out: BTreeMap<String, String> = fixed
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend(copied.iter().map(|(k, v)| (k.clone(), v.clone())));
    json!(strip_operator(out.iter()))
}

fn metadata(
    name: &str,
    namespace: Option<&str>,
    labels: Value,
    annotations: &BTreeMap<String, String>,
) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), name.into());
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), ns.into());
    }
    meta.insert("labels".into(), labels);
    if !annotations.is_empty() {
        meta.insert("annotations".into(), json!(annotations));
    }
    Value::Object(meta)
}

/// The tag's MutatingWebhookConfiguration.
pub fn mutating(src: &TagSource, tag: &str, name: &str, auto_inject: bool) -> Value {
    let client = src.client_json(false);
    let hooks: Vec<Value> = tag_prefixes(tag, auto_inject)
        .into_iter()
        .filter_map(|prefix| {
            let (ns_sel, obj_sel) = chart_selectors(prefix, tag)?;
            Some(json!({
                "name": format!("{prefix}.{INJECTOR_SUFFIX}"),
                "clientConfig": client,
                "sideEffects": "None",
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                "failurePolicy": "Fail",
                "reinvocationPolicy": src.reinvocation,
                "admissionReviewVersions": ["v1"],
                "namespaceSelector": ns_sel,
                "objectSelector": obj_sel,
            }))
        })
        .collect();
    // The revision injector's labels win over the template's, as in istioctl's generateLabels.
    let fixed = [
        (TAG_LABEL, tag),
        (REV_LABEL, src.revision.as_str()),
        ("app", "sidecar-injector"),
        ("app.kubernetes.io/name", "istiod"),
    ];
    json!({
        "apiVersion": ADMISSION,
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata(name, None, labels_json(&fixed, &src.labels), &src.annotations),
        "webhooks": hooks,
    })
}

/// The `default` tag's ValidatingWebhookConfiguration `istiod-default-validator`. `keep_fail`
/// preserves a `Fail` policy istiod already set on the live object (istioctl's `fixWhConfig`).
pub fn validating(src: &TagSource, keep_fail: bool) -> Value {
    let fixed = [
        ("app", "istiod"),
        ("istio", "istiod"),
        (REV_LABEL, src.revision.as_str()),
        (TAG_LABEL, DEFAULT_REVISION),
        ("app.kubernetes.io/name", "istiod"),
    ];
    let hook = json!({
        "name": "validation.istio.io",
        "clientConfig": src.client_json(true),
        "rules": [{
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": ["security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"],
            "apiVersions": ["*"],
            "resources": ["*"],
        }],
        "failurePolicy": if keep_fail { "Fail" } else { "Ignore" },
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "objectSelector": exprs(vec![expr(REV_LABEL, "DoesNotExist", &[])]),
    });
    json!({
        "apiVersion": ADMISSION,
        "kind": "ValidatingWebhookConfiguration",
        "metadata": metadata(DEFAULT_VALIDATOR, None, labels_json(&fixed, &src.labels), &src.annotations),
        "webhooks": [hook],
    })
}

/// The tag's Service (`istiod-revision-tag-<tag>`, rendered by istioctl 1.28+): istiod's ports,
/// selecting the revision's istiod pods.
pub fn service(revision: &str, tag: &str, istio_ns: &str) -> Value {
    let fixed = [
        (REV_LABEL, revision),
        (TAG_LABEL, tag),
        ("app", "istiod"),
        ("istio", "pilot"),
        ("release", "istio"),
        ("app.kubernetes.io/name", "istiod"),
        ("app.kubernetes.io/part-of", "istio"),
    ];
    let selector = if revision == DEFAULT_REVISION {
        json!({"app": "istiod", "istio": "pilot"})
    } else {
        json!({"app": "istiod", REV_LABEL: revision})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&service_name(tag), Some(istio_ns), labels_json(&fixed, &BTreeMap::new()), &BTreeMap::new()),
        "spec": {
            "ports": [
                {"port": 15010, "name": "grpc-xds", "protocol": "TCP"},
                {"port": 15012, "name": "https-dns", "protocol": "TCP"},
                {"port": 443, "name": "https-webhook", "targetPort": 15017, "protocol": "TCP"},
                {"port": 15014, "name": "http-monitoring", "protocol": "TCP"},
            ],
            "selector": selector,
        },
    })
}

/// istioctl's never-match selector.
pub fn never_match() -> Value {
    json!({"matchLabels": {DEACTIVATED_LABEL: NEVER_MATCH}})
}

/// A partial apply setting the selectors of each named webhook of an injector.
fn selector_patch(mwc: &MutatingWebhookConfiguration, hooks: Vec<Value>) -> Value {
    json!({
        "apiVersion": ADMISSION,
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name(&mwc.metadata)},
        "webhooks": hooks,
    })
}

/// Deactivates an injector the way istioctl does for the legacy one: every webhook's selectors
/// become `istio.io/deactivated=never-match` (the object is kept so it can be re-activated).
pub fn deactivation(mwc: &MutatingWebhookConfiguration) -> Value {
    let hooks = mwc
        .webhooks
        .iter()
        .flatten()
        .map(|w| json!({"name": w.name, "namespaceSelector": never_match(), "objectSelector": never_match()}))
        .collect();
    selector_patch(mwc, hooks)
}

/// Re-activates a deactivated legacy injector with the chart's selectors for its revision.
/// Returns the patch and the names of webhooks whose original selectors are unknown.
pub fn reactivation(mwc: &MutatingWebhookConfiguration) -> (Value, Vec<String>) {
    let key = labels(&mwc.metadata)
        .get(REV_LABEL)
        .map_or(DEFAULT_REVISION, String::as_str);
    let mut unknown = Vec::new();
    let hooks = mwc
        .webhooks
        .iter()
        .flatten()
        .filter_map(|w| match chart_selectors(hook_prefix(&w.name), key) {
            Some((ns_sel, obj_sel)) => Some(
                json!({"name": w.name, "namespaceSelector": ns_sel, "objectSelector": obj_sel}),
            ),
            None => {
                unknown.push(w.name.clone());
                None
            }
        })
        .collect();
    (selector_patch(mwc, hooks), unknown)
}

/// Whether a live object says it was made by an installer (`operator.istio.io/component` or Helm).
pub fn installer_managed(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    labels(meta).contains_key("operator.istio.io/component")
        || annotation(meta, "meta.helm.sh/release-name").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_url_replaces_only_the_path() {
        assert_eq!(
            with_path("https://127.0.0.1:9443/inject/rev/1-30-3", "/validate"),
            "https://127.0.0.1:9443/validate"
        );
        assert_eq!(
            with_path("https://istiod.example:15017/inject?x=1", "/validate"),
            "https://istiod.example:15017/validate?x=1"
        );
        assert_eq!(
            with_path("https://istiod.example", "/validate"),
            "https://istiod.example/validate"
        );
    }

    #[test]
    fn hook_prefixes_are_read_from_names() {
        assert_eq!(
            hook_prefix("rev.namespace.sidecar-injector.istio.io"),
            "rev.namespace"
        );
        assert_eq!(hook_prefix("object.sidecar-injector.istio.io"), "object");
        assert_eq!(hook_prefix("custom"), "custom");
        assert!(chart_selectors("custom", "x").is_none());
    }
}
