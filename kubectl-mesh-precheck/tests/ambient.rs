//! End-to-end tests of `kubectl mesh precheck` on a mixed sidecar + ambient mesh.
//!
//! Real: the test bed's etcd, kube-apiserver, controller-manager, scheduler and three kwok
//! nodes; Istio installed by the real `istioctl install --set profile=ambient` (istiod,
//! istio-cni and ztunnel, the DaemonSets rolled on every node); the Gateway API CRDs of the
//! `sigs.k8s.io/gateway-api` module; sidecars injected by the harness's injector; the real
//! `istioctl x precheck` whose output is recorded beside ours.
//! Emulated by the test bed (`mesh_testbed::ambient`): istiod's gateway controller, which
//! renders a waypoint's ServiceAccount, Deployment and Service and reports the Gateway
//! programmed, and istio-cni's annotation of the pods it captured.
//!
//! One cluster for the whole file; the tests that break something take [`LOCK`] and put the
//! cluster back before releasing it, so each test sees the healthy mesh.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::{path::Path, process::Output};

use mesh_testbed::{
    Cluster, ambient,
    probe::{self, findings as by_id},
    scenario,
};
use serde_json::Value;

/// Held by every test: the broken cases change cluster-wide state.
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs precheck as a user would (`probe::run_mesh`).
fn precheck(c: &Cluster, args: &[&str]) -> Output {
    let binary = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"));
    probe::run_mesh(binary, c.kubeconfig(), c.dir(), args)
}

/// `istioctl x precheck` on the same cluster: its combined output.
fn istioctl_precheck(c: &Cluster) -> String {
    let out = c.istioctl().args(["x", "precheck"]).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The mixed mesh: ambient install at the target tag; namespace `shop` in ambient mode with a
/// sample app (captured) behind waypoint `waypoint`; namespace `legacy` with sidecars.
fn mesh() -> &'static Cluster {
    static MESH: OnceLock<()> = OnceLock::new();
    let c = Cluster::shared();
    MESH.get_or_init(|| {
        let tag = scenario::new_tag().to_owned();
        ambient::install_gateway_api(c).expect("Gateway API CRDs");
        ambient::install_ambient(c, &tag).expect("istioctl install --set profile=ambient");
        for ns in ["shop", "legacy"] {
            c.apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
            ))
            .unwrap();
        }
        scenario::label_namespace(
            c,
            "shop",
            &[
                ("istio.io/dataplane-mode", "ambient"),
                ("istio.io/use-waypoint", "waypoint"),
            ],
        )
        .unwrap();
        scenario::label_namespace(c, "legacy", &[("istio-injection", "enabled")]).unwrap();
        scenario::sample_app(c, "shop", 2).unwrap();
        ambient::capture(c, "shop").unwrap();
        let rev = ambient::waypoint(c, "shop", "waypoint", None).unwrap();
        assert_eq!(
            rev.as_deref(),
            Some("default"),
            "the default revision renders it"
        );
        scenario::sample_app(c, "legacy", 2).unwrap();
    });
    c
}

/// The CLI tests' fixture `tests/fixtures/ambient-mixed.yaml` is this cluster's dump, with the
/// injection templates (120 KB no check reads) cut out.
fn write_fixture(dump: &str) {
    use mesh_common::snapshot::ClusterSnapshot;
    let mut snap = ClusterSnapshot::from_yaml(dump, "istio-system").unwrap();
    for cm in &mut snap.config_maps {
        if cm.metadata.name.as_deref() == Some("istio-sidecar-injector") {
            for v in cm.data.iter_mut().flat_map(|d| d.values_mut()) {
                *v = "(cut from the test fixture)".into();
            }
        }
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ambient-mixed.yaml"
    );
    std::fs::write(fixture, snap.to_yaml().unwrap()).unwrap();
}

/// kubectl commands that put the cluster back, run when dropped (also when a test fails).
struct Undo<'a> {
    cluster: &'a Cluster,
    steps: Vec<Vec<String>>,
    wait: Vec<(&'static str, &'static str)>,
}

impl<'a> Undo<'a> {
    fn new(cluster: &'a Cluster) -> Self {
        Self {
            cluster,
            steps: Vec::new(),
            wait: Vec::new(),
        }
    }

    fn then(mut self, args: &[&str]) -> Self {
        self.steps
            .push(args.iter().map(|a| (*a).to_owned()).collect());
        self
    }

