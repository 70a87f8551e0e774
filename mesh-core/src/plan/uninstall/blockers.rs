//! What still uses the control plane an uninstall removes, each with the command that moves it,
//! and the warnings that do not block.

use std::collections::BTreeMap;

use super::{Blocker, BlockerKind, CrdUse, Input, Request, Target, select::Selection};
use crate::inventory::{DEFAULT_REVISION, INJECTION_LABEL, Injection, Inventory, NamespaceView};

/// The revision things should move to: the `default` tag's target, else the newest other one.
fn successor(inv: &Inventory, rev: &str) -> Option<String> {
    if let Some(t) = inv.tag(DEFAULT_REVISION).filter(|t| t.revision != rev) {
        return Some(t.revision.clone());
    }
    inv.control_planes
        .iter()
        .filter(|c| c.revision != rev)
        .max_by(|a, b| a.version.cmp(&b.version))
        .map(|c| c.revision.clone())
}

fn tag_move(tag: &str, other: Option<&str>) -> String {
    match other {
        Some(o) => format!("kubectl mesh tag set {tag} --revision {o} --overwrite"),
        None => format!("kubectl mesh tag remove {tag}"),
    }
}

fn blocker(
    kind: BlockerKind,
    subject: String,
    message: String,
    command: Option<String>,
) -> Blocker {
    Blocker {
        kind,
        subject,
        message,
        command,
        overridable: !matches!(kind, BlockerKind::Helm | BlockerKind::Webhook),
    }
}

/// Everything that blocks the plan.
pub(super) fn find(input: &Input<'_>, req: &Request, sel: &Selection) -> Vec<Blocker> {
    let mut out = hard(sel);
    match &req.target {
        Target::Revision { revision } => {
            let other = successor(input.inventory, revision);
            out.extend(revision_namespaces(
                input.inventory,
                revision,
                other.as_deref(),
                sel,
            ));
            out.extend(tags(input.inventory, revision, other.as_deref(), sel));
            out.extend(pods(input.inventory, Some(revision), sel));
            out.extend(gateways(
                input.inventory,
                Some(revision),
                other.as_deref(),
                sel,
            ));
            out.extend(super::ambient::blockers(
                input.inventory,
                revision,
                other.as_deref(),
                sel,
            ));
        }
        Target::Purge { .. } => {
            out.extend(purge_namespaces(input.inventory));
            out.extend(super::ambient::purge(input.inventory));
            out.extend(pods(input.inventory, None, sel));
            out.extend(gateways(input.inventory, None, None, sel));
        }
    }
    out
}

/// Refusals `--force` cannot override.
fn hard(sel: &Selection) -> Vec<Blocker> {
    let helm = sel.helm.iter().map(|r| {
        blocker(
            BlockerKind::Helm,
            format!("Helm release {}", r.name),
            format!(
                "installed by Helm (release `{}` in namespace `{}`): deleting its objects behind Helm's back leaves the release broken",
                r.name, r.namespace
            ),
            Some(format!("helm uninstall {} -n {}", r.name, r.namespace)),
        )
    });
    let dangling = sel.dangling.iter().map(|d| {
        let (kind, name) = d.config.split_once('/').unwrap_or(("", &d.config));
        blocker(
            BlockerKind::Webhook,
            d.config.clone(),
            format!(
                "calls Service `{}`, which this deletes, and is not Istio's: once the Service is gone it fails the requests it intercepts; point it elsewhere or delete it first",
                d.service
            ),
            Some(format!("kubectl delete {} {name}", kind.to_ascii_lowercase())),
        )
    });
    helm.chain(dangling).collect()
}

fn revision_namespaces(
    inv: &Inventory,
    rev: &str,
    other: Option<&str>,
    sel: &Selection,
) -> Vec<Blocker> {
    let mut out = Vec::new();
    for ns in &inv.namespaces {
        match &ns.injection {
            Injection::Revision { revision, tag, .. } if revision == rev => {
                let (how, command) = namespace_move(ns, tag.as_deref(), rev, other);
                out.push(blocker(
                    BlockerKind::Namespace,
                    format!("namespace {}", ns.name),
                    format!("new pods get the proxy of revision `{rev}` ({how})"),
                    Some(command),
                ));
            }
            Injection::Overlap { webhooks }
                if webhooks
                    .iter()
                    .any(|w| sel.deletes("MutatingWebhookConfiguration", "", w)) =>
            {
                out.push(blocker(
                    BlockerKind::Namespace,
                    format!("namespace {}", ns.name),
                    format!(
                        "matched by several injectors ({}), one of which this deletes",
                        webhooks.join(", ")
                    ),
                    Some(relabel(&ns.name, other)),
                ));
            }
            _ => {}
        }
    }
    out
}

