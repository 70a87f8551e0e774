//! Reading a [`ClusterSnapshot`] from a live cluster with a fixed set of concurrent, paginated
//! LIST calls — never one call per namespace or per pod — plus the access reviews the chosen
//! operation needs. A source that is forbidden becomes a gap (its checks say `skipped`); a
//! resource the server does not serve (no EnvoyFilter CRD) is empty; an unreachable or
//! unauthenticated API server stops the run (exit 3).

use std::fmt::Debug;

use futures::{StreamExt, stream};
use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    apps::v1::{DaemonSet, Deployment},
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::{ConfigMap, Namespace, Service},
    discovery::v1::EndpointSlice,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Resource,
    api::{ListParams, PostParams},
};
use serde::de::DeserializeOwned;

use super::Connection;
use crate::{
    checks::AccessRequest,
    exit::MeshError,
    snapshot::{AccessCheck, ClusterSnapshot, CrdInfo, MetaOnly, PodInfo, Source, label, name},
    version::KubeVersion,
};

/// Page size of every LIST.
pub const PAGE: u32 = 500;
/// Access reviews in flight at once.
const SSAR_CONCURRENCY: usize = 8;

/// What to read besides the fixed sources.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// The Istio namespace.
    pub istio_namespace: String,
    /// Access reviews to ask.
    pub access: Vec<AccessRequest>,
}

/// Lists every object of an API, page by page.
pub async fn list_all<K>(api: Api<K>, params: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut params = params.limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items.into_iter().map(slim));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Drops what no check reads and what dominates memory on big clusters: managed fields and
/// kubectl's last-applied copy of the whole object.
fn slim<K: Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    obj
}

/// Why a failed read stops the run rather than becoming a gap.
fn fatal(conn: &Connection, e: &kube::Error) -> Option<MeshError> {
    match e {
        kube::Error::Api(s) if s.code == 401 => Some(
            MeshError::failed(anyhow::anyhow!(
                "the API server at {} rejected the credentials (401 Unauthorized)",
                conn.server
            ))
            .hint(format!("refresh the credentials of {}", conn.describe())),
        ),
        kube::Error::Api(_) => None,
        other => Some(
            MeshError::failed(anyhow::anyhow!(
                "cannot reach the API server at {}: {other}",
                conn.server
            ))
            .hint(format!(
                "check the cluster is up and {} is right (`kubectl cluster-info`)",
                conn.describe()
            )),
        ),
    }
}

/// Stores a list result, or records why it is missing.
fn settle<T>(
    conn: &Connection,
    snap: &mut ClusterSnapshot,
    source: Source,
    result: Result<Vec<T>, kube::Error>,
) -> Result<Vec<T>, MeshError> {
    match result {
        Ok(items) => Ok(items),
        Err(kube::Error::Api(s)) if s.code == 404 && source == Source::EnvoyFilters => {
            Ok(Vec::new())
        }
        Err(e) => match fatal(conn, &e) {
            Some(err) => Err(err),
            None => {
                let reason = match &e {
                    kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
                    other => other.to_string(),
                };
                snap.add_gap(source, reason);
                Ok(Vec::new())
            }
        },
    }
}

async fn kube_version(conn: &Connection, snap: &mut ClusterSnapshot) -> Result<(), MeshError> {
    match conn.client.apiserver_version().await {
        Ok(info) => match KubeVersion::parse(&info.git_version) {
            Ok(v) => snap.kube_version = Some(v),
            Err(e) => snap.add_gap(Source::Version, e.to_string()),
        },
        Err(e) => match fatal(conn, &e) {
            Some(err) => return Err(err),
            None => snap.add_gap(Source::Version, e.to_string()),
        },
    }
    Ok(())
}

fn is_istio_daemonset(d: &DaemonSet) -> bool {
    let n = name(&d.metadata);
    n == "ztunnel"
        || n == "istio-cni-node"
        || matches!(
            label(&d.metadata, "app"),
            Some("ztunnel" | "istio-cni-node")
        )
        || label(&d.metadata, "k8s-app") == Some("istio-cni-node")
}

