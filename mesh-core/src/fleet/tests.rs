//! Fleet checks on small clusters built with the testkit: a primary is a control plane whose
//! injector answers at a URL (its address as seen from other clusters), a remote is an
//! injector of a revision with no istiod, pointing at a primary's URL.

use k8s_openapi::api::{
    apps::v1::DaemonSet,
    core::v1::{ConfigMap, EnvVar},
};
use serde_json::json;

use super::{
    DataPlaneMode, Member, MeshFacts, check, data_plane_mode, meshes,
    order::StepAction,
    plan::{Basis, Want, Way, plan},
};
use crate::{
    checks::{Finding, Outcome},
    snapshot::{ClusterSnapshot, SecretMeta, Source},
    testkit::{Snap, installed_injector, meta},
    version::IstioVersion,
};

fn v(s: &str) -> IstioVersion {
    IstioVersion::parse(s).unwrap()
}

/// The injection URL of a cluster whose pods `primary`'s istiod injects.
fn url(primary: &str, cluster: &str) -> String {
    format!("https://{primary}.example:15017/inject/cluster/{cluster}/net/n1")
}

/// The install's values as istiod's chart renders them: the injector ConfigMap of a primary
/// (`values` key), the `values[-rev]` ConfigMap of a remote (`merged-values`).
fn values_cm(
    rev: &str,
    cluster: &str,
    mesh_id: Option<&str>,
    tag: &str,
    remote: bool,
) -> ConfigMap {
    let sfx = if rev == "default" {
        String::new()
    } else {
        format!("-{rev}")
    };
    let values = json!({"global": {"meshID": mesh_id.unwrap_or(""), "tag": tag,
        "multiCluster": {"clusterName": cluster}, "network": "n1"}, "revision": rev,
        "istiodRemote": {"enabled": remote}});
    let (name, key) = if remote {
        (format!("values{sfx}"), "merged-values")
    } else {
        (format!("istio-sidecar-injector{sfx}"), "values")
    };
    ConfigMap {
        metadata: meta("istio-system", &name, &[("istio.io/rev", rev)]),
        data: Some([(key.to_owned(), values.to_string())].into()),
        ..Default::default()
    }
}

