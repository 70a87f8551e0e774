//! An in-place `istioctl install` of the default revision at a new tag changes the proxy that
//! pods restarted afterwards get: the injector reads the revision's ConfigMap live. Uses its
//! own cluster because it changes the control plane.

use std::time::{Duration, Instant};

use mesh_testbed::{Cluster, run_with_stdin, scenario};

fn proxy_images(c: &Cluster, ns: &str) -> String {
    let mut cmd = c.kubectl();
    cmd.args([
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "app=web",
        "-o",
        r#"jsonpath={range .items[*]}{.spec.containers[?(@.name=="istio-proxy")].image}{" "}{end}"#,
    ]);
    run_with_stdin(cmd, "").unwrap().trim().to_owned()
}

#[test]
fn in_place_upgrade_changes_injected_proxies_after_restart() {
    let c = Cluster::start().unwrap();
    scenario::install_default(&c).unwrap();
    let ns = c.unique_namespace("inplace").unwrap();
    scenario::label_namespace(&c, &ns, &[("istio-injection", "enabled")]).unwrap();
    scenario::sample_app(&c, &ns, 1).unwrap();
    assert_eq!(
        proxy_images(&c, &ns),
        format!("docker.io/istio/proxyv2:{}", scenario::old_tag())
    );
    let new_tag = c.versions().get("ISTIO_NEW_TAG").unwrap().to_owned();
    scenario::install_revision(&c, "default", &new_tag).unwrap();
    let mut cmd = c.kubectl();
    cmd.args(["rollout", "restart", "-n", &ns, "deployment/web"]);
    run_with_stdin(cmd, "").unwrap();
    c.wait_rollout(&ns, "deployment/web").unwrap();
    // The old pod's deletion is asynchronous: wait until only the new one is left.
    let want = format!("docker.io/istio/proxyv2:{new_tag}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy_images(&c, &ns) != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(proxy_images(&c, &ns), want);
}
