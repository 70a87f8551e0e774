//! `kubectl mesh upgrade dataplane` on a mixed sidecar + ambient mesh with two revisions, and its
//! rollback.
//!
//! Real: the test bed's etcd, kube-apiserver, controller-manager, scheduler and three kwok
//! nodes; the default revision of the old release installed by the real `istioctl install
//! --set profile=ambient` (istiod, istio-cni and ztunnel rolled on every node), the new
//! release's canary revision by `istioctl install`; the Gateway API CRDs of the
//! `sigs.k8s.io/gateway-api` module; sidecars injected by the harness's injector (the stand-in
//! for istiod's webhook), each revision's proxy image.
//! Emulated by the test bed (`mesh_testbed::ambient`): istiod's gateway controller, run as a
//! controller ([`ambient::WaypointController`]) that re-renders a waypoint's Deployment on the
//! revision that manages its Gateway, and istio-cni's annotation of the pods it captured.
//!
//! With `UPDATE_GOLDEN=1` it also writes the CLI tests' fixtures (the mesh before and after the
//! move, as the commands read it).

use std::{collections::BTreeSet, path::Path, process::Output};

use mesh_common::cluster::{ConnectOptions, FetchOptions, connect, fetch};
use mesh_testbed::{
    Cluster, ambient,
    probe::{expect, json, run_mesh},
    rt::block,
    scenario,
};
use serde_json::Value;

fn mesh(c: &Cluster, home: &Path, args: &[&str]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"));
    run_mesh(bin, c.kubeconfig(), home, args)
}

fn get(c: &Cluster, args: &[&str]) -> Value {
    let out = c.kubectl_out(&[args, &["-o", "json"]].concat());
    serde_json::from_str(&out).unwrap()
}

