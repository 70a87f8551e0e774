//! `kubectl mesh uninstall` against the real control-plane test bed. Uninstall changes
//! cluster-wide state, so every scenario starts its own cluster (`Cluster::start`) with Istio
//! installed by real istioctl; scenarios run one at a time to stay within two cores.
#![allow(clippy::print_stderr)] // timings are reported for the record

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Output},
    sync::Mutex,
    time::Instant,
};

use mesh_testbed::{
    Cluster,
    probe::{CONTROL_PLANE_KINDS, Uids, assert_same, expect, json, run_mesh, sibling_binary},
    run_with_stdin, scenario,
};
use serde_json::Value;

/// One scenario (one cluster) at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn mesh(c: &Cluster, home: &Path, args: &[&str]) -> Output {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall"))
        .args(args)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "kubectl mesh uninstall {} -> {:?} in {:.1?}",
        args.join(" "),
        out.status.code(),
        t.elapsed()
    );
    out
}

/// Every object of [`CONTROL_PLANE_KINDS`] as `Kind/namespace/name`.
fn objects(c: &Cluster) -> BTreeSet<String> {
    c.objects_of(CONTROL_PLANE_KINDS).into_keys().collect()
}

fn key(kind: &Value, ns: &Value, name: &Value) -> String {
    format!(
        "{}/{}/{}",
        kind.as_str().unwrap(),
        ns.as_str().unwrap_or(""),
        name.as_str().unwrap()
    )
}

/// The objects a JSON report plans to delete, as `Kind/namespace/name`.
fn planned(report: &Value) -> BTreeSet<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| key(&s["kind"], &s["namespace"], &s["name"]))
        .collect()
}

/// Where every webhook of every configuration sends requests (URL or `svc:ns/name`).
fn webhook_targets(c: &Cluster) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&c.kubectl_out(&[
        "get",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "-o",
        "json",
    ]))
    .unwrap();
    let mut out = Vec::new();
    for cfg in v["items"].as_array().unwrap() {
        let name = cfg["metadata"]["name"].as_str().unwrap().to_owned();
        for w in cfg["webhooks"].as_array().into_iter().flatten() {
            let cc = &w["clientConfig"];
            let target = match cc["url"].as_str() {
                Some(u) => u.to_owned(),
                None => format!(
                    "svc:{}/{}",
                    cc["service"]["namespace"].as_str().unwrap_or(""),
                    cc["service"]["name"].as_str().unwrap_or("")
                ),
            };
            out.push((name.clone(), target));
        }
    }
    out
}

/// No webhook may call the deleted default revision: neither its istiod Service nor the
/// harness URL that stands for it.
fn assert_no_webhook_calls_default(c: &Cluster) {
    let targets = webhook_targets(c);
    let bad: Vec<_> = targets
        .iter()
        .filter(|(_, t)| t.ends_with("/inject/rev/default") || t == "svc:istio-system/istiod")
        .collect();
    assert!(
        bad.is_empty(),
        "dangling webhooks: {bad:?} (all: {targets:?})"
    );
}