fn mesh_cm(rev: &str, mesh_id: Option<&str>, trust_domain: &str) -> ConfigMap {
    let name = if rev == "default" {
        "istio".to_owned()
    } else {
        format!("istio-{rev}")
    };
    let id = mesh_id.map_or(String::new(), |m| format!("  meshId: {m}\n"));
    ConfigMap {
        metadata: meta("istio-system", &name, &[("istio.io/rev", rev)]),
        data: Some(
            [(
                "mesh".to_owned(),
                format!("defaultConfig:\n{id}trustDomain: {trust_domain}\n"),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

fn secret(cluster: &str) -> SecretMeta {
    let mut m = meta(
        "istio-system",
        &format!("istio-remote-secret-{cluster}"),
        &[("istio/multiCluster", "true")],
    );
    m.annotations = Some([("networking.istio.io/cluster".to_owned(), cluster.to_owned())].into());
    SecretMeta { metadata: m }
}

fn member(name: &str, s: Snap) -> Member {
    let (snap, inv) = s.build();
    Member {
        name: name.to_owned(),
        facts: MeshFacts::of(&snap, &inv),
    }
}

/// A primary: istiod `default` at `version`, its injector answering at its own [`url`].
fn primary(cluster: &str, version: &str, mesh: Option<&str>) -> Snap {
    Snap::new()
        .control_plane("default", version)
        .webhook(installed_injector("default", Some(&url(cluster, cluster))))
        .with(|s| {
            s.config_maps
                .push(values_cm("default", cluster, mesh, version, false));
            s.config_maps
                .push(mesh_cm("default", mesh, "cluster.local"));
        })
}

/// A remote of `primary`: the `rev` injector pointing at the primary's URL, a namespace `app`
/// injected by it, its install's values.
fn remote(cluster: &str, primary: &str, rev: &str, mesh: Option<&str>) -> Snap {
    Snap::new()
        .webhook(installed_injector(rev, Some(&url(primary, cluster))))
        .namespace("app", &[("istio.io/rev", rev)])
        .with(|s| {
            s.config_maps
                .push(values_cm(rev, cluster, mesh, "1.29.6", true))
        })
}

fn ids<'a>(f: &'a [Finding], id: &str) -> Vec<&'a Finding> {
    let out: Vec<&Finding> = f.iter().filter(|x| x.id == id).collect();
    assert!(!out.is_empty(), "no {id} finding in {f:#?}");
    out
}

fn worst(f: &[Finding], id: &str) -> Outcome {
    ids(f, id).iter().map(|x| x.result).max().unwrap()
}

/// east 1.29.6 and west 1.30.3 (primaries reading each other), remote injected by east.
fn three() -> Vec<Member> {
    vec![
        member(
            "east",
            primary("east", "1.29.6", Some("mesh1")).with(|s| {
                s.remote_secrets.extend([secret("west"), secret("remote")]);
            }),
        ),
        member("remote", remote("remote", "east", "default", Some("mesh1"))),
        member(
            "west",
            primary("west", "1.30.3", Some("mesh1"))
                .with(|s| s.remote_secrets.push(secret("east"))),
        ),
    ]
}

#[test]
fn facts_of_a_primary_and_a_remote() {
    let ms = three();
    let east = &ms[0].facts;
    assert!(east.is_primary() && !east.is_remote());
    assert_eq!(east.cluster_name(), Some("east"));
    assert!(east.mesh_ids.contains("mesh1"));
    assert!(east.trust_domains.contains("cluster.local"));
    assert!(
        east.endpoints
            .iter()
            .any(|e| e.host == "east.example" && e.port == 15017)
    );
    let secrets: Vec<&str> = east
        .remote_secrets
        .iter()
        .map(|s| s.cluster.as_str())
        .collect();
    assert_eq!(secrets, ["west", "remote"]);
    let r = &ms[1].facts;
    assert!(r.is_remote());
    assert_eq!(
        r.cluster_name(),
        Some("remote"),
        "from the values ConfigMap of a remote profile"
    );
    let inj = &r.remote_injectors[0];
    assert_eq!(inj.endpoint.as_ref().unwrap().host, "east.example");
    assert_eq!(inj.namespaces, ["app"]);
    assert_eq!(r.remote_install_versions["default"], v("1.29.6"));
}

#[test]
fn a_remote_that_names_a_local_service_points_where_that_service_does() {
    let mut mwc = installed_injector("default", None);
    for h in mwc.webhooks.iter_mut().flatten() {
        h.client_config.url = None;
    }
    let ext = member(
        "r",
        Snap::new().webhook(mwc.clone()).with(|s| {
            let mut svc = crate::testkit::service("istiod", &[]);
            svc.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("istiod.east.example".into()),
                ..Default::default()
            });
            s.services.push(svc);
        }),
    );
    let e = ext.facts.remote_injectors[0].endpoint.clone().unwrap();
    assert_eq!((e.host.as_str(), e.port), ("istiod.east.example", 15017));
    let pilot = member(
        "r",
        Snap::new().webhook(mwc).with(|s| {
            let mut cm = values_cm("default", "r", None, "1.29.6", true);
            let mut vals: serde_json::Value =
                serde_json::from_str(&cm.data.as_ref().unwrap()["merged-values"]).unwrap();
            vals["global"]["remotePilotAddress"] = json!("10.1.2.3");
            cm.data = Some([("merged-values".to_owned(), vals.to_string())].into());
            s.config_maps.push(cm);
        }),
    );
    let e = pilot.facts.remote_injectors[0].endpoint.clone().unwrap();
    assert_eq!((e.host.as_str(), e.port), ("10.1.2.3", 15017));
}

#[test]
fn an_injector_left_behind_by_a_removed_istiod_is_not_a_remote() {
    // The istiod Deployment is gone; its Service still selects istiod pods.
    let stale = Snap::new()
        .webhook(crate::testkit::injector("1-28-0", None))
        .service("istiod-1-28-0", &[("app", "istiod")])
        .with(|s| {
            s.services[0].spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
                selector: Some([("app".to_owned(), "istiod".to_owned())].into()),
                ..Default::default()
            });
        });
    let m = member("a", stale);
    assert!(!m.facts.is_remote(), "{:?}", m.facts.remote_injectors);
    // Its injector sends pods to a URL, but its install's values say it is no remote.
    let by_url = Snap::new()
        .webhook(installed_injector("1-28-0", Some(&url("a", "a"))))
        .with(|s| {
            s.config_maps
                .push(values_cm("1-28-0", "a", None, "1.28.0", false))
        });
    assert!(!member("a", by_url).facts.is_remote());
    let (snap, inv) = remote("r", "east", "default", None).build();
    assert_eq!(super::facts::remote_revisions(&snap, &inv).len(), 1);
}