/// The waypoint Deployment's revision (its pod template's `istio.io/rev` annotation) and image.
fn waypoint_rendering(c: &Cluster) -> (String, String) {
    let d = get(c, &["get", "deployment", "-n", "shop", "waypoint"]);
    let t = &d["spec"]["template"];
    (
        t["metadata"]["annotations"]["istio.io/rev"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        t["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The ready waypoint pods, as (revision annotation, image).
fn waypoint_pods(c: &Cluster) -> Vec<(String, String)> {
    let pods = get(
        c,
        &[
            "get",
            "pods",
            "-n",
            "shop",
            "-l",
            "gateway.networking.k8s.io/gateway-name=waypoint",
        ],
    );
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["annotations"]["istio.io/rev"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn uids(c: &Cluster, ns: &str) -> BTreeSet<String> {
    let pods = get(c, &["get", "pods", "-n", ns, "-l", "app=web"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect()
}

fn labels(c: &Cluster, args: &[&str]) -> Value {
    get(c, args)["metadata"]["labels"].clone()
}

/// What the commands read (`precheck --dump-snapshot` without the whole objects an upgrade
/// plan compares: 1 MB of CRDs and RBAC no data-plane or uninstall plan reads), with the
/// injection templates cut out.
fn dump(c: &Cluster) -> String {
    let kubeconfig = c.kubeconfig().to_path_buf();
    let mut snap = block(async move {
        let conn = connect(&ConnectOptions {
            kubeconfig: Some(kubeconfig),
            ..Default::default()
        })
        .await
        .unwrap();
        let opts = FetchOptions {
            istio_namespace: "istio-system".into(),
            ..Default::default()
        };
        fetch(&conn, &opts).await.unwrap()
    });
    for cm in &mut snap.config_maps {
        if cm
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("istio-sidecar-injector"))
        {
            for v in cm.data.iter_mut().flat_map(|d| d.values_mut()) {
                *v = "(cut from the test fixture)".into();
            }
        }
    }
    snap.to_yaml().unwrap()
}

fn write_fixture(c: &Cluster, name: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::write(path, dump(c)).unwrap();
    }
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// `upgrade dataplane -n shop -n legacy --to-revision <canary>` moves the waypoint of the
/// ambient namespace with it (its Gateway labelled, re-rendered on the canary and waited on until
/// its pods run the canary's proxy), restarts the sidecar workload of `legacy` onto the canary,
/// and leaves the ambient namespace's labels and pods alone (reported as needing no restart).
/// `rollback` restores the labels first: the waypoint goes back to `default`, `legacy` too.
#[test]
fn waypoints_move_with_their_namespace_and_roll_back() {
    let c = Cluster::shared();
    ambient::canary_mesh(c).unwrap();
    let (old, new, canary) = (
        scenario::old_tag(),
        scenario::new_tag(),
        scenario::canary_revision(),
    );
    write_fixture(c, "ambient-canary.yaml");
    let home = tempfile::tempdir().unwrap();
    let shop_pods = uids(c, "shop");
    assert_eq!(shop_pods.len(), 2);
    assert_eq!(waypoint_rendering(c).0, "default");
    let controller = ambient::WaypointController::start(c);
    let args = [
        "dataplane",
        "-n",
        "shop",
        "-n",
        "legacy",
        "--to-revision",
        canary,
    ];

    // A dry run shows the move, changes nothing.
    let (table, _) = expect(
        &mesh(c, home.path(), &[&args[..], &["--dry-run"]].concat()),
        0,
    );
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("shop/waypoint"))
        .unwrap_or_else(|| panic!("no waypoint row in\n{table}"));
    for cell in [
        "namespace",
        &format!("default {old}"),
        &format!("{canary} {new}"),
    ] {
        assert!(row.contains(cell), "{cell:?} in {row:?}");
    }
    for line in [
        "Waypoints (Gateway labelled istio.io/rev",
        "Ambient namespaces",
        "no restart: no sidecar, ztunnel carries its pods",
    ] {
        assert!(table.contains(line), "{line:?} in\n{table}");
    }
    assert!(!table.contains("opted out: 1"), "{table}");
    assert_eq!(
        labels(c, &["get", "gateway", "-n", "shop", "waypoint"])["istio.io/rev"],
        Value::Null
    );

    // The move.
    let r = json(
        &mesh(c, home.path(), &[&args[..], &["-y", "-o", "json"]].concat()),
        0,
    );
    assert_eq!(r["success"], true, "{r:#}");
    let w = &r["waypoints"][0];
    assert_eq!(
        (
            w["namespace"].as_str(),
            w["name"].as_str(),
            w["by"].as_str()
        ),
        (Some("shop"), Some("waypoint"), Some("namespace"))
    );
    assert_eq!(w["expected"]["revision"], canary);
    assert_eq!(w["expected"]["version"], new);
    let a = &r["ambientNamespaces"][0];
    assert_eq!(
        (
            a["namespace"].as_str(),
            a["captured"].as_u64(),
            a["pods"].as_u64()
        ),
        (Some("shop"), Some(2), Some(2))
    );
    let relabelled: Vec<&str> = r["relabel"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["namespace"].as_str())
        .collect();
    assert_eq!(
        relabelled,
        ["legacy"],
        "the ambient namespace keeps its labels"
    );
    let done: Vec<&str> = r["done"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(done, ["Gateway/shop/waypoint", "Deployment/legacy/web"]);

    // The cluster: the Gateway on the canary, its pods re-rendered and ready with the canary's
    // proxy (the command waited for them), the ambient namespace and its pods untouched.
    assert_eq!(
        labels(c, &["get", "gateway", "-n", "shop", "waypoint"])["istio.io/rev"],
        canary
    );
    let pods = waypoint_pods(c);
    assert!(!pods.is_empty());
    for (rev, image) in &pods {
        assert_eq!(rev, canary);
        assert!(image.ends_with(&format!("proxyv2:{new}")), "{image}");
    }
    let shop = labels(c, &["get", "namespace", "shop"]);
    assert_eq!(shop["istio.io/rev"], Value::Null, "{shop}");
    assert_eq!(shop["istio.io/dataplane-mode"], "ambient");
    assert_eq!(uids(c, "shop"), shop_pods, "ambient pods are not restarted");
    let legacy = c.proxies("legacy", "app=web");
    assert_eq!(legacy.len(), 1);
    assert!(
        legacy[0].0.ends_with(&format!("proxyv2:{new}")),
        "{legacy:?}"
    );
    write_fixture(c, "ambient-canary-moved.yaml");

    // A second run plans nothing.
    let again = json(
        &mesh(c, home.path(), &[&args[..], &["-y", "-o", "json"]].concat()),
        0,
    );
    assert_eq!(again["waypoints"], serde_json::json!([]));
    assert_eq!(again["restart"], serde_json::json!([]));

    // Rollback: the labels first, then the restarted workload; the controller re-renders the
    // waypoint on `default`.
    let (_, stderr) = expect(&mesh(c, home.path(), &["rollback", "-y"]), 0);
    assert_eq!(
        labels(c, &["get", "gateway", "-n", "shop", "waypoint"])["istio.io/rev"],
        Value::Null,
        "{stderr}"
    );
    let legacy_ns = labels(c, &["get", "namespace", "legacy"]);
    assert_eq!(legacy_ns["istio-injection"], "enabled", "{legacy_ns}");
    assert_eq!(legacy_ns["istio.io/rev"], Value::Null, "{legacy_ns}");
    until("the waypoint re-rendered on default", || {
        waypoint_rendering(c).0 == "default"
    });
    c.wait_rollout("shop", "deployment/waypoint").unwrap();
    c.wait_rollout("legacy", "deployment/web").unwrap();
    let rendered = controller.stop();
    assert_eq!(
        rendered,
        [
            format!("shop/waypoint@{canary}"),
            "shop/waypoint@default".to_owned()
        ]
    );
    let (_, image) = waypoint_rendering(c);
    // The ambient profile's default revision runs the distroless variant.
    assert!(image.contains(&format!("proxyv2:{old}")), "{image}");
    let legacy = c.proxies("legacy", "app=web");
    assert!(
        legacy
            .iter()
            .all(|(image, rev)| image.contains(&format!("proxyv2:{old}")) && rev == "default"),
        "{legacy:?}"
    );
}
