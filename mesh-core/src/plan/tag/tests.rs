//! Unit tests of the tag planners on snapshot builders: object shapes against ISTIO.md §3–4,
//! guardrails, blast radius, removal and listing.

use serde_json::{Value, json};

use super::*;
use crate::{
    inventory::Inventory,
    testkit::{INSTALLER_LABELS, Snap, installed_injector, validator},
};

const URL: &str = "https://127.0.0.1:9443/inject/rev/1-30-3";

fn set(tag: &str, rev: &str) -> SetRequest {
    SetRequest {
        tag: tag.into(),
        revision: rev.into(),
        overwrite: false,
        webhook_name: None,
        generate: false,
    }
}

fn overwrite(tag: &str, rev: &str) -> SetRequest {
    SetRequest {
        overwrite: true,
        ..set(tag, rev)
    }
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {objs:#?}"))
}

fn hook<'a>(mwc: &'a Value, prefix: &str) -> &'a Value {
    let name = format!("{prefix}.sidecar-injector.istio.io");
    mwc["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name.as_str())
        .unwrap()
}

fn hook_names(mwc: &Value) -> Vec<&str> {
    mwc["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect()
}

fn sel(exprs: Value) -> Value {
    json!({ "matchExpressions": exprs })
}

/// Old default revision (istioctl-installed: default tag, legacy injector deactivated), and a
/// canary whose injector points at a service or a URL.
fn cluster(url: Option<&str>) -> Snap {
    Snap::new()
        .control_plane("default", "1.29.6")
        .tag("default", "default")
        .deactivate_legacy()
        .control_plane("1-30-3", "1.30.3")
        .webhook(installed_injector("1-30-3", url))
}

#[test]
fn tag_webhook_copies_a_service_based_injector() {
    let (snap, inv) = cluster(None).build();
    let plan = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap();
    let mwc = find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod",
    );
    assert_eq!(mwc["apiVersion"], "admissionregistration.k8s.io/v1");
    let l = &mwc["metadata"]["labels"];
    assert_eq!(l["istio.io/tag"], "prod");
    assert_eq!(l["istio.io/rev"], "1-30-3");
    assert_eq!(l["app"], "sidecar-injector");
    assert_eq!(l["app.kubernetes.io/name"], "istiod");
    assert_eq!(l["release"], "istio", "copied from the revision's injector");
    for (k, _) in INSTALLER_LABELS
        .iter()
        .filter(|(k, _)| k.contains("operator.istio.io"))
    {
        assert!(l.get(k).is_none(), "{k} must be stripped: {l}");
    }
    assert_eq!(
        hook_names(mwc),
        [
            "rev.namespace.sidecar-injector.istio.io",
            "rev.object.sidecar-injector.istio.io"
        ]
    );
    let ns_hook = hook(mwc, "rev.namespace");
    assert_eq!(
        ns_hook["clientConfig"],
        json!({"service": {"name": "istiod-1-30-3", "namespace": "istio-system", "path": "/inject", "port": 443},
               "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="})
    );
    assert_eq!(ns_hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(ns_hook["failurePolicy"], "Fail");
    assert_eq!(ns_hook["sideEffects"], "None");
    assert_eq!(ns_hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(
        ns_hook["rules"],
        json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    );
    assert_eq!(
        ns_hook["namespaceSelector"],
        sel(
            json!([{"key": "istio.io/rev", "operator": "In", "values": ["prod"]},
                   {"key": "istio-injection", "operator": "DoesNotExist"}])
        )
    );
    assert_eq!(
        ns_hook["objectSelector"],
        sel(json!([{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]))
    );
    let obj_hook = hook(mwc, "rev.object");
    assert_eq!(
        obj_hook["namespaceSelector"],
        sel(json!([{"key": "istio.io/rev", "operator": "DoesNotExist"},
                   {"key": "istio-injection", "operator": "DoesNotExist"}]))
    );
    assert_eq!(
        obj_hook["objectSelector"],
        sel(
            json!([{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
                   {"key": "istio.io/rev", "operator": "In", "values": ["prod"]}])
        )
    );
}

#[test]
fn tag_webhook_copies_a_url_based_injector() {
    let (snap, inv) = cluster(Some(URL)).build();
    let plan = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap();
    let mwc = find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod",
    );
    // rev.namespace and rev.object, both copied from the URL-based injector.
    assert_eq!(mwc["webhooks"].as_array().unwrap().len(), 2, "{mwc}");
    for w in mwc["webhooks"].as_array().unwrap() {
        assert_eq!(w["clientConfig"]["url"], URL);
        assert!(w["clientConfig"].get("service").is_none());
        assert!(w["clientConfig"]["caBundle"].is_string());
    }
}

#[test]
fn tag_service_selects_the_revisions_istiod_from_1_28_on() {
    let (snap, inv) = cluster(None).build();
    let plan = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap();
    let svc = find(&plan.apply, "Service", "istiod-revision-tag-prod");
    assert_eq!(svc["metadata"]["namespace"], "istio-system");
    assert_eq!(svc["metadata"]["labels"]["istio.io/tag"], "prod");
    assert_eq!(svc["metadata"]["labels"]["istio.io/rev"], "1-30-3");
    assert_eq!(
        svc["spec"]["selector"],
        json!({"app": "istiod", "istio.io/rev": "1-30-3"})
    );
    let ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [15010, 15012, 443, 15014]);
    // A 1.27 control plane gets no Service (istioctl 1.27 made none).
    let (snap, inv) = Snap::new().control_plane("1-27-1", "1.27.1").build();
    let plan = plan_set(&snap, &inv, &set("old", "1-27-1")).unwrap();
    let kinds: Vec<&str> = plan
        .apply
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["MutatingWebhookConfiguration"]);
}

#[test]
fn default_tag_brings_the_validator_and_deactivates_the_legacy_injector() {
    // A canary-only install that still has an active legacy injector (no default tag yet).
    let (snap, inv) = Snap::new()
        .control_plane("default", "1.29.6")
        .control_plane("1-30-3", "1.30.3")
        .webhook(installed_injector("1-30-3", Some(URL)))
        .namespace("legacy", &[("istio-injection", "enabled")])
        .pod("legacy", "web-1", Some("default"), "1.29.6")
        .build();
    let plan = plan_set(&snap, &inv, &set("default", "1-30-3")).unwrap();
    let mwc = find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-default",
    );
    assert_eq!(
        hook_names(mwc),
        ["rev.namespace", "rev.object", "namespace", "object"]
            .map(|p| format!("{p}.sidecar-injector.istio.io"))
    );
    assert_eq!(
        hook(mwc, "namespace")["namespaceSelector"],
        sel(json!([{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]))
    );
    assert_eq!(
        hook(mwc, "object")["objectSelector"],
        sel(
            json!([{"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
                   {"key": "istio.io/rev", "operator": "DoesNotExist"}])
        )
    );
    let vwc = find(
        &plan.apply,
        "ValidatingWebhookConfiguration",
        "istiod-default-validator",
    );
    let l = &vwc["metadata"]["labels"];
    assert_eq!(
        (
            &l["app"],
            &l["istio"],
            &l["istio.io/tag"],
            &l["istio.io/rev"]
        ),
        (
            &json!("istiod"),
            &json!("istiod"),
            &json!("default"),
            &json!("1-30-3")
        )
    );
    assert!(l.get("operator.istio.io/component").is_none());
    let w = &vwc["webhooks"][0];
    assert_eq!(w["name"], "validation.istio.io");
    assert_eq!(w["clientConfig"]["url"], "https://127.0.0.1:9443/validate");
    assert_eq!(w["failurePolicy"], "Ignore");
    assert_eq!(
        w["objectSelector"],
        sel(json!([{"key": "istio.io/rev", "operator": "DoesNotExist"}]))
    );
    assert_eq!(w["rules"][0]["operations"], json!(["CREATE", "UPDATE"]));
    let off = plan
        .apply
        .iter()
        .find(|o| o["metadata"]["name"] == "istio-sidecar-injector")
        .unwrap();
    assert_eq!(off["webhooks"].as_array().unwrap().len(), 4);
    for w in off["webhooks"].as_array().unwrap() {
        let never = json!({"matchLabels": {"istio.io/deactivated": "never-match"}});
        assert_eq!(
            (&w["namespaceSelector"], &w["objectSelector"]),
            (&never, &never)
        );
    }
    let legacy = plan
        .namespaces
        .iter()
        .find(|n| n.namespace == "legacy")
        .unwrap();
    assert_eq!(
        (
            legacy.before.revision(),
            legacy.after.revision(),
            legacy.pods
        ),
        (Some("default"), Some("1-30-3"), 1)
    );
    assert_eq!(legacy.selected_by, "istio-injection=enabled");
    // generate: the same objects, but the legacy injector is left alone (with a note).
    let generated = plan_set(
        &snap,
        &inv,
        &SetRequest {
            generate: true,
            ..set("default", "1-30-3")
        },
    )
    .unwrap();
    assert!(
        generated
            .apply
            .iter()
            .all(|o| o["metadata"]["name"] != "istio-sidecar-injector")
    );
    assert_eq!(generated.generated().len(), 3);
    assert!(
        generated
            .notes
            .iter()
            .any(|n| n.contains("does not deactivate")),
        "{:?}",
        generated.notes
    );
}

#[test]
fn default_validator_keeps_the_fail_policy_istiod_set_and_service_path_is_validate() {
    let (snap, inv) = cluster(None)
        .validating(validator(
            "istiod-default-validator",
            &[("istio.io/tag", "default")],
            "Fail",
        ))
        .build();
    let plan = plan_set(&snap, &inv, &overwrite("default", "1-30-3")).unwrap();
    let vwc = find(
        &plan.apply,
        "ValidatingWebhookConfiguration",
        "istiod-default-validator",
    );
    assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Fail");
    assert_eq!(
        vwc["webhooks"][0]["clientConfig"]["service"]["path"],
        "/validate"
    );
    assert_eq!(
        vwc["webhooks"][0]["clientConfig"]["service"]["name"],
        "istiod-1-30-3"
    );
    assert!(
        plan.steps
            .iter()
            .any(|s| s.action == Action::Update && s.object.name == "istiod-default-validator")
    );
    assert!(
        plan.notes.is_empty(),
        "already deactivated: nothing more to say: {:?}",
        plan.notes
    );
}

#[test]
fn guardrails_refuse_bad_input() {
    let (snap, inv) = cluster(None).tag("prod", "default").build();
    let err = plan_set(&snap, &inv, &set("canary", "1-31-0")).unwrap_err();
    assert_eq!(err.class(), Class::Usage);
    assert_eq!(err.to_string(), "revision `1-31-0` does not exist");
    assert_eq!(
        err.hints(),
        [
            "revisions in this cluster: 1-30-3, default; tags: default, prod; see `kubectl mesh tag list`"
        ]
    );
    let err = plan_set(&snap, &inv, &set("canary", "prod")).unwrap_err();
    assert_eq!(
        err,
        TagError::Revision(RevisionError::IsTag {
            name: "prod".into(),
            points_at: "default".into()
        })
    );
    let err = plan_set(&snap, &inv, &set("1-30-3", "default")).unwrap_err();
    assert!(matches!(err, TagError::ShadowsRevision { .. }), "{err}");
    assert!(matches!(
        plan_set(&snap, &inv, &overwrite("1-30-3", "default")),
        Err(TagError::ShadowsRevision { .. })
    ));
    let err = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tag `prod` already points at revision `default`"
    );
    assert_eq!(
        err.hints(),
        ["pass --overwrite to move it from `default` to `1-30-3`"]
    );
    for bad in ["Prod", "-x", "x-", "a_b", "", &"x".repeat(44)] {
        let err = plan_set(&snap, &inv, &set(bad, "1-30-3")).unwrap_err();
        assert!(matches!(err, TagError::InvalidName { .. }), "{bad}: {err}");
    }
    // Same revision again: nothing to do.
    let plan = plan_set(&snap, &inv, &set("prod", "default")).unwrap();
    assert!(plan.up_to_date && plan.apply.is_empty() && plan.steps.is_empty());
    // generate ignores the existing tag.
    assert!(
        plan_set(
            &snap,
            &inv,
            &SetRequest {
                generate: true,
                ..set("prod", "1-30-3")
            }
        )
        .is_ok()
    );
}

#[test]
fn a_revision_needs_exactly_one_injector_to_copy() {
    let (snap, inv) = Snap::new()
        .control_plane("1-30-3", "1.30.3")
        .with(|s| s.mutating_webhooks.clear())
        .build();
    let err = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap_err();
    assert_eq!(
        err,
        TagError::NoInjector {
            revision: "1-30-3".into()
        }
    );
    assert_eq!(err.class(), Class::Blocked);
    let mut twin = crate::testkit::injector("1-30-3", None);
    twin.metadata.name = Some("istio-sidecar-injector-1-30-3-copy".into());
    let (snap, inv) = Snap::new()
        .control_plane("1-30-3", "1.30.3")
        .webhook(twin)
        .build();
    let err = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap_err();
    assert!(
        matches!(&err, TagError::AmbiguousInjector { names, .. } if names.len() == 2),
        "{err}"
    );
}

fn prod_cluster() -> Snap {
    cluster(None)
        .tag("prod", "default")
        .namespace("shop", &[("istio.io/rev", "prod")])
        .pod("shop", "web-1", Some("default"), "1.29.6")
        .pod("shop", "web-2", Some("default"), "1.29.6")
        .labelled_pod(
            "shop",
            "batch-1",
            None,
            "",
            &[("sidecar.istio.io/inject", "false")],
        )
        .namespace("plain", &[])
        .labelled_pod(
            "plain",
            "tool-1",
            Some("default"),
            "1.29.6",
            &[("istio.io/rev", "prod")],
        )
        .pod("plain", "other-1", None, "")
        .namespace("direct", &[("istio.io/rev", "1-30-3")])
        .pod("direct", "api-1", Some("1-30-3"), "1.30.3")
}

#[test]
fn blast_radius_lists_namespaces_and_pods_that_move_on_restart() {
    let (snap, inv) = prod_cluster().build();
    let plan = plan_set(&snap, &inv, &overwrite("prod", "1-30-3")).unwrap();
    let names: Vec<_> = plan
        .namespaces
        .iter()
        .map(|n| n.namespace.as_str())
        .collect();
    assert_eq!(names, ["plain", "shop"], "`direct` does not use the tag");
    let shop = &plan.namespaces[1];
    assert_eq!(shop.selected_by, "istio.io/rev=prod");
    assert_eq!(shop.before.describe(), "default (tag prod)");
    assert_eq!(shop.after.describe(), "1-30-3 (tag prod)");
    assert_eq!(shop.pods, 2, "the opted-out pod is not injected either way");
    assert_eq!(shop.proxies.get("1.29.6"), Some(&2));
    let plain = &plan.namespaces[0];
    assert_eq!((plain.selected_by.as_str(), plain.pods), ("pod labels", 1));
    assert_eq!(
        plain.after,
        Injects::Nothing,
        "the namespace itself selects nothing"
    );
    assert_eq!(plan.previous_revision.as_deref(), Some("default"));
    assert!(!plan.blocked());
    assert_eq!(plan.findings.len(), 1);
    assert_eq!(plan.findings[0].result, Outcome::Ok);
    assert!(
        plan.findings[0].message.starts_with("3 proxies"),
        "{}",
        plan.findings[0].message
    );
}

#[test]
fn skew_too_far_blocks_and_a_move_back_warns() {
    let (snap, inv) = Snap::new()
        .control_plane("1-28-4", "1.28.4")
        .control_plane("1-30-3", "1.30.3")
        .tag("prod", "1-28-4")
        .namespace("shop", &[("istio.io/rev", "prod")])
        .pod("shop", "web-1", Some("1-28-4"), "1.28.4")
        .build();
    let plan = plan_set(&snap, &inv, &overwrite("prod", "1-30-3")).unwrap();
    assert!(plan.blocked());
    let f = plan.findings.iter().find(|f| f.id == "tag.skew").unwrap();
    assert_eq!(f.result, Outcome::Error);
    assert_eq!(f.objects, ["Pod/shop/web-1 (1.28.4 → 1.30.3)"]);
    let (snap, inv) = Snap::new()
        .control_plane("1-29-6", "1.29.6")
        .control_plane("1-30-3", "1.30.3")
        .tag("prod", "1-30-3")
        .namespace("shop", &[("istio.io/rev", "prod")])
        .pod("shop", "web-1", Some("1-30-3"), "1.30.3")
        .build();
    let plan = plan_set(&snap, &inv, &overwrite("prod", "1-29-6")).unwrap();
    assert!(!plan.blocked());
    assert_eq!(plan.findings[0].result, Outcome::Warning);
    assert!(plan.findings[0].message.contains("downgrade"));
}

#[test]
fn an_unready_target_blocks() {
    let (snap, inv) = cluster(None)
        .with(|s| {
            for d in &mut s.deployments {
                if d.metadata.name.as_deref() == Some("istiod-1-30-3") {
                    d.status.as_mut().unwrap().ready_replicas = Some(0);
                }
            }
        })
        .build();
    let plan = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap();
    let f = plan
        .findings
        .iter()
        .find(|f| f.id == "tag.control-plane")
        .unwrap();
    assert_eq!(f.result, Outcome::Error);
    assert!(plan.blocked());
}

#[test]
fn moving_keeps_the_existing_webhook_name_and_a_rename_deletes_the_old_one() {
    let mut custom = crate::testkit::injector("default", Some("prod"));
    custom.metadata.name = Some("my-prod-injector".into());
    custom.metadata.uid = Some("uid-my-prod".into());
    let (snap, inv) = cluster(None).webhook(custom).build();
    let plan = plan_set(&snap, &inv, &overwrite("prod", "1-30-3")).unwrap();
    find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "my-prod-injector",
    );
    assert!(plan.delete.is_empty());
    let renamed = SetRequest {
        webhook_name: Some("istio-revision-tag-prod".into()),
        ..overwrite("prod", "1-30-3")
    };
    let plan = plan_set(&snap, &inv, &renamed).unwrap();
    find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod",
    );
    assert_eq!(plan.delete.len(), 1);
    assert_eq!(plan.delete[0].name, "my-prod-injector");
    assert_eq!(plan.steps.last().unwrap().action, Action::Delete);
    // As a plan of changes: the applies, then the removal of the old webhook by its UID,
    // waited on; istioctl's tag managers may be taken over from.
    let changes = plan.changes();
    let names: Vec<&str> = changes.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["tag objects", "removals"]);
    let crate::change::Op::Delete { target, uid } = &changes.phases[1].ops[0] else {
        panic!("{:?}", changes.phases[1])
    };
    assert_eq!(target.name, "my-prod-injector");
    assert_eq!(
        uid.as_deref(),
        Some("uid-my-prod"),
        "deletes carry the UID read"
    );
    assert!(
        matches!(&changes.phases[1].waits[0], crate::change::Wait::Gone { uid: u, .. } if u == uid)
    );
    assert!(changes.takeover.contains("istio-ci") && changes.takeover.contains("istio-operator"));
}

