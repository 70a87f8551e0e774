//! The cluster itself: start-up, Ready kwok nodes, the two identities, and the clear failure
//! when the binaries are not built.
#![allow(clippy::print_stderr)] // start-up time is reported for the record

use std::process::Command;

use mesh_testbed::{Cluster, run_with_stdin};

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let mut cmd = c.kubectl();
    cmd.args(args);
    run_with_stdin(cmd, "").unwrap()
}

#[test]
fn cluster_starts_with_three_ready_kwok_nodes() {
    let c = Cluster::shared();
    eprintln!("cluster started in {:.2?}", c.started_in());
    let out = kubectl(
        c,
        &[
            "get",
            "nodes",
            "-l",
            "type=kwok",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status};{.spec.taints}{"\n"}{end}"#,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in lines {
        assert!(
            l.contains("=True;") && l.ends_with(';'),
            "node not Ready or tainted: {l}"
        );
    }
    let kubelets = kubectl(
        c,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.nodeInfo.kubeletVersion}",
        ],
    );
    let want = format!("v{}", c.versions().get("K8S_VERSION").unwrap());
    assert_eq!(kubelets, [want.as_str(); 3].join(" "));
    let version = kubectl(c, &["version", "-o", "json"]);
    assert!(
        version.matches(&want).count() >= 2,
        "client and server should be {want}: {version}"
    );
}

#[test]
fn pods_become_running_and_ready() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("plain").unwrap();
    c.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d, namespace: {ns}}}\nspec:\n  replicas: 3\n  \
         selector: {{matchLabels: {{app: d}}}}\n  template:\n    metadata: {{labels: {{app: d}}}}\n    spec:\n      \
         containers: [{{name: c, image: busybox}}]\n"
    ))
    .unwrap();
    c.wait_rollout(&ns, "deployment/d").unwrap();
    let out = kubectl(
        c,
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    );
    assert_eq!(out, "Running Running Running");
}

#[test]
fn restricted_identity_is_denied_pods_but_may_review_its_access() {
    let c = Cluster::shared();
    let mut cmd = c.kubectl();
    cmd.args(["--context", "restricted", "get", "pods", "-n", "default"]);
    let err = run_with_stdin(cmd, "").unwrap_err().to_string();
    assert!(
        err.contains("Forbidden") && err.contains("\"restricted\""),
        "{err}"
    );
    let ssar = "apiVersion: authorization.k8s.io/v1\nkind: SelfSubjectAccessReview\nspec:\n  \
                resourceAttributes: {verb: list, resource: pods, namespace: default}\n";
    let mut cmd = c.kubectl();
    cmd.args([
        "--context",
        "restricted",
        "create",
        "--validate=false", // schema validation would list CRDs, which it may not
        "-f",
        "-",
        "-o",
        "jsonpath={.status.allowed}",
    ]);
    assert_eq!(run_with_stdin(cmd, ssar).unwrap(), "false");
    let mut cmd = c.kubectl();
    cmd.args(["create", "-f", "-", "-o", "jsonpath={.status.allowed}"]);
    assert_eq!(
        run_with_stdin(cmd, ssar).unwrap(),
        "true",
        "admin may list pods"
    );
}

#[test]
fn accessors_point_at_real_files_and_binaries() {
    let c = Cluster::shared();
    assert!(c.server_url().starts_with("https://127.0.0.1:"));
    assert!(
        std::fs::read_to_string(c.ca_path())
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(c.admin_token().len(), 32);
    for b in ["kubectl", "istioctl", "krew", "validate-krew-manifest"] {
        assert!(c.binary(b).is_file(), "{b}");
    }
    let kc = std::fs::read_to_string(c.kubeconfig()).unwrap();
    assert!(kc.contains("current-context: admin") && kc.contains("name: restricted"));
}

#[test]
fn missing_binaries_fail_naming_the_build_script() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mesh-testbed"))
        .args(["up", "--dir"])
        .arg(empty.path().join("state"))
        .env("KUBECTL_MESH_TESTBED_CACHE", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tests/testbed/build.sh"), "{err}");
}
