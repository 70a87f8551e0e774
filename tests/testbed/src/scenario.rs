//! Istio scenarios on a [`Cluster`]: real `istioctl install` of the "old" default revision and
//! the "new" canary revision, and injected sample workloads.
//!
//! Decisions: the default revision uses istioctl's `default` profile (istiod **and** the
//! `istio-ingressgateway` Deployment, so uninstall/upgrade tests see a gateway); canaries use
//! `profile=minimal` (istiod only, as canaries are usually installed). Both get
//! `hub=docker.io/istio`, `tag=<image tag>` and the injector URLs of [`injection_set_args`].
//! Each tag is rendered with the charts of its generation ([`crate::bins::Releases::charts_for`]):
//! the old release's with `--manifests <older charts>`, the new release's with istioctl's own.
//! Every install function is idempotent per cluster and serialised, so parallel tests in one
//! binary can all call it; tests that *change* the control plane should use their own
//! [`Cluster::start`].

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result};

use crate::cluster::{Cluster, run_with_stdin};

/// `--set` pairs (flattened) pointing every webhook of an install of `revision` at the
/// harness's injector: `values.istiodRemote.injectionURL`/`injectionCABundle` and
/// `values.base.validationURL`/`validationCABundle`.
pub fn injection_set_args(cluster: &Cluster, revision: &str) -> Vec<String> {
    let inj = cluster.injector();
    let sets = [
        format!(
            "values.istiodRemote.injectionURL={}",
            inj.injection_url(revision)
        ),
        format!("values.istiodRemote.injectionCABundle={}", inj.ca_bundle()),
        format!("values.base.validationURL={}", inj.validation_url()),
        format!("values.base.validationCABundle={}", inj.ca_bundle()),
    ];
    sets.into_iter()
        .flat_map(|s| ["--set".to_owned(), s])
        .collect()
}

/// Full `istioctl` arguments installing `revision` (`default` = the non-revisioned install)
/// with image `tag`: `install -y` + [`install_sets`] (charts included).
pub fn istioctl_install_args(cluster: &Cluster, revision: &str, tag: &str) -> Vec<String> {
    let mut args = vec!["install".to_owned(), "-y".to_owned()];
    args.extend(install_sets(cluster, revision, tag));
    args
}

/// The flags of an install of `revision` at `tag`, for `istioctl install` and `manifest
/// generate` alike: the charts of `tag`'s generation (`--manifests <dir>` for the old one), then
/// `--set`s `hub=docker.io/istio`, `tag=<tag>`, for a revision other than `default` also
/// `revision=<rev>` and `profile=minimal`, plus [`injection_set_args`].
pub fn install_sets(cluster: &Cluster, revision: &str, tag: &str) -> Vec<String> {
    let mut sets = vec!["hub=docker.io/istio".to_owned(), format!("tag={tag}")];
    if revision != "default" {
        sets.push(format!("revision={revision}"));
        sets.push("profile=minimal".to_owned());
    }
    let mut args = cluster.releases().charts_for(tag).args();
    args.extend(sets.into_iter().flat_map(|s| ["--set".to_owned(), s]));
    args.extend(injection_set_args(cluster, revision));
    args
}

/// `istioctl manifest generate` with the same `--set`s as [`install_revision`]: the manifest a
/// test hands to `kubectl mesh upgrade -f`.
pub fn manifest(cluster: &Cluster, revision: &str, tag: &str) -> Result<String> {
    let mut cmd = cluster.istioctl();
    cmd.args(["manifest", "generate"])
        .args(install_sets(cluster, revision, tag));
    run_with_stdin(cmd, "")
        .with_context(|| format!("istioctl manifest generate of {revision} ({tag})"))
}

/// Installs the default revision of the old release (`ISTIO_OLD_TAG` on its charts), once per
/// cluster.
pub fn install_default(cluster: &Cluster) -> Result<()> {
    let tag = cluster.releases().old.tag.clone();
    install_revision(cluster, "default", &tag)
}

/// Installs canary `revision` of the new release (`ISTIO_NEW_TAG` on its charts), once per
/// cluster. [`canary_revision`] is the name the tests give it.
pub fn install_canary(cluster: &Cluster, revision: &str) -> Result<()> {
    let tag = cluster.releases().new.tag.clone();
    install_revision(cluster, revision, &tag)
}

/// The CRDs whose schema differs between the test bed's two chart generations (TESTBED.md §9):
/// what an upgrade from the old release to the new one changes in the shared base.
pub const CRDS_CHANGED_BETWEEN_GENERATIONS: [&str; 6] = [
    "destinationrules.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "gateways.networking.istio.io",
    "sidecars.networking.istio.io",
    "trafficextensions.extensions.istio.io",
    "virtualservices.networking.istio.io",
];