    fn then_wait(mut self, ns: &'static str, what: &'static str) -> Self {
        self.wait.push((ns, what));
        self
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for step in &self.steps {
            let out = self.cluster.kubectl().args(step).output().unwrap();
            if !out.status.success() && !std::thread::panicking() {
                panic!("undo {step:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        for (ns, what) in &self.wait {
            let done = self.cluster.wait_rollout(ns, what);
            if !std::thread::panicking() {
                done.unwrap();
            }
        }
    }
}

/// The findings that are not ok about the data plane (sidecars, ambient, waypoints, webhooks,
/// namespaces), where a waypoint or ztunnel pod taken for a sidecar would show.
fn not_ok(r: &Value) -> Vec<String> {
    let data_plane = ["ambient", "version-skew", "webhooks", "namespaces"];
    r["categories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| data_plane.contains(&c["name"].as_str().unwrap()))
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|f| f["result"] != "ok")
        .map(|f| format!("{} ({}): {}", f["id"], f["result"], f["message"]))
        .collect()
}

/// What istioctl says of a cluster whose ambient data plane is broken: nothing.
const ISTIOCTL_NO_ISSUES: &str =
    "No issues found when checking the cluster. Istio is safe to install or upgrade!";

/// The healthy mixed mesh reads naturally: istio-cni and ztunnel on all 3 nodes with the
/// istiod ztunnel talks to, the ambient namespace with its captured pods and waypoint, the
/// waypoint with its revision, version, readiness and user; sidecars counted as proxies, and
/// neither the waypoint's nor ztunnel's pods (no "injected by revision ``"): no finding about
/// the data plane is anything but ok. A dump reads back to the same ambient view.
#[test]
fn a_mixed_mesh_reads_naturally() {
    let _g = lock();
    let c = mesh();
    let tag = scenario::new_tag().to_owned();
    let r = probe::json(&precheck(c, &["-o", "json"]), 0);
    assert!(not_ok(&r).is_empty(), "{:#?}", not_ok(&r));
    for cat in ["ambient", "version-skew", "namespaces"] {
        let listed = r["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == cat);
        assert!(listed, "category {cat} judged");
    }
    let a = &r["inventory"]["ambient"];
    let agents = a["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{a:#}");
    for (agent, kind) in agents.iter().zip(["cni", "ztunnel"]) {
        assert_eq!(agent["kind"], kind);
        assert_eq!(agent["version"], tag.as_str());
        assert_eq!(
            (agent["ready"].as_i64(), agent["desired"].as_i64()),
            (Some(3), Some(3))
        );
        assert_eq!(agent["coverage"]["eligible"], 3);
    }
    assert_eq!(agents[1]["istiod"][0]["service"], "istio-system/istiod");
    assert_eq!(agents[1]["istiod"][0]["revision"], "default");
    let shop = &a["namespaces"][0];
    assert_eq!(
        (
            shop["name"].as_str(),
            shop["captured"].as_u64(),
            shop["pods"].as_u64()
        ),
        (Some("shop"), Some(2), Some(2))
    );
    assert_eq!(shop["waypoint"], "waypoint");
    let w = &a["waypoints"][0];
    assert_eq!(
        (w["name"].as_str(), w["revision"].as_str()),
        (Some("waypoint"), Some("default"))
    );
    assert_eq!(w["versions"], serde_json::json!([tag]));
    assert_eq!(
        (w["ready"].as_u64(), w["programmed"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(w["usedBy"], serde_json::json!(["Namespace/shop"]));
    let proxies = r["inventory"]["proxies"].as_array().unwrap();
    assert_eq!(
        proxies.len(),
        1,
        "only the sidecars of `legacy`: {proxies:?}"
    );
    assert_eq!(
        (
            proxies[0]["revision"].as_str(),
            proxies[0]["count"].as_u64()
        ),
        (Some("default"), Some(2))
    );

    let table = String::from_utf8(precheck(c, &[]).stdout).unwrap();
    for line in [
        "Ambient data plane",
        "Ambient namespaces",
        "Waypoints",
        "shop/waypoint   default",
    ] {
        assert!(table.contains(line), "{line:?} in\n{table}");
    }
    assert!(!table.contains("revision ``"), "{table}");
    let istioctl = istioctl_precheck(c);
    assert!(istioctl.contains(ISTIOCTL_NO_ISSUES), "{istioctl}");

    let file = c.dir().join("ambient-dump.yaml");
    let dump = precheck(c, &["--dump-snapshot", file.to_str().unwrap()]);
    assert_eq!(dump.status.code(), Some(0));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("kind: Node") && text.contains("kind: Gateway"),
        "the dump holds nodes and gateways"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        write_fixture(&text);
    }
    let offline = probe::json(
        &precheck(c, &["--snapshot", file.to_str().unwrap(), "-o", "json"]),
        0,
    );
    assert_eq!(offline["inventory"]["ambient"], r["inventory"]["ambient"]);
    assert!(not_ok(&offline).is_empty(), "{:#?}", not_ok(&offline));
}

/// istio-cni kept off a node by a node selector: its DaemonSet is "ready" on 2 of 2, but
/// kwok-node-2 has none — an error naming the node. istioctl finds no issue.
#[test]
fn istio_cni_kept_off_a_node_is_an_error() {
    let _g = lock();
    let c = mesh();
    let ds = ["-n", "istio-system", "daemonset", "istio-cni-node"];
    let _undo = Undo::new(c)
        .then(&[
            "patch",
            ds[2],
            "-n",
            ds[1],
            ds[3],
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/template/spec/nodeSelector/mesh-testbed~1cni"}]"#,
        ])
        .then(&[
            "label",
            "nodes",
            "kwok-node-0",
            "kwok-node-1",
            "mesh-testbed/cni-",
        ])
        .then_wait("istio-system", "daemonset/istio-cni-node");
    c.kubectl_out(&[
        "label",
        "nodes",
        "kwok-node-0",
        "kwok-node-1",
        "mesh-testbed/cni=on",
    ]);
    c.kubectl_out(&[
        "patch",
        ds[2],
        "-n",
        ds[1],
        ds[3],
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"mesh-testbed/cni":"on"}}}}}"#,
    ]);
    c.wait_rollout("istio-system", "daemonset/istio-cni-node")
        .unwrap();
    let r = probe::json(&precheck(c, &["-o", "json"]), 1);
    let f = by_id(&r, "ambient.daemonsets");
    let err = f
        .iter()
        .find(|f| f["result"] == "error")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("istio-cni-node does not run on 1 of 3 eligible node(s)"),
        "{err}"
    );
    assert_eq!(
        err["objects"],
        serde_json::json!(["DaemonSet/istio-system/istio-cni-node", "Node/kwok-node-2"])
    );
    assert_eq!(r["inventory"]["ambient"]["agents"][0]["ready"], 2);
    let istioctl = istioctl_precheck(c);
    assert!(istioctl.contains(ISTIOCTL_NO_ISSUES), "{istioctl}");
}

