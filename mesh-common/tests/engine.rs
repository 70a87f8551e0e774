//! The change engine against the real test bed (one cluster for this binary, ConfigMaps in a
//! namespace per test): a server-side dry run stops a bad plan before the first change; a 429
//! with Retry-After is waited out; a failure mid-change (503s through the fault proxy) is rolled
//! back completely; a delete whose object was recreated with a new UID leaves it alone; fields
//! another manager owns are a conflict unless taken over; a backup restores deleted objects and
//! removes created ones.

use std::{collections::BTreeMap, path::Path, time::Duration};

use mesh_common::{
    ObjRef,
    change::{ChangePlan, Op, Phase, Wait},
    cli::OutputFormat,
    cluster::{
        self, ConnectOptions, Engine, EngineOptions, Error, OpStatus, backup::Backup,
        engine::Verdict,
    },
    output::Printer,
};
use mesh_testbed::{
    Cluster,
    fault::{FaultProxy, Rule, Upstream},
    run_with_stdin,
};
use serde_json::{Value, json};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn engine(rt: &tokio::runtime::Runtime, kubeconfig: &Path, backups: &Path) -> Engine {
    Engine::new(
        e_conn(rt, kubeconfig),
        EngineOptions {
            yes: true,
            force_conflicts: false,
            rollback: true,
            backup_dir: backups.to_owned(),
            operation: "engine-test".into(),
            backup_name: "engine-test".into(),
            command: "engine test".into(),
            timeout: Duration::from_secs(20),
        },
    )
}

fn cm(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": value}})
}

fn cm_ref(ns: &str, name: &str) -> ObjRef {
    ObjRef::new("v1", "ConfigMap", Some(ns), name)
}

fn plan(phases: Vec<(&str, Vec<Op>)>) -> ChangePlan {
    let mut p = ChangePlan::default();
    for (name, ops) in phases {
        let mut ph = Phase::new(name);
        ph.ops = ops;
        p.push(ph);
    }
    p
}

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let mut cmd = c.kubectl();
    cmd.args(args);
    run_with_stdin(cmd, "").unwrap()
}

