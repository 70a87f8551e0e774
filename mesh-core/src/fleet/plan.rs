//! One cluster's answer to "can it go to version V, in place or as a canary, and what blocks
//! it": the precheck catalogue run for each way the cluster could take the target.
//!
//! `--canary` or `--revision` (or a manifest, which names its revision) fix the way, as in a
//! single-cluster precheck. With only a version, the cluster's default revision (the one
//! `istio-injection=enabled` namespaces get, else its only revision) is judged in place; when
//! that is blocked, a canary beside it is judged too, and the plan is the first way nothing
//! blocks. A remote cluster (injected by another cluster's istiod) follows its primary: only
//! the checks of the cluster itself (Kubernetes version, permissions, Gateway API) apply.

use serde::Serialize;

use super::MeshFacts;
use crate::{
    ambient::PlannedAgent,
    checks::{Context, Finding, Knowledge, Target, TargetMode, run_all},
    inventory::{DEFAULT_REVISION, Inventory},
    snapshot::ClusterSnapshot,
    version::IstioVersion,
};

/// What the user asked the fleet to move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// Target version.
    pub version: IstioVersion,
    /// `--revision`, or the manifest's revision.
    pub revision: Option<String>,
    /// `--canary`.
    pub canary: bool,
    /// The istio-cni and ztunnel a manifest applies (`-f` only).
    pub agents: Option<Vec<PlannedAgent>>,
    /// The images a manifest pulls (`-f` only).
    pub images: Vec<String>,
}

impl Want {
    /// A target of this want: its manifest's agents and images on `t`.
    fn target(&self, t: Target) -> Target {
        Target {
            agents: self.agents.clone(),
            images: self.images.clone(),
            ..t
        }
    }
}

/// The way a cluster takes the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Way {
    /// In place: the revision's istiod is replaced.
    InPlace,
    /// A new revision beside the installed ones.
    Canary,
    /// Nothing installed yet.
    Fresh,
    /// A remote cluster: follows its primary.
    Remote,
}

impl std::fmt::Display for Way {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InPlace => "in place",
            Self::Canary => "canary",
            Self::Fresh => "fresh install",
            Self::Remote => "remote",
        })
    }
}

/// A way that was judged and is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    /// The way.
    pub way: Way,
    /// Its revision.
    pub revision: String,
    /// Ids of the findings that block it.
    pub blocked_by: Vec<&'static str>,
}

/// A cluster's plan for the target.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// The way chosen.
    pub way: Way,
    /// The target as judged.
    pub target: Target,
    /// The findings of that way.
    pub findings: Vec<Finding>,
    /// Ids of the findings that block the chosen way (empty: it can go).
    pub blocked_by: Vec<&'static str>,
    /// The way judged first and found blocked, when another way was chosen or also blocked.
    pub other: Option<Blocked>,
}

impl ClusterPlan {
    /// Whether the cluster cannot take the target either way.
    pub fn blocked(&self) -> bool {
        !self.blocked_by.is_empty()
    }
}

/// What a plan is judged on.
struct Judge<'a> {
    snap: &'a ClusterSnapshot,
    inv: &'a Inventory,
    knowledge: Knowledge<'a>,
    blocks: &'a dyn Fn(&Finding) -> bool,
}

impl Judge<'_> {
    /// The catalogue for one way of taking the target.
    fn way(&self, target: Target, way: Way, canary: bool) -> ClusterPlan {
        let ctx = Context {
            snap: self.snap,
            inv: self.inv,
            target: Some(&target),
            canary_requested: canary,
            knowledge: self.knowledge,
        };
        let findings = run_all(&ctx);
        let mut blocked_by: Vec<&'static str> = findings
            .iter()
            .filter(|f| (self.blocks)(f))
            .map(|f| f.id)
            .collect();
        blocked_by.dedup();
        ClusterPlan {
            way,
            target,
            findings,
            blocked_by,
            other: None,
        }
    }
}

/// What a cluster is judged with: its snapshot and inventory, the release data, and which
/// findings block (`--fail-on`).
pub struct Basis<'a> {
    /// The snapshot.
    pub snap: &'a ClusterSnapshot,
    /// Its inventory.
    pub inv: &'a Inventory,
    /// Release data and today's date.
    pub knowledge: Knowledge<'a>,
    /// Which findings block.
    pub blocks: &'a dyn Fn(&Finding) -> bool,
}

/// Judges one cluster for `want`.
pub fn plan(on: Basis<'_>, facts: &MeshFacts, want: &Want) -> ClusterPlan {
    let (snap, inv) = (on.snap, on.inv);
    let j = Judge {
        snap,
        inv,
        knowledge: on.knowledge,
        blocks: on.blocks,
    };
    if inv.control_planes.is_empty() {
        let way = if facts.is_remote() {
            Way::Remote
        } else {
            Way::Fresh
        };
        let revision = want
            .revision
            .clone()
            .unwrap_or_else(|| DEFAULT_REVISION.into());
        let target = want.target(Target {
            version: want.version.clone(),
            revision,
            mode: TargetMode::Fresh,
            agents: None,
            images: Vec::new(),
        });
        return j.way(target, way, false);
    }
    if want.canary || want.revision.is_some() {
        let t = want.target(Target::resolve(
            inv,
            want.version.clone(),
            want.revision.clone(),
            want.canary,
        ));
        let way = match t.mode {
            TargetMode::InPlace => Way::InPlace,
            TargetMode::Canary => Way::Canary,
            TargetMode::Fresh => Way::Fresh,
        };
        return j.way(t, way, want.canary);
    }
    in_place_else_canary(&j, want)
}

/// In place on the default revision; when that is blocked, a canary; the first way nothing
/// blocks, else in place with the canary's blockers beside it.
fn in_place_else_canary(j: &Judge<'_>, want: &Want) -> ClusterPlan {
    let revision = in_place_revision(j.inv);
    let target = want.target(Target {
        version: want.version.clone(),
        revision: revision.clone(),
        mode: TargetMode::InPlace,
        agents: None,
        images: Vec::new(),
    });
    let in_place = j.way(target, Way::InPlace, false);
    if !in_place.blocked() {
        return in_place;
    }
    let canary = j.way(
        want.target(Target::resolve(j.inv, want.version.clone(), None, true)),
        Way::Canary,
        true,
    );
    if canary.blocked() {
        let second = Blocked {
            way: Way::Canary,
            revision: canary.target.revision.clone(),
            blocked_by: canary.blocked_by,
        };
        return ClusterPlan {
            other: Some(second),
            ..in_place
        };
    }
    let first = Blocked {
        way: Way::InPlace,
        revision,
        blocked_by: in_place.blocked_by,
    };
    ClusterPlan {
        other: Some(first),
        ..canary
    }
}

/// The revision an in-place upgrade would replace: the default revision when it has an istiod,
/// else the cluster's only revision, else `default`.
fn in_place_revision(inv: &Inventory) -> String {
    let default = inv
        .default_revision()
        .filter(|r| inv.control_plane(r).is_some());
    match (default, inv.control_planes.as_slice()) {
        (Some(r), _) => r.to_owned(),
        (None, [only]) => only.revision.clone(),
        _ => DEFAULT_REVISION.to_owned(),
    }
}
