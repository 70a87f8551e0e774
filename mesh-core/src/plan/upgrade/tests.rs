//! Upgrade planning on real `istioctl manifest generate` output (fixtures) and small snapshots.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::*;
use crate::{
    inventory::REV_LABEL,
    testkit::{Snap, labels},
};

const OLD: &str = include_str!("../../../fixtures/manifests/default-1.29.6.yaml");
const NEW: &str = include_str!("../../../fixtures/manifests/default-1.30.3.yaml");
const CANARY: &str = include_str!("../../../fixtures/manifests/canary-1-30-3.yaml");

fn manifest(text: &str) -> Manifest {
    Manifest::parse(text).unwrap()
}

fn cluster(revisions: &[(&str, &str)]) -> (ClusterSnapshot, Inventory) {
    let mut s = Snap::new().namespace("istio-system", &[]);
    for (rev, v) in revisions {
        s = s.control_plane(rev, v);
    }
    s.build()
}

fn prep(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    text: &str,
    req: &Request,
) -> Result<Prepared, UpgradeError> {
    prepare(snap, inv, &manifest(text), req, &BTreeMap::new(), &[])
}

/// [`prepare`] with the objects an installer labelled (the prune candidates).
fn prep_installed(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    text: &str,
    live: &[TypedMeta],
) -> Prepared {
    prepare(
        snap,
        inv,
        &manifest(text),
        &Request::default(),
        &BTreeMap::new(),
        live,
    )
    .unwrap()
}

fn phase_names(plan: &ChangePlan) -> Vec<&str> {
    plan.phases.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn in_place_upgrade_plans_every_object_with_istioctls_owner_labels_in_phases() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    assert_eq!(p.target.mode, Mode::InPlace);
    assert_eq!(p.target.direction, Some(Direction::Upgrade));
    assert_eq!(
        p.target.describe(),
        "in-place upgrade of revision `default`: 1.29.6 → 1.30.3"
    );
    assert!(p.refusal(false).is_none(), "{:#?}", p.blocking(false));
    assert_eq!(
        phase_names(&p.full),
        [
            "CRDs",
            "cluster RBAC",
            "configuration and services",
            "control plane",
            "webhooks",
            "gateways"
        ]
    );
    assert_eq!(
        p.full.ops().count(),
        p.objects.len(),
        "every object is applied"
    );
    assert!(p.objects.len() >= 30, "{}", p.objects.len());
    for op in p.full.ops() {
        let Op::Apply { object } = op else {
            panic!("{op:?}")
        };
        let l = &object["metadata"]["labels"];
        assert_eq!(
            l["operator.istio.io/managed"], "Reconcile",
            "{}",
            object["metadata"]["name"]
        );
        assert_eq!(l["operator.istio.io/version"], "1.30.3");
        assert_eq!(l[REV_LABEL], "default");
        assert_eq!(
            l["install.operator.istio.io/owning-resource-namespace"],
            "istio-system"
        );
        assert!(l[COMPONENT].is_string());
    }
    let comp = |name: &str| {
        p.objects
            .iter()
            .find(|o| o.r.name == name)
            .unwrap()
            .component
            .clone()
    };
    assert_eq!(comp("virtualservices.networking.istio.io"), "Base");
    assert_eq!(comp("istiod-clusterrole-istio-system"), "Pilot");
    assert_eq!(comp("istio-ingressgateway"), "IngressGateways");
    let cp = p
        .full
        .phases
        .iter()
        .find(|p| p.name == "control plane")
        .unwrap();
    assert!(cp.waits.iter().any(|w| matches!(w, Wait::Rollout { target, expect }
        if target.name == "istiod" && expect.images["discovery"] == "docker.io/istio/pilot:1.30.3")));
    assert!(
        cp.waits
            .iter()
            .any(|w| matches!(w, Wait::Endpoints { service } if service.name == "istiod"))
    );
    assert!(p.full.takeover.contains("istio-operator"));
    // What a rollback restored (an update by `kubectl-mesh`) is ours to apply again.
    assert!(p.full.takeover.contains("kubectl-mesh"));
}

