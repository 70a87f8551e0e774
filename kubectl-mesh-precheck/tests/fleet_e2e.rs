//! End-to-end tests of `kubectl mesh precheck` over a fleet: three real test-bed clusters at
//! once, one multi-cluster mesh (`mesh1`), in one kubeconfig with three more contexts that
//! cannot be read.
//!
//! Real: three API servers (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes),
//! Istio installed by the real istioctl — `east` a primary at `ISTIO_OLD_TAG`, `west` a primary
//! at `ISTIO_NEW_TAG`, `remote` installed with istioctl's `remote` profile twice (revision
//! `default`, and a revision named after `ISTIO_NEW_TAG` that `east` does not run), both
//! injection URLs pointing at `east` — and remote secrets made by the real
//! `istioctl create-remote-secret` (remote's and west's on east, east's on west).
//! Emulated: east's istiod is the harness's injector of east (it injects remote's pods from
//! east's injector ConfigMap), reached on loopback instead of an east-west gateway; no istiod
//! reads the remote secrets. The contexts that cannot be read: `gone` (nothing listens),
//! `east-readonly` (a user who may list nothing: forbidden) and `west-expired` (a token the API
//! server rejects); and `east-again`, a second context of `east`. The clusters start once per
//! test binary and are shared.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use mesh_testbed::{
    Cluster,
    multicluster::{self, Entry, User},
    probe, scenario,
};
use serde_json::Value;

struct Bed {
    east: Cluster,
    west: Cluster,
    remote: Cluster,
    kubeconfig: PathBuf,
    dir: PathBuf,
    old: String,
    new: String,
    /// The remote revision no primary runs.
    orphan: String,
}

fn start3() -> anyhow::Result<(Cluster, Cluster, Cluster)> {
    let a = std::thread::spawn(Cluster::start);
    let b = std::thread::spawn(Cluster::start);
    let c = Cluster::start()?;
    let join = |h: std::thread::JoinHandle<anyhow::Result<Cluster>>| {
        h.join()
            .map_err(|_| anyhow::anyhow!("a cluster start panicked"))?
    };
    Ok((join(a)?, join(b)?, c))
}

fn build() -> anyhow::Result<Bed> {
    let (east, west, remote) = start3()?;
    let old = east.versions().get("ISTIO_OLD_TAG")?.to_owned();
    let new = east.versions().get("ISTIO_NEW_TAG")?.to_owned();
    let orphan = new.replace('.', "-");
    std::thread::scope(|s| -> anyhow::Result<()> {
        let e = s.spawn(|| multicluster::install_primary(&east, &old, "east", "mesh1"));
        let w = s.spawn(|| multicluster::install_primary(&west, &new, "west", "mesh1"));
        multicluster::install_remote(&remote, &east, "default", &old, "remote", "mesh1")?;
        multicluster::install_remote(&remote, &east, &orphan, &new, "remote", "mesh1")?;
        e.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        w.join().map_err(|_| anyhow::anyhow!("panicked"))??;
        Ok(())
    })?;
    multicluster::remote_secret(&remote, "remote", &east)?;
    multicluster::remote_secret(&west, "west", &east)?;
    multicluster::remote_secret(&east, "east", &west)?;
    for c in [&east, &west, &remote] {
        let ns = c.unique_namespace("shop")?;
        scenario::label_namespace(c, &ns, &[("istio-injection", "enabled")])?;
        scenario::sample_app(c, &ns, 1)?;
    }
    let canary = remote.unique_namespace("canary")?;
    scenario::label_namespace(&remote, &canary, &[("istio.io/rev", &orphan)])?;
    let dir = east.dir().join("fleet");
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = multicluster::kubeconfig(
        &dir,
        &[
            Entry {
                name: "east",
                cluster: Some(&east),
                user: User::Admin,
            },
            Entry {
                name: "west",
                cluster: Some(&west),
                user: User::Admin,
            },
            Entry {
                name: "remote",
                cluster: Some(&remote),
                user: User::Admin,
            },
            Entry {
                name: "gone",
                cluster: None,
                user: User::Admin,
            },
            Entry {
                name: "east-readonly",
                cluster: Some(&east),
                user: User::Restricted,
            },
            Entry {
                name: "west-expired",
                cluster: Some(&west),
                user: User::BadToken,
            },
            Entry {
                name: "east-again",
                cluster: Some(&east),
                user: User::Admin,
            },
        ],
    )?;
    Ok(Bed {
        east,
        west,
        remote,
        kubeconfig,
        dir,
        old,
        new,
        orphan,
    })
}

