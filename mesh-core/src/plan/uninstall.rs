//! Uninstall planning: one revision's control plane, or every control plane (`--purge`).
//!
//! What belongs to a revision is decided from labels, as `istioctl uninstall` does (ISTIO.md
//! §5.2): `istio.io/rev=<rev>` plus `operator.istio.io/component` in Pilot, IngressGateways,
//! EgressGateways, Cni, Ztunnel — never Base, so the CRDs and every Istio resource survive. On top
//! of istioctl it also takes what would otherwise be left dangling or behind: the revision's
//! webhook configurations even when their component label is missing (a webhook whose Service is
//! gone rejects pods), for `default` the non-revisioned objects that carry no revision label, and
//! a manifest's unlabelled RBAC objects by their chart names (ISTIO.md §3.1). Tag objects are never
//! part of a revision: a tag pointing at the revision blocks, and only `--force` deletes it.
//!
//! Before anything is deleted the plan lists what still uses the revision — namespaces selecting
//! it directly or through a tag (as the webhooks really resolve them), tags, running pods injected
//! by it, gateways, ztunnel and waypoints (ambient mode) — each with the command that moves it.
//! Helm-installed control planes and foreign webhooks that call a Service this would delete are
//! refused even with `--force`.
//!
//! Pure: a snapshot, its inventory and the label-selected objects the shell listed go in; the
//! objects to delete in a safe order (webhooks, then workloads, then config and RBAC, then CRDs),
//! the blockers and the warnings come out.

mod ambient;
mod blockers;
mod select;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub use select::{candidates, istio_crds, webhooks_calling};

use crate::{
    ObjRef,
    change::{self, ChangePlan, Op, Wait},
    error::{Class, Classify, RevisionError},
    inventory::{Inventory, TAG_LABEL},
    snapshot::{ClusterSnapshot, Gap, PodInfo, SharedMap, Source, Unread, annotation},
};

/// Label naming the installer component of an object.
pub const COMPONENT_LABEL: &str = "operator.istio.io/component";
/// Components that make up a control plane (ISTIO.md §5.2); `Base` is not one of them.
pub const COMPONENTS: [&str; 5] = [
    "Pilot",
    "IngressGateways",
    "EgressGateways",
    "Cni",
    "Ztunnel",
];

/// What to uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum Target {
    /// One revision (`default` = the non-revisioned control plane).
    Revision {
        /// The revision.
        revision: String,
    },
    /// Every control plane and gateway.
    Purge {
        /// Also the Istio CRDs (and so every Istio resource).
        #[serde(rename = "includeCrds")]
        include_crds: bool,
    },
}

/// Kinds listed cluster-wide by label to find what a control plane owns: (apiVersion, kind,
/// plural). The snapshot holds only part of some of them (Deployments labelled `istio`, Services
/// and ConfigMaps of the Istio namespace).
pub const LISTED: [(&str, &str, &str); 10] = [
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

/// Selector of every object an installer labelled.
pub const INSTALLED_SELECTOR: &str = "operator.istio.io/component";
/// Selector of a manifest's RBAC objects, which the charts label only with `app` (ISTIO.md §3.1).
pub const CHART_RBAC_SELECTOR: &str =
    "app in (istiod,istio-reader),!operator.istio.io/component,!istio.io/rev";

/// The RBAC kinds of [`LISTED`].
pub fn rbac_kinds() -> Vec<(&'static str, &'static str, &'static str)> {
    LISTED
        .iter()
        .copied()
        .filter(|(_, k, _)| {
            matches!(
                *k,
                "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
            )
        })
        .collect()
}

/// An uninstall request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to uninstall.
    pub target: Target,
    /// Proceed despite what still uses it (never despite a hard refusal).
    pub force: bool,
}

/// A Helm release that owns an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HelmRelease {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
}

/// An object that may belong to a control plane: its reference and the metadata selection reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The object.
    pub obj: ObjRef,
    /// Its labels (shared with the pod's, for pods).
    pub labels: SharedMap,
    /// The Helm release owning it, if any.
    pub helm: Option<HelmRelease>,
    /// Whether a controller owns it (such pods go with their owner).
    pub controlled: bool,
    /// Its UID, so the delete takes only this very object.
    pub uid: Option<String>,
}

