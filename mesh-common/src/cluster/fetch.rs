//! Reading a [`ClusterSnapshot`] from a live cluster with a fixed set of concurrent LIST calls
//! (pods and namespaces whole, as protobuf streams; the small rest in pages) — never one call per
//! namespace or per pod — plus the version and the access reviews the chosen operation needs. A source that is forbidden becomes a gap (its checks say `skipped`); a
//! resource the server does not serve (no EnvoyFilter CRD) is empty; an unreachable or
//! unauthenticated API server stops the run (exit 3).

use std::fmt::Debug;

use futures::{StreamExt, TryStreamExt, stream};
use http_body_util::BodyExt;
use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    apps::v1::{DaemonSet, Deployment},
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::{ConfigMap, Namespace, NamespaceStatus, Service},
    discovery::v1::EndpointSlice,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Resource,
    api::{DynamicObject, GroupVersionKind, ListParams, PostParams},
    core::ObjectMeta,
    discovery::ApiResource,
};
use serde::de::DeserializeOwned;

use super::{
    Connection, Error,
    proto::{self, Encoding, ListDecoder},
    retry::retry,
};
use crate::{
    ObjRef,
    ambient::{USE_WAYPOINT_LABEL, agent_kind},
    checks::AccessRequest,
    snapshot::{
        AccessCheck, ClusterSnapshot, CrdInfo, GapCause, GatewayInfo, LAST_APPLIED, MetaOnly,
        NodeInfo, PodInfo, PodInterner, PodObject, REMOTE_SECRET_LABEL, SecretMeta, Source,
        TypedMeta, WHOLE_KINDS, WholeKind, WholeScope, in_whole_scope, is_istio_config_map,
    },
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
    /// Sources the command never reads: not listed, recorded as gaps (unknown, not empty).
    pub skip: Vec<Source>,
    /// List the remote secrets' metadata ([`Source::RemoteSecrets`]): only precheck asks, so
    /// no other command lists Secrets at all. Unread, they are a gap.
    pub read_remote_secrets: bool,
}

/// Why a skipped source is a gap.
pub const NOT_READ: &str = "not read by this command";

/// Runs a list unless its source is skipped.
async fn unless_skipped<T>(
    opts: &FetchOptions,
    source: Source,
    list: impl Future<Output = Result<Vec<T>, kube::Error>>,
) -> Result<Vec<T>, kube::Error> {
    if opts.skip.contains(&source) {
        Ok(Vec::new())
    } else {
        list.await
    }
}