fn bed() -> &'static Bed {
    static BED: OnceLock<Result<Bed, String>> = OnceLock::new();
    match BED.get_or_init(|| build().map_err(|e| format!("{e:#}"))) {
        Ok(b) => b,
        Err(e) => panic!("building the fleet test bed failed: {e}"),
    }
}

/// The three clusters of the mesh and the one whose API server is gone.
const FOUR: [&str; 8] = [
    "--context",
    "east",
    "--context",
    "west",
    "--context",
    "remote",
    "--context",
    "gone",
];

fn precheck(b: &Bed, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .arg("--kubeconfig")
        .arg(&b.kubeconfig)
        .args(["--request-timeout", "10s"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl-mesh-precheck")
}

/// No token of any cluster in anything precheck printed.
fn assert_no_credentials(b: &Bed, out: &Output) {
    let all = format!("{}{}", probe::text(&out.stdout), probe::text(&out.stderr));
    for c in [&b.east, &b.west, &b.remote] {
        assert!(!all.contains(c.admin_token()), "an admin token was printed");
        assert!(!all.contains(c.restricted_token()), "a token was printed");
    }
    assert!(
        !all.contains("not-a-token"),
        "the rejected token was printed"
    );
}

fn checks<'a>(r: &'a Value, id: &str) -> Vec<&'a Value> {
    let out: Vec<&Value> = r["multiCluster"]["checks"]
        .as_array()
        .expect("multiCluster.checks")
        .iter()
        .filter(|f| f["id"] == id)
        .collect();
    assert!(!out.is_empty(), "no {id} in {:#}", r["multiCluster"]);
    out
}

fn cluster<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {:#}", r["clusters"]))
}

/// The premise of the "ok" verdicts below: the two releases are one minor apart.
fn one_minor_apart(b: &Bed) {
    let minor = |v: &str| v.split('.').nth(1).unwrap().parse::<i64>().unwrap();
    assert_eq!(
        (minor(&b.new) - minor(&b.old)).abs(),
        1,
        "versions.env: ISTIO_OLD_TAG {} and ISTIO_NEW_TAG {} must be one minor apart",
        b.old,
        b.new
    );
}

#[test]
fn the_fleet_table_shows_every_cluster_and_why_some_were_not_read() {
    let b = bed();
    let out = precheck(b, &["--all-contexts"]);
    let (stdout, _) = probe::expect(&out, 3);
    assert_no_credentials(b, &out);
    let row = |ctx: &str| -> String {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(ctx))
            .unwrap_or_else(|| panic!("no row {ctx}:\n{stdout}"))
            .to_owned()
    };
    assert!(
        row("east").contains(&format!("default {}", b.old)),
        "{}",
        row("east")
    );
    // The default profile's ingress gateway and the sample app's pod.
    assert!(
        row("east").contains(&format!("{}: 2", b.old)),
        "{}",
        row("east")
    );
    assert!(
        row("west").contains(&format!("default {}", b.new)),
        "{}",
        row("west")
    );
    let remote = row("remote");
    assert!(
        remote.contains("default (remote)") && remote.contains(&format!("{} (remote)", b.orphan)),
        "{remote}"
    );
    assert!(
        remote.contains(&format!("{}: 1", b.old)),
        "remote's pod injected by east: {remote}"
    );
    assert!(
        row("gone").ends_with("not read: unreachable"),
        "{}",
        row("gone")
    );
    assert!(
        row("east-readonly").ends_with("not read: forbidden"),
        "{}",
        row("east-readonly")
    );
    assert!(
        row("west-expired").ends_with("not read: credentials rejected"),
        "{}",
        row("west-expired")
    );
    assert!(
        stdout.contains(
            "mesh `mesh1`: 3 cluster(s); primaries: east, west; remotes: remote [fleet.meshes]"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("runs no istiod of revision `{}`", b.orphan)),
        "{stdout}"
    );
    assert!(
        stdout.contains("Fleet: 7 cluster(s), 4 read, 3 not read"),
        "{stdout}"
    );
    // A second context of one cluster is not a second cluster of the mesh (no shared name).
    assert!(
        stdout.contains("`east-again` reaches the same API server as `east`"),
        "{stdout}"
    );
    assert!(!stdout.contains("share a cluster name"), "{stdout}");
    assert!(
        stdout.ends_with("Not every cluster could be read: see above (exit 3).\n"),
        "{stdout}"
    );
    // Unreadable clusters only warn when asked; the orphan revision still blocks.
    let allowed = precheck(b, &["--all-contexts", "--allow-unreachable"]);
    let (stdout, _) = probe::expect(&allowed, 1);
    assert!(
        stdout.contains("3 cluster(s) not read (--allow-unreachable)"),
        "{stdout}"
    );
}

