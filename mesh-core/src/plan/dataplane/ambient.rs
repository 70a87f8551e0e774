//! The ambient part of a data-plane move.
//!
//! Waypoints follow their namespaces onto the target (or are named with `--waypoint NS/NAME`):
//! their Gateway gets `istio.io/rev=<target>`, which is how istiod's gateway controller decides
//! which revision renders a waypoint (the Gateway's label before its namespace's, ISTIO.md §8.4),
//! so the target's istiod re-renders its Deployment with its own proxy; the move waits until that
//! Deployment has rolled out on the target's proxy version. The namespace of an ambient namespace
//! is never given `istio.io/rev` for this: on a namespace that label turns on sidecar injection.
//!
//! Ambient namespaces need no restart: their pods carry no sidecar, ztunnel on each node carries
//! their traffic. They are reported so, with their captured pods, never counted as stale.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{DataplaneError, Target};
use crate::{
    ObjRef,
    ambient::{AmbientNamespace, Waypoint},
    change::{Expected, ExpectedProxy, Op, Phase, Wait},
    inventory::{Inventory, REV_LABEL},
};

/// A waypoint moved onto the target revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaypointMove {
    /// Namespace.
    pub namespace: String,
    /// Gateway (and Deployment) name.
    pub name: String,
    /// Why it moves: `namespace` (its namespace is moved) or `named` (`--waypoint`).
    pub by: String,
    /// Gateway label changes: `istio.io/rev` → the target.
    pub labels: BTreeMap<String, Option<String>>,
    /// Its revision and proxy versions now (`default 1.29.6`, `none` when no revision renders it).
    pub before: String,
    /// The revision (and tag) that renders it after the change.
    pub after: String,
    /// What its pods must run once re-rendered.
    pub expected: ExpectedProxy,
}

impl WaypointMove {
    /// The Gateway.
    pub fn gateway(&self) -> ObjRef {
        ObjRef::new(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            Some(&self.namespace),
            &self.name,
        )
    }

    /// The Deployment the gateway controller renders for it.
    pub fn deployment(&self) -> ObjRef {
        ObjRef::new("apps/v1", "Deployment", Some(&self.namespace), &self.name)
    }
}

/// An ambient namespace in scope: no restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AmbientScope {
    /// Name.
    pub namespace: String,
    /// Running pods ambient mode captures (waypoints and opted-out pods aside).
    pub pods: usize,
    /// Of those, the pods istio-cni captured.
    pub captured: usize,
    /// Of those, pods that run a sidecar instead (they are planned like any sidecar).
    pub sidecars: usize,
    /// The waypoint its traffic goes through, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<String>,
}

impl From<&AmbientNamespace> for AmbientScope {
    fn from(n: &AmbientNamespace) -> Self {
        Self {
            namespace: n.name.clone(),
            pods: n.pods,
            captured: n.captured,
            sidecars: n.sidecars,
            waypoint: n.waypoint.clone(),
        }
    }
}

/// `--waypoint` values, as (namespace, name), each `NAMESPACE/NAME`.
pub(super) fn parse(given: &[String]) -> Result<Vec<(String, String)>, DataplaneError> {
    let mut out: Vec<(String, String)> = given
        .iter()
        .map(|g| match g.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok((ns.to_owned(), name.to_owned()))
            }
            _ => Err(DataplaneError::BadWaypoint { given: g.clone() }),
        })
        .collect::<Result<_, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// The waypoints to move onto `target` (named `to` on the command line): every waypoint in a
/// namespace of `scope`, and every one `named`; each named one must exist. Waypoints whose
/// Gateway already carries `istio.io/rev=<to>` are left alone.
pub(super) fn moves(
    inv: &Inventory,
    scope: &BTreeSet<String>,
    named: &[(String, String)],
    target: &Target,
    to: &str,
) -> Result<Vec<WaypointMove>, DataplaneError> {
    let all = &inv.ambient.waypoints;
    for (ns, name) in named {
        if !all.iter().any(|w| &w.namespace == ns && &w.name == name) {
            return Err(DataplaneError::UnknownWaypoint {
                waypoint: format!("{ns}/{name}"),
                known: all
                    .iter()
                    .map(|w| format!("{}/{}", w.namespace, w.name))
                    .collect(),
            });
        }
    }
    let mut out = Vec::new();
    for w in all {
        let is_named = named
            .iter()
            .any(|(ns, n)| ns == &w.namespace && n == &w.name);
        let by = match (is_named, scope.contains(&w.namespace)) {
            (true, _) => "named",
            (false, true) => "namespace",
            (false, false) => continue,
        };
        let on_gateway = w.rev_label_on.as_deref() == Some("gateway");
        if on_gateway && w.rev_label.as_deref() == Some(to) {
            continue;
        }
        out.push(WaypointMove {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            by: by.to_owned(),
            labels: BTreeMap::from([(REV_LABEL.to_owned(), Some(to.to_owned()))]),
            before: describe(w),
            after: match &target.tag {
                Some(t) => format!("{} (tag {t})", target.revision),
                None => target.revision.clone(),
            },
            expected: ExpectedProxy {
                revision: target.revision.clone(),
                version: target.version.clone(),
            },
        });
    }
    Ok(out)
}