impl Candidate {
    /// A candidate from an object's type and metadata.
    pub fn new(api_version: &str, kind: &str, meta: &ObjectMeta) -> Self {
        let helm = annotation(meta, "meta.helm.sh/release-name").map(|name| HelmRelease {
            name: name.to_owned(),
            namespace: annotation(meta, "meta.helm.sh/release-namespace")
                .or(meta.namespace.as_deref())
                .unwrap_or_default()
                .to_owned(),
        });
        Self {
            obj: ObjRef {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone().unwrap_or_default(),
            },
            labels: SharedMap::new(meta.labels.clone().unwrap_or_default()),
            helm,
            controlled: meta
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true)),
            uid: meta.uid.clone(),
        }
    }

    /// A candidate from a pod (its Helm annotations are among those a pod keeps).
    pub fn of_pod(p: &PodInfo) -> Self {
        let helm = p
            .annotation("meta.helm.sh/release-name")
            .map(|name| HelmRelease {
                name: name.to_owned(),
                namespace: p
                    .annotation("meta.helm.sh/release-namespace")
                    .unwrap_or(p.namespace())
                    .to_owned(),
            });
        Self {
            obj: ObjRef::new("v1", "Pod", Some(p.namespace()), p.name()),
            labels: p.shared_labels().clone(),
            helm,
            controlled: p.controller().is_some(),
            uid: p.uid().map(str::to_owned),
        }
    }

    /// A candidate from an object known by type and metadata.
    pub fn of(t: &crate::snapshot::TypedMeta) -> Self {
        Self::new(&t.api_version, &t.kind, &t.metadata)
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    fn tag(&self) -> Option<&str> {
        self.label(TAG_LABEL)
    }
}

/// What the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The snapshot (namespaces, webhooks, pods, deployments, ...).
    pub snapshot: &'a ClusterSnapshot,
    /// Its inventory.
    pub inventory: &'a Inventory,
    /// Objects the shell listed by label (ServiceAccounts, RBAC, HPAs, ...); merged with the
    /// snapshot's own objects.
    pub listed: &'a [Candidate],
    /// Number of custom resources per Istio CRD name, where counted.
    pub crd_counts: &'a BTreeMap<String, usize>,
}

/// The phases of deletion, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Webhook configurations: first, so no webhook calls a Service that is gone.
    Webhooks,
    /// Autoscalers, disruption budgets, Deployments, DaemonSets, Services.
    Workloads,
    /// ConfigMaps, EnvoyFilters and RBAC.
    Config,
    /// Istio CRDs (purge with `--include-crds` only).
    Crds,
}

impl Phase {
    /// Human name.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Webhooks => "webhook configurations",
            Self::Workloads => "workloads and services",
            Self::Config => "configuration and RBAC",
            Self::Crds => "Istio CRDs",
        }
    }
}

/// Kinds deleted, in deletion order, with their phase. Kinds not listed are never deleted
/// (Secrets, Namespaces, user workloads).
pub const KIND_ORDER: [(&str, Phase); 16] = [
    ("MutatingWebhookConfiguration", Phase::Webhooks),
    ("ValidatingWebhookConfiguration", Phase::Webhooks),
    ("HorizontalPodAutoscaler", Phase::Workloads),
    ("PodDisruptionBudget", Phase::Workloads),
    ("Deployment", Phase::Workloads),
    ("DaemonSet", Phase::Workloads),
    ("Pod", Phase::Workloads),
    ("Service", Phase::Workloads),
    ("EnvoyFilter", Phase::Config),
    ("ConfigMap", Phase::Config),
    ("RoleBinding", Phase::Config),
    ("Role", Phase::Config),
    ("ServiceAccount", Phase::Config),
    ("ClusterRoleBinding", Phase::Config),
    ("ClusterRole", Phase::Config),
    ("CustomResourceDefinition", Phase::Crds),
];

fn kind_rank(kind: &str) -> Option<(usize, Phase)> {
    KIND_ORDER
        .iter()
        .position(|(k, _)| *k == kind)
        .map(|i| (i, KIND_ORDER[i].1))
}

/// One object to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When it is deleted.
    pub phase: Phase,
    /// The object.
    #[serde(flatten)]
    pub object: ObjRef,
    /// What it belongs to (`revision 1-29-6`, `tag prod`, `Istio CRD`).
    pub owner: String,
    /// Its UID when listed: the delete takes only this very object.
    #[serde(skip)]
    pub uid: Option<String>,
}

/// Why the uninstall is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockerKind {
    /// A namespace's pods are injected by the revision.
    Namespace,
    /// A tag points at the revision.
    Tag,
    /// Running pods carry the revision's proxy.
    Pods,
    /// A gateway belongs to or runs on the revision.
    Gateway,
    /// Installed by Helm: uninstall it with Helm.
    Helm,
    /// A webhook outside the plan would call a Service the plan deletes.
    Webhook,
    /// ztunnel talks to the revision's istiod (or is deleted with it).
    Ztunnel,
    /// istio-cni is deleted with the revision while namespaces are in ambient mode.
    Cni,
    /// A waypoint is rendered and configured by the revision's istiod.
    Waypoint,
}

/// Something that uses what would be deleted, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// The kind of use.
    pub kind: BlockerKind,
    /// The object in use (`namespace shop`, `tag prod`).
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// The command that resolves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Whether `--force` may override it.
    pub overridable: bool,
}

/// An Istio CRD and how many resources it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrdUse {
    /// CRD name (`virtualservices.networking.istio.io`).
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Custom resources of it, if counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<usize>,
    /// Whether the plan deletes it.
    pub deleted: bool,
}

