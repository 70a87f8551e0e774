//! Upgrade planning: a manifest of the target version (`istioctl manifest generate`, `helm
//! template`) against the cluster.
//!
//! 1. [`prepare`] decides the mode — in-place upgrade or downgrade of an installed revision,
//!    canary (a new revision beside the installed ones, only with `--canary`), or fresh install —
//!    runs the precheck catalogue with this target as the guardrails (errors refuse; `--force`
//!    overrides only version-skew errors), refuses Helm installs (with the `helm upgrade` to run
//!    instead), and builds the full plan of changes: every object with istioctl's owner labels,
//!    in phases (CRDs → cluster RBAC → config and Services → istiod, waited on → webhooks →
//!    gateways, waited on → prune of what the manifest no longer has).
//! 2. The shell has the API server dry-run that plan.
//! 3. [`finish`] compares each live object with what the server says it would become: create,
//!    update (with the field-level summary of [`diff`]), unchanged (dropped from the plan) or
//!    prune — the "defaults changed between versions" alert istioctl lost.

pub mod diff;
mod objects;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

pub use diff::{FieldChange, ObjectDiff};
pub use objects::{COMPONENT, NOT_PRUNED, PRUNABLE, Step};

use crate::{
    ObjRef,
    change::{ChangePlan, Op, Phase, Wait, rollout_to},
    checks::{self, Category, Context, Finding, Outcome, TargetMode},
    error::{Class, Classify},
    inventory::{InstallMethod, Inventory, injected_revision},
    manifest::Manifest,
    snapshot::{ClusterSnapshot, Source, TypedMeta, Unread},
    version::{IstioVersion, image_version},
};

/// Field managers whose fields an upgrade takes over without asking: istioctl's installer, its
/// tag commands, kubectl applying a generated manifest by hand, and kubectl-mesh itself — a
/// rollback (automatic or `upgrade rollback`) puts objects back with an update (PUT), so the
/// fields it restored belong to `kubectl-mesh` as an *update* manager, which server-side apply
/// counts as another manager than the `kubectl-mesh` *apply*: without it, every upgrade after a
/// rollback would be refused with conflicts against ourselves. Any other manager's field is a
/// conflict shown to the user (`--force-conflicts` takes it).
pub const INSTALLER_MANAGERS: [&str; 6] = [
    "istio-operator",
    "istio-ci",
    "istioctl",
    "kubectl-client-side-apply",
    "kubectl",
    "kubectl-mesh",
];

/// What is asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `--canary`: install a new revision beside the installed ones.
    pub canary: bool,
    /// `--force`: proceed despite version-skew errors.
    pub force: bool,
    /// Release data and today's date, for the guardrails.
    pub knowledge: checks::Knowledge<'a>,
}

/// How the target relates to what is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Replace the control plane of an installed revision.
    InPlace,
    /// A new revision beside the installed ones.
    Canary,
    /// No control plane installed yet.
    Fresh,
}

/// Which way an in-place change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// To a newer version.
    Upgrade,
    /// To an older version.
    Downgrade,
    /// The same version again (configuration changes only).
    Reapply,
    /// The installed version is unknown.
    Unknown,
}

/// The target of the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Mode.
    pub mode: Mode,
    /// Revision the manifest installs (`default` for the non-revisioned control plane).
    pub revision: String,
    /// Version it installs.
    pub version: IstioVersion,
    /// The version running now (in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<IstioVersion>,
    /// Which way (in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The Istio namespace.
    pub namespace: String,
    /// A component manifest (no istiod): the components it holds (`istio-cni`, `ztunnel`,
    /// `IngressGateways`), judged against the installed istiod of the revision, which stays.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