/// `istioctl tag list -o json` as (tag, revision).
fn istioctl_tags(c: &Cluster) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&c.istioctl_out(&["tag", "list", "-o", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"].as_str().unwrap_or("").to_owned(),
                t["revision"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn app(c: &Cluster, prefix: &str, label: (&str, &str)) -> String {
    let ns = c.unique_namespace(prefix).unwrap();
    scenario::label_namespace(c, &ns, &[label]).unwrap();
    scenario::sample_app(c, &ns, 1).unwrap();
    ns
}

/// Proxy images of the `web` pods of a namespace.
fn proxies(c: &Cluster, ns: &str) -> String {
    scenario::pod_images(c, ns, "app=web").unwrap()
}

/// Moves the ingress gateway to the canary the way the refusal says, with kubectl-mesh alone:
/// the canary's manifest (the new release on its charts) rendered with the `default` profile
/// (so it holds the gateway) applied by `kubectl mesh upgrade -f` — the canary is re-applied in
/// place and the gateway's objects (same names) now belong to it. Returns that command's
/// stdout. Its backup goes under `home`, not under the uninstall's.
fn move_gateway_to_canary(c: &Cluster, home: &Path) -> String {
    let canary = scenario::canary_revision();
    let tag = c.versions().get("ISTIO_NEW_TAG").unwrap().to_owned();
    let sets: Vec<String> = scenario::install_sets(c, canary, &tag)
        .into_iter()
        .map(|s| {
            if s == "profile=minimal" {
                "profile=default".to_owned()
            } else {
                s
            }
        })
        .collect();
    let mut cmd = c.istioctl();
    cmd.args(["manifest", "generate"]).args(&sets);
    let manifest = home.join("canary-with-gateway.yaml");
    std::fs::write(&manifest, run_with_stdin(cmd, "").unwrap()).unwrap();
    let upgrade = sibling_binary(
        Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall")),
        "kubectl-mesh-upgrade",
    );
    let args = ["-f", manifest.to_str().unwrap(), "-y"];
    expect(&run_mesh(&upgrade, c.kubeconfig(), home, &args), 0).0
}

/// A user allowed to read everything and delete webhooks and autoscalers — not Deployments.
fn user_who_cannot_delete_deployments(c: &Cluster) -> &'static str {
    c.apply(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: uninstaller}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: [get, list, watch]}
- {apiGroups: [admissionregistration.k8s.io], resources: [mutatingwebhookconfigurations, validatingwebhookconfigurations], verbs: [delete]}
- {apiGroups: [autoscaling], resources: [horizontalpodautoscalers], verbs: [delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: uninstaller}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: uninstaller}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: uninstaller}]
"#,
    )
    .unwrap();
    "uninstaller"
}

