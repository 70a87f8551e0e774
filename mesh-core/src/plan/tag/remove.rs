//! Planning `tag remove`: every object carrying the tag (injectors, validators, Services) is
//! deleted; removing `default` re-activates the legacy injector istioctl deactivated when the
//! tag was set — when its control plane still runs — and the plan says what injects every
//! namespace that used the tag afterwards.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{
    Action, Finding, Impact, Injects, NamespaceImpact, Step, TagError, impact, legacy_injectors,
    objects, overlap_findings, require_webhooks, short_list, simulate, skew_findings, tag_webhooks,
};
use crate::{
    ObjRef,
    change::ChangePlan,
    checks::Category,
    inventory::{DEFAULT_REVISION, Inventory, REV_LABEL, TAG_LABEL, is_deactivated},
    snapshot::{ClusterSnapshot, Source, label, name},
};

/// The plan of `remove`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovePlan {
    /// Tag.
    pub tag: String,
    /// The revision it points at.
    pub revision: Option<String>,
    /// Changes in order.
    pub steps: Vec<Step>,
    /// Objects to server-side apply first (re-activation of the legacy injector).
    #[serde(skip)]
    pub apply: Vec<Value>,
    /// Objects to delete.
    #[serde(skip)]
    pub delete: Vec<ObjRef>,
    /// UIDs of the objects to delete, as read.
    #[serde(skip)]
    pub delete_uids: BTreeMap<ObjRef, String>,
    /// Namespaces that use the tag, and what injects them afterwards.
    pub namespaces: Vec<NamespaceImpact>,
    /// Guardrail results.
    pub findings: Vec<Finding>,
    /// What the removal means beyond the objects.
    pub notes: Vec<String>,
}

impl RemovePlan {
    /// The changes to carry out.
    pub fn changes(&self) -> ChangePlan {
        super::tag_changes(&self.apply, &self.delete, &self.delete_uids)
    }

    /// Whether namespaces or pods still use the tag.
    pub fn in_use(&self) -> bool {
        self.namespaces
            .iter()
            .any(|n| uses(&n.before, &self.tag) || n.pods > 0)
    }
}

fn uses(i: &Injects, tag: &str) -> bool {
    match i {
        Injects::Revision { tag: t, .. } => t.as_deref() == Some(tag),
        Injects::Overlap { .. } => true,
        Injects::Nothing => false,
    }
}

/// Plans the removal of a tag.
pub fn plan_remove(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    tag: &str,
) -> Result<RemovePlan, TagError> {
    require_webhooks(snap)?;
    let mwcs = tag_webhooks(snap, tag);
    let vwcs: Vec<_> = snap
        .validating_webhooks
        .iter()
        .filter(|v| label(&v.metadata, TAG_LABEL) == Some(tag))
        .collect();
    let svcs: Vec<_> = snap
        .services
        .iter()
        .filter(|s| label(&s.metadata, TAG_LABEL) == Some(tag))
        .collect();
    if mwcs.is_empty() && svcs.is_empty() {
        let mut known: BTreeSet<String> = inv.tags.iter().map(|t| t.name.clone()).collect();
        known.extend(
            snap.services
                .iter()
                .filter_map(|s| label(&s.metadata, TAG_LABEL).map(str::to_owned)),
        );
        return Err(TagError::UnknownTag {
            tag: tag.to_owned(),
            known: known.into_iter().collect(),
        });
    }
    let revision = mwcs
        .iter()
        .map(|m| &m.metadata)
        .chain(svcs.iter().map(|s| &s.metadata))
        .find_map(|m| label(m, REV_LABEL).map(str::to_owned));
    let mut plan = RemovePlan {
        tag: tag.to_owned(),
        revision,
        steps: Vec::new(),
        apply: Vec::new(),
        delete: Vec::new(),
        delete_uids: BTreeMap::new(),
        namespaces: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    };
    if tag == DEFAULT_REVISION {
        reactivate(snap, inv, &mut plan);
    }
    for m in &mwcs {
        push_delete(
            &mut plan,
            ObjRef::typed(*m),
            m.metadata.uid.clone(),
            format!("injector of tag `{tag}`"),
        );
    }
    for v in &vwcs {
        push_delete(
            &mut plan,
            ObjRef::typed(*v),
            v.metadata.uid.clone(),
            format!("validator of tag `{tag}`"),
        );
    }
    for s in &svcs {
        push_delete(
            &mut plan,
            ObjRef::typed(*s),
            s.metadata.uid.clone(),
            format!("Service of tag `{tag}`"),
        );
    }
    let names: BTreeSet<String> = mwcs.iter().map(|m| name(&m.metadata).to_owned()).collect();
    let mut after = snap.mutating_webhooks.clone();
    simulate(&mut after, &plan.apply, &plan.delete);
    let impact = impact::compute(snap, &snap.mutating_webhooks, &after, &names);
    plan.findings = findings(snap, inv, &impact);
    plan.namespaces = impact.namespaces;
    notes(&mut plan, &mwcs, !vwcs.is_empty());
    Ok(plan)
}

