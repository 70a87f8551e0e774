//! Each ambient check: ok, firing, and skipped when its input was never read.

use crate::{
    ambient::{AgentKind, planned_agents},
    checks::{Context, Finding, Outcome, Target, TargetMode, run_all},
    inventory::Inventory,
    manifest::Manifest,
    snapshot::{ClusterSnapshot, Source},
    testkit::{Snap, node, node_agent},
    version::IstioVersion,
};

fn findings(snap: &ClusterSnapshot, target: Option<&Target>) -> Vec<Finding> {
    let inv = Inventory::from_snapshot(snap);
    run_all(&Context {
        snap,
        inv: &inv,
        target,
        canary_requested: target.is_some_and(|t| t.mode == TargetMode::Canary),
        knowledge: crate::checks::Knowledge {
            today: Some(jiff::civil::date(2026, 12, 4)),
            ..Default::default()
        },
    })
}

fn of(s: Snap, id: &str) -> Vec<Finding> {
    by_id(&findings(&s.0, None), id)
}

fn by_id(all: &[Finding], id: &str) -> Vec<Finding> {
    let out: Vec<Finding> = all.iter().filter(|f| f.id == id).cloned().collect();
    assert!(!out.is_empty(), "no {id} finding in {all:#?}");
    out
}

fn results(f: &[Finding]) -> Vec<Outcome> {
    f.iter().map(|f| f.result).collect()
}

/// A healthy mixed mesh: istiod 1.30.3 (`default`), istio-cni and ztunnel on 3 nodes, an
/// ambient namespace with a waypoint, a sidecar namespace.
fn mixed() -> Snap {
    Snap::new()
        .control_plane("default", "1.30.3")
        .service("istiod", &[("app", "istiod"), ("istio.io/rev", "default")])
        .ambient("default", "1.30.3", 3)
        .ambient_namespace("shop", &[("istio.io/use-waypoint", "waypoint")], 2)
        .waypoint("shop", "waypoint", None, "default", "1.30.3")
        .namespace("legacy", &[("istio-injection", "enabled")])
        .pod("legacy", "web-1", Some("default"), "1.30.3")
        .with(|s| {
            s.pdbs.push(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "istiod", "namespace": "istio-system"},
                    "spec": {"minAvailable": 1, "selector": {"matchLabels": {}}},
                }))
                .unwrap(),
            );
        })
}

fn not_ok(all: &[Finding]) -> Vec<&Finding> {
    all.iter().filter(|f| f.result != Outcome::Ok).collect()
}

#[test]
fn a_healthy_mixed_mesh_has_no_finding_but_ok() {
    let (snap, inv) = mixed().build();
    let all = findings(&snap, None);
    assert!(not_ok(&all).is_empty(), "{:#?}", not_ok(&all));
    for id in [
        "ambient.present",
        "ambient.daemonsets",
        "ambient.cni-taint",
        "ambient.ztunnel-istiod",
        "ambient.waypoint-revision",
        "ambient.waypoint-ready",
        "ambient.mixed-namespaces",
        "skew.ambient",
        "skew.waypoints",
    ] {
        by_id(&all, id);
    }
    // The waypoint's pod is a waypoint, not a proxy "injected by revision ``".
    assert_eq!(inv.proxies.len(), 1, "{:#?}", inv.proxies);
    let w = &inv.ambient.waypoints[0];
    assert_eq!(
        (w.revision.as_deref(), w.ready, w.pods),
        (Some("default"), 1, 1)
    );
    assert_eq!(w.used_by, ["Namespace/shop"]);
    assert_eq!(inv.ambient.namespaces[0].captured, 2);
    let present = by_id(&all, "ambient.present");
    assert!(
        present[0].message.contains("ztunnel 1.30.3"),
        "{}",
        present[0].message
    );
}

