//! `kubectl mesh upgrade` across the test bed's two real chart generations: the old release
//! (`ISTIO_OLD_TAG`) rendered from an older istio.io/istio commit's charts, the new one
//! (`ISTIO_NEW_TAG`) from the test bed's istioctl's own (`tests/testbed/versions.env`). Between
//! them 6 CRDs, the injector templates and the values ConfigMap change, as in a real upgrade.
//!
//! Real: etcd, kube-apiserver, controller manager and scheduler; istioctl (`install` and
//! `manifest generate` of both generations); kubectl-mesh. Emulated by the test bed: the nodes
//! and pods (kwok: nothing runs), and the sidecar injector (the harness's webhook stands in for
//! istiod's). No pod is injected here: what is compared are the control plane's objects.
#![allow(clippy::print_stderr)] // timings are reported for the record

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Output,
    time::Instant,
};

use mesh_testbed::{
    Cluster,
    probe::{
        Uids, applied, assert_same, expect, istio_objects, json, planned, portable, run_mesh,
        split_stamps,
    },
    run_with_stdin,
    scenario::{self, CRDS_CHANGED_BETWEEN_GENERATIONS as CHANGED_CRDS},
};
use serde_json::Value;

/// Runs `kubectl-mesh-upgrade ARGS --kubeconfig K` with `HOME` (backups) and no colour.
fn mesh(c: &Cluster, home: &Path, args: &[&str]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-mesh-upgrade"));
    run_mesh(bin, c.kubeconfig(), home, args)
}

/// The default revision's manifest at `tag` with `a`'s settings (the charts of `tag`'s
/// generation), written to `dir`.
fn manifest(a: &Cluster, dir: &Path, tag: &str) -> PathBuf {
    let path = dir.join(format!("istio-{tag}.yaml"));
    std::fs::write(&path, scenario::manifest(a, "default", tag).unwrap()).unwrap();
    path
}

/// A cluster with the new release installed by real `istioctl install` with `a`'s settings —
/// the same `--set`s, so the webhooks name `a`'s injector and the objects can be compared
/// one to one.
fn istioctl_install_of_the_new_release(a: &Cluster) -> Cluster {
    let t = Instant::now();
    let b = Cluster::start().unwrap();
    let mut cmd = b.istioctl();
    cmd.args(scenario::istioctl_install_args(
        a,
        "default",
        scenario::new_tag(),
    ));
    run_with_stdin(cmd, "").unwrap();
    eprintln!(
        "second cluster with istioctl's install of {} in {:.1?}",
        scenario::new_tag(),
        t.elapsed()
    );
    b
}

/// The dry run's plan (JSON and table) names what changes between the generations: exactly
/// the six CRDs' schemas, the injector's templates and the values ConfigMap, besides images.
fn assert_plan_shows_the_chart_changes(a: &Cluster, home: &Path, target: &Path) {
    let target = target.to_str().unwrap();
    let r = json(
        &mesh(a, home, &["-f", target, "--dry-run", "-o", "json"]),
        0,
    );
    let plan = planned(&r);
    let crds: BTreeSet<&str> = plan
        .iter()
        .filter(|(k, p)| k.starts_with("CustomResourceDefinition/") && !p.fields.is_empty())
        .map(|(k, _)| k.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        crds,
        BTreeSet::from(CHANGED_CRDS),
        "CRDs whose spec changes"
    );
    for crd in CHANGED_CRDS {
        let p = &plan[&format!("CustomResourceDefinition//{crd}")];
        assert_eq!(p.action, "update", "{crd}");
        assert!(
            p.fields.iter().all(|f| f.starts_with("versions[")),
            "{crd}: {:?}",
            p.fields
        );
    }
    let injector = &plan["ConfigMap/istio-system/istio-sidecar-injector"].fields;
    let values = &plan["ConfigMap/istio-system/values"].fields;
    for (field, of) in [
        ("templates.sidecar", injector),
        ("templates.agentgateway-waypoint", injector),
        ("values.global.tag", injector),
        // A chart default the new generation adds, as the installer recorded it.
        ("merged-values.taint.name", values),
    ] {
        assert!(of.iter().any(|f| f == field), "{field}: {of:?}");
    }

    let (stdout, _) = expect(&mesh(a, home, &["-f", target, "--dry-run"]), 0);
    for crd in CHANGED_CRDS {
        let line = format!("  update    CustomResourceDefinition/{crd}\n");
        let at = stdout
            .find(&line)
            .unwrap_or_else(|| panic!("{line}{stdout}"));
        let next = stdout[at + line.len()..]
            .lines()
            .take(3)
            .collect::<String>();
        assert!(next.contains("versions["), "{crd}:\n{next}");
    }
    for line in [
        "  update    ConfigMap/istio-system/istio-sidecar-injector\n",
        "              templates.agentgateway-waypoint: (none) → ",
        "              templates.sidecar: ",
        "  update    ConfigMap/istio-system/values\n",
        "              merged-values.taint.name: (none) → cni.istio.io/not-ready\n",
    ] {
        assert!(stdout.contains(line), "`{line}` in:\n{stdout}");
    }
}