/// The ConfigMaps of a namespace: name → (data, labels, uid).
fn configmaps(c: &Cluster, ns: &str) -> BTreeMap<String, (Value, Value, String)> {
    let out = kubectl(c, &["get", "configmaps", "-n", ns, "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["metadata"]["name"] != "kube-root-ca.crt")
        .map(|i| {
            (
                i["metadata"]["name"].as_str().unwrap().to_owned(),
                (
                    i["data"].clone(),
                    i["metadata"]["labels"].clone(),
                    i["metadata"]["uid"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Content only (data and labels), for before/after comparisons of restored objects.
fn content(m: &BTreeMap<String, (Value, Value, String)>) -> BTreeMap<String, (Value, Value)> {
    m.iter()
        .map(|(k, (d, l, _))| (k.clone(), (d.clone(), l.clone())))
        .collect()
}

fn printer() -> Printer {
    Printer::buffered(OutputFormat::Table, false).0
}

fn proxy(c: &Cluster, dir: &Path) -> (FaultProxy, std::path::PathBuf) {
    let p =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kc = p.write_kubeconfig(dir, c.admin_token()).unwrap();
    (p, kc)
}

#[test]
fn a_plan_the_server_rejects_changes_nothing() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-reject").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let p = plan(vec![
        ("good", vec![Op::apply(cm(&ns, "good", "1"))]),
        ("bad", vec![Op::apply(cm(&ns, "Not_A_Name", "1"))]),
    ]);
    let err = rt.block_on(e.check(&p)).unwrap_err();
    let Error::DryRun { problems, total } = &err else {
        panic!("{err}")
    };
    assert_eq!((problems.len(), *total), (1, 2));
    assert!(
        err.to_string().contains("ConfigMap/") && err.to_string().contains("Not_A_Name"),
        "{err}"
    );
    assert!(configmaps(c, &ns).is_empty(), "nothing was created");
    assert!(
        std::fs::read_dir(tmp.path()).map_or(true, |mut d| d.next().is_none()),
        "no backup"
    );
}

#[test]
fn a_429_with_retry_after_is_waited_out_and_the_change_completes() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-429").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, kc) = proxy(c, tmp.path());
    proxy.set_rules(vec![
        Rule::delay(Duration::ZERO).query_contains("dryRun"),
        Rule::status(429)
            .method("PATCH")
            .path_contains("/configmaps/slow")
            .times(2),
    ]);
    let rt = rt();
    let e = engine(&rt, &kc, &tmp.path().join("b"));
    let p = plan(vec![("one", vec![Op::apply(cm(&ns, "slow", "1"))])]);
    let checked = rt.block_on(e.check(&p)).unwrap();
    let mut pr = printer();
    let done = rt.block_on(e.execute(checked, &mut pr, "go?")).unwrap();
    assert_eq!(done.ops[0].2, OpStatus::Done);
    let patches: Vec<Option<u16>> = proxy
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.ends_with("/configmaps/slow")
                && !r.query.clone().unwrap_or_default().contains("dryRun")
        })
        .map(|r| r.status)
        .collect();
    assert_eq!(
        patches,
        [Some(429), Some(429), Some(201)],
        "two 429s waited out, then applied"
    );
    assert_eq!(configmaps(c, &ns)["slow"].0, json!({"k": "1"}));
}

#[test]
fn a_failure_mid_change_is_rolled_back_completely() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-503").unwrap();
    for name in ["x", "z", "w"] {
        c.apply(&serde_json::to_string(&cm(&ns, name, "v1")).unwrap())
            .unwrap();
    }
    kubectl(c, &["label", "configmap", "-n", &ns, "z", "team=a"]);
    let before = configmaps(c, &ns);
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, kc) = proxy(c, tmp.path());
    proxy.set_rules(vec![
        Rule::delay(Duration::ZERO).query_contains("dryRun"),
        Rule::status(503)
            .method("PATCH")
            .path_contains("/configmaps/z"),
    ]);
    let rt = rt();
    let e = engine(&rt, &kc, &tmp.path().join("b"));
    let mut p = plan(vec![
        (
            "first",
            vec![
                Op::apply(cm(&ns, "x", "v2")),
                Op::apply(cm(&ns, "y", "new")),
            ],
        ),
        ("second", vec![Op::apply(cm(&ns, "z", "v2"))]),
        ("third", vec![Op::apply(cm(&ns, "w", "v2"))]),
    ]);
    // The objects were made by the harness's own field manager: this plan takes over from it.
    p.takeover.insert("mesh-testbed".into());
    let checked = rt.block_on(e.check(&p)).unwrap();
    // While the second phase fails (its retries take seconds), someone edits `w`, which the
    // change never reaches: the rollback must not revert that edit.
    let edit = std::thread::scope(|s| {
        let editor = s.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while proxy.count(|r| {
                r.method == "PATCH"
                    && r.path.ends_with("/configmaps/z")
                    && !r.query.as_deref().unwrap_or("").contains("dryRun")
            }) == 0
            {
                assert!(std::time::Instant::now() < deadline, "z was never patched");
                std::thread::sleep(Duration::from_millis(20));
            }
            kubectl(
                c,
                &["label", "configmap", "-n", &ns, "w", "edited=meanwhile"],
            );
        });
        let stopped = rt
            .block_on(e.execute(checked, &mut printer(), "go?"))
            .unwrap_err();
        editor.join().unwrap();
        stopped
    });
    let msg = edit.error.to_string();
    assert!(
        msg.contains("was rolled back: the cluster is as before"),
        "{msg}"
    );
    let exec = edit.execution.unwrap();
    assert_eq!(exec.failed_phase, Some(1));
    assert_eq!(exec.done().count(), 2);
    let mut after = configmaps(c, &ns);
    let w = after.remove("w").unwrap();
    assert_eq!(
        w.1["edited"], "meanwhile",
        "an object the change never reached keeps its edit"
    );
    let mut expected = before.clone();
    expected.remove("w");
    assert_eq!(
        content(&after),
        content(&expected),
        "every object as before; y removed"
    );
    assert!(!after.contains_key("y"));
    let backup = Backup::read(&exec.backup).unwrap();
    assert!(!backup.complete);
    assert_eq!(backup.created_objects.len(), 1);
    assert!(
        backup.created_objects[0].uid.is_some(),
        "the created object's UID was recorded"
    );
}