#[test]
fn other_istio_namespaces_suffix_the_webhook_name() {
    let (mut snap, _) = Snap::new().build();
    snap.istio_namespace = "mesh".into();
    let mut canon = crate::testkit::injector("1-30-3", None);
    canon.metadata.name = Some("istio-sidecar-injector-1-30-3-mesh".into());
    snap.mutating_webhooks.push(canon);
    snap.deployments
        .push(crate::testkit::istiod("1-30-3", "1.30.3", 1, 1));
    let inv = Inventory::from_snapshot(&snap);
    let plan = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap();
    find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-prod-mesh",
    );
    assert_eq!(
        find(&plan.apply, "Service", "istiod-revision-tag-prod")["metadata"]["namespace"],
        "mesh"
    );
}

#[test]
fn moving_the_default_tag_keeps_its_auto_inject_webhook() {
    let mut auto = crate::testkit::injector("default", Some("default"));
    let mut extra = auto.webhooks.as_ref().unwrap()[0].clone();
    extra.name = "auto.sidecar-injector.istio.io".into();
    auto.webhooks.as_mut().unwrap().push(extra);
    let (snap, inv) = cluster(None).webhook(auto).build();
    let plan = plan_set(&snap, &inv, &overwrite("default", "1-30-3")).unwrap();
    let mwc = find(
        &plan.apply,
        "MutatingWebhookConfiguration",
        "istio-revision-tag-default",
    );
    let ns = &hook(mwc, "auto")["namespaceSelector"]["matchExpressions"][2];
    assert_eq!(
        ns["values"],
        json!([
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "local-path-storage"
        ])
    );
}

