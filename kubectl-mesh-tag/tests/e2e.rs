//! `kubectl mesh tag` against the real control-plane test bed (one cluster for this binary):
//! the old release (default revision) and the new one (canary) installed by real istioctl,
//! injection through the harness's webhook, and real `istioctl tag` on the other side of every
//! interop check. Tests run in parallel on unique tags and namespaces; the one that moves the
//! shared `default` tag holds [`DEFAULT_TAG`].
#![allow(clippy::print_stderr)] // timings are reported for the record

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Output},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use mesh_testbed::{
    Cluster,
    probe::{Uids, essence, text},
    run_with_stdin, scenario,
};
use serde_json::Value;

/// Serialises tests that change the cluster-wide `default` tag.
static DEFAULT_TAG: Mutex<()> = Mutex::new(());

fn cluster() -> &'static Cluster {
    let canary = scenario::canary_revision();
    let c = Cluster::shared();
    scenario::install_default(c).unwrap();
    scenario::install_canary(c, canary).unwrap();
    c
}

/// A HOME for the binary, so backups land in a temporary directory.
fn home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn mesh(c: &Cluster, args: &[&str]) -> Output {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-tag"))
        .args(args)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .env("HOME", home())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    eprintln!(
        "kubectl mesh tag {} -> {:?} in {:.1?}",
        args.join(" "),
        out.status.code(),
        t.elapsed()
    );
    out
}

fn ok(c: &Cluster, args: &[&str]) -> String {
    let o = mesh(c, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}\nstdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// `istioctl tag list -o json` as (tag, revision, namespaces).
fn istioctl_tags(c: &Cluster) -> Vec<(String, String, Vec<String>)> {
    let out = c.istioctl_out(&["tag", "list", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let ns = t["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect();
            (
                t["tag"].as_str().unwrap().to_owned(),
                t["revision"].as_str().unwrap().to_owned(),
                ns,
            )
        })
        .collect()
}

fn get_json(c: &Cluster, args: &[&str]) -> Option<Value> {
    let mut cmd = c.kubectl();
    cmd.args(["get", "-o", "json", "--ignore-not-found"])
        .args(args);
    let out = run_with_stdin(cmd, "").unwrap();
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

/// A namespace labelled `key=value` running `web` with `replicas` pods.
fn app(c: &Cluster, prefix: &str, label: (&str, &str), replicas: u32) -> String {
    let ns = c.unique_namespace(prefix).unwrap();
    scenario::label_namespace(c, &ns, &[label]).unwrap();
    scenario::sample_app(c, &ns, replicas).unwrap();
    ns
}

/// Waits (≤ 60 s) until `ns` has exactly `n` `web` pods with proxy `tag` injected by `rev`.
fn assert_web(c: &Cluster, ns: &str, tag: &str, rev: &str, n: usize) {
    let want = vec![(format!("docker.io/istio/proxyv2:{tag}"), rev.to_owned()); n];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pods = c.proxies(ns, "app=web");
    while pods != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        pods = c.proxies(ns, "app=web");
    }
    assert_eq!(pods, want, "namespace {ns}");
}

fn restart(c: &Cluster, ns: &str) {
    c.kubectl_out(&["rollout", "restart", "-n", ns, "deployment/web"]);
    c.wait_rollout(ns, "deployment/web").unwrap();
}

fn resource_version(c: &Cluster, args: &[&str]) -> Option<String> {
    get_json(c, args).map(|v| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    })
}

/// The backup path the binary reported on stderr.
fn backup_path(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("backup of "))
        .unwrap_or_else(|| panic!("no backup line: {stderr}"));
    line.rsplit(" written to ").next().unwrap().to_owned()
}

