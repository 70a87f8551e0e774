//! Rollback planning: put back what a backup saved and remove what the change created.
//!
//! Pure: the saved objects, the created ones (with their UIDs when known) and the live state of
//! each go in; what differs comes out as a plan of changes — first the created objects are
//! removed (webhook configurations before anything else, so none is left calling a workload
//! that is gone), then the saved objects are put back in the reverse of the order they were
//! changed in — except the objects whose labels choose the proxy pods get (Namespaces, waypoint
//! Gateways), which go first, so a workload restored (and so restarted) is injected by the
//! revision its namespace selected before — each workload waited on until it runs its saved
//! template again before the next is put back: an ambient upgrade (istiod → istio-cni →
//! ztunnel) is undone ztunnel → istio-cni → istiod, so at no moment is a node agent newer than
//! istiod.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::{
    ObjRef,
    change::{ChangePlan, Op, Phase, Wait, rollout_to},
    plan::upgrade::diff,
};

/// What happens to one saved object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restore {
    /// It differs from the saved version: put back.
    Restore,
    /// It is gone: created again.
    Recreate,
    /// It is as saved: left alone.
    Unchanged,
}

/// One step of a rollback, for display and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The object.
    pub object: ObjRef,
    /// `restore`, `recreate`, `unchanged`, `delete` or `gone`.
    pub action: String,
}

/// A rollback plan.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    /// Every saved and created object and what happens to it.
    pub steps: Vec<Step>,
    /// The changes to carry out.
    #[serde(skip)]
    pub changes: ChangePlan,
}

fn webhook_first(r: &ObjRef) -> u8 {
    u8::from(!r.kind.ends_with("WebhookConfiguration"))
}

/// Namespaces and Gateways (their labels pick a revision) before anything else.
fn labels_first(obj: &Value) -> u8 {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    u8::from(!matches!(kind, "Namespace" | "Gateway"))
}