/// The plan of an uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallPlan {
    /// What was asked.
    pub target: Target,
    /// Control plane revisions removed.
    pub revisions: Vec<String>,
    /// Objects to delete, in order.
    pub steps: Vec<Step>,
    /// What still uses it.
    pub blockers: Vec<Blocker>,
    /// Things to know that do not block.
    pub warnings: Vec<String>,
    /// Istio CRDs (purge only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crds: Vec<CrdUse>,
    /// `--force` was given.
    pub force: bool,
    /// Sources a complete plan reads that could not be read: what uses the revision was found
    /// in the rest, but the plan cannot be carried out (only a refusal is reported with them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<Gap>,
}

impl UninstallPlan {
    /// Whether it must not run: a hard refusal, or a blocker without `--force`.
    pub fn refused(&self) -> bool {
        self.blockers.iter().any(|b| !b.overridable || !self.force)
    }

    /// Blockers that `--force` cannot override.
    pub fn hard_blockers(&self) -> impl Iterator<Item = &Blocker> {
        self.blockers.iter().filter(|b| !b.overridable)
    }

    /// The objects of a phase, in order.
    pub fn phase(&self, phase: Phase) -> Vec<ObjRef> {
        self.steps
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.object.clone())
            .collect()
    }

    /// Every object, in order.
    pub fn objects(&self) -> Vec<ObjRef> {
        self.steps.iter().map(|s| s.object.clone()).collect()
    }

    /// The deletions as a plan of changes: one phase per [`Phase`] in order, each followed by a
    /// wait until its objects are gone (followed by UID). Webhooks go first, so whatever fails
    /// later, no webhook is left calling a Service that no longer exists.
    pub fn changes(&self) -> ChangePlan {
        let mut plan = ChangePlan::default();
        for phase in [
            Phase::Webhooks,
            Phase::Workloads,
            Phase::Config,
            Phase::Crds,
        ] {
            let mut p = change::Phase::new(phase.describe());
            for s in self.steps.iter().filter(|s| s.phase == phase) {
                p.ops.push(Op::Delete {
                    target: s.object.clone(),
                    uid: s.uid.clone(),
                });
                p.waits.push(Wait::Gone {
                    target: s.object.clone(),
                    uid: s.uid.clone(),
                });
            }
            plan.push(p);
        }
        plan
    }

    /// Istio resources deleted with the CRDs, if all were counted.
    pub fn deleted_resources(&self) -> Option<usize> {
        self.crds
            .iter()
            .filter(|c| c.deleted)
            .map(|c| c.resources)
            .sum()
    }
}

/// Why an uninstall cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UninstallError {
    /// No control plane, injector or object of that revision exists, or it is a tag.
    #[error(transparent)]
    Revision(#[from] RevisionError),
    /// A source the plan needs could not be read.
    #[error(transparent)]
    Unreadable(#[from] Unread),
}

impl Classify for UninstallError {
    fn class(&self) -> Class {
        match self {
            Self::Revision(_) => Class::Usage,
            Self::Unreadable(e) => e.class(),
        }
    }

    fn hints(&self) -> Vec<String> {
        match self {
            Self::Revision(e) => e.hints(),
            Self::Unreadable(e) => e.hints(),
        }
    }
}

/// Sources without which the revision and its objects cannot be found at all.
const IDENTIFY: [Source; 2] = [Source::Deployments, Source::MutatingWebhooks];
/// Sources a complete plan also reads. Without one, what still uses the revision is still found
/// in the rest and refuses (a namespace or a tag on the revision is a fact whatever else is
/// unknown); only a plan that would go ahead needs them all.
const COMPLETE: [Source; 4] = [
    Source::Namespaces,
    Source::ValidatingWebhooks,
    Source::Pods,
    Source::Services,
];

/// Plans an uninstall: refused (with what uses the revision) from whatever was read, or
/// complete — never a plan to carry out from partial input.
pub fn plan(input: &Input<'_>, req: &Request) -> Result<UninstallPlan, UninstallError> {
    input.snapshot.require(&IDENTIFY)?;
    let sel = select::select(input, req)?;
    let blockers = blockers::find(input, req, &sel);
    let crds = crd_uses(input, req);
    let warnings = blockers::warnings(input, req, &sel, &crds);
    let plan = UninstallPlan {
        target: req.target.clone(),
        revisions: sel.revisions.clone(),
        steps: sel.steps,
        blockers,
        warnings,
        crds,
        force: req.force,
        unread: COMPLETE
            .iter()
            .filter_map(|s| input.snapshot.gap(*s).cloned())
            .collect(),
    };
    match plan.unread.first() {
        Some(gap) if !plan.refused() => Err(Unread { gap: gap.clone() }.into()),
        _ => Ok(plan),
    }
}

fn crd_uses(input: &Input<'_>, req: &Request) -> Vec<CrdUse> {
    let Target::Purge { include_crds } = req.target else {
        return Vec::new();
    };
    istio_crds(input.snapshot)
        .into_iter()
        .map(|c| {
            let name = c.metadata.name.clone().unwrap_or_default();
            CrdUse {
                resources: input.crd_counts.get(&name).copied(),
                kind: c.spec.names.kind.clone(),
                name,
                deleted: include_crds,
            }
        })
        .collect()
}
