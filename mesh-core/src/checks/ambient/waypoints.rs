//! Waypoints: managed by an installed revision, and running.

use super::{CAT, Context, Finding};
use crate::{ambient::Waypoint, checks::obj, snapshot::Source};

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