#[test]
fn downgrade_and_reapply_are_in_place_too() {
    let (snap, inv) = cluster(&[("default", "1.30.3")]);
    let p = prep(&snap, &inv, OLD, &Request::default()).unwrap();
    assert_eq!(p.target.direction, Some(Direction::Downgrade));
    assert!(p.target.describe().starts_with("in-place downgrade"));
    assert!(
        p.findings
            .iter()
            .any(|f| f.id == "skew.in-place" && f.result == Outcome::Warning)
    );
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    assert_eq!(p.target.direction, Some(Direction::Reapply));
}

#[test]
fn two_minors_in_place_is_refused_unless_forced_and_allowed_as_a_canary() {
    let (snap, inv) = cluster(&[("default", "1.28.2")]);
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    let refusal = p.refusal(false).unwrap();
    assert_eq!(
        refusal,
        UpgradeError::Refused {
            errors: 1,
            forceable: true
        }
    );
    assert_eq!(refusal.class(), Class::Blocked);
    assert!(p.refusal(true).is_none(), "--force overrides skew");
    let canary = Request {
        canary: true,
        ..Request::default()
    };
    let c = prep(&snap, &inv, CANARY, &canary).unwrap();
    assert_eq!(c.target.mode, Mode::Canary);
    assert!(c.refusal(false).is_none(), "{:#?}", c.blocking(false));
}

#[test]
fn a_new_revision_needs_canary_and_canary_needs_a_new_revision() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let e = prep(&snap, &inv, CANARY, &Request::default()).unwrap_err();
    assert!(matches!(e, UpgradeError::CanaryNotAsked { .. }), "{e}");
    assert!(e.to_string().contains("beside `default`"), "{e}");
    let canary = Request {
        canary: true,
        ..Request::default()
    };
    let e = prep(&snap, &inv, NEW, &canary).unwrap_err();
    assert_eq!(
        e,
        UpgradeError::CanaryExists {
            revision: "default".into()
        }
    );
    assert_eq!(e.class(), Class::Usage);
}

#[test]
fn helm_installs_are_refused_with_the_helm_command() {
    let (snap, inv) = Snap::new()
        .namespace("istio-system", &[])
        .control_plane("default", "1.29.6")
        .with(|s| {
            s.deployments[0].metadata.annotations = Some(
                [
                    ("meta.helm.sh/release-name", "istiod"),
                    ("meta.helm.sh/release-namespace", "istio-system"),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            );
        })
        .build();
    let e = prep(&snap, &inv, NEW, &Request::default()).unwrap_err();
    assert!(matches!(e, UpgradeError::Helm { .. }), "{e}");
    assert!(
        e.hints()[0].contains("helm upgrade istiod istio/istiod -n istio-system --version 1.30.3"),
        "{:?}",
        e.hints()
    );
}

#[test]
fn a_fresh_install_creates_the_namespace_first() {
    let (snap, inv) = Snap::new().build();
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    assert_eq!(p.target.mode, Mode::Fresh);
    assert_eq!(phase_names(&p.full)[0], "namespace");
    assert!(p.target.describe().starts_with("fresh install"));
}

#[test]
fn a_manifest_for_another_namespace_is_refused() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let text = NEW.replace("namespace: istio-system", "namespace: mesh");
    let e = prep(&snap, &inv, &text, &Request::default()).unwrap_err();
    assert_eq!(
        e,
        UpgradeError::Namespace {
            manifest: "mesh".into(),
            istio: "istio-system".into()
        }
    );
}

fn installed(kind: &str, api: &str, name: &str, extra: &[(&str, &str)]) -> TypedMeta {
    let mut l = vec![
        (REV_LABEL, "default"),
        (COMPONENT, "Pilot"),
        (
            "install.operator.istio.io/owning-resource-namespace",
            "istio-system",
        ),
    ];
    l.extend_from_slice(extra);
    TypedMeta {
        api_version: api.into(),
        kind: kind.into(),
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: (kind != "ClusterRole").then(|| "istio-system".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(labels(&l)),
            ..Default::default()
        },
    }
}