/// A node left tainted `cni.istio.io/not-ready` while istio-cni is ready everywhere: an
/// error naming the node, saying the taint was left behind. istioctl finds no issue.
#[test]
fn a_leftover_cni_taint_is_an_error() {
    let _g = lock();
    let c = mesh();
    let _undo = Undo::new(c).then(&["taint", "nodes", "kwok-node-1", "cni.istio.io/not-ready-"]);
    c.kubectl_out(&[
        "taint",
        "nodes",
        "kwok-node-1",
        "cni.istio.io/not-ready=true:NoSchedule",
    ]);
    let r = probe::json(&precheck(c, &["-o", "json"]), 1);
    let f = &by_id(&r, "ambient.cni-taint")[0];
    assert_eq!(f["result"], "error", "{f}");
    assert_eq!(f["objects"], serde_json::json!(["Node/kwok-node-1"]));
    assert!(
        f["message"].as_str().unwrap().contains("left behind"),
        "{f}"
    );
    let istioctl = istioctl_precheck(c);
    assert!(istioctl.contains(ISTIOCTL_NO_ISSUES), "{istioctl}");
}

/// A waypoint pinned with `istio.io/rev` to a revision that is not installed: no istiod
/// renders it (the test bed's emulated controller does nothing either) — an error naming the
/// Gateway and the installed revisions. istioctl finds no issue.
#[test]
fn a_waypoint_on_a_missing_revision_is_an_error() {
    let _g = lock();
    let c = mesh();
    let _undo = Undo::new(c).then(&["delete", "gateway", "-n", "shop", "pinned", "--wait=true"]);
    let rendered = ambient::waypoint(c, "shop", "pinned", Some("1-28-0")).unwrap();
    assert_eq!(rendered, None, "no installed revision renders it");
    let r = probe::json(&precheck(c, &["-o", "json"]), 1);
    let f = by_id(&r, "ambient.waypoint-revision");
    let err = f
        .iter()
        .find(|f| f["result"] == "error")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(err["objects"], serde_json::json!(["Gateway/shop/pinned"]));
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("`istio.io/rev=1-28-0` on its gateway names no installed revision or tag"),
        "{err}"
    );
    assert!(
        err["hint"]
            .as_str()
            .unwrap()
            .contains("installed revision (default)"),
        "{err}"
    );
    assert!(
        f.iter().any(
            |f| f["result"] == "ok" && f["message"].as_str().unwrap().contains("shop/waypoint")
        ),
        "{f:#?}"
    );
    let istioctl = istioctl_precheck(c);
    assert!(istioctl.contains(ISTIOCTL_NO_ISSUES), "{istioctl}");
}

