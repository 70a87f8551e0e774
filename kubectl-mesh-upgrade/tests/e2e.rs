//! `kubectl mesh upgrade` against the real control-plane test bed: a private kube-apiserver with
//! kwok nodes, Istio installed by real istioctl, and real istioctl reading back what we did.
//!
//! Versions (`tests/testbed/versions.env`): the test bed has one istioctl build (1.31-dev) and
//! two chart generations — the old release (`ISTIO_OLD_TAG`) is rendered from an older
//! istio.io/istio commit's charts (`--manifests`), the new one (`ISTIO_NEW_TAG`) from istioctl's
//! own, so an upgrade changes CRDs, injector templates and values as a real one does. The image
//! tag (`--set tag=…`) is where the product reads a control plane's version from. The injector
//! is the harness's stand-in for istiod's.
//!
//! Four clusters, one at a time (two cores: [`SERIAL`]), each with the old release installed as
//! the default revision by `istioctl install`:
//! - refusals and dry runs share one: each is checked to change nothing, so the next starts
//!   from the same state;
//! - a canary install and its uninstall;
//! - an in-place upgrade (with prune), the data-plane restart and the downgrade back;
//! - two failed upgrades and a rollback: each failure is checked to leave every object as it
//!   was, so the next scenario starts from the installed state again.
#![allow(clippy::print_stderr)] // timings are reported for the record

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Output,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use mesh_common::cluster::backup::Backup;
use mesh_testbed::{
    Cluster,
    probe::{
        CONTROL_PLANE_KINDS, Uids, applied, assert_same, expect, is_istio_object, json, planned,
        portable, run_mesh, sibling_binary, split_stamps, text,
    },
    run_with_stdin,
    scenario::{self, CRDS_CHANGED_BETWEEN_GENERATIONS},
};
use serde_json::Value;

/// Pods of the default revision's istiod.
const ISTIOD: &str = "app=istiod,istio.io/rev=default";
/// One cluster at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn old_tag(c: &Cluster) -> String {
    c.versions().get("ISTIO_OLD_TAG").unwrap().to_owned()
}

fn new_tag(c: &Cluster) -> String {
    c.versions().get("ISTIO_NEW_TAG").unwrap().to_owned()
}

/// Runs `kubectl-mesh-upgrade ARGS --kubeconfig K` with `HOME` (backups) and no colour.
fn mesh_at(kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"));
    run_mesh(bin, kubeconfig, home, args)
}

fn mesh(c: &Cluster, home: &Path, args: &[&str]) -> Output {
    mesh_at(c.kubeconfig(), home, args)
}

fn get_json(c: &Cluster, args: &[&str]) -> Option<Value> {
    let mut cmd = c.kubectl();
    cmd.args(["get", "-o", "json", "--ignore-not-found"])
        .args(args);
    let out = run_with_stdin(cmd, "").unwrap();
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

/// resourceVersion of every object of [`CONTROL_PLANE_KINDS`]: any write at all changes one. Not of
/// HorizontalPodAutoscalers: the HPA controller keeps writing their status (no metrics server),
/// so their resourceVersion moves on its own ([`state`] compares them).
fn resource_versions(c: &Cluster) -> BTreeMap<String, String> {
    c.objects_of(CONTROL_PLANE_KINDS)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("HorizontalPodAutoscaler/"))
        .map(|(k, v)| {
            let rv = v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_owned();
            (k, rv)
        })
        .collect()
}

