//! Waypoints: managed by an installed revision, running, and existing where their users point.

use super::{CAT, Context, Finding};
use crate::{
    ambient::{USE_WAYPOINT_LABEL, USE_WAYPOINT_NAMESPACE_LABEL, Waypoint},
    checks::obj,
    snapshot::{Source, labels, name, namespace},
};

fn gateway(w: &Waypoint) -> String {
    obj("Gateway", &w.namespace, &w.name)
}

/// Every waypoint's `istio.io/rev` (or the default) names an installed revision or tag.
pub fn revision(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.waypoint-revision";
    let sources = [
        Source::Gateways,
        Source::Deployments,
        Source::MutatingWebhooks,
        Source::Namespaces,
    ];
    if let Some(f) = ctx.missing(ID, CAT, &sources) {
        return vec![f];
    }
    let wps = &ctx.inv.ambient.waypoints;
    if wps.is_empty() {
        return vec![Finding::ok(ID, CAT, "no waypoints")];
    }
    let (managed, orphans): (Vec<&Waypoint>, Vec<&Waypoint>) = wps.iter().partition(|w| {
        w.revision
            .as_deref()
            .is_some_and(|r| ctx.inv.control_plane(r).is_some())
    });
    let mut out: Vec<Finding> = orphans.iter().map(|w| orphan(ctx, w)).collect();
    if !managed.is_empty() {
        let list: Vec<String> = managed
            .iter()
            .map(|w| {
                format!(
                    "{}/{} → `{}`",
                    w.namespace,
                    w.name,
                    w.revision.as_deref().unwrap_or("?")
                )
            })
            .collect();
        out.push(Finding::ok(
            ID,
            CAT,
            format!(
                "{} waypoint(s) managed by an installed istiod: {}",
                managed.len(),
                list.join(", ")
            ),
        ));
    }
    out
}

fn orphan(ctx: &Context<'_>, w: &Waypoint) -> Finding {
    const ID: &str = "ambient.waypoint-revision";
    let g = gateway(w);
    let installed: Vec<String> = ctx.inv.revisions().into_iter().collect();
    let tags: Vec<String> = ctx.inv.tags.iter().map(|t| t.name.clone()).collect();
    let why = match (&w.rev_label, w.rev_label_on.as_deref(), &w.revision) {
        (Some(l), Some(on), None) => {
            format!("`istio.io/rev={l}` on its {on} names no installed revision or tag")
        }
        (Some(l), Some(on), Some(r)) => {
            format!("`istio.io/rev={l}` on its {on} names revision `{r}`, which has no istiod")
        }
        _ => {
            "no default revision exists (no `default` tag and no non-revisioned istiod)".to_owned()
        }
    };
    let target = if w.rev_label_on.as_deref() == Some("namespace") {
        format!("namespace {}", w.namespace)
    } else {
        format!("gateway -n {} {}", w.namespace, w.name)
    };
    Finding::error(
        ID,
        CAT,
        format!("waypoint {g}: {why}; no istiod manages it, so its Deployment is never updated and a restarted pod gets no configuration"),
    )
    .objects([g.clone()])
    .hint(format!(
        "label it with an installed revision ({}) or tag ({}): kubectl label {target} istio.io/rev=<revision> --overwrite",
        if installed.is_empty() { "none".to_owned() } else { installed.join(", ") },
        if tags.is_empty() { "none".to_owned() } else { tags.join(", ") },
    ))
}

