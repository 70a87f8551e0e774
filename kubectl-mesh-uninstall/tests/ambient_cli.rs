//! `uninstall --revision` on snapshot files of a mixed sidecar + ambient mesh with two revisions,
//! without a cluster: the upgrade tests' `ambient-canary.yaml` (default revision with istio-cni,
//! ztunnel and waypoint `shop/waypoint`; the canary beside it) and `ambient-canary-moved.yaml`
//! (after `upgrade dataplane -n shop -n legacy --to-revision <canary>`: the waypoint and
//! `legacy` on the canary, ztunnel still on `default`), dumped from the test bed by
//! `kubectl-mesh-upgrade`'s e2e test `ambient`.

use std::process::{Command, Output};

use mesh_testbed::scenario;
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!(
        "{}/../kubectl-mesh-upgrade/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn uninstall(snapshot: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall"))
        .args(["--snapshot", &fixture(snapshot), "--dry-run"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The blockers of a refused plan (exit 1), as (kind, subject, command).
fn blockers(out: &Output) -> Vec<(String, String, String)> {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    r["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap().to_owned(),
                b["subject"].as_str().unwrap().to_owned(),
                b["command"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn ambient(all: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    all.into_iter()
        .filter(|(k, _, _)| matches!(k.as_str(), "ztunnel" | "cni" | "waypoint"))
        .collect()
}

fn b(kind: &str, subject: &str, command: &str) -> (String, String, String) {
    (kind.into(), subject.into(), command.into())
}

#[test]
fn the_revision_ztunnel_istio_cni_and_a_waypoint_use_is_refused_naming_their_moves() {
    let canary = scenario::canary_revision();
    let out = uninstall("ambient-canary.yaml", &["-r", "default", "-o", "json"]);
    let manifest = |agent: &str| {
        format!(
            "kubectl mesh upgrade -f <{agent} of revision {canary}: istioctl manifest generate --set profile=ambient --set revision={canary}>"
        )
    };
    assert_eq!(
        ambient(blockers(&out)),
        [
            b(
                "ztunnel",
                "ztunnel istio-system/ztunnel",
                &manifest("ztunnel")
            ),
            b(
                "cni",
                "istio-cni istio-system/istio-cni-node",
                &manifest("istio-cni")
            ),
            b(
                "waypoint",
                "waypoint shop/waypoint",
                &format!(
                    "kubectl mesh upgrade dataplane --waypoint shop/waypoint --to-revision {canary}"
                )
            ),
        ]
    );
    let table = uninstall("ambient-canary.yaml", &["-r", "default"]);
    assert_eq!(table.status.code(), Some(1));
    let stdout = text(&table.stdout);
    for line in [
        "  × ztunnel istio-system/ztunnel: talks to the istiod of revision `default` (XDS_ADDRESS istiod.istio-system.svc:15012) and is deleted with it; every ambient pod on its 3 node(s) depends on it.",
        "  × waypoint shop/waypoint: rendered and configured by the istiod of revision `default` (the default revision; used by Namespace/shop)",
    ] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }
    assert!(
        text(&table.stderr).contains("is still in use"),
        "{}",
        text(&table.stderr)
    );
}

#[test]
fn a_moved_waypoint_blocks_the_canary_and_no_longer_the_old_revision() {
    let canary = scenario::canary_revision();
    let old = blockers(&uninstall(
        "ambient-canary-moved.yaml",
        &["-r", "default", "-o", "json"],
    ));
    let kinds: Vec<String> = ambient(old.clone())
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(kinds, ["ztunnel", "cni"], "{old:#?}");
    let new = blockers(&uninstall(
        "ambient-canary-moved.yaml",
        &["-r", canary, "-o", "json"],
    ));
    assert_eq!(
        ambient(new),
        [b(
            "waypoint",
            "waypoint shop/waypoint",
            "kubectl mesh upgrade dataplane --waypoint shop/waypoint --to-revision default"
        )]
    );
}

#[test]
fn force_overrides_them_like_the_other_uses() {
    let out = uninstall(
        "ambient-canary.yaml",
        &["-r", "default", "--force", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = r["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"ztunnel") && kinds.contains(&"waypoint"),
        "{kinds:?}"
    );
}

#[test]
fn purge_is_refused_while_a_namespace_is_in_ambient_mode() {
    let all = blockers(&uninstall(
        "ambient-canary.yaml",
        &["--purge", "-o", "json"],
    ));
    let shop: Vec<&(String, String, String)> = all
        .iter()
        .filter(|(_, subject, _)| subject == "namespace shop")
        .collect();
    assert_eq!(
        shop,
        [&b(
            "namespace",
            "namespace shop",
            "kubectl label namespace shop istio.io/dataplane-mode-"
        )],
        "{all:#?}"
    );
}

/// The heading names the revision's Istio version, not its image: the fixture's istiod runs
/// `pilot:<version>-distroless`, and the variant is not part of a version.
#[test]
fn the_heading_names_the_version_without_the_image_variant() {
    let dump = std::fs::read_to_string(fixture("ambient-canary.yaml")).unwrap();
    assert!(
        dump.contains("/pilot:") && dump.contains("-distroless"),
        "the fixture's default istiod runs a distroless image"
    );
    let out = uninstall("ambient-canary.yaml", &["-r", "default", "--force"]);
    let heading = text(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        heading.starts_with("Uninstall revision `default` (Istio 1.")
            && !heading.contains("distroless"),
        "{heading}"
    );
}
