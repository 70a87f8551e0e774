//! Ambient-mode checks: istio-cni and ztunnel ready on every eligible node, nodes left tainted
//! `cni.istio.io/not-ready`, the istiod ztunnel talks to, waypoints (revision, readiness, skew),
//! namespaces both ambient and sidecar-injected, and — for a target — the order of the upgrade
//! (ztunnel and istio-cni never newer than istiod) and how ztunnel rolls over the nodes.
//!
//! On a cluster where everything these checks read was read and no ambient component exists,
//! one `ambient.present` finding says so and the rest stay silent (a sidecar-only mesh does not
//! need ten lines about ambient mode); a leftover `cni.istio.io/not-ready` taint is reported
//! even then. Each check skips on exactly the sources it needs (ISTIO.md §8.4).

mod skew;
mod waypoints;

#[cfg(test)]
mod tests;

use super::{Category, Context, Finding};
use crate::{
    ambient::{AgentKind, CNI_TAINT, NodeAgent, eligible, injection_labels},
    snapshot::Source,
};

const CAT: Category = Category::Ambient;

/// What ambient mode needs to be judged absent.
const PRESENCE: [Source; 3] = [Source::DaemonSets, Source::Namespaces, Source::Gateways];

/// Every ambient check, in display order (their categories sort them into place).
pub fn all(ctx: &Context<'_>) -> Vec<Finding> {
    let planned = ctx
        .target
        .and_then(|t| t.agents.as_ref())
        .is_some_and(|a| !a.is_empty());
    let absent = ctx.inv.ambient.is_empty()
        && !planned
        && PRESENCE.iter().all(|s| ctx.snap.gap(*s).is_none());
    let mut out = present(ctx);
    if absent {
        out.extend(
            cni_taint(ctx)
                .into_iter()
                .filter(|f| f.result != super::Outcome::Ok),
        );
        return out;
    }
    let checks: &[fn(&Context<'_>) -> Vec<Finding>] = &[
        daemonsets,
        cni_taint,
        ztunnel_istiod,
        waypoints::revision,
        waypoints::ready,
        waypoints::users,
        mixed_namespaces,
        skew::live,
        skew::waypoints,
        skew::order,
        skew::ztunnel_rollout,
    ];
    out.extend(checks.iter().flat_map(|c| c(ctx)));
    out
}

/// What ambient mode runs here (or that it is not in use).
fn present(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.present";
    let a = &ctx.inv.ambient;
    if a.is_empty() {
        if let Some(f) = ctx.missing(ID, CAT, &PRESENCE) {
            return vec![f];
        }
        return vec![Finding::ok(
            ID,
            CAT,
            "ambient mode is not in use: no istio-cni or ztunnel DaemonSet, no namespace labelled `istio.io/dataplane-mode=ambient`, no waypoint",
        )];
    }
    let agents: Vec<String> = a
        .agents
        .iter()
        .map(|g| {
            let v = g.version.as_ref().map_or("?".into(), ToString::to_string);
            format!("{} {v} (`{}`)", g.kind.name(), g.revision)
        })
        .collect();
    let mut parts = Vec::new();
    if !agents.is_empty() {
        parts.push(agents.join(", "));
    }
    parts.push(format!("{} ambient namespace(s)", a.namespaces.len()));
    parts.push(format!("{} waypoint(s)", a.waypoints.len()));
    vec![Finding::ok(
        ID,
        CAT,
        format!("ambient mode: {}", parts.join("; ")),
    )]
}

/// istio-cni and ztunnel run ready on every eligible node.
fn daemonsets(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.daemonsets";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::DaemonSets]) {
        return vec![f];
    }
    let mut out: Vec<Finding> = ctx
        .inv
        .ambient
        .agents
        .iter()
        .flat_map(agent_readiness)
        .collect();
    if let Some(mut f) = ctx.missing(ID, CAT, &[Source::Nodes])
        && !ctx.inv.ambient.agents.is_empty()
    {
        f.message = format!("which nodes they must cover is unknown: {}", f.message);
        out.push(f);
    }
    out.extend(missing_agents(ctx));
    if out.is_empty() {
        out.push(Finding::ok(ID, CAT, "no istio-cni or ztunnel DaemonSet"));
    }
    out
}

