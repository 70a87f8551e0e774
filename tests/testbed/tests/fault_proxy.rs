//! The fault proxy (test tier 5) in front of the real apiserver of the test bed: requests from
//! kubectl and kube-rs pass through and are counted exactly, and each fault is seen by them.
//!
//! Each test starts its own proxy, so rules and counters do not mix between parallel tests.

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use mesh_testbed::{
    Cluster,
    fault::{Action, FaultProxy, RequestRecord, Rule, Upstream},
    rt::block,
};

const NAMESPACES: &str = "/api/v1/namespaces";

struct Setup {
    cluster: &'static Cluster,
    proxy: FaultProxy,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let cluster = Cluster::shared();
    let upstream = Upstream::from_ca_file(cluster.server_url(), cluster.ca_path()).unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy
        .write_kubeconfig(dir.path(), cluster.admin_token())
        .unwrap();
    Setup {
        cluster,
        proxy,
        kubeconfig,
        dir,
    }
}

impl Setup {
    /// Real kubectl through the proxy, with its own discovery cache.
    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.cluster.binary("kubectl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("cache").display()
            ))
            .args(args)
            .output()
            .unwrap()
    }

    /// A kube-rs client through the proxy as `token`; `retry` keeps kube's default retries of
    /// 429/503/504.
    fn client(&self, token: &str, retry: bool) -> Client {
        let path = self.proxy.write_kubeconfig(self.dir.path(), token).unwrap();
        block(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let kubeconfig = Kubeconfig::read_from(&path).unwrap();
            let mut config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .unwrap();
            config.default_retry = retry;
            Client::try_from(config).unwrap()
        })
    }

    fn admin(&self, retry: bool) -> Client {
        self.client(self.cluster.admin_token(), retry)
    }
}

fn list_namespaces(client: &Client) -> kube::Result<Vec<String>> {
    let api = Api::<Namespace>::all(client.clone());
    block(async move {
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|ns| ns.metadata.name)
            .collect())
    })
}

fn api_status(result: kube::Result<Vec<String>>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn is_list_namespaces(r: &RequestRecord) -> bool {
    r.method == "GET" && r.path == NAMESPACES
}

/// Discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, `/version`, `/openapi/...`.
fn is_discovery(r: &RequestRecord) -> bool {
    let segments = r.path.trim_matches('/').split('/').count();
    matches!(r.path.as_str(), "/api" | "/apis" | "/api/v1" | "/version")
        || (r.path.starts_with("/apis/") && segments == 3)
        || r.path.starts_with("/openapi/")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn kubectl_requests_pass_through_and_are_counted_exactly() {
    let s = setup();
    for run in 1..=2 {
        s.proxy.clear_requests();
        let out = s.kubectl(&["get", "namespaces", "-o", "name"]);
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.lines().any(|l| l == "namespace/default"), "{stdout}");

        let requests = s.proxy.requests();
        // One list per `kubectl get namespaces`; everything else it sent is discovery.
        assert_eq!(s.proxy.count(is_list_namespaces), 1, "{requests:#?}");
        assert_eq!(
            s.proxy.count(|r| !is_discovery(r)),
            1,
            "run {run}: {requests:#?}"
        );
        assert!(
            requests
                .iter()
                .all(|r| r.status.is_some_and(|c| c < 400) && r.action.is_none()),
            "{requests:#?}"
        );
    }
}

#[test]
fn kube_rs_requests_are_counted_exactly_and_keep_the_callers_token() {
    let s = setup();
    let admin = s.admin(false);
    for _ in 0..3 {
        assert!(
            list_namespaces(&admin)
                .unwrap()
                .contains(&"default".to_owned())
        );
    }
    let api = Api::<Namespace>::all(admin);
    block(async move { api.get("default").await }).unwrap();

    let requests = s.proxy.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", NAMESPACES, Some(200)),
            ("GET", NAMESPACES, Some(200)),
            ("GET", NAMESPACES, Some(200)),
            ("GET", "/api/v1/namespaces/default", Some(200)),
        ]
    );

    // The apiserver sees each caller's own token: not allowed, and not authenticated.
    let restricted = s.client(s.cluster.restricted_token(), false);
    assert_eq!(api_status(list_namespaces(&restricted)).0, 403);
    let nobody = s.client("not-a-token", false);
    assert_eq!(api_status(list_namespaces(&nobody)).0, 401);
    assert_eq!(s.proxy.count(is_list_namespaces), 5);
}