fn push_delete(plan: &mut RemovePlan, r: ObjRef, uid: Option<String>, detail: String) {
    plan.steps.push(Step {
        action: Action::Delete,
        object: r.clone(),
        detail,
    });
    if let Some(uid) = uid {
        plan.delete_uids.insert(r.clone(), uid);
    }
    plan.delete.push(r);
}

/// Re-activates the legacy injector when its control plane still runs; otherwise says why not.
fn reactivate(snap: &ClusterSnapshot, inv: &Inventory, plan: &mut RemovePlan) {
    let deactivated: Vec<_> = legacy_injectors(snap)
        .into_iter()
        .filter(|m| m.webhooks.iter().flatten().any(is_deactivated))
        .collect();
    if deactivated.is_empty() {
        return;
    }
    if inv.control_plane(DEFAULT_REVISION).is_none() {
        plan.notes.push(format!(
            "the legacy injector `{}` stays deactivated: no control plane `default` runs, so re-activating it would make pod creation fail",
            name(&deactivated[0].metadata)
        ));
        return;
    }
    for m in deactivated {
        let (patch, unknown) = objects::reactivation(m);
        if !unknown.is_empty() {
            plan.notes.push(format!(
                "webhook(s) {} of `{}` have no chart selectors to restore and stay deactivated",
                unknown.join(", "),
                name(&m.metadata)
            ));
        }
        let r = ObjRef::typed(m);
        plan.steps.push(Step {
            action: Action::Update,
            object: r,
            detail:
                "re-activate the legacy injector (the chart's selectors for revision `default`)"
                    .to_owned(),
        });
        plan.apply.push(patch);
    }
}

fn findings(snap: &ClusterSnapshot, inv: &Inventory, impact: &Impact) -> Vec<Finding> {
    let lose: Vec<String> = impact
        .pods
        .iter()
        .filter(|c| c.has_proxy && c.after.is_none())
        .map(|c| c.pod.clone())
        .collect();
    let mut out = Vec::new();
    if !lose.is_empty() {
        out.push(
            Finding::warning(
                "tag.remove",
                Category::Namespaces,
                format!(
                    "{} pod(s) would start without a proxy on their next restart",
                    lose.len()
                ),
            )
            .objects(short_list(lose))
            .hint("relabel their namespaces (`istio.io/rev=<revision>`) before removing the tag"),
        );
    }
    out.extend(
        skew_findings(impact, inv)
            .into_iter()
            .filter(|f| f.result != crate::checks::Outcome::Ok),
    );
    out.extend(overlap_findings(impact));
    if let Some(g) = snap.gap(Source::Pods) {
        out.push(Finding::skipped(
            "tag.pods",
            Category::Namespaces,
            format!("cannot read pods: {}", g.reason),
        ));
    }
    out
}

fn notes(
    plan: &mut RemovePlan,
    mwcs: &[&k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration],
    validator: bool,
) {
    if plan.tag == DEFAULT_REVISION {
        let reactivated = !plan.apply.is_empty();
        plan.notes.push(if reactivated {
            "afterwards `istio-injection=enabled` namespaces are injected by the legacy injector of revision `default`".to_owned()
        } else {
            "afterwards no injector serves `istio-injection=enabled` namespaces unless another one selects them".to_owned()
        });
        if validator {
            plan.notes.push(format!(
                "`{}` is deleted: Istio resources without an `istio.io/rev` label are no longer validated",
                objects::DEFAULT_VALIDATOR
            ));
        }
        if mwcs.iter().any(|m| objects::installer_managed(&m.metadata)) {
            plan.notes.push("tag `default` was created by an installer: a later `istioctl install` without a revision re-creates it".to_owned());
        }
    }
}