#[test]
fn clusters_form_a_mesh_by_mesh_id_remote_secret_or_injection_not_by_the_default_trust_domain() {
    let ms = three();
    let found = meshes(&ms);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "mesh1");
    assert_eq!(found[0].clusters, ["east", "remote", "west"]);
    // No mesh ID anywhere, default trust domain: two unrelated clusters are not a mesh.
    let alone = vec![
        member("a", primary("a", "1.29.6", None)),
        member("b", primary("b", "1.30.3", None)),
    ];
    assert!(meshes(&alone).is_empty());
    let r = check(&alone, None);
    assert_eq!(worst(&r.findings, "fleet.meshes"), Outcome::Ok);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    // A remote secret links them; so does an injector pointing at the other's istiod.
    let linked = vec![
        member(
            "a",
            primary("a", "1.29.6", None).with(|s| s.remote_secrets.push(secret("b"))),
        ),
        member("b", primary("b", "1.30.3", None)),
        member("c", remote("c", "a", "default", None)),
    ];
    let found = meshes(&linked);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].clusters, ["a", "b", "c"]);
    assert_eq!(found[0].id, "linked");
}

#[test]
fn control_planes_of_different_clusters_within_one_minor() {
    let ok = check(&three(), None);
    let f = ids(&ok.findings, "fleet.control-plane-skew");
    assert_eq!(f[0].result, Outcome::Ok, "{f:#?}");
    assert!(
        f[0].message
            .contains("1.29.6 (east/default) … 1.30.3 (west/default)"),
        "{}",
        f[0].message
    );
    let far = vec![
        member("east", primary("east", "1.28.3", Some("m"))),
        member("west", primary("west", "1.30.3", Some("m"))),
    ];
    let f = check(&far, None).findings;
    let skew = ids(&f, "fleet.control-plane-skew");
    assert_eq!(skew[0].result, Outcome::Error);
    assert!(
        skew[0].message.contains("2 minors apart"),
        "{}",
        skew[0].message
    );
    assert!(
        skew[0].hint.as_deref().unwrap().contains("--context east"),
        "{:?}",
        skew[0].hint
    );
    // A canary two minors up inside one cluster is that cluster's business, not the mesh's.
    let canary = vec![
        member(
            "east",
            primary("east", "1.29.6", Some("m")).control_plane("1-31-0", "1.31.0"),
        ),
        member("west", primary("west", "1.30.3", Some("m"))),
    ];
    assert_eq!(
        worst(&check(&canary, None).findings, "fleet.control-plane-skew"),
        Outcome::Ok
    );
}