/// Lists every object of an API, page by page.
pub async fn list_all<K>(api: Api<K>, params: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut params = params.limit(PAGE);
    loop {
        let page = retry(|| api.list(&params)).await?;
        out.extend(page.items.into_iter().map(slim));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Every pod of the cluster: one unpaged LIST asked as protobuf, decoded pod by pod as the
/// answer streams in (a third of JSON's bytes, and never held whole, so memory is the decoded
/// pods whatever the cluster's size). A server that answers JSON instead is read in pages of
/// [`PAGE`], trimmed the same way. Returns the pods and the encoding the server chose.
pub async fn list_pods(client: &kube::Client) -> Result<(Vec<PodInfo>, Encoding), kube::Error> {
    match retry(|| whole_list(client, "/api/v1/pods", ListDecoder::pods())).await? {
        Some(pods) => Ok((pods, Encoding::Protobuf)),
        None => {
            let pods =
                list_all(Api::<PodObject>::all(client.clone()), ListParams::default()).await?;
            let mut interner = PodInterner::default();
            let pods = pods.into_iter().map(|p| interner.pod(p)).collect();
            Ok((pods, Encoding::Json))
        }
    }
}

/// Every namespace, like [`list_pods`]: one unpaged protobuf LIST (namespaces are listed
/// whole, not in pages: pages are round trips one after another), JSON pages if the server
/// answers JSON. Kept: name, UID, labels, annotations, owners, phase.
pub async fn list_namespaces(
    client: &kube::Client,
) -> Result<(Vec<Namespace>, Encoding), kube::Error> {
    match retry(|| whole_list(client, "/api/v1/namespaces", ListDecoder::namespaces())).await? {
        Some(namespaces) => Ok((namespaces, Encoding::Protobuf)),
        None => {
            let all =
                list_all(Api::<Namespace>::all(client.clone()), ListParams::default()).await?;
            Ok((
                all.into_iter().map(namespace_kept).collect(),
                Encoding::Json,
            ))
        }
    }
}

/// What the protobuf decoder keeps of a namespace, from a whole one.
pub fn namespace_kept(ns: Namespace) -> Namespace {
    let m = ns.metadata;
    Namespace {
        metadata: ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            labels: m.labels.filter(|l| !l.is_empty()),
            annotations: m
                .annotations
                .map(|mut a| {
                    a.remove(LAST_APPLIED);
                    a
                })
                .filter(|a| !a.is_empty()),
            owner_references: m.owner_references.filter(|o| !o.is_empty()),
            ..ObjectMeta::default()
        },
        spec: None,
        status: ns
            .status
            .and_then(|s| s.phase)
            .map(|phase| NamespaceStatus {
                phase: Some(phase),
                ..NamespaceStatus::default()
            }),
    }
}

/// A whole list (no pages) as protobuf, decoded as it arrives; `None` when the server answers
/// JSON (its answer is left unread: a whole JSON list is three times the bytes, better read in
/// pages).
async fn whole_list<T>(
    client: &kube::Client,
    path: &str,
    mut decoder: ListDecoder<T>,
) -> Result<Option<Vec<T>>, kube::Error> {
    let mut request = kube::core::Request::new(path)
        .list(&ListParams::default())
        .map_err(kube::Error::BuildRequest)?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(ACCEPT_PROTOBUF),
    );
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let protobuf = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(proto::MEDIA_TYPE));
    let mut body = response.into_body();
    if !status.is_success() {
        let body = body.collect_bytes().await?;
        return Err(api_error(status, protobuf, &body));
    }
    if !protobuf {
        return Ok(None);
    }
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            decoder
                .feed(&data)
                .map_err(|e| malformed(status, &e.to_string()))?;
        }
    }
    let list = decoder
        .finish()
        .map_err(|e| malformed(status, &e.to_string()))?;
    Ok(Some(list.items))
}

/// Protobuf first, JSON if the server cannot.
const ACCEPT_PROTOBUF: &str = "application/vnd.kubernetes.protobuf, application/json;q=0.9";

/// The error of a refused request, from its `Status` in either encoding.
fn api_error(code: http::StatusCode, protobuf: bool, body: &[u8]) -> kube::Error {
    let decoded = if protobuf {
        proto::status(body).ok()
    } else {
        serde_json::from_slice::<kube::core::Status>(body).ok()
    };
    let mut status = decoded.unwrap_or_else(|| {
        // Not a Status (a proxy's page, say): its first line, cut short, is the message.
        let text = String::from_utf8_lossy(body);
        let first: String = text
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        kube::core::Status::failure(&first, code.canonical_reason().unwrap_or_default())
    });
    status.code = code.as_u16();
    kube::Error::Api(Box::new(status))
}

/// An answer that cannot be decoded, as an API error naming why.
fn malformed(code: http::StatusCode, why: &str) -> kube::Error {
    let status = kube::core::Status::failure(why, "Malformed").with_code(code.as_u16());
    kube::Error::Api(Box::new(status))
}

/// Drops what no check reads and what dominates memory on big clusters: managed fields and
/// kubectl's last-applied copy of the whole object.
fn slim<K: Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    obj
}

/// Why a failed read stops the run rather than becoming a gap.
fn fatal(conn: &Connection, e: kube::Error) -> Result<kube::Error, Error> {
    match e {
        kube::Error::Api(s) if s.code != 401 => Ok(kube::Error::Api(s)),
        other => Err(conn.error("list", &ObjRef::new("v1", "List", None, ""), other)),
    }
}