#[test]
fn our_tag_objects_are_read_back_as_a_tag() {
    let (snap, inv) = prod_cluster().build();
    let plan = plan_set(&snap, &inv, &overwrite("prod", "1-30-3")).unwrap();
    let mut after = snap.clone();
    simulate(&mut after.mutating_webhooks, &plan.apply, &plan.delete);
    let inv = Inventory::from_snapshot(&after);
    let t = inv.tag("prod").unwrap();
    assert_eq!(
        (t.revision.as_str(), t.installer_managed),
        ("1-30-3", false)
    );
    let shop = inv.namespaces.iter().find(|n| n.name == "shop").unwrap();
    assert_eq!(shop.injection.revision(), Some("1-30-3"));
}

#[test]
fn remove_deletes_every_object_of_the_tag_and_reports_users() {
    let (snap, inv) = prod_cluster()
        .service(
            "istiod-revision-tag-prod",
            &[("istio.io/tag", "prod"), ("istio.io/rev", "default")],
        )
        .build();
    let plan = plan_remove(&snap, &inv, "prod").unwrap();
    let deleted: Vec<String> = plan.delete.iter().map(ToString::to_string).collect();
    assert_eq!(
        deleted,
        [
            "MutatingWebhookConfiguration/istio-revision-tag-prod",
            "Service/istio-system/istiod-revision-tag-prod"
        ]
    );
    assert!(plan.in_use());
    assert_eq!(plan.revision.as_deref(), Some("default"));
    let shop = plan
        .namespaces
        .iter()
        .find(|n| n.namespace == "shop")
        .unwrap();
    assert_eq!((shop.after.clone(), shop.pods), (Injects::Nothing, 2));
    let f = plan.findings.iter().find(|f| f.id == "tag.remove").unwrap();
    assert!(
        f.message
            .starts_with("3 pod(s) would start without a proxy"),
        "{}",
        f.message
    );
    let err = plan_remove(&snap, &inv, "nope").unwrap_err();
    assert_eq!(err.hints(), ["tags in this cluster: default, prod"]);
    // An unused tag.
    let (snap, inv) = cluster(None).tag("spare", "1-30-3").build();
    assert!(!plan_remove(&snap, &inv, "spare").unwrap().in_use());
}

