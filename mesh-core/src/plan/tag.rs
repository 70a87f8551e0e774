//! Revision tag planning: `set`, `generate`, `remove` and `list`.
//!
//! A tag is a MutatingWebhookConfiguration `istio-revision-tag-<tag>` (plus, for Istio 1.28+, a
//! Service `istiod-revision-tag-<tag>`; for `default`, the validator `istiod-default-validator`
//! and the deactivation of the legacy injector) in exactly the shapes istioctl makes
//! (ISTIO.md §3–4), so either tool reads and changes the other's tags. On top of istioctl the
//! planners refuse what istioctl lets through: a revision that does not exist, a tag that
//! shadows a revision, moving a tag without `--overwrite`, a webhook that would leave pods
//! without a working injector; and every plan carries its blast radius — the namespaces and pods
//! that get another revision's proxy on their next restart, with the version skew that implies.
//!
//! Pure: a snapshot and a request in, a plan out (objects to apply as JSON, objects to delete as
//! references, the blast radius and findings). The shell shows, checks, backs up and executes it.

mod impact;
mod list;
mod objects;
mod remove;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use serde::Serialize;
use serde_json::Value;

pub use impact::{Impact, Injects, NamespaceImpact, PodChange, resolve};
pub use list::{TagList, TagRow, Unresolved, list};
pub use objects::{
    DEFAULT_VALIDATOR, INJECTOR_SUFFIX, never_match, service_name, webhook_name, with_path,
};
pub use remove::{RemovePlan, plan_remove};

use crate::{
    ObjRef,
    change::{ChangePlan, Op, Phase, Wait},
    checks::{Category, Finding, Outcome},
    error::{Class, Classify, RevisionError},
    inventory::{DEFAULT_REVISION, Inventory, REV_LABEL, TAG_LABEL, is_deactivated, is_injector},
    snapshot::{ClusterSnapshot, Source, Unread, label, name},
    version::{IstioVersion, ProxySkew, proxy_skew},
};

/// First Istio minor whose istioctl renders a tag Service.
const TAG_SERVICE_MINOR: u64 = 28;
/// Longest tag whose Service name (`istiod-revision-tag-<tag>`) is still a DNS label.
const TAG_MAX_LEN: usize = 63 - "istiod-revision-tag-".len();
/// How many objects a finding lists before summarising.
const LIST_MAX: usize = 10;