#[test]
fn prune_takes_what_the_manifest_dropped_but_keeps_not_pruned_tags_and_other_revisions() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let live = vec![
        installed("ConfigMap", "v1", "istio-old-feature", &[]),
        installed("ConfigMap", "v1", "istio", &[]),
        installed(
            "Service",
            "v1",
            "istiod-revision-tag-default",
            &[(NOT_PRUNED, "true")],
        ),
        installed(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "istio-revision-tag-prod",
            &[("istio.io/tag", "prod")],
        ),
        installed("ConfigMap", "v1", "istio-1-30-3", &[(REV_LABEL, "1-30-3")]),
        installed(
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            "old.istio.io",
            &[(COMPONENT, "Base")],
        ),
    ];
    // The last label of a key wins in `labels`: the 1-30-3 ConfigMap is of another revision.
    let p = prep_installed(&snap, &inv, NEW, &live);
    let pruned: Vec<String> = p.prune.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(pruned, ["ConfigMap/istio-system/istio-old-feature"]);
    assert_eq!(p.prune[0].1.as_deref(), Some("uid-istio-old-feature"));
    assert_eq!(p.kept.len(), 1);
    assert_eq!(p.kept[0].name, "istiod-revision-tag-default");
    let prune = p.full.phases.last().unwrap();
    assert_eq!(prune.name, "prune");
    assert!(
        matches!(&prune.waits[0], Wait::Gone { uid: Some(u), .. } if u == "uid-istio-old-feature")
    );
}

/// The live objects an earlier install made from a manifest (owner labels and all).
fn live_from(p: &Prepared) -> BTreeMap<ObjRef, Option<Value>> {
    p.objects
        .iter()
        .map(|o| (o.r.clone(), Some(o.object.clone())))
        .collect()
}

#[test]
fn finish_compares_live_and_after_and_carries_out_only_what_changes() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let mut old = prep(&snap, &inv, OLD, &Request::default()).unwrap();
    // The old install was made by 1.29.6's installer: align the version label so only real
    // differences remain.
    for o in &mut old.objects {
        o.object["metadata"]["labels"]["operator.istio.io/version"] = "1.30.3".into();
    }
    let mut before = live_from(&old);
    let sa = ObjRef::new("v1", "ServiceAccount", Some("istio-system"), "istiod");
    before.remove(&sa);
    before.insert(sa.clone(), None);
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    let plan = finish(
        &p,
        &snap,
        &inv,
        &before,
        &BTreeMap::new(),
        &Default::default(),
    )
    .unwrap();
    let action = |kind: &str, name: &str| {
        plan.objects
            .iter()
            .find(|o| o.object.kind == kind && o.object.name == name)
            .unwrap()
            .action
    };
    assert_eq!(action("Deployment", "istiod"), Action::Update);
    assert_eq!(action("ServiceAccount", "istiod"), Action::Create);
    assert_eq!(
        action("ClusterRole", "istiod-clusterrole-istio-system"),
        Action::Unchanged
    );
    assert!(!plan.server_checked);
    let applied: Vec<ObjRef> = plan.changes.ops().filter_map(Op::target).collect();
    assert!(applied.contains(&sa));
    assert!(
        !applied
            .iter()
            .any(|r| r.name == "istiod-clusterrole-istio-system")
    );
    assert!(plan.keeps(&Op::apply(
        p.objects.iter().find(|o| o.r == sa).unwrap().object.clone()
    )));
    assert_eq!(plan.next, ["kubectl mesh upgrade dataplane -A"]);
}

#[test]
fn helm_owned_live_objects_are_refused() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    let mut before = live_from(&p);
    let r = ObjRef::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "gateways.networking.istio.io",
    );
    let crd = before.get_mut(&r).unwrap().as_mut().unwrap();
    crd["metadata"]["annotations"] = serde_json::json!({"meta.helm.sh/release-name": "istio-base"});
    let e = finish(
        &p,
        &snap,
        &inv,
        &before,
        &BTreeMap::new(),
        &Default::default(),
    )
    .unwrap_err();
    assert!(matches!(e, UpgradeError::HelmObject { .. }), "{e}");
}