#[test]
fn a_remote_must_be_injected_by_a_primary_that_runs_its_revision() {
    let f = check(&three(), None).findings;
    let inj = ids(&f, "fleet.remote-injection");
    assert_eq!(worst(&f, "fleet.remote-injection"), Outcome::Ok, "{inj:#?}");
    assert!(
        inj[0].message.contains("injects through `east`"),
        "{}",
        inj[0].message
    );

    let mut ms = three();
    ms[1] = member("remote", remote("remote", "east", "1-30-3", Some("mesh1")));
    let f = check(&ms, None).findings;
    let bad = ids(&f, "fleet.remote-injection");
    assert_eq!(bad[0].result, Outcome::Error, "{bad:#?}");
    assert!(
        bad[0]
            .message
            .contains("runs no istiod of revision `1-30-3`"),
        "{}",
        bad[0].message
    );
    assert_eq!(bad[0].objects, ["remote: Namespace/app"]);

    // Pointing outside the run cannot be judged: skipped, not passed.
    ms[1] = member(
        "remote",
        remote("remote", "elsewhere", "default", Some("mesh1")),
    );
    let f = check(&ms, None).findings;
    assert_eq!(worst(&f, "fleet.remote-injection"), Outcome::Skipped);
}

#[test]
fn a_remote_injection_path_must_name_the_remote_and_an_external_istiod_must_be_named() {
    let mut ms = three();
    let wrong_path = installed_injector("default", Some(&url("east", "other")));
    ms[1] = member(
        "remote",
        remote("remote", "east", "default", Some("mesh1")).webhook(wrong_path),
    );
    let f = check(&ms, None).findings;
    assert!(
        ids(&f, "fleet.remote-injection")
            .iter()
            .any(|x| x.result == Outcome::Warning && x.message.contains("names cluster `other`")),
        "{f:#?}"
    );

    let external = primary("east", "1.29.6", Some("mesh1")).with(|s| {
        s.remote_secrets.extend([secret("west"), secret("remote")]);
        let spec = s.deployments[0].spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().containers[0].env = Some(vec![EnvVar {
            name: "EXTERNAL_ISTIOD".into(),
            value: Some("true".into()),
            ..Default::default()
        }]);
    });
    let mut ms = three();
    ms[0] = member("east", external);
    ms[1] = member(
        "remote",
        remote("remote", "east", "default", Some("mesh1")).namespace("istio-system", &[]),
    );
    let f = check(&ms, None).findings;
    let lead: Vec<&Finding> = ids(&f, "fleet.remote-injection")
        .into_iter()
        .filter(|x| x.message.contains("controlPlaneClusters"))
        .collect();
    assert_eq!(lead.len(), 1, "{f:#?}");
    ms[1] = member(
        "remote",
        remote("remote", "east", "default", Some("mesh1")).with(|s| {
            let mut ns = k8s_openapi::api::core::v1::Namespace {
                metadata: meta("", "istio-system", &[]),
                ..Default::default()
            };
            ns.metadata.annotations = Some(
                [(
                    "topology.istio.io/controlPlaneClusters".to_owned(),
                    "east".to_owned(),
                )]
                .into(),
            );
            s.namespaces.push(ns);
        }),
    );
    let f = check(&ms, None).findings;
    assert!(
        !f.iter().any(|x| x.message.contains("controlPlaneClusters")),
        "{f:#?}"
    );
}

#[test]
fn remotes_need_a_secret_on_a_primary_and_primaries_read_each_other() {
    let f = check(&three(), None).findings;
    assert_eq!(worst(&f, "fleet.remote-secrets"), Outcome::Ok, "{f:#?}");
    let mut ms = three();
    ms[0] = member("east", primary("east", "1.29.6", Some("mesh1")));
    let f = check(&ms, None).findings;
    let s = ids(&f, "fleet.remote-secrets");
    assert!(
        s.iter()
            .any(|x| x.result == Outcome::Error && x.message.contains("remote `remote`")),
        "{s:#?}"
    );
    assert!(
        s.iter().any(|x| x.result == Outcome::Warning
            && x.message
                .contains("primary `east` holds no remote secret for primary `west`")),
        "{s:#?}"
    );
    // Secrets not read (a dump without them): skipped, never "none".
    let mut ms = three();
    let unread = primary("east", "1.29.6", Some("mesh1"))
        .with(|s| s.add_gap(Source::RemoteSecrets, "forbidden"));
    ms[0] = member("east", unread);
    let f = check(&ms, None).findings;
    assert_eq!(
        worst(&f, "fleet.remote-secrets"),
        Outcome::Skipped,
        "{f:#?}"
    );
}