/// The old release's image tag (`ISTIO_OLD_TAG`, e.g. `1.30.5`).
pub fn old_tag() -> &'static str {
    &crate::bins::releases().old.tag
}

/// The new release's image tag (`ISTIO_NEW_TAG`, e.g. `1.31.1`).
pub fn new_tag() -> &'static str {
    &crate::bins::releases().new.tag
}

/// The revision name of the new release's canary: its tag with dashes (`1-31-1`).
pub fn canary_revision() -> &'static str {
    static CANARY: OnceLock<String> = OnceLock::new();
    CANARY.get_or_init(|| crate::bins::releases().new.revision())
}

/// Installs `revision` with image `tag` by real `istioctl install`, unless this cluster
/// already got exactly that from this function.
pub fn install_revision(cluster: &Cluster, revision: &str, tag: &str) -> Result<()> {
    let mut done = cluster.istio.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{revision}@{tag}");
    if done.contains(&key) {
        return Ok(());
    }
    let mut cmd = cluster.istioctl();
    cmd.args(istioctl_install_args(cluster, revision, tag));
    run_with_stdin(cmd, "").with_context(|| format!("istioctl install of {revision} ({tag})"))?;
    done.insert(key);
    Ok(())
}

/// Labels namespace `ns` (`kubectl label --overwrite`).
pub fn label_namespace(cluster: &Cluster, ns: &str, labels: &[(&str, &str)]) -> Result<()> {
    let mut cmd = cluster.kubectl();
    cmd.args(["label", "namespace", ns, "--overwrite"]);
    cmd.args(labels.iter().map(|(k, v)| format!("{k}={v}")));
    run_with_stdin(cmd, "").map(drop)
}

/// Deployment `web` (and Service `web`) with `replicas` pods in existing namespace `ns`;
/// returns once the rollout is complete. Whether pods get injected depends on `ns`'s labels.
pub fn sample_app(cluster: &Cluster, ns: &str, replicas: u32) -> Result<()> {
    cluster.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{app: web}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, version: v1}}}}
    spec:
      containers:
      - {{name: web, image: docker.io/kong/httpbin:0.1.0, ports: [{{containerPort: 80, name: http}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 80}}]
"#
    ))?;
    cluster.wait_rollout(ns, "deployment/web")
}

/// StatefulSet `db` (1 replica) and DaemonSet `agent` (one pod per node) in `ns`, rolled out.
pub fn sample_extra_workloads(cluster: &Cluster, ns: &str) -> Result<()> {
    cluster.apply(&format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: db, image: docker.io/library/redis:7}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: agent, image: docker.io/library/busybox:1.36}}]
"#
    ))?;
    cluster.wait_rollout(ns, "statefulset/db")?;
    cluster.wait_rollout(ns, "daemonset/agent")
}

/// The demo of `mesh-testbed up --istio`: the default revision of the old release + the new
/// release's canary ([`canary_revision`], e.g. `1-31-1`); namespace `demo` labelled
/// `istio-injection=enabled` and `prod` labelled `istio.io/rev=<canary>`, each with
/// [`sample_app`] (2 replicas).
pub fn demo(cluster: &Cluster) -> Result<()> {
    let canary = canary_revision();
    install_default(cluster)?;
    install_canary(cluster, canary)?;
    for (ns, label) in [
        ("demo", ("istio-injection", "enabled")),
        ("prod", ("istio.io/rev", canary)),
    ] {
        ensure_namespace(cluster, ns)?;
        label_namespace(cluster, ns, &[label])?;
        sample_app(cluster, ns, 2)?;
    }
    Ok(())
}

fn ensure_namespace(cluster: &Cluster, ns: &str) -> Result<()> {
    let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
    cluster.apply(&yaml).map(drop)
}

/// Images of the containers (and init containers) of pods matching `selector` in `ns`, one line
/// per pod: `<pod> <image> <image>…` (convenience for tests).
pub fn pod_images(cluster: &Cluster, ns: &str, selector: &str) -> Result<String> {
    let mut cmd: Command = cluster.kubectl();
    let tpl = r#"{range .items[*]}{.metadata.name}{" "}{range .spec.initContainers[*]}{.image}{" "}{end}{range .spec.containers[*]}{.image}{" "}{end}{"\n"}{end}"#;
    cmd.args([
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        selector,
        "-o",
        &format!("jsonpath={tpl}"),
    ]);
    run_with_stdin(cmd, "")
}