#[test]
fn a_delete_of_an_object_recreated_meanwhile_leaves_it_alone() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-uid").unwrap();
    c.apply(&serde_json::to_string(&cm(&ns, "r", "old")).unwrap())
        .unwrap();
    let uid = configmaps(c, &ns)["r"].2.clone();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let target = cm_ref(&ns, "r");
    let mut ph = Phase::new("delete");
    ph.ops.push(Op::Delete {
        target: target.clone(),
        uid: Some(uid.clone()),
    });
    ph.waits.push(Wait::Gone {
        target: target.clone(),
        uid: Some(uid.clone()),
    });
    let mut p = ChangePlan::default();
    p.push(ph);
    let checked = rt.block_on(e.check(&p)).unwrap();
    assert_eq!(checked.verdicts, [Verdict::Accepted(None)]);
    // Between the plan and its execution someone recreates the object.
    kubectl(c, &["delete", "configmap", "-n", &ns, "r", "--wait"]);
    c.apply(&serde_json::to_string(&cm(&ns, "r", "new")).unwrap())
        .unwrap();
    let mut pr = printer();
    let done = rt.block_on(e.execute(checked, &mut pr, "go?")).unwrap();
    assert!(
        matches!(&done.ops[0].2, OpStatus::Skipped(why) if why.contains("recreated")),
        "{:?}",
        done.ops
    );
    let now = configmaps(c, &ns);
    assert_eq!(now["r"].0, json!({"k": "new"}));
    assert_ne!(now["r"].2, uid);
}

#[test]
fn fields_another_manager_owns_are_a_conflict_unless_taken_over() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-conflict").unwrap();
    let mut cmd = c.kubectl();
    cmd.args([
        "apply",
        "--server-side",
        "--field-manager=platform-team",
        "-f",
        "-",
    ]);
    run_with_stdin(
        cmd,
        &serde_json::to_string(&cm(&ns, "f", "theirs")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let mut p = plan(vec![("one", vec![Op::apply(cm(&ns, "f", "ours"))])]);
    let err = rt.block_on(e.check(&p)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(".data.k (owned by `platform-team`)"),
        "{text}"
    );
    assert_eq!(
        mesh_common::error::Classify::class(&err),
        mesh_common::error::Class::Blocked
    );
    assert_eq!(
        configmaps(c, &ns)["f"].0,
        json!({"k": "theirs"}),
        "not taken silently"
    );
    // The plan's installer may be taken over from; --force-conflicts takes anyone's.
    p.takeover.insert("platform-team".into());
    let checked = rt.block_on(e.check(&p)).unwrap();
    assert!(
        matches!(&checked.verdicts[0], Verdict::TakesOver(_, m) if m == &["platform-team".to_owned()])
    );
    p.takeover.clear();
    let mut opts = e.options().clone();
    opts.force_conflicts = true;
    let forced = Engine::new(e.objects().connection().clone(), opts);
    let checked = rt.block_on(forced.check(&p)).unwrap();
    rt.block_on(forced.execute(checked, &mut printer(), "go?"))
        .unwrap();
    assert_eq!(configmaps(c, &ns)["f"].0, json!({"k": "ours"}));
}

#[test]
fn a_backup_restores_deleted_objects_and_removes_created_ones() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-restore").unwrap();
    c.apply(&serde_json::to_string(&cm(&ns, "d", "keep me")).unwrap())
        .unwrap();
    let before = configmaps(c, &ns);
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let d = cm_ref(&ns, "d");
    let p = plan(vec![(
        "change",
        vec![
            Op::Delete {
                target: d.clone(),
                uid: Some(before["d"].2.clone()),
            },
            Op::apply(cm(&ns, "e", "created")),
        ],
    )]);
    let checked = rt.block_on(e.check(&p)).unwrap();
    let done = rt
        .block_on(e.execute(checked, &mut printer(), "go?"))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&done.backup), 0o600);
    }
    let backup = Backup::read(&done.backup).unwrap();
    assert!(backup.complete);
    let live_id = rt.block_on(e.identity()).unwrap();
    backup.check_cluster(&done.backup, &live_id).unwrap();
    assert!(configmaps(c, &ns).contains_key("e"));
    let report = rt.block_on(e.restore(&backup, &mut printer())).unwrap();
    assert_eq!(
        (report.restored, report.removed),
        (1, 1),
        "{:?}",
        report.failures
    );
    assert_eq!(content(&configmaps(c, &ns)), content(&before));
    let mut other = live_id.clone();
    other.uid = "another-cluster".into();
    assert!(matches!(
        backup.check_cluster(&done.backup, &other),
        Err(Error::OtherCluster { .. })
    ));
}