#[test]
fn a_revision_asked_for_in_one_cluster_but_served_only_in_another() {
    let mut ms = three();
    ms[2] = member(
        "west",
        primary("west", "1.30.3", Some("mesh1"))
            .control_plane("1-30-3", "1.30.3")
            .with(|s| s.remote_secrets.push(secret("east"))),
    );
    ms[0] = member(
        "east",
        primary("east", "1.29.6", Some("mesh1"))
            .namespace("shop", &[("istio.io/rev", "1-30-3")])
            .with(|s| s.remote_secrets.extend([secret("west"), secret("remote")])),
    );
    let f = check(&ms, None).findings;
    let s = ids(&f, "fleet.revision-served");
    assert_eq!(s[0].result, Outcome::Error, "{s:#?}");
    assert!(
        s[0].message
            .contains("`shop` in `east` asks for `1-30-3`, which only west serve(s)"),
        "{}",
        s[0].message
    );
    assert_eq!(
        worst(&check(&three(), None).findings, "fleet.revision-served"),
        Outcome::Ok
    );
}

#[test]
fn mesh_identity_needs_one_mesh_id_one_trust_domain_and_own_cluster_names() {
    let f = check(&three(), None).findings;
    assert_eq!(worst(&f, "fleet.mesh-identity"), Outcome::Ok);
    let twins = vec![
        member("a", primary("same", "1.29.6", Some("m"))),
        member("b", primary("same", "1.30.3", Some("m"))),
    ];
    let f = check(&twins, None).findings;
    assert_eq!(worst(&f, "fleet.mesh-identity"), Outcome::Error, "{f:#?}");
    let mixed = vec![
        member(
            "a",
            primary("a", "1.29.6", Some("m1")).with(|s| s.remote_secrets.push(secret("b"))),
        ),
        member(
            "b",
            primary("b", "1.30.3", Some("m2")).with(|s| {
                s.config_maps
                    .retain(|c| c.metadata.name.as_deref() != Some("istio"));
                s.config_maps
                    .push(mesh_cm("default", Some("m2"), "b.example"));
            }),
        ),
    ];
    let f = check(&mixed, None).findings;
    let w = ids(&f, "fleet.mesh-identity");
    assert!(
        w.iter()
            .any(|x| x.message.contains("disagree on the mesh ID")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|x| x.message.contains("different trust domains")),
        "{w:#?}"
    );
}

