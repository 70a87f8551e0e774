//! Real `istioctl install` of the old default revision and the target canary, and injection
//! through the harness's webhook: restarted pods get the proxy of the revision their
//! namespace selects, through a namespace label, a revision label or a revision tag.
#![allow(clippy::print_stderr)] // install times are reported for the record

use std::time::{Duration, Instant};

use mesh_testbed::{Cluster, run_with_stdin, scenario};
use serde_json::Value;

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let mut cmd = c.kubectl();
    cmd.args(args);
    run_with_stdin(cmd, "").unwrap()
}

fn install_both(c: &Cluster) {
    let canary = scenario::canary_revision();
    let t = Instant::now();
    scenario::install_default(c).unwrap();
    scenario::install_canary(c, canary).unwrap();
    eprintln!(
        "both revisions installed (or already there) in {:.1?}",
        t.elapsed()
    );
}

/// (proxy image, status-annotation revision, Ready) of every pod of app `web` in `ns`.
fn web_pods(c: &Cluster, ns: &str) -> Vec<(String, String, bool)> {
    let json: Value = serde_json::from_str(&kubectl(
        c,
        &["get", "pods", "-n", ns, "-l", "app=web", "-o", "json"],
    ))
    .unwrap();
    let items = json["items"].as_array().unwrap();
    items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let proxy = p["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "istio-proxy");
            let image = proxy
                .map_or("none", |c| c["image"].as_str().unwrap())
                .to_owned();
            let status = p["metadata"]["annotations"]["sidecar.istio.io/status"]
                .as_str()
                .unwrap_or("{}");
            let rev = serde_json::from_str::<Value>(status).unwrap()["revision"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (image, rev, ready)
        })
        .collect()
}

/// Waits (≤ 30 s, deletions are asynchronous) until `ns` has exactly `n` Ready `web` pods with
/// proxy `tag` injected by `revision`.
fn assert_web(c: &Cluster, ns: &str, tag: &str, revision: &str, n: usize) {
    let want = vec![
        (
            format!("docker.io/istio/proxyv2:{tag}"),
            revision.to_owned(),
            true
        );
        n
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pods = web_pods(c, ns);
    while pods != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        pods = web_pods(c, ns);
    }
    assert_eq!(pods, want, "namespace {ns}");
}

fn labelled_app(c: &Cluster, prefix: &str, label: (&str, &str)) -> String {
    let ns = c.unique_namespace(prefix).unwrap();
    scenario::label_namespace(c, &ns, &[label]).unwrap();
    scenario::sample_app(c, &ns, 2).unwrap();
    ns
}

#[test]
fn control_planes_run_the_requested_images() {
    let canary = scenario::canary_revision();
    let c = Cluster::shared();
    install_both(c);
    let img = |d: &str| {
        kubectl(
            c,
            &[
                "get",
                "deploy",
                d,
                "-n",
                "istio-system",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        )
    };
    assert_eq!(
        img("istiod"),
        format!("docker.io/istio/pilot:{}", scenario::old_tag())
    );
    assert_eq!(
        img(&format!("istiod-{canary}")),
        format!("docker.io/istio/pilot:{}", scenario::new_tag())
    );
    assert_eq!(
        img("istio-ingressgateway"),
        format!("docker.io/istio/proxyv2:{}", scenario::old_tag())
    );
    let whs = kubectl(
        c,
        &[
            "get",
            "mutatingwebhookconfigurations",
            "-o",
            "jsonpath={.items[*].webhooks[*].clientConfig.url}",
        ],
    );
    assert!(
        whs.contains("/inject/rev/default") && whs.contains(&format!("/inject/rev/{canary}")),
        "{whs}"
    );
}

#[test]
fn restarts_inject_the_proxy_of_the_selected_revision() {
    let canary = scenario::canary_revision();
    let c = Cluster::shared();
    install_both(c);
    let old = labelled_app(c, "inj-enabled", ("istio-injection", "enabled"));
    let new = labelled_app(c, "inj-rev", ("istio.io/rev", canary));
    assert_web(c, &old, scenario::old_tag(), "default", 2);
    assert_web(c, &new, scenario::new_tag(), canary, 2);
    for ns in [&old, &new] {
        kubectl(c, &["rollout", "restart", "-n", ns, "deployment/web"]);
        c.wait_rollout(ns, "deployment/web").unwrap();
    }
    assert_web(c, &old, scenario::old_tag(), "default", 2);
    assert_web(c, &new, scenario::new_tag(), canary, 2);
}

#[test]
fn unlabelled_namespaces_are_not_injected_and_a_tag_injects_its_revision() {
    let canary = scenario::canary_revision();
    let c = Cluster::shared();
    install_both(c);
    let plain = c.unique_namespace("no-inj").unwrap();
    scenario::sample_app(c, &plain, 1).unwrap();
    assert_eq!(
        web_pods(c, &plain),
        vec![("none".to_owned(), String::new(), true)]
    );
    let mut cmd = c.istioctl();
    cmd.args(["tag", "set", "stable", "--revision", canary, "--overwrite"]);
    run_with_stdin(cmd, "").unwrap();
    let tagged = labelled_app(c, "inj-tag", ("istio.io/rev", "stable"));
    assert_web(c, &tagged, scenario::new_tag(), canary, 2);
}

#[test]
fn statefulsets_and_daemonsets_are_injected_too() {
    let canary = scenario::canary_revision();
    let c = Cluster::shared();
    install_both(c);
    let ns = c.unique_namespace("inj-kinds").unwrap();
    scenario::label_namespace(c, &ns, &[("istio.io/rev", canary)]).unwrap();
    scenario::sample_extra_workloads(c, &ns).unwrap();
    let tpl = r#"{range .items[*]}{.spec.containers[?(@.name=="istio-proxy")].image}{"\n"}{end}"#;
    let out = kubectl(
        c,
        &["get", "pods", "-n", &ns, "-o", &format!("jsonpath={tpl}")],
    );
    let images: Vec<&str> = out.lines().collect();
    assert_eq!(images.len(), 1 + mesh_testbed::NODES, "{out}");
    assert!(
        images
            .iter()
            .all(|i| *i == format!("docker.io/istio/proxyv2:{}", scenario::new_tag())),
        "{out}"
    );
}

#[test]
fn generated_manifests_carry_the_injector_urls() {
    let canary = scenario::canary_revision();
    let c = Cluster::shared();
    let m = scenario::manifest(c, canary, scenario::new_tag()).unwrap();
    assert!(m.contains(&format!(
        "image: docker.io/istio/pilot:{}",
        scenario::new_tag()
    )));
    assert!(m.contains(&format!("/inject/rev/{canary}")));
    assert!(m.contains(&c.injector().validation_url()));
    // Each release is rendered with the charts of its generation: only istioctl's own (newer)
    // charts have the `agentgateway-waypoint` injection template.
    let old = scenario::manifest(c, "default", scenario::old_tag()).unwrap();
    assert!(old.contains(&format!(
        "image: docker.io/istio/pilot:{}",
        scenario::old_tag()
    )));
    assert!(m.contains("agentgateway-waypoint:"), "new charts");
    assert!(!old.contains("agentgateway-waypoint"), "old charts");
}
