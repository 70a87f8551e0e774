//! The change engine against the real test bed (one cluster for this binary, ConfigMaps in a
//! namespace per test): a server-side dry run stops a bad plan before the first change; a 429
//! with Retry-After is waited out for as long as it asks; a failure mid-change (503s through
//! the fault proxy) is rolled back completely; a delete whose object was recreated with a new UID leaves it alone; fields
//! another manager owns are a conflict unless taken over; a backup restores deleted objects and
//! removes created ones.

use std::{collections::BTreeMap, path::Path, time::Duration};

use mesh_common::{
    ObjRef,
    change::{ChangePlan, Op, Phase, Wait},
    cli::OutputFormat,
    cluster::{
        self, ConnectOptions, Engine, EngineOptions, Error, OpStatus, backup::Backup,
        engine::Verdict, retry,
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
    let patches: Vec<(std::time::Instant, Option<u16>)> = proxy
        .requests_at()
        .into_iter()
        .filter(|(_, r)| {
            r.method == "PATCH"
                && r.path.ends_with("/configmaps/slow")
                && !r.query.clone().unwrap_or_default().contains("dryRun")
        })
        .map(|(at, r)| (at, r.status))
        .collect();
    assert_eq!(
        patches.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [Some(429), Some(429), Some(201)],
        "two 429s waited out, then applied"
    );
    // The proxy's 429 says `Retry-After: 1` (and retryAfterSeconds 1 in its Status): each next
    // attempt comes a second later at least, where the backoff alone would wait 250 and 500 ms.
    for pair in patches.windows(2) {
        let waited = pair[1].0 - pair[0].0;
        assert!(
            waited >= Duration::from_secs(1),
            "the next attempt came {waited:?} after a 429 asking for 1 s"
        );
    }
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
    let z_patched = |r: &mesh_testbed::fault::RequestRecord| {
        r.method == "PATCH"
            && r.path.ends_with("/configmaps/z")
            && !r.query.as_deref().unwrap_or("").contains("dryRun")
    };
    // While the second phase fails (its retries take seconds), someone edits `w`, which the
    // change never reaches: the rollback must not revert that edit.
    let edit = std::thread::scope(|s| {
        let editor = s.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while proxy.count(z_patched) == 0 {
                assert!(std::time::Instant::now() < deadline, "z was never patched");
                std::thread::sleep(Duration::from_millis(20));
            }
            kubectl(
                c,
                &["label", "configmap", "-n", &ns, "w", "edited=meanwhile"],
            );
            // How many attempts on z had been made when the edit had landed.
            proxy.count(z_patched)
        });
        let stopped = rt
            .block_on(e.execute(checked, &mut printer(), "go?"))
            .unwrap_err();
        let attempts_at_edit = editor.join().unwrap();
        // The edit counts only if it landed before the rollback began: z was still being
        // retried then (the change gives up, and rolls back, after its last attempt).
        assert!(
            attempts_at_edit < retry::ATTEMPTS as usize,
            "the edit landed after all {attempts_at_edit} attempts on z: too late to test the rollback"
        );
        assert_eq!(
            proxy.count(z_patched),
            retry::ATTEMPTS as usize,
            "z was tried the bounded number of times and left alone by the rollback (it never changed)"
        );
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

/// Runs a one-operation-first plan whose first apply lands on the real apiserver while the
/// fault proxy loses every answer to it (the client sees only broken connections, retried until
/// the engine gives up). Returns the error and the backup.
fn first_answer_lost(
    c: &Cluster,
    ns: &str,
    first: Value,
    rollback: bool,
) -> (String, Backup, FaultProxy, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, kc) = proxy(c, tmp.path());
    let name = first["metadata"]["name"].as_str().unwrap().to_owned();
    proxy.set_rules(vec![
        Rule::delay(Duration::ZERO).query_contains("dryRun"),
        Rule::lose_answer()
            .method("PATCH")
            .path_contains(format!("/namespaces/{ns}/configmaps/{name}")),
    ]);
    let rt = rt();
    let mut e = engine(&rt, &kc, &tmp.path().join("b"));
    if !rollback {
        let mut opts = e.options().clone();
        opts.rollback = false;
        e = Engine::new(e.objects().connection().clone(), opts);
    }
    let mut p = plan(vec![
        ("first", vec![Op::apply(first)]),
        ("second", vec![Op::apply(cm(ns, "later", "1"))]),
    ]);
    p.takeover.insert("mesh-testbed".into());
    let checked = rt.block_on(e.check(&p)).unwrap();
    let stopped = rt
        .block_on(e.execute(checked, &mut printer(), "go?"))
        .unwrap_err();
    let exec = stopped.execution.unwrap();
    assert_eq!(exec.done().count(), 0, "no operation was acknowledged");
    let landed = proxy.count(|r| {
        r.method == "PATCH"
            && r.path.ends_with(&format!("/configmaps/{name}"))
            && !r.query.as_deref().unwrap_or("").contains("dryRun")
            && matches!(r.status, Some(200 | 201))
    });
    assert!(landed > 0, "the apiserver carried the apply out");
    let backup = Backup::read(&exec.backup).unwrap();
    (stopped.error.to_string(), backup, proxy, tmp)
}

/// Real: the apiserver, which applies the ConfigMap. Emulated: a network that loses the
/// answers (the fault proxy forwards each PATCH and closes the connection instead of replying).
#[test]
fn a_first_change_whose_answer_was_lost_is_compared_and_rolled_back() {
    let c = Cluster::shared();
    // An existing object changed by the lost apply: put back, not called "as before" unseen.
    let ns = c.unique_namespace("eng-lost").unwrap();
    c.apply(&serde_json::to_string(&cm(&ns, "a", "v1")).unwrap())
        .unwrap();
    let before = configmaps(c, &ns);
    let (msg, _, _p, _t) = first_answer_lost(c, &ns, cm(&ns, "a", "v2"), true);
    assert!(
        msg.contains("was rolled back: the cluster is as before"),
        "{msg}"
    );
    assert!(msg.contains("1 object(s) restored"), "{msg}");
    assert_eq!(content(&configmaps(c, &ns)), content(&before));

    // An object the lost apply created: found (created since the backup, by kubectl-mesh's
    // apply), its UID recorded, and removed by that UID.
    let ns = c.unique_namespace("eng-lost-new").unwrap();
    let (msg, backup, _p, _t) = first_answer_lost(c, &ns, cm(&ns, "n", "new"), true);
    assert!(msg.contains("1 created object(s) removed"), "{msg}");
    assert!(configmaps(c, &ns).is_empty(), "the created object is gone");
    assert!(
        backup
            .created_objects
            .iter()
            .any(|o| o.object.name == "n" && o.uid.is_some()),
        "the backup records the UID found: {:?}",
        backup.created_objects
    );

    // Without a rollback, the message names what changed instead of calling it unchanged.
    let ns = c.unique_namespace("eng-lost-norb").unwrap();
    c.apply(&serde_json::to_string(&cm(&ns, "a", "v1")).unwrap())
        .unwrap();
    let (msg, _, _p, _t) = first_answer_lost(c, &ns, cm(&ns, "a", "v2"), false);
    assert!(!msg.contains("as before"), "{msg}");
    assert!(
        msg.contains("nothing was rolled back") && msg.contains("/a"),
        "{msg}"
    );
    assert_eq!(configmaps(c, &ns)["a"].0, json!({"k": "v2"}));
}

/// Real: the apiserver, the objects and their UIDs. The backup is the one a change left when it
/// was killed after creating an object and before recording its UID (the UID taken out of a real
/// backup); someone then deleted that object and made their own of the same name.
#[test]
fn a_rollback_never_deletes_a_created_name_whose_uid_the_backup_lacks() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-nouid").unwrap();
    c.apply(&serde_json::to_string(&cm(&ns, "kept", "v1")).unwrap())
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let p = plan(vec![(
        "change",
        vec![
            Op::apply(cm(&ns, "made", "by the change")),
            Op::apply(cm(&ns, "kept", "v2")),
        ],
    )]);
    let mut p = p;
    p.takeover.insert("mesh-testbed".into());
    let checked = rt.block_on(e.check(&p)).unwrap();
    let done = rt
        .block_on(e.execute(checked, &mut printer(), "go?"))
        .unwrap();
    let mut backup = Backup::read(&done.backup).unwrap();
    assert_eq!(backup.created_objects.len(), 1);
    assert!(backup.created_objects[0].uid.is_some(), "recorded at once");
    backup.created_objects[0].uid = None;
    kubectl(c, &["delete", "configmap", "-n", &ns, "made", "--wait"]);
    c.apply(&serde_json::to_string(&cm(&ns, "made", "someone else's")).unwrap())
        .unwrap();
    let theirs = configmaps(c, &ns)["made"].2.clone();

    let rp = rt.block_on(e.rollback_plan(&backup, None)).unwrap();
    assert_eq!(
        rp.kept().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["made"]
    );
    let report = rt.block_on(e.restore(&backup, &mut printer())).unwrap();
    assert_eq!((report.restored, report.removed), (1, 0), "{report:?}");
    assert_eq!(report.kept.len(), 1, "{report:?}");
    let now = configmaps(c, &ns);
    assert_eq!(now["made"].2, theirs, "their object is left alone");
    assert_eq!(now["made"].0, json!({"k": "someone else's"}));
    assert_eq!(
        now["kept"].0,
        json!({"k": "v1"}),
        "the saved object is put back"
    );
}