#[test]
fn upgrade_order_oldest_primary_first_remotes_after_their_primary() {
    let r = check(&three(), Some(&v("1.30.3")));
    assert_eq!(r.order.len(), 1);
    let steps: Vec<(&str, &StepAction)> = r.order[0]
        .steps
        .iter()
        .map(|s| (s.cluster.as_str(), &s.action))
        .collect();
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert_eq!(
        steps[0],
        (
            "east",
            &StepAction::Upgrade {
                from: vec![v("1.29.6")]
            }
        )
    );
    assert_eq!(
        steps[1],
        (
            "remote",
            &StepAction::AfterPrimary {
                primary: Some("east".into())
            }
        )
    );
    assert_eq!(steps[2], ("west", &StepAction::AtTarget));
    let f = ids(&r.findings, "fleet.upgrade-order");
    assert_eq!(f[0].result, Outcome::Ok);
    assert!(
        f[0].message.contains(
            "1. east (upgrade from 1.29.6), 2. remote (after east), 3. west (already at the target)"
        ),
        "{}",
        f[0].message
    );
    // To 1.31: east (1.29) goes first; west at 1.30 stays within one minor of 1.31.
    let r = check(&three(), Some(&v("1.31.1")));
    assert_eq!(r.order[0].steps[0].cluster, "east");
    assert_eq!(worst(&r.findings, "fleet.upgrade-order"), Outcome::Ok);
    // Two clusters two minors below the target: whichever goes first, the other is left behind.
    let behind = vec![
        member("a", primary("a", "1.29.6", Some("m"))),
        member("b", primary("b", "1.29.4", Some("m"))),
    ];
    let r = check(&behind, Some(&v("1.31.1")));
    let f = ids(&r.findings, "fleet.upgrade-order");
    assert_eq!(f[0].result, Outcome::Error, "{f:#?}");
    assert!(
        f[0].hint.as_deref().unwrap().contains("to 1.30 first"),
        "{:?}",
        f[0].hint
    );
    // A downgrade moves the newest first.
    let r = check(&three(), Some(&v("1.29.6")));
    assert_eq!(r.order[0].steps[0].cluster, "west");
}

fn blocks(f: &Finding) -> bool {
    f.result == Outcome::Error
}

fn on<'a>(snap: &'a ClusterSnapshot, inv: &'a crate::inventory::Inventory) -> Basis<'a> {
    Basis {
        snap,
        inv,
        knowledge: crate::checks::Knowledge::default(),
        blocks: &blocks,
    }
}

#[test]
fn a_cluster_takes_the_target_in_place_else_as_a_canary_and_says_what_blocks() {
    let (snap, inv) = primary("east", "1.29.6", None).build();
    let facts = MeshFacts::of(&snap, &inv);
    let want = |version: &str| Want {
        version: v(version),
        revision: None,
        canary: false,
        agents: None,
        images: Vec::new(),
    };
    let p = plan(on(&snap, &inv), &facts, &want("1.30.3"));
    assert_eq!(
        (p.way, p.blocked()),
        (Way::InPlace, false),
        "{:#?}",
        p.blocked_by
    );
    assert!(p.other.is_none());
    // Two minors: in place is refused, a canary is allowed.
    let p = plan(on(&snap, &inv), &facts, &want("1.31.1"));
    assert_eq!(
        (p.way, p.blocked()),
        (Way::Canary, false),
        "{:#?}",
        p.findings
    );
    let other = p.other.unwrap();
    assert_eq!(other.way, Way::InPlace);
    assert!(other.blocked_by.contains(&"skew.in-place"), "{other:?}");
    // Three minors: both are blocked; the plan says in place and names the canary's blockers.
    let p = plan(on(&snap, &inv), &facts, &want("1.32.0"));
    assert_eq!((p.way, p.blocked()), (Way::InPlace, true));
    assert_eq!(p.other.unwrap().way, Way::Canary);
    // --canary fixes the way.
    let canary = Want {
        canary: true,
        ..want("1.30.3")
    };
    assert_eq!(plan(on(&snap, &inv), &facts, &canary).way, Way::Canary);
    // A remote follows its primary.
    let (snap, inv) = remote("r", "east", "default", None).build();
    let facts = MeshFacts::of(&snap, &inv);
    assert_eq!(
        plan(on(&snap, &inv), &facts, &want("1.30.3")).way,
        Way::Remote
    );
}

