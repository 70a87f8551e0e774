//! `kubectl mesh uninstall --revision` on a mixed sidecar + ambient mesh with two revisions:
//! refused while ztunnel, istio-cni or a waypoint still uses the revision, each named with the
//! command that moves it; once they moved, they no longer block.
//!
//! Real: the test bed's etcd, kube-apiserver, controller-manager, scheduler and three kwok
//! nodes; the default revision of the old release installed by the real `istioctl install
//! --set profile=ambient` (istiod, istio-cni and ztunnel on every node), the new release's
//! canary by `istioctl install`, and later its ambient components by `istioctl install --set
//! profile=ambient --set revision=<canary>` (which moves ztunnel and istio-cni onto the canary,
//! as the manifest `kubectl mesh upgrade -f` takes in the hint does); the Gateway API CRDs;
//! sidecars injected by the harness's injector.
//! Emulated by the test bed (`mesh_testbed::ambient`): istiod's gateway controller (it renders
//! the waypoint, and re-renders it on the canary once its Gateway is labelled — the label
//! `kubectl mesh upgrade dataplane --waypoint` sets, tested in `kubectl-mesh-upgrade`'s
//! `ambient` test), and istio-cni's annotation of the pods it captured.

use std::{path::Path, process::Output};

use mesh_testbed::{
    Cluster, ambient,
    probe::{CONTROL_PLANE_KINDS, json, run_mesh},
    run_with_stdin, scenario,
};
use serde_json::Value;

fn uninstall(c: &Cluster, home: &Path, args: &[&str]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-uninstall"));
    run_mesh(bin, c.kubeconfig(), home, args)
}

/// The ambient blockers of a refused uninstall (exit 1), as `kind subject: command`.
fn ambient_blockers(c: &Cluster, home: &Path, revision: &str) -> Vec<String> {
    let r = json(
        &uninstall(c, home, &["--revision", revision, "-o", "json"]),
        1,
    );
    r["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| matches!(b["kind"].as_str(), Some("ztunnel" | "cni" | "waypoint")))
        .map(|b| {
            format!(
                "{} {}: {}",
                b["kind"].as_str().unwrap(),
                b["subject"].as_str().unwrap(),
                b["command"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn ztunnel_address(c: &Cluster) -> String {
    let ds: Value = serde_json::from_str(&c.kubectl_out(&[
        "get",
        "daemonset",
        "-n",
        "istio-system",
        "ztunnel",
        "-o",
        "json",
    ]))
    .unwrap();
    ds["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "XDS_ADDRESS")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn ztunnel_istio_cni_and_waypoints_block_until_moved() {
    let c = Cluster::shared();
    ambient::canary_mesh(c).unwrap();
    let canary = scenario::canary_revision();
    let home = tempfile::tempdir().unwrap();
    let before = c.objects_of(CONTROL_PLANE_KINDS);
    let manifest = |agent: &str| {
        format!(
            "kubectl mesh upgrade -f <{agent} of revision {canary}: istioctl manifest generate --set profile=ambient --set revision={canary}>"
        )
    };

    // Everything ambient runs on `default`.
    assert_eq!(
        ambient_blockers(c, home.path(), "default"),
        [
            format!(
                "ztunnel ztunnel istio-system/ztunnel: {}",
                manifest("ztunnel")
            ),
            format!(
                "cni istio-cni istio-system/istio-cni-node: {}",
                manifest("istio-cni")
            ),
            format!(
                "waypoint waypoint shop/waypoint: kubectl mesh upgrade dataplane --waypoint shop/waypoint --to-revision {canary}"
            ),
        ]
    );
    assert!(ambient_blockers(c, home.path(), canary).is_empty());
    assert_eq!(
        c.objects_of(CONTROL_PLANE_KINDS).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "a refusal deletes nothing"
    );

    // The waypoint moves to the canary (its Gateway labelled, re-rendered there): it now blocks
    // the canary, with the command back to `default`, and no longer `default`.
    c.kubectl_out(&[
        "label",
        "gateway",
        "-n",
        "shop",
        "waypoint",
        &format!("istio.io/rev={canary}"),
    ]);
    assert_eq!(
        ambient::reconcile_waypoints(c).unwrap(),
        [format!("shop/waypoint@{canary}")]
    );
    c.wait_rollout("shop", "deployment/waypoint").unwrap();
    assert_eq!(
        ambient_blockers(c, home.path(), canary),
        [
            "waypoint waypoint shop/waypoint: kubectl mesh upgrade dataplane --waypoint shop/waypoint --to-revision default"
        ]
    );
    let left: Vec<String> = ambient_blockers(c, home.path(), "default");
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left.iter().all(|b| !b.starts_with("waypoint")), "{left:#?}");

    // ztunnel and istio-cni move to the canary with its ambient components: `default` is free
    // of them.
    let mut cmd = c.istioctl();
    cmd.args(scenario::istioctl_install_args(
        c,
        canary,
        scenario::new_tag(),
    ))
    .args(["--set", "profile=ambient"]);
    run_with_stdin(cmd, "").unwrap();
    c.wait_rollout("istio-system", "daemonset/ztunnel").unwrap();
    assert_eq!(
        ztunnel_address(c),
        format!("istiod-{canary}.istio-system.svc:15012")
    );
    assert!(ambient_blockers(c, home.path(), "default").is_empty());
}