#[test]
fn the_data_plane_report_lists_pods_not_on_the_target_yet() {
    let (snap, inv) = Snap::new()
        .namespace("istio-system", &[])
        .control_plane("default", "1.29.6")
        .pod("shop", "web-1", Some("default"), "1.29.6")
        .pod("shop", "web-2", Some("default"), "1.30.3")
        .pod("plain", "x", None, "")
        .build();
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    let plan = finish(
        &p,
        &snap,
        &inv,
        &live_from(&p),
        &BTreeMap::new(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(plan.data_plane.len(), 1);
    assert_eq!(plan.data_plane[0].namespace, "shop");
    assert_eq!(plan.data_plane[0].pods, 1);
    assert_eq!(plan.data_plane[0].proxies["default 1.29.6"], 1);
}

#[test]
fn a_deactivated_legacy_injector_stays_deactivated() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    let mwc = ObjRef::new(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        None,
        "istio-sidecar-injector",
    );
    let mut live = p
        .objects
        .iter()
        .find(|o| o.r == mwc)
        .unwrap()
        .object
        .clone();
    for h in live["webhooks"].as_array_mut().unwrap() {
        h["namespaceSelector"] = crate::plan::tag::never_match();
        h["objectSelector"] = crate::plan::tag::never_match();
    }
    let before: BTreeMap<ObjRef, Option<Value>> = [(mwc.clone(), Some(live))].into_iter().collect();
    let again = prepare(
        &snap,
        &inv,
        &manifest(NEW),
        &Request::default(),
        &before,
        &[],
    )
    .unwrap();
    let applied = &again.objects.iter().find(|o| o.r == mwc).unwrap().object;
    // The default revision's injector: rev.namespace, rev.object, namespace and object hooks.
    assert_eq!(applied["webhooks"].as_array().unwrap().len(), 4);
    for h in applied["webhooks"].as_array().unwrap() {
        assert_eq!(
            h["namespaceSelector"],
            crate::plan::tag::never_match(),
            "{}",
            h["name"]
        );
        assert_eq!(h["objectSelector"], crate::plan::tag::never_match());
    }
    // An active injector is applied with the chart's selectors.
    let active = &p.objects.iter().find(|o| o.r == mwc).unwrap().object;
    assert_ne!(
        active["webhooks"][0]["namespaceSelector"],
        crate::plan::tag::never_match()
    );
}

/// What a snapshot file cannot show is never a create: an object whose kind it did not read is
/// `unknown` with the reason, and is not carried out; one it holds only the metadata of is an
/// update when its labels change (the rest not compared), else unknown.
#[test]
fn what_a_snapshot_cannot_show_is_unknown_never_create() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let p = prep(&snap, &inv, NEW, &Request::default()).unwrap();
    let mut before = live_from(&p);
    let sa = ObjRef::new("v1", "ServiceAccount", Some("istio-system"), "istiod");
    let crd = ObjRef::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "gateways.networking.istio.io",
    );
    let hpa = ObjRef::new(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        Some("istio-system"),
        "istiod",
    );
    before.insert(sa.clone(), None);
    let meta_of = |r: &ObjRef, before: &BTreeMap<ObjRef, Option<Value>>| {
        let v = before[r].clone().unwrap();
        serde_json::json!({"apiVersion": v["apiVersion"], "kind": v["kind"], "metadata": v["metadata"]})
    };
    let mut crd_meta = meta_of(&crd, &before);
    crd_meta["metadata"]["labels"]["istio.io/rev"] = "1-30-3".into();
    before.insert(crd.clone(), Some(crd_meta));
    before.insert(hpa.clone(), Some(meta_of(&hpa, &before)));
    let unseen: BTreeMap<ObjRef, Unseen> = [
        (
            sa.clone(),
            Unseen::NotInSnapshot("not in the snapshot: it holds no ServiceAccounts".into()),
        ),
        (crd.clone(), Unseen::MetadataOnly),
        (hpa.clone(), Unseen::MetadataOnly),
    ]
    .into_iter()
    .collect();
    let plan = finish(&p, &snap, &inv, &before, &BTreeMap::new(), &unseen).unwrap();
    let of = |r: &ObjRef| plan.objects.iter().find(|o| o.object == *r).unwrap();
    assert_eq!(of(&sa).action, Action::Unknown);
    assert_eq!(
        of(&sa).reason.as_deref(),
        Some("not in the snapshot: it holds no ServiceAccounts")
    );
    assert_eq!(of(&crd).action, Action::Update);
    let d = of(&crd).diff.as_ref().unwrap();
    assert!(
        d.changes
            .iter()
            .any(|c| c.field == "metadata.labels.istio.io/rev"),
        "{d:?}"
    );
    assert_eq!(d.other.last().map(String::as_str), Some(METADATA_ONLY));
    assert_eq!(of(&hpa).action, Action::Unknown, "{:?}", of(&hpa));
    assert!(
        of(&hpa)
            .reason
            .as_deref()
            .unwrap()
            .contains("only its metadata")
    );
    assert_eq!(plan.count(Action::Create), 0);
    let applied: Vec<ObjRef> = plan.changes.ops().filter_map(Op::target).collect();
    assert!(!applied.contains(&sa) && !applied.contains(&hpa));
    assert!(applied.contains(&crd));
    let json = serde_json::to_value(of(&sa)).unwrap();
    assert_eq!(json["action"], "unknown");
    assert_eq!(
        json["reason"],
        "not in the snapshot: it holds no ServiceAccounts"
    );
}