#[test]
fn a_sidecar_only_mesh_gets_one_line_about_ambient() {
    let s = Snap::new()
        .control_plane("default", "1.30.3")
        .with(|s| s.nodes.push(node("node-0", &[])));
    let all = findings(&s.0, None);
    let ambient: Vec<_> = all
        .iter()
        .filter(|f| {
            f.id.starts_with("ambient.")
                || f.id.starts_with("skew.ambient")
                || f.id == "skew.waypoints"
        })
        .collect();
    assert_eq!(ambient.len(), 1, "{ambient:#?}");
    assert_eq!(
        (ambient[0].id, ambient[0].result),
        ("ambient.present", Outcome::Ok)
    );
    // A leftover taint is reported even then.
    let tainted = Snap::new().control_plane("default", "1.30.3").with(|s| {
        s.nodes
            .push(node("node-0", &[("cni.istio.io/not-ready", "NoSchedule")]))
    });
    assert_eq!(results(&of(tainted, "ambient.cni-taint")), [Outcome::Error]);
    // Unread sources: ambient cannot be said absent.
    let unread = Snap::new().control_plane("default", "1.30.3").with(|s| {
        s.add_gap(
            Source::Gateways,
            "the snapshot file was taken without gateways",
        )
    });
    let f = of(unread, "ambient.present");
    assert_eq!(f[0].result, Outcome::Skipped, "{f:?}");
}

#[test]
fn daemonsets_not_ready_or_off_eligible_nodes() {
    let unready = mixed().with(|s| {
        s.daemonsets[0] = node_agent(false, "default", "1.30.3", 3, 2);
    });
    let f = of(unready, "ambient.daemonsets");
    let cni = f
        .iter()
        .find(|f| f.message.contains("istio-cni-node"))
        .unwrap();
    assert_eq!(cni.result, Outcome::Error);
    assert!(
        cni.message.contains("ready on 2 of 3 nodes"),
        "{}",
        cni.message
    );
    // A node selector keeps istio-cni off a node: 2 of 2 desired are ready, yet a node misses it.
    let selected = mixed().with(|s| {
        let ds = &mut s.daemonsets[0];
        ds.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .node_selector = Some(crate::testkit::labels(&[(
            "kubernetes.io/hostname",
            "node-0",
        )]));
        ds.status.as_mut().unwrap().desired_number_scheduled = 1;
        ds.status.as_mut().unwrap().number_ready = 1;
    });
    let f = of(selected, "ambient.daemonsets");
    let cni = f
        .iter()
        .find(|f| f.result == Outcome::Error)
        .expect("an error");
    assert!(
        cni.message
            .contains("does not run on 2 of 3 eligible node(s)"),
        "{}",
        cni.message
    );
    assert_eq!(cni.objects[1..], ["Node/node-1", "Node/node-2"]);
    // Nodes unread: readiness still judged, coverage skipped.
    let no_nodes = mixed().with(|s| s.add_gap(Source::Nodes, "forbidden"));
    let f = of(no_nodes, "ambient.daemonsets");
    assert_eq!(
        results(&f),
        [Outcome::Ok, Outcome::Ok, Outcome::Skipped],
        "{f:#?}"
    );
    let gap = mixed().with(|s| s.add_gap(Source::DaemonSets, "forbidden"));
    assert_eq!(results(&of(gap, "ambient.daemonsets")), [Outcome::Skipped]);
    // An ambient namespace with no ztunnel at all is outside the mesh.
    let no_ztunnel = mixed().with(|s| {
        s.daemonsets
            .retain(|d| d.metadata.name.as_deref() != Some("ztunnel"))
    });
    let f = of(no_ztunnel, "ambient.daemonsets");
    let err = f
        .iter()
        .find(|f| f.result == Outcome::Error)
        .expect("an error");
    assert!(
        err.message.contains("no ztunnel DaemonSet runs"),
        "{}",
        err.message
    );
    assert_eq!(err.objects, ["Namespace/shop"]);
}

#[test]
fn cni_taint_ok_fire_missing() {
    assert_eq!(results(&of(mixed(), "ambient.cni-taint")), [Outcome::Ok]);
    let left = mixed().with(|s| {
        s.nodes[1] = node("node-1", &[("cni.istio.io/not-ready", "NoSchedule")]);
    });
    let f = of(left, "ambient.cni-taint");
    assert_eq!(f[0].result, Outcome::Error);
    assert_eq!(f[0].objects, ["Node/node-1"]);
    assert!(f[0].message.contains("left behind"), "{}", f[0].message);
    let gap = mixed().with(|s| s.add_gap(Source::Nodes, "forbidden"));
    assert_eq!(results(&of(gap, "ambient.cni-taint")), [Outcome::Skipped]);
}

