//! Property tests (fuzzing by generated input) of everything that parses user input: the
//! manifest parser, the snapshot reader, the version and revision-name parsers, and selector
//! evaluation. Two kinds of input: valid-shaped documents built from random parts (random names,
//! labels with any printable Unicode, random sets of kinds and declarations), which must be
//! accepted and keep their meaning — so the accepting paths are exercised, not only the
//! refusals — and YAML-looking garbage, on which nothing may panic. Failing cases proptest
//! finds are kept in `proptest-regressions/` and replayed first on every run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use mesh_core::{
    error::validate_revision,
    manifest::Manifest,
    selector,
    snapshot::{ClusterSnapshot, Source},
    version::IstioVersion,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// YAML-looking text: fragments of manifests and snapshots in any order, plus noise.
fn yamlish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("---\n".to_owned()),
        Just("apiVersion: apps/v1\n".to_owned()),
        Just("apiVersion: v1\n".to_owned()),
        Just("kind: Deployment\n".to_owned()),
        Just("kind: List\nitems:\n".to_owned()),
        Just("- apiVersion: v1\n  kind: Namespace\n".to_owned()),
        Just("metadata:\n  name: istiod\n  namespace: istio-system\n".to_owned()),
        Just("  labels: {app: istiod, istio.io/rev: 1-30-3}\n".to_owned()),
        Just("spec: {template: {spec: {containers: [{name: discovery, image: docker.io/istio/pilot:1.30.3}]}}}\n".to_owned()),
        Just("spec:\n  template:\n    spec:\n      containers:\n      - image: x/pilot:1.29.6\n".to_owned()),
        Just("# kube-version: v1.34.4\n".to_owned()),
        Just("metadata: {annotations: {kubectl-mesh.dev/sources: \"pods,nope\"}}\n".to_owned()),
        Just("metadata: {annotations: {kubectl-mesh.dev/whole-kinds: \"Role,Nope\"}}\n".to_owned()),
        Just("  labels: [a, b]\n".to_owned()),
        Just("{\"kind\": \"List\", \"items\": [".to_owned()),
        Just("&a [*a]\n".to_owned()),
        "[ -~]{0,40}\n",
        "\\PC{0,20}",
    ];
    prop::collection::vec(fragment, 0..14).prop_map(|v| v.concat())
}

/// A DNS-1123 name.
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}[a-z0-9]"
}

/// Label or annotation values: anything printable, Unicode included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,12}",
        "\\PC{0,12}",
        Just("null".to_owned()),
        Just("1.0".to_owned())
    ]
}

fn labels() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z]{1,6}(\\.io/[a-z]{1,6})?", text(), 0..4)
        .prop_map(|m| json!(m))
}

/// A namespace: the Istio one or another.
fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![Just("istio-system".to_owned()), name()]
}

fn version() -> impl Strategy<Value = (u64, u64)> {
    (20u64..33, 0u64..12)
}

