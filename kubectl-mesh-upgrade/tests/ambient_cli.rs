//! `upgrade dataplane` on snapshot files of a mixed sidecar + ambient mesh with two revisions,
//! without a cluster: `tests/fixtures/ambient-canary.yaml` (default revision with istio-cni,
//! ztunnel and waypoint `shop/waypoint`, the canary beside it; ambient namespace `shop`, sidecar
//! namespace `legacy`) and `ambient-canary-moved.yaml` (the same after `dataplane -n shop -n
//! legacy --to-revision <canary>`), both written by the e2e test `ambient` with
//! `UPDATE_GOLDEN=1`.

use std::{
    path::Path,
    process::{Command, Output},
};

use mesh_testbed::scenario;
use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// `--snapshot <fixture> dataplane --dry-run ARGS`.
fn dataplane(file: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"))
        .args(["--snapshot", &fixture(file), "dataplane", "--dry-run"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

const BEFORE: &str = "ambient-canary.yaml";

#[test]
fn the_waypoint_moves_with_its_namespace_and_the_ambient_namespace_needs_no_restart() {
    let canary = scenario::canary_revision();
    let args = ["-n", "shop", "-n", "legacy", "--to-revision", canary];
    let r = json(&dataplane(BEFORE, &[&args[..], &["-o", "json"]].concat()));
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/dataplane/v1");
    let w = r["waypoints"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        (w[0]["namespace"].as_str(), w[0]["name"].as_str()),
        (Some("shop"), Some("waypoint"))
    );
    assert_eq!(w[0]["labels"]["istio.io/rev"], canary);
    assert_eq!(
        w[0]["before"],
        format!("default {}", scenario::old_tag()).as_str()
    );
    assert_eq!(w[0]["expected"]["version"], scenario::new_tag());
    assert_eq!(
        r["ambientNamespaces"],
        serde_json::json!([{"namespace": "shop", "pods": 2, "captured": 2, "sidecars": 0, "waypoint": "waypoint"}])
    );
    let relabelled: Vec<&str> = r["relabel"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["namespace"].as_str())
        .collect();
    assert_eq!(relabelled, ["legacy"]);
    assert_eq!(
        r["stuck"],
        serde_json::json!([]),
        "the waypoint pod is no sidecar"
    );
    assert_eq!(r["optedOut"], 0);

    let out = dataplane(BEFORE, &args);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    for line in [
        "Waypoints (Gateway labelled istio.io/rev, re-rendered by the target's istiod, waited on)",
        "  shop/waypoint   namespace    default ",
        "Ambient namespaces",
        "  shop        2/2        waypoint   no restart: no sidecar, ztunnel carries its pods",
    ] {
        assert!(table.contains(line), "{line:?} in\n{table}");
    }
}

#[test]
fn named_waypoints_and_a_second_run() {
    let canary = scenario::canary_revision();
    let r = json(&dataplane(
        BEFORE,
        &[
            "--waypoint",
            "shop/waypoint",
            "--to-revision",
            canary,
            "-o",
            "json",
        ],
    ));
    assert_eq!(r["waypoints"][0]["by"], "named");
    assert_eq!(r["relabel"], serde_json::json!([]));
    assert_eq!(r["restart"], serde_json::json!([]));
    let after = json(&dataplane(
        "ambient-canary-moved.yaml",
        &[
            "-n",
            "shop",
            "-n",
            "legacy",
            "--to-revision",
            canary,
            "-o",
            "json",
        ],
    ));
    assert_eq!(after["waypoints"], serde_json::json!([]), "already moved");
    assert_eq!(after["restart"], serde_json::json!([]));
    assert_eq!(after["ambientNamespaces"][0]["namespace"], "shop");
}

#[test]
fn bad_waypoints_are_usage_errors() {
    let canary = scenario::canary_revision();
    for (args, error, hint) in [
        (
            vec!["--waypoint", "shop/nope", "--to-revision", canary],
            "error: no waypoint `shop/nope` (a Gateway of class `istio-waypoint`)",
            "hint: waypoints in this cluster: shop/waypoint",
        ),
        (
            vec!["--waypoint", "waypoint", "--to-revision", canary],
            "error: --waypoint `waypoint` is not NAMESPACE/NAME",
            "hint: name each waypoint as NAMESPACE/NAME",
        ),
        (
            vec!["--waypoint", "shop/waypoint"],
            "error: --waypoint needs --to-revision",
            "hint: add --to-revision REV|TAG",
        ),
    ] {
        let out = dataplane(BEFORE, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(error), "{error:?} in {stderr}");
        assert!(stderr.contains(hint), "{hint:?} in {stderr}");
        assert!(out.stdout.is_empty());
    }
}
