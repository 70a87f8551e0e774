//! The scale generator creates exactly what it is asked for, spread over the revisions, and kwok
//! makes every pod Running. The full-size run (2,000 namespaces × 10 pods) is `#[ignore]`d:
//! `cargo test -p mesh-testbed --test scale -- --ignored --nocapture` measures it.
#![allow(clippy::print_stderr)] // throughput is reported for the record

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::ListParams;
use mesh_testbed::rt::block;
use mesh_testbed::scenario::{canary_revision, new_tag, old_tag};
use mesh_testbed::{Cluster, ScaleRevision, ScaleSpec, scale};

/// The test bed's releases as the generator's revisions (it creates pods already injected, so
/// nothing is installed).
fn revisions() -> Vec<ScaleRevision> {
    vec![
        ScaleRevision::injection_enabled(old_tag()),
        ScaleRevision::revision(canary_revision(), new_tag()),
        ScaleRevision::tag("stable", canary_revision(), new_tag()),
    ]
}

fn count_by(c: &Cluster, prefix: &str) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let client = c.client();
    let sel = format!("mesh-testbed/scale={prefix}");
    block(async move {
        let lp = ListParams::default().labels(&sel);
        let nss = Api::<Namespace>::all(client.clone())
            .list(&lp)
            .await
            .unwrap();
        let mut by_label = BTreeMap::new();
        for ns in nss.items {
            let labels = ns.metadata.labels.unwrap_or_default();
            let key = ["istio-injection", "istio.io/rev"]
                .iter()
                .find_map(|k| labels.get(*k).map(|v| format!("{k}={v}")))
                .unwrap_or_default();
            *by_label.entry(key).or_insert(0) += 1;
        }
        let pods = Api::<Pod>::all(client).list(&lp).await.unwrap();
        let mut by_proxy = BTreeMap::new();
        for p in pods.items {
            let spec = p.spec.unwrap();
            let proxy = spec
                .containers
                .iter()
                .find(|c| c.name == "istio-proxy")
                .unwrap();
            let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
            let rev = p.metadata.annotations.unwrap_or_default()["istio.io/rev"].clone();
            let key = format!("{} {rev} {phase}", proxy.image.clone().unwrap_or_default());
            *by_proxy.entry(key).or_insert(0) += 1;
        }
        (by_label, by_proxy)
    })
}

#[test]
fn generates_exactly_the_requested_namespaces_and_pods() {
    let c = Cluster::shared();
    let spec = ScaleSpec {
        namespaces: 9,
        pods_per_namespace: 4,
        revisions: revisions(),
        prefix: "sc-small".into(),
        ..ScaleSpec::default()
    };
    let report = scale::generate(c, spec).unwrap();
    assert_eq!(report.namespaces.len(), 9);
    assert_eq!(report.pods, 36);
    let (by_label, by_proxy) = count_by(c, "sc-small");
    let want_ns: BTreeMap<String, usize> = [
        ("istio-injection=enabled".to_owned(), 3),
        (format!("istio.io/rev={}", canary_revision()), 3),
        ("istio.io/rev=stable".to_owned(), 3),
    ]
    .into_iter()
    .collect();
    assert_eq!(by_label, want_ns);
    let want_pods: BTreeMap<String, usize> = [
        (
            format!("docker.io/istio/proxyv2:{} default Running", old_tag()),
            12,
        ),
        (
            format!(
                "docker.io/istio/proxyv2:{} {} Running",
                new_tag(),
                canary_revision()
            ),
            24,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(by_proxy, want_pods);
}

#[test]
#[ignore = "benchmark: 2,000 namespaces × 10 pods, minutes on 2 cores"]
fn full_size_run() {
    let c = Cluster::start().unwrap();
    let spec = ScaleSpec {
        namespaces: 2000,
        pods_per_namespace: 10,
        revisions: revisions(),
        ..ScaleSpec::default()
    };
    let r = scale::generate(&c, spec).unwrap();
    let rate = r.pods as f64 / r.created_in.as_secs_f64();
    eprintln!(
        "scale: {} namespaces, {} pods created in {:.1?} ({rate:.0} pods/s), all Running after {:.1?}",
        r.namespaces.len(),
        r.pods,
        r.created_in,
        r.running_in
    );
    let (by_label, by_proxy) = count_by(&c, "scale");
    assert_eq!(by_label.values().sum::<usize>(), 2000);
    assert_eq!(by_proxy.values().sum::<usize>(), 20_000);
}
