//! The data plane and the whole canary journey with kubectl-mesh alone, on the real test bed.
//!
//! The test bed's istioctl is one build (1.31-dev); the old release (`ISTIO_OLD_TAG`) is rendered
//! from an older istio.io/istio commit's charts, the new one (`ISTIO_NEW_TAG`) from istioctl's
//! own (`tests/testbed/versions.env`). Injection goes through the harness's injector, the test
//! bed's stand-in for istiod's: it reads each revision's live injector ConfigMap, so a restarted
//! pod gets the proxy image of the revision its namespace selects.
//!
//! Each test changes control planes and namespaces, so each starts its own cluster; they run one
//! at a time.
#![allow(clippy::print_stderr)] // timings are reported for the record

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
    time::{Duration, Instant},
};

use mesh_testbed::{
    Cluster,
    probe::{self, text},
    run_with_stdin, scenario,
};
use serde_json::Value;

/// One cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A sibling subcommand binary, built if this test run did not build it.
fn sibling(name: &str) -> PathBuf {
    probe::sibling_binary(Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade")), name)
}

struct Run<'a> {
    c: &'a Cluster,
    home: &'a Path,
}

impl Run<'_> {
    fn run(&self, bin: &Path, args: &[&str]) -> Output {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(args)
            .arg("--kubeconfig")
            .arg(self.c.kubeconfig())
            .env("HOME", self.home)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let name = bin
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("kubectl-mesh-", "");
        eprintln!(
            "kubectl mesh {name} {} -> {:?} in {:.1?}",
            args.join(" "),
            out.status.code(),
            t.elapsed()
        );
        out
    }

    fn upgrade(&self, args: &[&str]) -> Output {
        self.run(Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade")), args)
    }

    fn tag(&self, args: &[&str]) -> Output {
        self.run(&sibling("kubectl-mesh-tag"), args)
    }

    fn uninstall(&self, args: &[&str]) -> Output {
        self.run(&sibling("kubectl-mesh-uninstall"), args)
    }

    /// `kubectl mesh precheck`: exit 0 (no error), and its JSON.
    fn precheck_clean(&self, step: &str) -> Value {
        let out = self.run(&sibling("kubectl-mesh-precheck"), &["-o", "json"]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{step}: precheck reports errors: {report:#}"
        );
        assert_eq!(report["summary"]["error"], 0, "{step}");
        let mut cmd = self.c.istioctl();
        cmd.args(["x", "precheck"]);
        let theirs = cmd.output().unwrap();
        assert_eq!(
            theirs.status.code(),
            Some(0),
            "{step}: istioctl x precheck: {}{}",
            text(&theirs.stdout),
            text(&theirs.stderr)
        );
        report
    }

    /// Both tools list the same tags: (tag, revision, namespaces) from `istioctl tag list` and
    /// `kubectl mesh tag list`.
    fn same_tags(&self, step: &str) -> Vec<(String, String, Vec<String>)> {
        let mut cmd = self.c.istioctl();
        cmd.args(["tag", "list", "-o", "json"]);
        let theirs: Value = serde_json::from_str(&run_with_stdin(cmd, "").unwrap()).unwrap();
        let rows = |v: &Value, tag: &str, rev: &str| -> Vec<(String, String, Vec<String>)> {
            let mut out: Vec<_> = v
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t[tag].as_str().is_some_and(|s| !s.is_empty()))
                .map(|t| {
                    let mut ns: Vec<String> = t["namespaces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|n| n.as_str().unwrap().to_owned())
                        .collect();
                    ns.sort();
                    (
                        t[tag].as_str().unwrap().to_owned(),
                        t[rev].as_str().unwrap().to_owned(),
                        ns,
                    )
                })
                .collect();
            out.sort();
            out
        };
        let ours_out = self.tag(&["list", "-o", "json"]);
        assert_eq!(
            ours_out.status.code(),
            Some(0),
            "{}",
            text(&ours_out.stderr)
        );
        let ours: Value = serde_json::from_slice(&ours_out.stdout).unwrap();
        let istioctl_rows = rows(&theirs, "tag", "revision");
        // Ours also lists namespaces labelled with a revision directly; compare tag rows only,
        // and istioctl counts only namespaces labelled with the tag itself.
        let mut ours_rows = rows(&ours["items"], "tag", "revision");
        for row in &mut ours_rows {
            row.2.retain(|ns| {
                namespace_label(self.c, ns, "istio.io/rev").as_deref() == Some(row.0.as_str())
            });
        }
        assert_eq!(
            ours_rows, istioctl_rows,
            "{step}: the two tools disagree on tags"
        );
        istioctl_rows
    }
}

fn namespace_label(c: &Cluster, ns: &str, key: &str) -> Option<String> {
    let v = get(c, &["namespace", ns]);
    v["metadata"]["labels"][key].as_str().map(str::to_owned)
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn get(c: &Cluster, args: &[&str]) -> Value {
    let mut a = vec!["get", "-o", "json"];
    a.extend_from_slice(args);
    serde_json::from_str(&c.kubectl_out(&a)).unwrap()
}

/// Waits (≤ 60 s) until `app` in `ns` has exactly `want`.
fn assert_proxies(c: &Cluster, ns: &str, app: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(i, r)| ((*i).to_owned(), (*r).to_owned()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = c.proxies(ns, &format!("app={app}"));
    while got != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        got = c.proxies(ns, &format!("app={app}"));
    }
    assert_eq!(got, want, "{ns}/{app}");
}

fn proxy(tag: &str) -> String {
    format!("docker.io/istio/proxyv2:{tag}")
}

/// A Deployment `name` in `ns`, `replicas` pods; `extra` is added to the pod spec, `labels` to
/// the pod template's labels.
fn workload(c: &Cluster, ns: &str, name: &str, labels: &str, extra: &str) {
    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}{labels}}}}}
    spec:
      containers: [{{name: app, image: docker.io/kong/httpbin:0.1.0}}]{extra}