fn meta(name: &str, ns: Option<&str>, labels: Value) -> Value {
    let mut m = json!({"name": name, "labels": labels});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

/// One object of a snapshot, of a kind the reader models or not, with random parts.
fn item() -> impl Strategy<Value = Value> {
    let parts = || (name(), namespace(), labels(), version(), text());
    prop_oneof![
        parts().prop_map(|(n, _, l, _, _)| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(&n, None, l)})),
        parts().prop_map(|(n, ns, mut l, (minor, patch), _)| {
            l["app"] = json!("istiod");
            l["istio"] = json!("pilot");
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(&n, Some(&ns), l),
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "istiod"}},
                    "template": {"metadata": {"labels": {"app": "istiod"}}, "spec": {"containers": [
                        {"name": "discovery", "image": format!("docker.io/istio/pilot:1.{minor}.{patch}")}]}}},
                "status": {"replicas": 2, "readyReplicas": 1}})
        }),
        parts().prop_map(|(n, ns, l, _, _)| json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(&n, Some(&ns), l),
            "spec": {"ports": [{"name": "grpc", "port": 15010}], "selector": {"app": "istiod"}}})),
        parts().prop_map(|(n, ns, l, _, t)| json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(&format!("istio-{n}"), Some(&ns), l), "data": {"mesh": t}})),
        parts().prop_map(|(n, ns, l, _, t)| json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(&n, Some(&ns), l), "data": {"k": t}})),
        parts().prop_map(|(n, _, l, _, _)| json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration", "metadata": meta(&n, None, l),
            "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/inject"}},
                "namespaceSelector": {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": [n]}]}}]})),
        parts().prop_map(|(n, ns, l, (minor, patch), t)| json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": n, "namespace": ns, "labels": l, "annotations": {
                "sidecar.istio.io/status": json!({"revision": t}).to_string(), "other": t}},
            "spec": {"containers": [{"name": "app", "image": "nginx"},
                {"name": "istio-proxy", "image": format!("docker.io/istio/proxyv2:1.{minor}.{patch}")}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})),
        parts().prop_map(|(n, _, l, _, _)| json!({"apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition", "metadata": meta(&format!("{n}s.networking.istio.io"), None, l),
            "spec": {"group": "networking.istio.io", "names": {"kind": "Thing", "plural": format!("{n}s")},
                "scope": "Namespaced", "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}})),
        parts().prop_map(|(n, ns, l, _, _)| json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": meta(&n, Some(&ns), l), "automountServiceAccountToken": false})),
        parts().prop_map(|(n, _, l, _, _)| json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole", "metadata": meta(&n, None, l),
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})),
        parts().prop_map(|(n, ns, l, _, t)| json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": meta(&n, Some(&ns), l), "data": {"token": format!("c2VjcmV0{}", t.len())}})),
        parts().prop_map(|(n, ns, l, _, _)| json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": meta(&n, Some(&ns), l), "spec": {"size": 3}})),
    ]
}

/// A snapshot file as `--dump-snapshot` or `kubectl get -o yaml` writes it: a header with the
/// Kubernetes version or not, a `List` of random objects, declarations of what was read (some
/// sources, some whole kinds) or not, as YAML or JSON.
fn snapshot_file() -> impl Strategy<Value = (String, Vec<Value>)> {
    let sources = prop::option::of(prop::collection::vec(
        prop::sample::select(vec![
            "namespaces",
            "deployments",
            "services",
            "config-maps",
            "pods",
            "crds",
            "nope",
        ]),
        0..5,
    ));
    let whole = prop::option::of(prop::collection::vec(
        prop::sample::select(vec![
            "ServiceAccount",
            "ClusterRole",
            "ConfigMap",
            "CustomResourceDefinition",
            "Nope",
        ]),
        0..4,
    ));
    (
        prop::collection::vec(item(), 0..12),
        sources,
        whole,
        prop::option::of(28u64..37),
        any::<bool>(),
    )
        .prop_map(|(items, sources, whole, kube, as_json)| {
            let mut annotations = serde_json::Map::new();
            if let Some(s) = sources {
                annotations.insert("kubectl-mesh.dev/sources".into(), json!(s.join(",")));
            }
            if let Some(w) = whole {
                annotations.insert("kubectl-mesh.dev/whole-kinds".into(), json!(w.join(",")));
            }
            let list = json!({"apiVersion": "v1", "kind": "List",
                "metadata": {"annotations": annotations}, "items": items});
            let body = if as_json {
                serde_json::to_string_pretty(&list).unwrap()
            } else {
                serde_saphyr::to_string(&list).unwrap()
            };
            let header = kube.map_or_else(String::new, |m| format!("# kube-version: v1.{m}.2\n"));
            (format!("{header}{body}"), items)
        })
}

/// Every piece of two snapshots that a round trip must keep.
fn assert_same_snapshot(a: &ClusterSnapshot, b: &ClusterSnapshot) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.kube_version, &b.kube_version);
    prop_assert_eq!(&a.namespaces, &b.namespaces);
    prop_assert_eq!(&a.deployments, &b.deployments);
    prop_assert_eq!(&a.services, &b.services);
    prop_assert_eq!(&a.config_maps, &b.config_maps);
    prop_assert_eq!(&a.mutating_webhooks, &b.mutating_webhooks);
    prop_assert_eq!(&a.validating_webhooks, &b.validating_webhooks);
    prop_assert_eq!(&a.crds, &b.crds);
    prop_assert_eq!(&a.pods, &b.pods);
    prop_assert_eq!(&a.others, &b.others);
    prop_assert_eq!(&a.whole, &b.whole);
    prop_assert_eq!(&a.whole_kinds, &b.whole_kinds);
    let gaps = |s: &ClusterSnapshot| s.gaps.iter().map(|g| g.source).collect::<Vec<Source>>();
    prop_assert_eq!(gaps(a), gaps(b));
    Ok(())
}

/// How many generated items are of `kind`.
fn count(items: &[Value], kind: &str) -> usize {
    items.iter().filter(|i| i["kind"] == kind).count()
}

/// A manifest as `istioctl manifest generate` writes it: istiod of one revision and version,
/// a gateway on the same version, and other objects, in YAML documents or a `List`.
fn manifest_text() -> impl Strategy<Value = (String, String, IstioVersion, usize)> {
    let revision = prop_oneof![Just(None), name().prop_map(Some)];
    let others = prop::collection::btree_set(name(), 0..6);
    let hub = prop::sample::select(vec![
        "docker.io/istio",
        "gcr.io/istio-release",
        "registry.example.com:5000/mirror/istio",
    ]);
    let variant = prop::sample::select(vec!["", "-distroless", "-debug"]);
    (revision, version(), others, hub, variant, labels(), any::<bool>()).prop_map(
        |(rev, (minor, patch), others, hub, variant, extra, as_list)| {
            let tag = format!("1.{minor}.{patch}{variant}");
            let mut istiod_labels = extra;
            istiod_labels["app"] = json!("istiod");
            let suffix = rev.as_deref().map_or(String::new(), |r| format!("-{r}"));
            if let Some(r) = &rev {
                istiod_labels["istio.io/rev"] = json!(r);
            }
            let mut objects = vec![
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": format!("istiod{suffix}"), "namespace": "istio-system", "labels": istiod_labels},
                    "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": format!("{hub}/pilot:{tag}")}]}}}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                    "spec": {"template": {"spec": {"containers": [{"name": "istio-proxy", "image": format!("{hub}/proxyv2:{tag}")}]}}}}),
            ];
            objects.extend(others.iter().map(|n| {
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": "istio-system"}, "data": {"k": "v"}})
            }));
            let text = if as_list {
                serde_saphyr::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": objects})).unwrap()
            } else {
                objects
                    .iter()
                    .map(|o| format!("# Source: a chart\n{}", serde_saphyr::to_string(o).unwrap()))
                    .collect::<Vec<_>>()
                    .join("---\n")
            };
            let version = IstioVersion::parse(&tag).unwrap();
            let revision = rev.unwrap_or_else(|| "default".to_owned());
            (text, revision, version, objects.len())
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_manifest_parser_never_panics(text in yamlish()) {
        if let Ok(m) = Manifest::parse(&text) {
            prop_assert!(!m.objects.is_empty());
            prop_assert!(m.objects.iter().all(|o| !o.kind().is_empty() && !o.name().is_empty()));
        }
        let _ = Manifest::parse_files(&[("a.yaml".into(), text.clone()), ("b.yaml".into(), text)]);
    }

    /// A manifest of the shape istioctl writes is accepted, whatever its names, labels, image
    /// host and variant, and says the version and revision it was made with.
    #[test]
    fn a_valid_manifest_is_read_with_its_version_and_revision((text, revision, version, n) in manifest_text()) {
        let m = Manifest::parse(&text);
        prop_assert!(m.is_ok(), "{:?}\n{}", m.err(), text);
        let m = m.unwrap();
        prop_assert_eq!(m.version.as_ref(), Some(&version.without_variant()));
        prop_assert_eq!(&m.revision, &revision);
        prop_assert_eq!(m.objects.len(), n);
        prop_assert_eq!(m.objects[0].name(), if revision == "default" { "istiod".to_owned() } else { format!("istiod-{revision}") });
    }

    #[test]
    fn the_snapshot_reader_never_panics(text in yamlish()) {
        if let Ok(s) = ClusterSnapshot::from_yaml(&text, "istio-system") {
            // What it reads, it can write and read back, unchanged.
            let again = ClusterSnapshot::from_yaml(&s.to_yaml().unwrap(), "istio-system").unwrap();
            assert_same_snapshot(&s, &again)?;
        }
    }

    /// A snapshot file of random objects is read (the accepting path), each object lands where
    /// its kind goes, no Secret is kept, and what it reads it writes and reads back unchanged.
    #[test]
    fn a_valid_snapshot_is_read_whole_and_round_trips((text, items) in snapshot_file()) {
        let s = ClusterSnapshot::from_yaml(&text, "istio-system");
        prop_assert!(s.is_ok(), "{:?}\n{}", s.err(), text);
        let s = s.unwrap();
        prop_assert_eq!(s.namespaces.len(), count(&items, "Namespace"));
        prop_assert_eq!(s.deployments.len(), count(&items, "Deployment"));
        prop_assert_eq!(s.pods.len(), count(&items, "Pod"));
        prop_assert_eq!(s.crds.len(), count(&items, "CustomResourceDefinition"));
        prop_assert_eq!(s.mutating_webhooks.len(), count(&items, "MutatingWebhookConfiguration"));
        prop_assert!(s.others.iter().all(|o| o.kind != "Secret"));
        let written = s.to_yaml().unwrap();
        prop_assert!(!written.contains("c2VjcmV0"), "a Secret was written");
        let again = ClusterSnapshot::from_yaml(&written, "istio-system").unwrap();
        assert_same_snapshot(&s, &again)?;
    }

    #[test]
    fn version_parsers_never_panic(text in "\\PC{0,30}") {
        let _ = IstioVersion::parse(&text);
        if let Ok(v) = IstioVersion::parse_release(&text) {
            prop_assert!(IstioVersion::parse(&v.to_string()).is_ok());
        }
    }

    /// Well-formed versions, with image variants and pre-releases, parse and print back.
    #[test]
    fn valid_versions_parse((major, minor, patch) in (1u64..3, 0u64..40, 0u64..30), variant in prop::sample::select(vec!["", "-distroless", "-rc.1", "-alpha.0"])) {
        let text = format!("{major}.{minor}.{patch}{variant}");
        let v = IstioVersion::parse(&text);
        prop_assert!(v.is_ok(), "{text}: {:?}", v.err());
        let v = v.unwrap();
        prop_assert_eq!(v.minor(), minor);
        prop_assert_eq!(IstioVersion::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn versions_order_as_numbers(a in (0u64..3, 0u64..40, 0u64..30), b in (0u64..3, 0u64..40, 0u64..30)) {
        let va = IstioVersion::parse(&format!("{}.{}.{}", a.0, a.1, a.2)).unwrap();
        let vb = IstioVersion::parse(&format!("{}.{}.{}", b.0, b.1, b.2)).unwrap();
        prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        prop_assert_eq!(IstioVersion::parse(&va.to_string()).unwrap(), va);
    }

    #[test]
    fn revision_names_are_dns_labels(name in "\\PC{0,70}") {
        if validate_revision(&name).is_ok() {
            prop_assert!(!name.is_empty() && name.len() <= 63);
            prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            prop_assert!(!name.starts_with('-') && !name.ends_with('-'));
        }
    }

    /// Every DNS-1123 label is a valid revision name (the accepting path).
    #[test]
    fn dns_labels_are_revision_names(name in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
        prop_assert!(validate_revision(&name).is_ok(), "{name}");
    }

    #[test]
    fn selectors_never_panic_and_match_labels_mean_subsets(
        labels in prop::collection::btree_map("[a-c]{1,2}", "[x-z]{0,2}", 0..5),
        wanted in prop::collection::btree_map("[a-c]{1,2}", "[x-z]{0,2}", 0..3),
        op in "In|NotIn|Exists|DoesNotExist|Bogus|",
        key in "[a-c]{1,2}",
        values in prop::collection::vec("[x-z]{0,2}", 0..3),
    ) {
        let by_labels = LabelSelector { match_labels: Some(wanted.clone()), ..Default::default() };
        let subset = wanted.iter().all(|(k, v)| labels.get(k) == Some(v));
        prop_assert_eq!(selector::matches(Some(&by_labels), &labels), subset);
        let expr = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement { key: key.clone(), operator: op.clone(), values: Some(values.clone()) }]),
            ..Default::default()
        };
        let got = selector::matches(Some(&expr), &labels);
        let value = labels.get(&key);
        let want = match op.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        prop_assert_eq!(got, want);
        prop_assert!(selector::matches(None, &labels));
    }
}