#[test]
fn a_tag_we_set_is_listed_by_istioctl() {
    let canary = scenario::canary_revision();
    let c = cluster();
    let ns = c.unique_namespace("ours").unwrap();
    scenario::label_namespace(c, &ns, &[("istio.io/rev", "e2e-ours")]).unwrap();
    let out = ok(c, &["set", "e2e-ours", "--revision", canary, "-y"]);
    assert!(
        out.contains(&format!(
            "Create tag `e2e-ours` → `{canary}` ({})",
            scenario::new_tag()
        )),
        "{out}"
    );
    let tags = istioctl_tags(c);
    assert!(
        tags.contains(&("e2e-ours".into(), canary.into(), vec![ns.clone()])),
        "{tags:?}"
    );
    // And istiod's side of the contract: the tag injects the canary's proxy.
    scenario::sample_app(c, &ns, 1).unwrap();
    assert_web(c, &ns, scenario::new_tag(), canary, 1);
    let mwc = get_json(
        c,
        &[
            "mutatingwebhookconfiguration",
            "istio-revision-tag-e2e-ours",
        ],
    )
    .unwrap();
    let labels = mwc["metadata"]["labels"].as_object().unwrap();
    assert_eq!(labels["istio.io/tag"], "e2e-ours", "{labels:?}");
    assert!(
        labels.keys().all(|k| !k.contains("operator.istio.io")),
        "{labels:?}"
    );
}

/// istioctl's serializer writes the unset `targetPort` of a port as `0` (the API server then
/// defaults it to the port): the same Service.
fn without_zero_target_ports(spec: &Value) -> Value {
    let mut spec = spec.clone();
    for p in spec["ports"].as_array_mut().into_iter().flatten() {
        if p["targetPort"] == 0 {
            p.as_object_mut().unwrap().remove("targetPort");
        }
    }
    spec
}

