//! CLI tests of the ambient checks on snapshot files: `tests/fixtures/ambient-mixed.yaml` is
//! a `--dump-snapshot` of the test bed's mixed sidecar + ambient mesh (written by the e2e test
//! `ambient::a_mixed_mesh_reads_naturally` with `UPDATE_GOLDEN=1`); each test breaks one thing
//! in a copy and runs the binary on it. The table of the healthy mesh is a golden file
//! (`tests/fixtures/ambient-mixed.txt`; regenerate with `UPDATE_GOLDEN=1`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use mesh_common::snapshot::{ClusterSnapshot, PodObject, Source};
use mesh_testbed::probe::findings;
use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/ambient-mixed.yaml";

fn precheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("KUBECTL_MESH_TODAY", "2026-12-04")
        .env_remove("KUBECTL_MESH_RELEASE_DATA")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl-mesh-precheck")
}

fn fixture() -> ClusterSnapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    ClusterSnapshot::from_yaml(&std::fs::read_to_string(path).unwrap(), "istio-system").unwrap()
}

/// The fixture changed by `f`, written to a file of its own.
fn variant(name: &str, f: impl FnOnce(&mut ClusterSnapshot)) -> PathBuf {
    let mut snap = fixture();
    f(&mut snap);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ambient-{name}.yaml"));
    std::fs::write(&path, snap.to_yaml().unwrap()).unwrap();
    path
}

/// Exit code and JSON report of precheck on `file` with `args`.
fn run(file: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--snapshot", file.to_str().unwrap(), "-o", "json"];
    all.extend_from_slice(args);
    let out = precheck(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn only_error<'a>(r: &'a Value, id: &str) -> &'a Value {
    let errors: Vec<&Value> = findings(r, id)
        .into_iter()
        .filter(|f| f["result"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0]
}

/// The one error `id` reports on the fixture changed by `f` (an error: exit 1).
fn error_after(name: &str, f: impl FnOnce(&mut ClusterSnapshot), id: &str) -> Value {
    let (code, r) = run(&variant(name, f), &[]);
    assert_eq!(code, 1, "{r:#}");
    only_error(&r, id).clone()
}

fn message(f: &Value) -> &str {
    f["message"].as_str().unwrap()
}

fn daemonset<'a>(
    snap: &'a mut ClusterSnapshot,
    name: &str,
) -> &'a mut k8s_openapi::api::apps::v1::DaemonSet {
    snap.daemonsets
        .iter_mut()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap()
}

/// Changes the waypoint's pods.
fn waypoint_pods(snap: &mut ClusterSnapshot, f: impl Fn(&mut PodObject)) {
    let pods = std::mem::take(&mut snap.pods);
    snap.pods = pods
        .into_iter()
        .map(|p| {
            let mut o: PodObject = p.into();
            if o.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("waypoint-"))
            {
                f(&mut o);
            }
            o.into()
        })
        .collect();
}

fn set_env(snap: &mut ClusterSnapshot, value: &str) {
    let ds = daemonset(snap, "ztunnel");
    let c = &mut ds
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    for e in c
        .env
        .iter_mut()
        .flatten()
        .filter(|e| e.name.ends_with("_ADDRESS"))
    {
        e.value = Some(value.to_owned());
    }
}

