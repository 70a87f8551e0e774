//! What of ambient mode still uses the revision an uninstall removes: ztunnel, whose
//! `XDS_ADDRESS`/`CA_ADDRESS` name that revision's istiod (or whose DaemonSet the uninstall
//! deletes with the revision), istio-cni deleted with it while namespaces are in ambient mode,
//! and waypoints that revision's istiod renders. Each blocks, with
//! the kubectl-mesh command that moves it; `--force` overrides them like the other uses.
//!
//! ztunnel is one per node and cannot be canaried: it moves to another revision by applying
//! that revision's ztunnel (`kubectl mesh upgrade -f`), which moves every ambient namespace at
//! once. A waypoint moves by `kubectl mesh upgrade dataplane --waypoint NS/NAME --to-revision`.

use super::{Blocker, BlockerKind, select::Selection};
use crate::{
    ambient::{AgentKind, NodeAgent, Waypoint},
    inventory::Inventory,
};

/// ztunnel DaemonSets and waypoints that use revision `rev`; `other` is where they should move.
pub(super) fn blockers(
    inv: &Inventory,
    rev: &str,
    other: Option<&str>,
    sel: &Selection,
) -> Vec<Blocker> {
    let ztunnels = inv
        .ambient
        .agents_of(AgentKind::Ztunnel)
        .filter_map(|z| ztunnel(z, rev, other, sel));
    let cni = inv
        .ambient
        .agents_of(AgentKind::Cni)
        .filter(|a| sel.deletes("DaemonSet", &a.namespace, &a.name))
        .filter_map(|a| cni(inv, a, rev, other));
    let waypoints = inv
        .ambient
        .waypoints
        .iter()
        .filter(|w| w.revision.as_deref() == Some(rev))
        .map(|w| waypoint(w, rev, other));
    ztunnels.chain(cni).chain(waypoints).collect()
}

/// `--purge` deletes istio-cni and ztunnel with every control plane: each namespace in ambient
/// mode would leave the mesh (its pods' traffic no longer goes through ztunnel, new pods are not
/// captured), so each blocks, with the label that takes it out of ambient mode first.
pub(super) fn purge(inv: &Inventory) -> Vec<Blocker> {
    inv.ambient
        .namespaces
        .iter()
        .map(|n| Blocker {
            kind: BlockerKind::Namespace,
            subject: format!("namespace {}", n.name),
            message: format!(
                "is in ambient mode ({} of {} pod(s) captured): --purge deletes ztunnel and istio-cni, so its traffic would leave the mesh",
                n.captured, n.pods
            ),
            command: Some(format!(
                "kubectl label namespace {} istio.io/dataplane-mode-",
                n.name
            )),
            overridable: true,
        })
        .collect()
}

/// istio-cni deleted with the revision while namespaces are in ambient mode: their new pods
/// would start uncaptured, their traffic outside the mesh.
fn cni(inv: &Inventory, a: &NodeAgent, rev: &str, other: Option<&str>) -> Option<Blocker> {
    if inv.ambient.namespaces.is_empty() {
        return None;
    }
    let names: Vec<&str> = inv
        .ambient
        .namespaces
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    Some(Blocker {
        kind: BlockerKind::Cni,
        subject: format!("istio-cni {}/{}", a.namespace, a.name),
        message: format!(
            "is deleted with revision `{rev}`: new pods of the ambient namespace(s) {} would start without being captured, their traffic outside the mesh",
            names.join(", ")
        ),
        command: Some(agent_move("istio-cni", other)),
        overridable: true,
    })
}

fn ztunnel(z: &NodeAgent, rev: &str, other: Option<&str>, sel: &Selection) -> Option<Blocker> {
    let talks: Vec<String> = z
        .istiod
        .iter()
        .filter(|l| l.revision.as_deref() == Some(rev))
        .map(|l| format!("{} {}", l.env, l.address))
        .collect();
    let deleted = sel.deletes("DaemonSet", &z.namespace, &z.name);
    let why = match (talks.is_empty(), deleted) {
        (true, false) => return None,
        (false, false) => format!(
            "talks to the istiod of revision `{rev}` ({}): once it is gone, ztunnel gets no configuration or certificates",
            talks.join(", ")
        ),
        (true, true) => format!("is deleted with revision `{rev}`"),
        (false, true) => format!(
            "talks to the istiod of revision `{rev}` ({}) and is deleted with it",
            talks.join(", ")
        ),
    };
    let nodes = z
        .desired
        .map_or_else(String::new, |n| format!(" on its {n} node(s)"));
    Some(Blocker {
        kind: BlockerKind::Ztunnel,
        subject: format!("ztunnel {}/{}", z.namespace, z.name),
        message: format!(
            "{why}; every ambient pod{nodes} depends on it. ztunnel cannot be canaried: moving it moves every ambient namespace"
        ),
        command: Some(agent_move("ztunnel", other)),
        overridable: true,
    })
}

/// The command that puts ztunnel (or istio-cni) on revision `other`: that revision's, applied
/// over this one (the same DaemonSet, updated in place, node by node; its `istio.io/rev` and
/// istiod address change with it).
fn agent_move(agent: &str, other: Option<&str>) -> String {
    let rev = other.unwrap_or("<new revision>");
    format!(
        "kubectl mesh upgrade -f <{agent} of revision {rev}: istioctl manifest generate --set profile=ambient --set revision={rev}>"
    )
}

fn waypoint(w: &Waypoint, rev: &str, other: Option<&str>) -> Blocker {
    let how = match (w.rev_label_on.as_deref(), &w.rev_label) {
        (Some(on), Some(label)) => format!("`istio.io/rev={label}` on its {on}"),
        _ => "the default revision".to_owned(),
    };
    let users = if w.used_by.is_empty() {
        "nothing uses it".to_owned()
    } else {
        format!("used by {}", w.used_by.join(", "))
    };
    Blocker {
        kind: BlockerKind::Waypoint,
        subject: format!("waypoint {}/{}", w.namespace, w.name),
        message: format!(
            "rendered and configured by the istiod of revision `{rev}` ({how}; {users}): once it is gone, nothing updates the waypoint and its proxy gets no configuration or certificates"
        ),
        command: other.map(|o| {
            format!(
                "kubectl mesh upgrade dataplane --waypoint {}/{} --to-revision {o}",
                w.namespace, w.name
            )
        }),
        overridable: true,
    }
}
