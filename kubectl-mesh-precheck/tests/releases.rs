//! The release-data checks through the binary, on snapshot files: end of life, known hazards,
//! retired image hosts, Gateway API minimums, changed defaults, the Kubernetes window, and
//! `--release-data` / `KUBECTL_MESH_RELEASE_DATA` (a newer file judges a newer Istio; a bad file
//! is one error naming its line, exit 2). "Today" is pinned with `KUBECTL_MESH_TODAY`.

use std::{
    path::Path,
    process::{Command, Output},
};

use mesh_common::releases::Releases;
use serde_json::Value;

const CANARY: &str = "tests/fixtures/canary-in-progress.json";
const HAZARDS: &str = "tests/fixtures/release-hazards.yaml";
const TODAY: &str = "2026-12-04";

fn builtin_data() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mesh-core/data/istio-releases.yaml"),
    )
    .unwrap()
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

fn precheck_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("KUBECTL_MESH_TODAY", TODAY)
        .env_remove("KUBECTL_MESH_RELEASE_DATA")
        .env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `precheck --snapshot SNAP -o json ARGS` → (exit code, report).
fn json_env(snap: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = vec![
        "--snapshot",
        snap,
        "--kube-version",
        "v1.34.4",
        "-o",
        "json",
    ];
    all.extend_from_slice(args);
    let out = precheck_env(&all, env);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn json(snap: &str, args: &[&str]) -> (i32, Value) {
    json_env(snap, args, &[])
}

/// Every finding of `id` (possibly none).
fn all_of<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|f| f["id"] == id)
        .collect()
}

/// The findings of `id`, which must exist.
fn findings<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    let all = all_of(report, id);
    assert!(!all.is_empty(), "no `{id}` finding in {report:#}");
    all
}

fn with_result<'a>(report: &'a Value, id: &str, result: &str) -> Vec<&'a Value> {
    findings(report, id)
        .into_iter()
        .filter(|f| f["result"] == result)
        .collect()
}

fn msg(f: &Value) -> &str {
    f["message"].as_str().unwrap()
}

