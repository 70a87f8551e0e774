//! Reading pods as protobuf from the real apiserver of the test bed: the server answers
//! protobuf in one unpaged, streamed answer that decodes to exactly what the JSON list gives; a
//! server that answers only JSON is read in JSON pages with the same result; a 503 is retried,
//! and a refusal keeps the server's reason.

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, api::ListParams};
use mesh_common::{
    cluster::{self, ConnectOptions, Connection, PAGE, proto::Encoding},
    snapshot::{PodInfo, PodObject},
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

/// The admin's connection through a counting fault proxy: (its home dir, the proxy, a
/// runtime, the connection).
fn through_proxy(
    c: &Cluster,
) -> (
    tempfile::TempDir,
    FaultProxy,
    tokio::runtime::Runtime,
    Connection,
) {
    let home = tempfile::tempdir().unwrap();
    let proxy =
        FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path()).unwrap()).unwrap();
    let kubeconfig = proxy
        .write_kubeconfig(home.path(), c.admin_token())
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = connect(&rt, &kubeconfig);
    (home, proxy, rt, conn)
}

fn sorted(mut pods: Vec<PodInfo>) -> Vec<PodInfo> {
    pods.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    pods
}

/// On a cluster with istiod (pods owned by a ReplicaSet), an injected sample app and more
/// than a page of scale pods (sidecar, init container, status annotation), both encodings
/// give the same pods, field for field; protobuf is one request, JSON goes page by page.
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
            revisions: vec![ScaleRevision::injection_enabled(scenario::old_tag())],
            prefix: "proto".into(),
            ..ScaleSpec::default()
        },
    )
    .unwrap();
    let (home, proxy, rt, conn) = through_proxy(c);

    proxy.clear_requests();
    let (proto, encoding) = rt.block_on(cluster::list_pods(&conn.client)).unwrap();
    assert_eq!(
        encoding,
        Encoding::Protobuf,
        "the apiserver answers protobuf"
    );
    let proto = sorted(proto);
    let lists = proxy.requests();
    assert_eq!(
        lists.iter().filter(|r| r.path == "/api/v1/pods").count(),
        1,
        "one unpaged request: {lists:?}"
    );
    assert!(
        lists
            .iter()
            .all(|r| !r.query.as_deref().unwrap_or_default().contains("limit=")),
        "{lists:?}"
    );
    let json: Vec<PodObject> = rt
        .block_on(cluster::list_all(
            Api::<PodObject>::all(conn.client.clone()),
            ListParams::default(),
        ))
        .unwrap();
    let json = sorted(json.into_iter().map(PodInfo::from).collect());
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
            .is_some_and(|i| i.ends_with(&format!(":{}", scenario::old_tag())))
    );
    assert!(injected.annotation("sidecar.istio.io/status").is_some());

    // Namespaces: one unpaged protobuf request, the same as JSON's, label for label.
    proxy.clear_requests();
    let (namespaces, encoding) = rt.block_on(cluster::list_namespaces(&conn.client)).unwrap();
    assert_eq!(encoding, Encoding::Protobuf);
    assert_eq!(proxy.count(|r| r.path == "/api/v1/namespaces"), 1);
    let by_name = |mut v: Vec<Namespace>| {
        v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        v
    };
    let json_ns: Vec<Namespace> = rt
        .block_on(cluster::list_all(
            Api::<Namespace>::all(conn.client.clone()),
            ListParams::default(),
        ))
        .unwrap();
    let json_ns = by_name(json_ns.into_iter().map(cluster::namespace_kept).collect());
    assert_eq!(by_name(namespaces.clone()), json_ns);
    let labelled = namespaces
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(app.as_str()))
        .expect("the app's namespace");
    assert_eq!(
        labelled
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("istio-injection"))
            .map(String::as_str),
        Some("enabled")
    );
    assert_eq!(
        labelled.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Active")
    );
    proxy.set_rules(vec![Rule::json_only().path_contains("/api/v1/namespaces")]);
    let (from_json, encoding) = rt.block_on(cluster::list_namespaces(&conn.client)).unwrap();
    assert_eq!(encoding, Encoding::Json);
    assert_eq!(by_name(from_json), json_ns);
    proxy.clear_rules();

    // A server that answers only JSON: its unpaged answer is left unread, and the pods are
    // read in JSON pages instead, the same pods.
    proxy.clear_requests();
    proxy.set_rules(vec![Rule::json_only().path_contains("/api/v1/pods")]);
    let (from_json, encoding) = rt.block_on(cluster::list_pods(&conn.client)).unwrap();
    assert_eq!(encoding, Encoding::Json);
    assert_eq!(sorted(from_json), proto);
    let paged = proxy.count(|r| {
        r.path == "/api/v1/pods"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains(&format!("limit={PAGE}")))
    });
    assert_eq!(paged, proto.len().div_ceil(PAGE as usize), "JSON in pages");

    // A 503 is retried; the list is still whole.
    proxy.clear_requests();
    proxy.set_rules(vec![
        Rule::status(503).path_contains("/api/v1/pods").times(2),
    ]);
    let (again, _) = rt.block_on(cluster::list_pods(&conn.client)).unwrap();
    assert_eq!(sorted(again), proto);
    assert_eq!(proxy.count(|r| r.status == Some(503)), 2);
    proxy.clear_rules();

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

