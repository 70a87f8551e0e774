//! Which objects an uninstall deletes: selection by labels, chart names for unlabelled RBAC,
//! tag objects under `--force`, and the closure over webhooks that would call a deleted Service.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};

use super::{
    COMPONENT_LABEL, COMPONENTS, Candidate, HelmRelease, Input, Phase, Request, Step, Target,
    UninstallError, kind_rank,
};
use crate::{
    inventory::{DEFAULT_REVISION, InstallMethod, REV_LABEL, is_injector},
    snapshot::{ClusterSnapshot, CrdInfo, name},
};

/// Key of an object regardless of API version: (kind, namespace, name).
pub(super) type Key = (String, String, String);

fn key(c: &Candidate) -> Key {
    (
        c.obj.kind.clone(),
        c.obj.namespace.clone().unwrap_or_default(),
        c.obj.name.clone(),
    )
}

/// A webhook outside the plan that would call a Service the plan deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dangling {
    /// `MutatingWebhookConfiguration/x`.
    pub config: String,
    /// `istio-system/istiod`.
    pub service: String,
}

/// The outcome of selection.
#[derive(Debug, Default)]
pub(super) struct Selection {
    /// Revisions removed.
    pub revisions: Vec<String>,
    /// Objects to delete, in order.
    pub steps: Vec<Step>,
    /// Keys of the objects to delete.
    pub deleted: BTreeSet<Key>,
    /// Tags pointing at the revision (or calling its Services).
    pub tags: BTreeSet<String>,
    /// Foreign webhooks left dangling.
    pub dangling: Vec<Dangling>,
    /// Helm releases owning control planes or deleted objects.
    pub helm: BTreeSet<HelmRelease>,
}

impl Selection {
    /// Whether an object is deleted.
    pub fn deletes(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.deleted
            .contains(&(kind.to_owned(), namespace.to_owned(), name.to_owned()))
    }
}

/// Every object of the snapshot that selection may pick, as candidates.
pub fn candidates(snap: &ClusterSnapshot) -> Vec<Candidate> {
    fn push<K>(out: &mut Vec<Candidate>, items: &[K])
    where
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        out.extend(
            items
                .iter()
                .map(|o| Candidate::new(K::API_VERSION, K::KIND, o.metadata())),
        );
    }
    let mut out = Vec::new();
    push(&mut out, &snap.mutating_webhooks);
    push(&mut out, &snap.validating_webhooks);
    push(&mut out, &snap.pdbs);
    push(&mut out, &snap.deployments);
    push(&mut out, &snap.daemonsets);
    out.extend(snap.pods.iter().map(Candidate::of_pod));
    push(&mut out, &snap.services);
    push(&mut out, &snap.envoy_filters);
    push(&mut out, &snap.config_maps);
    push(&mut out, &snap.crds);
    out
}

/// The Istio CRDs (group `*.istio.io`); Gateway API and other CRDs are not Istio's.
pub fn istio_crds(snap: &ClusterSnapshot) -> Vec<&CrdInfo> {
    snap.crds
        .iter()
        .filter(|c| is_istio_crd(name(&c.metadata)))
        .collect()
}

fn is_istio_crd(name: &str) -> bool {
    name.ends_with(".istio.io")
}

/// Reading context: the snapshot's webhook objects by name.
struct Ctx<'a> {
    istio_ns: &'a str,
    mwcs: BTreeMap<&'a str, &'a MutatingWebhookConfiguration>,
    vwcs: BTreeMap<&'a str, &'a ValidatingWebhookConfiguration>,
}

impl<'a> Ctx<'a> {
    fn new(snap: &'a ClusterSnapshot) -> Self {
        Self {
            istio_ns: &snap.istio_namespace,
            mwcs: snap
                .mutating_webhooks
                .iter()
                .map(|m| (name(&m.metadata), m))
                .collect(),
            vwcs: snap
                .validating_webhooks
                .iter()
                .map(|v| (name(&v.metadata), v))
                .collect(),
        }
    }