/// `default 1.29.6`: the waypoint's revision and the versions its pods run.
fn describe(w: &Waypoint) -> String {
    let rev = w.revision.as_deref().unwrap_or("none");
    if w.versions.is_empty() {
        return rev.to_owned();
    }
    let v: Vec<String> = w.versions.iter().map(ToString::to_string).collect();
    format!("{rev} {}", v.join(", "))
}

/// The ambient namespaces among `scope`.
pub(super) fn scope(inv: &Inventory, scope: &BTreeSet<String>) -> Vec<AmbientScope> {
    inv.ambient
        .namespaces
        .iter()
        .filter(|n| scope.contains(&n.name))
        .map(AmbientScope::from)
        .collect()
}

/// The phase that moves the waypoints: each Gateway labelled, then each waypoint Deployment
/// waited on until its ready pods run the target's proxy (the gateway controller of the target
/// re-renders it).
pub(super) fn phase(moves: &[WaypointMove]) -> Phase {
    let mut p = Phase::new("waypoints");
    for m in moves {
        p.ops.push(Op::Label {
            target: m.gateway(),
            labels: m.labels.clone(),
        });
        p.waits.push(Wait::Rollout {
            target: m.deployment(),
            expect: Expected {
                images: BTreeMap::new(),
                proxy: Some(m.expected.clone()),
            },
        });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::super::{DataplaneError, DataplanePlan, Request, plan};
    use super::*;
    use crate::{
        error::{Class, Classify},
        snapshot::Source,
        testkit::Snap,
        version::IstioVersion,
    };

    fn req(namespaces: &[&str], all: bool, waypoints: &[&str], to: Option<&str>) -> Request {
        Request {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            all,
            to_revision: to.map(str::to_owned),
            batch: 5,
            waypoints: waypoints.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    fn v(text: &str) -> Option<IstioVersion> {
        Some(IstioVersion::parse(text).unwrap())
    }

    /// `default` 1.29.6 with istio-cni and ztunnel, canary `1-30-3` (tag `canary`); ambient
    /// namespace `shop` (2 captured pods) behind waypoint `shop/waypoint` rendered by `default`;
    /// sidecar namespace `legacy`; waypoint `infra/edge` used across namespaces.
    fn mesh() -> Snap {
        Snap::new()
            .control_plane("default", "1.29.6")
            .control_plane("1-30-3", "1.30.3")
            .tag("canary", "1-30-3")
            .namespace("istio-system", &[])
            .ambient("default", "1.29.6", 3)
            .ambient_namespace("shop", &[("istio.io/use-waypoint", "waypoint")], 2)
            .waypoint("shop", "waypoint", None, "default", "1.29.6")
            .namespace("infra", &[])
            .waypoint("infra", "edge", None, "default", "1.29.6")
            .namespace("legacy", &[("istio-injection", "enabled")])
            .pod("legacy", "web-1", Some("default"), "1.29.6")
    }

    fn run(r: &Request) -> Result<DataplanePlan, DataplaneError> {
        let (snap, inv) = mesh().build();
        plan(&snap, &inv, r)
    }

    fn moved(p: &DataplanePlan) -> Vec<String> {
        p.waypoints
            .iter()
            .map(|w| format!("{}/{} ({})", w.namespace, w.name, w.by))
            .collect()
    }

    #[test]
    fn a_waypoint_moves_with_its_namespace_which_keeps_its_labels() {
        let p = run(&req(&["shop", "legacy"], false, &[], Some("canary"))).unwrap();
        let relabelled: Vec<&str> = p.relabel.iter().map(|r| r.namespace.as_str()).collect();
        assert_eq!(
            relabelled,
            ["legacy"],
            "istio.io/rev on the ambient namespace would turn on sidecar injection"
        );
        assert_eq!(
            p.waypoints,
            [WaypointMove {
                namespace: "shop".into(),
                name: "waypoint".into(),
                by: "namespace".into(),
                labels: BTreeMap::from([("istio.io/rev".to_owned(), Some("canary".to_owned()))]),
                before: "default 1.29.6".into(),
                after: "1-30-3 (tag canary)".into(),
                expected: ExpectedProxy {
                    revision: "1-30-3".into(),
                    version: v("1.30.3"),
                },
            }]
        );
        assert_eq!(
            p.ambient_namespaces,
            [AmbientScope {
                namespace: "shop".into(),
                pods: 2,
                captured: 2,
                sidecars: 0,
                waypoint: Some("waypoint".into()),
            }]
        );
        let restarted: Vec<String> = p.restart.iter().map(|r| r.workload.to_string()).collect();
        assert_eq!(restarted, ["Deployment/legacy/web"]);
        assert!(
            p.stuck.is_empty(),
            "the waypoint pod is no stuck sidecar: {:?}",
            p.stuck
        );
        assert_eq!(p.opted_out, 0, "the waypoint pod is not an opted-out pod");
        assert_eq!(p.without_proxy, 1, "the captured pods' Deployment");

        let c = p.changes();
        let names: Vec<&str> = c.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["namespace labels", "waypoints", "batch 1 of 1"]);
        let gateway = ObjRef::new(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            Some("shop"),
            "waypoint",
        );
        assert_eq!(
            c.phases[1].ops,
            [Op::Label {
                target: gateway,
                labels: p.waypoints[0].labels.clone(),
            }]
        );
        assert!(matches!(
            &c.phases[1].waits[..],
            [Wait::Rollout { target, expect }]
                if *target == ObjRef::new("apps/v1", "Deployment", Some("shop"), "waypoint")
                    && expect.proxy == Some(p.waypoints[0].expected.clone())
        ));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["ambientNamespaces"][0]["captured"], 2);
        assert_eq!(json["waypoints"][0]["expected"]["revision"], "1-30-3");
    }

    #[test]
    fn a_second_run_after_the_move_plans_nothing() {
        let (snap, inv) = Snap::new()
            .control_plane("default", "1.29.6")
            .control_plane("1-30-3", "1.30.3")
            .ambient_namespace("shop", &[], 1)
            .waypoint("shop", "waypoint", Some("1-30-3"), "1-30-3", "1.30.3")
            .build();
        let p = plan(&snap, &inv, &req(&["shop"], false, &[], Some("1-30-3"))).unwrap();
        assert!(p.waypoints.is_empty() && p.relabel.is_empty(), "{p:?}");
        assert!(p.changes().is_empty());
        assert_eq!(p.ambient_namespaces.len(), 1, "still reported: no restart");
    }

    #[test]
    fn all_namespaces_moves_every_waypoint_but_relabels_no_ambient_namespace() {
        let p = run(&req(&[], true, &[], Some("1-30-3"))).unwrap();
        assert_eq!(
            moved(&p),
            ["infra/edge (namespace)", "shop/waypoint (namespace)"]
        );
        let relabelled: Vec<&str> = p.relabel.iter().map(|r| r.namespace.as_str()).collect();
        assert_eq!(relabelled, ["legacy"]);
        let no_target = run(&req(&[], true, &[], None)).unwrap();
        assert!(no_target.waypoints.is_empty());
        assert_eq!(no_target.ambient_namespaces.len(), 1);
    }

    #[test]
    fn waypoints_named_alone_or_beside_namespaces() {
        let p = run(&req(&[], false, &["infra/edge"], Some("canary"))).unwrap();
        assert_eq!(moved(&p), ["infra/edge (named)"]);
        assert!(p.relabel.is_empty() && p.restart.is_empty());
        let p = run(&req(
            &["legacy"],
            false,
            &["infra/edge", "infra/edge"],
            Some("canary"),
        ))
        .unwrap();
        assert_eq!(moved(&p), ["infra/edge (named)"]);
        assert_eq!(p.relabel.len(), 1);
    }

    #[test]
    fn bad_waypoint_requests_are_usage_errors() {
        let e = run(&req(&[], false, &["infra/edge"], None)).unwrap_err();
        assert_eq!(e, DataplaneError::WaypointsNeedTarget);
        assert!(e.hints()[0].contains("--to-revision"));
        for bad in ["edge", "/edge", "infra/", "a/b/c"] {
            let e = run(&req(&[], false, &[bad], Some("canary"))).unwrap_err();
            assert_eq!(e, DataplaneError::BadWaypoint { given: bad.into() });
        }
        let e = run(&req(&[], false, &["shop/nope"], Some("canary"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no waypoint `shop/nope` (a Gateway of class `istio-waypoint`)"
        );
        assert_eq!(
            e.hints(),
            ["waypoints in this cluster: infra/edge, shop/waypoint"]
        );
        assert_eq!(e.class(), Class::Usage);
    }

    #[test]
    fn unread_gateways_refuse_a_move_that_needs_them() {
        let (snap, inv) = mesh()
            .with(|s| {
                s.gateways.clear();
                s.add_gap(Source::Gateways, "forbidden");
            })
            .build();
        let e = plan(&snap, &inv, &req(&["shop"], false, &[], Some("canary"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read gateways (gateway.networking.k8s.io): forbidden"
        );
        let sidecars_only = plan(&snap, &inv, &req(&["legacy"], false, &[], Some("canary")));
        assert!(
            sidecars_only.is_ok(),
            "no ambient namespace, no named waypoint"
        );
        let all = plan(&snap, &inv, &req(&[], true, &[], Some("canary")));
        assert!(all.is_err(), "-A moves every waypoint: they must be known");
        let no_move = plan(&snap, &inv, &req(&[], true, &[], None));
        assert!(no_move.is_ok(), "no move, no need");
    }
}