/// The test bed's two chart generations (trimmed, see the fixtures' headers).
const GEN_OLD: &str = include_str!("../../../fixtures/manifests/generation-old-1.30.5.yaml");
const GEN_NEW: &str = include_str!("../../../fixtures/manifests/generation-new-1.31.1.yaml");
/// The CRDs whose schema differs between them.
const CHANGED_CRDS: [&str; 6] = [
    "destinationrules.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "gateways.networking.istio.io",
    "sidecars.networking.istio.io",
    "trafficextensions.extensions.istio.io",
    "virtualservices.networking.istio.io",
];

/// The offline plan from a live install of `from` (revision `default` at `from_tag`, the owner
/// labels aligned with the target's so only real differences remain) to manifest `to`.
fn plan_between(from: &str, from_tag: &str, to: &str) -> UpgradePlan {
    let (snap, inv) = cluster(&[("default", from_tag)]);
    let p = prep(&snap, &inv, to, &Request::default()).unwrap();
    let mut live = prep(&snap, &inv, from, &Request::default()).unwrap();
    let version = p.target.version.to_string();
    for o in &mut live.objects {
        o.object["metadata"]["labels"]["operator.istio.io/version"] = version.clone().into();
    }
    let before = live_from(&live);
    finish(
        &p,
        &snap,
        &inv,
        &before,
        &BTreeMap::new(),
        &Default::default(),
    )
    .unwrap()
}

/// Names of the objects of `kind` the plan updates (others of that kind must be unchanged).
fn updated(plan: &UpgradePlan, kind: &str) -> BTreeSet<String> {
    let of_kind = plan.objects.iter().filter(|o| o.object.kind == kind);
    let mut names = BTreeSet::new();
    for o in of_kind {
        match o.action {
            Action::Update => names.insert(o.object.name.clone()),
            Action::Unchanged => false,
            other => panic!("{} is {other:?}", o.object),
        };
    }
    names
}

/// The fields an update changes, by object name.
fn fields(plan: &UpgradePlan, kind: &str, name: &str) -> Vec<(String, bool, bool)> {
    let o = plan
        .objects
        .iter()
        .find(|o| o.object.kind == kind && o.object.name == name);
    let d = o.and_then(|o| o.diff.as_ref()).unwrap();
    let named = d
        .changes
        .iter()
        .map(|c| (c.field.clone(), c.before.is_some(), c.after.is_some()));
    named
        .chain(d.other.iter().map(|f| (f.clone(), true, true)))
        .collect()
}

#[test]
fn across_chart_generations_the_plan_updates_the_changed_crds_injector_and_values() {
    let plan = plan_between(GEN_OLD, "1.30.5", GEN_NEW);
    assert_eq!(
        plan.target.describe(),
        "in-place upgrade of revision `default`: 1.30.5 → 1.31.1"
    );
    let crds = updated(&plan, "CustomResourceDefinition");
    assert_eq!(crds, CHANGED_CRDS.map(String::from).into());
    for crd in CHANGED_CRDS {
        let f = fields(&plan, "CustomResourceDefinition", crd);
        assert!(
            !f.is_empty() && f.iter().all(|(p, ..)| p.starts_with("versions[")),
            "{crd}: {f:?}"
        );
    }
    let injector = fields(&plan, "ConfigMap", "istio-sidecar-injector");
    for want in [
        ("templates.agentgateway-waypoint", false, true),
        ("templates.sidecar", true, true),
        ("values.global.tag", true, true),
    ] {
        assert!(
            injector.iter().any(|f| (f.0.as_str(), f.1, f.2) == want),
            "{want:?}: {injector:?}"
        );
    }
    let values = fields(&plan, "ConfigMap", "values");
    assert!(
        values.contains(&("merged-values.taint.name".into(), false, true)),
        "{values:?}"
    );
    assert_eq!(
        updated(&plan, "ConfigMap"),
        ["istio-sidecar-injector", "values"]
            .map(String::from)
            .into(),
        "the mesh config `istio` is the same in both generations"
    );
    assert!(updated(&plan, "ClusterRole").is_empty());
    assert_eq!(
        updated(&plan, "Deployment"),
        ["istio-ingressgateway", "istiod"].map(String::from).into()
    );
    let applied: BTreeSet<String> = plan
        .changes
        .ops()
        .filter_map(Op::target)
        .map(|r| r.name)
        .collect();
    assert!(
        CHANGED_CRDS.iter().all(|c| applied.contains(*c)),
        "{applied:?}"
    );
    assert!(
        !applied.contains("wasmplugins.extensions.istio.io"),
        "unchanged CRDs are left alone"
    );
}