/// A namespace labelled ambient and `istio-injection=enabled`: its pods really get sidecars
/// (the injector matches), so ambient never captures them — a warning (exit 1 only with
/// `--fail-on warning`). istioctl finds no issue.
#[test]
fn a_namespace_both_ambient_and_injected_is_a_warning() {
    let _g = lock();
    let c = mesh();
    let _undo = Undo::new(c).then(&["delete", "namespace", "both", "--wait=true"]);
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: both, labels: {istio.io/dataplane-mode: ambient, istio-injection: enabled}}\n").unwrap();
    scenario::sample_app(c, "both", 1).unwrap();
    let r = probe::json(&precheck(c, &["-o", "json"]), 0);
    let f = &by_id(&r, "ambient.mixed-namespaces")[0];
    assert_eq!(f["result"], "warning", "{f}");
    assert!(
        f["objects"][0].as_str().unwrap().starts_with(
            "Namespace/both (istio.io/dataplane-mode=ambient, istio-injection=enabled"
        ),
        "{f}"
    );
    let both = r["inventory"]["ambient"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "both")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            both["pods"].as_u64(),
            both["captured"].as_u64(),
            both["sidecars"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(
        precheck(c, &["--fail-on", "warning"]).status.code(),
        Some(1)
    );
    let istioctl = istioctl_precheck(c);
    assert!(istioctl.contains(ISTIOCTL_NO_ISSUES), "{istioctl}");
}

/// The issue's false refusal, precheck side: an in-place downgrade with istioctl's real
/// ambient manifest of the older release takes istio-cni and ztunnel down too, so they are
/// never newer than istiod — no order error. The same downgrade by version alone (istiod
/// only) would leave both newer than istiod: an error each.
#[test]
fn a_downgrade_judges_what_the_manifest_does_to_ztunnel_and_cni() {
    let _g = lock();
    let c = mesh();
    let (old, new) = (scenario::old_tag(), scenario::new_tag());
    let minor = |v: &str| v.split('.').nth(1).unwrap().parse::<u32>().unwrap();
    assert!(
        minor(old) < minor(new),
        "the test bed's releases are a minor apart: {old} {new}"
    );
    let file = c.dir().join("ambient-downgrade.yaml");
    std::fs::write(&file, ambient::ambient_manifest(c, old).unwrap()).unwrap();
    let r = probe::json(
        &precheck(c, &["-f", file.to_str().unwrap(), "-o", "json"]),
        0,
    );
    assert_eq!(r["target"]["mode"], "in-place");
    let order = by_id(&r, "skew.ambient-order");
    assert_eq!(order.len(), 2, "{order:#?}");
    for f in &order {
        assert_eq!(f["result"], "ok", "{f}");
        assert!(
            f["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{new} → {old}")),
            "{f}"
        );
    }
    assert_eq!(by_id(&r, "ambient.ztunnel-rollout")[0]["result"], "ok");
    let by_version = probe::json(&precheck(c, &["--target-version", old, "-o", "json"]), 1);
    let order = by_id(&by_version, "skew.ambient-order");
    assert_eq!(
        order
            .iter()
            .map(|f| f["result"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["error", "error"],
        "{order:#?}"
    );
}

/// A Service labelled `istio.io/use-waypoint` with a waypoint that does not exist: ztunnel
/// would send its traffic past any waypoint — a warning naming the Service and the Gateway.
/// istioctl finds no issue.
#[test]
fn a_service_using_a_missing_waypoint_is_a_warning() {
    let _g = lock();
    let c = mesh();
    let _undo = Undo::new(c).then(&[
        "label",
        "service",
        "-n",
        "shop",
        "web",
        "istio.io/use-waypoint-",
    ]);
    c.kubectl_out(&[
        "label",
        "service",
        "-n",
        "shop",
        "web",
        "istio.io/use-waypoint=gone",
    ]);
    let r = probe::json(&precheck(c, &["-o", "json"]), 0);
    let f = by_id(&r, "ambient.use-waypoint");
    let warning = f
        .iter()
        .find(|f| f["result"] == "warning")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(
        warning["objects"],
        serde_json::json!(["Service/shop/web", "Gateway/shop/gone"])
    );
    assert!(
        f.iter().any(|f| f["result"] == "ok"),
        "Namespace/shop still uses an existing waypoint: {f:#?}"
    );
    let istioctl = istioctl_precheck(c);
    assert!(istioctl.contains(ISTIOCTL_NO_ISSUES), "{istioctl}");
}
