//! `kubectl mesh upgrade` of an ambient mesh on the test bed, end to end: a fresh install, an
//! in-place upgrade failing at ztunnel and rolled back, the upgrade, an in-place downgrade, the
//! rollback of that downgrade and a manifest of ztunnel alone, one after the other on one cluster, each checked from the API server's side.
//!
//! Real: etcd, kube-apiserver, controller manager (the DaemonSet controller rolls istio-cni and
//! ztunnel over the nodes by their update strategies) and scheduler; istioctl's
//! `manifest generate --set profile=ambient` of the test bed's two releases (the old one on the
//! older chart generation, the new one on istioctl's own charts); kubectl-mesh; `istioctl x
//! precheck` after each step. The order is read from the requests the test bed's fault proxy
//! recorded between kubectl-mesh and the API server: which writes came when, and the waits'
//! reads between them. One fault is injected by the proxy: 503 on every write of ztunnel in
//! step 2a.
//! Emulated by the test bed: the three nodes and every pod on them (kwok: a pod is Ready once
//! scheduled, nothing runs, so "ztunnel rolled on every node" means the DaemonSet controller
//! replaced its pod on each node and kwok reported it ready).
#![allow(clippy::print_stderr)] // timings are reported for the record

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

use mesh_testbed::{
    Cluster, ambient,
    fault::{FaultProxy, RequestRecord, Rule, Upstream},
    probe::{expect, run_mesh, text},
    scenario,
};
use serde_json::Value;

const ISTIOD: &str = "/deployments/istiod";
const CNI: &str = "/daemonsets/istio-cni-node";
const ZTUNNEL: &str = "/daemonsets/ztunnel";

/// `kubectl mesh upgrade ARGS -y -o json` through the proxy: the report, exit 0 expected.
fn upgrade(kubeconfig: &Path, home: &Path, args: &[&str]) -> Value {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"));
    let mut all = args.to_vec();
    all.extend(["-y", "-o", "json"]);
    let out: Output = run_mesh(bin, kubeconfig, home, &all);
    let (stdout, stderr) = expect(&out, 0);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// Index of the first or last real (not dry-run) write to an object whose path ends in `what`.
fn write_at(records: &[RequestRecord], what: &str, last: bool) -> usize {
    let is = |r: &&RequestRecord| {
        matches!(r.method.as_str(), "PATCH" | "PUT" | "POST")
            && r.path.ends_with(what)
            && !r.query.as_deref().unwrap_or("").contains("dryRun")
    };
    let mut hits = records
        .iter()
        .enumerate()
        .filter(|(_, r)| is(r))
        .map(|(i, _)| i);
    let at = if last { hits.next_back() } else { hits.next() };
    at.unwrap_or_else(|| panic!("no write to {what} among {} requests", records.len()))
}

/// Reads of an object whose path ends in `what` strictly between two requests: the waits.
fn reads_between(records: &[RequestRecord], what: &str, from: usize, to: usize) -> usize {
    records[from + 1..to]
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(what))
        .count()
}

/// Each object of `order` is written and waited on before the next one is first written.
fn assert_order(records: &[RequestRecord], order: [&str; 3], step: &str) {
    for w in order.windows(2) {
        assert_before(records, w[0], w[1], step);
    }
}

/// `first` is written and waited on (read again) before `then` is first written.
fn assert_before(records: &[RequestRecord], first: &str, then: &str, step: &str) {
    let done = write_at(records, first, true);
    let next = write_at(records, then, false);
    assert!(
        done < next,
        "{step}: {then} written (request {next}) before {first}'s last write (request {done})"
    );
    assert!(
        reads_between(records, first, done, next) > 0,
        "{step}: {first} was not waited on before {then} was written"
    );
}

fn phase_names(r: &Value) -> Vec<&str> {
    r["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases: {r}"))
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect()
}

/// istio-cni and ztunnel run `tag` on every node.
fn agents_on_every_node(c: &Cluster, tag: &str, step: &str) {
    for ds in ["istio-cni-node", "ztunnel"] {
        let nodes =
            ambient::rolled_on_every_node(c, ds, tag).unwrap_or_else(|e| panic!("{step}: {e:#}"));
        assert_eq!(nodes.len(), 3, "{step}: {ds} on {nodes:?}");
    }
}