/// Plans the rollback of `saved` objects and `created` ones against the `live` state.
pub fn plan(
    saved: &[Value],
    created: &[(ObjRef, Option<String>)],
    live: &BTreeMap<ObjRef, Option<Value>>,
) -> RollbackPlan {
    let mut steps = Vec::new();
    let mut remove = Phase::new("remove what the change created");
    let mut order: Vec<&(ObjRef, Option<String>)> = created.iter().rev().collect();
    order.sort_by_key(|(r, _)| webhook_first(r));
    for (r, uid) in order {
        let now = live.get(r).and_then(Option::as_ref);
        let live_uid = now
            .and_then(|o| o.pointer("/metadata/uid"))
            .and_then(Value::as_str);
        let ours = uid.as_deref().is_none_or(|u| Some(u) == live_uid);
        if now.is_none() || !ours {
            steps.push(Step {
                object: r.clone(),
                action: "gone".into(),
            });
            continue;
        }
        let uid = live_uid.map(str::to_owned);
        remove.ops.push(Op::Delete {
            target: r.clone(),
            uid: uid.clone(),
        });
        remove.waits.push(Wait::Gone {
            target: r.clone(),
            uid,
        });
        steps.push(Step {
            object: r.clone(),
            action: "delete".into(),
        });
    }
    let mut changes = ChangePlan::default();
    changes.push(remove);
    let mut restore = Phase::new("restore saved objects");
    let mut saved: Vec<&Value> = saved.iter().rev().collect();
    saved.sort_by_key(|o| labels_first(o));
    for obj in saved {
        let Some(r) = ObjRef::of(obj) else { continue };
        let state = match live.get(&r).and_then(Option::as_ref) {
            None => Restore::Recreate,
            Some(l) if diff::same(l, obj) => Restore::Unchanged,
            Some(_) => Restore::Restore,
        };
        let action = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        steps.push(Step {
            object: r.clone(),
            action: action.unwrap_or_default(),
        });
        if state == Restore::Unchanged {
            continue;
        }
        restore.ops.push(Op::Restore {
            object: obj.clone(),
        });
        if let Some(w) = rollout_to(&r, obj) {
            // A workload ends its phase: waited on before the next is put back.
            restore.name = format!("restore saved objects up to {r}");
            restore.waits.push(w);
            changes.push(std::mem::replace(
                &mut restore,
                Phase::new("restore saved objects"),
            ));
        }
    }
    changes.push(restore);
    RollbackPlan { steps, changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system"},
            "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}}})
    }

    fn mwc(name: &str, uid: &str) -> Value {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name, "uid": uid}})
    }

    #[test]
    fn restores_what_changed_and_removes_only_what_the_change_created() {
        let old = deploy("pilot:1.29.6");
        let d = ObjRef::of(&old).unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"}, "data": {"mesh": "a"}});
        let c = ObjRef::of(&cm).unwrap();
        let new_wh = ObjRef::of(&mwc("istio-sidecar-injector-1-30-3", "u1")).unwrap();
        let recreated = ObjRef::of(&mwc("recreated", "u9")).unwrap();
        let svc = ObjRef::new("v1", "Service", Some("istio-system"), "istiod-1-30-3");
        let live: BTreeMap<ObjRef, Option<Value>> = [
            (d.clone(), Some(deploy("pilot:1.30.3"))),
            (c.clone(), Some(cm.clone())),
            (new_wh.clone(), Some(mwc("istio-sidecar-injector-1-30-3", "u1"))),
            (recreated.clone(), Some(mwc("recreated", "u9"))),
            (svc.clone(), Some(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istiod-1-30-3", "uid": "u2"}}))),
        ]
        .into_iter()
        .collect();
        let created = vec![
            (svc.clone(), Some("u2".to_owned())),
            (new_wh.clone(), Some("u1".to_owned())),
            (recreated.clone(), Some("u-old".to_owned())),
        ];
        let p = plan(&[old.clone(), cm], &created, &live);
        let names: Vec<&str> = p.changes.phases.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "remove what the change created",
                "restore saved objects up to Deployment/istio-system/istiod"
            ]
        );
        let removed: Vec<ObjRef> = p.changes.phases[0]
            .ops
            .iter()
            .filter_map(Op::target)
            .collect();
        assert_eq!(
            removed,
            [new_wh, svc],
            "webhooks first; a recreated object is left alone"
        );
        let restored: Vec<ObjRef> = p.changes.phases[1]
            .ops
            .iter()
            .filter_map(Op::target)
            .collect();
        assert_eq!(
            restored,
            std::slice::from_ref(&d),
            "the unchanged ConfigMap is left alone"
        );
        assert!(
            matches!(&p.changes.phases[1].waits[0], Wait::Rollout { expect, .. } if expect.images["discovery"] == "pilot:1.29.6")
        );
        let gone = p.steps.iter().find(|s| s.object == recreated).unwrap();
        assert_eq!(gone.action, "gone");
        let unchanged = p.steps.iter().find(|s| s.object == c).unwrap();
        assert_eq!(unchanged.action, "unchanged");
    }

    fn daemonset(name: &str, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn an_ambient_upgrade_is_undone_in_reverse_each_workload_waited_before_the_next() {
        // Saved in the upgrade's order: istiod, istio-cni, ztunnel.
        let saved = [
            deploy("pilot:1.29.6"),
            daemonset("istio-cni-node", "install-cni:1.29.6"),
            daemonset("ztunnel", "ztunnel:1.29.6"),
        ];
        let live: BTreeMap<ObjRef, Option<Value>> = [
            deploy("pilot:1.30.3"),
            daemonset("istio-cni-node", "install-cni:1.30.3"),
            daemonset("ztunnel", "ztunnel:1.30.3"),
        ]
        .into_iter()
        .map(|o| (ObjRef::of(&o).unwrap(), Some(o)))
        .collect();
        let p = plan(&saved, &[], &live);
        let phases: Vec<(Vec<String>, Vec<String>)> = p
            .changes
            .phases
            .iter()
            .map(|ph| {
                (
                    ph.ops
                        .iter()
                        .filter_map(Op::target)
                        .map(|r| r.name)
                        .collect(),
                    ph.waits.iter().map(|w| w.target().name).collect(),
                )
            })
            .collect();
        let one = |n: &str| (vec![n.to_owned()], vec![n.to_owned()]);
        assert_eq!(
            phases,
            [one("ztunnel"), one("istio-cni-node"), one("istiod")]
        );
    }

    /// A data-plane rollback: the namespace's and the waypoint's labels are put back before
    /// the restarted workload, whose restore restarts it again — onto the old revision only if
    /// its namespace selects that revision by then.
    #[test]
    fn labels_are_restored_before_the_workloads() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}});
        let gw = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "waypoint", "namespace": "shop"}});
        let mut web = deploy("app:1");
        web["metadata"] = json!({"name": "web", "namespace": "shop"});
        let live: BTreeMap<ObjRef, Option<Value>> = [&ns, &gw, &web]
            .into_iter()
            .map(|o| {
                let mut changed = o.clone();
                changed["metadata"]["labels"] = json!({"istio.io/rev": "canary"});
                (ObjRef::of(o).unwrap(), Some(changed))
            })
            .collect();
        let p = plan(&[ns.clone(), gw.clone(), web.clone()], &[], &live);
        assert_eq!(p.changes.phases.len(), 1, "nothing to remove");
        let kinds: Vec<String> = p.changes.phases[0]
            .ops
            .iter()
            .filter_map(Op::target)
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["Gateway", "Namespace", "Deployment"]);
    }

    #[test]
    fn deleted_objects_are_recreated() {
        let old = deploy("pilot:1.29.6");
        let d = ObjRef::of(&old).unwrap();
        let live = [(d.clone(), None)].into_iter().collect();
        let p = plan(&[old], &[], &live);
        assert_eq!(p.steps[0].action, "recreate");
        assert!(matches!(p.changes.phases[0].ops[0], Op::Restore { .. }));
    }
}