"#
    ))
    .unwrap();
}

/// The restart annotation of a Deployment, if it was ever restarted.
fn restarted_at(c: &Cluster, ns: &str, name: &str) -> Option<String> {
    let d = get(c, &["deployment", "-n", ns, name]);
    d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .map(str::to_owned)
}

/// The default revision installed by real istioctl with the minimal profile (no gateway: the
/// journey's control planes are istiod only, as canaries usually are).
fn install_minimal_default(c: &Cluster, tag: &str) {
    let mut cmd = c.istioctl();
    cmd.args(["install", "-y"])
        .args(scenario::install_sets(c, "default", tag));
    cmd.args(["--set", "profile=minimal"]);
    run_with_stdin(cmd, "").unwrap();
}

/// The seed workflow, with kubectl-mesh alone: the old release installed with namespaces on
/// `istio-injection` → `upgrade --canary -f` (the new release) → `tag set canary` → `upgrade dataplane
/// -n test --to-revision canary` → `uninstall --revision default` refused while anything uses
/// it → `tag set prod` and `tag set default` → `upgrade dataplane -A` → `uninstall --revision
/// default` done. After every step `precheck` reports no error and istioctl lists the same tags.
#[test]
fn the_canary_journey_with_kubectl_mesh_alone() {
    let canary = scenario::canary_revision();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    let old = c.versions().get("ISTIO_OLD_TAG").unwrap().to_owned();
    let new = c.versions().get("ISTIO_NEW_TAG").unwrap().to_owned();
    install_minimal_default(&c, &old);
    let r = Run {
        c: &c,
        home: home.path(),
    };
    for ns in ["test", "shop"] {
        c.kubectl_out(&["create", "namespace", ns]);
        scenario::label_namespace(&c, ns, &[("istio-injection", "enabled")]).unwrap();
        scenario::sample_app(&c, ns, 2).unwrap();
    }
    workload(
        &c,
        "test",
        "legacy",
        ", sidecar.istio.io/inject: \"false\"",
        "",
    );
    c.wait_rollout("test", "deployment/legacy").unwrap();
    assert_proxies(
        &c,
        "test",
        "web",
        &[(&proxy(&old), "default"), (&proxy(&old), "default")],
    );
    r.precheck_clean("installed");
    r.same_tags("installed");

    // Canary beside the old control plane.
    let manifest = home.path().join(format!("istio-{canary}.yaml"));
    std::fs::write(&manifest, scenario::manifest(&c, canary, &new).unwrap()).unwrap();
    let m = manifest.to_str().unwrap();
    let refused = r.upgrade(&["-f", m, "-y"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a new revision needs --canary: {}",
        text(&refused.stderr)
    );
    let out = ok(&r.upgrade(&["--canary", "-f", m, "-y"]));
    assert!(
        out.contains(&format!("canary: new revision `{canary}` ({new})")),
        "{out}"
    );
    assert!(
        out.contains(&format!("kubectl mesh tag set canary --revision {canary}")),
        "{out}"
    );
    r.precheck_clean("canary installed");
    ok(&r.tag(&["set", "canary", "--revision", canary, "-y"]));
    r.precheck_clean("tag canary");
    r.same_tags("tag canary");

    // One namespace moves to the canary; its opted-out workload is left alone.
    let legacy_before = get(&c, &["pods", "-n", "test", "-l", "app=legacy"]);
    let out = ok(&r.upgrade(&["dataplane", "-n", "test", "--to-revision", "canary", "-y"]));
    assert!(out.contains("1 workload(s) restarted"), "{out}");
    assert_eq!(
        namespace_label(&c, "test", "istio.io/rev").as_deref(),
        Some("canary")
    );
    assert_eq!(namespace_label(&c, "test", "istio-injection"), None);
    assert_proxies(
        &c,
        "test",
        "web",
        &[(&proxy(&new), canary), (&proxy(&new), canary)],
    );
    assert_eq!(
        get(&c, &["pods", "-n", "test", "-l", "app=legacy"])["items"][0]["metadata"]["uid"],
        legacy_before["items"][0]["metadata"]["uid"],
        "the opted-out pod was not restarted"
    );
    assert_proxies(
        &c,
        "shop",
        "web",
        &[(&proxy(&old), "default"), (&proxy(&old), "default")],
    );
    r.precheck_clean("test moved");
    r.same_tags("test moved");

    // The old revision is still in use: refused, nothing changes.
    let objects_before = c.kubectl_out(&[
        "get",
        "deployments,mutatingwebhookconfigurations",
        "-A",
        "-o",
        "name",
    ]);
    let refused = r.uninstall(&["--revision", "default", "-y"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stdout).contains("namespace shop"),
        "{}",
        text(&refused.stdout)
    );
    assert_eq!(
        c.kubectl_out(&[
            "get",
            "deployments,mutatingwebhookconfigurations",
            "-A",
            "-o",
            "name"
        ]),
        objects_before
    );

    // Every other namespace follows through the tags.
    ok(&r.tag(&["set", "prod", "--revision", canary, "-y"]));
    ok(&r.tag(&["set", "default", "--revision", canary, "--overwrite", "-y"]));
    r.same_tags("default moved");
    let test_web = restarted_at(&c, "test", "web");
    let out = ok(&r.upgrade(&["dataplane", "-A", "-y"]));
    assert!(
        out.contains("1 workload(s) restarted"),
        "only shop/web is not current: {out}"
    );
    assert_proxies(
        &c,
        "shop",
        "web",
        &[(&proxy(&new), canary), (&proxy(&new), canary)],
    );
    assert_eq!(
        restarted_at(&c, "test", "web"),
        test_web,
        "test/web was current: not restarted again"
    );
    r.precheck_clean("data plane moved");

    // Nothing uses the old revision any more.
    let out = ok(&r.uninstall(&["--revision", "default", "-y"]));
    assert!(out.contains("✔ Uninstalled revision `default`"), "{out}");
    assert!(
        !c.kubectl_out(&["get", "deployments", "-n", "istio-system", "-o", "name"])
            .contains("deployment.apps/istiod\n")
    );
    r.precheck_clean("old revision uninstalled");
    let tags = r.same_tags("old revision uninstalled");
    assert!(
        tags.iter().any(|t| t.0 == "default" && t.1 == canary),
        "{tags:?}"
    );
    c.kubectl_out(&["rollout", "restart", "-n", "shop", "deployment/web"]);
    c.wait_rollout("shop", "deployment/web").unwrap();
    assert_proxies(
        &c,
        "shop",
        "web",
        &[(&proxy(&new), canary), (&proxy(&new), canary)],
    );
}

/// After an in-place upgrade, `dataplane -A` restarts exactly the workloads on the old proxy; a
/// workload that cannot become ready stops the run with a report (done, failed, not touched);
/// once it is fixed, a re-run completes without restarting the finished ones; `--dry-run`
/// changes nothing.
#[test]
fn dataplane_restarts_in_batches_stops_at_a_failure_and_resumes() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    let old = c.versions().get("ISTIO_OLD_TAG").unwrap().to_owned();
    let new = c.versions().get("ISTIO_NEW_TAG").unwrap().to_owned();
    install_minimal_default(&c, &old);
    let r = Run {
        c: &c,
        home: home.path(),
    };
    c.kubectl_out(&["create", "namespace", "apps"]);
    scenario::label_namespace(&c, "apps", &[("istio-injection", "enabled")]).unwrap();
    for name in ["a-first", "b-broken", "c-last"] {
        workload(&c, "apps", name, "", "");
        c.wait_rollout("apps", &format!("deployment/{name}"))
            .unwrap();
    }
    c.kubectl_out(&["create", "namespace", "plain"]);
    workload(&c, "plain", "nomesh", "", "");

    // In place to the new version (with the same minimal profile).
    let manifest = home.path().join("istio.yaml");
    let mut cmd = c.istioctl();
    cmd.args(["manifest", "generate"])
        .args(scenario::install_sets(&c, "default", &new));
    cmd.args(["--set", "profile=minimal"]);
    std::fs::write(&manifest, run_with_stdin(cmd, "").unwrap()).unwrap();
    let out = ok(&r.upgrade(&["-f", manifest.to_str().unwrap(), "-y"]));
    assert!(
        out.contains(&format!(
            "in-place upgrade of revision `default`: {old} → {new}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("apps        3      default {old} ×3")),
        "{out}"
    );

    // A dry run changes nothing.
    let before = get(&c, &["deployments", "-A"]);
    let json = ok(&r.upgrade(&["dataplane", "-A", "--dry-run", "-o", "json"]));
    let plan: Value = serde_json::from_str(&json).unwrap();
    let planned: Vec<&str> = plan["restart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned,
        ["a-first", "b-broken", "c-last"],
        "exactly the workloads on the old proxy"
    );
    assert_eq!(plan["withoutProxy"], 1, "{plan:#}");
    let after = get(&c, &["deployments", "-A"]);
    let rv = |v: &Value| -> BTreeMap<String, Value> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                    d["metadata"]["resourceVersion"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(rv(&after), rv(&before), "a dry run changed deployments");

    // b-broken cannot be scheduled once restarted: the run stops there.
    c.kubectl_out(&[
            "patch",
            "deployment",
            "-n",
            "apps",
            "b-broken",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/hostname":"no-such-node"}}}}}"#,
        ],
    );
    let stuck = r.upgrade(&["dataplane", "-A", "--batch", "1", "--timeout", "15s", "-y"]);
    let err = text(&stuck.stderr);
    assert_eq!(stuck.status.code(), Some(3), "{err}");
    assert!(err.contains("restarted: Deployment/apps/a-first"), "{err}");
    assert!(
        err.contains("failed (its batch did not become ready): Deployment/apps/b-broken"),
        "{err}"
    );
    assert!(err.contains("not touched: Deployment/apps/c-last"), "{err}");
    assert!(
        err.contains("0/3 nodes are available") || err.contains("not scheduled"),
        "{err}"
    );
    assert_proxies(&c, "apps", "a-first", &[(&proxy(&new), "default")]);
    assert_proxies(&c, "apps", "c-last", &[(&proxy(&old), "default")]);
    let first = restarted_at(&c, "apps", "a-first");
    assert!(first.is_some());

    // Fixed: the re-run finishes the rest without restarting a-first again.
    c.kubectl_out(&[
        "patch",
        "deployment",
        "-n",
        "apps",
        "b-broken",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]"#,
    ]);
    c.wait_rollout("apps", "deployment/b-broken").unwrap();
    let out = ok(&r.upgrade(&["dataplane", "-A", "--batch", "1", "-y"]));
    assert!(out.contains("restarted onto their new proxy"), "{out}");
    for name in ["a-first", "b-broken", "c-last"] {
        assert_proxies(&c, "apps", name, &[(&proxy(&new), "default")]);
    }
    assert_eq!(
        restarted_at(&c, "apps", "a-first"),
        first,
        "a-first was not restarted again"
    );
    let again = r.upgrade(&["dataplane", "-A", "-y"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("nothing to do"),
        "{}",
        text(&again.stderr)
    );
}
