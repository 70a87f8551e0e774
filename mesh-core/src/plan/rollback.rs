//! Rollback planning: put back what a backup saved and remove what the change created.
//!
//! Pure: the saved objects, the created ones (with their UIDs when known) and the live state of
//! each go in; what differs comes out as a plan of changes — first the created objects are
//! removed (webhook configurations before anything else, so none is left calling a workload
//! that is gone), then saved CRDs (waited on until established) and namespaces are put back,
//! then the other saved objects in the reverse of the order they were changed in — waypoint
//! Gateways first (their labels, like a namespace's, choose the proxy pods get, so a workload
//! restored, and so restarted, is injected by the revision it had before), custom resources of a
//! purged CRD included — each workload waited on until it runs its saved template again before
//! the next is put back: an ambient upgrade (istiod → istio-cni → ztunnel) is undone ztunnel →
//! istio-cni → istiod, so at no moment is a node agent newer than istiod.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::{
    ObjRef,
    change::{ChangePlan, ExpectedProxy, Op, Phase, Wait, rollout_to},
    plan::upgrade::diff,
};

/// What happens to one saved or created object (`restore`, `recreate`, `unchanged`, `delete`,
/// `gone`, `kept` in reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restore {
    /// Saved, and it differs from the saved version: put back.
    Restore,
    /// Saved, and it is gone: created again.
    Recreate,
    /// Saved, and it is as saved: left alone.
    Unchanged,
    /// Created by the change and still there: deleted.
    Delete,
    /// Created by the change and gone (or recreated by someone else): left alone.
    Gone,
    /// Listed as created by the change and there, but the backup holds no UID for it (the
    /// change was killed between creating it and recording it): nothing proves it is the
    /// change's, so it is left alone.
    Kept,
}

impl Restore {
    /// The word reports and tables use.
    pub fn word(self) -> &'static str {
        match self {
            Self::Restore => "restore",
            Self::Recreate => "recreate",
            Self::Unchanged => "unchanged",
            Self::Delete => "delete",
            Self::Gone => "gone",
            Self::Kept => "kept",
        }
    }
}

/// One step of a rollback, for display and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The object.
    pub object: ObjRef,
    /// What happens to it.
    pub action: Restore,
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

impl RollbackPlan {
    /// Objects listed as created by the change that are left alone ([`Restore::Kept`]).
    pub fn kept(&self) -> impl Iterator<Item = &ObjRef> {
        self.steps
            .iter()
            .filter(|s| s.action == Restore::Kept)
            .map(|s| &s.object)
    }
}

/// Gateways (a waypoint's labels pick its revision) before the other objects of a phase.
fn labels_first(obj: &Value) -> u8 {
    u8::from(obj.get("kind").and_then(Value::as_str) != Some("Gateway"))
}

fn with_proxy(wait: Wait, proxy: Option<&ExpectedProxy>) -> Wait {
    match (wait, proxy) {
        (Wait::Rollout { target, mut expect }, Some(p)) => {
            expect.proxy = Some(p.clone());
            Wait::Rollout { target, expect }
        }
        (w, _) => w,
    }
}

fn webhook_first(r: &ObjRef) -> u8 {
    u8::from(!r.kind.ends_with("WebhookConfiguration"))
}