/// The kinds ambient mode adds, read from the real apiserver: one paged LIST each of Nodes and
/// Gateways (a server without the Gateway API CRDs answers 404 for Gateways: none installed,
/// not a gap) and one metadata LIST of the Services labelled `istio.io/use-waypoint`; nodes
/// keep their name, labels, taints and readiness only. A user who may list none of them gets
/// gaps (their checks say `skipped`), never "none".
#[test]
fn nodes_gateways_and_waypoint_users_are_read_once_each() {
    use mesh_common::{cluster::FetchOptions, snapshot::Source};
    let c = Cluster::shared();
    let (home, proxy, rt, conn) = through_proxy(c);
    let opts = FetchOptions {
        istio_namespace: "istio-system".into(),
        ..FetchOptions::default()
    };
    let snap = rt.block_on(cluster::fetch(&conn, &opts)).unwrap();
    for s in [Source::Nodes, Source::Gateways, Source::WaypointServices] {
        assert!(snap.gap(s).is_none(), "{s:?}: {:?}", snap.gap(s));
    }
    assert!(snap.gateways.is_empty(), "no Gateway API CRDs: none");
    assert_eq!(snap.nodes.len(), mesh_testbed::NODES);
    for n in &snap.nodes {
        assert!(n.is_ready() && n.is_linux(), "{n:?}");
        assert!(
            n.metadata.annotations.is_none(),
            "only name, labels, taints, readiness"
        );
    }
    let lists = |p: &str| proxy.count(|r| r.method == "GET" && r.path == p);
    assert_eq!(lists("/api/v1/nodes"), 1);
    assert_eq!(lists("/apis/gateway.networking.k8s.io/v1/gateways"), 1);
    let labelled = proxy.count(|r| {
        r.path == "/api/v1/services"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("labelSelector=istio.io%2Fuse-waypoint"))
    });
    assert_eq!(labelled, 1, "{:?}", proxy.requests());

    let restricted = proxy
        .write_kubeconfig(home.path(), c.restricted_token())
        .unwrap();
    let conn = connect(&rt, &restricted);
    let snap = rt.block_on(cluster::fetch(&conn, &opts)).unwrap();
    for s in [Source::Nodes, Source::Gateways, Source::WaypointServices] {
        let gap = snap
            .gap(s)
            .unwrap_or_else(|| panic!("{s:?} read by a restricted user"));
        assert!(gap.reason.starts_with("forbidden"), "{s:?}: {}", gap.reason);
    }
}
