//! Fleets: many clusters judged in one run, and the checks only a multi-cluster mesh needs.
//!
//! Each cluster is reduced, as soon as it is read, to a [`Member`]: its name (the kubeconfig
//! context or the snapshot file), a [`Row`] for the fleet table, and its [`MeshFacts`] — what it
//! says about the multi-cluster mesh it may be part of. The shell drops the cluster's snapshot
//! after that, so a fleet run holds at most `--parallel` snapshots at once.
//!
//! Clusters form a mesh ([`meshes`]) when they share an explicitly configured mesh ID (or a trust
//! domain other than Istio's default `cluster.local`), or when one holds a remote secret for the
//! other, or when one's injector points at the other's istiod. The checks ([`check`]) then judge
//! what no single cluster can show: the control planes of different clusters within one minor
//! of each other, remote clusters injected by a primary that runs their revision, remote secrets
//! in place, revisions asked for where they are served, and, for a target, the order to upgrade
//! the clusters in ([`order`]). A per-cluster plan for a target (in place or canary, and what
//! blocks it) is [`plan::plan`].

mod checks;
pub mod facts;
mod mesh;
pub mod order;
pub mod plan;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use checks::{FleetChecks, check};
pub use facts::{Endpoint, MeshFacts};
pub use mesh::{Mesh, meshes};

use crate::{
    ambient::AgentKind,
    inventory::{Injection, Inventory, STATUS_ANNOTATION},
    snapshot::{ClusterSnapshot, Source},
    version::IstioVersion,
};

/// How a cluster's workloads join the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlaneMode {
    /// Nothing joins the mesh.
    None,
    /// Sidecars (injection or proxies).
    Sidecar,
    /// Ambient (ztunnel, ambient namespaces).
    Ambient,
    /// Both.
    Both,
}

impl std::fmt::Display for DataPlaneMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Sidecar => "sidecar",
            Self::Ambient => "ambient",
            Self::Both => "both",
        })
    }
}

/// The data-plane mode a snapshot shows: ambient from a ztunnel DaemonSet or namespaces labelled
/// `istio.io/dataplane-mode=ambient`, sidecar from injection-enabled namespaces or injected pods
/// (a gateway with its own proxy image is neither). `None` (unknown) when namespaces,
/// DaemonSets and pods were all unread.
pub fn data_plane_mode(snap: &ClusterSnapshot, inv: &Inventory) -> Option<DataPlaneMode> {
    let unread = [Source::Namespaces, Source::DaemonSets, Source::Pods];
    if unread.iter().all(|s| snap.gap(*s).is_some()) {
        return None;
    }
    let ambient = inv.ambient.agents_of(AgentKind::Ztunnel).next().is_some()
        || !inv.ambient.namespaces.is_empty();
    let sidecar = snap
        .pods
        .iter()
        .any(|p| p.annotation(STATUS_ANNOTATION).is_some())
        || inv
            .namespaces
            .iter()
            .any(|n| matches!(n.injection, Injection::Revision { .. }));
    Some(match (sidecar, ambient) {
        (false, false) => DataPlaneMode::None,
        (true, false) => DataPlaneMode::Sidecar,
        (false, true) => DataPlaneMode::Ambient,
        (true, true) => DataPlaneMode::Both,
    })
}

/// What the fleet table shows of a cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Control planes: revision and version.
    pub revisions: Vec<facts::RevisionVersion>,
    /// Revisions injected through an istiod in another cluster (a remote's).
    pub remote_revisions: Vec<String>,
    /// Tags and the revision each points at.
    pub tags: Vec<(String, String)>,
    /// Proxies per version (`?` when the image has no version).
    pub proxies: BTreeMap<String, usize>,
    /// Data-plane mode, when known.
    pub mode: Option<DataPlaneMode>,
}

impl Row {
    /// The row of a cluster.
    pub fn of(snap: &ClusterSnapshot, inv: &Inventory, facts: &MeshFacts) -> Self {
        let mut proxies = BTreeMap::new();
        for p in &inv.proxies {
            let v = p
                .version
                .as_ref()
                .map_or_else(|| "?".to_owned(), ToString::to_string);
            *proxies.entry(v).or_default() += 1;
        }
        let mut remote_revisions: Vec<String> = facts
            .remote_injectors
            .iter()
            .map(|i| i.revision.clone())
            .collect();
        remote_revisions.sort();
        remote_revisions.dedup();
        Self {
            revisions: facts.control_planes.clone(),
            remote_revisions,
            tags: inv
                .tags
                .iter()
                .map(|t| (t.name.clone(), t.revision.clone()))
                .collect(),
            proxies,
            mode: data_plane_mode(snap, inv),
        }
    }
}

/// One cluster of the fleet, reduced to what the fleet checks and table need.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// The kubeconfig context, or the snapshot file's name.
    pub name: String,
    /// Its mesh facts.
    pub facts: MeshFacts,
}

impl Member {
    /// Versions of its control planes.
    pub fn versions(&self) -> impl Iterator<Item = &IstioVersion> {
        self.facts
            .control_planes
            .iter()
            .filter_map(|c| c.version.as_ref())
    }
}
