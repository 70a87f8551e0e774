//! What the planner needs beyond the snapshot: the objects a control plane may own, listed by
//! label with a fixed set of concurrent LIST calls (metadata only), and for `--purge` the number
//! of custom resources of every Istio CRD. From a `--snapshot` file, the file's own items.

use std::collections::BTreeMap;

use futures::{StreamExt, future, stream};
use kube::{
    Api,
    api::{DynamicObject, GroupVersionKind, ListParams},
    core::ObjectMeta,
    discovery::ApiResource,
};
use mesh_common::{
    cluster::{Connection, PAGE},
    exit::MeshError,
    plan::uninstall::Candidate,
    snapshot::CrdInfo,
};
use serde_json::Value;

/// Kinds listed cluster-wide by label: (apiVersion, kind, plural). The snapshot holds only part
/// of some of them (Deployments labelled `istio`, Services and ConfigMaps of the Istio namespace).
const LISTED: [(&str, &str, &str); 10] = [
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "DaemonSet", "daemonsets"),
    ("v1", "Service", "services"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
];

/// Every object an installer labelled.
const INSTALLED: &str = "operator.istio.io/component";
/// A manifest's RBAC objects, which the charts label only with `app` (ISTIO.md §3.1).
const CHART_RBAC: &str = "app in (istiod,istio-reader),!operator.istio.io/component,!istio.io/rev";

fn api(conn: &Connection, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
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
        let page = match api.list_metadata(&params).await {
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

/// Lists the objects a control plane may own (fifteen concurrent LISTs, metadata only).
pub async fn listed(conn: &Connection) -> Result<Vec<Candidate>, MeshError> {
    let rbac = |k: &str| {
        matches!(
            k,
            "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
        )
    };
    let asks: Vec<(&str, &str, &str, &str)> = LISTED
        .iter()
        .map(|&(a, k, p)| (a, k, p, INSTALLED))
        .chain(
            LISTED
                .iter()
                .filter(|(_, k, _)| rbac(k))
                .map(|&(a, k, p)| (a, k, p, CHART_RBAC)),
        )
        .collect();
    let results = future::join_all(
        asks.iter()
            .map(|&(a, k, p, sel)| list_meta(api(conn, a, k, p), sel)),
    )
    .await;
    let mut out = Vec::new();
    for ((a, k, _, sel), result) in asks.iter().zip(results) {
        let metas = result.map_err(|e| {
            MeshError::failed(anyhow::Error::new(e).context(format!("cannot list {k} objects labelled `{sel}`")))
                .hint("uninstall needs to list every object of the control plane; check `kubectl auth can-i list` for that kind")
        })?;
        out.extend(metas.iter().map(|m| Candidate::new(a, k, m)));
    }
    Ok(out)
}

/// Counts the custom resources of each Istio CRD (one paginated LIST per CRD, four at a time).
pub async fn count_resources(
    conn: &Connection,
    crds: &[&CrdInfo],
) -> Result<BTreeMap<String, usize>, MeshError> {
    let counts = stream::iter(crds.iter().map(|crd| async move {
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
        let api = api(
            conn,
            &api_version,
            &crd.spec.names.kind,
            &crd.spec.names.plural,
        );
        let n = list_meta(api, "").await.map(|items| items.len());
        (name, n)
    }))
    .buffered(4)
    .collect::<Vec<_>>()
    .await;
    counts
        .into_iter()
        .map(|(name, n)| {
            n.map(|n| (name.clone(), n)).map_err(|e| {
                MeshError::failed(
                    anyhow::Error::new(e)
                        .context(format!("cannot count the resources of CRD `{name}`")),
                )
            })
        })
        .collect()
}

/// The items of a snapshot file (`kubectl get ... -o yaml` output, Lists flattened).
pub fn from_file(text: &str) -> Result<Vec<Candidate>, MeshError> {
    // Snapshots of large clusters hold hundreds of thousands of nodes: no event budget.
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            MeshError::usage(anyhow::Error::new(e).context("the snapshot is not valid YAML"))
        })?;
    let mut items = Vec::new();
    for doc in docs {
        flatten(doc, None, &mut items);
    }
    Ok(items
        .iter()
        .filter_map(|(api_version, kind, meta)| {
            let meta: ObjectMeta = serde_json::from_value(meta.clone()).ok()?;
            Some(Candidate::new(api_version, kind, &meta))
        })
        .collect())
}

/// Collects (apiVersion, kind, metadata) of every object, descending into Lists; items of a
/// typed list (`PodList`) may omit their own kind and apiVersion.
fn flatten(doc: Value, parent: Option<(&str, &str)>, out: &mut Vec<(String, String, Value)>) {
    let Value::Object(mut map) = doc else { return };
    let text = |m: &serde_json::Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).map(str::to_owned)
    };
    let kind = text(&map, "kind")
        .or_else(|| parent.map(|p| p.1.to_owned()))
        .unwrap_or_default();
    let api_version = text(&map, "apiVersion")
        .or_else(|| parent.map(|p| p.0.to_owned()))
        .unwrap_or_default();
    if let Some(Value::Array(items)) = map.remove("items").filter(|_| kind.ends_with("List")) {
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        for item in items {
            flatten(item, item_kind.map(|k| (api_version.as_str(), k)), out);
        }
    } else if let Some(meta) = map.remove("metadata") {
        out.push((api_version, kind, meta));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_items_become_candidates_through_lists_and_typed_lists() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: istiod, namespace: istio-system, labels: {istio.io/rev: default}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleList\nitems:\n- metadata: {name: istiod-clusterrole-istio-system}\n";
        let c = from_file(text).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].obj.to_string(), "ServiceAccount/istio-system/istiod");
        assert_eq!(c[0].labels["istio.io/rev"], "default");
        assert_eq!(c[1].obj.api_version, "rbac.authorization.k8s.io/v1");
        assert_eq!(
            c[1].obj.to_string(),
            "ClusterRole/istiod-clusterrole-istio-system"
        );
    }
}