fn backups(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// The canary upgrade from a plain install of the old release to the new release's canary
/// revision (both installed by real istioctl, each on its own charts), ending with
/// `uninstall --revision default`:
/// 1. while namespaces, the `default` tag, pods and the gateway still use the old release it is
///    refused (exit 1) with the command that moves each, and not one object changes;
/// 2. after moving everything — the gateway as the refusal says, with `kubectl mesh upgrade -f`
///    of the canary's manifest holding it — it plans exactly the old control plane's objects;
/// 3. a user who may not delete Deployments is refused by the server-side dry run before the
///    first delete: exit 3, the refusal named, nothing changed, no backup written;
/// 4. run again it finishes: exactly the planned objects are gone, nothing of the canary or of
///    the base CRDs is touched, istioctl still sees the `default` tag on the canary, and new
///    pods are created and injected by the canary.
#[test]
fn canary_upgrade_ends_with_uninstalling_the_old_default_revision() {
    let canary = scenario::canary_revision();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    scenario::install_canary(&c, canary).unwrap();
    let enabled = app(&c, "enabled", ("istio-injection", "enabled"));
    let pinned = app(&c, "pinned", ("istio.io/rev", "default"));
    assert!(proxies(&c, &enabled).contains(&format!("proxyv2:{}", scenario::old_tag())));

    // 1. Refused while in use; nothing changes.
    let before = objects(&c);
    let (stdout, stderr) = expect(&mesh(&c, home.path(), &["-r", "default", "-y"]), 1);
    for needle in [
        format!(
            "namespace {enabled}: new pods get the proxy of revision `default` (through tag `default`)"
        ),
        format!("fix: kubectl mesh tag set default --revision {canary} --overwrite"),
        // `istio.io/rev=default` is served by the `default` tag's webhook, not the deactivated
        // legacy injector: moving the tag moves it too.
        format!(
            "namespace {pinned}: new pods get the proxy of revision `default` (through tag `default`)"
        ),
        format!("fix: kubectl rollout restart -n {enabled} deployment/web"),
        "gateway istio-system/istio-ingressgateway: installed with revision `default`".to_owned(),
        // kubectl-mesh's way to move it, not istioctl's (followed in step 2).
        format!("fix: kubectl mesh upgrade -f <revision {canary}'s manifest with this gateway"),
    ] {
        assert!(stdout.contains(&needle), "{needle}\nin:\n{stdout}");
    }
    assert!(
        stderr.contains("is still in use (6 finding(s)): nothing was deleted"),
        "{stderr}"
    );
    assert_eq!(
        objects(&c),
        before,
        "a refused uninstall changed the cluster"
    );
    assert!(backups(&home.path().join(".kube/mesh-backups")).is_empty());
    let refused = json(
        &mesh(
            &c,
            home.path(),
            &["-r", "default", "--dry-run", "-o", "json"],
        ),
        1,
    );
    assert_eq!(refused["refused"], true);

    // 2. Move everything to the canary: tag and namespaces with the real istioctl and kubectl,
    //    the gateway with `kubectl mesh upgrade` as the refusal says.
    c.istioctl_out(&["tag", "set", "default", "--revision", canary, "--overwrite"]);
    scenario::label_namespace(&c, &pinned, &[("istio.io/rev", canary)]).unwrap();
    for ns in [&enabled, &pinned] {
        c.kubectl_out(&["rollout", "restart", "-n", ns, "deployment/web"]);
        c.wait_rollout(ns, "deployment/web").unwrap();
    }
    let upgrade_home = tempfile::tempdir().unwrap();
    let moved = move_gateway_to_canary(&c, upgrade_home.path());
    assert!(
        moved.contains(&format!("in-place re-apply of revision `{canary}`")),
        "{moved}"
    );
    let gateway = c.kubectl_out(&[
        "get",
        "deployment",
        "-n",
        "istio-system",
        "istio-ingressgateway",
        "-o",
        "jsonpath={.metadata.labels.istio\\.io/rev}",
    ]);
    assert_eq!(gateway.trim(), canary, "the gateway moved in place");
    let plan = json(
        &mesh(
            &c,
            home.path(),
            &["-r", "default", "--dry-run", "-o", "json"],
        ),
        0,
    );
    assert_eq!(plan["blockers"], Value::Array(vec![]), "{plan:#}");
    let steps = plan["steps"].as_array().unwrap();
    assert!(
        steps.iter().all(|s| s["owner"] == "revision default"),
        "{plan:#}"
    );
    assert_eq!(steps[0]["kind"], "MutatingWebhookConfiguration");
    let expected = planned(&plan);
    assert!(
        expected.contains("Deployment/istio-system/istiod"),
        "{expected:#?}"
    );
    assert!(
        !expected
            .iter()
            .any(|o| o.contains(canary) || o.contains("tag") || o.contains("ingressgateway"))
    );
    let user = user_who_cannot_delete_deployments(&c);
    let moved = objects(&c);
    // Without a terminal and without --yes nobody can confirm: refused, nothing changes.
    let (_, stderr) = expect(&mesh(&c, home.path(), &["-r", "default"]), 1);
    assert!(
        stderr.contains("refusing to change the cluster without confirmation"),
        "{stderr}"
    );
    assert_eq!(objects(&c), moved);

    // 3. A delete fails midway: webhooks are gone first, so none dangles; exit 3 says so.
    let partial = home.path().join("partial");
    let out = mesh(
        &c,
        home.path(),
        &[
            "-r",
            "default",
            "-y",
            "--as",
            user,
            "--backup-dir",
            partial.to_str().unwrap(),
        ],
    );
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains(
            "in a dry run: the API server refused to delete Deployment/istio-system/istiod (403)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("hint: nothing was changed"), "{stderr}");
    assert!(
        backups(&partial).is_empty(),
        "a refused dry run writes no backup"
    );
    assert_eq!(objects(&c), moved, "a refused dry run changed the cluster");

    // 4. Run again: it finishes, and exactly the planned objects are gone.
    let (stdout, stderr) = expect(&mesh(&c, home.path(), &["-r", "default", "-y"]), 0);
    assert!(
        stdout.contains("✔ Uninstalled revision `default`"),
        "{stdout}"
    );
    assert!(stderr.contains("backup of"), "{stderr}");
    let files = backups(&home.path().join(".kube/mesh-backups"));
    assert_eq!(files.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files[0]), 0o600);
        assert_eq!(mode(files[0].parent().unwrap()), 0o700);
    }
    let backup = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        backup.contains("name: istiod") && backup.contains("kind: MutatingWebhookConfiguration")
    );
    let after = objects(&c);
    let gone: BTreeSet<String> = moved.difference(&after).cloned().collect();
    let appeared: BTreeSet<String> = after.difference(&moved).cloned().collect();
    assert_eq!(gone, expected, "deleted objects differ from the plan");
    assert!(appeared.is_empty(), "{appeared:#?}");
    assert!(
        after
            .iter()
            .filter(|o| o.starts_with("CustomResourceDefinition/"))
            .count()
            >= 10
    );
    assert_no_webhook_calls_default(&c);
    assert!(istioctl_tags(&c).contains(&("default".to_owned(), canary.to_owned())));
    let again = mesh(&c, home.path(), &["-r", "default", "--dry-run"]);
    let (_, stderr) = expect(&again, 2);
    assert!(
        stderr.contains("`default` is a tag, not a revision"),
        "{stderr}"
    );

    // New pods are created, and injected by the canary.
    c.kubectl_out(&["rollout", "restart", "-n", &enabled, "deployment/web"]);
    c.wait_rollout(&enabled, "deployment/web").unwrap();
    assert!(
        proxies(&c, &enabled).contains(&format!("proxyv2:{}", scenario::new_tag())),
        "{}",
        proxies(&c, &enabled)
    );
}