/// Stores a list result, or records why it is missing.
fn settle<T>(
    conn: &Connection,
    snap: &mut ClusterSnapshot,
    source: Source,
    result: Result<Vec<T>, kube::Error>,
) -> Result<Vec<T>, Error> {
    match result {
        Ok(items) => Ok(items),
        // A server without the CRD serves no such objects: none, not unknown.
        Err(kube::Error::Api(s))
            if s.code == 404 && matches!(source, Source::EnvoyFilters | Source::Gateways) =>
        {
            Ok(Vec::new())
        }
        Err(e) => {
            let e = fatal(conn, e)?;
            let (cause, reason) = match &e {
                kube::Error::Api(s) if s.code == 403 => {
                    (GapCause::Forbidden, format!("forbidden: {}", s.message))
                }
                kube::Error::Api(s) => (GapCause::Failed, s.message.clone()),
                other => (GapCause::Failed, other.to_string()),
            };
            snap.add_gap_because(source, cause, reason);
            Ok(Vec::new())
        }
    }
}

/// Records the server's version, or why it is unknown; an unreachable or unauthenticated
/// server stops the run.
fn kube_version(
    conn: &Connection,
    snap: &mut ClusterSnapshot,
    answer: Result<k8s_openapi::apimachinery::pkg::version::Info, kube::Error>,
) -> Result<(), Error> {
    match answer {
        Ok(info) => match KubeVersion::parse(&info.git_version) {
            Ok(v) => snap.kube_version = Some(v),
            Err(e) => snap.add_gap(Source::Version, e.to_string()),
        },
        Err(e) => {
            let e = fatal(conn, e)?;
            snap.add_gap(Source::Version, e.to_string());
        }
    }
    Ok(())
}

/// What [`ambient_lists`] read: Gateways, Nodes, the metadata of Services using a waypoint.
type AmbientLists = (
    Result<Vec<GatewayInfo>, kube::Error>,
    Result<Vec<NodeInfo>, kube::Error>,
    Result<Vec<ObjectMeta>, kube::Error>,
);

/// The lists ambient mode adds (one each, paged): Gateway API Gateways, Nodes, and the
/// metadata of the Services labelled `istio.io/use-waypoint` (who uses a waypoint).
async fn ambient_lists(conn: &Connection, opts: &FetchOptions) -> AmbientLists {
    let c = &conn.client;
    tokio::join!(
        unless_skipped(
            opts,
            Source::Gateways,
            list_all(Api::<GatewayInfo>::all(c.clone()), ListParams::default())
        ),
        unless_skipped(
            opts,
            Source::Nodes,
            list_all(Api::<NodeInfo>::all(c.clone()), ListParams::default())
        ),
        unless_skipped(
            opts,
            Source::WaypointServices,
            list_meta(
                dynamic_api(conn, "v1", "Service", "services"),
                USE_WAYPOINT_LABEL
            )
        ),
    )
}

/// Stores what [`ambient_lists`] read, or why it is missing.
fn settle_ambient(
    conn: &Connection,
    snap: &mut ClusterSnapshot,
    (gateways, nodes, services): AmbientLists,
) -> Result<(), Error> {
    snap.gateways = settle(conn, snap, Source::Gateways, gateways)?;
    snap.nodes = settle(conn, snap, Source::Nodes, nodes)?
        .into_iter()
        .map(NodeInfo::kept)
        .collect();
    let istio_ns = snap.istio_namespace.clone();
    let services = settle(conn, snap, Source::WaypointServices, services)?;
    // Those in the Istio namespace are read whole with the other Services.
    snap.others.extend(
        services
            .into_iter()
            .filter(|m| m.namespace.as_deref() != Some(istio_ns.as_str()))
            .map(|metadata| TypedMeta {
                api_version: "v1".to_owned(),
                kind: "Service".to_owned(),
                metadata,
            }),
    );
    Ok(())
}