/// Plans the rollback of `saved` objects and `created` ones against the `live` state. A created
/// object is deleted only if the backup recorded its UID and the live object still has it.
///
/// A restored workload is waited on until it runs its saved template again and, when `proxies`
/// names the proxy its pods get back (a data-plane change: the revision its restored namespace
/// selects), until its ready pods run that proxy.
pub fn plan(
    saved: &[Value],
    created: &[(ObjRef, Option<String>)],
    live: &BTreeMap<ObjRef, Option<Value>>,
    proxies: &[(ObjRef, ExpectedProxy)],
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
        if now.is_some() && uid.is_none() {
            // Killed between creating it and recording its UID, or never created and made by
            // someone else since: which one cannot be told, so it is not deleted.
            steps.push(Step {
                object: r.clone(),
                action: Restore::Kept,
            });
            continue;
        }
        if now.is_none() || uid.as_deref() != live_uid {
            steps.push(Step {
                object: r.clone(),
                action: Restore::Gone,
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
            action: Restore::Delete,
        });
    }
    // What other objects live in goes back first: CRDs (each waited on until established, so
    // their custom resources can be created again) and namespaces (so a workload comes back
    // under the labels that decide which revision injects it).
    let mut first = Phase::new("restore CRDs and namespaces");
    // Then the rest, a phase ending at each workload: waited on before the next is put back.
    let mut later = Vec::new();
    let mut restore = Phase::new("restore saved objects");
    let mut saved: Vec<&Value> = saved.iter().rev().collect();
    saved.sort_by_key(|o| labels_first(o));
    for obj in saved {
        let Some(r) = ObjRef::of(obj) else { continue };
        let state = match live.get(&r).and_then(Option::as_ref) {
            // Being deleted: it will be gone, and is created again once it is.
            Some(l) if l.pointer("/metadata/deletionTimestamp").is_some() => Restore::Recreate,
            None => Restore::Recreate,
            Some(l) if diff::same(l, obj) => Restore::Unchanged,
            Some(_) => Restore::Restore,
        };
        steps.push(Step {
            object: r.clone(),
            action: state,
        });
        if state == Restore::Unchanged {
            continue;
        }
        let restored = Op::Restore {
            object: obj.clone(),
        };
        match (r.kind.as_str(), r.group()) {
            ("CustomResourceDefinition", "apiextensions.k8s.io") => {
                first.waits.push(Wait::Established {
                    crd: r.name.clone(),
                });
                first.ops.push(restored);
            }
            ("Namespace", "") => first.ops.push(restored),
            _ => {
                restore.ops.push(restored);
                let proxy = proxies.iter().find(|(w, _)| *w == r).map(|(_, p)| p);
                if let Some(w) = rollout_to(&r, obj).map(|w| with_proxy(w, proxy)) {
                    // A workload ends its phase: waited on before the next is put back (an
                    // ambient upgrade is undone ztunnel → istio-cni → istiod).
                    restore.waits.push(w);
                    restore.name = format!("restore saved objects up to {r}");
                    later.push(std::mem::replace(
                        &mut restore,
                        Phase::new("restore saved objects"),
                    ));
                }
            }
        }
    }
    let mut changes = ChangePlan::default();
    changes.push(remove);
    changes.push(first);
    for phase in later {
        changes.push(phase);
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
        let p = plan(&[old.clone(), cm], &created, &live, &[]);
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
        assert_eq!(gone.action, Restore::Gone);
        let unchanged = p.steps.iter().find(|s| s.object == c).unwrap();
        assert_eq!(unchanged.action, Restore::Unchanged);
        // Reports keep the words.
        let json = serde_json::to_value(&p).unwrap();
        let words: Vec<&str> = json["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["action"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = p.steps.iter().map(|s| s.action.word()).collect();
        assert!(!words.is_empty());
        assert_eq!(words, expected);
        assert!(
            words.contains(&"gone") && words.contains(&"delete"),
            "{words:?}"
        );
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
        let p = plan(&saved, &[], &live, &[]);
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
        let p = plan(&[ns.clone(), gw.clone(), web.clone()], &[], &live, &[]);
        let kinds: Vec<String> = p
            .changes
            .ops()
            .filter_map(Op::target)
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["Namespace", "Gateway", "Deployment"]);
    }

    #[test]
    fn a_created_object_without_a_recorded_uid_is_never_deleted() {
        // The backup of a change killed before it recorded the UID: the live object of that
        // name may be someone else's.
        let wh = ObjRef::of(&mwc("istio-sidecar-injector-1-30-3", "theirs")).unwrap();
        let live = [(
            wh.clone(),
            Some(mwc("istio-sidecar-injector-1-30-3", "theirs")),
        )]
        .into_iter()
        .collect();
        let p = plan(&[], &[(wh.clone(), None)], &live, &[]);
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert_eq!(p.kept().collect::<Vec<_>>(), [&wh]);
        assert_eq!(p.steps[0].action, Restore::Kept);
        // Gone, or recreated under another UID: nothing to remove either.
        let gone = [(wh.clone(), None)].into_iter().collect();
        let p = plan(&[], &[(wh.clone(), None)], &gone, &[]);
        assert_eq!(
            (p.steps[0].action, p.changes.is_empty()),
            (Restore::Gone, true)
        );
    }

    #[test]
    fn crds_and_namespaces_come_back_before_what_lives_in_them() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "virtualservices.networking.istio.io"}});
        let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "shop"}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"istio.io/rev": "1-29-6"}}});
        let web = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
        // Saved in the order the changes ran: the namespace relabelled before the restart, the
        // resources deleted before their CRD.
        let saved = [ns.clone(), web.clone(), vs.clone(), crd.clone()];
        let live = BTreeMap::new();
        let proxy = ExpectedProxy {
            revision: "1-29-6".into(),
            version: None,
        };
        let p = plan(
            &saved,
            &[],
            &live,
            &[(ObjRef::of(&web).unwrap(), proxy.clone())],
        );
        let phases: Vec<(&str, Vec<String>)> = p
            .changes
            .phases
            .iter()
            .map(|ph| {
                (
                    ph.name.as_str(),
                    ph.ops
                        .iter()
                        .filter_map(Op::target)
                        .map(|r| r.kind)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            phases,
            [
                (
                    "restore CRDs and namespaces",
                    vec![
                        "CustomResourceDefinition".to_owned(),
                        "Namespace".to_owned()
                    ]
                ),
                (
                    "restore saved objects up to Deployment/shop/web",
                    vec!["VirtualService".to_owned(), "Deployment".to_owned()]
                ),
            ]
        );
        assert_eq!(
            p.changes.phases[0].waits,
            [Wait::Established {
                crd: "virtualservices.networking.istio.io".into()
            }]
        );
        assert!(
            matches!(&p.changes.phases[1].waits[..], [Wait::Rollout { expect, .. }]
                if expect.proxy.as_ref() == Some(&proxy) && expect.images["web"] == "web:1"),
            "the workload is waited on until it runs the proxy its namespace selects again: {:?}",
            p.changes.phases[1].waits
        );
    }

    #[test]
    fn deleted_objects_are_recreated() {
        let old = deploy("pilot:1.29.6");
        let d = ObjRef::of(&old).unwrap();
        let live = [(d.clone(), None)].into_iter().collect();
        let p = plan(&[old], &[], &live, &[]);
        assert_eq!(p.steps[0].action, Restore::Recreate);
        assert!(matches!(p.changes.phases[0].ops[0], Op::Restore { .. }));
    }
}
