//! Upgrade's guardrails read the release data: on uninstall's `canary-started.yaml` snapshot
//! (default revision at 1.29.6, canary 1-30-3) with mesh-core's trimmed 1.30.3 manifest,
//! `--dry-run`, no cluster. "Today" is pinned with `KUBECTL_MESH_TODAY`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn path(rel: &str) -> String {
    workspace().join(rel).display().to_string()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let snap = path("kubectl-mesh-uninstall/tests/fixtures/canary-started.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"));
    cmd.args(["--snapshot", &snap, "--dry-run"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECTL_MESH_TODAY", "2026-12-04")
        .env_remove("KUBECTL_MESH_RELEASE_DATA")
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn findings(out: &Output, id: &str) -> Vec<Value> {
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let all: Vec<Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .cloned()
        .collect();
    assert!(!all.is_empty(), "no `{id}` in {r:#}");
    all
}

/// A scratch directory, removed when dropped.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

#[test]
fn guardrails_warn_about_end_of_life_and_retired_hosts_in_the_manifest() {
    let manifest = path("mesh-core/fixtures/manifests/default-1.30.3.yaml");
    let out = run(&["-f", &manifest, "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "warnings do not refuse");
    let eol = findings(&out, "release.end-of-life");
    let warned: Vec<&Value> = eol.iter().filter(|f| f["result"] == "warning").collect();
    assert_eq!(warned.len(), 1, "{eol:#?}");
    assert!(
        warned[0]["message"]
            .as_str()
            .unwrap()
            .contains("Istio 1.29 reached end of life on 2026-10-12"),
        "{}",
        warned[0]
    );
    let s = Scratch::new();
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("docker.io/istio/", "registry.istio.io/release/");
    let retired = s.file("istio-1.30.3.yaml", &text);
    let out = run(&["-f", &retired, "-o", "json"], &[]);
    let hosts = findings(&out, "release.retired-image-hosts");
    let f = hosts.iter().find(|f| f["result"] == "warning").unwrap();
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("the target manifest pulls 2 image(s) from registry.istio.io/"),
        "{f}"
    );
    assert_eq!(
        f["objects"],
        serde_json::json!([
            "registry.istio.io/release/pilot:1.30.3",
            "registry.istio.io/release/proxyv2:1.30.3"
        ])
    );
}

#[test]
fn a_bad_release_data_file_refuses_before_anything_is_read() {
    let s = Scratch::new();
    let bad = s.file(
        "r.yaml",
        "schema: kubectl-mesh.dev/istio-releases/v1\nchecked: soon\n",
    );
    let manifest = path("mesh-core/fixtures/manifests/default-1.30.3.yaml");
    for (args, env) in [
        (
            vec!["-f", manifest.as_str(), "--release-data", bad.as_str()],
            vec![],
        ),
        (
            vec!["-f", manifest.as_str()],
            vec![("KUBECTL_MESH_RELEASE_DATA", bad.as_str())],
        ),
    ] {
        let out = run(&args, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(out.stdout.is_empty());
        assert!(
            err.starts_with(&format!("error: release data `{bad}`, line ")),
            "{err}"
        );
        assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"))
        .args(["--version"])
        .env_remove("KUBECTL_MESH_RELEASE_DATA")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().nth(1),
        Some(
            format!(
                "release data: {}",
                mesh_common::releases::Releases::builtin().summary()
            )
            .as_str()
        )
    );
}