#[test]
fn the_mixed_mesh_table_matches_the_golden_file() {
    let out = precheck(&["--snapshot", FIXTURE]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ambient-mixed.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    assert_eq!(text, std::fs::read_to_string(golden).unwrap());
}

#[test]
fn the_healthy_fixture_has_every_ambient_check_ok() {
    let (code, r) = run(Path::new(FIXTURE), &[]);
    assert_eq!(code, 0);
    for id in [
        "ambient.present",
        "ambient.daemonsets",
        "ambient.cni-taint",
        "ambient.ztunnel-istiod",
        "ambient.waypoint-revision",
        "ambient.waypoint-ready",
        "ambient.mixed-namespaces",
        "ambient.use-waypoint",
        "skew.ambient",
        "skew.waypoints",
    ] {
        for f in findings(&r, id) {
            assert_eq!(f["result"], "ok", "{f}");
        }
    }
}

#[test]
fn a_daemonset_not_ready_on_every_node() {
    let unready = |s: &mut ClusterSnapshot| {
        daemonset(s, "istio-cni-node")
            .status
            .as_mut()
            .unwrap()
            .number_ready = 2;
    };
    let f = &error_after("unready", unready, "ambient.daemonsets");
    assert!(
        message(f).contains("istio-cni-node is ready on 2 of 3 nodes"),
        "{f}"
    );
    let selector = |s: &mut ClusterSnapshot| {
        let ds = daemonset(s, "ztunnel");
        let spec = ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        spec.node_selector
            .get_or_insert_default()
            .insert("kubernetes.io/hostname".into(), "kwok-node-0".into());
    };
    let f = error_after("selector", selector, "ambient.daemonsets");
    assert_eq!(
        f["objects"],
        json!([
            "DaemonSet/istio-system/ztunnel",
            "Node/kwok-node-1",
            "Node/kwok-node-2"
        ])
    );
    let gone = |s: &mut ClusterSnapshot| {
        s.daemonsets
            .retain(|d| d.metadata.name.as_deref() != Some("istio-cni-node"));
    };
    let f = &error_after("no-cni", gone, "ambient.daemonsets");
    assert!(message(f).contains("no istio-cni DaemonSet runs"), "{f}");
    assert_eq!(f["objects"], json!(["Namespace/shop"]));
}

#[test]
fn a_node_left_tainted_by_istio_cni() {
    let taint = |s: &mut ClusterSnapshot| {
        let t = json!({"key": "cni.istio.io/not-ready", "effect": "NoSchedule"});
        s.nodes[2]
            .spec
            .taints
            .push(serde_json::from_value(t).unwrap());
    };
    let f = error_after("taint", taint, "ambient.cni-taint");
    assert_eq!(f["objects"], json!(["Node/kwok-node-2"]));
}

#[test]
fn ztunnel_pointing_at_a_revision_without_istiod() {
    let gone = |s: &mut ClusterSnapshot| set_env(s, "istiod-1-28-0.istio-system.svc:15012");
    let f = &error_after("ztunnel-gone", gone, "ambient.ztunnel-istiod");
    assert!(
        message(f).contains("Service istio-system/istiod-1-28-0 does not exist"),
        "{f}"
    );
    assert_eq!(f["objects"][1], "Service/istio-system/istiod-1-28-0");
}

#[test]
fn a_waypoint_on_a_missing_revision_or_not_ready() {
    let pinned = |s: &mut ClusterSnapshot| {
        let labels = s.gateways[0].metadata.labels.get_or_insert_default();
        labels.insert("istio.io/rev".into(), "1-28-0".into());
    };
    let f = error_after("pinned", pinned, "ambient.waypoint-revision");
    assert_eq!(f["objects"], json!(["Gateway/shop/waypoint"]));
    let down = |s: &mut ClusterSnapshot| {
        waypoint_pods(s, |o| o.status.conditions[0].status = "False".into());
    };
    let f = &error_after("waypoint-down", down, "ambient.waypoint-ready");
    assert!(
        message(f).contains("has 0 of 1 pod(s) ready; 1 use(s) it"),
        "{f}"
    );
}

#[test]
fn a_namespace_both_ambient_and_injected() {
    let file = variant("mixed-ns", |s| {
        let ns = s
            .namespaces
            .iter_mut()
            .find(|n| n.metadata.name.as_deref() == Some("shop"))
            .unwrap();
        ns.metadata
            .labels
            .get_or_insert_default()
            .insert("istio-injection".into(), "enabled".into());
    });
    let (code, r) = run(&file, &[]);
    assert_eq!(code, 0, "a warning");
    let f = findings(&r, "ambient.mixed-namespaces");
    assert_eq!(f[0]["result"], "warning");
    assert_eq!(run(&file, &["--fail-on", "warning"]).0, 1);
}

#[test]
fn ztunnel_or_a_waypoint_outside_the_skew_of_its_istiod() {
    let newer = |s: &mut ClusterSnapshot| {
        let ds = daemonset(s, "ztunnel");
        let spec = ds.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        spec.containers[0].image = Some("docker.io/istio/ztunnel:1.31.1-distroless".into());
    };
    let f = &error_after("ztunnel-newer", newer, "skew.ambient");
    assert!(
        message(f).contains("ztunnel runs 1.31.1, newer than istiod"),
        "{f}"
    );
    let old = |s: &mut ClusterSnapshot| {
        let image = Some("docker.io/istio/proxyv2:1.28.3".to_owned());
        waypoint_pods(s, |o| o.spec.containers[0].image = image.clone());
    };
    let f = &error_after("waypoint-old", old, "skew.waypoints");
    assert!(
        message(f).contains("runs proxy 1.28.3, 2 minors behind"),
        "{f}"
    );
}

#[test]
fn the_order_of_an_upgrade_against_ztunnel_and_cni() {
    let file = Path::new(FIXTURE);
    // istiod alone taken down a minor: ztunnel and istio-cni would be newer than istiod.
    let (code, r) = run(file, &["--target-version", "1.29.6"]);
    assert_eq!(code, 1);
    let order = findings(&r, "skew.ambient-order");
    assert_eq!(
        order.iter().filter(|f| f["result"] == "error").count(),
        2,
        "{order:#?}"
    );
    // The ambient manifest of 1.29.6 takes them down too, before istiod: fine.
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mesh-core/fixtures/manifests/ambient-1.29.6.yaml"
    );
    let (_, r) = run(file, &["-f", manifest]);
    let order = findings(&r, "skew.ambient-order");
    assert!(order.iter().all(|f| f["result"] == "ok"), "{order:#?}");
    assert!(message(order[1]).contains("1.30.3 → 1.29.6"), "{order:#?}");
    // An upgrade of istiod alone leaves them one minor older: fine, upgraded after istiod.
    let (_, r) = run(file, &["--target-version", "1.31.1"]);
    assert!(
        findings(&r, "skew.ambient-order")
            .iter()
            .all(|f| f["result"] == "ok")
    );
}

