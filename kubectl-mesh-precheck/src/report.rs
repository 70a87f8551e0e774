//! The JSON/YAML report of precheck (schema `kubectl-mesh.dev/precheck/v1`, documented in
//! docs/precheck-json.md). Per-pod data is summarised, so the report stays small on big clusters.

use std::collections::BTreeMap;

use mesh_common::{
    ambient::AmbientView,
    checks::{Category, Finding, Summary, Target, TargetMode},
    inventory::{Injection, InstallMethod, Inventory},
    snapshot::ClusterSnapshot,
};
use serde::Serialize;

/// Schema id of the report.
pub const SCHEMA: &str = "kubectl-mesh.dev/precheck/v1";

/// The whole report.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    schema_version: &'static str,
    success: bool,
    source: &'a str,
    kubernetes_version: Option<String>,
    target: Option<TargetJson>,
    summary: Summary,
    inventory: InventoryJson<'a>,
    categories: Vec<CategoryJson<'a>>,
}

#[derive(Serialize)]
struct TargetJson {
    version: String,
    revision: String,
    mode: TargetMode,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InventoryJson<'a> {
    control_planes: Vec<ControlPlaneJson<'a>>,
    tags: Vec<TagJson<'a>>,
    namespaces: Vec<NamespaceJson<'a>>,
    proxies: Vec<ProxyCount>,
    ambient: &'a AmbientView,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlPlaneJson<'a> {
    revision: &'a str,
    version: Option<String>,
    image: Option<&'a str>,
    namespace: &'a str,
    deployment: &'a str,
    replicas: i32,
    ready: i32,
    install: &'a InstallMethod,
}

#[derive(Serialize)]
struct TagJson<'a> {
    tag: &'a str,
    revision: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NamespaceJson<'a> {
    name: &'a str,
    injection_label: Option<&'a str>,
    rev_label: Option<&'a str>,
    injection: &'a Injection,
    proxies: usize,
}

#[derive(Serialize)]
struct ProxyCount {
    revision: String,
    version: String,
    count: usize,
}

#[derive(Serialize)]
struct CategoryJson<'a> {
    name: Category,
    checks: Vec<&'a Finding>,
}

impl<'a> Report<'a> {
    /// Builds the report.
    pub fn new(
        snap: &'a ClusterSnapshot,
        inv: &'a Inventory,
        target: Option<&Target>,
        findings: &'a [Finding],
        success: bool,
    ) -> Self {
        let mut cats: BTreeMap<Category, Vec<&Finding>> = BTreeMap::new();
        for f in findings {
            cats.entry(f.category).or_default().push(f);
        }
        Self {
            schema_version: SCHEMA,
            success,
            source: &snap.origin,
            kubernetes_version: snap.kube_version.as_ref().map(ToString::to_string),
            target: target.map(|t| TargetJson {
                version: t.version.to_string(),
                revision: t.revision.clone(),
                mode: t.mode,
            }),
            summary: Summary::of(findings),
            inventory: inventory(inv),
            categories: cats
                .into_iter()
                .map(|(name, checks)| CategoryJson { name, checks })
                .collect(),
        }
    }
}

fn inventory(inv: &Inventory) -> InventoryJson<'_> {
    let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &inv.proxies {
        *per_ns.entry(p.namespace.as_str()).or_default() += 1;
    }
    InventoryJson {
        control_planes: inv
            .control_planes
            .iter()
            .map(|c| ControlPlaneJson {
                revision: &c.revision,
                version: c.version.as_ref().map(ToString::to_string),
                image: c.image.as_deref(),
                namespace: &c.namespace,
                deployment: &c.deployment,
                replicas: c.replicas,
                ready: c.ready,
                install: &c.install,
            })
            .collect(),
        tags: inv
            .tags
            .iter()
            .map(|t| TagJson {
                tag: &t.name,
                revision: &t.revision,
            })
            .collect(),
        namespaces: inv
            .namespaces
            .iter()
            .filter(|n| {
                !matches!(n.injection, Injection::NotEnabled)
                    || per_ns.contains_key(n.name.as_str())
            })
            .map(|n| NamespaceJson {
                name: &n.name,
                injection_label: n.injection_label.as_deref(),
                rev_label: n.rev_label.as_deref(),
                injection: &n.injection,
                proxies: per_ns.get(n.name.as_str()).copied().unwrap_or(0),
            })
            .collect(),
        proxies: inv
            .proxy_counts()
            .into_iter()
            .map(|((revision, version), count)| ProxyCount {
                revision,
                version,
                count,
            })
            .collect(),
        ambient: &inv.ambient,
    }
}