/// Ambient namespaces without istio-cni or ztunnel at all: their pods are outside the mesh.
fn missing_agents(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.daemonsets";
    let namespaces = &ctx.inv.ambient.namespaces;
    if namespaces.is_empty() {
        return Vec::new();
    }
    [AgentKind::Cni, AgentKind::Ztunnel]
        .into_iter()
        .filter(|k| ctx.inv.ambient.agents_of(*k).next().is_none())
        .map(|k| {
            Finding::error(
                ID,
                CAT,
                format!(
                    "{} namespace(s) are labelled ambient but no {} DaemonSet runs: their pods are not in the mesh",
                    namespaces.len(),
                    k.name()
                ),
            )
            .objects(namespaces.iter().map(|n| format!("Namespace/{}", n.name)))
            .hint("install ambient mode's node agents: kubectl mesh upgrade -f a manifest of istioctl manifest generate --set profile=ambient")
        })
        .collect()
}

/// What a node agent missing on a node breaks there.
fn consequence(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::Cni => {
            "new ambient pods there are not captured (and while it taints the node, not scheduled)"
        }
        AgentKind::Ztunnel => "ambient pods there have no ztunnel: their traffic fails",
    }
}

fn agent_readiness(a: &NodeAgent) -> Vec<Finding> {
    const ID: &str = "ambient.daemonsets";
    let o = a.object();
    let mut out = Vec::new();
    let (Some(desired), Some(ready)) = (a.desired, a.ready) else {
        return vec![
            Finding::warning(
                ID,
                CAT,
                format!("{o} has no status yet: its readiness is unknown"),
            )
            .objects([o.clone()])
            .hint(format!(
                "kubectl -n {} rollout status daemonset/{}",
                a.namespace, a.name
            )),
        ];
    };
    if ready < desired {
        out.push(
            Finding::error(
                ID,
                CAT,
                format!(
                    "{o} is ready on {ready} of {desired} nodes: {}",
                    consequence(a.kind)
                ),
            )
            .objects(std::iter::once(o.clone()).chain(a.unready_pods.iter().cloned()))
            .hint(format!(
                "kubectl -n {} describe daemonset {}",
                a.namespace, a.name
            )),
        );
    }
    if let Some(c) = a.coverage.as_ref().filter(|c| !c.missed.is_empty()) {
        out.push(
            Finding::error(
                ID,
                CAT,
                format!(
                    "{o} does not run on {} of {} eligible node(s): its node selector, affinity or tolerations keep it off, so {}",
                    c.missed.len(),
                    c.eligible,
                    consequence(a.kind)
                ),
            )
            .objects(std::iter::once(o.clone()).chain(c.missed.iter().map(|n| format!("Node/{n}"))))
            .hint("widen the DaemonSet's nodeSelector, affinity or tolerations to every node that runs ambient workloads"),
        );
    }
    if out.is_empty() {
        let of = a
            .coverage
            .as_ref()
            .map_or(String::new(), |c| format!(" ({} eligible)", c.eligible));
        out.push(Finding::ok(
            ID,
            CAT,
            format!("{o} ready on {ready}/{desired} nodes{of}"),
        ));
    }
    out
}

/// No node is left tainted `cni.istio.io/not-ready`.
fn cni_taint(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.cni-taint";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Nodes]) {
        return vec![f];
    }
    let tainted: Vec<&str> = ctx
        .snap
        .nodes
        .iter()
        .filter(|n| n.taint(CNI_TAINT).is_some())
        .map(|n| n.name())
        .collect();
    if tainted.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            format!("no node carries the `{CNI_TAINT}` taint"),
        )];
    }
    let cni_ready = ctx
        .inv
        .ambient
        .agents_of(AgentKind::Cni)
        .any(|a| a.desired.is_some() && a.ready >= a.desired);
    let why = if cni_ready {
        "istio-cni is ready on every node it runs on, so the taint was left behind"
    } else {
        "istio-cni is not ready everywhere (see ambient.daemonsets)"
    };
    vec![
        Finding::error(
            ID,
            CAT,
            format!(
                "{} node(s) carry the `{CNI_TAINT}` taint: new pods cannot be scheduled there; {why}",
                tainted.len()
            ),
        )
        .objects(tainted.iter().map(|n| format!("Node/{n}")))
        .hint(format!(
            "once istio-cni is ready there, remove it: kubectl taint nodes <node> {CNI_TAINT}-"
        )),
    ]
}

/// ztunnel talks to an istiod that exists.
fn ztunnel_istiod(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.ztunnel-istiod";
    let sources = [Source::DaemonSets, Source::Services, Source::Deployments];
    if let Some(f) = ctx.missing(ID, CAT, &sources) {
        return vec![f];
    }
    ctx.inv
        .ambient
        .agents_of(AgentKind::Ztunnel)
        .map(|z| ztunnel_link(ctx, z))
        .collect()
}