impl Target {
    /// In words: `in-place upgrade of revision `default`: 1.29.6 → 1.30.3`.
    pub fn describe(&self) -> String {
        let from = self
            .from
            .as_ref()
            .map_or("an unknown version".to_owned(), ToString::to_string);
        let rev = &self.revision;
        let to = &self.version;
        if !self.components.is_empty() {
            let what = self.components.join(", ");
            let how = match self.direction {
                Some(Direction::Downgrade) => "downgrade",
                Some(Direction::Reapply) => "re-apply",
                _ => "upgrade",
            };
            return format!(
                "in-place {how} of {what} (revision `{rev}`; istiod stays): {from} → {to}"
            );
        }
        match (self.mode, self.direction) {
            (Mode::InPlace, Some(Direction::Downgrade)) => {
                format!("in-place downgrade of revision `{rev}`: {from} → {to}")
            }
            (Mode::InPlace, Some(Direction::Reapply)) => {
                format!("in-place re-apply of revision `{rev}` at {to} (same version)")
            }
            (Mode::InPlace, _) => format!("in-place upgrade of revision `{rev}`: {from} → {to}"),
            (Mode::Canary, _) => {
                format!("canary: new revision `{rev}` ({to}) beside the installed ones")
            }
            (Mode::Fresh, _) => format!("fresh install of revision `{rev}` ({to})"),
        }
    }
}

/// Why an upgrade cannot be planned or is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// A new revision without `--canary`.
    #[error("revision `{revision}` is not installed, so this installs a canary beside {}; refusing without --canary", installed.join(", "))]
    CanaryNotAsked {
        /// The manifest's revision.
        revision: String,
        /// Installed revisions.
        installed: Vec<String>,
    },
    /// `--canary` for a revision that exists.
    #[error("--canary installs a new revision, but revision `{revision}` is already installed")]
    CanaryExists {
        /// The revision.
        revision: String,
    },
    /// The control plane was installed by Helm.
    #[error(
        "revision `{revision}` was installed by Helm (release `{release}` in `{namespace}`): upgrade it with Helm"
    )]
    Helm {
        /// Revision.
        revision: String,
        /// Release.
        release: String,
        /// Release namespace.
        namespace: String,
        /// Target version.
        version: String,
    },
    /// An object of the manifest belongs to a Helm release.
    #[error("{object} belongs to Helm release `{release}`; kubectl-mesh will not take it over")]
    HelmObject {
        /// The object.
        object: String,
        /// Release.
        release: String,
    },
    /// The manifest installs into another namespace.
    #[error("the manifest installs into namespace `{manifest}`, not `{istio}`")]
    Namespace {
        /// The manifest's namespace.
        manifest: String,
        /// `-i`.
        istio: String,
    },
    /// Guardrail errors.
    #[error("refusing the upgrade: {errors} check(s) failed")]
    Refused {
        /// Errors.
        errors: usize,
        /// Whether `--force` would override them all.
        forceable: bool,
    },
    /// A component manifest for a revision without istiod.
    #[error("the manifest holds {} without istiod, and revision `{revision}` has no istiod to serve {}", components.join(", "), if components.len() == 1 { "it" } else { "them" })]
    NoIstiod {
        /// The manifest's revision.
        revision: String,
        /// Its components.
        components: Vec<String>,
    },
    /// A source the plan needs could not be read.
    #[error(transparent)]
    Unreadable(#[from] Unread),
}

impl Classify for UpgradeError {
    fn class(&self) -> Class {
        match self {
            Self::CanaryExists { .. } | Self::Namespace { .. } => Class::Usage,
            Self::Unreadable(e) => e.class(),
            _ => Class::Blocked,
        }
    }

    fn hints(&self) -> Vec<String> {
        vec![match self {
            Self::Unreadable(e) => return e.hints(),
            Self::CanaryNotAsked { .. } => "pass --canary to install it beside them, or generate the manifest for an installed revision (`--set revision=<rev>`) to upgrade in place".to_owned(),
            Self::CanaryExists { revision } => format!("drop --canary to upgrade `{revision}` in place, or generate the manifest with another revision (`--set revision=<new>`)"),
            Self::Helm { release, namespace, version, .. } => format!("helm upgrade istio-base istio/base -n {namespace} --version {version} && helm upgrade {release} istio/istiod -n {namespace} --version {version} --reuse-values"),
            Self::HelmObject { .. } => "upgrade the Helm releases with `helm upgrade`, or remove the Helm annotations first".to_owned(),
            Self::Namespace { manifest, .. } => format!("pass -i {manifest}, or generate the manifest for the Istio namespace"),
            Self::NoIstiod { revision, .. } => format!("install istiod first: kubectl mesh upgrade -f <a manifest with istiod of revision `{revision}`> (istioctl manifest generate --set revision={revision}), then this one"),
            Self::Refused { forceable: true, .. } => "fix what the checks above report, or pass --force to override version-skew checks".to_owned(),
            Self::Refused { .. } => "fix what the checks above report (--force overrides version-skew checks only)".to_owned(),
        }]
    }
}