#[test]
fn data_plane_mode_from_what_the_snapshot_shows() {
    let mode = |s: Snap| {
        let (snap, inv) = s.build();
        data_plane_mode(&snap, &inv)
    };
    assert_eq!(
        mode(Snap::new().control_plane("default", "1.29.6")),
        Some(DataPlaneMode::None)
    );
    let sidecar = Snap::new()
        .control_plane("default", "1.29.6")
        .namespace("a", &[("istio-injection", "enabled")]);
    assert_eq!(mode(sidecar), Some(DataPlaneMode::Sidecar));
    let ztunnel = |s: &mut ClusterSnapshot| {
        s.daemonsets.push(DaemonSet {
            metadata: meta("istio-system", "ztunnel", &[]),
            ..Default::default()
        });
    };
    assert_eq!(
        mode(Snap::new().with(ztunnel)),
        Some(DataPlaneMode::Ambient)
    );
    let ambient_ns = Snap::new().namespace("a", &[("istio.io/dataplane-mode", "ambient")]);
    assert_eq!(mode(ambient_ns), Some(DataPlaneMode::Ambient));
    let both = Snap::new()
        .control_plane("default", "1.29.6")
        .pod("a", "p", Some("default"), "1.29.6")
        .with(ztunnel);
    assert_eq!(mode(both), Some(DataPlaneMode::Both));
    let unread = Snap::new().with(|s| {
        for src in [Source::Namespaces, Source::DaemonSets, Source::Pods] {
            s.add_gap(src, "forbidden");
        }
    });
    assert_eq!(mode(unread), None);
}

#[test]
fn every_fleet_check_is_skipped_for_a_cluster_whose_input_was_not_read() {
    let mut ms = three();
    let mut blind =
        primary("west", "1.30.3", Some("mesh1")).with(|s| s.remote_secrets.push(secret("east")));
    blind = blind.with(|s| {
        for src in super::facts::FACT_SOURCES {
            s.add_gap(src, "not in the snapshot");
        }
    });
    ms[2] = member("west", blind);
    let f = check(&ms, None).findings;
    for id in [
        "fleet.mesh-identity",
        "fleet.control-plane-skew",
        "fleet.remote-injection",
        "fleet.remote-secrets",
        "fleet.revision-served",
    ] {
        let found = ids(&f, id);
        assert!(
            found.iter().any(|x| x.result == Outcome::Skipped
                && x.objects.iter().any(|o| o.starts_with("west: "))),
            "{id}: {found:#?}"
        );
        // remote-injection judges each remote injector on its own: remote → east passes
        // whatever west holds; the others are verdicts over the whole mesh.
        if id != "fleet.remote-injection" {
            assert!(
                !found.iter().any(|x| x.result == Outcome::Ok),
                "{id} passed without west's input: {found:#?}"
            );
        }
    }
}

#[test]
fn a_remote_cluster_alone_says_so_and_its_proxies_are_judged_against_its_primary() {
    use crate::checks::{Context, run_all};
    let (snap, inv) = remote("remote", "east", "default", Some("mesh1"))
        .pod("app", "web-1", Some("default"), "1.27.3")
        .build();
    let findings = run_all(&Context {
        snap: &snap,
        inv: &inv,
        target: None,
        canary_requested: false,
        knowledge: crate::checks::Knowledge::default(),
    });
    let present = ids(&findings, "control-plane.present");
    assert_eq!(present[0].result, Outcome::Ok, "{present:#?}");
    assert!(
        present[0].message.contains("a remote cluster"),
        "{}",
        present[0].message
    );
    let dp = ids(&findings, "skew.data-plane");
    assert_eq!(
        dp[0].result,
        Outcome::Skipped,
        "not a dangling revision: {dp:#?}"
    );
    // Read beside its primary, the proxies are two minors behind east's istiod.
    let mut ms = three();
    ms[1] = Member {
        name: "remote".into(),
        facts: MeshFacts::of(&snap, &inv),
    };
    let f = check(&ms, None).findings;
    let bad: Vec<&Finding> = ids(&f, "fleet.remote-injection")
        .into_iter()
        .filter(|x| x.result == Outcome::Error)
        .collect();
    assert_eq!(bad.len(), 1, "{f:#?}");
    assert_eq!(bad[0].objects, ["remote: 1 proxies at 1.27.3"]);
}