/// `--purge` removes every control plane, gateway and tag webhook but keeps the Istio CRDs and
/// every Istio resource unless `--include-crds`; it counts those resources first, and a
/// refused or dry run changes nothing.
#[test]
fn purge_keeps_the_crds_and_istio_resources_unless_asked() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    let ns = c.unique_namespace("shop").unwrap();
    c.apply(&format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  hosts: [web]\n  http: [{{route: [{{destination: {{host: web}}}}]}}]\n"
    ))
    .unwrap();
    c.istioctl_out(&["tag", "set", "stable", "--revision", "default"]);
    let before = objects(&c);

    let dry = json(
        &mesh(&c, home.path(), &["--purge", "--dry-run", "-o", "json"]),
        1,
    );
    let vs = dry["crds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "VirtualService")
        .unwrap();
    assert_eq!(
        (vs["resources"].as_u64(), vs["deleted"].as_bool()),
        (Some(1), Some(false))
    );
    assert!(
        dry["warnings"][0]
            .as_str()
            .unwrap()
            .contains("are kept; add --include-crds"),
        "{dry:#}"
    );
    assert_eq!(
        dry["blockers"][0]["subject"],
        "gateway istio-system/istio-ingressgateway"
    );
    let all = json(
        &mesh(
            &c,
            home.path(),
            &[
                "--purge",
                "--include-crds",
                "--force",
                "--dry-run",
                "-o",
                "json",
            ],
        ),
        0,
    );
    let warning = all["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("deletes the")
            && warning.contains("every Istio resource in the cluster (1): 1 VirtualService"),
        "{warning}"
    );
    assert_eq!(
        all["steps"].as_array().unwrap().last().unwrap()["kind"],
        "CustomResourceDefinition"
    );
    assert_eq!(objects(&c), before, "a dry run changed the cluster");

    expect(&mesh(&c, home.path(), &["--purge", "-y", "--force"]), 0);
    let after = objects(&c);
    let crds = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter()
            .filter(|o| o.starts_with("CustomResourceDefinition/"))
            .cloned()
            .collect()
    };
    assert_eq!(crds(&after), crds(&before));
    assert!(
        !after
            .iter()
            .any(|o| o.starts_with("Deployment/istio-system/")),
        "{after:#?}"
    );
    assert!(
        !after.iter().any(|o| o.contains("WebhookConfiguration/")),
        "{after:#?}"
    );
    assert!(after.contains("Namespace//istio-system"));
    assert_eq!(
        c.kubectl_out(&["get", "virtualservice", "web", "-n", &ns, "-o", "name"])
            .trim(),
        "virtualservice.networking.istio.io/web"
    );
    assert!(webhook_targets(&c).is_empty());
}