/// One manifest object, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The object with owner labels.
    pub object: Value,
    /// Its reference.
    pub r: ObjRef,
    /// Its installer component.
    pub component: String,
    /// Its phase.
    pub step: Step,
}

/// What [`prepare`] decided, before the server's dry run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The target.
    pub target: Target,
    /// The guardrails.
    pub findings: Vec<Finding>,
    /// Manifest objects, in manifest order.
    pub objects: Vec<Planned>,
    /// Live objects to prune (with their UIDs).
    pub prune: Vec<(ObjRef, Option<String>)>,
    /// Live objects the manifest no longer has but that are marked not-pruned.
    pub kept: Vec<ObjRef>,
    /// Every apply and prune, in phases: what the server dry-runs.
    pub full: ChangePlan,
}

/// Sources the plan needs.
const REQUIRED: [Source; 3] = [
    Source::Deployments,
    Source::MutatingWebhooks,
    Source::Namespaces,
];

/// Decides the mode, runs the guardrails and builds the full plan. `before` holds the live
/// version of each manifest object (`None`: it does not exist); `installed` the objects an
/// installer labelled (prune candidates).
pub fn prepare(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    manifest: &Manifest,
    req: &Request<'_>,
    before: &BTreeMap<ObjRef, Option<Value>>,
    installed: &[TypedMeta],
) -> Result<Prepared, UpgradeError> {
    snap.require(&REQUIRED)?;
    check_namespace(manifest, &snap.istio_namespace)?;
    let target = target(inv, manifest, req, &snap.istio_namespace, before)?;
    let findings = guardrails(snap, inv, &target, req, manifest);
    let owner = objects::Owner {
        revision: &target.revision,
        version: target.version.to_string(),
        namespace: &snap.istio_namespace,
    };
    let mut planned: Vec<Planned> = Vec::new();
    if snap.namespace(&snap.istio_namespace).is_none() {
        planned.push(namespace_object(&snap.istio_namespace));
    }
    for o in &manifest.objects {
        let r = ObjRef::of(&o.value).unwrap_or_else(|| ObjRef::new("", "", None, ""));
        let live = before.get(&r).and_then(Option::as_ref);
        let component = objects::component(&o.value, live);
        let mut object = objects::prepare(o, &component, &owner);
        objects::keep_deactivated(&mut object, live);
        let step = objects::step(o.kind(), &component);
        planned.push(Planned {
            object,
            r,
            component,
            step,
        });
    }
    let keys: BTreeSet<_> = planned.iter().map(|p| objects::key(&p.r)).collect();
    let mut components: BTreeSet<String> = planned.iter().map(|p| p.component.clone()).collect();
    if !manifest.istiod {
        // A component manifest prunes nothing of istiod's: only what its components held.
        components.retain(|c| c != "Pilot" && c != "Base");
    }
    let (prune, kept) = objects::prune(installed, &keys, &components, &owner);
    let full = phases(&planned, &prune, &|_| true, order_of(&target));
    Ok(Prepared {
        target,
        findings,
        objects: planned,
        prune,
        kept,
        full,
    })
}

impl Prepared {
    /// The guardrail errors that block (all errors, but version-skew ones under `--force`).
    pub fn blocking(&self, force: bool) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.result == Outcome::Error && !(force && forceable(f)))
            .collect()
    }

    /// Refuses when a guardrail blocks.
    pub fn refusal(&self, force: bool) -> Option<UpgradeError> {
        let blocking = self.blocking(force);
        (!blocking.is_empty()).then(|| UpgradeError::Refused {
            errors: blocking.len(),
            forceable: blocking.iter().all(|f| forceable(f)),
        })
    }
}