#[test]
fn a_ztunnel_strategy_that_restarts_many_nodes_at_once() {
    let file = variant("wide", |s| {
        let ds = daemonset(s, "ztunnel");
        ds.spec.as_mut().unwrap().update_strategy = serde_json::from_value(json!(
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%", "maxSurge": 0}}))
        .unwrap();
    });
    let (_, r) = run(&file, &["--target-version", "1.31.1"]);
    let f = findings(&r, "ambient.ztunnel-rollout");
    assert_eq!(f[0]["result"], "warning", "{f:#?}");
    assert!(
        message(f[0]).contains("restart ztunnel on 3 of 3 nodes at once"),
        "{f:#?}"
    );
    let (_, r) = run(Path::new(FIXTURE), &["--target-version", "1.31.1"]);
    assert_eq!(findings(&r, "ambient.ztunnel-rollout")[0]["result"], "ok");
}

/// A dump taken without gateways and nodes (an older `--dump-snapshot`, or a hand-made
/// `kubectl get` without them): what needs them is `skipped`, never "none".
#[test]
fn a_dump_without_gateways_and_nodes_skips_what_needs_them() {
    let file = variant("no-gateways-nodes", |s| {
        s.gateways.clear();
        s.nodes.clear();
        s.add_gap(Source::Gateways, "x");
        s.add_gap(Source::Nodes, "x");
    });
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("gateways,") && !text.contains("nodes,"),
        "not declared read"
    );
    let (_, r) = run(&file, &[]);
    for id in [
        "ambient.cni-taint",
        "ambient.waypoint-revision",
        "skew.waypoints",
    ] {
        let f = findings(&r, id);
        assert_eq!(f[0]["result"], "skipped", "{f:#?}");
        assert!(
            message(f[0]).contains("the snapshot file was taken without"),
            "{f:#?}"
        );
    }
    let d = findings(&r, "ambient.daemonsets");
    assert!(
        d.iter().any(|f| f["result"] == "skipped"
            && message(f).contains("which nodes they must cover is unknown")),
        "{d:#?}"
    );
    assert!(
        d.iter().filter(|f| f["result"] == "ok").count() == 2,
        "readiness still judged: {d:#?}"
    );
}

#[test]
fn a_component_manifest_is_judged_beside_the_installed_istiod() {
    let manifest = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../mesh-core/fixtures/manifests")
            .join(name)
            .display()
            .to_string()
    };
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    // istio-cni 1.31.1 alone beside istiod 1.30.3: istiod first.
    let cni = manifest("component-istio-cni-1.31.1.yaml");
    let (code, r) = run(&file, &["-f", &cni]);
    assert_eq!(code, 1, "{r:#}");
    let f = only_error(&r, "skew.ambient-order");
    assert!(message(f).contains("istiod first"), "{}", message(f));
    // The control plane's checks see istiod staying as it runs (no in-place move of it).
    assert!(
        findings(&r, "skew.in-place")
            .iter()
            .all(|f| f["result"] != "error"),
        "{r:#}"
    );
    let out = precheck(&["--snapshot", file.to_str().unwrap(), "-f", &cni]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Target: a manifest without istiod (Istio 1.31.1) for revision `default`, judged beside its istiod 1.30.3, which stays"),
        "{table}"
    );
    // A fleet run does not judge it beside each cluster's istiod: refused, with the command.
    let other =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/canary-in-progress.json");
    let out = precheck(&[
        "--snapshot",
        file.to_str().unwrap(),
        "--snapshot",
        other.to_str().unwrap(),
        "-f",
        &cni,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: the manifest has no istiod"),
        "{err}"
    );
    assert!(
        err.contains("hint: run `kubectl mesh precheck -f FILE --context CLUSTER`"),
        "{err}"
    );
    // A gateway's PDB and autoscaler alone (istioctl's golden): nothing to refuse.
    let (code, r) = run(&file, &["-f", &manifest("golden-gateway_hpa_pdb.yaml")]);
    assert_eq!(r["summary"]["error"], 0, "{r:#}");
    assert_eq!(code, 0, "{r:#}");
}

#[test]
fn a_namespace_or_service_using_a_waypoint_that_does_not_exist() {
    let file = variant("use-missing-waypoint", |s| {
        let shop = s
            .namespaces
            .iter_mut()
            .find(|n| n.metadata.name.as_deref() == Some("shop"))
            .unwrap();
        shop.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("istio.io/use-waypoint".into(), "gone".into());
    });
    let (code, r) = run(&file, &[]);
    assert_eq!(code, 0, "a warning: {r:#}");
    let f = findings(&r, "ambient.use-waypoint");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["result"], "warning");
    assert_eq!(
        f[0]["objects"],
        json!(["Namespace/shop", "Gateway/shop/gone"])
    );
    assert!(
        message(f[0]).contains("ztunnel sends its traffic straight to the destination"),
        "{f:#?}"
    );
    assert!(
        f[0]["docs"]
            .as_str()
            .unwrap()
            .ends_with("docs/checks.md#ambient-use-waypoint"),
        "{f:#?}"
    );
    assert_eq!(run(&file, &["--fail-on", "warning"]).0, 1);
}