fn ztunnel_link(ctx: &Context<'_>, z: &NodeAgent) -> Finding {
    const ID: &str = "ambient.ztunnel-istiod";
    let o = z.object();
    let revisions: Vec<String> = ctx.inv.revisions().into_iter().collect();
    let fix = format!(
        "point ztunnel at an installed revision ({}): kubectl mesh upgrade -f a manifest with ztunnel of that revision",
        revisions.join(", ")
    );
    let Some(first) = z.istiod.first() else {
        return Finding::warning(
            ID,
            CAT,
            format!("{o} names no istiod (no XDS_ADDRESS or CA_ADDRESS)"),
        )
        .objects([o.clone()]);
    };
    let mut distinct: Vec<&str> = z
        .istiod
        .iter()
        .filter_map(|l| l.revision.as_deref())
        .collect();
    distinct.dedup();
    for l in &z.istiod {
        let Some(svc) = &l.service else {
            return Finding::ok(
                ID,
                CAT,
                format!(
                    "{o} talks to istiod at `{}`, outside this cluster's Services: not judged",
                    l.address
                ),
            );
        };
        match (l.exists, l.revision.as_deref()) {
            (None, _) => {
                return Finding::skipped(
                    ID,
                    CAT,
                    format!(
                        "{o} talks to istiod at `{}`: Service {svc} is in a namespace precheck does not read",
                        l.address
                    ),
                );
            }
            (Some(false), _) => {
                return Finding::error(ID, CAT, format!("{o} talks to istiod at `{}` ({}), but Service {svc} does not exist: ztunnel gets no configuration or certificates", l.address, l.env))
                    .objects([o.clone(), format!("Service/{svc}")])
                    .hint(fix);
            }
            (Some(true), Some(rev)) if ctx.inv.control_plane(rev).is_none() => {
                return Finding::error(
                    ID,
                    CAT,
                    format!("{o} talks to Service {svc} of revision `{rev}`, which has no istiod"),
                )
                .objects([o.clone(), format!("Service/{svc}")])
                .hint(fix);
            }
            _ => {}
        }
    }
    if distinct.len() > 1 {
        return Finding::warning(
            ID,
            CAT,
            format!(
                "{o} takes configuration and certificates from different revisions: {}",
                distinct.join(", ")
            ),
        )
        .objects([o.clone()])
        .hint("set XDS_ADDRESS and CA_ADDRESS to the same istiod");
    }
    let rev = first.revision.as_deref().unwrap_or("?");
    Finding::ok(
        ID,
        CAT,
        format!(
            "{o} talks to istiod of revision `{rev}` ({})",
            first.service.as_deref().unwrap_or("?")
        ),
    )
}

/// No namespace is both ambient and sidecar-injected.
fn mixed_namespaces(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.mixed-namespaces";
    let sources = [Source::Namespaces, Source::MutatingWebhooks];
    if let Some(f) = ctx.missing(ID, CAT, &sources) {
        return vec![f];
    }
    let mixed: Vec<String> = ctx
        .inv
        .ambient
        .namespaces
        .iter()
        .filter_map(|n| {
            let by = n.injected_by.as_ref()?;
            let view = ctx.inv.namespaces.iter().find(|v| v.name == n.name)?;
            Some(format!(
                "Namespace/{} (istio.io/dataplane-mode=ambient, {} → injected by {by})",
                n.name,
                injection_labels(view)
            ))
        })
        .collect();
    if mixed.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            "no ambient namespace is also sidecar-injected",
        )];
    }
    vec![Finding::warning(
        ID,
        CAT,
        format!("{} namespace(s) are labelled ambient but a sidecar injector also selects them: their new pods get sidecars, and ambient mode never captures a pod with a sidecar", mixed.len()),
    )
    .objects(mixed)
    .hint("keep one mode: for ambient, remove the injection label (kubectl label namespace <ns> istio-injection- istio.io/rev-) and pick a waypoint's revision with istio.io/rev on its Gateway")]
}

/// Eligible nodes, for the rollout check's percentages when a DaemonSet has no status.
fn eligible_nodes(ctx: &Context<'_>) -> Option<usize> {
    ctx.snap
        .gap(Source::Nodes)
        .is_none()
        .then(|| ctx.snap.nodes.iter().filter(|n| eligible(n)).count())
}
