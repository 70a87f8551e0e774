//! End-to-end tests of `kubectl mesh precheck` against the test bed's real control plane, with
//! Istio installed by the real istioctl (the old release as the default revision on its charts,
//! the new release as a canary on istioctl's; versions from `tests/testbed/versions.env`) and
//! pods injected by the harness's injector (the test bed's stand-in for istiod's).

use std::process::{Command, Output};

use mesh_testbed::{Cluster, scenario};
use serde_json::Value;

fn precheck(c: &Cluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kubectl-mesh-precheck")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn checks(r: &Value) -> Vec<&Value> {
    r["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .collect()
}

fn by_id<'a>(r: &'a Value, id: &str) -> Vec<&'a Value> {
    checks(r).into_iter().filter(|f| f["id"] == id).collect()
}

/// The shared cluster with both revisions, a `prod` tag on the canary, and injected apps.
fn mesh() -> (&'static Cluster, String, String) {
    let c = Cluster::shared();
    let canary = scenario::canary_revision();
    scenario::install_default(c).expect("istioctl install of the old release");
    scenario::install_canary(c, canary).expect("istioctl install of the canary");
    let old = c.unique_namespace("old").unwrap();
    scenario::label_namespace(c, &old, &[("istio-injection", "enabled")]).unwrap();
    scenario::sample_app(c, &old, 2).unwrap();
    let new = c.unique_namespace("new").unwrap();
    scenario::label_namespace(c, &new, &[("istio.io/rev", canary)]).unwrap();
    scenario::sample_app(c, &new, 1).unwrap();
    (c, old, new)
}