fn relabel(ns: &str, other: Option<&str>) -> String {
    match other {
        Some(o) => format!("kubectl label namespace {ns} istio.io/rev={o} --overwrite"),
        None => format!("kubectl label namespace {ns} istio.io/rev-"),
    }
}

/// How a namespace selects the revision, and the command that moves it.
fn namespace_move(
    ns: &NamespaceView,
    tag: Option<&str>,
    rev: &str,
    other: Option<&str>,
) -> (String, String) {
    if let Some(t) = tag {
        return (format!("through tag `{t}`"), tag_move(t, other));
    }
    if ns.injection_label.as_deref() == Some("enabled") {
        let command = match other {
            Some(o) if rev == DEFAULT_REVISION => {
                format!("kubectl mesh tag set default --revision {o}")
            }
            Some(o) => format!(
                "kubectl label namespace {} {INJECTION_LABEL}- istio.io/rev={o} --overwrite",
                ns.name
            ),
            None => format!("kubectl label namespace {} {INJECTION_LABEL}-", ns.name),
        };
        return (format!("labelled `{INJECTION_LABEL}=enabled`"), command);
    }
    let how = match &ns.rev_label {
        Some(r) => format!("labelled `istio.io/rev={r}`"),
        None => "selected by a webhook of the revision".to_owned(),
    };
    (how, relabel(&ns.name, other))
}

fn purge_namespaces(inv: &Inventory) -> Vec<Blocker> {
    inv.namespaces
        .iter()
        .filter_map(|ns| {
            let rev = ns.injection.revision()?;
            Some(blocker(
                BlockerKind::Namespace,
                format!("namespace {}", ns.name),
                format!("new pods get the proxy of revision `{rev}`"),
                Some(format!(
                    "kubectl label namespace {} {INJECTION_LABEL}- istio.io/rev-",
                    ns.name
                )),
            ))
        })
        .collect()
}

fn tags(inv: &Inventory, rev: &str, other: Option<&str>, sel: &Selection) -> Vec<Blocker> {
    sel.tags
        .iter()
        .map(|t| {
            let users = inv
                .namespaces
                .iter()
                .filter(|n| matches!(&n.injection, Injection::Revision { tag: Some(x), .. } if x == t))
                .count();
            let target = inv.tag(t).map_or(rev, |x| x.revision.as_str());
            blocker(
                BlockerKind::Tag,
                format!("tag {t}"),
                format!("points at revision `{target}` ({users} namespace(s) use it); its webhook would call a Service that is gone"),
                Some(tag_move(t, other)),
            )
        })
        .collect()
}

/// Running pods with a proxy of the revision (any revision for purge), per workload; pods of
/// workloads the plan deletes (its own gateways) are not counted.
fn pods(inv: &Inventory, rev: Option<&str>, sel: &Selection) -> Vec<Blocker> {
    let mut groups: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for p in &inv.proxies {
        if rev.is_some_and(|r| p.revision.as_deref() != Some(r)) {
            continue;
        }
        let workload = p
            .workload
            .clone()
            .unwrap_or_else(|| format!("Pod/{}", p.pod));
        let (kind, name) = workload.split_once('/').unwrap_or(("", &workload));
        if sel.deletes(kind, &p.namespace, name) {
            continue;
        }
        groups
            .entry((p.namespace.clone(), workload.clone()))
            .or_default()
            .push(&p.pod);
    }
    groups
        .into_iter()
        .map(|((ns, workload), pods)| {
            let (kind, name) = workload.split_once('/').unwrap_or(("", &workload));
            let command = match kind {
                "Deployment" | "StatefulSet" | "DaemonSet" => {
                    format!("kubectl rollout restart -n {ns} {}/{name}", kind.to_ascii_lowercase())
                }
                _ => format!("kubectl delete pod -n {ns} {}", pods.join(" ")),
            };
            let proxy = rev.map_or("an Istio proxy".to_owned(), |r| format!("the proxy of revision `{r}`"));
            blocker(
                BlockerKind::Pods,
                format!("{workload} in namespace {ns}"),
                format!("{} running pod(s) carry {proxy}; restart them once the namespace selects another revision", pods.len()),
                Some(command),
            )
        })
        .collect()
}