/// Version-skew findings (control plane, data plane, Kubernetes version): what `--force`
/// overrides. Never permissions, webhooks, names or bad input.
pub fn forceable(f: &Finding) -> bool {
    f.category == Category::VersionSkew || f.id == "kubernetes.version"
}

fn namespace_object(ns: &str) -> Planned {
    let object =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    Planned {
        r: ObjRef::new("v1", "Namespace", None, ns),
        object,
        component: "Base".to_owned(),
        step: Step::Namespace,
    }
}

fn check_namespace(manifest: &Manifest, istio: &str) -> Result<(), UpgradeError> {
    let istiod = manifest.objects.iter().find(|o| {
        o.kind() == "Deployment"
            && o.value.pointer("/metadata/labels/app") == Some(&Value::from("istiod"))
    });
    match istiod.and_then(|o| o.namespace()) {
        Some(ns) if ns != istio => Err(UpgradeError::Namespace {
            manifest: ns.to_owned(),
            istio: istio.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn target(
    inv: &Inventory,
    manifest: &Manifest,
    req: &Request,
    namespace: &str,
    before: &BTreeMap<ObjRef, Option<Value>>,
) -> Result<Target, UpgradeError> {
    let revision = manifest.revision.clone();
    let existing = inv.control_plane(&revision);
    let components = (!manifest.istiod).then(|| component_names(manifest, before));
    let mode = match (existing, inv.control_planes.is_empty(), req.canary) {
        (Some(_), _, true) => return Err(UpgradeError::CanaryExists { revision }),
        (Some(_), _, false) => Mode::InPlace,
        (None, _, _) if components.is_some() => {
            return Err(UpgradeError::NoIstiod {
                revision,
                components: components.unwrap_or_default(),
            });
        }
        (None, true, _) => Mode::Fresh,
        (None, false, true) => Mode::Canary,
        (None, false, false) => {
            return Err(UpgradeError::CanaryNotAsked {
                revision,
                installed: inv
                    .control_planes
                    .iter()
                    .map(|c| format!("`{}`", c.revision))
                    .collect(),
            });
        }
    };
    let istiod = existing
        .and_then(|c| c.version.as_ref())
        .map(IstioVersion::without_variant);
    let Some(version) = manifest.version.clone().or_else(|| istiod.clone()) else {
        return Err(UpgradeError::NoIstiod {
            revision,
            components: components.unwrap_or_default(),
        });
    };
    if let Some(InstallMethod::Helm { release, namespace }) = existing.map(|c| &c.install) {
        return Err(UpgradeError::Helm {
            revision,
            release: release.clone(),
            namespace: namespace.clone(),
            version: version.to_string(),
        });
    }
    let from = match &components {
        Some(_) => live_release(manifest, before).or(istiod),
        None => istiod,
    };
    let direction = (mode == Mode::InPlace).then(|| match &from {
        None => Direction::Unknown,
        Some(f) if *f < version => Direction::Upgrade,
        Some(f) if *f > version => Direction::Downgrade,
        Some(_) => Direction::Reapply,
    });
    Ok(Target {
        mode,
        revision,
        version,
        from,
        direction,
        namespace: namespace.to_owned(),
        components: components.unwrap_or_default(),
    })
}

/// The components of a manifest, as messages name them (`istio-cni`, `ztunnel`,
/// `IngressGateways`), in manifest order.
fn component_names(manifest: &Manifest, before: &BTreeMap<ObjRef, Option<Value>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in &manifest.objects {
        let live = ObjRef::of(&o.value).and_then(|r| before.get(&r).cloned().flatten());
        let name = match objects::component(&o.value, live.as_ref()).as_str() {
            objects::CNI => "istio-cni".to_owned(),
            objects::ZTUNNEL => "ztunnel".to_owned(),
            c => c.to_owned(),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The release the live workloads of a component manifest run (the first with an Istio image).
fn live_release(
    manifest: &Manifest,
    before: &BTreeMap<ObjRef, Option<Value>>,
) -> Option<IstioVersion> {
    manifest
        .objects
        .iter()
        .filter_map(|o| before.get(&ObjRef::of(&o.value)?)?.as_ref())
        .flat_map(|live| crate::change::template_images(live).into_values())
        .find_map(|i| crate::version::image_release(&i))
}

fn guardrails(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    t: &Target,
    req: &Request<'_>,
    manifest: &Manifest,
) -> Vec<Finding> {
    // A component manifest leaves istiod as it runs: the checks judge its components beside it.
    let istiod = match t.components.is_empty() {
        true => None,
        false => inv
            .revision_version(&t.revision)
            .map(IstioVersion::without_variant),
    };
    let target = checks::Target {
        agents: Some(crate::ambient::planned_agents(
            &manifest.objects,
            &snap.istio_namespace,
        )),
        version: istiod.unwrap_or_else(|| t.version.clone()),
        revision: t.revision.clone(),
        mode: match t.mode {
            Mode::InPlace => TargetMode::InPlace,
            Mode::Canary => TargetMode::Canary,
            Mode::Fresh => TargetMode::Fresh,
        },
        images: manifest.images(),
    };
    let ctx = Context {
        snap,
        inv,
        target: Some(&target),
        canary_requested: req.canary,
        knowledge: req.knowledge,
    };
    checks::run_all(&ctx)
}

/// Istio's order: istiod first, then istio-cni, then ztunnel (each rolled on every node before
/// the next), then gateways and waypoints — they may never be newer than istiod.
const UPGRADE_ORDER: [Step; 9] = [
    Step::Namespace,
    Step::Crds,
    Step::ClusterRbac,
    Step::Config,
    Step::ControlPlane,
    Step::Webhooks,
    Step::Cni,
    Step::Ztunnel,
    Step::Gateways,
];

/// A downgrade runs the other way for the node agents: ztunnel, then istio-cni, then istiod,
/// so that at no moment are they newer than istiod.
const DOWNGRADE_ORDER: [Step; 9] = [
    Step::Namespace,
    Step::Crds,
    Step::ClusterRbac,
    Step::Config,
    Step::Ztunnel,
    Step::Cni,
    Step::ControlPlane,
    Step::Webhooks,
    Step::Gateways,
];

/// The order of the phases for a target.
fn order_of(t: &Target) -> &'static [Step; 9] {
    if t.direction == Some(Direction::Downgrade) {
        &DOWNGRADE_ORDER
    } else {
        &UPGRADE_ORDER
    }
}

/// The plan of changes for the objects `keep` accepts, in phases (in `order`) with their waits.
fn phases(
    planned: &[Planned],
    prune: &[(ObjRef, Option<String>)],
    keep: &dyn Fn(&ObjRef) -> bool,
    order: &[Step],
) -> ChangePlan {
    let mut plan = ChangePlan {
        takeover: INSTALLER_MANAGERS.iter().map(|m| (*m).to_owned()).collect(),
        ..ChangePlan::default()
    };
    for &step in order {
        let mut phase = Phase::new(step.name());
        for p in planned.iter().filter(|p| p.step == step && keep(&p.r)) {
            phase.ops.push(Op::apply(p.object.clone()));
            phase.waits.extend(wait_for(p));
        }
        if step == Step::ControlPlane && !phase.ops.is_empty() {
            phase.waits.extend(istiod_endpoints(planned));
        }
        plan.push(phase);
    }
    let mut phase = Phase::new(Step::Prune.name());
    for (r, uid) in prune {
        phase.ops.push(Op::Delete {
            target: r.clone(),
            uid: uid.clone(),
        });
        phase.waits.push(Wait::Gone {
            target: r.clone(),
            uid: uid.clone(),
        });
    }
    plan.push(phase);
    plan
}

fn wait_for(p: &Planned) -> Option<Wait> {
    match p.r.kind.as_str() {
        "CustomResourceDefinition" => Some(Wait::Established {
            crd: p.r.name.clone(),
        }),
        // An OnDelete DaemonSet replaces no pod by itself: nothing to wait for (precheck's
        // ambient.ztunnel-rollout warns that its nodes keep the old pods).
        "DaemonSet" if on_delete(&p.object) => None,
        "Deployment" | "DaemonSet" | "StatefulSet" => rollout_to(&p.r, &p.object),
        _ => None,
    }
}

fn on_delete(object: &Value) -> bool {
    object.pointer("/spec/updateStrategy/type") == Some(&Value::from("OnDelete"))
}

/// istiod answers: its Services have a ready endpoint.
fn istiod_endpoints(planned: &[Planned]) -> Vec<Wait> {
    planned
        .iter()
        .filter(|p| p.r.kind == "Service" && p.component == "Pilot")
        .filter(|p| p.object.pointer("/spec/selector/app") == Some(&Value::from("istiod")))
        .map(|p| Wait::Endpoints {
            service: p.r.clone(),
        })
        .collect()
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Does not exist yet.
    Create,
    /// Exists and changes.
    Update,
    /// Exists and stays as it is.
    Unchanged,
    /// Exists, the manifest no longer has it: deleted.
    Prune,
    /// The manifest no longer has it, but it is marked not-pruned: kept.
    Keep,
    /// A plan from a snapshot cannot tell (the reason says why): never taken for a create.
    Unknown,
}

/// What a plan from a snapshot file cannot see of a manifest object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unseen {
    /// The snapshot holds only its type and metadata: those are compared, the rest is not.
    MetadataOnly,
    /// The snapshot cannot tell whether it exists; why.
    NotInSnapshot(String),
}

/// Why an object's metadata-only comparison is not the whole story.
const METADATA_ONLY: &str = "(the rest not compared: the snapshot holds only its metadata)";

/// One object of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPlan {
    /// The object.
    pub object: ObjRef,
    /// Installer component.
    pub component: String,
    /// What happens to it.
    pub action: Action,
    /// For updates: what changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<ObjectDiff>,
    /// For `unknown`: why the plan cannot tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One phase of the plan, as shown: what it changes and what it waits for before the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSummary {
    /// Name (`control plane`, `istio-cni`, `ztunnel`, `prune`).
    pub name: String,
    /// The objects it applies or deletes, in order.
    pub objects: Vec<ObjRef>,
    /// What it waits for, in words.
    pub waits: Vec<String>,
    /// For a DaemonSet: how it rolls over the nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

/// The phases of a plan, with how each DaemonSet rolls over the nodes it runs on now.
fn summarise(changes: &ChangePlan, inv: &Inventory) -> Vec<PhaseSummary> {
    changes
        .phases
        .iter()
        .filter(|p| !p.ops.is_empty())
        .map(|p| PhaseSummary {
            name: p.name.clone(),
            objects: p.ops.iter().filter_map(Op::target).collect(),
            waits: p.waits.iter().map(Wait::describe).collect(),
            rollout: p.ops.iter().find_map(|op| node_rollout(op, inv)),
        })
        .collect()
}

/// How a DaemonSet an operation applies rolls (the DaemonSet controller replaces its pods by its
/// update strategy; the phase waits until every node runs the new one).
fn node_rollout(op: &Op, inv: &Inventory) -> Option<String> {
    let Op::Apply { object } = op else {
        return None;
    };
    let r = op.target().filter(|r| r.kind == "DaemonSet")?;
    let rollout = crate::ambient::Rollout::of_json(object.pointer("/spec/updateStrategy"));
    if rollout.on_delete() {
        return Some("OnDelete: no pod is replaced until it is deleted; not waited on".to_owned());
    }
    let how = rollout.describe();
    let nodes = inv
        .ambient
        .agents
        .iter()
        .find(|a| a.name == r.name && Some(&a.namespace) == r.namespace.as_ref())
        .and_then(|a| a.desired)
        .and_then(|d| usize::try_from(d).ok())
        .filter(|d| *d > 0);
    Some(
        match nodes.and_then(|n| Some((n, rollout.nodes_at_once(n)?))) {
            Some((n, 1)) => format!(
                "one node at a time over {n} nodes ({how}), waited until every node runs it"
            ),
            Some((n, k)) => {
                format!("{k} of {n} nodes at a time ({how}), waited until every node runs it")
            }
            None => format!("on every node ({how}), waited until every node runs it"),
        },
    )
}

/// Pods of a namespace whose proxy is not the target's yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceProxies {
    /// Namespace.
    pub namespace: String,
    /// Pods injected by the target revision with another version, or by another revision.
    pub pods: usize,
    /// Their proxies: `<revision> <version>` → count.
    pub proxies: BTreeMap<String, usize>,
}

/// The whole plan, after the dry run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    /// The target.
    pub target: Target,
    /// Guardrails.
    pub findings: Vec<Finding>,
    /// Every object and what happens to it.
    pub objects: Vec<ObjectPlan>,
    /// What is carried out: creates, updates and prunes only.
    #[serde(skip)]
    pub changes: ChangePlan,
    /// The phases carried out, in order, each waited before the next.
    pub phases: Vec<PhaseSummary>,
    /// The data plane before the change: pods not on the target proxy, per namespace.
    pub data_plane: Vec<NamespaceProxies>,
    /// What to run next.
    pub next: Vec<String>,
    /// Whether the objects were compared by the API server (a dry run) or offline.
    pub server_checked: bool,
}

impl UpgradePlan {
    /// Counts per action.
    pub fn count(&self, action: Action) -> usize {
        self.objects.iter().filter(|o| o.action == action).count()
    }
}

/// Compares live objects with what they become: `after` holds the server's dry-run results
/// (empty offline: then the manifest laid over the live object stands in for them); `unseen`
/// what a snapshot file could not show of an object.
pub fn finish(
    prepared: &Prepared,
    snap: &ClusterSnapshot,
    inv: &Inventory,
    before: &BTreeMap<ObjRef, Option<Value>>,
    after: &BTreeMap<ObjRef, Value>,
    unseen: &BTreeMap<ObjRef, Unseen>,
) -> Result<UpgradePlan, UpgradeError> {
    let mut objects = Vec::new();
    let mut changed = BTreeSet::new();
    for p in &prepared.objects {
        let live = before.get(&p.r).and_then(Option::as_ref);
        if let Some(release) = live.and_then(helm_release) {
            return Err(UpgradeError::HelmObject {
                object: p.r.to_string(),
                release,
            });
        }
        let mut o = compare(p, live, after.get(&p.r), unseen.get(&p.r));
        if matches!(o.action, Action::Create | Action::Update) {
            changed.insert(p.r.clone());
        }
        o.component.clone_from(&p.component);
        objects.push(o);
    }
    for (r, _) in &prepared.prune {
        objects.push(ObjectPlan::of(r, Action::Prune));
    }
    for r in &prepared.kept {
        objects.push(ObjectPlan::of(r, Action::Keep));
    }
    let changes = phases(
        &prepared.objects,
        &prepared.prune,
        &|r| changed.contains(r),
        order_of(&prepared.target),
    );
    let target = &prepared.target;
    Ok(UpgradePlan {
        target: target.clone(),
        findings: prepared.findings.clone(),
        objects,
        phases: summarise(&changes, inv),
        changes,
        data_plane: data_plane(snap, inv, target),
        next: next_commands(
            inv,
            target,
            prepared.objects.iter().any(|p| p.step == Step::Ztunnel),
        ),
        server_checked: !after.is_empty(),
    })
}

impl UpgradePlan {
    /// Whether an operation of the full plan is carried out (the dry run checked them all;
    /// unchanged objects are left alone).
    pub fn keeps(&self, op: &Op) -> bool {
        match op {
            Op::Apply { .. } => op.target().is_some_and(|r| {
                self.objects
                    .iter()
                    .any(|o| o.object == r && matches!(o.action, Action::Create | Action::Update))
            }),
            _ => true,
        }
    }
}

fn helm_release(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/annotations")?
        .get("meta.helm.sh/release-name")?
        .as_str()
        .map(str::to_owned)
}

impl ObjectPlan {
    fn of(r: &ObjRef, action: Action) -> Self {
        Self {
            object: r.clone(),
            component: String::new(),
            action,
            diff: None,
            reason: None,
        }
    }
}

/// What happens to one manifest object, from its live version (`None`: absent), the server's
/// dry-run result if any, and what a snapshot could not show of it.
fn compare(
    p: &Planned,
    live: Option<&Value>,
    after: Option<&Value>,
    unseen: Option<&Unseen>,
) -> ObjectPlan {
    let plan = |action, diff| ObjectPlan {
        diff,
        ..ObjectPlan::of(&p.r, action)
    };
    if let Some(Unseen::NotInSnapshot(why)) = unseen {
        return ObjectPlan {
            reason: Some(why.clone()),
            ..ObjectPlan::of(&p.r, Action::Unknown)
        };
    }
    let Some(live) = live else {
        return plan(Action::Create, None);
    };
    if unseen == Some(&Unseen::MetadataOnly) {
        return metadata_only(p, live);
    }
    let after = after
        .cloned()
        .unwrap_or_else(|| diff::with_server_defaults(diff::overlay(live, &p.object)));
    if diff::same(live, &after) {
        return plan(Action::Unchanged, None);
    }
    plan(Action::Update, Some(diff::diff(live, &after)))
}

/// An object a snapshot holds only the metadata of: its labels and annotations are compared;
/// when they change it is an update (the rest not compared), else the plan cannot tell.
fn metadata_only(p: &Planned, live: &Value) -> ObjectPlan {
    let meta = |v: &Value| {
        serde_json::json!({
            "apiVersion": v["apiVersion"], "kind": v["kind"], "metadata": v["metadata"],
        })
    };
    let live = meta(live);
    let after = diff::overlay(&live, &meta(&p.object));
    if diff::same(&live, &after) {
        return ObjectPlan {
            reason: Some(
                "the snapshot holds only its metadata, which does not change; the rest is not compared"
                    .to_owned(),
            ),
            ..ObjectPlan::of(&p.r, Action::Unknown)
        };
    }
    let mut d = diff::diff(&live, &after);
    d.other.push(METADATA_ONLY.to_owned());
    ObjectPlan {
        diff: Some(d),
        ..ObjectPlan::of(&p.r, Action::Update)
    }
}

/// Pods that do not run the target's proxy yet, per namespace (in place: those of the revision
/// at another version; canary and fresh: none are on it yet, every injected pod is listed).
/// A component manifest moves no sidecar: none is listed.
fn data_plane(snap: &ClusterSnapshot, _inv: &Inventory, t: &Target) -> Vec<NamespaceProxies> {
    if !t.components.is_empty() {
        return Vec::new();
    }
    let mut by_ns: BTreeMap<String, NamespaceProxies> = BTreeMap::new();
    for pod in snap.pods.iter().filter(|p| !p.is_finished()) {
        let Some(rev) = injected_revision(pod) else {
            continue;
        };
        let version = pod.proxy_image().and_then(image_version);
        let stale = match t.mode {
            Mode::InPlace => rev == t.revision && version.as_ref() != Some(&t.version),
            Mode::Canary | Mode::Fresh => true,
        };
        if !stale {
            continue;
        }
        let e = by_ns
            .entry(pod.namespace().to_owned())
            .or_insert_with(|| NamespaceProxies {
                namespace: pod.namespace().to_owned(),
                pods: 0,
                proxies: BTreeMap::new(),
            });
        e.pods += 1;
        let v = version.map_or("unknown".to_owned(), |v| v.to_string());
        *e.proxies.entry(format!("{rev} {v}")).or_default() += 1;
    }
    by_ns.into_values().collect()
}

/// What to run next; `ambient` when the manifest installs ztunnel (namespaces join ambient mode
/// by a label, without a restart).
fn next_commands(inv: &Inventory, t: &Target, ambient: bool) -> Vec<String> {
    if !t.components.is_empty() {
        // istio-cni, ztunnel and gateways restart with their DaemonSets and Deployments.
        return Vec::new();
    }
    match t.mode {
        Mode::InPlace => vec!["kubectl mesh upgrade dataplane -A".to_owned()],
        Mode::Canary => vec![
            format!("kubectl mesh tag set canary --revision {}", t.revision),
            "kubectl mesh upgrade dataplane -n <namespace> --to-revision canary".to_owned(),
        ],
        Mode::Fresh if ambient => {
            vec!["kubectl label namespace <namespace> istio.io/dataplane-mode=ambient".to_owned()]
        }
        Mode::Fresh if inv.tag("default").is_none() => vec![
            format!("kubectl mesh tag set default --revision {}", t.revision),
            "kubectl label namespace <namespace> istio-injection=enabled".to_owned(),
        ],
        Mode::Fresh => Vec::new(),
    }
}