/// `Kind/namespace/name` of an object of a JSON report.
fn key(kind: &Value, ns: &Value, name: &Value) -> String {
    format!(
        "{}/{}/{}",
        kind.as_str().unwrap(),
        ns.as_str().unwrap_or(""),
        name.as_str().unwrap()
    )
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn backups(home: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(home.join(".kube/mesh-backups"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Container images of a Deployment's template, `name=image` joined by spaces.
fn template_images(c: &Cluster, name: &str) -> String {
    let d = get_json(c, &["deployment", "-n", "istio-system", name]).unwrap();
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["image"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts `deployment/<name>` in istio-system is rolled out, ready, and its pods (`selector`)
/// run `image` (and nothing else of the same repository).
fn assert_runs(c: &Cluster, name: &str, selector: &str, image: &str) {
    c.wait_rollout("istio-system", &format!("deployment/{name}"))
        .unwrap();
    let d = get_json(c, &["deployment", "-n", "istio-system", name]).unwrap();
    let want = d["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(
        d["status"]["readyReplicas"].as_u64(),
        Some(want),
        "{name}: {}",
        d["status"]
    );
    assert!(
        template_images(c, name).contains(image),
        "{name}: {}",
        template_images(c, name)
    );
    let repo = image.rsplit_once(':').unwrap().0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = scenario::pod_images(c, "istio-system", selector).unwrap();
        let images: Vec<&str> = pods
            .split_whitespace()
            .filter(|i| i.starts_with(repo))
            .collect();
        if !images.is_empty() && images.iter().all(|i| *i == image) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pods of {name} do not all run {image}:\n{pods}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A namespace labelled `label` running `web` (1 replica).
fn app(c: &Cluster, prefix: &str, label: (&str, &str)) -> String {
    let ns = c.unique_namespace(prefix).unwrap();
    scenario::label_namespace(c, &ns, &[label]).unwrap();
    scenario::sample_app(c, &ns, 1).unwrap();
    ns
}

/// The proxy image of every live `web` pod of `ns` (`none` for a pod without one).
fn web_proxies(c: &Cluster, ns: &str) -> Vec<String> {
    let v = get_json(c, &["pods", "-n", ns, "-l", "app=web"]).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "istio-proxy")
                .map_or("none".to_owned(), |c| {
                    c["image"].as_str().unwrap().to_owned()
                })
        })
        .collect()
}

/// Waits (≤ 60 s) until every live `web` pod of `ns` runs proxy `docker.io/istio/proxyv2:<tag>`.
fn assert_web_proxy(c: &Cluster, ns: &str, tag: &str) {
    let want = format!("docker.io/istio/proxyv2:{tag}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let proxies = web_proxies(c, ns);
        if !proxies.is_empty() && proxies.iter().all(|p| *p == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "namespace {ns}: web pods run {proxies:?}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The plan's objects of the JSON report as `Kind/namespace/name` → action.
fn actions(report: &Value) -> BTreeMap<String, String> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let r = &o["object"];
            (
                key(&r["kind"], &r["namespace"], &r["name"]),
                o["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `istioctl tag list -o json` as (tag, revision).
fn istioctl_tags(c: &Cluster) -> Vec<(String, String)> {
    let out = c.istioctl_out(&["tag", "list", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
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

/// Refusals and dry runs share one cluster; each is checked to change nothing.
/// 1. `--dry-run` of old → new: the plan (table and `-o json`) with the istiod image
///    change, checked by the server, and not one object changed, no backup;
/// 2. a manifest with an object the server rejects: exit 3 from the server-side dry run,
///    nothing written (every resourceVersion as before), no backup;
/// 3. a canary manifest without `--canary`: exit 1, nothing changed;
/// 4. a Helm-annotated istiod: exit 1 with the `helm upgrade` to run instead;
/// 5. from two minors below the new release (istioctl-installed on the old charts at image tag
///    `x.y.0`) to the new release in place: exit 1 with
///    `skew.in-place`, nothing changed; `--force` and `--canary` (two minors up) are allowed.
#[test]
fn refusals_and_dry_runs_change_nothing() {
    let canary = scenario::canary_revision();
    let _one = serial();
    let t0 = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    eprintln!("cluster with istio {} in {:.1?}", old_tag(&c), t0.elapsed());
    let (old, new) = (old_tag(&c), new_tag(&c));
    let target_text = scenario::manifest(&c, "default", &new).unwrap();
    let target = write(files.path(), &format!("istio-{new}.yaml"), &target_text);
    let before = c.state(Uids::Compare);

    // 1. Dry run: the plan, checked by the server; nothing changes.
    let (stdout, stderr) = expect(&mesh(&c, home.path(), &["-f", s(&target), "--dry-run"]), 0);
    assert!(
        stdout.starts_with(&format!(
            "Upgrade: in-place upgrade of revision `default`: {old} → {new} on "
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "containers[discovery].image: docker.io/istio/pilot:{old} → docker.io/istio/pilot:{new}"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("not checked by an API server"), "{stdout}");
    assert!(
        stderr.contains("dry run: the API server accepted all")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let r = json(
        &mesh(
            &c,
            home.path(),
            &["-f", s(&target), "--dry-run", "-o", "json"],
        ),
        0,
    );
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/upgrade/v1");
    assert_eq!(
        (r["success"].as_bool(), r["dryRun"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(r["target"]["mode"], "in-place", "{}", r["target"]);
    assert_eq!(r["target"]["direction"], "upgrade");
    assert_eq!(r["target"]["revision"], "default");
    assert_eq!(
        (
            r["target"]["from"].as_str(),
            r["target"]["version"].as_str()
        ),
        (Some(old.as_str()), Some(new.as_str()))
    );
    let acts = actions(&r);
    assert_eq!(
        acts.get("Deployment/istio-system/istiod")
            .map(String::as_str),
        Some("update"),
        "{acts:#?}"
    );
    assert!(
        acts.values()
            .all(|a| ["create", "update", "unchanged", "prune", "keep"].contains(&a.as_str())),
        "{acts:#?}"
    );
    let istiod = r["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"]["kind"] == "Deployment" && o["object"]["name"] == "istiod")
        .unwrap();
    assert!(
        istiod["diff"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["field"] == "containers[discovery].image"
                && ch["after"] == format!("docker.io/istio/pilot:{new}").as_str()),
        "{istiod:#}"
    );
    assert_same(&before, &c.state(Uids::Compare), "a dry run");
    assert!(
        backups(home.path()).is_empty(),
        "a dry run writes no backup"
    );

    // 2. An object the API server rejects: refused by the dry run before the first change.
    let rvs = resource_versions(&c);
    let invalid = write(
        files.path(),
        "invalid.yaml",
        &format!(
            "{target_text}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: e2e-invalid, namespace: istio-system}}\nspec:\n  selector: {{app: istiod}}\n  ports: [{{name: bad, port: 99999}}]\n"
        ),
    );
    let (_, stderr) = expect(&mesh(&c, home.path(), &["-f", s(&invalid), "-y"]), 3);
    assert!(stderr.contains("in a dry run"), "{stderr}");
    assert!(stderr.contains("e2e-invalid"), "{stderr}");
    assert!(stderr.contains("hint: nothing was changed"), "{stderr}");
    let now = resource_versions(&c);
    let written: Vec<&String> = rvs
        .keys()
        .chain(now.keys())
        .filter(|k| rvs.get(*k) != now.get(*k))
        .collect();
    assert!(
        written.is_empty(),
        "a rejected dry run wrote to the cluster: {written:?}"
    );
    assert_same(&before, &c.state(Uids::Compare), "a rejected dry run");
    assert!(
        backups(home.path()).is_empty(),
        "a rejected dry run writes no backup"
    );

    // 3. A new revision without --canary.
    let canary_text = scenario::manifest(&c, canary, &new).unwrap();
    let canary_file = write(files.path(), &format!("istio-{canary}.yaml"), &canary_text);
    let (_, stderr) = expect(&mesh(&c, home.path(), &["-f", s(&canary_file), "-y"]), 1);
    assert!(
        stderr.contains(&format!("revision `{canary}` is not installed"))
            && stderr.contains("refusing without --canary"),
        "{stderr}"
    );
    assert_same(
        &before,
        &c.state(Uids::Compare),
        "a canary refused for want of --canary",
    );

    // 4. A control plane Helm installed is upgraded with Helm.
    c.kubectl_out(&[
        "annotate",
        "deployment",
        "-n",
        "istio-system",
        "istiod",
        "meta.helm.sh/release-name=istiod",
        "meta.helm.sh/release-namespace=istio-system",
    ]);
    let helm = c.state(Uids::Compare);
    let (_, stderr) = expect(&mesh(&c, home.path(), &["-f", s(&target), "-y"]), 1);
    assert!(stderr.contains("installed by Helm"), "{stderr}");
    assert!(
        stderr.contains("hint: helm upgrade") && stderr.contains(&format!("--version {new}")),
        "{stderr}"
    );
    assert_same(&helm, &c.state(Uids::Compare), "a Helm refusal");
    c.kubectl_out(&[
        "annotate",
        "deployment",
        "-n",
        "istio-system",
        "istiod",
        "meta.helm.sh/release-name-",
        "meta.helm.sh/release-namespace-",
    ]);

    // 5. Two minors in place is refused; --force and --canary allow it.
    let two_below = c.releases().new.minor_offset(-2);
    scenario::install_revision(&c, "default", &two_below).unwrap();
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{two_below}"),
    );
    let older = c.state(Uids::Compare);
    let (stdout, stderr) = expect(&mesh(&c, home.path(), &["-f", s(&target), "-y"]), 1);
    assert!(stdout.contains("[skew.in-place]"), "{stdout}");
    assert!(stderr.contains("refusing the upgrade"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    let r = json(
        &mesh(&c, home.path(), &["-f", s(&target), "-y", "-o", "json"]),
        1,
    );
    assert_eq!(r["refused"], true);
    let skew = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "skew.in-place")
        .unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!(skew["result"], "error", "{skew:#}");
    assert_same(&older, &c.state(Uids::Compare), "a skew refusal");
    json(
        &mesh(
            &c,
            home.path(),
            &["-f", s(&target), "--force", "--dry-run", "-o", "json"],
        ),
        0,
    );
    let r = json(
        &mesh(
            &c,
            home.path(),
            &["-f", s(&canary_file), "--canary", "--dry-run", "-o", "json"],
        ),
        0,
    );
    assert_eq!(r["target"]["mode"], "canary");
    let findings = r["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["id"] == "skew.canary"),
        "the guardrails ran: {r:#}"
    );
    assert!(findings.iter().all(|f| f["result"] != "error"), "{r:#}");
    assert_same(&older, &c.state(Uids::Compare), "dry runs");
    assert!(
        backups(home.path()).is_empty(),
        "{:?}",
        backups(home.path())
    );
    eprintln!("refusals_and_dry_runs_change_nothing: {:.1?}", t0.elapsed());
}

/// Every object of [`CONTROL_PLANE_KINDS`] as `Kind/namespace/name`.
fn names(c: &Cluster) -> BTreeSet<String> {
    c.objects_of(CONTROL_PLANE_KINDS).into_keys().collect()
}

/// Across the chart generations, the canary's apply updates the shared base to the new
/// generation — exactly the six CRDs whose schemas differ change beyond their labels — and
/// installs its own injector with the new templates, while the old revision's injector keeps
/// the old ones and every object the canary did not apply is as it was, field by field.
fn assert_canary_brings_the_new_generation_and_leaves_the_old(
    c: &Cluster,
    report: &Value,
    before: &BTreeMap<String, Value>,
) {
    let canary = scenario::canary_revision();
    let plan = planned(report);
    let crds: BTreeSet<&str> = plan
        .iter()
        .filter(|(k, p)| k.starts_with("CustomResourceDefinition/") && !p.fields.is_empty())
        .map(|(k, _)| k.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(crds, BTreeSet::from(CRDS_CHANGED_BETWEEN_GENERATIONS));
    let config = |name: &str| {
        let cm = get_json(c, &["configmap", "-n", "istio-system", name]).unwrap();
        cm["data"]["config"].as_str().unwrap().to_owned()
    };
    let template = "agentgateway-waypoint:";
    assert!(config(&format!("istio-sidecar-injector-{canary}")).contains(template));
    assert!(!config("istio-sidecar-injector").contains(template));
    let touched = applied(report);
    let after = c.state(Uids::Compare);
    let kept: BTreeMap<String, Value> = before
        .iter()
        .filter(|(k, _)| !touched.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(kept.contains_key("Deployment/istio-system/istiod"));
    let now: BTreeMap<String, Value> = kept
        .keys()
        .filter_map(|k| after.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    assert_same(&kept, &now, "what the canary did not apply");
}

/// Canary: `--canary -y` installs the new release's revision beside the old istiod (which keeps
/// running), its injector injects the new proxy into a namespace labelled with it, and
/// `kubectl mesh uninstall --revision <canary>` then removes exactly what the canary added: the
/// set of objects is the one before the canary (names, not labels: the shared Base CRDs and the
/// reader account were relabelled by the canary's apply, as istioctl does). Across the chart
/// generations: see [`assert_canary_brings_the_new_generation_and_leaves_the_old`]. Last, real
/// `istioctl install` of the same canary manifest settings makes, object by object, what ours
/// made ([`revision_objects`]).
#[test]
fn canary_install_then_uninstall_leaves_the_old_control_plane() {
    let canary = scenario::canary_revision();
    let _one = serial();
    let t0 = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let uninstall = sibling_binary(
        Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade")),
        "kubectl-mesh-uninstall",
    );
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    eprintln!("cluster with istio {} in {:.1?}", old_tag(&c), t0.elapsed());
    let (old, new) = (old_tag(&c), new_tag(&c));
    let canary_file = write(
        files.path(),
        &format!("istio-{canary}.yaml"),
        &scenario::manifest(&c, canary, &new).unwrap(),
    );
    let before = names(&c);
    let before_state = c.state(Uids::Compare);

    let r = json(
        &mesh(
            &c,
            home.path(),
            &["-f", s(&canary_file), "--canary", "-y", "-o", "json"],
        ),
        0,
    );
    assert_eq!(r["success"], true);
    assert_eq!(r["target"]["mode"], "canary");
    assert_eq!(r["target"]["revision"], canary);
    assert_canary_brings_the_new_generation_and_leaves_the_old(&c, &r, &before_state);
    let acts = actions(&r);
    assert_eq!(
        acts.get(&format!("Deployment/istio-system/istiod-{canary}"))
            .map(String::as_str),
        Some("create"),
        "{acts:#?}"
    );
    assert!(
        !acts.values().any(|a| a == "prune"),
        "a canary prunes nothing: {acts:#?}"
    );
    assert_runs(
        &c,
        &format!("istiod-{canary}"),
        &format!("app=istiod,istio.io/rev={canary}"),
        &format!("docker.io/istio/pilot:{new}"),
    );
    assert!(
        template_images(&c, &format!("istiod-{canary}")).contains(&format!("pilot:{new}")),
        "{}",
        template_images(&c, &format!("istiod-{canary}"))
    );
    assert!(
        template_images(&c, "istiod").contains(&format!("pilot:{old}")),
        "the old istiod is left alone: {}",
        template_images(&c, "istiod")
    );
    c.wait_rollout("istio-system", "deployment/istiod").unwrap();
    let added: BTreeSet<String> = names(&c).difference(&before).cloned().collect();
    assert!(
        added.contains(&format!("Deployment/istio-system/istiod-{canary}"))
            && added.contains(&format!(
                "MutatingWebhookConfiguration//istio-sidecar-injector-{canary}"
            )),
        "{added:#?}"
    );
    // (`tag list` always contains "default" — the revision is named so: look at the tag.)
    assert!(
        istioctl_tags(&c).contains(&("default".to_owned(), "default".to_owned())),
        "the default tag stays on revision `default`: {:?}",
        istioctl_tags(&c)
    );

    let ours = revision_objects(&c, canary);

    // The canary's injector works: a namespace on the revision gets its proxy.
    let ns = app(&c, "canary", ("istio.io/rev", canary));
    assert_web_proxy(&c, &ns, &new);
    c.kubectl_out(&["delete", "namespace", &ns, "--wait=true", "--timeout=120s"]);

    // `upgrade dataplane --to-revision` and `upgrade rollback` of it: the namespace's label
    // comes back before the workload, so its restarted pods are injected by the old revision
    // again, and the rollback returns only once they run that proxy (checked at once, no wait).
    // The namespace's restore is slowed down (3 s through the fault proxy): were the workload
    // restored first, its new pods would be injected meanwhile under the canary's label.
    let moved = app(&c, "moved", ("istio-injection", "enabled"));
    assert_web_proxy(&c, &moved, &old);
    let to_canary = ["dataplane", "-n", &moved, "--to-revision", canary, "-y"];
    expect(&mesh(&c, home.path(), &to_canary), 0);
    assert_web_proxy(&c, &moved, &new);
    let proxy = mesh_testbed::fault::FaultProxy::start(
        mesh_testbed::fault::Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap(),
    )
    .unwrap();
    let slow = proxy
        .write_kubeconfig(files.path(), c.admin_token())
        .unwrap();
    proxy.set_rules(vec![
        mesh_testbed::fault::Rule::delay(Duration::from_secs(3))
            .method("PUT")
            .path_contains(format!("/namespaces/{moved}")),
    ]);
    expect(&mesh_at(&slow, home.path(), &["rollback", "-y"]), 0);
    assert!(
        proxy.count(|r| r.method == "PUT" && r.path.ends_with(&format!("/namespaces/{moved}"))) > 0,
        "the namespace was restored through the slow proxy"
    );
    let labels = get_json(&c, &["namespace", &moved]).unwrap()["metadata"]["labels"].clone();
    assert_eq!(
        (&labels["istio-injection"], &labels["istio.io/rev"]),
        (&Value::from("enabled"), &Value::Null),
        "{labels}"
    );
    assert_eq!(
        web_proxies(&c, &moved),
        [format!("docker.io/istio/proxyv2:{old}")],
        "when the rollback returns, web runs the old revision's proxy"
    );
    c.kubectl_out(&[
        "delete",
        "namespace",
        &moved,
        "--wait=true",
        "--timeout=120s",
    ]);

    let args = ["--revision", canary, "-y"];
    expect(&run_mesh(&uninstall, c.kubeconfig(), home.path(), &args), 0);
    let after = names(&c);
    let gone: Vec<&String> = before.difference(&after).collect();
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(
        gone.is_empty() && left.is_empty(),
        "after the canary's uninstall: missing {gone:?}, left over {left:?}"
    );
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{old}"),
    );

    // Real istioctl's install of the same canary makes the same objects as ours did.
    let mut cmd = c.istioctl();
    cmd.args(scenario::istioctl_install_args(&c, canary, &new));
    run_with_stdin(cmd, "").unwrap();
    let theirs = revision_objects(&c, canary);
    assert!(ours.len() >= 15, "{:?}", ours.keys());
    assert_same(&theirs, &ours, "istioctl's canary against ours");
    eprintln!(
        "canary_install_then_uninstall_leaves_the_old_control_plane: {:.1?}",
        t0.elapsed()
    );
}

/// The objects named for `revision` (its istiod, injector, RBAC…), without what differs between
/// two installs of one manifest: UIDs, what the API server allocates, the installers' version
/// stamps (istioctl stamps its build, kubectl-mesh the manifest's version).
fn revision_objects(c: &Cluster, revision: &str) -> BTreeMap<String, Value> {
    let named = c.state(Uids::Ignore).into_iter();
    let named = named.filter(|(k, _)| is_istio_object(k) && k.contains(revision));
    split_stamps(named.map(|(k, o)| (k, portable(o))).collect()).0
}

/// ConfigMap `name` in istio-system labelled as if an older release of revision `default`
/// shipped it (owner labels of istioctl's installer), plus `extra` labels.
fn retired_config_map(c: &Cluster, name: &str, extra: &str) {
    c.apply(&format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: istio-system
  labels:
    istio.io/rev: default
    operator.istio.io/component: Pilot
    operator.istio.io/managed: Reconcile
    install.operator.istio.io/owning-resource-namespace: istio-system{extra}
data: {{retired: "true"}}
"#
    ))
    .unwrap();
}

/// Asserts every object the plan created or updated carries istioctl's owner labels.
fn assert_owner_labels(c: &Cluster, report: &Value, revision: &str) {
    let all = c.objects_of(CONTROL_PLANE_KINDS);
    let mut checked = 0;
    for o in report["objects"].as_array().unwrap() {
        if !["create", "update"].contains(&o["action"].as_str().unwrap()) {
            continue;
        }
        let r = &o["object"];
        let k = key(&r["kind"], &r["namespace"], &r["name"]);
        let Some(obj) = all.get(&k) else {
            // Kinds outside CONTROL_PLANE_KINDS (e.g. an EnvoyFilter) are not listed here.
            continue;
        };
        let labels = &obj["metadata"]["labels"];
        for (label, want) in [
            ("operator.istio.io/managed", "Reconcile"),
            ("istio.io/rev", revision),
            (
                "install.operator.istio.io/owning-resource-namespace",
                "istio-system",
            ),
            (
                "operator.istio.io/component",
                o["component"].as_str().unwrap(),
            ),
        ] {
            assert_eq!(
                labels[label].as_str(),
                Some(want),
                "{label} of {k}: {labels}"
            );
        }
        assert!(
            labels["operator.istio.io/component"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{k}: {labels}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} applied objects checked");
}

/// What `istioctl uninstall --revision REV --dry-run` would delete, as `Kind/namespace/name`,
/// from its `Not pruning object apps/v1, Kind=Deployment/istiod.istio-system because of dry
/// run.` lines (cluster-scoped objects end in `.`).
fn istioctl_would_uninstall(c: &Cluster, revision: &str) -> BTreeSet<String> {
    let mut cmd = c.istioctl();
    cmd.args(["uninstall", "--revision", revision, "--dry-run"]);
    let out = cmd.output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{all}");
    let listed: BTreeSet<String> = all
        .lines()
        .filter_map(|l| l.split_once(", Kind=")?.1.split_once(" because of dry run"))
        .filter_map(|(obj, _)| {
            let (kind, rest) = obj.split_once('/')?;
            let (name, ns) = rest.rsplit_once('.')?;
            Some(format!("{kind}/{ns}/{name}"))
        })
        .collect();
    assert!(!listed.is_empty(), "{all}");
    listed
}

/// `manifest` with an `Age` printer column added to the first version of its first `n` CRDs —
/// a newer chart generation whose CRDs differ — as one JSON `List`, and those CRDs' names.
fn with_changed_crds(manifest: &str, n: usize) -> (String, BTreeSet<String>) {
    let m = mesh_common::manifest::Manifest::parse(manifest).unwrap();
    let mut changed = BTreeSet::new();
    let items: Vec<Value> = m
        .objects
        .into_iter()
        .map(|o| {
            let mut v = o.value;
            if v["kind"] == "CustomResourceDefinition" && changed.len() < n {
                changed.insert(v["metadata"]["name"].as_str().unwrap().to_owned());
                let column = serde_json::json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "e2e"});
                let version = &mut v["spec"]["versions"][0];
                match version["additionalPrinterColumns"].as_array_mut() {
                    Some(columns) => columns.push(column),
                    None => version["additionalPrinterColumns"] = Value::Array(vec![column]),
                }
            }
            v
        })
        .collect();
    assert_eq!(changed.len(), n);
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    (list.to_string(), changed)
}

/// The CRDs a JSON report updates.
fn updated_crds(report: &Value) -> BTreeSet<String> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["object"]["kind"] == "CustomResourceDefinition" && o["action"] == "update")
        .map(|o| o["object"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The plan of a manifest whose CRDs partly differ, made live (the API server's dry run) and
/// from `kubectl mesh precheck --dump-snapshot` of the same cluster: both call exactly the
/// changed CRDs "update", and agree on every other object too; the offline plan says "create"
/// and "unknown" of nothing. Nothing is changed.
fn offline_and_live_plans_agree(c: &Cluster, home: &Path, dir: &Path, installed: &str) {
    let (changed, crds) = with_changed_crds(installed, 6);
    let target = write(dir, "changed-crds.json", &changed);
    let rvs = resource_versions(c);
    let live = json(
        &mesh(c, home, &["-f", s(&target), "--dry-run", "-o", "json"]),
        0,
    );
    let precheck = sibling_binary(
        Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade")),
        "kubectl-mesh-precheck",
    );
    let dump = dir.join("dump.yaml");
    expect(
        &run_mesh(
            &precheck,
            c.kubeconfig(),
            home,
            &["--dump-snapshot", s(&dump)],
        ),
        0,
    );
    let offline = json(
        &mesh_at(
            Path::new("/nonexistent"),
            home,
            &[
                "-f",
                s(&target),
                "--dry-run",
                "--snapshot",
                s(&dump),
                "-o",
                "json",
            ],
        ),
        0,
    );
    assert_eq!(updated_crds(&live), crds, "the live plan");
    assert_eq!(updated_crds(&offline), crds, "the plan from the dump");
    let (live_acts, offline_acts) = (actions(&live), actions(&offline));
    assert!(
        offline_acts
            .values()
            .all(|a| a != "create" && a != "unknown"),
        "{offline_acts:#?}"
    );
    assert_eq!(offline_acts, live_acts);
    assert_eq!(resource_versions(c), rvs, "dry runs changed the cluster");
}

/// In place, with the guardrails satisfied, up and back down:
/// 1. `-f <new> -y -o json`: exit 0; the plan prunes a ConfigMap an older release left
///    behind and keeps one marked not-pruned; istiod and the ingress gateway run the new
///    release; every applied object carries istioctl's owner labels; the backup is 0600; then,
///    for a manifest whose first six CRDs differ (a newer chart generation), the plan made from
///    `kubectl mesh precheck --dump-snapshot` and the live plan (the real API server's dry run)
///    agree on every object — exactly those six CRDs are "update" — and nothing is changed;
/// 2. real istioctl reads the result back: `tag list` still has `default` on revision
///    `default`, and `uninstall --revision default --dry-run` lists the objects we applied;
/// 3. `upgrade dataplane -A -y` restarts the injected workload onto the new proxy;
/// 4. `-f <old> -y` downgrades in place: istiod and the gateway run the old release again, and a
///    restarted workload gets the old proxy.
#[test]
fn in_place_upgrade_prunes_restarts_the_data_plane_and_downgrades() {
    let _one = serial();
    let t0 = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    eprintln!("cluster with istio {} in {:.1?}", old_tag(&c), t0.elapsed());
    let (old, new) = (old_tag(&c), new_tag(&c));
    let ns = app(&c, "enabled", ("istio-injection", "enabled"));
    assert_web_proxy(&c, &ns, &old);
    retired_config_map(&c, "istio-retired", "");
    retired_config_map(
        &c,
        "istio-retired-kept",
        "\n    install.operator.istio.io/owning-resource-not-pruned: \"true\"",
    );
    let target = write(
        files.path(),
        &format!("istio-{new}.yaml"),
        &scenario::manifest(&c, "default", &new).unwrap(),
    );
    let previous = write(
        files.path(),
        &format!("istio-{old}.yaml"),
        &scenario::manifest(&c, "default", &old).unwrap(),
    );

    // 1. Upgrade.
    let r = json(
        &mesh(&c, home.path(), &["-f", s(&target), "-y", "-o", "json"]),
        0,
    );
    assert_eq!(
        (r["success"].as_bool(), r["dryRun"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(r["target"]["direction"], "upgrade");
    let acts = actions(&r);
    assert_eq!(
        acts.get("ConfigMap/istio-system/istio-retired")
            .map(String::as_str),
        Some("prune"),
        "{acts:#?}"
    );
    assert_eq!(
        acts.get("ConfigMap/istio-system/istio-retired-kept")
            .map(String::as_str),
        Some("keep"),
        "{acts:#?}"
    );
    assert_eq!(
        acts.values().filter(|a| *a == "prune").count(),
        1,
        "{acts:#?}"
    );
    assert!(get_json(&c, &["configmap", "-n", "istio-system", "istio-retired"]).is_none());
    assert!(
        get_json(
            &c,
            &["configmap", "-n", "istio-system", "istio-retired-kept"]
        )
        .is_some()
    );
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{new}"),
    );
    assert_runs(
        &c,
        "istio-ingressgateway",
        "app=istio-ingressgateway",
        &format!("docker.io/istio/proxyv2:{new}"),
    );
    assert_owner_labels(&c, &r, "default");
    let backup = PathBuf::from(r["backup"].as_str().unwrap());
    assert_eq!(backups(home.path()), vec![backup.clone()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&backup), 0o600);
        assert_eq!(mode(backup.parent().unwrap()), 0o700);
    }
    let saved = std::fs::read_to_string(&backup).unwrap();
    assert!(
        saved.contains(&format!("docker.io/istio/pilot:{old}")) && saved.contains("istio-retired"),
        "the backup holds istiod as it was and the pruned ConfigMap"
    );

    // 1b. A newer chart whose CRDs differ: the plan from a dump agrees with the live plan.
    offline_and_live_plans_agree(
        &c,
        home.path(),
        files.path(),
        &std::fs::read_to_string(&target).unwrap(),
    );

    // 2. istioctl reads it back.
    assert!(
        istioctl_tags(&c).contains(&("default".to_owned(), "default".to_owned())),
        "{:?}",
        istioctl_tags(&c)
    );
    let listed = istioctl_would_uninstall(&c, "default");
    let applied: BTreeSet<String> = r["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| ["create", "update"].contains(&o["action"].as_str().unwrap()))
        // istioctl keeps the shared base (CRDs, the reader account) on `uninstall --revision`.
        .filter(|o| o["component"] != "Base")
        .map(|o| {
            let r = &o["object"];
            key(&r["kind"], &r["namespace"], &r["name"])
        })
        .collect();
    let missing: Vec<&String> = applied.difference(&listed).collect();
    assert!(
        applied.len() >= 15 && missing.is_empty(),
        "istioctl does not see {missing:?} of the {} objects we applied as revision `default`'s; it lists {listed:#?}",
        applied.len()
    );
    assert!(applied.contains("Deployment/istio-system/istiod"));

    // 3. The data plane moves on restart.
    let (stdout, _) = expect(&mesh(&c, home.path(), &["dataplane", "-A", "-y"]), 0);
    let row = stdout
        .lines()
        .find(|l| l.contains(&format!("Deployment/{ns}/web")))
        .unwrap_or_else(|| panic!("web is not restarted:\n{stdout}"));
    assert!(
        row.contains(&format!("default {old} ×1")) && row.contains(&format!("default {new}")),
        "{row}"
    );
    assert!(
        stdout.contains("✔ 1 workload(s) restarted onto their new proxy"),
        "{stdout}"
    );
    assert_web_proxy(&c, &ns, &new);
    // Its backup records the command as typed (it once read `upgrade dataplane dataplane`), in
    // a file named by its UTC date and what it is, after the upgrade's.
    let written = backups(home.path());
    let latest = written.last().unwrap();
    let name = latest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with("Z-upgrade-dataplane.yaml") && name.as_bytes()[8] == b'T',
        "{written:?}"
    );
    let taken = Backup::read(latest).unwrap().command;
    assert!(
        taken.starts_with("kubectl mesh upgrade dataplane -A -y"),
        "{taken}"
    );

    // 4. Downgrade (the human report this time).
    let (stdout, stderr) = expect(&mesh(&c, home.path(), &["-f", s(&previous), "-y"]), 0);
    assert!(
        stdout.starts_with(&format!(
            "Upgrade: in-place downgrade of revision `default`: {new} → {old} on "
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "containers[discovery].image: docker.io/istio/pilot:{new} → docker.io/istio/pilot:{old}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "✔ in-place downgrade of revision `default`: {new} → {old}: done"
        )),
        "{stdout}"
    );
    let pending = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&ns))
        .unwrap_or_else(|| panic!("{ns} is not reported as still on {new}:\n{stdout}"));
    assert!(pending.contains(&format!("default {new} ×1")), "{pending}");
    assert!(
        stdout.contains("Next:\n  kubectl mesh upgrade dataplane -A"),
        "{stdout}"
    );
    assert!(stderr.contains("backup of "), "{stderr}");
    assert_eq!(
        backups(home.path()).len(),
        3,
        "upgrade, dataplane, downgrade"
    );
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{old}"),
    );
    assert_runs(
        &c,
        "istio-ingressgateway",
        "app=istio-ingressgateway",
        &format!("docker.io/istio/proxyv2:{old}"),
    );
    assert_owner_labels(&c, &r, "default");
    c.kubectl_out(&["rollout", "restart", "-n", &ns, "deployment/web"]);
    c.wait_rollout(&ns, "deployment/web").unwrap();
    assert_web_proxy(&c, &ns, &old);
    assert!(istioctl_tags(&c).contains(&("default".to_owned(), "default".to_owned())));
    eprintln!(
        "in_place_upgrade_prunes_restarts_the_data_plane_and_downgrades: {:.1?}",
        t0.elapsed()
    );
}

/// The manifest with istiod's pods pinned to a node that does not exist: its rollout never
/// completes.
fn unschedulable_istiod(manifest: &str) -> String {
    let mut docs: Vec<String> = vec![String::new()];
    for line in manifest.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    let mut edited = 0;
    for doc in &mut docs {
        let istiod = doc.lines().any(|l| l == "kind: Deployment")
            && doc.lines().any(|l| l == "  name: istiod");
        if istiod && doc.contains("\n    spec:\n") {
            *doc = doc.replacen(
                "\n    spec:\n",
                "\n    spec:\n      nodeSelector: {kubernetes.io/hostname: no-such-node}\n",
                1,
            );
            edited += 1;
        }
    }
    assert_eq!(edited, 1, "istiod's pod spec not found exactly once");
    docs.join("---\n")
}

/// Failures roll back, and `rollback` undoes a success:
/// 1. istiod's new pods can never be scheduled: after `--timeout 20s` exit 3, the message says
///    it was rolled back, istiod runs the old release again and is ready, and every object is as before;
/// 2. the API server answers 503 to every real PATCH of istiod (through the fault proxy; dry
///    runs pass): the bounded retries give up, exit 3, rolled back, every object as before, and
///    the admin token appears nowhere in the output;
/// 3. after a successful upgrade, `rollback --dry-run` changes nothing, the backup with another
///    cluster's identity is refused (exit 2), and `rollback -y` restores the old release: every object
///    as before the upgrade.
#[test]
fn failed_upgrades_roll_back_and_rollback_undoes_a_good_one() {
    use mesh_testbed::fault::{FaultProxy, Rule, Upstream};
    let _one = serial();
    let t0 = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    eprintln!("cluster with istio {} in {:.1?}", old_tag(&c), t0.elapsed());
    let (old, new) = (old_tag(&c), new_tag(&c));
    let target_text = scenario::manifest(&c, "default", &new).unwrap();
    let target = write(files.path(), &format!("istio-{new}.yaml"), &target_text);
    let never = write(
        files.path(),
        "never-ready.yaml",
        &unschedulable_istiod(&target_text),
    );
    let before = c.state(Uids::Compare);

    // 1. A rollout that never becomes ready.
    let t = Instant::now();
    let (_, stderr) = expect(
        &mesh(
            &c,
            home.path(),
            &["-f", s(&never), "--timeout", "20s", "-y"],
        ),
        3,
    );
    eprintln!(
        "never-ready rollout failed and rolled back in {:.1?}",
        t.elapsed()
    );
    assert!(
        stderr.contains("error: the change failed and was rolled back: the cluster is as before"),
        "{stderr}"
    );
    assert!(stderr.contains("timed out after 20s"), "{stderr}");
    assert!(
        stderr.contains("hint: the objects as they were are in "),
        "{stderr}"
    );
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{old}"),
    );
    assert_same(
        &before,
        &c.state(Uids::Compare),
        "after the rollback of a rollout that never became ready",
    );

    // 2. 503 from the API server on every real write of istiod.
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kubeconfig = proxy
        .write_kubeconfig(files.path(), c.admin_token())
        .unwrap();
    proxy.set_rules(vec![
        Rule::delay(Duration::ZERO).query_contains("dryRun"),
        Rule::status(503)
            .method("PATCH")
            .path_contains("/deployments/istiod"),
    ]);
    let out = mesh_at(&kubeconfig, home.path(), &["-f", s(&target), "-y"]);
    let (stdout, stderr) = expect(&out, 3);
    assert!(
        stderr.contains("error: the change failed and was rolled back: the cluster is as before"),
        "{stderr}"
    );
    assert!(stderr.contains("503"), "{stderr}");
    let refused = proxy.count(|r| {
        r.method == "PATCH" && r.path.contains("/deployments/istiod") && r.status == Some(503)
    });
    assert_eq!(refused, 6, "one apply and its five retries");
    assert!(
        !stdout.contains(c.admin_token()) && !stderr.contains(c.admin_token()),
        "the token leaked into the output"
    );
    drop(proxy);
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{old}"),
    );
    assert_same(
        &before,
        &c.state(Uids::Compare),
        "after the rollback of a 503",
    );
    let written = backups(home.path());
    assert!(!written.is_empty(), "the failed upgrades wrote backups");
    for b in written {
        let saved = std::fs::read_to_string(&b).unwrap();
        assert!(!saved.contains(c.admin_token()), "token in {}", b.display());
    }

    // 3. A good upgrade, then rollback.
    let r = json(
        &mesh(&c, home.path(), &["-f", s(&target), "-y", "-o", "json"]),
        0,
    );
    let backup = PathBuf::from(r["backup"].as_str().unwrap());
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{new}"),
    );
    let upgraded = c.state(Uids::Compare);

    let (stdout, stderr) = expect(&mesh(&c, home.path(), &["rollback", "--dry-run"]), 0);
    assert!(
        stdout.starts_with(&format!("Rollback: restore {}", backup.display())),
        "the latest upgrade backup is picked:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("restore") && l.contains("Deployment/istio-system/istiod")),
        "{stdout}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_same(&upgraded, &c.state(Uids::Compare), "a rollback dry run");

    let uid = get_json(&c, &["namespace", "kube-system"]).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = std::fs::read_to_string(&backup).unwrap();
    assert_eq!(
        saved.matches(&uid).count(),
        1,
        "the cluster identity holds the uid once"
    );
    let elsewhere = write(
        files.path(),
        "from-another-cluster.yaml",
        &saved.replace(&uid, "00000000-0000-0000-0000-000000000000"),
    );
    let (_, stderr) = expect(
        &mesh(&c, home.path(), &["rollback", s(&elsewhere), "-y"]),
        2,
    );
    assert!(
        stderr.contains("was taken from another cluster"),
        "{stderr}"
    );
    assert_same(&upgraded, &c.state(Uids::Compare), "a refused rollback");

    let (stdout, _) = expect(&mesh(&c, home.path(), &["rollback", "-y"]), 0);
    assert!(stdout.contains("✔ rolled back"), "{stdout}");
    assert_runs(
        &c,
        "istiod",
        ISTIOD,
        &format!("docker.io/istio/pilot:{old}"),
    );
    assert_runs(
        &c,
        "istio-ingressgateway",
        "app=istio-ingressgateway",
        &format!("docker.io/istio/proxyv2:{old}"),
    );
    assert_same(
        &before,
        &c.state(Uids::Compare),
        "after the rollback of the upgrade",
    );
    eprintln!(
        "failed_upgrades_roll_back_and_rollback_undoes_a_good_one: {:.1?}",
        t0.elapsed()
    );
}