#[test]
fn end_of_life_warns_with_the_date_and_follows_today() {
    let (_, r) = json(CANARY, &[]);
    let warned = with_result(&r, "release.end-of-life", "warning");
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert_eq!(
        msg(warned[0]),
        "revision `default` runs Istio 1.29.6: Istio 1.29 reached end of life on 2026-10-12 and gets no more fixes, security fixes included"
    );
    assert_eq!(
        with_result(&r, "release.end-of-life", "ok").len(),
        1,
        "1.30.3 is supported"
    );
    let (_, before) = json_env(CANARY, &[], &[("KUBECTL_MESH_TODAY", "2026-10-01")]);
    assert!(with_result(&before, "release.end-of-life", "warning").is_empty());
    let out = precheck_env(
        &["--snapshot", CANARY, "--kube-version", "v1.34.4"],
        &[("KUBECTL_MESH_TODAY", "04/12/2026")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error: KUBECTL_MESH_TODAY `04/12/2026` is not a date")
    );
}

/// The next minor after the built-in data's newest (1.32 as of this writing) and what the
/// built-in data says about it.
fn next_minor() -> (u64, String) {
    let data = Releases::builtin();
    let next = data.newest().minor + 1;
    let newest = data.newest().name();
    (next, newest)
}

/// The built-in file without its `not_included` section.
fn without_not_included(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if !line.is_empty() && !line.starts_with([' ', '#']) {
            skipping = line.starts_with("not_included:");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn an_unknown_target_says_which_file_to_update() {
    let (next, newest) = next_minor();
    let target = format!("1.{next}.0");
    let (_, r) = json(CANARY, &["--target-version", &target]);
    let f = findings(&r, "release.end-of-life")
        .into_iter()
        .find(|f| msg(f).starts_with("the target"))
        .unwrap();
    assert_eq!(f["result"], "warning");
    let knows = format!(
        "no support data for Istio 1.{next} (the built-in release data knows Istio 1.20 to {newest}"
    );
    assert!(msg(f).contains(&knows), "{f}");
    if let Some(n) = Releases::builtin()
        .not_included
        .iter()
        .find(|n| n.minor == next)
    {
        let why = n.reason.trim_end_matches('.');
        assert!(
            msg(f).contains(&format!("; {why})")),
            "the reason is shown: {f}"
        );
    }
    assert!(f["hint"].as_str().unwrap().contains("--release-data FILE"));
    let k = &findings(&r, "kubernetes.version")[0];
    assert_eq!(k["result"], "warning");
    assert!(
        msg(k).starts_with(&format!(
            "no support data for target Istio {target} (the built-in release data knows Istio 1.20 to {newest}"
        )),
        "{k}"
    );
}

/// The one-file change: a copy of the built-in data plus an entry for the next minor (1.32 as
/// of this writing), given with `--release-data` (and with the environment variable), makes
/// precheck judge a target of that minor — no new build.
#[test]
fn a_newer_file_judges_a_newer_istio_without_a_new_build() {
    let s = Scratch::new();
    let (next, _) = next_minor();
    let checked = Releases::builtin().checked;
    let entry = format!(
        r#"
  - minor: "1.{next}"
    released: {checked}
    kubernetes:
      supported: ["1.35", "1.39"]
      istioctl_minimum:
        - {{ from_patch: 0, minimum: "1.35" }}
    gateway_api:
      bundled:
        - {{ from_patch: 0, version: v1.6.0 }}
      served:
        - {{ version: v1beta1, kinds: [Gateway, GatewayClass, HTTPRoute, ReferenceGrant], missing: error, code: IST0156 }}
      minimum_bundle: []
    compatibility_profiles: ["1.{}"]
"#,
        next - 1
    );
    let text = format!("{}{entry}", without_not_included(&builtin_data()));
    let file = s.file("releases-next.yaml", &text);
    let target = format!("1.{next}.0");
    for (args, env) in [
        (
            vec![
                "--target-version",
                target.as_str(),
                "--release-data",
                file.as_str(),
            ],
            vec![],
        ),
        (
            vec!["--target-version", target.as_str()],
            vec![("KUBECTL_MESH_RELEASE_DATA", file.as_str())],
        ),
    ] {
        let (code, r) = json_env(CANARY, &args, &env);
        let k = &findings(&r, "kubernetes.version")[0];
        assert_eq!(k["result"], "error", "{k}");
        assert_eq!(
            msg(k),
            format!("Kubernetes v1.34.4 is older than 1.35, the minimum of target Istio {target}")
        );
        assert_eq!(code, 1);
        let eol = findings(&r, "release.end-of-life");
        let t = eol
            .iter()
            .find(|f| msg(f).starts_with("the target"))
            .unwrap();
        assert_eq!(t["result"], "ok", "{t}");
        assert_eq!(
            msg(t),
            format!(
                "the target Istio {target}: Istio 1.{next} is supported (end of life not announced)"
            )
        );
    }
    let out = precheck_env(&["--version", "--release-data", &file], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "release data: Istio 1.20 to 1.{next} (from `{file}`, checked {checked})"
        )),
        "{out:?}"
    );
}

#[test]
fn a_bad_file_is_one_error_naming_its_line() {
    let s = Scratch::new();
    let bad = builtin_data().replacen(
        "    end_of_life: 2025-09-30\n",
        "    end_of_life: 2024-09-30\n",
        1,
    );
    let line = bad[..bad.find("  - minor: \"1.25\"").unwrap()]
        .lines()
        .count()
        + 1;
    let file = s.file("bad.yaml", &bad);
    for env in [vec![], vec![("KUBECTL_MESH_RELEASE_DATA", file.as_str())]] {
        let args: Vec<&str> = if env.is_empty() {
            vec!["--snapshot", CANARY, "--release-data", &file]
        } else {
            vec!["--snapshot", CANARY]
        };
        let out = precheck_env(&args, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(out.stdout.is_empty());
        let first = err.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                "error: release data `{file}`, line {line}: release 1.25: end_of_life 2024-09-30 is not after released 2025-03-03"
            )
        );
        assert!(
            err.contains("hint: fix the file (format: docs/release-data.md)"),
            "{err}"
        );
    }
    let out = precheck_env(
        &[
            "--snapshot",
            CANARY,
            "--release-data",
            "/nonexistent/r.yaml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot read release data `/nonexistent/r.yaml`"),
        "{err}"
    );
    assert!(err.contains("hint: pass a release data file"), "{err}");
}

#[test]
fn known_hazards_name_the_pods_and_revision() {
    let (_, r) = json(HAZARDS, &[]);
    let f = with_result(&r, "release.known-hazards", "warning");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        msg(f[0]).starts_with(
            "`default` runs istiod 1.30.1: istiod 1.30.0 and 1.30.1 send listener config"
        ),
        "{}",
        f[0]
    );
    assert!(msg(f[0]).contains("https://github.com/istio/istio/pull/60486"));
    assert_eq!(
        f[0]["objects"],
        serde_json::json!(["Pod/shop/cart-7d4b9-a1 (proxy 1.29.1)"])
    );
    assert!(
        f[0]["hint"]
            .as_str()
            .unwrap()
            .ends_with("kubectl mesh upgrade dataplane -n shop")
    );
    let (_, fixed) = json(HAZARDS, &["--target-version", "1.30.2"]);
    assert_eq!(
        findings(&fixed, "release.known-hazards")[0]["result"],
        "ok",
        "1.30.2 carries the fix"
    );
    let (_, fine) = json(CANARY, &[]);
    assert_eq!(findings(&fine, "release.known-hazards")[0]["result"], "ok");
}