/// Reads the snapshot: one version call, twelve LISTs (paginated) and the access reviews, all
/// concurrent.
pub async fn fetch(conn: &Connection, opts: &FetchOptions) -> Result<ClusterSnapshot, MeshError> {
    let ns = opts.istio_namespace.as_str();
    let mut snap = ClusterSnapshot {
        origin: conn.describe(),
        istio_namespace: ns.to_owned(),
        ..Default::default()
    };
    kube_version(conn, &mut snap).await?;
    let c = &conn.client;
    let all = ListParams::default();
    let (
        namespaces,
        deployments,
        daemonsets,
        services,
        slices,
        config_maps,
        mwcs,
        vwcs,
        crds,
        pdbs,
        pods,
        filters,
        access,
    ) = tokio::join!(
        list_all(Api::<Namespace>::all(c.clone()), all.clone()),
        list_all(
            Api::<Deployment>::all(c.clone()),
            ListParams::default().labels("istio")
        ),
        list_all(Api::<DaemonSet>::all(c.clone()), all.clone()),
        list_all(Api::<Service>::namespaced(c.clone(), ns), all.clone()),
        list_all(Api::<EndpointSlice>::namespaced(c.clone(), ns), all.clone()),
        list_all(Api::<ConfigMap>::namespaced(c.clone(), ns), all.clone()),
        list_all(
            Api::<MutatingWebhookConfiguration>::all(c.clone()),
            all.clone()
        ),
        list_all(
            Api::<ValidatingWebhookConfiguration>::all(c.clone()),
            all.clone()
        ),
        list_all(Api::<CrdInfo>::all(c.clone()), all.clone()),
        list_all(Api::<PodDisruptionBudget>::all(c.clone()), all.clone()),
        list_all(Api::<PodInfo>::all(c.clone()), all.clone()),
        list_all(Api::<MetaOnly>::all(c.clone()), all.clone()),
        review_access(conn, &opts.access),
    );
    snap.namespaces = settle(conn, &mut snap, Source::Namespaces, namespaces)?;
    snap.deployments = settle(conn, &mut snap, Source::Deployments, deployments)?;
    snap.daemonsets = settle(conn, &mut snap, Source::DaemonSets, daemonsets)?
        .into_iter()
        .filter(is_istio_daemonset)
        .collect();
    snap.services = settle(conn, &mut snap, Source::Services, services)?;
    snap.endpoint_slices = settle(conn, &mut snap, Source::EndpointSlices, slices)?;
    snap.config_maps = settle(conn, &mut snap, Source::ConfigMaps, config_maps)?
        .into_iter()
        .filter(|m| name(&m.metadata).starts_with("istio"))
        .collect();
    snap.mutating_webhooks = settle(conn, &mut snap, Source::MutatingWebhooks, mwcs)?;
    snap.validating_webhooks = settle(conn, &mut snap, Source::ValidatingWebhooks, vwcs)?;
    snap.crds = settle(conn, &mut snap, Source::Crds, crds)?;
    snap.pdbs = settle(conn, &mut snap, Source::Pdbs, pdbs)?;
    snap.pods = settle(conn, &mut snap, Source::Pods, pods)?;
    snap.envoy_filters = settle(conn, &mut snap, Source::EnvoyFilters, filters)?;
    snap.access = settle(conn, &mut snap, Source::Access, access)?;
    Ok(snap)
}

/// Asks every access review, a few at a time.
async fn review_access(
    conn: &Connection,
    asks: &[AccessRequest],
) -> Result<Vec<AccessCheck>, kube::Error> {
    let api = Api::<SelfSubjectAccessReview>::all(conn.client.clone());
    let results: Vec<Result<AccessCheck, kube::Error>> = stream::iter(asks.iter().cloned())
        .map(|a| {
            let api = api.clone();
            async move {
                let review = SelfSubjectAccessReview {
                    spec: SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(ResourceAttributes {
                            verb: Some(a.verb.to_owned()),
                            group: Some(a.group.clone()),
                            resource: Some(a.resource.clone()),
                            namespace: a.namespace.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let answer = api.create(&PostParams::default(), &review).await?;
                let status = answer.status.unwrap_or_default();
                Ok(AccessCheck {
                    verb: a.verb.to_owned(),
                    group: a.group,
                    resource: a.resource,
                    namespace: a.namespace,
                    allowed: status.allowed,
                    reason: status.reason.filter(|r| !r.is_empty()),
                })
            }
        })
        .buffered(SSAR_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}