#[test]
fn two_primaries_within_one_minor_pass_and_exit_0() {
    let b = bed();
    one_minor_apart(b);
    let out = precheck(b, &["--context", "east", "--context", "west", "-v"]);
    let (stdout, _) = probe::expect(&out, 0);
    assert!(
        stdout.contains("control planes of mesh `mesh1` are within one minor across clusters"),
        "{stdout}"
    );
    assert!(!stdout.contains("error:"), "{stdout}");
}

#[test]
fn the_json_document_has_every_cluster_the_meshes_and_the_checks_across_them() {
    let b = bed();
    one_minor_apart(b);
    let mut args = FOUR.to_vec();
    args.extend(["-o", "json"]);
    let out = precheck(b, &args);
    let r = probe::json(&out, 3);
    assert_no_credentials(b, &out);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/precheck-fleet/v1");
    assert_eq!(
        (r["success"].clone(), r["exitCode"].clone()),
        (Value::Bool(false), Value::from(3))
    );
    assert_eq!(r["summary"]["unread"], 1);
    let east = cluster(&r, "east");
    assert_eq!(east["controlPlanes"][0]["version"], b.old.as_str());
    assert_eq!(east["mesh"]["clusterName"], "east");
    assert_eq!(east["mesh"]["role"], "primary");
    assert_eq!(
        east["mesh"]["remoteSecrets"],
        serde_json::json!(["remote", "west"])
    );
    assert_eq!(
        east["report"]["schemaVersion"],
        "kubectl-mesh.dev/precheck/v1"
    );
    assert_eq!(east["mode"], "sidecar");
    let remote = cluster(&r, "remote");
    assert_eq!(remote["mesh"]["role"], "remote");
    assert_eq!(
        remote["remoteRevisions"],
        serde_json::json!(
            ["default", b.orphan.as_str()]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
        )
    );
    let gone = cluster(&r, "gone");
    assert_eq!(gone["status"], "unread");
    assert_eq!(gone["failure"]["kind"], "unreachable");
    assert_eq!(
        r["meshes"],
        serde_json::json!([{"id": "mesh1", "clusters": ["east", "west", "remote"]}])
    );
    for id in [
        "fleet.control-plane-skew",
        "fleet.remote-secrets",
        "fleet.mesh-identity",
        "fleet.revision-served",
    ] {
        let f = checks(&r, id);
        assert!(f.iter().all(|x| x["result"] == "ok"), "{id}: {f:#?}");
    }
    let inj = checks(&r, "fleet.remote-injection");
    assert!(
        inj.iter().any(|x| x["result"] == "ok"
            && x["message"]
                .as_str()
                .unwrap()
                .contains("(revision `default`) injects through `east`")),
        "{inj:#?}"
    );
    let bad: Vec<&&Value> = inj.iter().filter(|x| x["result"] == "error").collect();
    assert_eq!(bad.len(), 1, "{inj:#?}");
    assert!(
        bad[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("revision `{}`", b.orphan)),
        "{}",
        bad[0]
    );
    assert!(
        bad[0]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().unwrap().starts_with("remote: Namespace/canary-")),
        "{}",
        bad[0]
    );
}