#[test]
fn retired_image_hosts_in_the_cluster_and_in_a_manifest() {
    let (_, r) = json(HAZARDS, &[]);
    let f = with_result(&r, "release.retired-image-hosts", "warning");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["objects"],
        serde_json::json!(["Deployment/istio-system/istiod", "Pod/shop/pay-5c8f2-b1"])
    );
    assert!(msg(f[0]).contains("ImagePullBackOff"), "{}", f[0]);
    assert!(
        f[0]["hint"]
            .as_str()
            .unwrap()
            .contains("--set hub=docker.io/istio")
    );
    let s = Scratch::new();
    let m = s.file("istio.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: istiod\n  namespace: istio-system\n  labels: {app: istiod}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: discovery, image: registry.istio.io/release/pilot:1.30.3}\n");
    let (_, r) = json(CANARY, &["-f", &m]);
    let f = with_result(&r, "release.retired-image-hosts", "warning");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        msg(f[0]).starts_with("the target manifest pulls 1 image(s) from registry.istio.io/"),
        "{}",
        f[0]
    );
}

#[test]
fn gateway_api_minimums_are_the_targets() {
    let (code, r) = json(HAZARDS, &["--target-version", "1.31.1"]);
    assert_eq!(code, 1);
    let errors = with_result(&r, "gateway-api.bundle-version", "error");
    let names: Vec<&str> = errors
        .iter()
        .map(|f| f["objects"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CustomResourceDefinition/grpcroutes.gateway.networking.k8s.io",
            "CustomResourceDefinition/tlsroutes.gateway.networking.k8s.io"
        ]
    );
    let v1 = with_result(&r, "gateway-api.crds", "warning");
    assert_eq!(v1.len(), 1, "IST0172 for GRPCRoute");
    assert!(msg(v1[0]).contains("(IST0172)"));
    let (_, old) = json(HAZARDS, &["--target-version", "1.21.6", "--canary"]);
    assert!(
        all_of(&old, "gateway-api.bundle-version").is_empty(),
        "1.21 filters no CRD"
    );
    let crds = findings(&old, "gateway-api.crds");
    assert_eq!(crds.len(), 1, "1.21 has no IST0172: {crds:#?}");
    assert_eq!(crds[0]["result"], "ok");
}

#[test]
fn changed_defaults_name_the_compatibility_version() {
    let s = Scratch::new();
    let old = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(HAZARDS),
    )
    .unwrap()
    .replace("gcr.io/istio-release/pilot:1.30.1", "docker.io/istio/pilot:1.21.6")
    .replace("items:\n", "items:\n  - apiVersion: v1\n    kind: Service\n    metadata: {name: zipkin, namespace: istio-system}\n");
    let snap = s.file("zipkin.yaml", &old);
    let (_, r) = json(&snap, &["--target-version", "1.22.8"]);
    let f = with_result(&r, "config.changed-defaults", "warning");
    assert_eq!(f.len(), 1, "{r:#}");
    assert_eq!(
        f[0]["objects"],
        serde_json::json!(["Service/istio-system/zipkin"])
    );
    assert_eq!(
        f[0]["hint"],
        "keep the old behaviour with --set compatibilityVersion=1.21 (Istio 1.22 ships it), or adapt the objects above"
    );
}

#[test]
fn kubernetes_window_comes_from_the_data() {
    let args = [
        "--snapshot",
        CANARY,
        "--kube-version",
        "v1.31.0",
        "--target-version",
        "1.31.1",
        "--canary",
        "-o",
        "json",
    ];
    let out = precheck_env(&args, &[]);
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let k = &findings(&r, "kubernetes.version")[0];
    assert_eq!(k["result"], "error");
    assert_eq!(
        msg(k),
        "Kubernetes v1.31.0 is older than 1.32, the minimum of target Istio 1.31.1"
    );
}

#[test]
fn version_says_what_the_data_knows() {
    let out = precheck_env(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "kubectl-mesh-precheck {}\nrelease data: {}\n",
            env!("CARGO_PKG_VERSION"),
            Releases::builtin().summary()
        )
    );
    let out = precheck_env(
        &["-V"],
        &[("KUBECTL_MESH_RELEASE_DATA", "/nonexistent/r.yaml")],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("release data: error: cannot read release data `/nonexistent/r.yaml`"),
        "{out:?}"
    );
}

/// Every finding id precheck emits on these snapshots has its section in docs/checks.md (the
/// `docs` link of each finding points at it).
#[test]
fn every_finding_id_is_documented() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/checks.md"))
            .unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for (snap, args) in [
        (CANARY, vec!["--target-version", "1.30.3", "--canary"]),
        (CANARY, vec!["--target-version", "1.30.3"]),
        (HAZARDS, vec!["--target-version", "1.31.1"]),
        (HAZARDS, vec![]),
    ] {
        let (_, r) = json(snap, &args);
        for c in r["categories"].as_array().unwrap() {
            for f in c["checks"].as_array().unwrap() {
                ids.insert(f["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(ids.contains("release.retired-image-hosts"), "{ids:?}");
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !doc.contains(&format!("\n### {}\n", id.replace('.', "-"))))
        .collect();
    assert!(missing.is_empty(), "not in docs/checks.md: {missing:?}");
}