/// Our `generate` and istioctl's render the same webhooks and Service for the same tag.
#[test]
fn generate_matches_istioctl_generate() {
    let canary = scenario::canary_revision();
    let _guard = DEFAULT_TAG.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    for tag in ["e2e-gen", "default"] {
        let theirs = c.istioctl_out(&["tag", "generate", tag, "--revision", canary, "--overwrite"]);
        let theirs: Vec<Value> = serde_saphyr::from_multiple(&theirs).unwrap();
        let ours: Value = serde_json::from_str(&ok(
            c,
            &["generate", tag, "--revision", canary, "-o", "json"],
        ))
        .unwrap();
        let ours = ours["items"].as_array().unwrap();
        let kinds = |docs: &[Value]| {
            docs.iter()
                .map(|d| d["kind"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert!(!ours.is_empty(), "tag {tag}: nothing generated");
        assert_eq!(kinds(ours), kinds(&theirs), "tag {tag}");
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(o["metadata"]["name"], t["metadata"]["name"]);
            for key in [
                "istio.io/tag",
                "istio.io/rev",
                "app",
                "app.kubernetes.io/name",
            ] {
                assert_eq!(
                    o["metadata"]["labels"][key], t["metadata"]["labels"][key],
                    "{key} of {}",
                    o["metadata"]["name"]
                );
            }
            match o["kind"].as_str().unwrap() {
                "Service" => assert_eq!(
                    o["spec"],
                    without_zero_target_ports(&t["spec"]),
                    "tag {tag}"
                ),
                _ => assert_eq!(o["webhooks"], t["webhooks"], "tag {tag}"),
            }
        }
    }
}

#[test]
fn a_tag_istioctl_set_is_listed_moved_and_removed_by_us() {
    let canary = scenario::canary_revision();
    let c = cluster();
    c.istioctl_out(&["tag", "set", "e2e-theirs", "--revision", "default", "-y"]);
    let ns = app(c, "theirs", ("istio.io/rev", "e2e-theirs"), 1);
    assert_web(c, &ns, scenario::old_tag(), "default", 1);
    let list: Value = serde_json::from_str(&ok(c, &["list", "-o", "json"])).unwrap();
    let row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tag"] == "e2e-theirs")
        .unwrap()
        .clone();
    assert_eq!(row["revision"], "default");
    assert_eq!(row["revisionVersion"], scenario::old_tag());
    assert_eq!(row["namespaces"], serde_json::json!([ns]));
    let moved: Value = serde_json::from_str(&ok(
        c,
        &[
            "set",
            "e2e-theirs",
            "--revision",
            canary,
            "--overwrite",
            "-y",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(moved["applied"], true);
    assert_eq!(moved["plan"]["previousRevision"], "default");
    assert_eq!(moved["plan"]["namespaces"][0]["namespace"], ns.as_str());
    assert_eq!(moved["plan"]["namespaces"][0]["pods"], 1);
    let tags = istioctl_tags(c);
    assert!(
        tags.contains(&("e2e-theirs".into(), canary.into(), vec![ns.clone()])),
        "{tags:?}"
    );
    restart(c, &ns);
    assert_web(c, &ns, scenario::new_tag(), canary, 1);
    ok(c, &["remove", "e2e-theirs", "-y"]);
    let after = istioctl_tags(c);
    // istioctl still lists the revisions (so the list is not empty by accident), not the tag.
    assert!(after.iter().any(|t| t.1 == canary), "{after:?}");
    assert!(after.iter().all(|t| t.0 != "e2e-theirs"), "{after:?}");
    assert!(
        get_json(
            c,
            &[
                "mutatingwebhookconfiguration",
                "istio-revision-tag-e2e-theirs"
            ]
        )
        .is_none()
    );
    assert!(
        get_json(
            c,
            &[
                "service",
                "-n",
                "istio-system",
                "istiod-revision-tag-e2e-theirs"
            ]
        )
        .is_none()
    );
}

#[test]
fn moving_prod_to_the_canary_moves_its_namespaces_on_restart() {
    let canary = scenario::canary_revision();
    let c = cluster();
    ok(c, &["set", "prod", "--revision", "default", "-y"]);
    let ns = app(c, "prod", ("istio.io/rev", "prod"), 2);
    assert_web(c, &ns, scenario::old_tag(), "default", 2);
    let t = Instant::now();
    let o = mesh(
        c,
        &["set", "prod", "--revision", canary, "--overwrite", "-y"],
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    eprintln!("moving prod took {:.1?}", t.elapsed());
    assert!(
        out.starts_with(&format!(
            "Move tag `prod` from `default` ({}) to `{canary}` ({})",
            scenario::old_tag(),
            scenario::new_tag()
        )),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with(&ns))
        .unwrap_or_else(|| panic!("{ns} not in the blast radius:\n{out}"));
    assert!(
        row.contains("istio.io/rev=prod")
            && row.contains(&format!("2      {} ×2", scenario::old_tag())),
        "{row}"
    );
    assert!(
        out.contains(&format!("kubectl rollout restart deployment -n {ns}")),
        "{out}"
    );
    // The backup holds the webhook as it was (pointing at `default`), mode 0600.
    let path = backup_path(&err);
    let backup = std::fs::read_to_string(&path).unwrap();
    assert!(
        backup.contains("name: istio-revision-tag-prod") && backup.contains("inject/rev/default"),
        "{backup}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_web(c, &ns, scenario::old_tag(), "default", 2); // nothing moves before a restart
    restart(c, &ns);
    assert_web(c, &ns, scenario::new_tag(), canary, 2);
}

#[test]
fn removing_a_tag_in_use_without_yes_changes_nothing() {
    let canary = scenario::canary_revision();
    let c = cluster();
    ok(c, &["set", "e2e-busy", "--revision", canary, "-y"]);
    let ns = c.unique_namespace("busy").unwrap();
    scenario::label_namespace(c, &ns, &[("istio.io/rev", "e2e-busy")]).unwrap();
    let mwc = [
        "mutatingwebhookconfiguration",
        "istio-revision-tag-e2e-busy",
    ];
    let svc = [
        "service",
        "-n",
        "istio-system",
        "istiod-revision-tag-e2e-busy",
    ];
    let before = (resource_version(c, &mwc), resource_version(c, &svc));
    assert!(before.0.is_some() && before.1.is_some());
    let o = mesh(c, &["remove", "e2e-busy"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "error: refusing to remove tag `e2e-busy` while 1 namespace(s) use it ({ns})"
        )),
        "{err}"
    );
    assert!(err.contains("hint: relabel them"), "{err}");
    assert!(
        !err.contains("backup of"),
        "nothing to back up when nothing changes: {err}"
    );
    assert_eq!(
        (resource_version(c, &mwc), resource_version(c, &svc)),
        before
    );
    // With --yes it goes, and the namespace is left with nothing injecting it.
    let out = ok(c, &["remove", "e2e-busy", "-y"]);
    assert!(out.contains("Tag `e2e-busy` removed."), "{out}");
    assert_eq!(
        (resource_version(c, &mwc), resource_version(c, &svc)),
        (None, None)
    );
}

#[test]
fn dry_run_changes_nothing() {
    let canary = scenario::canary_revision();
    let c = cluster();
    c.istioctl_out(&["tag", "set", "e2e-dry", "--revision", "default", "-y"]);
    let mwc = ["mutatingwebhookconfiguration", "istio-revision-tag-e2e-dry"];
    let svc = [
        "service",
        "-n",
        "istio-system",
        "istiod-revision-tag-e2e-dry",
    ];
    let rv = (resource_version(c, &mwc), resource_version(c, &svc));
    assert!(rv.0.is_some() && rv.1.is_some(), "istioctl made both");
    let o = mesh(
        c,
        &[
            "set",
            "e2e-dry",
            "--revision",
            canary,
            "--overwrite",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("dry run: the API server accepted all 2 change(s); nothing was changed"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!((resource_version(c, &mwc), resource_version(c, &svc)), rv);
    ok(c, &["remove", "e2e-dry", "-y", "--dry-run"]);
    assert_eq!((resource_version(c, &mwc), resource_version(c, &svc)), rv);
    ok(c, &["set", "e2e-never", "--revision", canary, "--dry-run"]);
    assert!(
        get_json(
            c,
            &[
                "mutatingwebhookconfiguration",
                "istio-revision-tag-e2e-never"
            ]
        )
        .is_none()
    );
    // Without --yes and without a terminal there is no one to ask: refused, nothing created.
    let o = mesh(c, &["set", "e2e-never", "--revision", canary]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("hint: stdin is not a terminal: pass --yes"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        get_json(
            c,
            &[
                "mutatingwebhookconfiguration",
                "istio-revision-tag-e2e-never"
            ]
        )
        .is_none()
    );
}

#[test]
fn the_default_tag_moves_its_validator_and_removing_it_restores_the_legacy_injector() {
    let canary = scenario::canary_revision();
    let _guard = DEFAULT_TAG.lock().unwrap_or_else(|e| e.into_inner());
    let c = cluster();
    let ns = app(c, "legacy", ("istio-injection", "enabled"), 1);
    assert_web(c, &ns, scenario::old_tag(), "default", 1);
    let validator = ["validatingwebhookconfiguration", "istiod-default-validator"];
    let legacy = ["mutatingwebhookconfiguration", "istio-sidecar-injector"];
    let selector = |c: &Cluster| {
        let v = get_json(c, &legacy).unwrap();
        let hooks = v["webhooks"].as_array().unwrap().clone();
        let ns_hook = hooks
            .into_iter()
            .find(|w| w["name"] == "namespace.sidecar-injector.istio.io")
            .unwrap();
        ns_hook["namespaceSelector"].clone()
    };
    let never = serde_json::json!({"matchLabels": {"istio.io/deactivated": "never-match"}});
    assert_eq!(
        selector(c),
        never,
        "istioctl install deactivated the legacy injector"
    );

    let out = ok(
        c,
        &["set", "default", "--revision", canary, "--overwrite", "-y"],
    );
    assert!(
        out.contains(&format!("{} ×1", scenario::old_tag())),
        "{out}"
    );
    assert_eq!(
        get_json(c, &validator).unwrap()["metadata"]["labels"]["istio.io/rev"],
        canary
    );
    restart(c, &ns);
    assert_web(c, &ns, scenario::new_tag(), canary, 1);

    let o = mesh(c, &["remove", "default"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "in use by {ns}: {}",
        text(&o.stderr)
    );
    let out = ok(c, &["remove", "default", "-y"]);
    assert!(out.contains("injected by the legacy injector"), "{out}");
    assert!(get_json(c, &validator).is_none());
    assert_eq!(
        selector(c),
        serde_json::json!({"matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]})
    );
    let list: Value = serde_json::from_str(&ok(c, &["list", "-o", "json"])).unwrap();
    let direct = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tag"].is_null() && r["revision"] == "default")
        .unwrap();
    assert!(
        direct["namespaces"]
            .as_array()
            .unwrap()
            .contains(&Value::from(ns.as_str())),
        "{list}"
    );
    restart(c, &ns);
    assert_web(c, &ns, scenario::old_tag(), "default", 1);

    // Back to how istioctl installed it.
    ok(c, &["set", "default", "--revision", "default", "-y"]);
    assert_eq!(selector(c), never);
    assert_eq!(
        get_json(c, &validator).unwrap()["metadata"]["labels"]["istio.io/rev"],
        "default"
    );
    assert!(
        istioctl_tags(c)
            .iter()
            .any(|t| t.0 == "default" && t.1 == "default")
    );
}

/// A failure after the first change (the API server answers 500 to the real apply of the tag's
/// Service, through the test bed's fault proxy) rolls back what was changed: exit 3, the webhook
/// points at the old revision again, and the message says so and where the backup is.
#[test]
fn a_failed_move_is_rolled_back_from_the_backup() {
    let canary = scenario::canary_revision();
    use mesh_testbed::fault::{FaultProxy, Rule, Upstream};
    let c = cluster();
    ok(c, &["set", "e2e-rb", "--revision", "default", "-y"]);
    let mwc = ["mutatingwebhookconfiguration", "istio-revision-tag-e2e-rb"];
    let rev =
        |c: &Cluster| get_json(c, &mwc).unwrap()["metadata"]["labels"]["istio.io/rev"].clone();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.write_kubeconfig(dir.path(), c.admin_token()).unwrap();
    let before = tag_objects(c, "e2e-rb");
    let svc = "/services/istiod-revision-tag-e2e-rb";
    proxy.set_rules(vec![
        // The server-side dry run goes through; every real apply fails (retries included).
        Rule::delay(Duration::ZERO)
            .method("PATCH")
            .path_contains(svc)
            .query_contains("dryRun"),
        Rule::status(500).method("PATCH").path_contains(svc),
    ]);
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-tag"))
        .args([
            "set",
            "e2e-rb",
            "--revision",
            canary,
            "--overwrite",
            "-y",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .env("HOME", home())
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("error: the change failed and was rolled back: the cluster is as before"),
        "{err}"
    );
    assert!(
        err.contains("hint: the objects as they were are in "),
        "{err}"
    );
    assert_eq!(rev(c), "default", "the webhook was put back");
    assert_eq!(
        tag_objects(c, "e2e-rb"),
        before,
        "every tag object as before"
    );
    let hooks = get_json(c, &mwc).unwrap()["webhooks"].clone();
    assert!(
        hooks[0]["clientConfig"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/inject/rev/default"),
        "{hooks}"
    );
    assert!(!err.contains(c.admin_token()), "no token in the output");
    ok(c, &["remove", "e2e-rb", "-y"]);
}

/// A tag's objects (webhooks and Service labelled with it), as the server holds them without
/// what it owns.
fn tag_objects(c: &Cluster, tag: &str) -> BTreeMap<String, Value> {
    let selector = format!("istio.io/tag={tag}");
    let mut out = BTreeMap::new();
    for kind in [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "services",
    ] {
        let json = c.kubectl_out(&["get", kind, "-A", "-l", &selector, "-o", "json"]);
        let v: Value = serde_json::from_str(&json).unwrap();
        for o in v["items"].as_array().unwrap() {
            let name = o["metadata"]["name"].as_str().unwrap().to_owned();
            out.insert(format!("{kind}/{name}"), essence(o.clone(), Uids::Ignore));
        }
    }
    assert!(!out.is_empty(), "tag {tag} has no objects");
    out
}

fn through_proxy(
    c: &Cluster,
    home: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-tag"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e} ({})", c.server_url()))
}

/// `list` reads only what it shows: through the fault proxy, it lists no pods (the bulk of a big
/// cluster) and still shows a namespace labelled with the canary under the canary's version;
/// `set --dry-run` still reads the pods, once, for its blast radius.
#[test]
fn list_reads_no_pods() {
    let canary = scenario::canary_revision();
    use mesh_testbed::fault::{FaultProxy, Upstream};
    let c = cluster();
    let ns = c.unique_namespace("listed").unwrap();
    scenario::label_namespace(c, &ns, &[("istio.io/rev", canary)]).unwrap();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.write_kubeconfig(dir.path(), c.admin_token()).unwrap();
    let pods = |p: &FaultProxy| p.count(|r| r.path.ends_with("/pods"));

    let out = through_proxy(c, home(), &kubeconfig, &["list", "-o", "json"])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tag"].is_null() && r["revision"] == canary)
        .unwrap_or_else(|| panic!("no row for revision {canary}: {list}"));
    assert_eq!(row["revisionVersion"], scenario::new_tag(), "{row}");
    assert!(
        row["namespaces"]
            .as_array()
            .unwrap()
            .contains(&Value::from(ns.clone())),
        "{row}"
    );
    let paths: Vec<String> = proxy.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(pods(&proxy), 0, "{paths:?}");

    proxy.clear_requests();
    let out = through_proxy(
        c,
        home(),
        &kubeconfig,
        &["set", "e2e-pods", "--revision", canary, "--dry-run"],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(pods(&proxy), 1, "set reads the pods once");
}

/// SIGINT while the second phase (the removal of the tag's old webhook) waits on the API
/// server: the new webhook is removed, the Service put back, every tag object as before (exit 3).
#[test]
fn an_interrupted_move_is_rolled_back() {
    let canary = scenario::canary_revision();
    use mesh_testbed::fault::{FaultProxy, Rule, Upstream};
    let c = cluster();
    c.istioctl_out(&["tag", "set", "e2e-sig", "--revision", "default", "-y"]);
    let before = tag_objects(c, "e2e-sig");
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.write_kubeconfig(dir.path(), c.admin_token()).unwrap();
    let old = "mutatingwebhookconfigurations/istio-revision-tag-e2e-sig";
    proxy.set_rules(vec![
        // The first delete is the engine's dry run (deletes carry dryRun in their body).
        Rule::delay(Duration::ZERO)
            .method("DELETE")
            .path_contains(old)
            .times(1),
        Rule::hang().method("DELETE").path_contains(old).times(1),
    ]);
    let child = through_proxy(
        c,
        home(),
        &kubeconfig,
        &[
            "set",
            "e2e-sig",
            "--revision",
            canary,
            "--overwrite",
            "--webhook-name",
            "e2e-sig-new",
            "-y",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.count(|r| r.method == "DELETE" && r.path.ends_with(old)) < 2 {
        assert!(Instant::now() < deadline, "the removal never came");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("interrupted by Ctrl-C") && err.contains("was rolled back"),
        "{err}"
    );
    assert_eq!(
        tag_objects(c, "e2e-sig"),
        before,
        "every tag object as before"
    );
    c.istioctl_out(&["tag", "remove", "e2e-sig", "-y"]);
}

/// A 429 with Retry-After on the apply is waited out and the tag is set.
#[test]
fn a_429_is_waited_out() {
    let canary = scenario::canary_revision();
    use mesh_testbed::fault::{FaultProxy, Rule, Upstream};
    let c = cluster();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.write_kubeconfig(dir.path(), c.admin_token()).unwrap();
    let path = "mutatingwebhookconfigurations/istio-revision-tag-e2e-429";
    proxy.set_rules(vec![
        Rule::delay(Duration::ZERO).query_contains("dryRun"),
        Rule::status(429)
            .method("PATCH")
            .path_contains(path)
            .times(2),
    ]);
    let out = through_proxy(
        c,
        home(),
        &kubeconfig,
        &["set", "e2e-429", "--revision", canary, "-y"],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let statuses: Vec<Option<u16>> = proxy
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.ends_with(path)
                && !r.query.as_deref().unwrap_or("").contains("dryRun")
        })
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(201)]);
    assert!(
        istioctl_tags(c)
            .iter()
            .any(|t| t.0 == "e2e-429" && t.1 == canary)
    );
    ok(c, &["remove", "e2e-429", "-y"]);
}

/// A field another manager owns (a platform team relabelled the tag's webhook) is reported
/// and not taken (exit 1, nothing changed) until `--force-conflicts`.
#[test]
fn a_field_of_another_manager_is_reported_not_taken() {
    let canary = scenario::canary_revision();
    let c = cluster();
    ok(c, &["set", "e2e-cf", "--revision", "default", "-y"]);
    let mwc = ["mutatingwebhookconfiguration", "istio-revision-tag-e2e-cf"];
    c.kubectl_out(&[
        "label",
        mwc[0],
        mwc[1],
        "app=platform",
        "--overwrite",
        "--field-manager=platform-team",
    ]);
    let before = tag_objects(c, "e2e-cf");
    let o = mesh(
        c,
        &["set", "e2e-cf", "--revision", canary, "--overwrite", "-y"],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("owned by `platform-team`") && err.contains(".metadata.labels.app"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(tag_objects(c, "e2e-cf"), before, "nothing changed");
    ok(
        c,
        &[
            "set",
            "e2e-cf",
            "--revision",
            canary,
            "--overwrite",
            "-y",
            "--force-conflicts",
        ],
    );
    let now = get_json(c, &mwc).unwrap();
    assert_eq!(now["metadata"]["labels"]["istio.io/rev"], canary);
    assert_eq!(now["metadata"]["labels"]["app"], "sidecar-injector");
    ok(c, &["remove", "e2e-cf", "-y"]);
}

#[cfg(unix)]
#[test]
fn a_backup_directory_others_can_write_to_is_refused_and_nothing_changes() {
    // Real: the API server, istiod of both revisions, the file system. A shared directory
    // (mode 0777) would let anyone plant the backup a rollback restores.
    use std::os::unix::fs::PermissionsExt;
    let canary = scenario::canary_revision();
    let c = cluster();
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let dir = shared.to_str().unwrap();
    let o = mesh(
        c,
        &[
            "set",
            "e2e-shared",
            "--revision",
            canary,
            "-y",
            "--backup-dir",
            dir,
        ],
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: backup directory `{dir}` can be written by others (mode 777)"
        )) && stderr.contains(&format!("hint: run `chmod go-w {dir}`")),
        "{stderr}"
    );
    assert!(
        get_json(
            c,
            &[
                "mutatingwebhookconfiguration",
                "istio-revision-tag-e2e-shared"
            ]
        )
        .is_none(),
        "no tag was made"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "no backup");
}