#[test]
fn across_chart_generations_a_downgrade_removes_what_the_new_charts_added() {
    let plan = plan_between(GEN_NEW, "1.31.1", GEN_OLD);
    assert_eq!(plan.target.direction, Some(Direction::Downgrade));
    assert_eq!(
        updated(&plan, "CustomResourceDefinition"),
        CHANGED_CRDS.map(String::from).into()
    );
    let injector = fields(&plan, "ConfigMap", "istio-sidecar-injector");
    assert!(
        injector.contains(&("templates.agentgateway-waypoint".into(), true, false)),
        "{injector:?}"
    );
    let values = fields(&plan, "ConfigMap", "values");
    assert!(
        values.contains(&("merged-values.taint.name".into(), true, false)),
        "{values:?}"
    );
}

const AMBIENT_OLD: &str = include_str!("../../../fixtures/manifests/ambient-1.29.6.yaml");
const AMBIENT_NEW: &str = include_str!("../../../fixtures/manifests/ambient-1.30.3.yaml");

fn ambient_cluster(version: &str) -> (ClusterSnapshot, Inventory) {
    Snap::new()
        .namespace("istio-system", &[])
        .control_plane("default", version)
        .ambient("default", version, 3)
        .build()
}

/// The phase an object is applied in.
fn phase_of<'a>(plan: &'a ChangePlan, kind: &str, name: &str) -> &'a str {
    plan.phases
        .iter()
        .find(|p| {
            p.ops
                .iter()
                .any(|o| o.target().is_some_and(|r| r.kind == kind && r.name == name))
        })
        .map_or("none", |p| p.name.as_str())
}

#[test]
fn an_ambient_upgrade_runs_in_istios_order_each_phase_waited() {
    let (snap, inv) = ambient_cluster("1.29.6");
    let p = prep(&snap, &inv, AMBIENT_NEW, &Request::default()).unwrap();
    assert_eq!(p.target.direction, Some(Direction::Upgrade));
    assert_eq!(
        phase_names(&p.full),
        [
            "CRDs",
            "cluster RBAC",
            "configuration and services",
            "control plane",
            "webhooks",
            "istio-cni",
            "ztunnel"
        ]
    );
    assert_eq!(phase_of(&p.full, "Deployment", "istiod"), "control plane");
    assert_eq!(
        phase_of(&p.full, "DaemonSet", "istio-cni-node"),
        "istio-cni"
    );
    assert_eq!(phase_of(&p.full, "DaemonSet", "ztunnel"), "ztunnel");
    // ztunnel's objects carry istioctl's component, not Pilot's (or a later istiod-only
    // manifest would prune ztunnel).
    let z = p
        .objects
        .iter()
        .find(|o| o.r.kind == "DaemonSet" && o.r.name == "ztunnel");
    assert_eq!(z.map(|o| o.component.as_str()), Some("Ztunnel"));
    for (phase, ds) in [("istio-cni", "istio-cni-node"), ("ztunnel", "ztunnel")] {
        let ph = p.full.phases.iter().find(|p| p.name == phase).unwrap();
        assert!(
            ph.waits
                .iter()
                .any(|w| matches!(w, Wait::Rollout { target, expect }
                if target.name == ds && !expect.images.is_empty()
                    && expect.images.values().all(|i| i.contains(":1.30.3")))),
            "{phase}: {:?}",
            ph.waits
        );
    }
}

