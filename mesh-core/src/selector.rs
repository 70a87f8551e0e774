//! Kubernetes label-selector matching, as the apiserver evaluates webhook selectors.
//!
//! Which revision injects a namespace is decided by the injector webhooks' namespace and object
//! selectors, so evaluating those selectors is the faithful way to answer it (tags, the `default`
//! tag, deactivated legacy injectors and `istio-injection` precedence all follow from it).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` match `selector`. `None` (absent selector) matches everything, as does an
/// empty selector; an unknown operator matches nothing, like the apiserver rejecting it.
pub fn matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector else { return true };
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn evaluates_istio_injector_selectors() {
        let rev_ns = LabelSelector {
            match_expressions: Some(vec![
                expr("istio.io/rev", "In", &["1-30-3"]),
                expr("istio-injection", "DoesNotExist", &[]),
            ]),
            ..Default::default()
        };
        assert!(matches(
            Some(&rev_ns),
            &labels(&[("istio.io/rev", "1-30-3")])
        ));
        assert!(!matches(
            Some(&rev_ns),
            &labels(&[("istio.io/rev", "1-30-3"), ("istio-injection", "enabled")])
        ));
        assert!(!matches(Some(&rev_ns), &labels(&[])));
        let not_false = LabelSelector {
            match_expressions: Some(vec![expr("sidecar.istio.io/inject", "NotIn", &["false"])]),
            ..Default::default()
        };
        assert!(
            matches(Some(&not_false), &labels(&[])),
            "NotIn matches an absent key"
        );
        assert!(!matches(
            Some(&not_false),
            &labels(&[("sidecar.istio.io/inject", "false")])
        ));
        let deactivated = LabelSelector {
            match_labels: Some(labels(&[("istio.io/deactivated", "never-match")])),
            ..Default::default()
        };
        assert!(!matches(
            Some(&deactivated),
            &labels(&[("istio-injection", "enabled")])
        ));
        assert!(matches(None, &labels(&[])));
        let bogus = LabelSelector {
            match_expressions: Some(vec![expr("a", "Near", &["b"])]),
            ..Default::default()
        };
        assert!(!matches(Some(&bogus), &labels(&[("a", "b")])));
    }
}
