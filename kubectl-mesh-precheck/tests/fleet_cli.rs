//! CLI tests of precheck over a fleet of snapshot files: the dumps `--dump-snapshot DIR` wrote
//! of the fleet test bed (`tests/fleet_e2e.rs`; regenerate with
//! `UPDATE_FIXTURES=1 cargo test -p kubectl-mesh-precheck --test fleet_e2e the_fleet_dumped`),
//! trimmed of the injection templates: `east` (primary, 1.30.5), `west` (primary, 1.31.1) and
//! `remote` (istioctl's remote profile, revisions `default` and `1-31-1`, both injected by
//! east), one mesh `mesh1`. Cross-cluster findings are provoked by editing copies of them. The
//! golden table is regenerated with `UPDATE_GOLDEN=1`; "today" is pinned for end-of-life verdicts.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

const DIR: &str = "tests/fixtures/fleet";

fn precheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("KUBECTL_MESH_TODAY", "2026-12-04")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl-mesh-precheck")
}

fn fixture(name: &str) -> String {
    format!("{DIR}/{name}.yaml")
}

/// `--snapshot` of each file.
fn snapshots(files: &[String]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| ["--snapshot".to_owned(), f.clone()])
        .collect()
}

fn run_json(files: &[String], extra: &[&str]) -> (i32, Value) {
    let mut args = snapshots(files);
    args.extend(["-o", "json"].iter().map(|s| (*s).to_owned()));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = precheck(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn three() -> Vec<String> {
    ["east", "west", "remote"]
        .iter()
        .map(|n| fixture(n))
        .collect()
}

fn checks<'a>(r: &'a Value, id: &str) -> Vec<&'a Value> {
    let out: Vec<&Value> = r["multiCluster"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect();
    assert!(!out.is_empty(), "no {id}: {:#}", r["multiCluster"]);
    out
}

fn results(r: &Value, id: &str) -> Vec<String> {
    checks(r, id)
        .iter()
        .map(|f| f["result"].as_str().unwrap().to_owned())
        .collect()
}

/// A copy of fixture `name` with `edit` applied, in a scratch directory of this test.
fn edited(test: &str, name: &str, edit: impl Fn(String) -> String) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fleet-cli-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    let original =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture(name))).unwrap();
    let changed = edit(original.clone());
    assert_ne!(changed, original, "the edit of {name} changed nothing");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, changed).unwrap();
    path.display().to_string()
}