fn spawn_mesh(kubeconfig: &Path, home: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (≤ 60 s) until the proxy has read `n` requests matching `pred`.
fn wait_for_requests(
    proxy: &mesh_testbed::fault::FaultProxy,
    n: usize,
    pred: impl Fn(&mesh_testbed::fault::RequestRecord) -> bool,
) {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while proxy.count(&pred) < n {
        assert!(Instant::now() < deadline, "the request never came");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A DELETE of `path`. Deletes carry their dry-run flag in the body, which the proxy does not
/// read: the engine's dry run sends each delete once before the first change, so the real
/// delete is the second one.
fn delete_of(path: &str) -> impl Fn(&mesh_testbed::fault::RequestRecord) -> bool + use<> {
    let path = path.to_owned();
    move |r| r.method == "DELETE" && r.path.ends_with(&path)
}

/// Sends SIGINT to process `pid`, as Ctrl-C does.
fn sigint(pid: &str) {
    let sent = Command::new("kill").args(["-INT", pid]).status().unwrap();
    assert!(sent.success());
}

/// Runs the `kubectl mesh upgrade rollback BACKUP` that `stderr` names, straight to the cluster,
/// and checks that every object is as in `before` again.
fn rollback_as_told(
    c: &Cluster,
    home: &Path,
    stderr: &str,
    before: &std::collections::BTreeMap<String, Value>,
    what: &str,
) {
    let backup = stderr
        .split("kubectl mesh upgrade rollback ")
        .nth(1)
        .and_then(|t| t.split('`').next())
        .unwrap_or_else(|| panic!("no rollback command in: {stderr}"))
        .to_owned();
    let restore = Command::new(sibling_binary(
        Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall")),
        "kubectl-mesh-upgrade",
    ))
    .args(["rollback", &backup, "-y", "--kubeconfig"])
    .arg(c.kubeconfig())
    .env("HOME", home)
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap();
    expect(&restore, 0);
    assert_same(before, &c.state(Uids::Ignore), what);
}

/// The change engine under uninstall, on one cluster (each failed run leaves it as it was):
/// 1. 503s on a delete of the second phase (through the fault proxy): the webhooks deleted in the
///    first phase are restored, every object compared before and after is as before, exit 3;
/// 2. SIGINT while the second phase waits on the API server: rolled back the same way; a second
///    SIGINT during the rollback stops it and names the command that finishes it, which does —
///    also one that comes while the rollback is still reading what the change did;
/// 3. an object recreated with a new UID while the uninstall runs is left alone, and 429s with
///    Retry-After on a delete are waited out: the uninstall completes.
#[test]
fn failed_and_interrupted_uninstalls_roll_back_and_a_recreated_object_is_left_alone() {
    use mesh_testbed::fault::{FaultProxy, Rule, Upstream};
    let canary = scenario::canary_revision();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    scenario::install_canary(&c, canary).unwrap();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kubeconfig = proxy
        .write_kubeconfig(home.path(), c.admin_token())
        .unwrap();
    let deploy = &format!("/deployments/istiod-{canary}");
    // The first delete of a path is the engine's dry run: let it through.
    let dry = |path: &str| {
        Rule::delay(std::time::Duration::ZERO)
            .method("DELETE")
            .path_contains(path)
            .times(1)
    };
    let before = c.state(Uids::Ignore);

    // 1. 503s on the Deployment's delete: webhooks (phase 1) are gone by then.
    proxy.set_rules(vec![
        dry(deploy),
        Rule::status(503).method("DELETE").path_contains(deploy),
    ]);
    let out = spawn_mesh(&kubeconfig, home.path(), &["-r", canary, "-y"])
        .wait_with_output()
        .unwrap();
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains("was rolled back: the cluster is as before"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the objects as they were are in "),
        "{stderr}"
    );
    assert!(!stderr.contains(c.admin_token()), "no token in the output");
    assert_same(&before, &c.state(Uids::Ignore), "after a 503 mid-change");

    // 2. SIGINT while the Deployment's delete hangs.
    proxy.clear_requests();
    proxy.set_rules(vec![
        dry(deploy),
        Rule::hang().method("DELETE").path_contains(deploy).times(1),
    ]);
    let child = spawn_mesh(&kubeconfig, home.path(), &["-r", canary, "-y"]);
    wait_for_requests(&proxy, 2, delete_of(deploy));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = expect(&out, 3);
    assert!(stderr.contains("interrupted by Ctrl-C"), "{stderr}");
    assert!(stderr.contains("was rolled back"), "{stderr}");
    assert_same(&before, &c.state(Uids::Ignore), "after SIGINT");

    // 2b. A second Ctrl-C stops the rollback and says so; `kubectl mesh upgrade rollback` with
    //     the backup it names then restores everything.
    proxy.clear_requests();
    let mwcs: &'static str = "/mutatingwebhookconfigurations";
    proxy.set_rules(vec![
        dry(deploy),
        Rule::hang().method("DELETE").path_contains(deploy).times(1),
        Rule::hang().method("POST").path_contains(mwcs).times(1),
    ]);
    let child = spawn_mesh(&kubeconfig, home.path(), &["-r", canary, "-y"]);
    let pid = child.id().to_string();
    wait_for_requests(&proxy, 2, delete_of(deploy));
    sigint(&pid);
    wait_for_requests(&proxy, 1, |r| r.method == "POST" && r.path.ends_with(mwcs));
    sigint(&pid);
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains("the rollback was stopped by Ctrl-C"),
        "{stderr}"
    );
    rollback_as_told(
        &c,
        home.path(),
        &stderr,
        &before,
        "after a stopped rollback and `upgrade rollback`",
    );

    // 2c. The second SIGINT comes while the rollback is still reading what the change did
    //     (between the change's wait and the rollback's): it stops the rollback all the same,
    //     promptly, and says so.
    proxy.clear_requests();
    let get_deploy = |r: &mesh_testbed::fault::RequestRecord| {
        r.method == "GET" && r.path.ends_with(deploy.as_str())
    };
    proxy.set_rules(vec![
        dry(deploy),
        Rule::hang().method("DELETE").path_contains(deploy).times(1),
        // The backup reads the Deployment; the rollback's second read of it hangs.
        Rule::delay(std::time::Duration::ZERO)
            .method("GET")
            .path_contains(deploy)
            .times(1),
        Rule::hang().method("GET").path_contains(deploy).times(1),
    ]);
    let mut child = spawn_mesh(&kubeconfig, home.path(), &["-r", canary, "-y"]);
    let pid = child.id().to_string();
    wait_for_requests(&proxy, 2, delete_of(deploy));
    sigint(&pid);
    wait_for_requests(&proxy, 2, get_deploy);
    sigint(&pid);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the second SIGINT was lost: the process still waits on the hung read");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains("the rollback was stopped by Ctrl-C"),
        "{stderr}"
    );
    rollback_as_told(
        &c,
        home.path(),
        &stderr,
        &before,
        "after a rollback stopped before it began and `upgrade rollback`",
    );

    // 3. While the first webhook delete is held up, the canary's mesh ConfigMap is recreated
    //    (a new UID); the Service's delete gets two 429s with Retry-After.
    proxy.clear_requests();
    let mwc = &format!("mutatingwebhookconfigurations/istio-sidecar-injector-{canary}");
    let svc = &format!("/services/istiod-{canary}");
    proxy.set_rules(vec![
        dry(mwc),
        Rule::delay(std::time::Duration::from_secs(4))
            .method("DELETE")
            .path_contains(mwc)
            .times(1),
        dry(svc),
        Rule::status(429)
            .method("DELETE")
            .path_contains(svc)
            .times(2),
    ]);
    let child = spawn_mesh(&kubeconfig, home.path(), &["-r", canary, "-y"]);
    wait_for_requests(&proxy, 2, delete_of(mwc));
    c.kubectl_out(&[
        "delete",
        "configmap",
        "-n",
        "istio-system",
        &format!("istio-{canary}"),
        "--wait",
    ]);
    c.kubectl_out(&[
        "create",
        "configmap",
        "-n",
        "istio-system",
        &format!("istio-{canary}"),
        "--from-literal=owner=someone-else",
    ]);
    let out = child.wait_with_output().unwrap();
    let (stdout, _) = expect(&out, 0);
    assert!(
        stdout.contains(&format!("✔ Uninstalled revision `{canary}`")),
        "{stdout}"
    );
    let cm = c.kubectl_out(&[
        "get",
        "configmap",
        "-n",
        "istio-system",
        &format!("istio-{canary}"),
        "-o",
        "jsonpath={.data.owner}",
    ]);
    assert_eq!(cm, "someone-else", "the recreated ConfigMap is left alone");
    let after = objects(&c);
    assert!(!after.contains(&format!("Deployment/istio-system/istiod-{canary}")));
    assert!(
        !after
            .iter()
            .any(|o| o.contains(&format!("injector-{canary}")))
    );
    let svc_deletes: Vec<Option<u16>> = proxy
        .requests()
        .iter()
        .filter(|r| delete_of(svc)(r))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        svc_deletes,
        [Some(200), Some(429), Some(429), Some(200)],
        "the dry run, then two 429s waited out, then the delete"
    );
}

