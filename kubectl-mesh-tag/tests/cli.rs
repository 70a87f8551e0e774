//! The binary on `--snapshot` files (no cluster): exit codes, stdout/stderr split and the JSON
//! shapes of `list` and `generate`.

use std::process::{Command, Output};

use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/two-revisions.yaml"
);

fn tag(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-tag"))
        .args(args)
        .args(["--snapshot", FIXTURE, "--color", "never"])
        .env("NO_COLOR", "1")
        .output()
        .expect("running kubectl-mesh-tag")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

#[test]
fn list_table_shows_tags_revisions_and_direct_namespaces() {
    let o = tag(&["list"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "TAG       REVISION   VERSION   NAMESPACES\n\
         -         1-30-3     1.30.3    direct\n\
         default   default    1.29.6    legacy\n\
         prod      default    1.29.6    shop\n"
    );
    assert_eq!(
        text(&o.stderr),
        "warning: namespace `gone` (istio.io/rev=1-27-0): no injector matches: pods start without a proxy\n"
    );
}

#[test]
fn list_json_has_a_versioned_shape() {
    let o = tag(&["list", "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("list -o json is JSON");
    assert_eq!(v["schemaVersion"], 1);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[2],
        serde_json::json!({"tag": "prod", "revision": "default", "revisionVersion": "1.29.6",
                           "namespaces": ["shop"], "webhook": "istio-revision-tag-prod"})
    );
    assert_eq!(items[0]["tag"], Value::Null, "a revision's own row");
    assert_eq!(items[0]["namespaces"], serde_json::json!(["direct"]));
    assert_eq!(v["unresolved"][0]["namespace"], "gone");
    assert!(
        o.stderr.is_empty(),
        "structured output keeps stderr quiet: {}",
        text(&o.stderr)
    );
}

#[test]
fn generate_prints_the_tag_objects_in_istioctl_order() {
    let o = tag(&["generate", "canary", "--revision", "1-30-3"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(kinds, ["MutatingWebhookConfiguration", "Service"]);
    assert!(
        out.contains("url: https://127.0.0.1:9443/inject/rev/1-30-3"),
        "{out}"
    );
    let o = tag(&["generate", "default", "--revision", "1-30-3", "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "List");
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "istio-revision-tag-default",
            "istiod-default-validator",
            "istiod-revision-tag-default"
        ]
    );
    let vwc = &v["items"][1]["webhooks"][0];
    assert_eq!(
        vwc["clientConfig"]["url"],
        "https://127.0.0.1:9443/validate"
    );
    assert_eq!(vwc["failurePolicy"], "Fail", "istiod's Fail policy is kept");
    assert!(
        text(&o.stderr).contains("does not deactivate the legacy injector"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bad_input_exits_2_with_one_error_and_a_hint() {
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["set", "canary", "--revision", "1-31-0", "--dry-run"],
            "error: revision `1-31-0` does not exist",
            "hint: revisions in this cluster: 1-30-3, default",
        ),
        (
            &["set", "1-30-3", "--revision", "default", "--dry-run"],
            "error: tag `1-30-3` would shadow revision `1-30-3`",
            "hint: namespaces labelled",
        ),
        (
            &["set", "prod", "--revision", "1-30-3", "--dry-run"],
            "error: tag `prod` already points at revision `default`",
            "hint: pass --overwrite",
        ),
        (
            &["generate", "Prod", "--revision", "1-30-3"],
            "error: `Prod` is not a valid tag name",
            "hint: use lowercase",
        ),
        (
            &[
                "generate",
                "x",
                "--revision",
                "1-30-3",
                "--webhook-name",
                "Not_A_Name",
            ],
            "error: `Not_A_Name` is not a valid object name for --webhook-name",
            "hint: use lowercase",
        ),
    ];
    for (args, error, hint) in cases {
        let o = tag(args);
        let err = text(&o.stderr);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(
            err.starts_with(error) && err.contains(hint),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
    }
    let o = tag(&["set", "prod", "--revision", "1-30-3", "--overwrite"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).starts_with("error: --snapshot cannot change a cluster"));
    let o = tag(&["set", "prod"]);
    assert_eq!(code(&o), 2, "clap's usage error: --revision is required");
}

#[test]
fn dry_run_on_a_snapshot_shows_the_blast_radius() {
    let o = tag(&[
        "set",
        "prod",
        "--revision",
        "1-30-3",
        "--overwrite",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("Move tag `prod` from `default` (1.29.6) to `1-30-3` (1.30.3)\n"),
        "{out}"
    );
    assert!(out.contains("shop        istio.io/rev=prod   default (tag prod)   1-30-3 (tag prod)   2      1.29.6 ×2"), "{out}");
    assert!(
        out.contains("✔ 2 proxies stay within one minor of their new control plane [tag.skew]"),
        "{out}"
    );
    assert!(
        out.contains("update   MutatingWebhookConfiguration/istio-revision-tag-prod"),
        "{out}"
    );
    assert!(text(&o.stderr).contains("dry run against a snapshot"));
    let o = tag(&[
        "set",
        "prod",
        "--revision",
        "1-30-3",
        "--overwrite",
        "--dry-run",
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["dryRun"].clone(), v["applied"].clone()),
        (Value::Bool(true), Value::Bool(false))
    );
    assert_eq!(v["plan"]["namespaces"][0]["pods"], 2);
    assert_eq!(
        v["plan"]["namespaces"][0]["after"],
        serde_json::json!({"state": "revision", "revision": "1-30-3", "tag": "prod", "webhook": "istio-revision-tag-prod"})
    );
}

#[test]
fn remove_refuses_a_tag_in_use_without_yes_even_in_a_dry_run() {
    let o = tag(&["remove", "prod", "--dry-run"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: refusing to remove tag `prod` while 1 namespace(s) use it (shop); nothing was changed"), "{err}");
    assert!(
        text(&o.stdout).contains("shop        istio.io/rev=prod   default (tag prod)   nothing"),
        "{}",
        text(&o.stdout)
    );
    let o = tag(&["remove", "prod", "--dry-run", "-y"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let o = tag(&["remove", "nope", "--dry-run"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("hint: tags in this cluster: default, prod"));
}