#[test]
fn an_ambient_downgrade_takes_ztunnel_and_cni_down_before_istiod() {
    let (snap, inv) = ambient_cluster("1.30.3");
    let p = prep(&snap, &inv, AMBIENT_OLD, &Request::default()).unwrap();
    assert_eq!(p.target.direction, Some(Direction::Downgrade));
    // The false refusal: the order check judges what the plan does to ztunnel/CNI.
    assert!(p.refusal(false).is_none(), "{:#?}", p.blocking(false));
    assert_eq!(
        phase_names(&p.full),
        [
            "CRDs",
            "cluster RBAC",
            "configuration and services",
            "ztunnel",
            "istio-cni",
            "control plane",
            "webhooks"
        ]
    );
}

#[test]
fn an_on_delete_daemonset_is_applied_but_not_waited_on() {
    let (snap, inv) = ambient_cluster("1.29.6");
    let text = AMBIENT_NEW.replace(
        "  updateStrategy:\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n    type: RollingUpdate\n",
        "  updateStrategy:\n    type: OnDelete\n",
    );
    assert_ne!(text, AMBIENT_NEW, "the fixture's ztunnel strategy changed");
    let p = prep(&snap, &inv, &text, &Request::default()).unwrap();
    let z = p.full.phases.iter().find(|p| p.name == "ztunnel").unwrap();
    assert_eq!(z.ops.len(), 1);
    assert!(z.waits.is_empty(), "{:?}", z.waits);
    assert!(
        p.findings
            .iter()
            .any(|f| f.id == "ambient.ztunnel-rollout" && f.result == Outcome::Warning),
        "{:#?}",
        p.findings
    );
}

const COMPONENT_CNI: &str =
    include_str!("../../../fixtures/manifests/component-istio-cni-1.31.1.yaml");
const COMPONENT_ZTUNNEL: &str =
    include_str!("../../../fixtures/manifests/component-ztunnel-1.31.1.yaml");
const COMPONENT_GATEWAYS: &str =
    include_str!("../../../fixtures/manifests/component-gateways-1.31.1.yaml");
const GOLDEN_HPA_PDB: &str =
    include_str!("../../../fixtures/manifests/golden-gateway_hpa_pdb.yaml");

#[test]
fn a_component_manifest_is_planned_against_the_installed_istiod() {
    // istio-cni 1.31.1 alone beside istiod 1.30.3: refused, istiod first.
    let (snap, inv) = ambient_cluster("1.30.3");
    let p = prep(&snap, &inv, COMPONENT_CNI, &Request::default()).unwrap();
    assert_eq!(p.target.components, ["istio-cni"]);
    assert_eq!(p.target.mode, Mode::InPlace);
    assert_eq!(
        p.target.describe(),
        "in-place upgrade of istio-cni (revision `default`; istiod stays): 1.30.3 → 1.31.1"
    );
    let blocking = p.blocking(false);
    assert_eq!(blocking.len(), 1, "{blocking:#?}");
    assert_eq!(blocking[0].id, "skew.ambient-order");
    assert!(
        blocking[0].message.contains("istiod first"),
        "{}",
        blocking[0].message
    );
    // Beside istiod 1.31.1 it fits, in its own phase, and prunes nothing of istiod's.
    let (snap, inv) = Snap::new()
        .namespace("istio-system", &[])
        .control_plane("default", "1.31.1")
        .ambient("default", "1.30.3", 3)
        .build();
    let live = vec![
        installed("ConfigMap", "v1", "istio", &[]),
        installed("Deployment", "apps/v1", "istiod", &[]),
        installed("DaemonSet", "apps/v1", "ztunnel", &[(COMPONENT, "Ztunnel")]),
        installed("ConfigMap", "v1", "istio-cni-old", &[(COMPONENT, "Cni")]),
    ];
    let p = prep_installed(&snap, &inv, COMPONENT_CNI, &live);
    assert!(p.refusal(false).is_none(), "{:#?}", p.blocking(false));
    assert_eq!(
        phase_of(&p.full, "DaemonSet", "istio-cni-node"),
        "istio-cni"
    );
    assert!(
        !p.full
            .ops()
            .any(|o| o.target().is_some_and(|r| r.name == "istiod"))
    );
    let pruned: Vec<String> = p.prune.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(pruned, ["ConfigMap/istio-system/istio-cni-old"]);
    // ztunnel alone: its objects are ztunnel's (istioctl writes no component label on them).
    let p = prep(&snap, &inv, COMPONENT_ZTUNNEL, &Request::default()).unwrap();
    assert_eq!(p.target.components, ["ztunnel"]);
    assert!(
        p.objects.iter().all(|o| o.component == "Ztunnel"),
        "{:?}",
        p.objects
    );
    // Gateways alone: their proxies are judged against istiod too.
    let (snap, inv) = cluster(&[("default", "1.30.3")]);
    let p = prep(&snap, &inv, COMPONENT_GATEWAYS, &Request::default()).unwrap();
    assert_eq!(p.target.components, ["IngressGateways"]);
    let blocking = p.blocking(false);
    assert!(
        blocking
            .iter()
            .any(|f| f.id == "skew.manifest-proxies" && f.message.contains("istiod first")),
        "{blocking:#?}"
    );
    // A gateway's PDB and autoscaler (istioctl's golden): no image, no version moves.
    let p = prep(&snap, &inv, GOLDEN_HPA_PDB, &Request::default()).unwrap();
    assert_eq!(p.target.version.to_string(), "1.30.3");
    assert_eq!(p.target.direction, Some(Direction::Reapply));
    assert!(p.refusal(false).is_none(), "{:#?}", p.blocking(false));
}

