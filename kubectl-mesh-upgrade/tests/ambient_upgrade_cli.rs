//! `kubectl mesh upgrade` on files: ambient manifests and component manifests (istio-cni,
//! ztunnel or gateways alone) planned against a snapshot of a healthy ambient mesh (istiod,
//! istio-cni and ztunnel 1.30.3 on 3 nodes, dumped from the test bed: precheck's fixture).

use std::{path::Path, process::Command};

use serde_json::Value;

fn path(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(rel)
        .display()
        .to_string()
}

const SNAPSHOT: &str = "kubectl-mesh-precheck/tests/fixtures/ambient-mixed.yaml";

/// `--snapshot <ambient mesh> --dry-run -f MANIFEST -o OUTPUT`: exit code and stdout.
fn plan(manifest: &str, output: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"))
        .args(["--snapshot", &path(SNAPSHOT), "--dry-run", "-f", manifest])
        .args(["-o", output])
        .env("NO_COLOR", "1")
        .env("KUBECTL_MESH_TODAY", "2026-12-04")
        .env_remove("KUBECTL_MESH_RELEASE_DATA")
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn json(manifest: &str) -> (Option<i32>, Value) {
    let (code, stdout, stderr) = plan(manifest, "json");
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (code, v)
}

fn fixture(name: &str) -> String {
    path(&format!("mesh-core/fixtures/manifests/{name}"))
}

/// A copy of a fixture with its version replaced, in a temporary directory.
fn at_version(dir: &Path, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    assert!(text.contains(from), "{name} has no {from}");
    let p = dir.join(name);
    std::fs::write(&p, text.replace(from, to)).unwrap();
    p.display().to_string()
}

/// The positions of `order`'s phases in the report, each present and after the one before.
fn phases_in_order(r: &Value, order: &[&str]) -> Vec<usize> {
    let names: Vec<&str> = r["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases: {r}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let at: Vec<usize> = order
        .iter()
        .map(|n| {
            names
                .iter()
                .position(|p| p == n)
                .unwrap_or_else(|| panic!("{n}: {names:?}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{order:?} in {names:?}");
    at
}

fn finding<'a>(r: &'a Value, id: &str, result: &str) -> Vec<&'a Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id && f["result"] == result)
        .collect()
}

#[test]
fn istio_cni_alone_newer_than_istiod_is_refused_istiod_first() {
    let (code, r) = json(&fixture("component-istio-cni-1.31.1.yaml"));
    assert_eq!(code, Some(1), "{r:#}");
    assert_eq!(r["refused"], true);
    assert_eq!(r["target"]["components"], serde_json::json!(["istio-cni"]));
    assert_eq!(r["target"]["from"], "1.30.3");
    assert_eq!(r["target"]["version"], "1.31.1");
    let errors = finding(&r, "skew.ambient-order", "error");
    assert_eq!(errors.len(), 1, "{r:#}");
    let msg = errors[0]["message"].as_str().unwrap();
    assert!(msg.contains("istiod first"), "{msg}");
    let hint = errors[0]["hint"].as_str().unwrap();
    assert!(hint.contains("kubectl mesh upgrade -f"), "{hint}");
    // The table says the same, in words.
    let (code, table, _) = plan(&fixture("component-istio-cni-1.31.1.yaml"), "table");
    assert_eq!(code, Some(1));
    assert!(
        table.contains(
            "in-place upgrade of istio-cni (revision `default`; istiod stays): 1.30.3 → 1.31.1"
        ),
        "{table}"
    );
}

#[test]
fn ztunnel_alone_at_istiods_version_is_planned_in_its_own_phase_and_prunes_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let m = at_version(
        dir.path(),
        "component-ztunnel-1.31.1.yaml",
        "1.31.1",
        "1.30.3",
    );
    let (code, r) = json(&m);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["target"]["components"], serde_json::json!(["ztunnel"]));
    let objects = r["objects"].as_array().unwrap();
    assert!(!objects.is_empty());
    assert!(
        objects
            .iter()
            .all(|o| o["component"] == "Ztunnel" && o["action"] != "prune"),
        "{objects:#?}"
    );
    for p in r["phases"].as_array().unwrap() {
        for o in p["objects"].as_array().unwrap() {
            assert_ne!(o["name"], "istiod", "{p}");
        }
    }
}

#[test]
fn an_ambient_downgrade_is_planned_agents_first_and_the_upgrade_istiod_first() {
    // 1.30.3 → 1.29.6 with istioctl's ambient manifest: not refused (the false
    // "ztunnel runs 1.30.3" refusal), ztunnel and istio-cni before istiod.
    let (code, r) = json(&fixture("ambient-1.29.6.yaml"));
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["target"]["direction"], "downgrade");
    let at = phases_in_order(&r, &["ztunnel", "istio-cni", "control plane"]);
    let z = &r["phases"][at[0]];
    assert_eq!(
        z["rollout"],
        "one node at a time over 3 nodes (RollingUpdate maxUnavailable 0, maxSurge 1), waited until every node runs it"
    );
    // Upwards, from the same mesh: istiod, then istio-cni, then ztunnel.
    let dir = tempfile::tempdir().unwrap();
    let up = at_version(dir.path(), "ambient-1.30.3.yaml", "1.30.3", "1.31.1");
    let (code, r) = json(&up);
    assert_eq!(code, Some(0), "{r:#}");
    phases_in_order(&r, &["control plane", "istio-cni", "ztunnel"]);
    let (_, table, _) = plan(&up, "table");
    assert!(
        table.contains("Order (each phase waited before the next)"),
        "{table}"
    );
    assert!(table.contains("one node at a time over 3 nodes"), "{table}");
}