/// Asserts the installers' version stamps: `ours` on every object in `applied` (at least 30),
/// istioctl's on the others — the objects istioctl makes beside the manifest's (the `default`
/// revision tag's webhooks and Service), which an upgrade leaves alone.
fn assert_stamped(
    stamps: &BTreeMap<String, String>,
    applied: &BTreeSet<String>,
    (ours, istioctl): (&str, &str),
    what: &str,
) {
    let stamped_applied = stamps.keys().filter(|k| applied.contains(*k)).count();
    let wrong: Vec<(&String, &String)> = stamps
        .iter()
        .filter(|(k, v)| *v != if applied.contains(*k) { ours } else { istioctl })
        .collect();
    assert!(
        stamped_applied >= 30 && wrong.is_empty(),
        "{what}: {stamped_applied} applied objects stamped; wrong stamps: {wrong:?}"
    );
}

/// Objects of the Istio install without what differs between two clusters, and their stamps.
fn portable_install(c: &Cluster) -> (BTreeMap<String, Value>, BTreeMap<String, String>) {
    let objects = istio_objects(c.state(Uids::Ignore));
    split_stamps(objects.into_iter().map(|(k, o)| (k, portable(o))).collect())
}

/// In place, across the two chart generations, and back:
/// 1. the dry run's plan (JSON and table) shows exactly the six CRDs whose schemas change, the
///    injector's new and changed templates and the values ConfigMap;
/// 2. `-y`: the upgraded cluster equals, object by object, what real `istioctl install` of the
///    same settings at the new release makes on a second cluster — ignoring only what the
///    server allocates per cluster (UIDs, Service IPs and node ports) and the installers'
///    version stamp (istioctl stamps its build, kubectl-mesh the manifest's version: checked);
/// 3. the downgrade with the old release's manifest brings back every object as it was before
///    the upgrade, field by field and by UID (the version stamp now the old release's);
/// 4. `rollback -y` undoes the downgrade: every object as it was after the upgrade, stamps and
///    UIDs included.
#[test]
fn in_place_across_chart_generations_matches_istioctl_and_comes_back_field_by_field() {
    let t0 = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (old, new) = (scenario::old_tag(), scenario::new_tag());
    let releases = mesh_testbed::bins::releases();
    assert_ne!(releases.old.charts, releases.new.charts, "two generations");
    let a = Cluster::start().unwrap();
    scenario::install_default(&a).unwrap();
    let b = istioctl_install_of_the_new_release(&a);
    let (target, previous) = (
        manifest(&a, files.path(), new),
        manifest(&a, files.path(), old),
    );
    let before = a.state(Uids::Compare);
    let (before_objects, before_stamps) = split_stamps(before.clone());
    let istioctl = a.versions().get("ISTIOCTL_VERSION").unwrap();
    let everything: BTreeSet<String> = before_stamps.keys().cloned().collect();
    let by_istioctl = (istioctl, istioctl);
    assert_stamped(
        &before_stamps,
        &everything,
        by_istioctl,
        "istioctl's install",
    );

    // 1. The plan.
    assert_plan_shows_the_chart_changes(&a, home.path(), &target);
    assert_same(&before, &a.state(Uids::Compare), "dry runs");

    // 2. Upgrade, then compare with istioctl's install of the same settings.
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let r = json(
        &mesh(&a, home.path(), &["-f", &s(&target), "-y", "-o", "json"]),
        0,
    );
    assert_eq!(r["target"]["direction"], "upgrade");
    let upgrade = applied(&r);
    let upgraded = a.state(Uids::Compare);
    let (ours, our_stamps) = portable_install(&a);
    let (theirs, their_stamps) = portable_install(&b);
    drop(b);
    assert_same(
        &theirs,
        &ours,
        "kubectl-mesh's upgrade against istioctl's install",
    );
    assert_eq!(
        our_stamps.keys().collect::<Vec<_>>(),
        their_stamps.keys().collect::<Vec<_>>(),
        "the same objects carry the version stamp"
    );
    assert_stamped(&our_stamps, &upgrade, (new, istioctl), "our upgrade");
    assert_stamped(
        &their_stamps,
        &everything,
        by_istioctl,
        "istioctl's install",
    );

    // 3. Downgrade: every object as before the upgrade.
    let r = json(
        &mesh(&a, home.path(), &["-f", &s(&previous), "-y", "-o", "json"]),
        0,
    );
    assert_eq!(r["target"]["direction"], "downgrade");
    assert_eq!(r["target"]["from"], new);
    let downgrade = applied(&r);
    assert_eq!(
        downgrade, upgrade,
        "the downgrade applies what the upgrade did"
    );
    let (downgraded, down_stamps) = split_stamps(a.state(Uids::Compare));
    let what = "after the downgrade, against before the upgrade";
    assert_same(&before_objects, &downgraded, what);
    assert_eq!(
        down_stamps.keys().collect::<Vec<_>>(),
        before_stamps.keys().collect::<Vec<_>>()
    );
    assert_stamped(&down_stamps, &downgrade, (old, istioctl), "our downgrade");

    // 4. Rollback of the downgrade: every object as after the upgrade.
    let (stdout, _) = expect(&mesh(&a, home.path(), &["rollback", "-y"]), 0);
    assert!(stdout.contains("✔ rolled back"), "{stdout}");
    let what = "after the rollback of the downgrade, against after the upgrade";
    assert_same(&upgraded, &a.state(Uids::Compare), what);
    eprintln!(
        "in_place_across_chart_generations_matches_istioctl_and_comes_back_field_by_field: {:.1?}",
        t0.elapsed()
    );
}