#[test]
fn injected_503_is_seen_for_n_requests_then_clears() {
    let s = setup();
    let client = s.admin(false);
    s.proxy.set_rules(vec![
        Rule::status(503)
            .method("GET")
            .path_contains(NAMESPACES)
            .times(2),
    ]);
    for _ in 0..2 {
        assert_eq!(
            api_status(list_namespaces(&client)),
            (503, "ServiceUnavailable".to_owned())
        );
    }
    assert!(list_namespaces(&client).is_ok());
    let statuses: Vec<_> = s.proxy.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);

    // kubectl (client-go) does not retry a 503 without Retry-After.
    s.proxy
        .set_rules(vec![Rule::status(503).path_contains(NAMESPACES).times(1)]);
    let out = s.kubectl(&["get", "namespaces"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ServiceUnavailable"),
        "{}",
        stderr(&out)
    );
    assert!(s.kubectl(&["get", "namespaces"]).status.success());
}

#[test]
fn kube_rs_default_retries_hide_transient_503_but_the_proxy_counts_them() {
    let s = setup();
    s.proxy
        .set_rules(vec![Rule::status(503).path_contains(NAMESPACES).times(2)]);
    assert!(list_namespaces(&s.admin(true)).is_ok());
    let statuses: Vec<_> = s.proxy.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
}

#[test]
fn kubectl_waits_out_a_429_with_retry_after() {
    let s = setup();
    s.proxy.set_rules(vec![
        Rule::status(429)
            .method("GET")
            .path_contains(NAMESPACES)
            .times(1),
    ]);
    let started = Instant::now();
    let out = s.kubectl(&["get", "namespaces", "-o", "name"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_secs(1));
    let lists: Vec<_> = s
        .proxy
        .requests()
        .into_iter()
        .filter(is_list_namespaces)
        .map(|r| (r.status, r.action))
        .collect();
    assert_eq!(
        lists,
        [(Some(429), Some(Action::Status(429))), (Some(200), None)]
    );
}

#[test]
fn drop_closes_the_connection_without_a_response() {
    let s = setup();
    let client = s.admin(true);
    s.proxy
        .set_rules(vec![Rule::close().path_contains(NAMESPACES).times(1)]);
    let err = list_namespaces(&client).unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "no response, so no status: {err:?}"
    );
    assert!(list_namespaces(&client).is_ok());
    let seen: Vec<_> = s
        .proxy
        .requests()
        .into_iter()
        .map(|r| (r.status, r.action))
        .collect();
    assert_eq!(seen, [(None, Some(Action::Drop)), (Some(200), None)]);
}

#[test]
fn delay_holds_a_request_back_then_forwards_it() {
    let s = setup();
    let client = s.admin(false);
    list_namespaces(&client).unwrap(); // connect first: time only the request
    let delay = Duration::from_millis(800);
    s.proxy
        .set_rules(vec![Rule::delay(delay).path_contains(NAMESPACES).times(1)]);
    let started = Instant::now();
    list_namespaces(&client).unwrap();
    assert!(started.elapsed() >= delay);
    assert_eq!(s.proxy.requests()[1].action, Some(Action::Delay(delay)));
    assert_eq!(s.proxy.requests()[1].status, Some(200));
}

#[test]
fn hung_requests_are_released_when_the_proxy_stops() {
    let s = setup();
    let client = s.admin(false);
    s.proxy
        .set_rules(vec![Rule::hang().path_contains(NAMESPACES)]);
    let api = Api::<Namespace>::all(client);
    let pending =
        mesh_testbed::rt::runtime().spawn(async move { api.list(&ListParams::default()).await });

    let deadline = Instant::now() + Duration::from_secs(30);
    while s.proxy.count(is_list_namespaces) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the proxy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pending.is_finished(), "a hung request gets no answer");
    assert_eq!(s.proxy.requests()[0].status, None);

    drop(s.proxy);
    let result = block(async move { tokio::time::timeout(Duration::from_secs(30), pending).await });
    let outcome = result
        .expect("the client is released when the proxy stops")
        .unwrap();
    assert!(outcome.is_err());
}

#[test]
fn watch_events_stream_through_the_proxy() {
    let s = setup();
    let through_proxy = Api::<Namespace>::all(s.admin(false));
    let direct = Api::<Namespace>::all(s.cluster.client());
    let name = format!("fault-watch-{}", s.proxy.addr().port());
    let found = block(async move {
        let version = through_proxy
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap();
        let params = WatchParams::default().timeout(60);
        let mut events = through_proxy.watch(&params, &version).await?.boxed();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}
        }))
        .unwrap();
        direct.create(&PostParams::default(), &ns).await?;
        let mut found = false;
        while let Some(event) = events.try_next().await? {
            if let WatchEvent::Added(ns) = event
                && ns.metadata.name.as_deref() == Some(name.as_str())
            {
                found = true;
                break;
            }
        }
        direct.delete(&name, &DeleteParams::default()).await?;
        Ok::<_, kube::Error>(found)
    })
    .unwrap();
    assert!(found, "the Added event came through the watch");
    let watch = s.proxy.requests().into_iter().find(RequestRecord::is_watch);
    let watch = watch.expect("the watch was recorded");
    assert_eq!((watch.path.as_str(), watch.status), (NAMESPACES, Some(200)));
}
