//! CLI tests of the precheck binary on snapshot files: exit codes, the JSON schema and the
//! table output (a golden file; regenerate with `UPDATE_GOLDEN=1 cargo test -p kubectl-mesh-precheck`).

use std::process::{Command, Output};

use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/canary-in-progress.json";

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

fn json(args: &[&str]) -> (i32, Value) {
    let mut all = vec![
        "--snapshot",
        FIXTURE,
        "--kube-version",
        "v1.34.4",
        "-o",
        "json",
    ];
    all.extend_from_slice(args);
    let out = precheck(&all);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), v)
}

fn finding<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|f| f["id"] == id)
        .collect()
}

#[test]
fn table_output_matches_the_golden_file() {
    let out = precheck(&[
        "--snapshot",
        FIXTURE,
        "--kube-version",
        "v1.34.4",
        "--target-version",
        "1.30.3",
        "--canary",
        "--revision",
        "1-30-4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a dangling namespace label is an error"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/canary-in-progress.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    assert_eq!(text, std::fs::read_to_string(golden).unwrap());
    assert!(
        out.stderr.is_empty(),
        "no progress off a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_report_has_the_documented_schema() {
    let (code, r) = json(&[]);
    assert_eq!(code, 1);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/precheck/v1");
    assert_eq!(r["success"], false);
    assert_eq!(r["kubernetesVersion"], "v1.34.4");
    assert!(r["target"].is_null());
    let cps = r["inventory"]["controlPlanes"].as_array().unwrap();
    assert_eq!(cps.len(), 2);
    assert_eq!(cps[1]["revision"], "default");
    assert_eq!(cps[1]["version"], "1.29.6");
    assert_eq!(cps[1]["install"]["method"], "istioctl");
    let demo = &r["inventory"]["namespaces"][0];
    assert_eq!(
        (
            demo["name"].as_str(),
            demo["injection"]["revision"].as_str()
        ),
        (Some("demo"), Some("default"))
    );
    assert_eq!(demo["injection"]["tag"], "default");
    let summary = &r["summary"];
    let total: u64 = ["ok", "warning", "error", "skipped"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap())
        .sum();
    let listed: usize = r["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["checks"].as_array().unwrap().len())
        .sum();
    assert_eq!(total as usize, listed);
    let perm = finding(&r, "permissions.install");
    assert_eq!(
        perm[0]["result"], "skipped",
        "a file cannot answer access reviews"
    );
    for f in r["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
    {
        assert!(
            f["docs"].as_str().unwrap().contains("docs/checks.md#"),
            "{f}"
        );
    }
}

#[test]
fn skew_beyond_one_minor_in_place_blocks_and_force_level_is_respected() {
    let (code, r) = json(&["--target-version", "1.31.2"]);
    assert_eq!(code, 1);
    let skew = finding(&r, "skew.in-place");
    assert_eq!(skew[0]["result"], "error");
    assert!(
        skew[0]["hint"].as_str().unwrap().contains("1.30"),
        "{}",
        skew[0]
    );
    assert_eq!(r["target"]["mode"], "in-place");
    let (_, ok) = json(&["--target-version", "1.30.3"]);
    assert_eq!(finding(&ok, "skew.in-place")[0]["result"], "ok");
}

#[test]
fn fail_on_warning_turns_warnings_into_exit_1() {
    let clean = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": {"istio-injection": "disabled", "istio.io/rev": "x"}}}
    ]});
    let dir = std::env::temp_dir().join(format!("precheck-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warn.json");
    std::fs::write(&file, clean.to_string()).unwrap();
    let f = file.to_str().unwrap();
    // Only warnings: no control plane, and both labels (disabled wins, so nothing dangles).
    let out = precheck(&["--snapshot", f, "--kube-version", "v1.34.4", "-o", "json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        finding(&r, "namespaces.conflicting-labels")[0]["result"],
        "warning"
    );
    assert_eq!(r["summary"]["error"], 0);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail by default"
    );
    let strict = precheck(&[
        "--snapshot",
        f,
        "--kube-version",
        "v1.34.4",
        "--fail-on",
        "warning",
    ]);
    assert_eq!(strict.status.code(), Some(1));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_is_one_line_with_a_hint_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--snapshot", FIXTURE, "--target-version", "one.thirty"],
            "is not an Istio version",
        ),
        (
            &["--snapshot", "tests/fixtures/missing.yaml"],
            "cannot read snapshot",
        ),
        (
            &["--snapshot", FIXTURE, "--kube-version", "latest"],
            "`latest` is not a Kubernetes version",
        ),
        (
            &["--snapshot", FIXTURE, "--canary"],
            "--canary and --revision need a target",
        ),
        (
            &["--snapshot", FIXTURE, "-f", "tests/fixtures/missing.yaml"],
            "cannot read manifest",
        ),
        (&["--output", "xml"], "invalid value"),
    ];
    for (args, want) in cases {
        let out = precheck(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = precheck(&["--snapshot", FIXTURE, "--target-version", "one.thirty"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().next().unwrap().starts_with("error: "), "{err}");
    assert!(err.lines().any(|l| l.starts_with("hint: ")), "{err}");
}

#[test]
fn a_manifest_sets_version_and_revision() {
    let dir = std::env::temp_dir().join(format!("precheck-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("istio.yaml");
    std::fs::write(&m, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: istiod-1-30-3\n  namespace: istio-system\n  labels: {app: istiod, istio.io/rev: 1-30-3}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: discovery, image: docker.io/istio/pilot:1.30.3}\n").unwrap();
    let (_, r) = json(&["-f", m.to_str().unwrap()]);
    assert_eq!(r["target"]["version"], "1.30.3");
    assert_eq!(r["target"]["revision"], "1-30-3");
    assert_eq!(
        r["target"]["mode"], "in-place",
        "revision 1-30-3 exists in the fixture"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn namespace_flag_scopes_namespace_findings_and_inventory() {
    let (_, all) = json(&[]);
    assert_eq!(
        finding(&all, "namespaces.dangling-revision")[0]["result"],
        "error",
        "legacy is dangling"
    );
    let (code, prod) = json(&["-n", "prod"]);
    assert_eq!(
        finding(&prod, "namespaces.dangling-revision")[0]["result"],
        "ok",
        "legacy is out of scope"
    );
    let names: Vec<_> = prod["inventory"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].clone())
        .collect();
    assert_eq!(names, ["prod"]);
    assert_eq!(
        prod["inventory"]["controlPlanes"].as_array().unwrap().len(),
        2,
        "control planes stay cluster-wide"
    );
    assert_eq!(
        finding(&prod, "namespaces.stale-pods")[0]["result"],
        "warning"
    );
    assert_eq!(code, 0, "only warnings left in prod");
    let out = precheck(&["--snapshot", FIXTURE, "-n", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("namespace `nope` does not exist"));
}

/// A user's dump without ValidatingWebhookConfigurations (the fixture made hand-made by
/// `mesh_testbed::dump`: no declaration of what was read), in which the default revision's
/// istiod Service is gone: its injector and the `default` tag are still reported (exit 1); only
/// the validating webhooks are not judged.
#[test]
fn a_dump_without_validating_webhooks_still_reports_a_dead_injector() {
    let fixture =
        std::fs::read_to_string(format!("{}/{FIXTURE}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let text = mesh_testbed::dump::hand_made(&fixture, |i| {
        let kind = mesh_testbed::dump::kind(i);
        let istiod_service = kind == "Service" && i["metadata"]["name"] == "istiod";
        kind != "ValidatingWebhookConfiguration" && !istiod_service
    });
    let dir = std::env::temp_dir().join(format!("precheck-cli-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("no-validating-webhooks.yaml");
    std::fs::write(&path, text).unwrap();
    let out = precheck(&["--snapshot", path.to_str().unwrap(), "-o", "json"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let found = finding(&report, "webhooks.service");
    let errors: Vec<&Value> = found
        .iter()
        .copied()
        .filter(|f| f["result"] == "error")
        .collect();
    assert!(!errors.is_empty(), "{found:#?}");
    for e in &errors {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("calls Service istio-system/istiod, which does not exist"),
            "{e}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| e["objects"][0] == "MutatingWebhookConfiguration/istio-revision-tag-default"),
        "{errors:#?}"
    );
    let skipped: Vec<&str> = found
        .iter()
        .filter(|f| f["result"] == "skipped")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 1, "{found:#?}");
    assert!(
        skipped[0].starts_with("validating webhooks not judged: cannot read validatingwebhookconfigurations: the snapshot file has no validatingwebhookconfigurations"),
        "{skipped:?}"
    );
}
