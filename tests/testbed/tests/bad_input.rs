//! Every command on bad input (the corpus in `tests/testbed/bad-input/`, plus files made here):
//! exit 2 — 3 where the cluster cannot be reached or rejects the credentials — with one
//! `error:` line naming the problem and a `hint:` with the fix, no panic, nothing on stdout,
//! and, for the runs against the test bed (through its fault proxy, which counts requests), not
//! one write request to the cluster.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use mesh_testbed::{
    Cluster,
    fault::{FaultProxy, Rule, Upstream},
    probe::{sibling_binary, text},
    scenario,
};

fn corpus(name: &str) -> String {
    format!("{}/bad-input/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A snapshot of the test bed with two revisions (`default` 1.29.6, `1-30-3` 1.30.3).
fn snapshot() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../kubectl-mesh-uninstall/tests/fixtures/canary-started.yaml"
    )
    .to_owned()
}

fn bin(name: &str) -> PathBuf {
    sibling_binary(Path::new(env!("CARGO_BIN_EXE_mesh-testbed")), name)
}

fn run(name: &str, args: &[&str], home: &Path) -> Output {
    Command::new(bin(name))
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The shape every bad input must get: the exit code, one `error:` line first that contains
/// `want`, a `hint:`, no panic, nothing on stdout.
fn assert_refused(out: &Output, code: i32, want: &str, case: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{case}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{case}: {err}");
    assert!(err.contains(want), "{case}: wanted `{want}` in:\n{err}");
    assert_eq!(
        err.matches("error:").count(),
        1,
        "{case}: one error line:\n{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("hint: ")),
        "{case}: no hint:\n{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{case}: {err}"
    );
    assert!(
        out.stdout.is_empty(),
        "{case}: stdout:\n{}",
        text(&out.stdout)
    );
}

/// Bad files and flags, without a cluster (`--snapshot`).
#[test]
fn bad_files_and_flags_are_one_line_errors_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("empty-dir");
    std::fs::create_dir(&dir).unwrap();
    let binary = scratch.path().join("binary.yaml");
    std::fs::write(&binary, (0u8..=255).cycle().take(4096).collect::<Vec<u8>>()).unwrap();
    let huge = scratch.path().join("huge.yaml");
    std::fs::write(&huge, vec![0u8; 100 * 1024 * 1024]).unwrap();
    let missing = scratch.path().join("missing.yaml");
    let (dir, binary, huge, missing) = (
        dir.to_str().unwrap().to_owned(),
        binary.to_str().unwrap().to_owned(),
        huge.to_str().unwrap().to_owned(),
        missing.to_str().unwrap().to_owned(),
    );
    let snap = snapshot();
    let s = snap.as_str();
    let m = |name: &str| corpus(name);
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), dir.clone()],
            "is a directory",
        ),
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), missing.clone()],
            "cannot read snapshot",
        ),
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), binary.clone()],
            "is not text",
        ),
        // Unreadable even for root (tests run as root: file modes would not stop a read).
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), "/proc/self/mem".into()],
            "cannot read snapshot",
        ),
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), huge.clone()],
            "is not text",
        ),
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), m("snapshot-malformed.yaml")],
            "cannot use snapshot",
        ),
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), m("snapshot-truncated.json")],
            "cannot use snapshot",
        ),
        (
            "kubectl-mesh-precheck",
            vec!["--snapshot".into(), m("snapshot-wrong-shape.yaml")],
            "cannot use snapshot",
        ),
        (
            "kubectl-mesh-precheck",
            vec![
                "--snapshot".into(),
                s.into(),
                "--release-data".into(),
                m("release-data-gap.yaml"),
            ],
            "line 22: release 1.22 follows 1.20",
        ),
        (
            "kubectl-mesh-precheck",
            vec![
                "--snapshot".into(),
                s.into(),
                "--release-data".into(),
                dir.clone(),
            ],
            "release data",
        ),
        (
            "kubectl-mesh-precheck",
            vec![
                "--snapshot".into(),
                s.into(),
                "--target-version".into(),
                "1.3O.3".into(),
            ],
            "`1.3O.3`",
        ),
        (
            "kubectl-mesh-precheck",
            vec![
                "--snapshot".into(),
                s.into(),
                "--target-version".into(),
                "v1.30".into(),
            ],
            "`v1.30`",
        ),
        (
            "kubectl-mesh-precheck",
            vec![
                "--snapshot".into(),
                s.into(),
                "--target-version".into(),
                "1.30.3-rc.0".into(),
            ],
            "`1.30.3-rc.0`",
        ),
        (
            "kubectl-mesh-precheck",
            vec![
                "--snapshot".into(),
                s.into(),
                "--request-timeout".into(),
                "99999999999999999999".into(),
            ],
            "out of range",
        ),
        (
            "kubectl-mesh-tag",
            vec![
                "set".into(),
                "x".into(),
                "--revision".into(),
                "nope".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "revision `nope` does not exist",
        ),
        (
            "kubectl-mesh-tag",
            vec![
                "set".into(),
                "1-30-3".into(),
                "--revision".into(),
                "default".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "would shadow revision",
        ),
        (
            "kubectl-mesh-tag",
            vec![
                "remove".into(),
                "nope".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "tag `nope` does not exist",
        ),
        (
            "kubectl-mesh-uninstall",
            vec![
                "-r".into(),
                "nope".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "revision `nope` does not exist",
        ),
        (
            "kubectl-mesh-uninstall",
            vec![
                "-r".into(),
                "1.29.6".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "not a valid revision name",
        ),
        (
            "kubectl-mesh-uninstall",
            vec![
                "-r".into(),
                "default".into(),
                "--timeout".into(),
                "0s".into(),
            ],
            "is zero",
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "-f".into(),
                dir.clone(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "has no .yaml",
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "-f".into(),
                "x.yaml".into(),
                "--timeout".into(),
                "0s".into(),
            ],
            "is zero",
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "dataplane".into(),
                "-A".into(),
                "--batch".into(),
                "0".into(),
            ],
            "--batch",
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "dataplane".into(),
                "-A".into(),
                "--to-revision".into(),
                "nope".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "no revision or tag is named `nope`",
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "dataplane".into(),
                "-n".into(),
                "nowhere".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "nowhere",
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "dataplane".into(),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            "-A",
        ),
    ];
    let mut all = cases;
    for (file, want) in [
        ("manifest-malformed.yaml", "not valid YAML"),
        ("manifest-truncated.yaml", "not valid YAML"),
        ("manifest-wrong-kinds.yaml", "no Istio image"),
        ("manifest-empty.yaml", "has no objects"),
        ("manifest-mixed-revisions.yaml", "mixes revisions"),
        ("manifest-mixed-versions.yaml", "mixes Istio versions"),
        ("manifest-bad-version.yaml", "has no Istio version tag"),
    ] {
        all.push((
            "kubectl-mesh-upgrade",
            vec![
                "-f".into(),
                m(file),
                "--dry-run".into(),
                "--snapshot".into(),
                s.into(),
            ],
            want,
        ));
        all.push((
            "kubectl-mesh-precheck",
            vec!["-f".into(), m(file), "--snapshot".into(), s.into()],
            want,
        ));
    }
    for (name, args, want) in &all {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(name, &args, home.path());
        let case = format!("{name} {}", args.join(" "));
        let err = text(&out.stderr);
        if err.contains("For more information, try '--help'") {
            // clap's own refusals of a flag: exit 2, one `error:` line naming the value and
            // what is allowed, its pointer to --help; no panic.
            assert_eq!(out.status.code(), Some(2), "{case}: {err}");
            assert!(
                err.starts_with("error: ") && err.contains(want),
                "{case}: wanted `{want}` in:\n{err}"
            );
            assert!(!err.contains("panicked"), "{case}: {err}");
        } else {
            assert_refused(&out, 2, want, &case);
        }
    }
}

/// Against the test bed, through the fault proxy: unknown revisions and tags, a tag named like a
/// revision, bad manifests and backups, an unknown context, a wrong token and a cluster that
/// does not answer. Not one write request reaches the API server.
#[test]
fn bad_input_against_a_cluster_writes_nothing() {
    let c = Cluster::shared();
    let canary = scenario::canary_revision();
    scenario::install_default(c).unwrap();
    scenario::install_canary(c, canary).unwrap();
    let home = tempfile::tempdir().unwrap();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kc = proxy
        .write_kubeconfig(home.path(), c.admin_token())
        .unwrap();
    let kc = kc.to_str().unwrap().to_owned();
    let with = |mut a: Vec<String>| {
        a.extend(["--kubeconfig".to_owned(), kc.clone()]);
        a
    };
    let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "kubectl-mesh-tag",
            with(v(&["set", "x", "--revision", "nope", "-y"])),
            2,
            "revision `nope` does not exist",
        ),
        (
            "kubectl-mesh-tag",
            with(v(&["set", canary, "--revision", "default", "-y"])),
            2,
            "would shadow revision",
        ),
        (
            "kubectl-mesh-tag",
            with(v(&["remove", "nope", "-y"])),
            2,
            "tag `nope` does not exist",
        ),
        (
            "kubectl-mesh-uninstall",
            with(v(&["-r", "nope", "-y"])),
            2,
            "revision `nope` does not exist",
        ),
        (
            "kubectl-mesh-upgrade",
            with(v(&["-f", &corpus("manifest-mixed-versions.yaml"), "-y"])),
            2,
            "mixes Istio versions",
        ),
        (
            "kubectl-mesh-upgrade",
            with(v(&[
                "-f",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../mesh-core/fixtures/manifests/default-1.30.3.yaml"
                ),
                "--release-data",
                &corpus("release-data-gap.yaml"),
                "-y",
            ])),
            2,
            "release 1.22 follows 1.20",
        ),
        (
            "kubectl-mesh-upgrade",
            with(v(&["dataplane", "-A", "--to-revision", "nope", "-y"])),
            2,
            "no revision or tag is named `nope`",
        ),
        (
            "kubectl-mesh-upgrade",
            with(v(&["rollback", &corpus("backup-other-format.yaml"), "-y"])),
            2,
            "is not a kubectl-mesh backup",
        ),
        (
            "kubectl-mesh-upgrade",
            with(v(&["rollback", &corpus("backup-other-cluster.yaml"), "-y"])),
            2,
            "taken from another cluster",
        ),
        (
            "kubectl-mesh-precheck",
            with(v(&["--context", "nope"])),
            2,
            "context `nope` is not in the kubeconfig",
        ),
    ];
    for (name, args, code, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(name, &args, home.path());
        assert_refused(&out, *code, want, &format!("{name} {}", args.join(" ")));
    }

    // A wrong (or expired) token: exit 3, and the token appears nowhere.
    std::fs::create_dir_all(home.path().join("wrong")).unwrap();
    let wrong = proxy
        .write_kubeconfig(&home.path().join("wrong"), "expired-token-0123456789")
        .unwrap();
    for name in ["kubectl-mesh-precheck", "kubectl-mesh-upgrade"] {
        let mut args = vec!["--kubeconfig", wrong.to_str().unwrap()];
        if name == "kubectl-mesh-upgrade" {
            args.extend(["dataplane", "-A", "--dry-run"]);
        }
        let out = run(name, &args, home.path());
        assert_refused(&out, 3, "rejected the credentials", name);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("expired-token-0123456789") && !all.contains(c.admin_token()));
    }

    let writes = proxy.count(|r| {
        r.method != "GET" && !(r.method == "POST" && r.path.ends_with("/selfsubjectaccessreviews"))
    });
    assert_eq!(
        writes,
        0,
        "a bad input wrote to the cluster: {:?}",
        proxy
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .collect::<Vec<_>>()
    );
    assert!(
        proxy.count(|r| r.method == "GET") > 0,
        "the commands did reach the cluster"
    );

    // A cluster that does not answer: exit 3 within the bounded retries of --request-timeout.
    proxy.set_rules(vec![Rule::hang()]);
    let t = std::time::Instant::now();
    let out = run(
        "kubectl-mesh-precheck",
        &["--kubeconfig", &kc, "--request-timeout", "1s"],
        home.path(),
    );
    assert_refused(
        &out,
        3,
        "cannot reach the API server",
        "a cluster that does not answer",
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "gave up after {:?}",
        t.elapsed()
    );
}