/// The Istio resources of namespace `ns` (VirtualServices, AuthorizationPolicies), as
/// `Kind/name` → the object without its server-set fields: what a user wrote, field by field.
fn istio_resources(c: &Cluster, ns: &str) -> std::collections::BTreeMap<String, Value> {
    let out = c.kubectl_out(&[
        "get",
        "virtualservices.networking.istio.io,authorizationpolicies.security.istio.io",
        "-n",
        ns,
        "-o",
        "json",
        "--ignore-not-found",
    ]);
    if out.trim().is_empty() {
        return std::collections::BTreeMap::new();
    }
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                mesh_testbed::probe::essence(o.clone(), Uids::Ignore),
            )
        })
        .collect()
}

/// `uninstall --purge --include-crds` keeps every Istio resource recoverable. Real: the
/// apiserver (whose CRD cleanup would delete a CRD's resources with it), istioctl's install, the
/// CRDs and the resources. Emulated: a 503 on one CRD's delete (the fault proxy).
/// 1. the plan counts the resources per kind and says they are backed up;
/// 2. a purge that fails at a CRD's delete is rolled back: the resources are back, field by
///    field, and every control-plane object as before;
/// 3. a completed purge is undone by `kubectl mesh upgrade rollback BACKUP` of its backup:
///    CRDs, control plane and resources all back.
#[test]
fn a_purge_with_crds_backs_up_the_istio_resources_and_rollback_brings_them_back() {
    use mesh_testbed::fault::{FaultProxy, Rule, Upstream};
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    let ns = c.unique_namespace("shop").unwrap();
    c.apply(&format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: {ns}, labels: {{team: shop}}, annotations: {{note: keep-me}}}}\nspec:\n  hosts: [web]\n  http: [{{timeout: 3s, route: [{{destination: {{host: web, port: {{number: 8080}}}}, weight: 100}}]}}]\n"
    ))
    .unwrap();
    c.apply(&format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: deny-admin, namespace: {ns}}}\nspec:\n  action: DENY\n  rules: [{{to: [{{operation: {{paths: [/admin]}}}}]}}]\n"
    ))
    .unwrap();
    let resources = istio_resources(&c, &ns);
    assert_eq!(
        resources.keys().collect::<Vec<_>>(),
        ["AuthorizationPolicy/deny-admin", "VirtualService/web"]
    );
    let before = c.state(Uids::Ignore);
    let purge = ["--purge", "--include-crds", "--force", "-y"];

    // 1. The plan.
    let dry = json(
        &mesh(
            &c,
            home.path(),
            &[
                "--purge",
                "--include-crds",
                "--force",
                "--dry-run",
                "-o",
                "json",
            ],
        ),
        0,
    );
    let count = |kind: &str| {
        dry["crds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .and_then(|c| c["resources"].as_u64())
    };
    assert_eq!(
        (count("VirtualService"), count("AuthorizationPolicy")),
        (Some(1), Some(1))
    );
    let warning = dry["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("1 AuthorizationPolicy") && warning.contains("backed up"),
        "{warning}"
    );

    // 2. A 503 on the VirtualService CRD's delete (its first DELETE is the dry run).
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kubeconfig = proxy
        .write_kubeconfig(home.path(), c.admin_token())
        .unwrap();
    let crd = "/customresourcedefinitions/virtualservices.networking.istio.io";
    proxy.set_rules(vec![
        Rule::delay(std::time::Duration::ZERO)
            .method("DELETE")
            .path_contains(crd)
            .times(1),
        Rule::status(503).method("DELETE").path_contains(crd),
    ]);
    let out = spawn_mesh(&kubeconfig, home.path(), &purge)
        .wait_with_output()
        .unwrap();
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains("was rolled back: the cluster is as before"),
        "{stderr}"
    );
    assert!(
        proxy.count(|r| r.method == "DELETE" && r.path.contains("/virtualservices/web")) >= 2,
        "the VirtualService was deleted (dry run, then for real) before the CRDs"
    );
    assert_eq!(istio_resources(&c, &ns), resources, "after a failed purge");
    assert_same(&before, &c.state(Uids::Ignore), "after a failed purge");

    // 3. A completed purge, then `upgrade rollback` of its backup.
    expect(&mesh(&c, home.path(), &purge), 0);
    assert!(
        c.kubectl_out(&["get", "crd", "-o", "name"])
            .lines()
            .all(|l| !l.contains("istio.io")),
        "the Istio CRDs, and with them their resources, are gone"
    );
    let backup = backups(&home.path().join(".kube/mesh-backups"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("uninstall-purge"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("the purge's backup");
    let restore = run_mesh(
        &sibling_binary(
            Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall")),
            "kubectl-mesh-upgrade",
        ),
        c.kubeconfig(),
        home.path(),
        &["rollback", backup.to_str().unwrap(), "-y"],
    );
    expect(&restore, 0);
    assert_eq!(
        istio_resources(&c, &ns),
        resources,
        "after upgrade rollback"
    );
    assert_same(&before, &c.state(Uids::Ignore), "after upgrade rollback");
}
