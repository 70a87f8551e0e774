//! The binary on `--snapshot` files with `--dry-run`, without a cluster: exit codes, the human
//! plan, the JSON report, and bad input. Snapshots: uninstall's `canary-started.yaml` (a
//! `--dump-snapshot` of the test bed from before it kept whole objects: default revision at
//! 1.29.6 and canary `1-30-3` at 1.30.3, namespace `demo` injected by `default`, `prod` by
//! `1-30-3`; most objects by their metadata only, so those are compared by their labels), and
//! `fixtures/fresh-1.30.3.yaml` (today's `--dump-snapshot`, holding whole what a plan compares);
//! the manifests are the trimmed `istioctl manifest generate` fixtures of mesh-core.

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

fn snapshot() -> String {
    workspace()
        .join("kubectl-mesh-uninstall/tests/fixtures/canary-started.yaml")
        .display()
        .to_string()
}

fn manifest(name: &str) -> String {
    workspace()
        .join("mesh-core/fixtures/manifests")
        .join(name)
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECTL_MESH_TODAY", "2026-12-04")
        .env_remove("KUBECTL_MESH_RELEASE_DATA")
        .env("KUBECONFIG", "/nonexistent")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

/// `--snapshot <canary-started> --dry-run ARGS`.
fn plan(args: &[&str]) -> Output {
    let snap = snapshot();
    let mut all = vec!["--snapshot", snap.as_str(), "--dry-run"];
    all.extend(args);
    run(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn expect(out: &Output, code: i32) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

fn report(out: &Output) -> Value {
    serde_json::from_str(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// Bad input: exit 2, nothing on stdout, one `error:` line first, a hint, no panic.
fn assert_bad_input(out: &Output, error: &str) {
    let (stdout, stderr) = expect(out, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with(&format!("error: {error}")),
        "want `error: {error}…`, got:\n{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A temporary file with `content`.
fn file(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

#[test]
fn dry_run_on_a_snapshot_shows_the_in_place_upgrade() {
    let (stdout, stderr) = expect(&plan(&["-f", &manifest("default-1.30.3.yaml")]), 0);
    assert!(
        stdout.starts_with(&format!(
            "Upgrade: in-place upgrade of revision `default`: 1.29.6 → 1.30.3 on snapshot {}\n(compared with the snapshot, not checked by an API server)\n",
            snapshot()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("\nChecks\n"), "{stdout}");
    assert!(
        stdout.contains("Deployment/istio-system/istiod runs 1 replica"),
        "{stdout}"
    );
    assert!(stdout.contains("  update    Deployment/istio-system/istiod\n              containers[discovery].image: docker.io/istio/pilot:1.29.6 → docker.io/istio/pilot:1.30.3\n"), "{stdout}");
    assert!(stdout.contains("  update    Deployment/istio-system/istio-ingressgateway\n              containers[istio-proxy].image: docker.io/istio/proxyv2:1.29.6 → docker.io/istio/proxyv2:1.30.3\n"), "{stdout}");
    assert!(
        stdout.contains("\nChanges (0 create, 39 update, 0 unchanged, 0 prune)\n"),
        "{stdout}"
    );
    // The canary's objects are not the manifest's: untouched, not pruned.
    let canary: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["  create ", "  update ", "  prune ", "  keep "]
                .iter()
                .any(|a| l.starts_with(a))
                && l.contains("1-30-3")
        })
        .collect();
    assert!(canary.is_empty(), "{canary:?}");
    assert_eq!(
        stderr,
        "dry run against a snapshot: the plan was not checked by an API server; nothing was changed\n"
    );
}

#[test]
fn json_report_of_a_dry_run() {
    let out = plan(&["-f", &manifest("default-1.30.3.yaml"), "-o", "json"]);
    expect(&out, 0);
    let r = report(&out);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/upgrade/v1");
    assert_eq!(
        (
            r["success"].as_bool(),
            r["dryRun"].as_bool(),
            r["refused"].as_bool()
        ),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(
        r["target"],
        serde_json::json!({"mode": "in-place", "revision": "default", "version": "1.30.3",
            "from": "1.29.6", "direction": "upgrade", "namespace": "istio-system"})
    );
    let objects = r["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 39);
    for o in objects {
        assert!(
            o["object"]["apiVersion"].is_string()
                && o["object"]["kind"].is_string()
                && o["object"]["name"].is_string()
                && o["component"].is_string(),
            "{o}"
        );
        assert!(
            ["create", "update", "unchanged", "prune", "keep"]
                .contains(&o["action"].as_str().unwrap()),
            "{o}"
        );
    }
    let istiod = objects
        .iter()
        .find(|o| o["object"]["kind"] == "Deployment" && o["object"]["name"] == "istiod")
        .unwrap();
    assert_eq!(istiod["object"]["namespace"], "istio-system");
    assert_eq!(istiod["component"], "Pilot");
    assert_eq!(istiod["action"], "update");
    assert_eq!(
        istiod["diff"]["changes"][0],
        serde_json::json!({"field": "containers[discovery].image",
            "before": "docker.io/istio/pilot:1.29.6", "after": "docker.io/istio/pilot:1.30.3"})
    );
    // In place, only pods of revision `default` still on 1.29.6 need a restart.
    assert_eq!(
        r["dataPlane"],
        serde_json::json!([{"namespace": "demo", "pods": 2, "proxies": {"default 1.29.6": 2}}])
    );
    assert_eq!(
        r["next"],
        serde_json::json!(["kubectl mesh upgrade dataplane -A"])
    );
    assert!(
        r.get("backup").is_none() && r.get("error").is_none(),
        "{r:#}"
    );
}

#[test]
fn a_snapshot_is_never_changed() {
    let snap = snapshot();
    let out = run(&[
        "--snapshot",
        &snap,
        "-f",
        &manifest("default-1.30.3.yaml"),
        "-y",
    ]);
    assert_bad_input(&out, "--snapshot cannot change a cluster");
    assert!(text(&out.stderr).contains("hint: add --dry-run"));
    let out = run(&["rollback", "--snapshot", &snap, "--dry-run"]);
    assert_bad_input(&out, "rollback restores into a cluster");
}

#[test]
fn a_new_revision_needs_canary() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(manifest("canary-1-30-3.yaml")).unwrap();
    let other = file(
        dir.path(),
        "canary2.yaml",
        &text.replace("1-30-3", "canary2"),
    );
    let (stdout, stderr) = expect(&plan(&["-f", &other]), 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: revision `canary2` is not installed, so this installs a canary beside `1-30-3`, `default`; refusing without --canary\nhint: pass --canary"),
        "{stderr}"
    );
    let out = plan(&["-f", &other, "--canary", "-o", "json"]);
    expect(&out, 0);
    let r = report(&out);
    assert_eq!(r["target"]["mode"], "canary");
    assert_eq!(r["target"]["revision"], "canary2");
    assert_eq!(
        r["next"][0],
        "kubectl mesh tag set canary --revision canary2"
    );
    // --canary for a revision that exists is a usage error.
    let out = plan(&["-f", &manifest("canary-1-30-3.yaml"), "--canary"]);
    assert_bad_input(
        &out,
        "--canary installs a new revision, but revision `1-30-3` is already installed",
    );
}

#[test]
fn bad_manifests_are_refused_with_one_error_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.yaml").display().to_string();
    assert_bad_input(
        &plan(&["-f", &missing]),
        &format!("cannot read manifest `{missing}`"),
    );

    let empty_dir = d.join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    file(&empty_dir, "README.md", "not a manifest");
    let empty_dir = empty_dir.display().to_string();
    assert_bad_input(
        &plan(&["-f", &empty_dir]),
        &format!("directory `{empty_dir}` has no .yaml, .yml or .json files"),
    );

    let malformed = file(
        d,
        "malformed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: istio-system}\n---\napiVersion: v1\nkind: [unclosed\n",
    );
    assert_bad_input(
        &plan(&["-f", &malformed]),
        &format!("{malformed}:6: not valid YAML: column 7: unclosed bracket"),
    );

    let empty = file(d, "empty.yaml", "---\n# nothing\n---\n");
    assert_bad_input(&plan(&["-f", &empty]), "the manifest has no objects");

    let no_istiod = file(
        d,
        "config-only.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata: {mesh: \"{}\"}\n",
    );
    assert_bad_input(
        &plan(&["-f", &no_istiod]),
        "no Istio image (pilot, proxyv2, install-cni or ztunnel) and no Istio component in the manifest",
    );

    let target = std::fs::read_to_string(manifest("default-1.30.3.yaml")).unwrap();
    assert_eq!(target.matches("proxyv2:1.30.3").count(), 1);
    let mixed = file(
        d,
        "mixed.yaml",
        &target.replace("proxyv2:1.30.3", "proxyv2:1.29.6"),
    );
    assert_bad_input(
        &plan(&["-f", &mixed]),
        "the manifest mixes Istio versions: istiod is 1.30.3, but docker.io/istio/proxyv2:1.29.6 (1.29.6)",
    );

    // A directory of several files is one manifest: the same object twice is named.
    let split = d.join("split");
    std::fs::create_dir(&split).unwrap();
    file(&split, "a.yaml", &target);
    file(&split, "b.yaml", &target);
    let out = plan(&["-f", &split.display().to_string()]);
    let (_, stderr) = expect(&out, 2);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("b.yaml:")
            && stderr.contains("is also defined at"),
        "{stderr}"
    );
}

/// The real `--dump-snapshot` of a test-bed cluster onto which the trimmed 1.30.3 fixture was
/// freshly installed (see its header).
fn fresh_dump() -> String {
    workspace()
        .join("kubectl-mesh-upgrade/tests/fixtures/fresh-1.30.3.yaml")
        .display()
        .to_string()
}

/// The 1.30.3 manifest fixture with an `Age` printer column added to the first version of its
/// first `n` CRDs — a newer chart generation whose CRDs differ — and the names of those CRDs.
fn with_changed_crds(dir: &Path, n: usize) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(manifest("default-1.30.3.yaml")).unwrap();
    let mut changed = Vec::new();
    let docs: Vec<String> = text
        .split("\n---\n")
        .map(|d| {
            if !d.contains("\nkind: CustomResourceDefinition\n") || changed.len() == n {
                return d.to_owned();
            }
            let name = d
                .lines()
                .find_map(|l| l.strip_prefix("  name: "))
                .unwrap()
                .to_owned();
            changed.push(name);
            d.replacen(
                "  versions:\n  - name:",
                "  versions:\n  - additionalPrinterColumns:\n    - jsonPath: .metadata.creationTimestamp\n      name: Age\n      type: date\n    name:",
                1,
            )
        })
        .collect();
    assert_eq!(changed.len(), n);
    (
        file(dir, "changed-crds.yaml", &docs.join("\n---\n")),
        changed,
    )
}

/// The JSON report of `--dry-run -f MANIFEST` on the snapshot file `snapshot`.
fn json_plan_on(snapshot: &str, manifest: &str) -> Value {
    report(&run(&[
        "--snapshot",
        snapshot,
        "--dry-run",
        "-f",
        manifest,
        "-o",
        "json",
    ]))
}

/// `kind/name` → action of a JSON report.
fn actions(r: &Value) -> std::collections::BTreeMap<String, String> {
    r["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["object"]["kind"].as_str().unwrap(),
                    o["object"]["name"].as_str().unwrap()
                ),
                o["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A plan from the tool's own dump compares every object as the live plan does: the CRDs with
/// their schemas (only the six a newer chart changes are "update"), the ServiceAccounts, RBAC,
/// autoscalers and the `values` ConfigMap whole — nothing is "create" that exists, and nothing
/// is unknown. (The live counterpart, on the test bed: `upgrade/tests/e2e.rs`.)
#[test]
fn a_plan_from_a_dump_compares_crds_and_every_kind_like_the_live_plan() {
    let dir = tempfile::tempdir().unwrap();
    let dump = fresh_dump();
    let same = json_plan_on(&dump, &manifest("default-1.30.3.yaml"));
    let acts = actions(&same);
    assert_eq!(acts.len(), 39, "{acts:#?}");
    assert!(acts.values().all(|a| a == "unchanged"), "{acts:#?}");

    let (changed, crds) = with_changed_crds(dir.path(), 6);
    let out = run(&["--snapshot", &dump, "--dry-run", "-f", &changed]);
    let (stdout, _) = expect(&out, 0);
    assert!(
        stdout.contains("\nChanges (0 create, 6 update, 33 unchanged, 0 prune)\n"),
        "{stdout}"
    );
    let r = json_plan_on(&dump, &changed);
    let updated: Vec<String> = actions(&r)
        .into_iter()
        .filter(|(_, a)| a == "update")
        .map(|(k, _)| k)
        .collect();
    let want: Vec<String> = crds
        .iter()
        .map(|c| format!("CustomResourceDefinition/{c}"))
        .collect();
    assert_eq!(updated, want);
    let crd = r["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["action"] == "update")
        .unwrap();
    assert_eq!(
        crd["diff"]["other"][0], "spec.versions[v1].additionalPrinterColumns[0].jsonPath",
        "{crd:#}"
    );
}

/// A dump as `--dump-snapshot` wrote it before it kept those kinds (the fixture without the
/// objects of the kinds it did not read, and without the annotation declaring them): the 16
/// objects of kinds it never read are "unknown: not in the snapshot", never "create" — they
/// exist — and the CRDs, of which it holds only names and versions, are not called updates when
/// what it holds of them does not change.
#[test]
fn a_dump_without_a_kind_says_unknown_never_create() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(fresh_dump()).unwrap();
    let unread = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "HorizontalPodAutoscaler",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    let old = mesh_testbed::dump::edited(&fixture, |list| {
        list["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubectl-mesh.dev/whole-kinds");
        list["items"].as_array_mut().unwrap().retain(|i| {
            let kind = mesh_testbed::dump::kind(i);
            let name = i["metadata"]["name"].as_str().unwrap_or_default();
            let other_config_map = kind == "ConfigMap" && !name.starts_with("istio");
            !unread.contains(&kind) && !other_config_map
        });
    });
    let old = file(dir.path(), "old-dump.yaml", &old);
    let r = json_plan_on(&old, &manifest("default-1.30.3.yaml"));
    let objects = r["objects"].as_array().unwrap();
    assert!(
        objects.iter().all(|o| o["action"] != "create"),
        "{objects:#?}"
    );
    let unknown: Vec<&Value> = objects
        .iter()
        .filter(|o| o["action"] == "unknown")
        .collect();
    let of_unread_kinds: Vec<&&Value> = unknown
        .iter()
        .filter(|o| {
            unread.contains(&o["object"]["kind"].as_str().unwrap())
                || o["object"]["name"] == "values"
        })
        .collect();
    assert_eq!(of_unread_kinds.len(), 16, "{unknown:#?}");
    for o in &of_unread_kinds {
        assert!(
            o["reason"]
                .as_str()
                .unwrap()
                .starts_with("not in the snapshot: it holds "),
            "{o}"
        );
    }
    let sa = unknown
        .iter()
        .find(|o| o["object"]["kind"] == "ServiceAccount" && o["object"]["name"] == "istiod")
        .unwrap();
    assert_eq!(
        sa["reason"],
        "not in the snapshot: it holds no ServiceAccounts of namespace `istio-system` (take it with `kubectl mesh precheck --dump-snapshot`)"
    );
    let crds: Vec<&Value> = objects
        .iter()
        .filter(|o| o["object"]["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 15);
    for c in crds {
        assert_eq!(c["action"], "unknown", "{c}");
        assert!(
            c["reason"].as_str().unwrap().contains("only its metadata"),
            "{c}"
        );
    }
    let (stdout, _) = expect(
        &run(&[
            "--snapshot",
            &old,
            "--dry-run",
            "-f",
            &manifest("default-1.30.3.yaml"),
        ]),
        0,
    );
    assert!(
        stdout.contains("  unknown   ServiceAccount/istio-system/istiod\n              not in the snapshot: it holds no ServiceAccounts"),
        "{stdout}"
    );
    assert!(stdout.contains(", 31 unknown)\n"), "{stdout}");
}

/// A hand-made `kubectl get … -A -o yaml` dump holds whole objects: they are compared, and a
/// kind the user did not dump (here the ServiceAccounts) is unknown.
#[test]
fn a_hand_made_dump_is_compared_whole_and_lacks_only_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(fresh_dump()).unwrap();
    let text = mesh_testbed::dump::hand_made(&fixture, |i| {
        mesh_testbed::dump::kind(i) != "ServiceAccount"
    });
    let hand = file(dir.path(), "hand-made.yaml", &text);
    let r = json_plan_on(&hand, &manifest("default-1.30.3.yaml"));
    let acts = actions(&r);
    let unknown: Vec<&String> = acts
        .iter()
        .filter(|(_, a)| *a == "unknown")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        unknown,
        [
            "ServiceAccount/istio-ingressgateway-service-account",
            "ServiceAccount/istio-reader-service-account",
            "ServiceAccount/istiod"
        ],
        "{acts:#?}"
    );
    assert_eq!(
        acts.values().filter(|a| *a == "unchanged").count(),
        36,
        "{acts:#?}"
    );
}
