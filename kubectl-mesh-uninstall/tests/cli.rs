//! The binary on `--snapshot` files with `--dry-run`: exit codes, human output and the JSON
//! report, without a cluster. The fixtures were captured from the test bed (see their header):
//! `canary-started.yaml` right after installing 1.29.6 and the canary 1-30-3, `canary-done.yaml`
//! after moving the `default` tag, the namespaces, the pods and the gateway to 1-30-3.

use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn on(snapshot: &str, args: &[&str]) -> Output {
    let path = fixture(snapshot);
    let mut all = vec!["--snapshot", path.as_str(), "--dry-run"];
    all.extend(args);
    run(&all)
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn report(out: &Output) -> Value {
    serde_json::from_str(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn names(r: &Value) -> Vec<String> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn in_use_revision_is_refused_with_the_commands_that_move_what_uses_it() {
    let out = on("canary-started.yaml", &["-r", "default"]);
    assert_eq!(code(&out), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "Uninstall revision `default` (Istio 1.29.6, installed by istioctl) from snapshot "
        ),
        "{stdout}"
    );
    assert!(stdout.contains("  × namespace demo: new pods get the proxy of revision `default` (through tag `default`)\n      fix: kubectl mesh tag set default --revision 1-30-3 --overwrite\n"), "{stdout}");
    assert!(
        stdout.contains("      fix: kubectl rollout restart -n demo deployment/web\n"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: revision `default` (Istio 1.29.6, installed by istioctl) is still in use (4 finding(s)): nothing was deleted\nhint: "), "{stderr}");
}

#[test]
fn json_report_of_a_refused_plan() {
    let out = on("canary-started.yaml", &["-r", "default", "-o", "json"]);
    assert_eq!(code(&out), Some(1));
    let r = report(&out);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/uninstall/v1");
    assert_eq!(
        (
            r["success"].as_bool(),
            r["refused"].as_bool(),
            r["dryRun"].as_bool()
        ),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(
        r["target"],
        serde_json::json!({"mode": "revision", "revision": "default"})
    );
    let kinds: Vec<&str> = r["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["namespace", "tag", "pods", "gateway"]);
    assert_eq!(
        r["steps"][0],
        serde_json::json!({
        "phase": "webhooks", "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration", "name": "istio-sidecar-injector", "owner": "revision default"})
    );
    assert!(names(&r).contains(&"Deployment/istio-ingressgateway".to_owned()));
}

#[test]
fn after_the_canary_the_plan_is_exactly_the_old_control_plane() {
    let out = on("canary-done.yaml", &["-r", "default", "-o", "json"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    assert_eq!(
        (
            r["success"].as_bool(),
            r["blockers"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    assert_eq!(
        names(&r),
        [
            "MutatingWebhookConfiguration/istio-sidecar-injector",
            "ValidatingWebhookConfiguration/istio-validator-istio-system",
            "HorizontalPodAutoscaler/istiod",
            "Deployment/istiod",
            "Service/istiod",
            "ConfigMap/istio",
            "ConfigMap/istio-sidecar-injector",
            "ConfigMap/values",
            "RoleBinding/istiod",
            "Role/istiod",
            "ServiceAccount/istiod",
            "ClusterRoleBinding/istio-reader-clusterrole-istio-system",
            "ClusterRoleBinding/istiod-clusterrole-istio-system",
            "ClusterRoleBinding/istiod-gateway-controller-istio-system",
            "ClusterRole/istio-reader-clusterrole-istio-system",
            "ClusterRole/istiod-clusterrole-istio-system",
            "ClusterRole/istiod-gateway-controller-istio-system",
        ]
    );
    assert_eq!(
        text(&out.stderr),
        "dry run against a snapshot: the plan was not checked by an API server; nothing was changed\n"
    );
}

#[test]
fn the_canary_in_use_is_refused_and_force_takes_its_tag_along() {
    let out = on("canary-done.yaml", &["-r", "1-30-3"]);
    assert_eq!(code(&out), Some(1));
    assert!(
        text(&out.stdout)
            .contains("fix: kubectl label namespace prod istio.io/rev=default --overwrite")
    );
    let forced = on(
        "canary-done.yaml",
        &["-r", "1-30-3", "--force", "-o", "json"],
    );
    assert_eq!(code(&forced), Some(0), "{}", text(&forced.stderr));
    let r = report(&forced);
    let n = names(&r);
    assert!(
        n.contains(&"MutatingWebhookConfiguration/istio-revision-tag-default".to_owned()),
        "{n:#?}"
    );
    assert!(
        n.contains(&"Service/istiod-revision-tag-default".to_owned()),
        "{n:#?}"
    );
    assert!(!n.iter().any(|x| x.starts_with("CustomResourceDefinition")));
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("--force deletes tag(s) `default`")
    );
}

#[test]
fn purge_plans_every_control_plane_but_crds_only_with_include_crds() {
    let out = on("canary-done.yaml", &["--purge", "--force", "-o", "json"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    let r = report(&out);
    let n = names(&r);
    for want in [
        "Deployment/istiod",
        "Deployment/istiod-1-30-3",
        "MutatingWebhookConfiguration/istio-revision-tag-default",
    ] {
        assert!(n.contains(&want.to_owned()), "{want}: {n:#?}");
    }
    assert!(!n.iter().any(|x| x.starts_with("CustomResourceDefinition")));
    // Every Istio CRD of the snapshot is listed, kept and not counted (a snapshot cannot count).
    let crds = r["crds"].as_array().unwrap();
    assert_eq!(crds.len(), 15, "{crds:#?}");
    for c in crds {
        assert!(c["name"].as_str().unwrap().ends_with(".istio.io"), "{c}");
        assert_eq!(c["deleted"], false, "{c}");
        assert!(c.get("resources").is_none(), "{c}");
    }
    let all = report(&on(
        "canary-done.yaml",
        &["--purge", "--include-crds", "--force", "-o", "json"],
    ));
    assert!(
        names(&all)
            .last()
            .unwrap()
            .starts_with("CustomResourceDefinition/")
    );
    assert!(
        all["warnings"][0]
            .as_str()
            .unwrap()
            .contains("every Istio resource in the cluster (not counted)")
    );
    let refused = on("canary-done.yaml", &["--purge"]);
    assert_eq!(code(&refused), Some(1));
}

#[test]
fn bad_input_is_a_one_line_usage_error() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["-r", "1-28-0"],
            "error: revision `1-28-0` does not exist\nhint: revisions in this cluster: 1-30-3, default; tags: default; see `kubectl mesh tag list`\n",
        ),
        (
            &["-r", "1.29.6"],
            "error: `1.29.6` is not a valid revision name\n",
        ),
        (
            &["-r", "1-30-3", "--snapshot", "x.yaml"],
            "error: --snapshot reads a file, so nothing can be uninstalled from it\nhint: add --dry-run to see the plan for that snapshot\n",
        ),
        (
            &[
                "-r",
                "default",
                "--dry-run",
                "--snapshot",
                "/nonexistent.yaml",
            ],
            "error: cannot read snapshot `/nonexistent.yaml`\n",
        ),
    ];
    for (args, want) in cases {
        let out = if args.contains(&"--snapshot") {
            run(args)
        } else {
            on("canary-done.yaml", args)
        };
        assert_eq!(code(&out), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).starts_with(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    for args in [
        &[][..],
        &["--purge", "-r", "default"],
        &["-r", "default", "--include-crds"],
    ] {
        assert_eq!(code(&run(args)), Some(2), "{args:?}");
    }
}

/// `canary-started.yaml` as a user's `kubectl get … -A -o json` without
/// ValidatingWebhookConfigurations: no declaration of what was read, one kind missing.
fn without_validating_webhooks(dir: &std::path::Path) -> String {
    let fixture = std::fs::read_to_string(fixture("canary-started.yaml")).unwrap();
    let text = mesh_testbed::dump::hand_made(&fixture, |i| {
        mesh_testbed::dump::kind(i) != "ValidatingWebhookConfiguration"
    });
    let path = dir.join("no-validating-webhooks.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// On a dump without ValidatingWebhookConfigurations the revision is still plainly in use by a
/// tag and a namespace: refused (exit 1) naming them, the missing kind shown as not judged —
/// never "could not complete" with a permission hint, since nothing is a permission problem.
/// Forced past the refusal, the incomplete plan is bad input (exit 2) that says how to complete
/// the dump.
#[test]
fn a_partial_dump_still_refuses_a_revision_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let snap = without_validating_webhooks(dir.path());
    let out = run(&["--snapshot", &snap, "--dry-run", "-r", "default"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("  × namespace demo: new pods get the proxy of revision `default` (through tag `default`)\n"), "{stdout}");
    assert!(
        stdout.contains("  × tag default: points at revision `default`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Not judged (the plan is incomplete without them):\n  ○ validatingwebhookconfigurations: the snapshot file has no validatingwebhookconfigurations"),
        "{stdout}"
    );
    assert!(
        stderr.starts_with(
            "error: revision `default` (Istio 1.29.6, installed by istioctl) is still in use ("
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: what else uses it is not known: validatingwebhookconfigurations could not be read"),
        "{stderr}"
    );
    for s in [&stdout, &stderr] {
        assert!(!s.contains("auth can-i"), "{s}");
        assert!(!s.contains("permission"), "{s}");
    }
    let r = report(&run(&[
        "--snapshot",
        &snap,
        "--dry-run",
        "-r",
        "default",
        "-o",
        "json",
    ]));
    assert_eq!(r["refused"], true);
    let subjects: Vec<&str> = r["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"namespace demo") && subjects.contains(&"tag default"),
        "{subjects:?}"
    );
    assert_eq!(r["unread"][0]["source"], "validating-webhooks", "{r:#}");
    assert_eq!(r["unread"][0]["cause"], "not-in-file", "{r:#}");

    // --force overrides the refusal, not the missing input.
    let forced = run(&["--snapshot", &snap, "--dry-run", "-r", "default", "--force"]);
    let stderr = text(&forced.stderr);
    assert_eq!(code(&forced), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read validatingwebhookconfigurations: the snapshot file has no validatingwebhookconfigurations"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: add them to the snapshot (`kubectl get validatingwebhookconfigurations -A -o yaml`), or write it with `kubectl mesh precheck --dump-snapshot`"),
        "{stderr}"
    );
    assert!(!stderr.contains("auth can-i"), "{stderr}");
}