#[test]
fn inventory_of_a_real_istioctl_install() {
    let (c, old, new) = mesh();
    let (old_tag, new_tag) = (&c.releases().old.tag, &c.releases().new.tag);
    let canary = scenario::canary_revision();
    let out = precheck(c, &["-o", "json"]);
    let r = report(&out);
    assert_eq!(r["kubernetesVersion"], "v1.34.4");
    let cps = r["inventory"]["controlPlanes"].as_array().unwrap();
    let find = |rev: &str| {
        cps.iter()
            .find(|c| c["revision"] == rev)
            .unwrap_or_else(|| panic!("{rev} in {cps:?}"))
    };
    assert_eq!(find("default")["version"], old_tag.as_str());
    assert_eq!(find(canary)["version"], new_tag.as_str());
    assert_eq!(
        find("default")["install"]["method"],
        "istioctl",
        "owner labels of istioctl install"
    );
    let ns = |name: &str| {
        r["inventory"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(ns(&old)["injection"]["revision"], "default");
    assert_eq!(ns(&old)["proxies"], 2);
    assert_eq!(ns(&new)["injection"]["revision"], canary);
    assert_eq!(ns(&new)["proxies"], 1);
    let proxies = r["inventory"]["proxies"].as_array().unwrap();
    assert!(
        proxies
            .iter()
            .any(|p| p["revision"] == canary && p["version"] == new_tag.as_str()),
        "{proxies:?}"
    );
    assert!(
        proxies
            .iter()
            .any(|p| p["revision"] == "default" && p["version"] == old_tag.as_str()),
        "{proxies:?}"
    );
    assert_eq!(
        by_id(&r, "permissions.install")[0]["result"],
        "ok",
        "admin may install"
    );
    assert_eq!(
        by_id(&r, "kubernetes.version").len(),
        2,
        "one per control plane"
    );
    let data_plane = by_id(&r, "skew.data-plane");
    assert!(!data_plane.is_empty(), "the data-plane skew check ran");
    for f in data_plane {
        assert_eq!(f["result"], "ok", "{f}");
    }
}

#[test]
fn in_place_skew_and_canary_targets_are_judged() {
    let (c, _, _) = mesh();
    let (old, new) = (&c.releases().old.tag, &c.releases().new.tag);
    // Two minors above the default revision: too far in place, fine as a canary from both
    // installed control planes.
    let two_up = c.releases().old.minor_offset(2);
    let far = precheck(c, &["--target-version", &two_up, "-o", "json"]);
    assert_eq!(far.status.code(), Some(1));
    let r = report(&far);
    assert_eq!(r["target"]["mode"], "in-place");
    assert_eq!(
        by_id(&r, "skew.in-place")[0]["result"],
        "error",
        "{old} → {two_up} in place is two minors"
    );
    let canary = precheck(c, &["--target-version", &two_up, "--canary", "-o", "json"]);
    let r = report(&canary);
    assert_eq!(r["target"]["mode"], "canary");
    // One verdict per installed control plane, each ok: the list is not empty by accident.
    let judged: Vec<(&str, &str)> = by_id(&r, "skew.canary")
        .iter()
        .map(|f| {
            (
                f["result"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(judged.len(), 2, "{judged:#?}");
    for (rev, from) in [("default", old), (scenario::canary_revision(), new)] {
        let prefix = format!("`{rev}` {from} → {two_up} as a canary: ");
        assert!(
            judged
                .iter()
                .any(|(result, message)| *result == "ok" && message.starts_with(&prefix)),
            "canary may jump two minors: {prefix} in {judged:#?}"
        );
    }
}

#[test]
fn a_real_istioctl_manifest_is_a_target() {
    let (c, _, _) = mesh();
    let (canary, new_tag) = (scenario::canary_revision(), &c.releases().new.tag);
    let manifest = scenario::manifest(c, canary, new_tag).unwrap();
    let file = c.dir().join(format!("precheck-manifest-{canary}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    let out = precheck(c, &["-f", file.to_str().unwrap(), "-o", "json"]);
    let r = report(&out);
    assert_eq!(r["target"]["version"], new_tag.as_str());
    assert_eq!(r["target"]["revision"], canary);
    assert_eq!(r["target"]["mode"], "in-place");
    let perms = &by_id(&r, "permissions.install")[0];
    assert_eq!(perms["result"], "ok", "{perms}");
    assert!(
        perms["message"].as_str().unwrap().contains("allowed to"),
        "{perms}"
    );
}

#[test]
fn restricted_context_gives_permission_findings_not_a_crash() {
    let (c, _, _) = mesh();
    let out = precheck(c, &["--context", "restricted", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    let perm = &by_id(&r, "permissions.install")[0];
    assert_eq!(perm["result"], "error");
    assert!(
        perm["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "create customresourcedefinitions.apiextensions.k8s.io"),
        "{perm}"
    );
    let skipped: Vec<_> = checks(&r)
        .into_iter()
        .filter(|f| f["result"] == "skipped")
        .collect();
    assert!(!skipped.is_empty());
    assert!(
        skipped
            .iter()
            .all(|f| f["message"].as_str().unwrap().contains("forbidden")),
        "{skipped:?}"
    );
    assert_eq!(
        r["kubernetesVersion"], "v1.34.4",
        "discovery is allowed to everyone"
    );
}

#[test]
fn dumped_snapshot_reads_back_to_the_same_inventory() {
    let (c, _, _) = mesh();
    let file = c.dir().join("precheck-dump.yaml");
    let dump = precheck(c, &["--dump-snapshot", file.to_str().unwrap()]);
    assert_eq!(
        dump.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# kube-version: v1.34.4\n"));
    assert!(!text.contains("kind: Secret"));
    let live = report(&precheck(c, &["-o", "json"]));
    let offline = report(
        &Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
            .args(["--snapshot", file.to_str().unwrap(), "-o", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(offline["kubernetesVersion"], "v1.34.4");
    assert_eq!(
        offline["inventory"]["controlPlanes"],
        live["inventory"]["controlPlanes"]
    );
    assert_eq!(offline["inventory"]["tags"], live["inventory"]["tags"]);
}

#[test]
fn unreachable_api_server_is_exit_3_with_a_hint() {
    let c = Cluster::shared();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .args([
            "--kubeconfig",
            c.kubeconfig().to_str().unwrap(),
            "--request-timeout",
            "3s",
        ])
        .env("HTTPS_PROXY", "")
        .arg("--cluster")
        .arg("nowhere")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown --cluster is bad input"
    );
    let dir = c.dir().join("unreachable");
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- {name: x, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}\nusers:\n- {name: u, user: {token: not-shown-anywhere}}\ncontexts:\n- {name: x, context: {cluster: x, user: u}}\ncurrent-context: x\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .arg("--kubeconfig")
        .arg(&kc)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.starts_with("error: cannot reach the API server at https://127.0.0.1:1"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(
        !err.contains("not-shown-anywhere"),
        "tokens never appear in errors"
    );
}

#[test]
fn a_stale_injector_whose_service_is_gone_is_an_error() {
    // Its own cluster: a Fail-policy webhook with no service must not disturb other tests.
    let c = Cluster::start().expect("start a second cluster");
    let stale = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-sidecar-injector-1-28-0
  labels: {app: sidecar-injector, istio.io/rev: 1-28-0}
webhooks:
- name: rev.namespace.sidecar-injector.istio.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig:
    service: {name: istiod-1-28-0, namespace: istio-system, path: /inject, port: 443}
  namespaceSelector:
    matchExpressions:
    - {key: istio.io/rev, operator: In, values: [1-28-0]}
  rules:
  - {operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}
"#;
    c.apply(stale).unwrap();
    let ns = c.unique_namespace("blocked").unwrap();
    scenario::label_namespace(&c, &ns, &[("istio.io/rev", "1-28-0")]).unwrap();
    let out = precheck(&c, &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let f = by_id(&r, "webhooks.service");
    assert_eq!(f[0]["result"], "error", "{f:?}");
    assert_eq!(
        f[0]["objects"][0],
        "MutatingWebhookConfiguration/istio-sidecar-injector-1-28-0"
    );
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("istio-system/istiod-1-28-0, which does not exist"),
        "{}",
        f[0]
    );
    // And the failure is real: the API server rejects pods in that namespace.
    let pod = c
        .kubectl()
        .args(["run", "probe", "-n", &ns, "--image=nginx"])
        .output()
        .unwrap();
    assert!(
        !pod.status.success(),
        "the dead webhook blocks pod creation"
    );
}

#[test]
fn kubeconfig_lists_merge_first_wins_skip_missing_files_and_run_exec_plugins() {
    let c = Cluster::shared();
    let dir = c.dir().join("exec-auth");
    std::fs::create_dir_all(&dir).unwrap();
    let credential = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{}"}}}}"#,
        c.admin_token()
    );
    let script = dir.join("credential.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat <<'JSON'\n{credential}\nJSON\n"),
    )
    .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o755,
    );
    let exec_kc = dir.join("exec.yaml");
    std::fs::write(
        &exec_kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: tb\n  cluster: {{server: '{}', certificate-authority: '{}'}}\nusers:\n- name: exec-user\n  user:\n    exec: {{apiVersion: client.authentication.k8s.io/v1, command: sh, args: ['{}'], interactiveMode: Never}}\ncontexts:\n- {{name: exec, context: {{cluster: tb, user: exec-user}}}}\ncurrent-context: exec\n",
            c.server_url(),
            c.ca_path().display(),
            script.display()
        ),
    )
    .unwrap();
    let list = std::env::join_paths([
        dir.join("missing.yaml"),
        exec_kc,
        c.kubeconfig().to_path_buf(),
    ])
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .args(["-o", "json"])
        .env("KUBECONFIG", &list)
        .output()
        .unwrap();
    let r = report(&out);
    assert!(
        r["source"].as_str().unwrap().starts_with("context `exec`"),
        "first file's current-context wins: {}",
        r["source"]
    );
    assert_eq!(
        by_id(&r, "permissions.install")[0]["result"],
        "ok",
        "the exec plugin's admin token was used"
    );
    // The second file's contexts are merged in, so `--context restricted` resolves too.
    let restricted = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .args(["-o", "json", "--context", "restricted"])
        .env("KUBECONFIG", &list)
        .output()
        .unwrap();
    assert_eq!(
        by_id(&report(&restricted), "permissions.install")[0]["result"],
        "error"
    );
}