#[test]
fn ztunnel_istiod_ok_gone_revision_without_istiod_missing() {
    assert_eq!(
        results(&of(mixed(), "ambient.ztunnel-istiod")),
        [Outcome::Ok]
    );
    let gone = mixed().with(|s| s.daemonsets[1] = node_agent(true, "1-29-6", "1.30.3", 3, 3));
    let f = of(gone, "ambient.ztunnel-istiod");
    assert_eq!(f[0].result, Outcome::Error);
    assert!(f[0].message.contains("does not exist"), "{}", f[0].message);
    // A tag Service of a revision whose istiod was removed.
    let orphan = mixed()
        .service("istiod-old", &[("app", "istiod"), ("istio.io/rev", "old")])
        .with(|s| s.daemonsets[1] = node_agent(true, "old", "1.30.3", 3, 3));
    let f = of(orphan, "ambient.ztunnel-istiod");
    assert!(
        f[0].message.contains("revision `old`, which has no istiod"),
        "{}",
        f[0].message
    );
    let gap = mixed().with(|s| s.add_gap(Source::Services, "forbidden"));
    assert_eq!(
        results(&of(gap, "ambient.ztunnel-istiod")),
        [Outcome::Skipped]
    );
}

#[test]
fn waypoint_revision_and_readiness() {
    let pinned = mixed().waypoint("shop", "reviews", Some("1-28-0"), "1-28-0", "1.30.3");
    let f = of(pinned, "ambient.waypoint-revision");
    let err = f
        .iter()
        .find(|f| f.result == Outcome::Error)
        .expect("an error");
    assert!(
        err.message
            .contains("`istio.io/rev=1-28-0` on its gateway names no installed revision"),
        "{}",
        err.message
    );
    assert_eq!(err.objects, ["Gateway/shop/reviews"]);
    // A tag resolves; the namespace's label picks the revision when the Gateway has none.
    let tagged = Snap::new()
        .control_plane("1-30-3", "1.30.3")
        .tag("prod", "1-30-3")
        .namespace(
            "shop",
            &[
                ("istio.io/rev", "prod"),
                ("istio.io/dataplane-mode", "ambient"),
            ],
        )
        .waypoint("shop", "waypoint", None, "1-30-3", "1.30.3");
    let (_, inv) = tagged.build();
    assert_eq!(inv.ambient.waypoints[0].revision.as_deref(), Some("1-30-3"));
    assert_eq!(
        inv.ambient.waypoints[0].rev_label_on.as_deref(),
        Some("namespace")
    );
    let unready = mixed().with(|s| {
        let pod = crate::testkit::waypoint_pod("shop", "waypoint", "default", "1.30.3");
        let mut o: crate::snapshot::PodObject = pod.into();
        o.status.conditions[0].status = "False".into();
        s.pods.retain(|p| !p.name().starts_with("waypoint"));
        s.pods.push(o.into());
    });
    let f = of(unready, "ambient.waypoint-ready");
    assert_eq!(f[0].result, Outcome::Error);
    assert!(f[0].message.contains("1 use(s) it"), "{}", f[0].message);
    let gap = || mixed().with(|s| s.add_gap(Source::Gateways, "forbidden"));
    assert_eq!(
        results(&of(gap(), "ambient.waypoint-revision")),
        [Outcome::Skipped]
    );
    assert_eq!(results(&of(gap(), "skew.waypoints")), [Outcome::Skipped]);
}

#[test]
fn waypoint_skew_ok_and_too_far() {
    assert_eq!(results(&of(mixed(), "skew.waypoints")), [Outcome::Ok]);
    let old = mixed().waypoint("shop", "old", None, "default", "1.28.2");
    let f = of(old, "skew.waypoints");
    assert!(
        f.iter()
            .any(|f| f.result == Outcome::Error && f.message.contains("2 minors behind")),
        "{f:#?}"
    );
}

