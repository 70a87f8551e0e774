//! Reading pods as protobuf from the real apiserver of the test bed: the server answers
//! protobuf, every page of it decodes to exactly what the JSON list gives, a 503 on a later
//! page is retried, and a refusal keeps the server's reason.

use std::path::Path;

use kube::{Api, api::ListParams};
use mesh_common::{
    cluster::{self, ConnectOptions, Connection, PAGE, proto::Encoding},
    snapshot::PodInfo,
};
use mesh_testbed::{
    Cluster, ScaleRevision, ScaleSpec,
    fault::{FaultProxy, Rule, Upstream},
    scale, scenario,
};

fn connect(rt: &tokio::runtime::Runtime, kubeconfig: &Path) -> Connection {
    rt.block_on(cluster::connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig.to_owned()),
        ..Default::default()
    }))
    .unwrap()
}

fn sorted(mut pods: Vec<PodInfo>) -> Vec<PodInfo> {
    pods.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    pods
}

/// On a cluster with istiod (pods owned by a ReplicaSet), an injected sample app and more
/// than a page of scale pods (sidecar, init container, status annotation), both encodings
/// give the same pods, field for field, and the protobuf read goes page by page.
#[test]
fn pods_read_as_protobuf_are_the_pods_read_as_json() {
    let c = Cluster::shared();
    scenario::install_default(c).unwrap();
    let app = c.unique_namespace("proto").unwrap();
    scenario::label_namespace(c, &app, &[("istio-injection", "enabled")]).unwrap();
    scenario::sample_app(c, &app, 2).unwrap();
    scale::generate(
        c,
        ScaleSpec {
            namespaces: 2,
            pods_per_namespace: 300,
            revisions: vec![ScaleRevision::injection_enabled("1.29.6")],
            prefix: "proto".into(),
            ..ScaleSpec::default()
        },
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kubeconfig = proxy
        .write_kubeconfig(home.path(), c.admin_token())
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = connect(&rt, &kubeconfig);

    let (first, encoding) = rt.block_on(cluster::pod_page(&conn.client, None)).unwrap();
    assert_eq!(
        encoding,
        Encoding::Protobuf,
        "the apiserver answers protobuf"
    );
    assert_eq!(first.pods.len(), PAGE as usize);
    assert!(first.continue_token.is_some());

    proxy.clear_requests();
    let proto = sorted(rt.block_on(cluster::list_pods(&conn.client)).unwrap());
    let pages = proxy.count(|r| r.path == "/api/v1/pods");
    assert_eq!(
        pages,
        proto.len().div_ceil(PAGE as usize),
        "one request per page"
    );
    let json: Vec<PodInfo> = rt
        .block_on(cluster::list_all(
            Api::<PodInfo>::all(conn.client.clone()),
            ListParams::default(),
        ))
        .unwrap();
    let json = sorted(json.into_iter().map(PodInfo::trimmed).collect());
    assert!(proto.len() >= 600, "{} pods", proto.len());
    assert_eq!(proto.len(), json.len());
    for (p, j) in proto.iter().zip(&json) {
        assert_eq!(
            p,
            j,
            "pod {}/{} differs between encodings",
            j.namespace(),
            j.name()
        );
    }
    let istiod = proto
        .iter()
        .find(|p| p.namespace() == "istio-system" && p.label("app") == Some("istiod"))
        .expect("istiod's pod");
    assert_eq!(
        istiod.controller().map(|o| o.kind.as_str()),
        Some("ReplicaSet")
    );
    let injected = proto
        .iter()
        .find(|p| p.namespace() == app)
        .expect("the sample app's pod");
    assert!(
        injected
            .proxy_image()
            .is_some_and(|i| i.ends_with(":1.29.6"))
    );
    assert!(injected.annotation("sidecar.istio.io/status").is_some());

    // A 503 on the second page is retried; the list is still whole.
    proxy.clear_requests();
    proxy.set_rules(vec![
        Rule::status(503)
            .path_contains("/api/v1/pods")
            .query_contains("continue=")
            .times(2),
    ]);
    let again = sorted(rt.block_on(cluster::list_pods(&conn.client)).unwrap());
    assert_eq!(again.len(), proto.len());
    assert_eq!(proxy.count(|r| r.status == Some(503)), 2);

    // A user who may not list pods gets the server's reason, decoded from its answer.
    let restricted = proxy
        .write_kubeconfig(home.path(), c.restricted_token())
        .unwrap();
    let conn = connect(&rt, &restricted);
    match rt.block_on(cluster::list_pods(&conn.client)) {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("pods is forbidden") && s.reason == "Forbidden",
                "{s:?}"
            );
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}