#[test]
fn the_fleet_table_matches_the_golden_file() {
    let mut args = snapshots(&three());
    args.extend(
        ["--target-version", "1.31.1"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = precheck(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the remote's orphan revision blocks"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(DIR)
        .join("fleet-target.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    assert_eq!(text, std::fs::read_to_string(golden).unwrap());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_json_document_names_clusters_by_their_recorded_context() {
    let (code, r) = run_json(&three(), &[]);
    assert_eq!(code, 1, "{:#}", r["multiCluster"]);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/precheck-fleet/v1");
    let names: Vec<&str> = r["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["east", "west", "remote"]);
    assert_eq!(r["clusters"][2]["mesh"]["role"], "remote");
    assert_eq!(
        r["clusters"][0]["report"]["schemaVersion"],
        "kubectl-mesh.dev/precheck/v1"
    );
    assert_eq!(r["meshes"][0]["id"], "mesh1");
    let inj = checks(&r, "fleet.remote-injection");
    assert!(
        inj.iter().any(|f| f["result"] == "error"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("runs no istiod of revision `1-31-1`")),
        "{inj:#?}"
    );
    assert_eq!(results(&r, "fleet.control-plane-skew"), ["ok"]);
    assert_eq!(results(&r, "fleet.remote-secrets"), ["ok"]);
    // The two primaries alone: nothing blocks.
    let (code, r) = run_json(&[fixture("east"), fixture("west")], &[]);
    assert_eq!(code, 0, "{:#}", r["multiCluster"]);
    assert_eq!(r["success"], true);
    assert_eq!(
        r["upgradeOrder"],
        serde_json::json!([]),
        "no target, no order"
    );
}

#[test]
fn a_remote_no_primary_reads_is_an_error() {
    let east = edited("secret", "east", |t| {
        t.replace(
            "networking.istio.io/cluster: remote",
            "networking.istio.io/cluster: elsewhere",
        )
    });
    let (code, r) = run_json(&[east, fixture("west"), fixture("remote")], &[]);
    assert_eq!(code, 1);
    let s = checks(&r, "fleet.remote-secrets");
    assert!(
        s.iter().any(|f| f["result"] == "error"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("remote `remote` (cluster `remote`)")),
        "{s:#?}"
    );
}

#[test]
fn control_planes_two_minors_apart_across_clusters_are_an_error() {
    let west = edited("skew", "west", |t| {
        t.replace("pilot:1.31.1", "pilot:1.32.0")
    });
    let (code, r) = run_json(&[fixture("east"), west], &[]);
    assert_eq!(code, 1);
    let s = checks(&r, "fleet.control-plane-skew");
    assert_eq!(s[0]["result"], "error", "{s:#?}");
    assert!(
        s[0]["message"]
            .as_str()
            .unwrap()
            .contains("1.30.5 (east/default) and 1.32.0 (west/default)"),
        "{}",
        s[0]["message"]
    );
    // To 1.32 the oldest goes first, as a canary (two minors).
    let (_, r) = run_json(
        &[fixture("east"), fixture("west")],
        &["--target-version", "1.32.0"],
    );
    assert_eq!(r["upgradeOrder"][0]["steps"][0]["cluster"], "east");
    assert_eq!(
        r["clusters"][0]["plan"]["way"], "canary",
        "1.30 → 1.32 in place is refused: {:#}",
        r["clusters"][0]["plan"]
    );
    assert_eq!(
        r["clusters"][0]["plan"]["other"]["blockedBy"],
        serde_json::json!(["skew.in-place", "skew.in-place-proxies"])
    );
    assert_eq!(results(&r, "fleet.upgrade-order"), ["ok"]);
}

#[test]
fn two_clusters_with_one_cluster_name_are_an_error() {
    let west = edited("names", "west", |t| {
        t.replace("\"clusterName\": \"west\"", "\"clusterName\": \"east\"")
    });
    let (code, r) = run_json(&[fixture("east"), west], &[]);
    assert_eq!(code, 1);
    let s = checks(&r, "fleet.mesh-identity");
    assert!(
        s.iter()
            .any(|f| f["result"] == "error" && f["objects"][0] == "`east`: east, west"),
        "{s:#?}"
    );
}

#[test]
fn a_dump_without_remote_secrets_is_skipped_not_passed() {
    let east = edited("unread", "east", |t| t.replace(",remote-secrets", ""));
    let (_, r) = run_json(&[east, fixture("west"), fixture("remote")], &[]);
    assert_eq!(results(&r, "fleet.remote-secrets"), ["skipped"]);
}

#[test]
fn one_snapshot_is_the_single_cluster_precheck() {
    let (_, r) = run_json(&[fixture("east")], &[]);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/precheck/v1");
}

#[test]
fn bad_fleet_input_is_a_usage_error_before_anything_is_read() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fleet-cli-usage");
    std::fs::create_dir_all(&tmp).unwrap();
    let kc = tmp.join("kubeconfig");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters:\n- {name: a, cluster: {server: \"https://127.0.0.1:1\"}}\nusers:\n- {name: a, user: {}}\ncontexts:\n- {name: a, context: {cluster: a, user: a}}\n- {name: b, context: {cluster: a, user: a}}\ncurrent-context: a\n").unwrap();
    let empty = tmp.join("contexts.txt");
    std::fs::write(&empty, "# nobody\n\n").unwrap();
    let kcs = kc.to_str().unwrap();
    let (east, west) = (fixture("east"), fixture("west"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--kubeconfig", kcs, "--context", "a", "--context", "nope"],
            "context `nope` is not in the kubeconfig",
        ),
        (
            vec![
                "--kubeconfig",
                kcs,
                "--contexts-from",
                empty.to_str().unwrap(),
            ],
            "no context to read",
        ),
        (
            vec!["--kubeconfig", kcs, "--all-contexts", "--context", "a"],
            "use one",
        ),
        (
            vec!["--snapshot", &east, "--snapshot", &west, "--context", "a"],
            "not both",
        ),
        (
            vec!["--snapshot", &east, "--snapshot", &west, "-n", "default"],
            "cannot be used with several clusters",
        ),
        (
            vec![
                "--snapshot",
                &east,
                "--snapshot",
                "../tests/testbed/bad-input/snapshot-malformed.yaml",
            ],
            "cannot use snapshot `../tests/testbed/bad-input/snapshot-malformed.yaml`",
        ),
        (
            vec!["--all-contexts", "--parallel", "0"],
            "0 is not in 1..=64",
        ),
    ];
    for (args, says) in cases {
        let out = precheck(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Every check across clusters links to its section of docs/checks.md.
#[test]
fn every_fleet_finding_has_its_section_in_the_catalogue() {
    let (_, r) = run_json(&three(), &["--target-version", "1.31.1", "-v"]);
    let catalogue =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/checks.md"))
            .unwrap();
    let checks = r["multiCluster"]["checks"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> =
        checks.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(ids.len() >= 6, "the fleet checks ran: {ids:?}");
    for f in checks {
        let anchor = f["docs"].as_str().unwrap().rsplit_once('#').unwrap().1;
        assert!(
            catalogue.contains(&format!("\n### {anchor}\n")),
            "no section {anchor} for {}",
            f["id"]
        );
    }
}