#[test]
fn a_component_manifest_for_a_revision_without_istiod_is_refused() {
    let (snap, inv) = Snap::new().namespace("istio-system", &[]).build();
    let e = prep(&snap, &inv, COMPONENT_ZTUNNEL, &Request::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the manifest holds ztunnel without istiod, and revision `default` has no istiod to serve it"
    );
    assert!(e.hints()[0].starts_with("install istiod first: kubectl mesh upgrade -f"));
}

#[test]
fn the_owner_version_label_never_carries_the_image_variant() {
    let (snap, inv) = cluster(&[("default", "1.29.6")]);
    let text = NEW.replace("pilot:1.30.3", "pilot:1.30.3-distroless");
    assert_ne!(text, NEW);
    let p = prep(&snap, &inv, &text, &Request::default()).unwrap();
    let labels: BTreeSet<&str> = p
        .full
        .ops()
        .filter_map(|op| match op {
            Op::Apply { object } => {
                object["metadata"]["labels"]["operator.istio.io/version"].as_str()
            }
            _ => None,
        })
        .collect();
    assert_eq!(labels, BTreeSet::from(["1.30.3"]));
}

/// [`finish`] offline, as if no manifest object existed yet.
fn finish_new(p: &Prepared, snap: &ClusterSnapshot, inv: &Inventory) -> UpgradePlan {
    let none = BTreeMap::new();
    finish(p, snap, inv, &none, &BTreeMap::new(), &Default::default()).unwrap()
}

#[test]
fn a_component_manifest_leaves_the_sidecars_out_of_the_data_plane_report() {
    // ztunnel 1.30.3 alone beside istiod 1.31.1 (one minor older is allowed): the sidecars run
    // istiod's 1.31.1 and have nothing to restart for it.
    let (snap, inv) = Snap::new()
        .namespace("istio-system", &[])
        .control_plane("default", "1.31.1")
        .ambient("default", "1.31.1", 3)
        .pod("shop", "web-1", Some("default"), "1.31.1")
        .build();
    let text = COMPONENT_ZTUNNEL.replace("1.31.1", "1.30.3");
    let p = prep(&snap, &inv, &text, &Request::default()).unwrap();
    assert_eq!(p.target.direction, Some(Direction::Downgrade));
    assert!(p.refusal(false).is_none(), "{:#?}", p.blocking(false));
    let plan = finish_new(&p, &snap, &inv);
    assert!(plan.data_plane.is_empty(), "{:?}", plan.data_plane);
    assert!(plan.next.is_empty(), "{:?}", plan.next);
}

#[test]
fn a_fresh_ambient_install_says_how_namespaces_join_ambient_mode() {
    let (snap, inv) = Snap::new().build();
    let p = prep(&snap, &inv, AMBIENT_NEW, &Request::default()).unwrap();
    assert_eq!(p.target.mode, Mode::Fresh);
    let plan = finish_new(&p, &snap, &inv);
    assert_eq!(
        plan.next,
        ["kubectl label namespace <namespace> istio.io/dataplane-mode=ambient"]
    );
}