fn crd(plural: &str, group: &str, kind: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, "singular": kind.to_lowercase(),
                "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

/// A fresh install's plan: CRDs, then resources of their kinds. Real: the apiserver, which
/// serves a kind only once its CRD exists. Nothing emulated.
#[test]
fn resources_of_crds_the_plan_creates_are_matched_by_the_crds_names() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-crds").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let crds = [
        ("telemetries", "telemetry.istio.io", "Telemetry"),
        (
            "authorizationpolicies",
            "security.istio.io",
            "AuthorizationPolicy",
        ),
        ("serviceentries", "networking.istio.io", "ServiceEntry"),
        (
            "gatewayclasses",
            "gateway.networking.k8s.io",
            "GatewayClass",
        ),
    ];
    let mut first = Phase::new("CRDs");
    for (plural, group, kind) in crds {
        let mut object = crd(plural, group, kind);
        if group.ends_with(".k8s.io") {
            // What the Gateway API's own CRDs carry (a protected group).
            object["metadata"]["annotations"] = json!({
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
            });
        }
        first.ops.push(Op::apply(object));
        first.waits.push(Wait::Established {
            crd: format!("{plural}.{group}"),
        });
    }
    let resource = |api: &str, kind: &str| {
        json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": "r", "namespace": ns}, "spec": {}})
    };
    let mut second = Phase::new("resources");
    second.ops = vec![
        Op::apply(resource("telemetry.istio.io/v1", "Telemetry")),
        Op::apply(resource("security.istio.io/v1", "AuthorizationPolicy")),
        Op::apply(resource("networking.istio.io/v1", "ServiceEntry")),
    ];
    let mut p = ChangePlan::default();
    p.push(first.clone());
    p.push(second.clone());
    // A Gateway is not a GatewayClass: no CRD of this plan serves it, so the dry run refuses it
    // before the first change.
    let mut with_gateway = p.clone();
    with_gateway.phases[1].ops.push(Op::apply(resource(
        "gateway.networking.k8s.io/v1",
        "Gateway",
    )));
    let err = rt.block_on(e.check(&with_gateway)).unwrap_err();
    let Error::DryRun { problems, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert!(err.to_string().contains("Gateway"), "{err}");

    let checked = rt.block_on(e.check(&p)).unwrap();
    let deferred = checked
        .verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Deferred(_)))
        .count();
    assert_eq!(deferred, 3, "{:?}", checked.verdicts);
    let done = rt
        .block_on(e.execute(checked, &mut printer(), "go?"))
        .unwrap();
    assert!(
        done.ops.iter().all(|(_, _, s)| *s == OpStatus::Done),
        "{:?}",
        done.ops
    );
    for kind in [
        "telemetries.telemetry.istio.io",
        "authorizationpolicies.security.istio.io",
        "serviceentries.networking.istio.io",
    ] {
        let name = kubectl(c, &["get", kind, "r", "-n", &ns, "-o", "name"]);
        assert!(name.trim().ends_with("/r"), "{kind}: {name}");
    }
}

