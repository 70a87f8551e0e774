//! Real `istioctl install` of the old default revision and the target canary, and injection
//! through the harness's webhook: restarted pods get the proxy of the revision their
//! namespace selects, through a namespace label, a revision label or a revision tag.
#![allow(clippy::print_stderr)] // install times are reported for the record

use std::time::{Duration, Instant};

use mesh_testbed::{Cluster, run_with_stdin, scenario};
use serde_json::Value;

const CANARY: &str = "1-30-3";

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let mut cmd = c.kubectl();
    cmd.args(args);
    run_with_stdin(cmd, "").unwrap()
}

fn install_both(c: &Cluster) {
    let t = Instant::now();
    scenario::install_default(c).unwrap();
    scenario::install_canary(c, CANARY).unwrap();
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
    assert_eq!(img("istiod"), "docker.io/istio/pilot:1.29.6");
    assert_eq!(
        img(&format!("istiod-{CANARY}")),
        "docker.io/istio/pilot:1.30.3"
    );
    assert_eq!(
        img("istio-ingressgateway"),
        "docker.io/istio/proxyv2:1.29.6"
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
        whs.contains("/inject/rev/default") && whs.contains(&format!("/inject/rev/{CANARY}")),
        "{whs}"
    );
}

#[test]
fn restarts_inject_the_proxy_of_the_selected_revision() {
    let c = Cluster::shared();
    install_both(c);
    let old = labelled_app(c, "inj-enabled", ("istio-injection", "enabled"));
    let new = labelled_app(c, "inj-rev", ("istio.io/rev", CANARY));
    assert_web(c, &old, "1.29.6", "default", 2);
    assert_web(c, &new, "1.30.3", CANARY, 2);
    for ns in [&old, &new] {
        kubectl(c, &["rollout", "restart", "-n", ns, "deployment/web"]);
        c.wait_rollout(ns, "deployment/web").unwrap();
    }
    assert_web(c, &old, "1.29.6", "default", 2);
    assert_web(c, &new, "1.30.3", CANARY, 2);
}

#[test]
fn unlabelled_namespaces_are_not_injected_and_a_tag_injects_its_revision() {
    let c = Cluster::shared();
    install_both(c);
    let plain = c.unique_namespace("no-inj").unwrap();
    scenario::sample_app(c, &plain, 1).unwrap();
    assert_eq!(
        web_pods(c, &plain),
        vec![("none".to_owned(), String::new(), true)]
    );
    let mut cmd = c.istioctl();
    cmd.args(["tag", "set", "stable", "--revision", CANARY, "--overwrite"]);
    run_with_stdin(cmd, "").unwrap();
    let tagged = labelled_app(c, "inj-tag", ("istio.io/rev", "stable"));
    assert_web(c, &tagged, "1.30.3", CANARY, 2);
}

#[test]
fn statefulsets_and_daemonsets_are_injected_too() {
    let c = Cluster::shared();
    install_both(c);
    let ns = c.unique_namespace("inj-kinds").unwrap();
    scenario::label_namespace(c, &ns, &[("istio.io/rev", CANARY)]).unwrap();
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
            .all(|i| *i == "docker.io/istio/proxyv2:1.30.3"),
        "{out}"
    );
}

#[test]
fn generated_manifests_carry_the_injector_urls() {
    let c = Cluster::shared();
    let m = scenario::manifest(c, CANARY, "1.30.3").unwrap();
    assert!(m.contains("image: docker.io/istio/pilot:1.30.3"));
    assert!(m.contains(&format!("/inject/rev/{CANARY}")));
    assert!(m.contains(&c.injector().validation_url()));
}