#[test]
fn mixed_namespaces_ok_fire_missing() {
    assert_eq!(
        results(&of(mixed(), "ambient.mixed-namespaces")),
        [Outcome::Ok]
    );
    let both = mixed().ambient_namespace("both", &[("istio-injection", "enabled")], 0);
    let f = of(both, "ambient.mixed-namespaces");
    assert_eq!(f[0].result, Outcome::Warning);
    assert_eq!(
        f[0].objects,
        [
            "Namespace/both (istio.io/dataplane-mode=ambient, istio-injection=enabled → injected by default)"
        ]
    );
    let gap = mixed().with(|s| s.add_gap(Source::MutatingWebhooks, "forbidden"));
    assert_eq!(
        results(&of(gap, "ambient.mixed-namespaces")),
        [Outcome::Skipped]
    );
}

#[test]
fn live_skew_newer_and_too_old() {
    assert_eq!(
        results(&of(mixed(), "skew.ambient")),
        [Outcome::Ok, Outcome::Ok]
    );
    let newer = mixed().with(|s| s.daemonsets[1] = node_agent(true, "default", "1.31.0", 3, 3));
    let f = of(newer, "skew.ambient");
    assert_eq!(results(&f), [Outcome::Ok, Outcome::Error]);
    assert_eq!(f[1].objects, ["DaemonSet/istio-system/ztunnel"]);
    let old = mixed().with(|s| s.daemonsets[0] = node_agent(false, "default", "1.28.0", 3, 3));
    assert_eq!(results(&of(old, "skew.ambient"))[0], Outcome::Error);
    let gap = mixed().with(|s| s.add_gap(Source::DaemonSets, "forbidden"));
    assert_eq!(results(&of(gap, "skew.ambient")), [Outcome::Skipped]);
}

fn target(version: &str, mode: TargetMode, manifest: Option<&str>) -> Target {
    Target {
        version: IstioVersion::parse(version).unwrap(),
        revision: "default".into(),
        mode,
        agents: manifest
            .map(|m| planned_agents(&Manifest::parse(m).unwrap().objects, "istio-system")),
        images: Vec::new(),
    }
}

const AMBIENT_1_29_6: &str = include_str!("../../../fixtures/manifests/ambient-1.29.6.yaml");
const AMBIENT_1_30_3: &str = include_str!("../../../fixtures/manifests/ambient-1.30.3.yaml");