#[test]
fn a_target_gives_each_cluster_its_way_and_the_mesh_its_upgrade_order() {
    let b = bed();
    one_minor_apart(b);
    let out = precheck(
        b,
        &[
            "--context",
            "west",
            "--context",
            "east",
            "--context",
            "remote",
            "--target-version",
            &b.new,
            "-o",
            "json",
        ],
    );
    let r = probe::json(&out, 1);
    assert_eq!(r["target"]["version"], b.new.as_str());
    let plan = |name: &str| cluster(&r, name)["plan"].clone();
    assert_eq!(plan("east")["way"], "in-place");
    assert_eq!(plan("east")["revision"], "default");
    assert_eq!(
        plan("east")["blockedBy"],
        serde_json::json!([]),
        "{:#}",
        cluster(&r, "east")["report"]
    );
    assert_eq!(plan("west")["way"], "in-place");
    assert_eq!(plan("remote")["way"], "remote");
    let steps = &r["upgradeOrder"][0]["steps"];
    assert_eq!(
        steps[0]["cluster"], "east",
        "the oldest primary first: {steps:#}"
    );
    assert_eq!(steps[0]["action"], "upgrade");
    assert_eq!(steps[0]["from"], serde_json::json!([b.old.as_str()]));
    assert_eq!(
        (
            steps[1]["cluster"].clone(),
            steps[1]["action"].clone(),
            steps[1]["primary"].clone()
        ),
        ("remote".into(), "after-primary".into(), "east".into())
    );
    assert_eq!(
        (steps[2]["cluster"].clone(), steps[2]["action"].clone()),
        ("west".into(), "at-target".into())
    );
    assert_eq!(checks(&r, "fleet.upgrade-order")[0]["result"], "ok");
}

