//! Scale generator: many namespaces labelled across revisions, each with already-injected-looking
//! pods (sidecar container, init container, status annotation, Istio labels) created directly
//! with a `nodeName` on the kwok nodes, so neither the scheduler nor the injector is involved
//! (the injector skips pods that carry a status annotation). kwok then makes them Running.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cluster::{Cluster, NODES};
use crate::{inject, rt::block};

/// One revision the generated namespaces are spread over (round robin).
#[derive(Debug, Clone)]
pub struct ScaleRevision {
    /// Namespace label selecting it, e.g. (`istio-injection`, `enabled`) or (`istio.io/rev`, `canary`).
    pub namespace_label: (String, String),
    /// The real revision recorded in the pods' status annotation (never a tag).
    pub revision: String,
    /// Proxy image tag, e.g. `1.30.5`.
    pub proxy_tag: String,
}

impl ScaleRevision {
    /// Namespaces labelled `istio-injection=enabled`, injected by revision `default`.
    pub fn injection_enabled(proxy_tag: &str) -> Self {
        Self::rev_label("default", proxy_tag).with_label("istio-injection", "enabled")
    }

    /// Namespaces labelled `istio.io/rev=<revision>`.
    pub fn revision(revision: &str, proxy_tag: &str) -> Self {
        Self::rev_label(revision, proxy_tag)
    }

    /// Namespaces labelled `istio.io/rev=<tag>` whose pods were injected by `revision`.
    pub fn tag(tag: &str, revision: &str, proxy_tag: &str) -> Self {
        Self::rev_label(revision, proxy_tag).with_label("istio.io/rev", tag)
    }

    fn rev_label(revision: &str, proxy_tag: &str) -> Self {
        Self {
            namespace_label: ("istio.io/rev".into(), revision.into()),
            revision: revision.into(),
            proxy_tag: proxy_tag.into(),
        }
    }

    fn with_label(mut self, k: &str, v: &str) -> Self {
        self.namespace_label = (k.into(), v.into());
        self
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ScaleSpec {
    /// Number of namespaces, named `<prefix>-<i>` (zero-padded).
    pub namespaces: usize,
    /// Pods per namespace.
    pub pods_per_namespace: usize,
    /// Revisions the namespaces are spread over (round robin; must not be empty).
    pub revisions: Vec<ScaleRevision>,
    /// Namespace name prefix; also the value of label `mesh-testbed/scale` on everything.
    pub prefix: String,
    /// Concurrent API requests.
    pub concurrency: usize,
    /// Wait until kwok reports every pod Running.
    pub wait_running: bool,
}

impl Default for ScaleSpec {
    fn default() -> Self {
        Self {
            namespaces: 10,
            pods_per_namespace: 10,
            revisions: vec![ScaleRevision::injection_enabled(crate::scenario::old_tag())],
            prefix: "scale".into(),
            concurrency: 48,
            wait_running: true,
        }
    }
}

/// What was generated and how long it took.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    /// Namespace names, in order.
    pub namespaces: Vec<String>,
    /// Pods created.
    pub pods: usize,
    /// Time to create namespaces and pods.
    pub created_in: Duration,
    /// Time until all pods were Running (zero unless `wait_running`).
    pub running_in: Duration,
}

/// Generates `spec` in `cluster` (blocking).
pub fn generate(cluster: &Cluster, spec: ScaleSpec) -> Result<ScaleReport> {
    if spec.revisions.is_empty() {
        bail!("ScaleSpec.revisions must not be empty");
    }
    let client = cluster.client();
    block(async move { run(client, spec).await })
}

async fn run(client: Client, spec: ScaleSpec) -> Result<ScaleReport> {
    let t0 = Instant::now();
    let width = spec.namespaces.saturating_sub(1).to_string().len().max(1);
    let names: Vec<String> = (0..spec.namespaces)
        .map(|i| format!("{}-{i:0width$}", spec.prefix))
        .collect();
    let rev_of = |i: usize| spec.revisions[i % spec.revisions.len()].clone();
    let ns_jobs: Vec<(String, ScaleRevision)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), rev_of(i)))
        .collect();
    let ns_api = Api::<Namespace>::all(client.clone());
    let prefix = spec.prefix.clone();
    stream::iter(ns_jobs)
        .map(|(n, rev)| create_ns(ns_api.clone(), n, prefix.clone(), rev))
        .buffer_unordered(spec.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let mut pod_jobs = Vec::with_capacity(names.len() * spec.pods_per_namespace);
    for (i, n) in names.iter().enumerate() {
        pod_jobs.extend((0..spec.pods_per_namespace).map(|j| (n.clone(), j, rev_of(i))));
    }
    stream::iter(pod_jobs)
        .map(|(n, j, rev)| create_pod(client.clone(), n, j, prefix.clone(), rev))
        .buffer_unordered(spec.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let created_in = t0.elapsed();
    if spec.wait_running {
        wait_running(&client, &spec.prefix).await?;
    }
    let running_in = if spec.wait_running {
        t0.elapsed()
    } else {
        Duration::ZERO
    };
    Ok(ScaleReport {
        pods: names.len() * spec.pods_per_namespace,
        namespaces: names,
        created_in,
        running_in,
    })
}

async fn create_ns(
    api: Api<Namespace>,
    name: String,
    prefix: String,
    rev: ScaleRevision,
) -> Result<()> {
    let (k, v) = &rev.namespace_label;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {k: v, "mesh-testbed/scale": prefix}}}))?;
    retry(|| async { api.create(&PostParams::default(), &ns).await.map(drop) })
        .await
        .with_context(|| format!("creating namespace {name}"))
}