/// `istioctl x precheck` finds nothing wrong.
fn istioctl_precheck_clean(c: &Cluster, step: &str) {
    let out = c.istioctl().args(["x", "precheck"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{step}: istioctl x precheck: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn ambient_install_upgrade_downgrade_rollback_and_ztunnel_alone_run_in_istios_order() {
    let t0 = Instant::now();
    let c = Cluster::start().unwrap();
    let (old, new) = (scenario::old_tag(), scenario::new_tag());
    let files = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let old_m = write(
        files.path(),
        &format!("ambient-{old}.yaml"),
        &ambient::ambient_manifest(&c, old).unwrap(),
    );
    let new_m = write(
        files.path(),
        &format!("ambient-{new}.yaml"),
        &ambient::ambient_manifest(&c, new).unwrap(),
    );
    let (old_m, new_m) = (old_m.to_str().unwrap(), new_m.to_str().unwrap());
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kc = proxy
        .write_kubeconfig(files.path(), c.admin_token())
        .unwrap();
    eprintln!("cluster and manifests in {:.1?}", t0.elapsed());

    // 1. Fresh install of the old release: istiod rolled out, then istio-cni on every node,
    //    then ztunnel.
    proxy.clear_requests();
    let r = upgrade(&kc, home.path(), &["-f", old_m]);
    assert_eq!(r["target"]["mode"], "fresh", "{:#}", r["target"]);
    let rec = proxy.take_requests();
    assert_order(&rec, [ISTIOD, CNI, ZTUNNEL], "fresh install");
    agents_on_every_node(&c, old, "fresh install");
    istioctl_precheck_clean(&c, "fresh install");

    // 2a. The same upgrade with ztunnel's write refused (503 from the proxy, after its
    //     retries): the automatic rollback puts back istio-cni, then istiod — each waited
    //     before the next — and the mesh runs the old release everywhere again.
    proxy.set_rules(vec![
        Rule::delay(Duration::ZERO).query_contains("dryRun"),
        Rule::status(503).method("PATCH").path_contains(ZTUNNEL),
    ]);
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"));
    let (_, stderr) = expect(&run_mesh(bin, &kc, home.path(), &["-f", new_m, "-y"]), 3);
    assert!(stderr.contains("was rolled back"), "{stderr}");
    proxy.clear_rules();
    let rec = proxy.take_requests();
    let put = |what: &str| {
        rec.iter()
            .rposition(|r| r.method == "PUT" && r.path.ends_with(what))
            .unwrap_or_else(|| panic!("{what} not put back"))
    };
    let (cni_back, istiod_back) = (put(CNI), put(ISTIOD));
    assert!(cni_back < istiod_back, "istiod put back before istio-cni");
    assert!(
        reads_between(&rec, CNI, cni_back, istiod_back) > 0,
        "istio-cni was not waited on before istiod was put back"
    );
    agents_on_every_node(&c, old, "failed upgrade rolled back");

    // 2. In-place upgrade old → new: the same order, every DaemonSet rolled on every node.
    let r = upgrade(&kc, home.path(), &["-f", new_m]);
    assert_eq!(r["target"]["direction"], "upgrade", "{:#}", r["target"]);
    let phases = phase_names(&r);
    let at = |n: &str| {
        phases
            .iter()
            .position(|p| *p == n)
            .unwrap_or_else(|| panic!("{n}: {phases:?}"))
    };
    assert!(
        at("control plane") < at("istio-cni") && at("istio-cni") < at("ztunnel"),
        "{phases:?}"
    );
    let rec = proxy.take_requests();
    assert_order(&rec, [ISTIOD, CNI, ZTUNNEL], "upgrade");
    agents_on_every_node(&c, new, "upgrade");
    istioctl_precheck_clean(&c, "upgrade");

    // 3. In-place downgrade new → old with the old ambient manifest: not refused (the
    //    issue's "ztunnel runs 1.31.1" refusal), ztunnel and istio-cni go down before istiod.
    let r = upgrade(&kc, home.path(), &["-f", old_m]);
    assert_eq!(r["target"]["direction"], "downgrade", "{:#}", r["target"]);
    let order: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "skew.ambient-order")
        .collect();
    assert_eq!(order.len(), 2, "{order:#?}");
    assert!(order.iter().all(|f| f["result"] == "ok"), "{order:#?}");
    let rec = proxy.take_requests();
    assert_order(&rec, [ZTUNNEL, CNI, ISTIOD], "downgrade");
    agents_on_every_node(&c, old, "downgrade");
    istioctl_precheck_clean(&c, "downgrade");

    // 4. Rollback of the downgrade: restored in the reverse of its order (istiod, then
    //    istio-cni, then ztunnel), each waited on; back on the new release everywhere.
    let (stdout, _) = expect(&run_mesh(bin, &kc, home.path(), &["rollback", "-y"]), 0);
    assert!(stdout.contains("✔ rolled back"), "{stdout}");
    let rec = proxy.take_requests();
    assert_order(&rec, [ISTIOD, CNI, ZTUNNEL], "rollback");
    agents_on_every_node(&c, new, "rollback");
    istioctl_precheck_clean(&c, "rollback");

    // 5. ztunnel alone (istioctl's component manifest) of the old release beside istiod of
    //    the new one — one minor older is allowed: only ztunnel is written, nothing deleted.
    let z = write(
        files.path(),
        &format!("ztunnel-{old}.yaml"),
        &ambient::component_manifest(&c, old, "ztunnel").unwrap(),
    );
    let r = upgrade(&kc, home.path(), &["-f", z.to_str().unwrap()]);
    assert_eq!(
        r["target"]["components"],
        serde_json::json!(["ztunnel"]),
        "{:#}",
        r["target"]
    );
    let rec = proxy.take_requests();
    write_at(&rec, ZTUNNEL, false);
    let others: Vec<&RequestRecord> = rec
        .iter()
        .filter(|r| r.method != "GET" && !r.query.as_deref().unwrap_or("").contains("dryRun"))
        .filter(|r| r.method == "DELETE" || r.path.ends_with(ISTIOD) || r.path.ends_with(CNI))
        .collect();
    assert!(others.is_empty(), "ztunnel alone wrote {others:#?}");
    let nodes = ambient::rolled_on_every_node(&c, "ztunnel", old).unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    ambient::rolled_on_every_node(&c, "istio-cni-node", new).unwrap();
    istioctl_precheck_clean(&c, "ztunnel alone");
    eprintln!(
        "ambient install, upgrade, downgrade, rollback: {:.1?}",
        t0.elapsed()
    );
}
