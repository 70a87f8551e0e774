//! The fleet's JSON/YAML documents: `kubectl-mesh.dev/precheck-fleet/v1` (every cluster's row,
//! plan and single-cluster report, the meshes, the checks across clusters and the upgrade
//! order) and `kubectl-mesh.dev/mesh-versions/v1` (what `kubectl mesh version --context …`
//! prints). Both documented in docs/precheck-fleet-json.md.

use mesh_common::{
    checks::{Finding, Summary},
    cluster::fleet::{ClusterRead, Failure},
    fleet::{DataPlaneMode, facts::RevisionVersion, order::MeshOrder},
};
use serde::Serialize;

use super::{Judged, judge::PlanView, show::Fleet};

/// Schema id of the fleet report.
pub const SCHEMA: &str = "kubectl-mesh.dev/precheck-fleet/v1";
/// Schema id of the versions document.
pub const VERSIONS_SCHEMA: &str = "kubectl-mesh.dev/mesh-versions/v1";

/// The fleet report.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    schema_version: &'static str,
    success: bool,
    exit_code: u8,
    target: Option<TargetJson>,
    summary: FleetSummary,
    clusters: Vec<ClusterJson<'a>>,
    meshes: Vec<MeshJson<'a>>,
    multi_cluster: MultiCluster<'a>,
    upgrade_order: &'a [MeshOrder],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetJson {
    version: String,
    revision: Option<String>,
    canary: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FleetSummary {
    clusters: usize,
    ok: usize,
    blocked: usize,
    unread: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterJson<'a> {
    name: &'a str,
    /// ok | blocked | unread
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a Failure>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    row: Option<RowJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a PlanView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mesh: Option<MeshFactsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RowJson<'a> {
    source: &'a str,
    kubernetes_version: Option<String>,
    control_planes: &'a [RevisionVersion],
    remote_revisions: &'a [String],
    tags: Vec<TagJson<'a>>,
    proxies: Vec<ProxyJson<'a>>,
    mode: Option<DataPlaneMode>,
}

#[derive(Serialize)]
struct TagJson<'a> {
    tag: &'a str,
    revision: &'a str,
}

#[derive(Serialize)]
struct ProxyJson<'a> {
    version: &'a str,
    count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeshFactsJson<'a> {
    role: &'static str,
    cluster_name: Option<&'a str>,
    mesh_ids: Vec<&'a str>,
    trust_domains: Vec<&'a str>,
    networks: Vec<&'a str>,
    remote_secrets: Vec<&'a str>,
}

#[derive(Serialize)]
struct MeshJson<'a> {
    id: &'a str,
    clusters: Vec<&'a str>,
}

#[derive(Serialize)]
struct MultiCluster<'a> {
    summary: Summary,
    checks: &'a [Finding],
}

fn row(j: &Judged) -> RowJson<'_> {
    RowJson {
        source: &j.origin,
        kubernetes_version: j.kube_version.as_ref().map(ToString::to_string),
        control_planes: &j.row.revisions,
        remote_revisions: &j.row.remote_revisions,
        tags: j
            .row
            .tags
            .iter()
            .map(|(tag, revision)| TagJson { tag, revision })
            .collect(),
        proxies: j
            .row
            .proxies
            .iter()
            .map(|(version, count)| ProxyJson {
                version,
                count: *count,
            })
            .collect(),
        mode: j.row.mode,
    }
}

fn facts(j: &Judged) -> MeshFactsJson<'_> {
    let f = &j.facts;
    fn names(s: &std::collections::BTreeSet<String>) -> Vec<&str> {
        s.iter().map(String::as_str).collect()
    }
    MeshFactsJson {
        role: if f.is_primary() {
            "primary"
        } else if f.is_remote() {
            "remote"
        } else {
            "none"
        },
        cluster_name: f.cluster_name(),
        mesh_ids: names(&f.mesh_ids),
        trust_domains: names(&f.trust_domains),
        networks: names(&f.networks),
        remote_secrets: f
            .remote_secrets
            .iter()
            .map(|s| s.cluster.as_str())
            .collect(),
    }
}

fn cluster<'a>(r: &'a ClusterRead<Judged>, full: bool) -> ClusterJson<'a> {
    match &r.result {
        Ok(j) => ClusterJson {
            name: &r.name,
            status: if j.blocked { "blocked" } else { "ok" },
            failure: None,
            row: Some(row(j)),
            plan: j.plan.as_ref(),
            mesh: full.then(|| facts(j)),
            report: if full { j.report.as_ref() } else { None },
        },
        Err(f) => ClusterJson {
            name: &r.name,
            status: "unread",
            failure: Some(f),
            row: None,
            plan: None,
            mesh: None,
            report: None,
        },
    }
}

impl<'a> Report<'a> {
    /// Builds the fleet report.
    pub fn new(v: &'a Fleet<'a>) -> Self {
        let clusters: Vec<ClusterJson<'a>> = v.reads.iter().map(|r| cluster(r, true)).collect();
        let count = |s: &str| clusters.iter().filter(|c| c.status == s).count();
        Self {
            schema_version: SCHEMA,
            success: v.status == mesh_common::exit::ExitStatus::Success,
            exit_code: v.status as u8,
            target: v.ask.want.as_ref().map(|w| TargetJson {
                version: w.version.to_string(),
                revision: w.revision.clone(),
                canary: w.canary,
            }),
            summary: FleetSummary {
                clusters: clusters.len(),
                ok: count("ok"),
                blocked: count("blocked"),
                unread: count("unread"),
            },
            meshes: v
                .fleet
                .meshes
                .iter()
                .map(|m| MeshJson {
                    id: &m.id,
                    clusters: m.clusters.iter().map(String::as_str).collect(),
                })
                .collect(),
            multi_cluster: MultiCluster {
                summary: Summary::of(&v.fleet.findings),
                checks: &v.fleet.findings,
            },
            upgrade_order: &v.fleet.order,
            clusters,
        }
    }
}

/// `kubectl mesh version --context …` as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions<'a> {
    schema_version: &'static str,
    clusters: Vec<ClusterJson<'a>>,
}

impl<'a> Versions<'a> {
    /// Builds the document.
    pub fn new(reads: &'a [ClusterRead<Judged>]) -> Self {
        Self {
            schema_version: VERSIONS_SCHEMA,
            clusters: reads
                .iter()
                .map(|r| {
                    let mut c = cluster(r, false);
                    if c.status == "blocked" {
                        c.status = "ok";
                    }
                    c
                })
                .collect(),
        }
    }
}