fn gateways(
    inv: &Inventory,
    rev: Option<&str>,
    other: Option<&str>,
    sel: &Selection,
) -> Vec<Blocker> {
    let mut out = Vec::new();
    for g in &inv.gateways {
        let subject = format!("gateway {}/{}", g.namespace, g.name);
        if sel.deletes("Deployment", &g.namespace, &g.name) {
            let (what, command) = match rev {
                Some(r) => (
                    format!("installed with revision `{r}`"),
                    Some(gateway_move(other)),
                ),
                None => ("installed with a control plane".to_owned(), None),
            };
            out.push(blocker(
                BlockerKind::Gateway,
                subject,
                format!("{what}, it is deleted too: traffic through it stops; move it to the new revision first (the same Deployment, updated in place)"),
                command,
            ));
        } else if let Some(r) = rev.filter(|r| g.revision.as_deref() == Some(r)) {
            let command = other.map(|o| {
                format!(
                    "kubectl patch deployment {} -n {} -p '{{\"spec\":{{\"template\":{{\"metadata\":{{\"labels\":{{\"istio.io/rev\":\"{o}\"}}}}}}}}}}'",
                    g.name, g.namespace
                )
            });
            out.push(blocker(
                BlockerKind::Gateway,
                subject,
                format!("labelled `istio.io/rev={r}`: its new pods would get no proxy once the revision is gone"),
                command,
            ));
        }
    }
    out
}

/// How a gateway installed with a control plane moves to another revision, with kubectl-mesh:
/// its objects in that revision's manifest, applied over the old ones (same names), as
/// istioctl's "gateways with multiple revisions" does. The new revision installed already is
/// upgraded in place with the gateway added (`--canary` would be refused: the revision
/// exists); a new revision is installed as a canary with its gateway.
fn gateway_move(other: Option<&str>) -> String {
    match other {
        Some(o) => format!(
            "kubectl mesh upgrade -f <revision {o}'s manifest with this gateway, e.g. istioctl manifest generate --set revision={o} --set profile=default>"
        ),
        None => "kubectl mesh upgrade --canary -f <the new revision's manifest with this gateway>"
            .to_owned(),
    }
}

/// What the user should know that does not block.
pub(super) fn warnings(
    input: &Input<'_>,
    req: &Request,
    sel: &Selection,
    crds: &[CrdUse],
) -> Vec<String> {
    let mut out = Vec::new();
    if req.force && !sel.tags.is_empty() {
        let names: Vec<String> = sel.tags.iter().map(|t| format!("`{t}`")).collect();
        out.push(format!(
            "--force deletes tag(s) {} with the revision: namespaces selecting them get no proxy on their next restart",
            names.join(", ")
        ));
    }
    if let Target::Purge { include_crds } = req.target {
        out.extend(crd_warning(crds, include_crds));
        out.push(format!(
            "left in place: namespace `{}`, Secrets, `istio-ca-root-cert` ConfigMaps and namespace labels",
            input.snapshot.istio_namespace
        ));
    }
    out
}

fn crd_warning(crds: &[CrdUse], include: bool) -> Option<String> {
    if crds.is_empty() {
        return None;
    }
    let total: Option<usize> = crds.iter().map(|c| c.resources).sum();
    let count = total.map_or("not counted".to_owned(), |n| n.to_string());
    Some(if include {
        let kinds: Vec<String> = crds
            .iter()
            .filter(|c| c.resources.is_some_and(|n| n > 0))
            .map(|c| format!("{} {}", c.resources.unwrap_or_default(), c.kind))
            .collect();
        let detail = if kinds.is_empty() {
            String::new()
        } else {
            format!(": {}", kinds.join(", "))
        };
        format!(
            "--include-crds deletes the {} Istio CRDs and with them every Istio resource in the cluster ({count}){detail}",
            crds.len()
        )
    } else {
        format!(
            "the {} Istio CRDs and the Istio resources in them ({count}) are kept; add --include-crds to delete them too",
            crds.len()
        )
    })
}