/// A sink that records what the engine reports and answers its question as told.
struct Recorder {
    answer: cluster::Confirmation,
    asked: Vec<String>,
    events: Vec<String>,
}

impl cluster::Sink for Recorder {
    fn event(&mut self, event: cluster::Event<'_>) {
        self.events.push(mesh_common::output::event_text(&event).0);
    }
    fn confirm(&mut self, question: &str) -> std::io::Result<cluster::Confirmation> {
        self.asked.push(question.to_owned());
        Ok(self.answer)
    }
}

#[test]
fn the_engine_asks_its_caller_and_reports_events_without_printing() {
    // Real: the API server. The engine's question and progress go to the caller's sink.
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-events").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let conn = e_conn(&rt, c.kubeconfig());
    let opts = |yes| EngineOptions {
        yes,
        force_conflicts: false,
        rollback: true,
        backup_dir: tmp.path().join("b"),
        operation: "engine-test".into(),
        backup_name: "engine-test".into(),
        command: "engine test".into(),
        timeout: Duration::from_secs(20),
    };
    let e = Engine::new(conn.clone(), opts(false));
    let p = plan(vec![
        ("one", vec![Op::apply(cm(&ns, "a", "1"))]),
        ("two", vec![Op::apply(cm(&ns, "b", "1"))]),
    ]);
    let mut no = Recorder {
        answer: cluster::Confirmation::No,
        asked: Vec::new(),
        events: Vec::new(),
    };
    let stopped = rt
        .block_on(e.execute(rt.block_on(e.check(&p)).unwrap(), &mut no, "Go on?"))
        .unwrap_err();
    assert!(
        matches!(stopped.error, Error::Declined),
        "{}",
        stopped.error
    );
    assert_eq!(no.asked, ["Go on?"]);
    assert!(no.events.is_empty(), "declined: nothing reported");
    assert!(configmaps(c, &ns).is_empty(), "declined: nothing changed");
    let mut yes = Recorder {
        answer: cluster::Confirmation::Yes,
        ..no
    };
    yes.asked.clear();
    let done = rt
        .block_on(e.execute(rt.block_on(e.check(&p)).unwrap(), &mut yes, "Go on?"))
        .unwrap();
    assert_eq!(yes.asked, ["Go on?"]);
    assert_eq!(
        yes.events,
        [
            format!("backup of 0 object(s) written to {}", done.backup.display()),
            "[1/2] one (1 change(s))...".to_owned(),
            "[2/2] two (1 change(s))...".to_owned(),
        ]
    );
    // `--yes` answers in advance: the caller is not asked.
    let e = Engine::new(conn, opts(true));
    let mut unasked = Recorder {
        answer: cluster::Confirmation::No,
        asked: Vec::new(),
        events: Vec::new(),
    };
    let p = plan(vec![("one", vec![Op::apply(cm(&ns, "a", "2"))])]);
    rt.block_on(e.execute(rt.block_on(e.check(&p)).unwrap(), &mut unasked, "Go on?"))
        .unwrap();
    assert!(unasked.asked.is_empty());
    assert_eq!(configmaps(c, &ns)["a"].0["k"], "2");
}

fn e_conn(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> cluster::Connection {
    rt.block_on(cluster::connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig.to_owned()),
        ..Default::default()
    }))
    .unwrap()
}

#[cfg(unix)]
#[test]
fn a_backup_directory_others_can_write_to_is_refused_before_any_change() {
    // Real: the API server and the file system (a 0777 directory, as a shared /tmp path is).
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-shared-dir").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), &shared);
    let p = plan(vec![("one", vec![Op::apply(cm(&ns, "a", "1"))])]);
    let checked = rt.block_on(e.check(&p)).unwrap();
    let stopped = rt
        .block_on(e.execute(checked, &mut printer(), "go?"))
        .unwrap_err();
    assert!(
        matches!(stopped.error, Error::UntrustedBackup { .. }),
        "{}",
        stopped.error
    );
    assert!(stopped.execution.is_none(), "the change never started");
    assert!(configmaps(c, &ns).is_empty(), "nothing was changed");
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "no backup");
}