/// Reads the snapshot: one version call, up to fifteen LISTs (none for a source in
/// `opts.skip`) and the access reviews, all concurrent.
pub async fn fetch(conn: &Connection, opts: &FetchOptions) -> Result<ClusterSnapshot, Error> {
    let ns = opts.istio_namespace.as_str();
    let mut snap = ClusterSnapshot {
        origin: conn.describe(),
        istio_namespace: ns.to_owned(),
        context: Some(conn.context.clone()),
        ..Default::default()
    };
    let c = &conn.client;
    let all = ListParams::default();
    let (
        version,
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
        secrets,
        access,
        ambient,
    ) = tokio::join!(
        retry(|| c.apiserver_version()),
        unless_skipped(opts, Source::Namespaces, async {
            list_namespaces(c).await.map(|(namespaces, _)| namespaces)
        }),
        unless_skipped(
            opts,
            Source::Deployments,
            list_all(
                Api::<Deployment>::all(c.clone()),
                ListParams::default().labels("istio")
            )
        ),
        unless_skipped(
            opts,
            Source::DaemonSets,
            list_all(Api::<DaemonSet>::all(c.clone()), all.clone())
        ),
        unless_skipped(
            opts,
            Source::Services,
            list_all(Api::<Service>::namespaced(c.clone(), ns), all.clone())
        ),
        unless_skipped(
            opts,
            Source::EndpointSlices,
            list_all(Api::<EndpointSlice>::namespaced(c.clone(), ns), all.clone())
        ),
        unless_skipped(
            opts,
            Source::ConfigMaps,
            list_all(Api::<ConfigMap>::namespaced(c.clone(), ns), all.clone())
        ),
        unless_skipped(
            opts,
            Source::MutatingWebhooks,
            list_all(
                Api::<MutatingWebhookConfiguration>::all(c.clone()),
                all.clone()
            )
        ),
        unless_skipped(
            opts,
            Source::ValidatingWebhooks,
            list_all(
                Api::<ValidatingWebhookConfiguration>::all(c.clone()),
                all.clone()
            )
        ),
        unless_skipped(
            opts,
            Source::Crds,
            list_all(Api::<CrdInfo>::all(c.clone()), all.clone())
        ),
        unless_skipped(
            opts,
            Source::Pdbs,
            list_all(Api::<PodDisruptionBudget>::all(c.clone()), all.clone())
        ),
        unless_skipped(opts, Source::Pods, async {
            list_pods(c).await.map(|(pods, _)| pods)
        }),
        unless_skipped(
            opts,
            Source::EnvoyFilters,
            list_all(Api::<MetaOnly>::all(c.clone()), all.clone())
        ),
        remote_secrets(c, opts),
        review_access(conn, &opts.access),
        ambient_lists(conn, opts),
    );
    kube_version(conn, &mut snap, version)?;
    for source in &opts.skip {
        snap.add_gap_because(*source, GapCause::NotRead, NOT_READ);
    }
    if !opts.read_remote_secrets {
        snap.add_gap(Source::RemoteSecrets, NOT_READ);
    }
    snap.namespaces = settle(conn, &mut snap, Source::Namespaces, namespaces)?;
    snap.deployments = settle(conn, &mut snap, Source::Deployments, deployments)?;
    snap.daemonsets = settle(conn, &mut snap, Source::DaemonSets, daemonsets)?
        .into_iter()
        .filter(|d| agent_kind(d).is_some())
        .collect();
    snap.services = settle(conn, &mut snap, Source::Services, services)?;
    snap.endpoint_slices = settle(conn, &mut snap, Source::EndpointSlices, slices)?;
    snap.config_maps = settle(conn, &mut snap, Source::ConfigMaps, config_maps)?
        .into_iter()
        .filter(|m| is_istio_config_map(&m.metadata))
        .collect();
    snap.mutating_webhooks = settle(conn, &mut snap, Source::MutatingWebhooks, mwcs)?;
    snap.validating_webhooks = settle(conn, &mut snap, Source::ValidatingWebhooks, vwcs)?;
    snap.crds = settle(conn, &mut snap, Source::Crds, crds)?;
    snap.pdbs = settle(conn, &mut snap, Source::Pdbs, pdbs)?;
    snap.pods = settle(conn, &mut snap, Source::Pods, pods)?;
    snap.envoy_filters = settle(conn, &mut snap, Source::EnvoyFilters, filters)?;
    snap.remote_secrets = settle(conn, &mut snap, Source::RemoteSecrets, secrets)?;
    snap.access = settle(conn, &mut snap, Source::Access, access)?;
    settle_ambient(conn, &mut snap, ambient)?;
    Ok(snap)
}