/// Why a tag change cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The tag is not a usable name.
    #[error("`{tag}` is not a valid tag name: {why}")]
    InvalidName {
        /// The name given.
        tag: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--webhook-name` is not an object name.
    #[error("`{name}` is not a valid object name for --webhook-name")]
    InvalidWebhookName {
        /// The name given.
        name: String,
    },
    /// `--revision` is not an installed revision.
    #[error(transparent)]
    Revision(#[from] RevisionError),
    /// A tag named like a revision would hide it.
    #[error("tag `{tag}` would shadow revision `{tag}`")]
    ShadowsRevision {
        /// The tag.
        tag: String,
    },
    /// The tag exists and points elsewhere.
    #[error("tag `{tag}` already points at revision `{current}`")]
    Exists {
        /// The tag.
        tag: String,
        /// Where it points now.
        current: String,
        /// Where it was asked to point.
        requested: String,
    },
    /// The revision has no injector to copy from.
    #[error(
        "revision `{revision}` has no sidecar-injector MutatingWebhookConfiguration to copy from"
    )]
    NoInjector {
        /// The revision.
        revision: String,
    },
    /// The revision has several injectors.
    #[error("revision `{revision}` has {} injector webhook configurations: {}", names.len(), names.join(", "))]
    AmbiguousInjector {
        /// The revision.
        revision: String,
        /// Their names.
        names: Vec<String>,
    },
    /// The tag to remove does not exist.
    #[error("tag `{tag}` does not exist")]
    UnknownTag {
        /// The tag.
        tag: String,
        /// Tags that exist.
        known: Vec<String>,
    },
    /// Webhooks could not be read.
    #[error(transparent)]
    Unreadable(#[from] Unread),
}

impl Classify for TagError {
    fn class(&self) -> Class {
        match self {
            Self::InvalidName { .. }
            | Self::InvalidWebhookName { .. }
            | Self::Revision(_)
            | Self::ShadowsRevision { .. }
            | Self::Exists { .. }
            | Self::UnknownTag { .. } => Class::Usage,
            Self::NoInjector { .. } | Self::AmbiguousInjector { .. } => Class::Blocked,
            Self::Unreadable(e) => e.class(),
        }
    }

    fn hints(&self) -> Vec<String> {
        match self {
            Self::Unreadable(e) => e.hints(),
            Self::Revision(e) => e.hints(),
            _ => vec![self.hint()],
        }
    }
}

impl TagError {
    /// What to do about it.
    fn hint(&self) -> String {
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        match self {
            Self::InvalidName { .. } => format!(
                "use lowercase letters, digits and `-`, starting and ending with a letter or digit, at most {TAG_MAX_LEN} characters"
            ),
            Self::InvalidWebhookName { .. } => {
                "use lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit".to_owned()
            }
            Self::Revision(_) | Self::Unreadable(_) => String::new(),
            Self::ShadowsRevision { tag } => format!(
                "namespaces labelled `istio.io/rev={tag}` mean the revision; choose another tag name"
            ),
            Self::Exists { current, requested, .. } => {
                format!("pass --overwrite to move it from `{current}` to `{requested}`")
            }
            Self::NoInjector { revision } => format!(
                "reinstall revision `{revision}` (its MutatingWebhookConfiguration labelled `istio.io/rev={revision}` is missing)"
            ),
            Self::AmbiguousInjector { .. } => {
                "delete the stale one(s) after checking which one istiod manages".to_owned()
            }
            Self::UnknownTag { known, .. } => format!("tags in this cluster: {}", list(known)),
        }
    }
}

/// What `set` or `generate` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRequest {
    /// Tag name.
    pub tag: String,
    /// Revision to point it at.
    pub revision: String,
    /// Allow moving an existing tag.
    pub overwrite: bool,
    /// Name of the tag's MutatingWebhookConfiguration, if not the usual one.
    pub webhook_name: Option<String>,
    /// Only generate the objects (no deactivation of the legacy injector, no existence checks of
    /// the tag itself).
    pub generate: bool,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The object does not exist yet.
    Create,
    /// The object exists and is changed.
    Update,
    /// The object is deleted.
    Delete,
}

/// One change, for display.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Create, update or delete.
    pub action: Action,
    /// The object.
    pub object: ObjRef,
    /// Why.
    pub detail: String,
}

/// The plan of `set` (or `generate`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetPlan {
    /// Tag.
    pub tag: String,
    /// Target revision.
    pub revision: String,
    /// Its control plane's version, if known.
    pub revision_version: Option<IstioVersion>,
    /// Where the tag points now, if it exists.
    pub previous_revision: Option<String>,
    /// The tag already points at the revision and nothing was asked to change.
    pub up_to_date: bool,
    /// Changes in order.
    pub steps: Vec<Step>,
    /// Objects to server-side apply, in order.
    #[serde(skip)]
    pub apply: Vec<Value>,
    /// Objects to delete after applying.
    #[serde(skip)]
    pub delete: Vec<ObjRef>,
    /// UIDs of the objects to delete, as read.
    #[serde(skip)]
    pub delete_uids: BTreeMap<ObjRef, String>,
    /// Namespaces whose pods change revision on restart.
    pub namespaces: Vec<NamespaceImpact>,
    /// Guardrail results (errors block unless forced).
    pub findings: Vec<Finding>,
    /// Other things the user should know.
    pub notes: Vec<String>,
}

impl SetPlan {
    /// The changes to carry out.
    pub fn changes(&self) -> ChangePlan {
        tag_changes(&self.apply, &self.delete, &self.delete_uids)
    }

    /// Whether a finding blocks the change.
    pub fn blocked(&self) -> bool {
        self.findings.iter().any(|f| f.result == Outcome::Error)
    }

    /// The objects `generate` prints: the tag's own objects, without the legacy deactivation.
    pub fn generated(&self) -> Vec<&Value> {
        self.apply
            .iter()
            .filter(|o| o.get("webhooks").is_none_or(is_full))
            .collect()
    }
}

/// Field managers of the objects istioctl makes for tags (`tag set`: `istio-ci`; its
/// deactivation patch: `istioctl`; the installer's `default` tag: `istio-operator`): a tag change
/// takes their fields over, as a `tag set --overwrite` by istioctl would.
pub const TAG_MANAGERS: [&str; 3] = ["istio-operator", "istio-ci", "istioctl"];

/// A tag change as a plan of changes: the objects applied in order, then the deletions (by
/// UID), waited on until gone.
fn tag_changes(apply: &[Value], delete: &[ObjRef], uids: &BTreeMap<ObjRef, String>) -> ChangePlan {
    let mut plan = ChangePlan {
        takeover: TAG_MANAGERS.iter().map(|m| (*m).to_owned()).collect(),
        ..ChangePlan::default()
    };
    let mut objects = Phase::new("tag objects");
    objects.ops = apply.iter().cloned().map(Op::apply).collect();
    plan.push(objects);
    let mut removals = Phase::new("removals");
    for r in delete {
        let uid = uids.get(r).cloned();
        removals.ops.push(Op::Delete {
            target: r.clone(),
            uid: uid.clone(),
        });
        removals.waits.push(Wait::Gone {
            target: r.clone(),
            uid,
        });
    }
    plan.push(removals);
    plan
}

/// Whether a `webhooks` list is full webhooks (a selector patch carries only selectors).
fn is_full(webhooks: &Value) -> bool {
    webhooks
        .as_array()
        .is_some_and(|a| a.iter().all(|w| w.get("clientConfig").is_some()))
}

/// Checks a tag name: a DNS-1123 label short enough for its Service name.
pub fn validate_tag(tag: &str) -> Result<(), TagError> {
    let bad = |why: &str| {
        Err(TagError::InvalidName {
            tag: tag.to_owned(),
            why: why.to_owned(),
        })
    };
    if tag.is_empty() {
        return bad("it is empty");
    }
    if tag.len() > TAG_MAX_LEN {
        return bad(&format!("it is longer than {TAG_MAX_LEN} characters"));
    }
    if !tag
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("only lowercase letters, digits and `-` are allowed");
    }
    if tag.starts_with('-') || tag.ends_with('-') {
        return bad("it must start and end with a letter or digit");
    }
    Ok(())
}

/// Checks `--webhook-name`: a DNS-1123 subdomain, as the API server requires.
fn validate_object_name(name: &str) -> Result<(), TagError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(TagError::InvalidWebhookName {
        name: name.to_owned(),
    })
}

pub(crate) fn require_webhooks(snap: &ClusterSnapshot) -> Result<(), TagError> {
    Ok(snap.require(&[Source::MutatingWebhooks])?)
}

/// MutatingWebhookConfigurations labelled with a tag.
pub(crate) fn tag_webhooks<'a>(
    snap: &'a ClusterSnapshot,
    tag: &str,
) -> Vec<&'a MutatingWebhookConfiguration> {
    snap.mutating_webhooks
        .iter()
        .filter(|m| label(&m.metadata, TAG_LABEL) == Some(tag))
        .collect()
}

/// A revision's own injectors (labelled with the revision, no tag).
fn revision_injectors<'a>(
    snap: &'a ClusterSnapshot,
    revision: &str,
) -> Vec<&'a MutatingWebhookConfiguration> {
    snap.mutating_webhooks
        .iter()
        .filter(|m| {
            is_injector(m)
                && label(&m.metadata, TAG_LABEL).is_none()
                && label(&m.metadata, REV_LABEL).unwrap_or(DEFAULT_REVISION) == revision
        })
        .collect()
}

/// The legacy (non-revisioned) injectors.
pub(crate) fn legacy_injectors(snap: &ClusterSnapshot) -> Vec<&MutatingWebhookConfiguration> {
    revision_injectors(snap, DEFAULT_REVISION)
}

fn check_revision(inv: &Inventory, req: &SetRequest) -> Result<(), TagError> {
    let revisions = inv.revisions();
    if !revisions.contains(&req.revision) {
        return Err(super::not_a_revision(inv, &req.revision).into());
    }
    if req.tag != DEFAULT_REVISION && revisions.contains(&req.tag) {
        return Err(TagError::ShadowsRevision {
            tag: req.tag.clone(),
        });
    }
    Ok(())
}

fn canonical<'a>(
    snap: &'a ClusterSnapshot,
    revision: &str,
) -> Result<&'a MutatingWebhookConfiguration, TagError> {
    match revision_injectors(snap, revision).as_slice() {
        [] => Err(TagError::NoInjector {
            revision: revision.to_owned(),
        }),
        [one] => Ok(one),
        many => Err(TagError::AmbiguousInjector {
            revision: revision.to_owned(),
            names: many.iter().map(|m| name(&m.metadata).to_owned()).collect(),
        }),
    }
}

/// Plans `set` (or `generate`) of a tag.
pub fn plan_set(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    req: &SetRequest,
) -> Result<SetPlan, TagError> {
    validate_tag(&req.tag)?;
    if let Some(n) = &req.webhook_name {
        validate_object_name(n)?;
    }
    require_webhooks(snap)?;
    check_revision(inv, req)?;
    let canon = canonical(snap, &req.revision)?;
    let ns = snap.istio_namespace.as_str();
    let src = objects::TagSource::from_injector(canon, ns).ok_or_else(|| TagError::NoInjector {
        revision: req.revision.clone(),
    })?;
    let existing = tag_webhooks(snap, &req.tag);
    let previous = existing.first().map(|m| {
        label(&m.metadata, REV_LABEL)
            .unwrap_or(DEFAULT_REVISION)
            .to_owned()
    });
    let same = !existing.is_empty()
        && existing
            .iter()
            .all(|m| label(&m.metadata, REV_LABEL).unwrap_or(DEFAULT_REVISION) == req.revision);
    if let Some(current) = previous
        .as_ref()
        .filter(|_| !req.generate && !req.overwrite && !same)
    {
        return Err(TagError::Exists {
            tag: req.tag.clone(),
            current: current.clone(),
            requested: req.revision.clone(),
        });
    }
    let mut b = SetBuilder::new(snap, inv, req, src, &existing);
    b.objects(&existing);
    let mut plan = b.finish(previous);
    let only_own_objects = plan.delete.is_empty()
        && plan
            .apply
            .iter()
            .all(|o| o.get("webhooks").is_none_or(is_full));
    if same && !req.overwrite && !req.generate && only_own_objects {
        plan.up_to_date = true;
        plan.steps.clear();
        plan.apply.clear();
    }
    Ok(plan)
}

/// Accumulates a set plan.
struct SetBuilder<'a> {
    snap: &'a ClusterSnapshot,
    inv: &'a Inventory,
    req: &'a SetRequest,
    src: objects::TagSource,
    webhook: String,
    apply: Vec<Value>,
    delete: Vec<ObjRef>,
    delete_uids: BTreeMap<ObjRef, String>,
    steps: Vec<Step>,
    notes: Vec<String>,
}

impl<'a> SetBuilder<'a> {
    fn new(
        snap: &'a ClusterSnapshot,
        inv: &'a Inventory,
        req: &'a SetRequest,
        src: objects::TagSource,
        existing: &[&MutatingWebhookConfiguration],
    ) -> Self {
        let usual = webhook_name(&req.tag, &snap.istio_namespace);
        let webhook = match (&req.webhook_name, existing) {
            (Some(n), _) => n.clone(),
            (None, [one]) => name(&one.metadata).to_owned(),
            (None, _) => usual,
        };
        Self {
            snap,
            inv,
            req,
            src,
            webhook,
            apply: Vec::new(),
            delete: Vec::new(),
            delete_uids: BTreeMap::new(),
            steps: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn push_apply(&mut self, obj: Value, exists: bool, detail: String) {
        if let Some(r) = ObjRef::of(&obj) {
            let action = if exists {
                Action::Update
            } else {
                Action::Create
            };
            self.steps.push(Step {
                action,
                object: r,
                detail,
            });
        }
        self.apply.push(obj);
    }

    fn push_delete(&mut self, r: ObjRef, uid: Option<String>, detail: String) {
        self.steps.push(Step {
            action: Action::Delete,
            object: r.clone(),
            detail,
        });
        if let Some(uid) = uid {
            self.delete_uids.insert(r.clone(), uid);
        }
        self.delete.push(r);
    }

    fn objects(&mut self, existing: &[&MutatingWebhookConfiguration]) {
        let tag = self.req.tag.clone();
        let rev = self.req.revision.clone();
        let auto = existing
            .iter()
            .flat_map(|m| m.webhooks.iter().flatten())
            .any(|w| objects::hook_prefix(&w.name) == "auto");
        let mwc = objects::mutating(&self.src, &tag, &self.webhook, auto);
        let exists = self
            .snap
            .mutating_webhooks
            .iter()
            .any(|m| name(&m.metadata) == self.webhook);
        let detail = format!("injector of tag `{tag}` → revision `{rev}`");
        self.push_apply(mwc, exists, detail);
        if tag == DEFAULT_REVISION {
            self.default_validator();
        }
        self.service(&tag, &rev);
        if tag == DEFAULT_REVISION && !self.req.generate {
            self.deactivate_legacy();
        }
        if !self.req.generate {
            let webhook = self.webhook.clone();
            for m in existing.iter().filter(|m| name(&m.metadata) != webhook) {
                let detail = format!("second injector of tag `{tag}` (replaced by `{webhook}`)");
                self.push_delete(ObjRef::typed(*m), m.metadata.uid.clone(), detail);
            }
        }
    }

    fn service(&mut self, tag: &str, rev: &str) {
        let svc_name = service_name(tag);
        let tagged: Vec<_> = self
            .snap
            .services
            .iter()
            .filter(|s| label(&s.metadata, TAG_LABEL) == Some(tag))
            .collect();
        let version = self.inv.revision_version(rev);
        let wanted = version.is_none_or(|v| v.major() > 1 || v.minor() >= TAG_SERVICE_MINOR);
        let exists = tagged.iter().any(|s| name(&s.metadata) == svc_name);
        if wanted || exists {
            let svc = objects::service(&self.src.revision, tag, &self.snap.istio_namespace);
            self.push_apply(
                svc,
                exists,
                format!("Service of tag `{tag}` (selects istiod of `{rev}`)"),
            );
        }
        if !self.req.generate {
            for s in tagged.iter().filter(|s| name(&s.metadata) != svc_name) {
                let uid = s.metadata.uid.clone();
                self.push_delete(
                    ObjRef::typed(*s),
                    uid,
                    format!("second Service of tag `{tag}`"),
                );
            }
        }
    }

    fn default_validator(&mut self) {
        let live = self
            .snap
            .validating_webhooks
            .iter()
            .find(|v| name(&v.metadata) == DEFAULT_VALIDATOR);
        let keep_fail = live.is_some_and(|v| {
            v.webhooks
                .iter()
                .flatten()
                .any(|w| w.failure_policy.as_deref() == Some("Fail"))
        });
        let detail = format!(
            "validation of resources without `istio.io/rev` → revision `{}`",
            self.req.revision
        );
        self.push_apply(
            objects::validating(&self.src, keep_fail),
            live.is_some(),
            detail,
        );
    }

    fn deactivate_legacy(&mut self) {
        for legacy in legacy_injectors(self.snap) {
            let hooks = legacy.webhooks.as_deref().unwrap_or_default();
            if hooks.is_empty() || hooks.iter().all(is_deactivated) {
                continue;
            }
            let detail =
                "deactivate the legacy injector (selectors never match; kept for rollback)"
                    .to_owned();
            self.push_apply(objects::deactivation(legacy), true, detail);
        }
    }

    /// The webhooks as they will be after the plan.
    fn after(&self) -> Vec<MutatingWebhookConfiguration> {
        let mut out: Vec<MutatingWebhookConfiguration> = self.snap.mutating_webhooks.clone();
        simulate(&mut out, &self.apply, &self.delete);
        out
    }

    fn finish(mut self, previous: Option<String>) -> SetPlan {
        let after = self.after();
        let mut names: BTreeSet<String> = tag_webhooks(self.snap, &self.req.tag)
            .iter()
            .map(|m| name(&m.metadata).to_owned())
            .collect();
        names.insert(self.webhook.clone());
        let impact = impact::compute(self.snap, &self.snap.mutating_webhooks, &after, &names);
        let version = self.inv.revision_version(&self.req.revision).cloned();
        let mut findings = skew_findings(&impact, self.inv);
        findings.extend(self.health_findings(&impact));
        findings.extend(overlap_findings(&impact));
        if let Some(g) = self.snap.gap(Source::Pods) {
            findings.push(Finding::skipped(
                "tag.pods",
                Category::Namespaces,
                format!("cannot read pods: {}", g.reason),
            ));
        }
        self.installer_note();
        SetPlan {
            tag: self.req.tag.clone(),
            revision: self.req.revision.clone(),
            revision_version: version,
            previous_revision: previous,
            up_to_date: false,
            steps: self.steps,
            apply: self.apply,
            delete: self.delete,
            delete_uids: self.delete_uids,
            namespaces: impact.namespaces,
            findings,
            notes: self.notes,
        }
    }

    /// The target istiod must be able to answer: injection fails closed (`failurePolicy: Fail`).
    fn health_findings(&self, impact: &Impact) -> Option<Finding> {
        const ID: &str = "tag.control-plane";
        let rev = &self.req.revision;
        let cp = self.inv.control_plane(rev)?;
        if cp.ready > 0 {
            return None;
        }
        let n = impact
            .namespaces
            .iter()
            .filter(|n| n.after.revision() == Some(rev))
            .count();
        Some(
            Finding::error(ID, Category::ControlPlane, format!(
                "istiod of revision `{rev}` has {}/{} ready replicas: pod creation in {n} namespace(s) would fail (injection fails closed)",
                cp.ready, cp.replicas
            ))
            .objects([format!("Deployment/{}/{}", cp.namespace, cp.deployment)])
            .hint("wait until istiod is ready (`kubectl rollout status`), or pass --force"),
        )
    }

    fn installer_note(&mut self) {
        let installer = tag_webhooks(self.snap, &self.req.tag)
            .iter()
            .any(|m| objects::installer_managed(&m.metadata));
        if installer && self.req.tag == DEFAULT_REVISION {
            self.notes.push(
                "tag `default` was created by an installer: a later `istioctl install` without a revision moves it back to that control plane".to_owned(),
            );
        }
        if self.req.generate
            && self.req.tag == DEFAULT_REVISION
            && !legacy_injectors(self.snap).is_empty()
        {
            self.notes.push(
                "applying this output by hand does not deactivate the legacy injector; `kubectl mesh tag set default` does".to_owned(),
            );
        }
    }
}

/// Applies planned objects and deletions to a copy of the webhooks, for the blast radius.
pub(crate) fn simulate(
    mwcs: &mut Vec<MutatingWebhookConfiguration>,
    apply: &[Value],
    delete: &[ObjRef],
) {
    for obj in apply
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("MutatingWebhookConfiguration"))
    {
        let Some(obj_name) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let pos = mwcs.iter().position(|m| name(&m.metadata) == obj_name);
        match (pos, is_full(obj.get("webhooks").unwrap_or(&Value::Null))) {
            (Some(i), false) => patch_selectors(&mut mwcs[i], obj),
            (pos, true) => {
                if let Ok(typed) =
                    serde_json::from_value::<MutatingWebhookConfiguration>(obj.clone())
                {
                    match pos {
                        Some(i) => mwcs[i] = typed,
                        None => mwcs.push(typed),
                    }
                }
            }
            (None, false) => {}
        }
    }
    mwcs.retain(|m| {
        !delete
            .iter()
            .any(|d| d.kind == "MutatingWebhookConfiguration" && d.name == name(&m.metadata))
    });
}

fn patch_selectors(mwc: &mut MutatingWebhookConfiguration, patch: &Value) {
    for p in patch
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(hook) = mwc
            .webhooks
            .iter_mut()
            .flatten()
            .find(|w| Some(w.name.as_str()) == p.get("name").and_then(Value::as_str))
        else {
            continue;
        };
        hook.namespace_selector = p
            .get("namespaceSelector")
            .and_then(|s| serde_json::from_value(s.clone()).ok());
        hook.object_selector = p
            .get("objectSelector")
            .and_then(|s| serde_json::from_value(s.clone()).ok());
    }
}

fn short_list(mut items: Vec<String>) -> Vec<String> {
    if items.len() > LIST_MAX {
        let more = items.len() - LIST_MAX;
        items.truncate(LIST_MAX);
        items.push(format!("... and {more} more"));
    }
    items
}

/// Proxies that will be replaced by the target revision's: at most one minor up (ISTIO.md §6.2);
/// a move to an older revision is a data-plane downgrade.
pub(crate) fn skew_findings(impact: &Impact, inv: &Inventory) -> Vec<Finding> {
    const ID: &str = "tag.skew";
    const CAT: Category = Category::VersionSkew;
    let mut too_old: Vec<(String, String)> = Vec::new();
    let mut newer: Vec<(String, String)> = Vec::new();
    let mut fine = 0;
    let mut unknown = BTreeSet::new();
    for c in impact.pods.iter().filter(|c| c.has_proxy) {
        let (Some(rev), Some(p)) = (&c.after, &c.current) else {
            continue;
        };
        let Some(v) = inv.revision_version(rev) else {
            unknown.insert(rev.clone());
            continue;
        };
        match proxy_skew(p, v) {
            ProxySkew::TooOld { .. } => too_old.push((c.pod.clone(), format!("{p} → {v}"))),
            ProxySkew::Newer => newer.push((c.pod.clone(), format!("{p} → {v}"))),
            ProxySkew::Same | ProxySkew::OneBehind => fine += 1,
        }
    }
    let mut out = Vec::new();
    let pods = |v: &[(String, String)]| {
        short_list(v.iter().map(|(p, how)| format!("{p} ({how})")).collect())
    };
    if !too_old.is_empty() {
        out.push(
            Finding::error(ID, CAT, format!(
                "{} pod(s) would jump 2 or more minors on restart; Istio supports proxies at most one minor behind their control plane",
                too_old.len()
            ))
            .objects(pods(&too_old))
            .hint("move the tag through a revision of the minor in between first, or pass --force"),
        );
    }
    if !newer.is_empty() {
        out.push(
            Finding::warning(
                ID,
                CAT,
                format!(
                    "{} pod(s) would get an older proxy on restart (data-plane downgrade)",
                    newer.len()
                ),
            )
            .objects(pods(&newer))
            .hint("intended for a rollback; restart the workloads right after the move"),
        );
    }
    for rev in unknown {
        out.push(
            Finding::warning(
                ID,
                CAT,
                format!("the version of revision `{rev}` is unknown: skew cannot be judged"),
            )
            .hint("check the istiod image; its tag should be the Istio version"),
        );
    }
    if out.is_empty() && fine > 0 {
        out.push(Finding::ok(
            ID,
            CAT,
            format!("{fine} proxies stay within one minor of their new control plane"),
        ));
    }
    out
}

/// Namespaces that several injectors would select after the change.
pub(crate) fn overlap_findings(impact: &Impact) -> Option<Finding> {
    let names: Vec<String> = impact
        .namespaces
        .iter()
        .filter_map(|n| match &n.after {
            Injects::Overlap { webhooks } => Some(format!(
                "Namespace/{} ({})",
                n.namespace,
                webhooks.join(", ")
            )),
            _ => None,
        })
        .collect();
    (!names.is_empty()).then(|| {
        Finding::error("tag.overlap", Category::Webhooks, format!(
            "{} namespace(s) would be selected by more than one injector (pods injected twice or rejected)",
            names.len()
        ))
        .objects(short_list(names))
        .hint("remove the conflicting injector or namespace label first, or pass --force")
    })
}