    /// Whether a webhook configuration is Istio's (an injector, or webhooks named `*.istio.io`).
    fn is_istio_webhook(&self, c: &Candidate) -> bool {
        let istio_name = |n: &str| n.ends_with(".istio.io");
        match c.obj.kind.as_str() {
            "MutatingWebhookConfiguration" => self.mwcs.get(c.obj.name.as_str()).is_some_and(|m| {
                is_injector(m) || m.webhooks.iter().flatten().any(|w| istio_name(&w.name))
            }),
            "ValidatingWebhookConfiguration" => self
                .vwcs
                .get(c.obj.name.as_str())
                .is_some_and(|v| v.webhooks.iter().flatten().any(|w| istio_name(&w.name))),
            _ => false,
        }
    }

    /// The Services (`ns/name`) a webhook configuration calls.
    fn services(&self, c: &Candidate) -> Vec<String> {
        let configs: Vec<&WebhookClientConfig> = match c.obj.kind.as_str() {
            "MutatingWebhookConfiguration" => self
                .mwcs
                .get(c.obj.name.as_str())
                .into_iter()
                .flat_map(|m| m.webhooks.iter().flatten().map(|w| &w.client_config))
                .collect(),
            "ValidatingWebhookConfiguration" => self
                .vwcs
                .get(c.obj.name.as_str())
                .into_iter()
                .flat_map(|v| v.webhooks.iter().flatten().map(|w| &w.client_config))
                .collect(),
            _ => Vec::new(),
        };
        let mut out: Vec<String> = configs.into_iter().filter_map(service_of).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Webhook configurations that call one of `services` (`ns/name`), as
/// `MutatingWebhookConfiguration/x → ns/name`: after an uninstall there must be none.
pub fn webhooks_calling(
    mwcs: &[MutatingWebhookConfiguration],
    vwcs: &[ValidatingWebhookConfiguration],
    services: &BTreeSet<String>,
) -> Vec<String> {
    let m = mwcs.iter().flat_map(|c| {
        let n = name(&c.metadata);
        let hooks = c.webhooks.iter().flatten();
        hooks.map(move |w| ("MutatingWebhookConfiguration", n, &w.client_config))
    });
    let v = vwcs.iter().flat_map(|c| {
        let n = name(&c.metadata);
        let hooks = c.webhooks.iter().flatten();
        hooks.map(move |w| ("ValidatingWebhookConfiguration", n, &w.client_config))
    });
    let mut out: Vec<String> = m
        .chain(v)
        .filter_map(|(kind, n, cc)| {
            let svc = service_of(cc).filter(|s| services.contains(s))?;
            Some(format!("{kind}/{n} → {svc}"))
        })
        .collect();
    out.dedup();
    out
}

/// `ns/name` of the Service a webhook calls: its service reference, or a URL whose host is
/// `<name>.<ns>.svc[.cluster.local]`.
fn service_of(cc: &WebhookClientConfig) -> Option<String> {
    if let Some(s) = &cc.service {
        return Some(format!("{}/{}", s.namespace, s.name));
    }
    let url = cc.url.as_deref()?;
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = host.split(['/', ':']).next()?;
    let host = host.strip_suffix(".cluster.local").unwrap_or(host);
    let mut parts = host.strip_suffix(".svc")?.split('.');
    let (svc, ns) = (parts.next()?, parts.next()?);
    parts.next().is_none().then(|| format!("{ns}/{svc}"))
}

/// A manifest's unlabelled objects of a revision, known by their chart names (ISTIO.md §3.1).
fn chart_named(c: &Candidate, rev: &str, istio_ns: &str) -> bool {
    if c.labels.contains_key(COMPONENT_LABEL) || c.labels.contains_key(REV_LABEL) {
        return false;
    }
    if !matches!(c.label("app"), Some("istiod" | "istio-reader")) {
        return false;
    }
    let sfx = if rev == DEFAULT_REVISION {
        String::new()
    } else {
        format!("-{rev}")
    };
    let n = c.obj.name.as_str();
    match c.obj.kind.as_str() {
        "ServiceAccount" | "Role" | "RoleBinding" => {
            c.obj.namespace.as_deref() == Some(istio_ns) && n == format!("istiod{sfx}")
        }
        "ClusterRole" | "ClusterRoleBinding" => [
            "istiod-clusterrole",
            "istiod-gateway-controller",
            "istio-reader-clusterrole",
        ]
        .iter()
        .any(|p| n == format!("{p}{sfx}-{istio_ns}")),
        _ => false,
    }
}

fn deletable(c: &Candidate) -> Option<Phase> {
    let (_, phase) = kind_rank(&c.obj.kind)?;
    (!(c.obj.kind == "Pod" && c.controlled)).then_some(phase)
}

/// Whether an object belongs to a revision's control plane (tag objects never do).
fn of_revision(ctx: &Ctx<'_>, c: &Candidate, rev: &str) -> bool {
    let Some(phase) = deletable(c) else {
        return false;
    };
    if c.tag().is_some() || phase == Phase::Crds {
        return false;
    }
    let component = c.label(COMPONENT_LABEL);
    if component == Some("Base") {
        return false;
    }
    let in_cp = component.is_some_and(|x| COMPONENTS.contains(&x));
    let webhook = phase == Phase::Webhooks && component.is_none() && ctx.is_istio_webhook(c);
    match c.label(REV_LABEL) {
        Some(r) => r == rev && (in_cp || webhook),
        None if rev == DEFAULT_REVISION => in_cp || webhook || chart_named(c, rev, ctx.istio_ns),
        None => chart_named(c, rev, ctx.istio_ns),
    }
}

/// Whether `--purge` deletes an object.
fn of_purge(
    ctx: &Ctx<'_>,
    c: &Candidate,
    include_crds: bool,
    revisions: &BTreeSet<String>,
) -> bool {
    let Some(phase) = deletable(c) else {
        return false;
    };
    if phase == Phase::Crds {
        return include_crds && is_istio_crd(&c.obj.name);
    }
    if c.label(COMPONENT_LABEL)
        .is_some_and(|x| COMPONENTS.contains(&x) || x == "Base")
    {
        return true;
    }
    if phase == Phase::Webhooks && ctx.is_istio_webhook(c) {
        return true;
    }
    if c.obj.kind == "Service"
        && c.tag().is_some()
        && c.obj.namespace.as_deref() == Some(ctx.istio_ns)
    {
        return true;
    }
    revisions.iter().any(|r| chart_named(c, r, ctx.istio_ns))
}

/// Candidates of the snapshot and of the shell's lists, one per object.
fn merged(input: &Input<'_>) -> Vec<Candidate> {
    let mut seen = BTreeSet::new();
    candidates(input.snapshot)
        .into_iter()
        .chain(input.listed.iter().cloned())
        .filter(|c| seen.insert(key(c)))
        .collect()
}

/// Selects what to delete.
pub(super) fn select(input: &Input<'_>, req: &Request) -> Result<Selection, UninstallError> {
    let ctx = Ctx::new(input.snapshot);
    let all = merged(input);
    let inv = input.inventory;
    let mut sel = Selection::default();
    let mut picked: Vec<(&Candidate, String)> = Vec::new();
    match &req.target {
        Target::Revision { revision } => {
            let own: Vec<&Candidate> = all
                .iter()
                .filter(|c| of_revision(&ctx, c, revision))
                .collect();
            if own.is_empty() && !inv.revisions().contains(revision) {
                return Err(unknown(input, revision));
            }
            sel.revisions = vec![revision.clone()];
            sel.tags = inv
                .tags
                .iter()
                .filter(|t| &t.revision == revision)
                .map(|t| t.name.clone())
                .collect();
            let owner = format!("revision {revision}");
            picked.extend(own.into_iter().map(|c| (c, owner.clone())));
        }
        Target::Purge { include_crds } => {
            let revisions = inv.revisions();
            sel.revisions = revisions.iter().cloned().collect();
            picked.extend(
                all.iter()
                    .filter(|c| of_purge(&ctx, c, *include_crds, &revisions))
                    .map(|c| {
                        let owner = if c.obj.kind == "CustomResourceDefinition" {
                            "Istio CRD".to_owned()
                        } else {
                            "purge".to_owned()
                        };
                        (c, owner)
                    }),
            );
        }
    }
    close_over_webhooks(&ctx, &all, req, &mut picked, &mut sel);
    finish(input, req, picked, &mut sel);
    Ok(sel)
}

/// Adds what must go with the picked objects: tag objects under `--force`, Istio webhooks that
/// call a deleted Service; records tags and foreign webhooks that would be left calling one.
fn close_over_webhooks<'a>(
    ctx: &Ctx<'_>,
    all: &'a [Candidate],
    req: &Request,
    picked: &mut Vec<(&'a Candidate, String)>,
    sel: &mut Selection,
) {
    loop {
        if req.force {
            for c in all
                .iter()
                .filter(|c| c.tag().is_some_and(|t| sel.tags.contains(t)))
            {
                if deletable(c).is_some() && !picked.iter().any(|(p, _)| key(p) == key(c)) {
                    picked.push((c, format!("tag {}", c.tag().unwrap_or_default())));
                }
            }
        }
        let services: BTreeSet<String> = picked
            .iter()
            .filter(|(c, _)| c.obj.kind == "Service")
            .map(|(c, _)| {
                format!(
                    "{}/{}",
                    c.obj.namespace.as_deref().unwrap_or_default(),
                    c.obj.name
                )
            })
            .collect();
        let mut grew = false;
        sel.dangling.clear();
        for c in all.iter().filter(|c| deletable(c) == Some(Phase::Webhooks)) {
            if picked.iter().any(|(p, _)| key(p) == key(c)) {
                continue;
            }
            let Some(service) = ctx.services(c).into_iter().find(|s| services.contains(s)) else {
                continue;
            };
            if let Some(tag) = c.tag() {
                grew |= sel.tags.insert(tag.to_owned()) && req.force;
            } else if ctx.is_istio_webhook(c) {
                picked.push((c, format!("calls Service {service}")));
                grew = true;
            } else {
                sel.dangling.push(Dangling {
                    config: format!("{}/{}", c.obj.kind, c.obj.name),
                    service,
                });
            }
        }
        if !grew {
            return;
        }
    }
}

/// Orders the steps and records Helm owners.
fn finish(
    input: &Input<'_>,
    req: &Request,
    picked: Vec<(&Candidate, String)>,
    sel: &mut Selection,
) {
    let mut steps: Vec<(usize, &Candidate, String)> = picked
        .into_iter()
        .filter_map(|(c, owner)| kind_rank(&c.obj.kind).map(|(i, _)| (i, c, owner)))
        .collect();
    steps.sort_by(|a, b| {
        (a.0, &a.1.obj.namespace, &a.1.obj.name).cmp(&(b.0, &b.1.obj.namespace, &b.1.obj.name))
    });
    for (i, c, owner) in steps {
        sel.helm.extend(c.helm.clone());
        sel.deleted.insert(key(c));
        sel.steps.push(Step {
            phase: super::KIND_ORDER[i].1,
            object: c.obj.clone(),
            owner,
            uid: c.uid.clone(),
        });
    }
    let removed = |r: &str| match &req.target {
        Target::Revision { revision } => revision == r,
        Target::Purge { .. } => true,
    };
    for cp in input
        .inventory
        .control_planes
        .iter()
        .filter(|c| removed(&c.revision))
    {
        if let InstallMethod::Helm { release, namespace } = &cp.install {
            sel.helm.insert(HelmRelease {
                name: release.clone(),
                namespace: namespace.clone(),
            });
        }
    }
}

fn unknown(input: &Input<'_>, revision: &str) -> UninstallError {
    crate::plan::not_a_revision(input.inventory, revision).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> WebhookClientConfig {
        WebhookClientConfig {
            url: Some(u.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn services_are_read_from_references_and_in_cluster_urls() {
        assert_eq!(
            service_of(&url("https://istiod-1-30-3.istio-system.svc:443/inject")),
            Some("istio-system/istiod-1-30-3".into())
        );
        assert_eq!(
            service_of(&url(
                "https://istiod.istio-system.svc.cluster.local/validate"
            )),
            Some("istio-system/istiod".into())
        );
        assert_eq!(
            service_of(&url("https://127.0.0.1:4443/inject/rev/default")),
            None
        );
        assert_eq!(service_of(&url("https://a.b.c.svc/x")), None);
    }

    #[test]
    fn webhooks_calling_deleted_services_are_named() {
        let mut m = crate::testkit::injector("1-30-3", Some("prod"));
        let hooks = m.webhooks.as_mut().unwrap();
        hooks[1].client_config = url("https://127.0.0.1:1/inject");
        let gone: BTreeSet<String> = ["istio-system/istiod-1-30-3".to_owned()].into();
        assert_eq!(
            webhooks_calling(&[m.clone()], &[], &gone),
            ["MutatingWebhookConfiguration/istio-revision-tag-prod → istio-system/istiod-1-30-3"]
        );
        assert!(webhooks_calling(&[m], &[], &BTreeSet::new()).is_empty());
    }
}