/// The remote secrets of the Istio namespace by their metadata alone: one metadata-only LIST
/// (`PartialObjectMetadataList`), so no Secret's data ever reaches this process; kept as
/// [`SecretMeta`]. Nothing is listed unless the command asked.
async fn remote_secrets(
    c: &kube::Client,
    opts: &FetchOptions,
) -> Result<Vec<SecretMeta>, kube::Error> {
    if !opts.read_remote_secrets || opts.skip.contains(&Source::RemoteSecrets) {
        return Ok(Vec::new());
    }
    let api = Api::<SecretMeta>::namespaced(c.clone(), &opts.istio_namespace);
    let mut params = ListParams::default()
        .labels(&format!("{REMOTE_SECRET_LABEL}=true"))
        .limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = retry(|| api.list_metadata(&params)).await?;
        out.extend(page.items.into_iter().map(|o| SecretMeta::kept(o.metadata)));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Asks every access review, a few at a time; stops at the first that fails.
async fn review_access(
    conn: &Connection,
    asks: &[AccessRequest],
) -> Result<Vec<AccessCheck>, kube::Error> {
    let api = Api::<SelfSubjectAccessReview>::all(conn.client.clone());
    stream::iter(asks.iter().cloned())
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
                let pp = PostParams::default();
                let answer = retry(|| api.create(&pp, &review)).await?;
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
        // The first failure ends the reviews: a server that does not answer is not asked
        // again, batch after batch, each with its own retries.
        .try_collect()
        .await
}

/// A kind listed by label: (apiVersion, kind, plural).
pub type LabelledKind = (&'static str, &'static str, &'static str);

fn dynamic_api(
    conn: &Connection,
    api_version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::all_with(conn.client.clone(), &ar)
}

/// Metadata of every object of an API matching a selector, page by page; a kind the server
/// does not serve is empty.
async fn list_meta(
    api: Api<DynamicObject>,
    selector: &str,
) -> Result<Vec<ObjectMeta>, kube::Error> {
    let mut params = ListParams::default().labels(selector).limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = match retry(|| api.list_metadata(&params)).await {
            Ok(p) => p,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(out),
            Err(e) => return Err(e),
        };
        out.extend(page.items.into_iter().map(|o| o.metadata));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// The metadata of every object of `kinds` matching each selector, cluster-wide: one
/// concurrent, paginated metadata-only LIST per kind and selector.
pub async fn list_labelled(
    conn: &Connection,
    kinds: &[LabelledKind],
    selectors: &[&str],
) -> Result<Vec<TypedMeta>, Error> {
    let asks: Vec<(LabelledKind, &str)> = kinds
        .iter()
        .flat_map(|k| selectors.iter().map(move |s| (*k, *s)))
        .collect();
    let results = futures::future::join_all(
        asks.iter()
            .map(|((a, k, p), sel)| list_meta(dynamic_api(conn, a, k, p), sel)),
    )
    .await;
    let mut out = Vec::new();
    for (((a, k, _), _), result) in asks.iter().zip(results) {
        let metas = result.map_err(|e| conn.error("list", &ObjRef::new(a, k, None, ""), e))?;
        out.extend(metas.into_iter().map(|metadata| TypedMeta {
            api_version: (*a).to_owned(),
            kind: (*k).to_owned(),
            metadata,
        }));
    }
    Ok(out)
}

/// Every object of `api` (in `namespace`, or cluster-wide), whole, page by page, with its type
/// (list items may omit it).
async fn list_whole(
    conn: &Connection,
    (api_version, kind, plural, _): WholeKind,
    namespace: Option<&str>,
) -> Result<Vec<serde_json::Value>, kube::Error> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(conn.client.clone(), ns, &ar),
        None => Api::all_with(conn.client.clone(), &ar),
    };
    let mut params = ListParams::default().limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = retry(|| api.list(&params)).await?;
        for item in page.items {
            let mut v = serde_json::to_value(item).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("apiVersion".into(), api_version.into());
                m.insert("kind".into(), kind.into());
            }
            out.push(v);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Adds to a snapshot what a plan from it needs besides: the objects of [`WHOLE_KINDS`] whole
/// (what `--dump-snapshot` writes). A kind that cannot be read (forbidden, not served) is left
/// out and not declared, so a plan from the file says "unknown" for it; an unreachable server
/// stops the run.
pub async fn fetch_whole(conn: &Connection, snap: &mut ClusterSnapshot) -> Result<(), Error> {
    let istio = snap.istio_namespace.clone();
    let lists = futures::future::join_all(WHOLE_KINDS.iter().map(|k| {
        let ns = (k.3 == WholeScope::IstioNamespace).then_some(istio.as_str());
        list_whole(conn, *k, ns)
    }))
    .await;
    for (k, listed) in WHOLE_KINDS.iter().zip(lists) {
        let items = match listed {
            Ok(items) => items,
            Err(e) => {
                fatal(conn, e)?;
                continue;
            }
        };
        // Istio's ConfigMaps (`istio*`, `values[-<rev>]`) are among the typed ones already:
        // complete only with them.
        let config_maps = k.1 == "ConfigMap";
        if config_maps && snap.gap(Source::ConfigMaps).is_some() {
            continue;
        }
        for item in items {
            let name = item
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let ns = item
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str);
            let typed = config_maps
                && serde_json::from_value::<kube::core::ObjectMeta>(item["metadata"].clone())
                    .is_ok_and(|m| is_istio_config_map(&m));
            if !typed && in_whole_scope(k.3, ns, name, &istio) {
                snap.keep_whole(item);
            }
        }
        snap.whole_kinds.insert(k.1.to_owned());
    }
    snap.sort_whole();
    Ok(())
}

/// The custom resources of each CRD (by CRD name), as references in the CRD's storage version
/// with their UIDs: one concurrent, paginated metadata-only LIST per CRD.
pub async fn list_resources(
    conn: &Connection,
    crds: &[&CrdInfo],
) -> Result<std::collections::BTreeMap<String, Vec<(ObjRef, String)>>, Error> {
    let lists = stream::iter(crds.iter().map(|crd| async move {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .or_else(|| crd.spec.versions.iter().find(|v| v.served))
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let api_version = format!("{}/{version}", crd.spec.group);
        let kind = crd.spec.names.kind.clone();
        let api = dynamic_api(conn, &api_version, &kind, &crd.spec.names.plural);
        let items = list_meta(api, "").await.map(|items| {
            items
                .into_iter()
                .map(|m| {
                    let r = ObjRef::new(
                        &api_version,
                        &kind,
                        m.namespace.as_deref(),
                        m.name.as_deref().unwrap_or_default(),
                    );
                    (r, m.uid.unwrap_or_default())
                })
                .collect::<Vec<_>>()
        });
        (name, api_version, kind, items)
    }))
    .buffered(4)
    .collect::<Vec<_>>()
    .await;
    lists
        .into_iter()
        .map(|(name, a, k, items)| {
            items
                .map(|items| (name, items))
                .map_err(|e| conn.error("list", &ObjRef::new(&a, &k, None, ""), e))
        })
        .collect()
}

/// Every webhook configuration of the cluster (two paginated LISTs).
pub async fn webhook_configurations(
    conn: &Connection,
) -> Result<
    (
        Vec<MutatingWebhookConfiguration>,
        Vec<ValidatingWebhookConfiguration>,
    ),
    Error,
> {
    let params = ListParams::default();
    let (m, v) = tokio::join!(
        list_all(
            Api::<MutatingWebhookConfiguration>::all(conn.client.clone()),
            params.clone()
        ),
        list_all(
            Api::<ValidatingWebhookConfiguration>::all(conn.client.clone()),
            params
        ),
    );
    let r = ObjRef::new(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        None,
        "",
    );
    Ok((
        m.map_err(|e| conn.error("list", &r, e))?,
        v.map_err(|e| conn.error("list", &r, e))?,
    ))
}