#[test]
fn kubectl_mesh_version_lists_what_istio_runs_in_each_context() {
    let b = bed();
    let dispatcher = probe::sibling_binary(
        Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck")),
        "kubectl-mesh",
    );
    let run = |args: &[&str]| {
        Command::new(&dispatcher)
            .args(["version", "--kubeconfig"])
            .arg(&b.kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kubectl-mesh version")
    };
    let out = run(&[
        "--context",
        "east",
        "--context",
        "remote",
        "--context",
        "gone",
    ]);
    let (stdout, _) = probe::expect(&out, 3);
    assert!(stdout.starts_with("CONTEXT"), "{stdout}");
    assert!(stdout.contains(&format!("default {}", b.old)), "{stdout}");
    assert!(stdout.contains("default (remote)"), "{stdout}");
    assert!(
        stdout.contains("gone: unreachable: cannot reach the API server"),
        "{stdout}"
    );
    let out = run(&["--context", "west", "-o", "json"]);
    let r = probe::json(&out, 0);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/mesh-versions/v1");
    assert_eq!(
        r["clusters"][0]["controlPlanes"][0]["version"],
        b.new.as_str()
    );
    assert!(
        r["clusters"][0].get("report").is_none(),
        "versions only: {r:#}"
    );
}

/// Keeps what the fleet fixtures need of a dump: the install's values and mesh config of each
/// ConfigMap (the injection templates are most of a dump's size and no fleet check reads them),
/// and none of the objects kept for offline plans (whole, or by metadata).
fn trimmed(text: &str) -> String {
    use mesh_common::snapshot::ClusterSnapshot;
    let mut snap = ClusterSnapshot::from_yaml(text, "istio-system").expect("a dump precheck wrote");
    // What a plan from the dump would compare (kept whole) is not what a fleet judges.
    snap.whole.clear();
    snap.whole_kinds.clear();
    snap.others.clear();
    for cm in &mut snap.config_maps {
        if let Some(data) = cm.data.as_mut() {
            data.retain(|k, _| matches!(k.as_str(), "mesh" | "values" | "merged-values"));
        }
    }
    snap.to_yaml().unwrap()
}

#[test]
fn the_fleet_dumped_reads_back_offline_with_the_same_verdicts() {
    let b = bed();
    let dir = b.dir.join("dumps");
    let out = precheck(
        b,
        &[
            "--context",
            "east",
            "--context",
            "west",
            "--context",
            "remote",
            "--dump-snapshot",
            dir.to_str().unwrap(),
        ],
    );
    let (_, stderr) = probe::expect(&out, 0);
    assert!(
        stderr.contains("snapshot of `remote` written to"),
        "{stderr}"
    );
    let files: Vec<String> = ["east", "west", "remote"]
        .iter()
        .map(|n| dir.join(format!("{n}.yaml")).display().to_string())
        .collect();
    // The remote secrets are in the dumps by their metadata only.
    let data = b
        .east
        .kubectl()
        .args([
            "get",
            "secret",
            "-n",
            "istio-system",
            "istio-remote-secret-remote",
            "-o",
            "jsonpath={.data.remote}",
        ])
        .output()
        .unwrap();
    let data = probe::text(&data.stdout);
    assert!(data.len() > 100, "the remote secret has data: {data}");
    let east_dump = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        east_dump.contains("istio-remote-secret-remote"),
        "the secret's metadata is kept"
    );
    assert!(!east_dump.contains(&data[..64]), "no secret data in a dump");
    assert!(
        east_dump.starts_with("# kube-version: v1.34.4\n# context: east\n"),
        "{}",
        &east_dump[..80]
    );
    let mut offline: Vec<&str> = vec!["-o", "json"];
    for f in &files {
        offline.extend(["--snapshot", f.as_str()]);
    }
    let live = probe::json(
        &precheck(
            b,
            &[
                "--context",
                "east",
                "--context",
                "west",
                "--context",
                "remote",
                "-o",
                "json",
            ],
        ),
        1,
    );
    let off = probe::json(&precheck(b, &offline), 1);
    let verdicts = |r: &Value| -> Vec<(String, String, String)> {
        r["multiCluster"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["id"].to_string(),
                    f["result"].to_string(),
                    f["message"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        verdicts(&off),
        verdicts(&live),
        "the same checks across clusters offline"
    );
    let names: Vec<&str> = off["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["east", "west", "remote"],
        "named by the context each dump records"
    );
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleet");
        std::fs::create_dir_all(&fixtures).unwrap();
        for (n, f) in ["east", "west", "remote"].iter().zip(&files) {
            let text = trimmed(&std::fs::read_to_string(f).unwrap());
            std::fs::write(fixtures.join(format!("{n}.yaml")), text).unwrap();
        }
    }
}

/// The README's fleet example, printed: `cargo test -p kubectl-mesh-precheck --test fleet_e2e
/// -- --ignored --nocapture readme_example`.
#[test]
#[ignore = "prints the README example"]
#[allow(clippy::print_stdout)] // printing the example is what this test is for
fn readme_example() {
    let b = bed();
    let mut args = FOUR.to_vec();
    args.extend(["--target-version", &b.new]);
    let out = precheck(b, &args);
    let (stdout, _) = probe::expect(&out, 3);
    println!("{stdout}");
}

/// Remote secrets are listed by their metadata alone — one labelled LIST of the Istio
/// namespace's Secrets asked as `PartialObjectMetadataList`, so the API server never sends
/// their data — and only precheck lists Secrets at all (seen from the API server's side,
/// through the test bed's proxy).
#[test]
fn remote_secrets_are_listed_as_metadata_only_and_only_by_precheck() {
    use mesh_testbed::fault::{FaultProxy, Upstream};
    let b = bed();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(b.east.server_url(), b.east.ca_path()).unwrap())
            .unwrap();
    let dir = b.dir.join("proxied");
    std::fs::create_dir_all(&dir).unwrap();
    let kc = proxy.write_kubeconfig(&dir, b.east.admin_token()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let r = probe::json(&out, 0);
    assert_eq!(r["schemaVersion"], "kubectl-mesh.dev/precheck/v1");
    let secrets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("secrets"))
        .collect();
    assert_eq!(secrets.len(), 1, "{secrets:#?}");
    let s = &secrets[0];
    assert_eq!(s.path, "/api/v1/namespaces/istio-system/secrets");
    assert!(
        s.query
            .as_deref()
            .unwrap_or_default()
            .contains("labelSelector=istio%2FmultiCluster%3Dtrue"),
        "{s:?}"
    );
    assert!(
        s.accept
            .as_deref()
            .unwrap_or_default()
            .contains("as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
        "{s:?}"
    );
    proxy.clear_requests();
    let tag = probe::sibling_binary(
        Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-precheck")),
        "kubectl-mesh-tag",
    );
    let out = Command::new(tag)
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("list")
        .output()
        .unwrap();
    probe::expect(&out, 0);
    assert!(
        proxy.requests().iter().all(|r| !r.path.contains("secrets")),
        "tag list read Secrets: {:#?}",
        proxy.requests()
    );
}
