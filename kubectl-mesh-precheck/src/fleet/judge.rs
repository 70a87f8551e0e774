//! What a fleet run keeps of each cluster once it is read: its row, its mesh facts, its findings
//! (and plan, for a target) and, for `-o json|yaml`, its single-cluster report — everything
//! computed while its snapshot is in memory, which is then dropped.

use mesh_common::{
    checks::{Context, Finding, run_all},
    fleet::{
        MeshFacts, Row,
        plan::{Basis, Blocked, Want, Way, plan},
    },
    inventory::Inventory,
    snapshot::ClusterSnapshot,
    version::KubeVersion,
};
use serde::Serialize;

use crate::{args::FailOn, report, run::blocks};

/// What the fleet asks of every cluster.
#[derive(Clone)]
pub struct Ask {
    /// The target, if any.
    pub want: Option<Want>,
    /// `--fail-on`.
    pub fail_on: FailOn,
    /// Keep the single-cluster report (`-o json|yaml`).
    pub report: bool,
    /// Only the row (`kubectl mesh version`).
    pub row_only: bool,
    /// Release data and today's date.
    pub releases: std::sync::Arc<mesh_common::knowledge::Loaded>,
}

/// A cluster's plan for the target, as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    /// In place, canary, fresh, remote.
    pub way: Way,
    /// Revision the target is judged as.
    pub revision: String,
    /// Ids that block it (empty: it can go).
    pub blocked_by: Vec<&'static str>,
    /// The way judged first and found blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<Blocked>,
}

/// One cluster as the fleet keeps it.
pub struct Judged {
    /// `context east (https://…)` or `snapshot FILE`.
    pub origin: String,
    /// Kubernetes version.
    pub kube_version: Option<KubeVersion>,
    /// The fleet table's row.
    pub row: Row,
    /// Its mesh facts.
    pub facts: MeshFacts,
    /// Its findings.
    pub findings: Vec<Finding>,
    /// Its plan, for a target.
    pub plan: Option<PlanView>,
    /// Whether a finding is at or above `--fail-on`.
    pub blocked: bool,
    /// The single-cluster report (`kubectl-mesh.dev/precheck/v1`), for `-o json|yaml`.
    pub report: Option<serde_json::Value>,
}

/// Reduces a cluster's snapshot to what the fleet keeps.
pub fn judge(ask: &Ask, snap: ClusterSnapshot) -> Judged {
    let inv = Inventory::from_snapshot(&snap);
    let facts = MeshFacts::of(&snap, &inv);
    let row = Row::of(&snap, &inv, &facts);
    let mut out = Judged {
        origin: snap.origin.clone(),
        kube_version: snap.kube_version.clone(),
        row,
        facts,
        findings: Vec::new(),
        plan: None,
        blocked: false,
        report: None,
    };
    if ask.row_only {
        return out;
    }
    let fail_on = ask.fail_on;
    let blocking = move |f: &Finding| blocks(fail_on, f);
    let (findings, target) = match &ask.want {
        Some(want) => {
            let on = Basis {
                snap: &snap,
                inv: &inv,
                knowledge: ask.releases.knowledge(),
                blocks: &blocking,
            };
            let p = plan(on, &out.facts, want);
            out.plan = Some(PlanView {
                way: p.way,
                revision: p.target.revision.clone(),
                blocked_by: p.blocked_by.clone(),
                other: p.other.clone(),
            });
            (p.findings, Some(p.target))
        }
        None => {
            let ctx = Context {
                snap: &snap,
                inv: &inv,
                target: None,
                canary_requested: false,
                knowledge: ask.releases.knowledge(),
            };
            (run_all(&ctx), None)
        }
    };
    out.blocked = findings.iter().any(blocking);
    if ask.report {
        let r = report::Report::new(&snap, &inv, target.as_ref(), &findings, !out.blocked);
        out.report = serde_json::to_value(&r).ok();
    }
    out.findings = findings;
    out
}