/// Every command as the test bed's `restricted` user (authenticated, nothing else) and as a
/// user who may read everything but change nothing: reads that are forbidden are `skipped` or a
/// clear refusal naming what cannot be read; changes that are not allowed are refused before the
/// first change, naming the verb and resource; no backup is written and nothing changes.
#[test]
fn users_without_rights_are_refused_before_any_change() {
    let c = Cluster::shared();
    let canary = scenario::canary_revision();
    scenario::install_default(c).unwrap();
    scenario::install_canary(c, canary).unwrap();
    c.apply(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mesh-reader}
rules:
- {apiGroups: ['*'], resources: ['*'], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mesh-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mesh-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}]
",
    )
    .unwrap();
    let ns = c.unique_namespace("perm").unwrap();
    scenario::label_namespace(c, &ns, &[("istio-injection", "enabled")]).unwrap();
    scenario::sample_app(c, &ns, 1).unwrap();
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        manifest.path(),
        scenario::manifest(c, "perm-canary", scenario::new_tag()).unwrap(),
    )
    .unwrap();
    let m = manifest.path().to_str().unwrap().to_owned();
    let kc = c.kubeconfig().to_str().unwrap().to_owned();
    let home = tempfile::tempdir().unwrap();
    let before = c.state(mesh_testbed::probe::Uids::Compare);
    let changes: Vec<(&str, Vec<String>)> = vec![
        (
            "kubectl-mesh-tag",
            vec![
                "set".into(),
                "perm".into(),
                "--revision".into(),
                "default".into(),
                "-y".into(),
            ],
        ),
        (
            "kubectl-mesh-uninstall",
            vec!["-r".into(), canary.into(), "--force".into(), "-y".into()],
        ),
        (
            "kubectl-mesh-upgrade",
            vec!["--canary".into(), "-f".into(), m.clone(), "-y".into()],
        ),
        (
            "kubectl-mesh-upgrade",
            vec![
                "dataplane".into(),
                "-n".into(),
                ns.clone(),
                "--to-revision".into(),
                canary.into(),
                "-y".into(),
            ],
        ),
    ];
    for (who, extra) in [
        ("restricted", vec!["--context", "restricted"]),
        ("reader", vec!["--as", "reader"]),
    ] {
        for (name, args) in &changes {
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            all.extend(["--kubeconfig", &kc]);
            all.extend(extra.iter().copied());
            let out = run(name, &all, home.path());
            let case = format!("{who}: {name} {}", all.join(" "));
            let err = text(&out.stderr);
            assert!(matches!(out.status.code(), Some(1 | 3)), "{case}: {err}");
            assert!(err.starts_with("error: "), "{case}: {err}");
            assert!(
                err.lines().any(|l| l.starts_with("hint: ")),
                "{case}: {err}"
            );
            assert!(!err.contains("panicked"), "{case}: {err}");
            // What is missing is named: the resource that cannot be read, or the verb and
            // resource that cannot be changed.
            let named = err.contains("cannot read")
                || err.contains("forbidden")
                || err.contains("missing permissions")
                || text(&out.stdout).contains("denied");
            assert!(
                named,
                "{case}: does not say what is missing:\n{err}\n{}",
                text(&out.stdout)
            );
        }
        // Reading is not refused: precheck reports what it could not check as skipped.
        let mut args = vec!["--kubeconfig", kc.as_str(), "-o", "json"];
        args.extend(extra.iter().copied());
        let out = run("kubectl-mesh-precheck", &args, home.path());
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{who}: {}",
            text(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let all_checks: Vec<&serde_json::Value> = report["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["checks"].as_array().unwrap())
            .collect();
        if who == "restricted" {
            assert!(
                all_checks.iter().any(|c| c["result"] == "skipped"),
                "{who}: {report:#}"
            );
        }
        let perm = all_checks
            .iter()
            .find(|c| c["id"] == "permissions.install")
            .unwrap();
        assert_eq!(perm["result"], "error", "{who} may not install: {perm}");
    }
    let backups = home.path().join(".kube/mesh-backups");
    assert!(
        std::fs::read_dir(&backups).map_or(true, |mut d| d.next().is_none()),
        "a backup was written: nothing should have got that far"
    );
    mesh_testbed::probe::assert_same(
        &before,
        &c.state(mesh_testbed::probe::Uids::Compare),
        "users without rights",
    );
}

/// No credential in anything a command prints or backs up: a run of every command on the test
/// bed, successful changes included (tag set and remove, an in-place upgrade, its rollback,
/// dataplane, uninstall of a canary), with `-o json` and tables, and every backup file written,
/// searched for the test bed's bearer tokens and private keys.
#[test]
fn no_credential_is_printed_or_backed_up() {
    let c = Cluster::start().unwrap();
    let (canary, new) = (scenario::canary_revision(), scenario::new_tag());
    scenario::install_default(&c).unwrap();
    scenario::install_canary(&c, canary).unwrap();
    let home = tempfile::tempdir().unwrap();
    let kc = c.kubeconfig().to_str().unwrap().to_owned();
    let manifest = home.path().join(format!("istio-{new}.yaml"));
    std::fs::write(&manifest, scenario::manifest(&c, "default", new).unwrap()).unwrap();
    let m = manifest.to_str().unwrap().to_owned();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("kubectl-mesh-precheck", vec!["-o", "json"]),
        ("kubectl-mesh-precheck", vec!["--target-version", new]),
        (
            "kubectl-mesh-tag",
            vec!["set", "secret-check", "--revision", canary, "-y"],
        ),
        ("kubectl-mesh-tag", vec!["list", "-o", "yaml"]),
        (
            "kubectl-mesh-tag",
            vec!["remove", "secret-check", "-y", "-o", "json"],
        ),
        (
            "kubectl-mesh-upgrade",
            vec!["-f", &m, "--dry-run", "-o", "json"],
        ),
        ("kubectl-mesh-upgrade", vec!["-f", &m, "-y"]),
        (
            "kubectl-mesh-upgrade",
            vec!["dataplane", "-A", "-y", "-o", "json"],
        ),
        ("kubectl-mesh-upgrade", vec!["rollback", "-y"]),
        (
            "kubectl-mesh-uninstall",
            vec!["-r", canary, "--force", "-y", "-o", "json"],
        ),
        ("kubectl-mesh-precheck", vec!["--context", "restricted"]),
    ];
    let secrets = [
        c.admin_token().to_owned(),
        c.restricted_token().to_owned(),
        key_body(&c.dir().join("pki/sa.key")),
    ];
    let mut seen = String::new();
    for (name, args) in &runs {
        let mut all = args.clone();
        all.extend(["--kubeconfig", &kc]);
        let out = run(name, &all, home.path());
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{name} {args:?}: {}",
            text(&out.stderr)
        );
        seen.push_str(&text(&out.stdout));
        seen.push_str(&text(&out.stderr));
    }
    let backups: Vec<PathBuf> = std::fs::read_dir(home.path().join(".kube/mesh-backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        backups.len() >= 5,
        "every change wrote a backup: {backups:?}"
    );
    for b in &backups {
        seen.push_str(&std::fs::read_to_string(b).unwrap());
    }
    for s in &secrets {
        assert!(s.len() >= 16, "a real secret to look for");
        assert!(
            !seen.contains(s.as_str()),
            "a credential appears in the output or a backup"
        );
    }
}

/// The base64 body of a PEM private key (its longest line), what a leak would contain.
fn key_body(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .max_by_key(|l| l.len())
        .unwrap_or_default()
        .to_owned()
}