/// A rollout wait judges a workload by its own pods. Real: the apiserver, the Deployment and
/// ReplicaSet controllers, the scheduler. Emulated: kwok's nodes, which run the pods (no images).
/// `web` is selected by a matchExpression only; `other`, in the same namespace, runs another
/// image in a container of the same name, on more replicas.
#[test]
fn a_rollout_wait_selects_pods_by_match_expressions_too() {
    let c = Cluster::shared();
    let ns = c.unique_namespace("eng-select").unwrap();
    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchExpressions: [{{key: app, operator: In, values: [web]}}]}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "example.com/web:2"}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: other, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: other}}}}
  template:
    metadata: {{labels: {{app: other}}}}
    spec: {{containers: [{{name: web, image: "example.com/web:1"}}]}}
"#
    ))
    .unwrap();
    c.wait_rollout(&ns, "deployment/web").unwrap();
    c.wait_rollout(&ns, "deployment/other").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    let e = engine(&rt, c.kubeconfig(), tmp.path());
    let rollout = |image: &str| Wait::Rollout {
        target: ObjRef::new("apps/v1", "Deployment", Some(&ns), "web"),
        expect: mesh_common::change::Expected {
            images: [("web".to_owned(), image.to_owned())].into(),
            proxy: None,
        },
    };
    let wait = |w: &Wait| {
        rt.block_on(cluster::wait::wait_for(
            e.objects(),
            w,
            Duration::from_secs(3),
        ))
    };
    wait(&rollout("example.com/web:2")).unwrap();
    let err = wait(&rollout("example.com/web:1")).unwrap_err();
    assert!(
        err.to_string().contains("0 of 1 ready pods as expected"),
        "the pods of `other` do not count for `web`: {err}"
    );
}
