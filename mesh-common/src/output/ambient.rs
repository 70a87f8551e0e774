//! The ambient part of the inventory, as tables: istio-cni and ztunnel (revision, version,
//! nodes ready, the istiod ztunnel talks to), ambient namespaces (captured pods, waypoint) and
//! waypoints (revision, proxy version, readiness, users). Nothing when ambient mode is absent.

use super::{Style, paint, table};
use crate::{
    ambient::{AgentKind, AmbientView, NodeAgent, Waypoint},
    version::IstioVersion,
};

/// The ambient tables, each under its heading; empty when ambient mode is not in use.
pub fn ambient_tables(a: &AmbientView, color: bool) -> String {
    let heading = |t: &str| paint(t, Style::Bold, color) + "\n";
    let mut out = String::new();
    if !a.agents.is_empty() {
        out.push('\n');
        out.push_str(&heading("Ambient data plane"));
        let rows = a.agents.iter().map(agent_row).collect();
        out.push_str(&table(
            &[
                "COMPONENT",
                "REVISION",
                "VERSION",
                "NODES READY",
                "ISTIOD",
                "DAEMONSET",
            ],
            rows,
        ));
    }
    if !a.namespaces.is_empty() {
        out.push('\n');
        out.push_str(&heading("Ambient namespaces"));
        let rows = a
            .namespaces
            .iter()
            .map(|n| {
                let mut captured = format!("{}/{}", n.captured, n.pods);
                if n.sidecars > 0 {
                    captured.push_str(&format!(" ({} with sidecars)", n.sidecars));
                }
                vec![
                    n.name.clone(),
                    captured,
                    n.waypoint.clone().unwrap_or_else(|| "-".into()),
                    n.injected_by.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&table(
            &["NAMESPACE", "CAPTURED PODS", "WAYPOINT", "ALSO INJECTED BY"],
            rows,
        ));
    }
    if !a.waypoints.is_empty() {
        out.push('\n');
        out.push_str(&heading("Waypoints"));
        let rows = a.waypoints.iter().map(waypoint_row).collect();
        out.push_str(&table(
            &["WAYPOINT", "REVISION", "PROXY VERSION", "READY", "USED BY"],
            rows,
        ));
    }
    out
}

fn version(v: Option<&IstioVersion>) -> String {
    v.map_or_else(|| "unknown".into(), ToString::to_string)
}

fn agent_row(g: &NodeAgent) -> Vec<String> {
    let mut nodes = match (g.ready, g.desired) {
        (Some(r), Some(d)) => format!("{r}/{d}"),
        _ => "unknown".into(),
    };
    if let Some(c) = g.coverage.as_ref().filter(|c| !c.missed.is_empty()) {
        nodes.push_str(&format!(" ({} eligible)", c.eligible));
    }
    let istiod = match g.kind {
        AgentKind::Cni => "-".to_owned(),
        AgentKind::Ztunnel => match g.istiod.first() {
            None => "unknown".into(),
            Some(l) => match (&l.service, l.exists, &l.revision) {
                (_, _, Some(r)) => r.clone(),
                (Some(s), Some(false), _) => format!("none ({s} missing)"),
                _ => l.address.clone(),
            },
        },
    };
    vec![
        g.kind.name().to_owned(),
        g.revision.clone(),
        version(g.version.as_ref()),
        nodes,
        istiod,
        format!("{}/{}", g.namespace, g.name),
    ]
}

fn waypoint_row(w: &Waypoint) -> Vec<String> {
    let revision = match (&w.revision, &w.rev_label) {
        (Some(r), Some(l)) if l != r => format!("{r} (istio.io/rev={l})"),
        (Some(r), _) => r.clone(),
        (None, Some(l)) => format!("none (istio.io/rev={l})"),
        (None, None) => "none (no default revision)".into(),
    };
    let versions: Vec<String> = w.versions.iter().map(ToString::to_string).collect();
    vec![
        format!("{}/{}", w.namespace, w.name),
        revision,
        if versions.is_empty() {
            "-".into()
        } else {
            versions.join(",")
        },
        format!("{}/{}", w.ready, w.pods),
        if w.used_by.is_empty() {
            "-".into()
        } else {
            w.used_by.join(", ")
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::testkit::Snap;

    #[test]
    fn a_mixed_mesh_shows_agents_namespaces_and_waypoints() {
        let (_, inv) = Snap::new()
            .control_plane("default", "1.30.3")
            .service("istiod", &[("app", "istiod"), ("istio.io/rev", "default")])
            .ambient("default", "1.30.3", 3)
            .ambient_namespace("shop", &[("istio.io/use-waypoint", "waypoint")], 2)
            .waypoint("shop", "waypoint", Some("missing"), "default", "1.30.3")
            .build();
        let text = ambient_tables(&inv.ambient, false);
        assert!(
            text.contains(
                "ztunnel     default    1.30.3    3/3           default   istio-system/ztunnel"
            ),
            "{text}"
        );
        assert!(
            text.contains("istio-cni   default    1.30.3    3/3           -"),
            "{text}"
        );
        assert!(
            text.contains("shop        2/2             waypoint"),
            "{text}"
        );
        assert!(
            text.contains("shop/waypoint   none (istio.io/rev=missing)   1.30.3          1/1     Namespace/shop"),
            "{text}"
        );
        assert_eq!(ambient_tables(&Default::default(), false), "");
    }
}