#[test]
fn removing_default_reactivates_the_legacy_injector_while_its_control_plane_runs() {
    let (snap, inv) = cluster(None)
        .validating(validator(
            "istiod-default-validator",
            &[("istio.io/tag", "default")],
            "Fail",
        ))
        .namespace("legacy", &[("istio-injection", "enabled")])
        .pod("legacy", "web-1", Some("default"), "1.29.6")
        .build();
    let plan = plan_remove(&snap, &inv, "default").unwrap();
    assert_eq!(plan.apply.len(), 1);
    let patch = &plan.apply[0];
    assert_eq!(patch["metadata"]["name"], "istio-sidecar-injector");
    let ns_hook = patch["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "namespace.sidecar-injector.istio.io")
        .unwrap();
    assert_eq!(
        ns_hook["namespaceSelector"],
        sel(json!([{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]))
    );
    let rev_hook = patch["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "rev.namespace.sidecar-injector.istio.io")
        .unwrap();
    assert_eq!(
        rev_hook["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["default"])
    );
    assert!(
        plan.delete
            .iter()
            .any(|d| d.name == "istiod-default-validator")
    );
    let legacy = plan
        .namespaces
        .iter()
        .find(|n| n.namespace == "legacy")
        .unwrap();
    assert_eq!(
        legacy.after.describe(),
        "default",
        "the legacy injector takes over"
    );
    assert_eq!(legacy.pods, 0, "same revision: nothing changes on restart");
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("injected by the legacy injector")),
        "{:?}",
        plan.notes
    );
    // Without the default control plane the legacy injector stays off, and the plan says so.
    let (snap, inv) = cluster(None)
        .with(|s| {
            s.deployments
                .retain(|d| d.metadata.name.as_deref() != Some("istiod"))
        })
        .namespace("legacy", &[("istio-injection", "enabled")])
        .build();
    let plan = plan_remove(&snap, &inv, "default").unwrap();
    assert!(plan.apply.is_empty());
    assert!(
        plan.notes.iter().any(|n| n.contains("stays deactivated")),
        "{:?}",
        plan.notes
    );
    let legacy = plan
        .namespaces
        .iter()
        .find(|n| n.namespace == "legacy")
        .unwrap();
    assert_eq!(legacy.after, Injects::Nothing);
}

#[test]
fn list_shows_tags_untagged_revisions_direct_namespaces_and_dangling_labels() {
    let (snap, inv) = prod_cluster()
        .control_plane("1-31-0", "1.31.0")
        .service(
            "istiod-revision-tag-ambient",
            &[("istio.io/tag", "ambient"), ("istio.io/rev", "1-30-3")],
        )
        .namespace("gone", &[("istio.io/rev", "1-27-0")])
        .build();
    let l = list(&snap, &inv);
    type Row<'a> = (Option<&'a str>, &'a str, Option<&'a str>, Vec<&'a str>);
    let rows: Vec<Row> = l
        .items
        .iter()
        .map(|r| {
            (
                r.tag.as_deref(),
                r.revision.as_str(),
                r.revision_version.as_deref(),
                r.namespaces.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (None, "1-30-3", Some("1.30.3"), vec!["direct"]),
            (Some("ambient"), "1-30-3", Some("1.30.3"), vec![]),
            (None, "1-31-0", Some("1.31.0"), vec![]),
            (Some("default"), "default", Some("1.29.6"), vec![]),
            (Some("prod"), "default", Some("1.29.6"), vec!["shop"]),
        ]
    );
    assert_eq!(l.items[1].webhook, None, "a Service-only tag");
    assert_eq!(
        l.items[4].webhook.as_deref(),
        Some("istio-revision-tag-prod")
    );
    assert_eq!(
        l.unresolved,
        [Unresolved {
            namespace: "gone".into(),
            label: "istio.io/rev=1-27-0".into(),
            problem: "no injector matches: pods start without a proxy".into()
        }]
    );
    let json = serde_json::to_value(&l).unwrap();
    assert_eq!(json["schemaVersion"], 1);
    assert_eq!(json["items"][0]["revisionVersion"], "1.30.3");
}

#[test]
fn unreadable_webhooks_stop_planning() {
    let (mut snap, inv) = cluster(None).build();
    snap.add_gap(Source::MutatingWebhooks, "forbidden");
    let err = plan_set(&snap, &inv, &set("prod", "1-30-3")).unwrap_err();
    assert_eq!(err.class(), Class::Failed);
    assert_eq!(
        err.to_string(),
        "cannot read mutatingwebhookconfigurations: forbidden"
    );
}