#[test]
fn order_judges_what_the_plan_does() {
    // The false refusal: an in-place downgrade whose manifest takes ztunnel and CNI
    // down too is fine — they go first.
    let t = target("1.29.6", TargetMode::InPlace, Some(AMBIENT_1_29_6));
    let all = findings(&mixed().0, Some(&t));
    let f = by_id(&all, "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Ok, Outcome::Ok], "{f:#?}");
    assert!(f[1].message.contains("1.30.3 → 1.29.6"), "{}", f[1].message);
    assert!(
        by_id(&all, "skew.ambient")
            .iter()
            .all(|f| f.result == Outcome::Ok)
    );
    // The same downgrade of istiod alone leaves them newer than istiod.
    let t = target("1.29.6", TargetMode::InPlace, None);
    let f = by_id(&findings(&mixed().0, Some(&t)), "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Error, Outcome::Error]);
    assert!(
        f[1].message.contains("newer than istiod `default` 1.29.6"),
        "{}",
        f[1].message
    );
    // An upgrade of istiod alone leaves them one minor older: fine, upgraded after istiod.
    let t = target("1.31.0", TargetMode::InPlace, None);
    let f = by_id(&findings(&mixed().0, Some(&t)), "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Ok, Outcome::Ok]);
    // ...but two minors is too far unless the manifest moves them.
    let old = mixed().with(|s| {
        s.deployments[0] = crate::testkit::istiod("default", "1.29.6", 2, 2);
        s.daemonsets[1] = node_agent(true, "default", "1.29.6", 3, 3);
    });
    let t = target("1.31.0", TargetMode::InPlace, None);
    let f = by_id(&findings(&old.0, Some(&t)), "skew.ambient-order");
    assert!(f[1].message.contains("2 minors behind"), "{f:#?}");
    // Without a target, nothing to order; with the target's sources unread, skipped.
    assert!(
        !findings(&mixed().0, None)
            .iter()
            .any(|f| f.id == "skew.ambient-order")
    );
    let gap = mixed().with(|s| s.add_gap(Source::Services, "forbidden"));
    let t = target("1.31.0", TargetMode::InPlace, None);
    assert_eq!(
        results(&by_id(&findings(&gap.0, Some(&t)), "skew.ambient-order")),
        [Outcome::Skipped]
    );
}

#[test]
fn a_canary_leaves_ztunnel_with_its_istiod() {
    let t = Target {
        revision: "1-31-0".into(),
        ..target("1.31.0", TargetMode::Canary, None)
    };
    let f = by_id(&findings(&mixed().0, Some(&t)), "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Ok, Outcome::Ok]);
    assert!(
        f[1].message
            .contains("moving it to `1-31-0` moves every ambient namespace"),
        "{}",
        f[1].message
    );
}

#[test]
fn ztunnel_rollout_one_node_many_nodes_on_delete() {
    let t = target("1.30.3", TargetMode::InPlace, Some(AMBIENT_1_30_3));
    let ok = by_id(&findings(&mixed().0, Some(&t)), "ambient.ztunnel-rollout");
    assert_eq!(results(&ok), [Outcome::Ok]);
    assert!(
        ok[0].message.contains("one node at a time"),
        "{}",
        ok[0].message
    );
    let wide = mixed().with(|s| {
        let ds = &mut s.daemonsets[1];
        ds.spec.as_mut().unwrap().update_strategy = serde_json::from_value(serde_json::json!(
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}))
        .unwrap();
    });
    let t = target("1.31.0", TargetMode::InPlace, None);
    let f = by_id(&findings(&wide.0, Some(&t)), "ambient.ztunnel-rollout");
    assert_eq!(f[0].result, Outcome::Warning);
    assert!(
        f[0].message.contains("on 2 of 3 nodes at once"),
        "{}",
        f[0].message
    );
    let on_delete = mixed().with(|s| {
        s.daemonsets[1].spec.as_mut().unwrap().update_strategy =
            serde_json::from_value(serde_json::json!({"type": "OnDelete"})).unwrap();
    });
    let t = target("1.31.0", TargetMode::InPlace, None);
    assert_eq!(
        results(&by_id(
            &findings(&on_delete.0, Some(&t)),
            "ambient.ztunnel-rollout"
        )),
        [Outcome::Ok]
    );
    // A manifest's strategy is what the plan applies: istioctl's rolls one node at a time...
    let t = target("1.29.6", TargetMode::InPlace, Some(AMBIENT_1_29_6));
    let f = by_id(&findings(&on_delete.0, Some(&t)), "ambient.ztunnel-rollout");
    assert!(
        f[0].message.contains("the manifest's RollingUpdate"),
        "{}",
        f[0].message
    );
    // ...an OnDelete one moves ztunnel's template but no pod.
    let mut t = target("1.29.6", TargetMode::InPlace, Some(AMBIENT_1_29_6));
    for a in t.agents.iter_mut().flatten() {
        a.rollout =
            crate::ambient::Rollout::of_json(Some(&serde_json::json!({"type": "OnDelete"})));
    }
    let f = by_id(&findings(&on_delete.0, Some(&t)), "ambient.ztunnel-rollout");
    assert_eq!(
        f[0].result,
        Outcome::Warning,
        "the plan moves ztunnel but no pod would change"
    );
    let gap = mixed().with(|s| s.add_gap(Source::DaemonSets, "forbidden"));
    assert_eq!(
        results(&by_id(
            &findings(&gap.0, Some(&t)),
            "ambient.ztunnel-rollout"
        )),
        [Outcome::Skipped]
    );
}

#[test]
fn agents_are_listed_in_istios_order() {
    let (_, inv) = mixed().build();
    let kinds: Vec<AgentKind> = inv.ambient.agents.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AgentKind::Cni, AgentKind::Ztunnel]);
    let z = &inv.ambient.agents[1];
    assert_eq!(z.istiod_revision(), "default");
    assert_eq!(z.coverage.as_ref().map(|c| c.eligible), Some(3));
}

#[test]
fn a_component_manifest_newer_than_istiod_is_refused_istiod_first() {
    // istio-cni 1.31.1 alone (istioctl's component manifest) beside istiod 1.30.3: the target
    // istiod is the installed one, which stays.
    let cni = include_str!("../../../fixtures/manifests/component-istio-cni-1.31.1.yaml");
    let t = target("1.30.3", TargetMode::InPlace, Some(cni));
    let f = by_id(&findings(&mixed().0, Some(&t)), "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Error, Outcome::Ok], "{f:#?}");
    assert!(f[0].message.contains("istiod first"), "{}", f[0].message);
    assert!(
        f[0].hint
            .as_deref()
            .is_some_and(|h| h.contains("kubectl mesh upgrade -f")),
        "{:?}",
        f[0].hint
    );
    // The same component at istiod's version fits.
    let same = cni.replace("1.31.1", "1.30.3");
    let t = target("1.30.3", TargetMode::InPlace, Some(&same));
    let f = by_id(&findings(&mixed().0, Some(&t)), "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Ok, Outcome::Ok], "{f:#?}");
}

#[test]
fn a_canary_that_carries_ztunnel_says_it_moves_every_ambient_namespace() {
    let t = Target {
        revision: "1-31-0".into(),
        ..target("1.31.0", TargetMode::Canary, Some(AMBIENT_1_30_3))
    };
    let f = by_id(&findings(&mixed().0, Some(&t)), "skew.ambient-order");
    assert_eq!(results(&f), [Outcome::Warning, Outcome::Warning], "{f:#?}");
    assert!(
        f[1].message
            .contains("ztunnel is one per node, not per revision, so moving it moves every ambient namespace at once"),
        "{}",
        f[1].message
    );
}

#[test]
fn use_waypoint_naming_a_missing_gateway() {
    const ID: &str = "ambient.use-waypoint";
    let ok = of(mixed(), ID);
    assert_eq!(results(&ok), [Outcome::Ok]);
    assert!(
        ok[0].message.starts_with("1 namespace(s)"),
        "{}",
        ok[0].message
    );
    let svc = |ns: &str, name: &str, l: &[(&str, &str)]| crate::snapshot::TypedMeta {
        api_version: "v1".into(),
        kind: "Service".into(),
        metadata: crate::testkit::meta(ns, name, l),
    };
    let broken = mixed()
        .ambient_namespace("cart", &[("istio.io/use-waypoint", "gone")], 1)
        .ambient_namespace("opted", &[("istio.io/use-waypoint", "none")], 1)
        .with(|s| {
            s.others.push(svc(
                "cart",
                "api",
                &[
                    ("istio.io/use-waypoint", "waypoint"),
                    ("istio.io/use-waypoint-namespace", "infra"),
                ],
            ));
            s.others.push(svc(
                "legacy",
                "web",
                &[
                    ("istio.io/use-waypoint", "waypoint"),
                    ("istio.io/use-waypoint-namespace", "shop"),
                ],
            ));
        });
    let f = of(broken, ID);
    assert_eq!(
        results(&f),
        [Outcome::Warning, Outcome::Warning, Outcome::Ok],
        "{f:#?}"
    );
    assert_eq!(
        f[0].message,
        "Namespace/cart is labelled `istio.io/use-waypoint=gone`, but no Gateway `cart/gone` exists: ztunnel sends its traffic straight to the destination, so no waypoint's L7 policies or routes apply to it"
    );
    assert_eq!(f[0].objects, ["Namespace/cart", "Gateway/cart/gone"]);
    assert_eq!(f[1].objects, ["Service/cart/api", "Gateway/infra/waypoint"]);
    assert!(
        f[1].hint
            .as_deref()
            .unwrap()
            .contains("istioctl waypoint apply -n infra --name waypoint")
    );
    assert!(
        f[2].message.starts_with("2 namespace(s) and Service(s)"),
        "{}",
        f[2].message
    );
    let none = Snap::new()
        .control_plane("default", "1.30.3")
        .ambient("default", "1.30.3", 1);
    assert_eq!(results(&of(none, ID)), [Outcome::Ok]);
    let unread = mixed().with(|s| s.add_gap(Source::WaypointServices, "forbidden"));
    assert_eq!(results(&of(unread, ID)), [Outcome::Skipped]);
}