async fn create_pod(
    client: Client,
    ns: String,
    j: usize,
    prefix: String,
    rev: ScaleRevision,
) -> Result<()> {
    let pod: Pod = serde_json::from_value(pod_json(j, &prefix, &rev))?;
    let api = Api::<Pod>::namespaced(client, &ns);
    retry(|| async { api.create(&PostParams::default(), &pod).await.map(drop) })
        .await
        .with_context(|| format!("creating pod {ns}/workload-{j}"))
}

/// An already-injected pod, lean for speed: `istio-init` and `istio-proxy` with image and
/// args only, the injection's volumes as `emptyDir`s, the real status annotation and labels,
/// no service-account token volume. Every watcher (KCM, scheduler, kwok) decodes each pod, so
/// size is throughput.
pub fn pod_json(j: usize, prefix: &str, rev: &ScaleRevision) -> Value {
    let image = format!("docker.io/istio/proxyv2:{}", rev.proxy_tag);
    let volumes: Vec<Value> = inject::VOLUMES
        .iter()
        .map(|v| json!({"name": v, "emptyDir": {}}))
        .collect();
    json!({
        "metadata": {
            "name": format!("workload-{j}"),
            "labels": {"app": "workload", "mesh-testbed/scale": prefix, "security.istio.io/tlsMode": "istio",
                "service.istio.io/canonical-name": "workload", "service.istio.io/canonical-revision": "latest"},
            "annotations": {inject::STATUS: inject::status_annotation(&rev.revision), "istio.io/rev": rev.revision,
                "kubectl.kubernetes.io/default-container": "app"},
        },
        "spec": {
            "nodeName": format!("kwok-node-{}", j % NODES),
            "automountServiceAccountToken": false,
            "initContainers": [{"name": "istio-init", "image": image, "args": ["istio-iptables"]}],
            "containers": [
                {"name": "app", "image": "docker.io/kong/httpbin:0.1.0"},
                {"name": "istio-proxy", "image": image, "args": ["proxy", "sidecar"],
                 "env": [{"name": "CA_ADDR", "value": format!("{}.istio-system.svc:15012", istiod(&rev.revision))}]},
            ],
            "volumes": volumes,
        },
    })
}

fn istiod(revision: &str) -> String {
    if revision == "default" {
        "istiod".into()
    } else {
        format!("istiod-{revision}")
    }
}

/// Retries transient failures (ServiceAccount not created yet, 429, 5xx) for up to ~30 s;
/// AlreadyExists counts as success so a partial run can be resumed.
async fn retry<F, Fut>(mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<()>>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) if attempt < 150 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn wait_running(client: &Client, prefix: &str) -> Result<()> {
    let api = Api::<Pod>::all(client.clone());
    let lp = ListParams::default()
        .labels(&format!("mesh-testbed/scale={prefix}"))
        .fields("status.phase!=Running")
        .limit(1);
    let deadline = Instant::now() + Duration::from_secs(900);
    while !api.list(&lp).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("generated pods not all Running after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
