//! Property tests (fuzzing by generated input) of everything that parses user input: the
//! manifest parser, the snapshot reader, the version and revision-name parsers, and selector
//! evaluation. None may panic on any input; what they accept keeps its meaning. Failing cases
//! proptest finds are kept in `proptest-regressions/` and replayed first on every run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use mesh_core::{
    error::validate_revision, manifest::Manifest, selector, snapshot::ClusterSnapshot,
    version::IstioVersion,
};
use proptest::prelude::*;

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
        Just("  labels: [a, b]\n".to_owned()),
        Just("{\"kind\": \"List\", \"items\": [".to_owned()),
        Just("&a [*a]\n".to_owned()),
        "[ -~]{0,40}\n",
        "\\PC{0,20}",
    ];
    prop::collection::vec(fragment, 0..14).prop_map(|v| v.concat())
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

    #[test]
    fn the_snapshot_reader_never_panics(text in yamlish()) {
        if let Ok(s) = ClusterSnapshot::from_yaml(&text, "istio-system") {
            // What it reads, it can write and read back.
            let again = ClusterSnapshot::from_yaml(&s.to_yaml().unwrap(), "istio-system").unwrap();
            prop_assert_eq!(again.namespaces.len(), s.namespaces.len());
            prop_assert_eq!(again.pods.len(), s.pods.len());
        }
    }

    #[test]
    fn version_parsers_never_panic(text in "\\PC{0,30}") {
        let _ = IstioVersion::parse(&text);
        if let Ok(v) = IstioVersion::parse_release(&text) {
            prop_assert!(IstioVersion::parse(&v.to_string()).is_ok());
        }
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