/// Every waypoint has its pods ready.
pub fn ready(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.waypoint-ready";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Gateways, Source::Pods]) {
        return vec![f];
    }
    let wps = &ctx.inv.ambient.waypoints;
    if wps.is_empty() {
        return Vec::new();
    }
    // A waypoint no installed istiod manages has no Deployment: ambient.waypoint-revision says so.
    let managed = |w: &&Waypoint| {
        w.revision
            .as_deref()
            .is_some_and(|r| ctx.inv.control_plane(r).is_some())
    };
    let mut out: Vec<Finding> = wps
        .iter()
        .filter(managed)
        .filter(|w| w.pods == 0 || w.ready < w.pods)
        .map(|w| {
            let g = gateway(w);
            let users = if w.used_by.is_empty() {
                "nothing uses it yet".to_owned()
            } else {
                format!("{} use(s) it: their L7 traffic fails", w.used_by.len())
            };
            let f = if w.pods == 0 || w.ready == 0 {
                Finding::error(
                    ID,
                    CAT,
                    format!(
                        "waypoint {g} has {} of {} pod(s) ready; {users}",
                        w.ready, w.pods
                    ),
                )
            } else {
                Finding::warning(
                    ID,
                    CAT,
                    format!("waypoint {g} has {} of {} pod(s) ready", w.ready, w.pods),
                )
            };
            f.objects([g.clone()]).hint(format!(
                "kubectl -n {} describe deployment {}",
                w.namespace, w.name
            ))
        })
        .collect();
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            format!("{} waypoint(s) ready", wps.len()),
        ));
    }
    out
}

/// Every `istio.io/use-waypoint` on a namespace or Service names a Gateway that exists (in the
/// namespace `istio.io/use-waypoint-namespace` names, else its own). ztunnel sends the traffic
/// of one naming a missing waypoint straight to its destination: the waypoint's L7 policies
/// and routes do not apply. `none` opts out and names nothing.
pub fn users(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.use-waypoint";
    let sources = [
        Source::Gateways,
        Source::Namespaces,
        Source::WaypointServices,
    ];
    if let Some(f) = ctx.missing(ID, CAT, &sources) {
        return vec![f];
    }
    let snap = ctx.snap;
    let services = snap
        .services
        .iter()
        .map(|s| ("Service", &s.metadata))
        .chain(
            snap.others
                .iter()
                .filter(|o| o.kind == "Service")
                .map(|o| ("Service", &o.metadata)),
        );
    let mut users: Vec<(String, String)> = snap
        .namespaces
        .iter()
        .map(|n| ("Namespace", &n.metadata))
        .chain(services)
        .filter_map(|(kind, m)| {
            let l = labels(m);
            let name = l.get(USE_WAYPOINT_LABEL).filter(|w| *w != "none")?;
            let own = if kind == "Namespace" {
                m.name.as_deref().unwrap_or_default()
            } else {
                m.namespace.as_deref().unwrap_or_default()
            };
            let ns = l
                .get(USE_WAYPOINT_NAMESPACE_LABEL)
                .map_or(own, String::as_str);
            let user = if kind == "Namespace" {
                format!("Namespace/{own}")
            } else {
                obj("Service", own, m.name.as_deref().unwrap_or_default())
            };
            Some((user, format!("{ns}/{name}")))
        })
        .collect();
    users.sort();
    users.dedup();
    if users.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            "nothing is labelled istio.io/use-waypoint",
        )];
    }
    let exists = |wanted: &str| {
        snap.gateways
            .iter()
            .any(|g| format!("{}/{}", namespace(&g.metadata), name(&g.metadata)) == wanted)
    };
    let (found, missing): (Vec<_>, Vec<_>) = users.iter().partition(|(_, w)| exists(w));
    let mut out: Vec<Finding> = missing
        .iter()
        .map(|(user, w)| {
            let (ns, gw) = w.split_once('/').unwrap_or(("", w));
            Finding::warning(
                ID,
                CAT,
                format!(
                    "{user} is labelled `istio.io/use-waypoint={gw}`, but no Gateway `{w}` exists: ztunnel sends its traffic straight to the destination, so no waypoint's L7 policies or routes apply to it"
                ),
            )
            .objects([user.clone(), obj("Gateway", ns, gw)])
            .hint(format!(
                "create the waypoint (`istioctl waypoint apply -n {ns} --name {gw}`) or point the label at one that exists (waypoints: `kubectl mesh precheck`)"
            ))
        })
        .collect();
    if !found.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            format!(
                "{} namespace(s) and Service(s) use a waypoint that exists",
                found.len()
            ),
        ));
    }
    out
}
