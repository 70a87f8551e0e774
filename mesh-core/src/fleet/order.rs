//! The order to take a mesh's clusters to a target version.
//!
//! Primaries first, each followed by the remotes it injects (a remote's pods get their proxy
//! from its primary's istiod, so its own install follows). Among primaries, the one furthest
//! from the target goes first — the oldest for an upgrade, the newest for a downgrade — so the
//! control planes of different clusters stay within one minor of each other at every step.
//! Each step is simulated: when a cluster reaches the target, every cluster not yet moved must
//! be within one minor of it; the first step that breaks this is an error naming the cluster to
//! move to an intermediate minor first.

use serde::Serialize;

use super::{Member, checks::primary_of, mesh::Mesh};
use crate::{
    checks::{Category, Finding},
    version::IstioVersion,
};

const ID: &str = "fleet.upgrade-order";

/// What one step does to one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum StepAction {
    /// Move its control planes to the target.
    Upgrade {
        /// Versions it runs now.
        from: Vec<IstioVersion>,
    },
    /// Move its control planes down to the target.
    Downgrade {
        /// Versions it runs now.
        from: Vec<IstioVersion>,
    },
    /// A remote: install the target's remote profile once its primary runs the target.
    AfterPrimary {
        /// The primary it injects through (`None` when no cluster of the run is it).
        primary: Option<String>,
    },
    /// Already at the target.
    AtTarget,
    /// No control plane version could be read.
    Unknown,
}

/// One step of a mesh's upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The cluster.
    pub cluster: String,
    /// What to do.
    #[serde(flatten)]
    pub action: StepAction,
}

/// The steps of one mesh, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeshOrder {
    /// The mesh.
    pub mesh: String,
    /// The target.
    pub target: IstioVersion,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// The order of every mesh, and one finding per mesh.
pub fn order(
    members: &[Member],
    meshes: &[Mesh],
    target: &IstioVersion,
) -> (Vec<MeshOrder>, Vec<Finding>) {
    let mut orders = Vec::new();
    let mut findings = Vec::new();
    for mesh in meshes {
        let ms: Vec<&Member> = mesh.members.iter().map(|i| &members[*i]).collect();
        let steps = steps(&ms, target);
        findings.push(judge(&mesh.id, &ms, &steps, target));
        orders.push(MeshOrder {
            mesh: mesh.id.clone(),
            target: target.clone(),
            steps,
        });
    }
    (orders, findings)
}

/// How far a cluster is from the target: the largest minor distance of its control planes.
fn distance(m: &Member, target: &IstioVersion) -> i64 {
    m.versions()
        .map(|v| target.minors_since(v).abs())
        .max()
        .unwrap_or(0)
}

fn action(m: &Member, target: &IstioVersion) -> StepAction {
    let mut from: Vec<IstioVersion> = m.versions().filter(|v| *v != target).cloned().collect();
    from.sort();
    if m.versions().next().is_none() {
        StepAction::Unknown
    } else if from.is_empty() {
        StepAction::AtTarget
    } else if from.iter().all(|v| v > target) {
        StepAction::Downgrade { from }
    } else {
        StepAction::Upgrade { from }
    }
}

fn steps(ms: &[&Member], target: &IstioVersion) -> Vec<Step> {
    let mut primaries: Vec<&Member> = ms
        .iter()
        .copied()
        .filter(|m| m.facts.is_primary())
        .collect();
    primaries.sort_by_key(|m| {
        let at = matches!(
            action(m, target),
            StepAction::AtTarget | StepAction::Unknown
        );
        let oldest = m.versions().min().cloned();
        (at, -distance(m, target), oldest, m.name.clone())
    });
    let remotes: Vec<&Member> = ms.iter().copied().filter(|m| m.facts.is_remote()).collect();
    let primary = |r: &Member| -> Option<String> {
        r.facts
            .remote_injectors
            .iter()
            .find_map(|i| primary_of(i, ms))
            .map(|p| p.name.clone())
    };
    let mut out = Vec::new();
    for p in &primaries {
        out.push(Step {
            cluster: p.name.clone(),
            action: action(p, target),
        });
        for r in remotes
            .iter()
            .filter(|r| primary(r).as_deref() == Some(&p.name))
        {
            out.push(Step {
                cluster: r.name.clone(),
                action: StepAction::AfterPrimary {
                    primary: Some(p.name.clone()),
                },
            });
        }
    }
    for r in remotes.iter().filter(|r| primary(r).is_none()) {
        out.push(Step {
            cluster: r.name.clone(),
            action: StepAction::AfterPrimary { primary: None },
        });
    }
    out
}

/// Simulates the steps: when a primary reaches the target, every primary not yet moved must be
/// within one minor of the target.
fn judge(mesh: &str, ms: &[&Member], steps: &[Step], target: &IstioVersion) -> Finding {
    let moving: Vec<&str> = steps
        .iter()
        .filter(|s| {
            matches!(
                s.action,
                StepAction::Upgrade { .. } | StepAction::Downgrade { .. }
            )
        })
        .map(|s| s.cluster.as_str())
        .collect();
    for (i, now) in moving.iter().enumerate() {
        for later in &moving[i + 1..] {
            let Some(m) = ms.iter().find(|m| m.name == *later) else {
                continue;
            };
            if let Some(v) = m.versions().find(|v| target.minors_since(v).abs() > 1) {
                let step = if target > v {
                    v.minor() + 1
                } else {
                    v.minor() - 1
                };
                return Finding::error(ID, Category::MultiCluster, format!(
                    "mesh `{mesh}` cannot reach {target} one cluster at a time: once `{now}` runs {target}, `{later}` still runs {v}, more than one minor apart"
                ))
                .hint(format!("take `{later}` to 1.{step} first, then run this precheck again"));
            }
        }
    }
    Finding::ok(
        ID,
        Category::MultiCluster,
        format!("mesh `{mesh}` to {target}: {}", describe(steps)),
    )
}

/// `1. east (upgrade from 1.29.6), 2. remote (after east), 3. west (already at the target)`.
pub fn describe(steps: &[Step]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {} ({})", i + 1, s.cluster, s.action))
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for StepAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[IstioVersion]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Upgrade { from } => write!(f, "upgrade from {}", list(from)),
            Self::Downgrade { from } => write!(f, "downgrade from {}", list(from)),
            Self::AfterPrimary { primary: Some(p) } => write!(f, "after {p}"),
            Self::AfterPrimary { primary: None } => f.write_str("after its primary"),
            Self::AtTarget => f.write_str("already at the target"),
            Self::Unknown => f.write_str("version unknown"),
        }
    }
}
