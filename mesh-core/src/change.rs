//! A plan of changes: what a command will do to a cluster, as plain data.
//!
//! Planners build a [`ChangePlan`] — ordered [`Phase`]s, each a list of operations ([`Op`]:
//! server-side apply of an object, delete of a reference, label changes, a rolling restart) and
//! what to wait for once they are done ([`Wait`]: gone, CRD established, rollout complete,
//! endpoints ready). The shell's change engine carries any plan out the same way: server-side
//! dry run of every operation, confirmation, backup, phases in order with their waits, and an
//! automatic rollback from the backup on failure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::{ObjRef, version::IstioVersion};

/// Annotation `kubectl rollout restart` sets on a workload's pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// One operation on one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Server-side apply of a whole object (field manager `kubectl-mesh`).
    Apply {
        /// The object as it should be.
        object: Value,
    },
    /// Delete an object; with a UID it is deleted only if it is still the same object.
    Delete {
        /// The object.
        target: ObjRef,
        /// The UID it had when planned.
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
    /// Set (`Some`) or remove (`None`) labels of an object (a merge patch of the labels only).
    Label {
        /// The object.
        target: ObjRef,
        /// Label changes.
        labels: BTreeMap<String, Option<String>>,
    },
    /// A rolling restart of a Deployment, StatefulSet or DaemonSet: the annotation
    /// `kubectl rollout restart` sets on the pod template.
    Restart {
        /// The workload.
        target: ObjRef,
    },
    /// Put an object back exactly as it was saved (from a backup): replaced if it exists,
    /// created if it is gone.
    Restore {
        /// The saved object.
        object: Value,
    },
}

impl Op {
    /// Server-side apply of an object.
    pub fn apply(object: Value) -> Self {
        Self::Apply { object }
    }

    /// The object the operation changes (`None` only for an apply of an object without
    /// apiVersion, kind or name, which planners never build).
    pub fn target(&self) -> Option<ObjRef> {
        match self {
            Self::Apply { object } | Self::Restore { object } => ObjRef::of(object),
            Self::Delete { target, .. } | Self::Label { target, .. } | Self::Restart { target } => {
                Some(target.clone())
            }
        }
    }

    /// What kind of operation it is.
    pub fn verb(&self) -> Verb {
        match self {
            Self::Apply { .. } => Verb::Apply,
            Self::Delete { .. } => Verb::Delete,
            Self::Label { .. } => Verb::Label,
            Self::Restart { .. } => Verb::Restart,
            Self::Restore { .. } => Verb::Restore,
        }
    }
}

/// The kind of an [`Op`], for reports that keep only what each operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// [`Op::Apply`].
    Apply,
    /// [`Op::Delete`].
    Delete,
    /// [`Op::Label`].
    Label,
    /// [`Op::Restart`].
    Restart,
    /// [`Op::Restore`].
    Restore,
}

impl Verb {
    /// The verb in words: `apply`, `delete`, `label`, `restart`, `restore`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
            Self::Label => "label",
            Self::Restart => "restart",
            Self::Restore => "restore",
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// What the pods of a restarted or updated workload must run before it counts as rolled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expected {
    /// Container name → image every ready pod must run (e.g. istiod's `discovery`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// The proxy every ready pod must carry: injected by this revision, at this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ExpectedProxy>,
}

/// A proxy expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExpectedProxy {
    /// Revision that injects it.
    pub revision: String,
    /// Proxy version, when the revision's version is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<IstioVersion>,
}

/// What to wait for after a phase's operations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "wait", rename_all = "camelCase")]
pub enum Wait {
    /// The object is gone (or replaced by another object with a different UID).
    Gone {
        /// The object.
        target: ObjRef,
        /// Its UID when planned.
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
    /// A CustomResourceDefinition is `Established`.
    Established {
        /// CRD name (`virtualservices.networking.istio.io`).
        crd: String,
    },
    /// A Deployment, StatefulSet or DaemonSet has rolled out: every replica updated, ready and
    /// available, nothing old left, and its ready pods run what is expected.
    Rollout {
        /// The workload.
        target: ObjRef,
        /// What its pods must run.
        expect: Expected,
    },
    /// A Service has at least one ready endpoint (a webhook's backend answers).
    Endpoints {
        /// The Service.
        service: ObjRef,
    },
}

impl Wait {
    /// The object waited on.
    pub fn target(&self) -> ObjRef {
        match self {
            Self::Gone { target, .. } | Self::Rollout { target, .. } => target.clone(),
            Self::Established { crd } => ObjRef::new(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                crd,
            ),
            Self::Endpoints { service } => service.clone(),
        }
    }

    /// In words, for progress and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Gone { target, .. } => format!("{target} to be gone"),
            Self::Established { crd } => format!("CRD {crd} to be established"),
            Self::Rollout { target, .. } => format!("{target} to roll out"),
            Self::Endpoints { service } => format!("{service} to have a ready endpoint"),
        }
    }
}

/// The images of a workload object's pod template, by container name.
pub fn template_images(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_owned(),
                c["image"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// For a Deployment, StatefulSet or DaemonSet: a wait until it runs the template of `obj`.
pub fn rollout_to(r: &ObjRef, obj: &Value) -> Option<Wait> {
    if !matches!(r.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
        return None;
    }
    Some(Wait::Rollout {
        target: r.clone(),
        expect: Expected {
            images: template_images(obj),
            proxy: None,
        },
    })
}

/// One step of a plan: operations, then waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// Name shown in progress and reports (`CRDs`, `webhooks`, `batch 2 of 5`).
    pub name: String,
    /// Operations, in order.
    pub ops: Vec<Op>,
    /// What to wait for after them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Wait>,
}

impl Phase {
    /// An empty phase.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ops: Vec::new(),
            waits: Vec::new(),
        }
    }
}

/// A whole plan of changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChangePlan {
    /// Phases, in order; empty phases are skipped.
    pub phases: Vec<Phase>,
    /// Field managers whose fields an apply takes over without asking: the installer that made
    /// the objects (`istio-operator`, istioctl's tag manager). A conflict with any other manager
    /// is shown and needs `--force-conflicts`.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub takeover: BTreeSet<String>,
    /// For workloads the plan restarts: the proxy their pods get again when the change is
    /// rolled back (the one their namespace's labels selected before it). A rollback waits for
    /// it, not only for the rollout.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undo_proxies: Vec<(ObjRef, ExpectedProxy)>,
}

impl ChangePlan {
    /// Adds a phase unless it has nothing to do.
    pub fn push(&mut self, phase: Phase) {
        if !phase.ops.is_empty() || !phase.waits.is_empty() {
            self.phases.push(phase);
        }
    }

    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(|p| p.ops.is_empty())
    }

    /// Every operation, in order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.phases.iter().flat_map(|p| p.ops.iter())
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops().count()
    }

    /// Every object the plan changes, once each, in first-touched order.
    pub fn targets(&self) -> Vec<ObjRef> {
        let mut seen = BTreeSet::new();
        self.ops()
            .filter_map(Op::target)
            .filter(|r| seen.insert(r.clone()))
            .collect()
    }

    /// Objects the plan writes whole (applies or restores from a backup).
    fn written(&self) -> impl Iterator<Item = &Value> {
        self.ops().filter_map(|op| match op {
            Op::Apply { object } | Op::Restore { object } => Some(object),
            _ => None,
        })
    }

    /// Namespaces the plan itself creates (by applying or restoring a Namespace object).
    pub fn created_namespaces(&self) -> BTreeSet<String> {
        self.written()
            .filter_map(ObjRef::of)
            .filter(|r| r.kind == "Namespace" && r.group().is_empty())
            .map(|r| r.name)
            .collect()
    }

    /// CRDs the plan applies or restores, by name.
    pub fn applied_crds(&self) -> BTreeSet<String> {
        self.written()
            .filter_map(ObjRef::of)
            .filter(|r| r.kind == "CustomResourceDefinition")
            .map(|r| r.name)
            .collect()
    }

    /// The kinds the CRDs the plan applies or restores define, as (group, kind) from each
    /// CRD's `spec.group` and `spec.names.kind` — never guessed from the CRD's name (the plural
    /// of `Telemetry` is `telemetries`; `gatewayclasses` does not define `Gateway`).
    pub fn crd_kinds(&self) -> BTreeSet<(String, String)> {
        self.written()
            .filter(|o| {
                o["kind"] == "CustomResourceDefinition"
                    && o["apiVersion"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("apiextensions.k8s.io/"))
            })
            .filter_map(|o| {
                Some((
                    o.pointer("/spec/group")?.as_str()?.to_owned(),
                    o.pointer("/spec/names/kind")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "istio-system"}})
    }

    #[test]
    fn targets_are_unique_and_ordered_and_empty_phases_are_dropped() {
        let mut plan = ChangePlan::default();
        plan.push(Phase::new("nothing"));
        let mut p = Phase::new("config");
        p.ops.push(Op::apply(cm("b")));
        p.ops.push(Op::apply(cm("a")));
        plan.push(p);
        let mut d = Phase::new("prune");
        let b = ObjRef::of(&cm("b")).unwrap();
        d.ops.push(Op::Delete {
            target: b.clone(),
            uid: Some("u1".into()),
        });
        d.waits.push(Wait::Gone {
            target: b,
            uid: Some("u1".into()),
        });
        plan.push(d);
        assert_eq!(plan.phases.len(), 2);
        assert_eq!(plan.len(), 3);
        let names: Vec<String> = plan.targets().iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(!plan.is_empty());
        assert!(ChangePlan::default().is_empty());
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["phases"][1]["ops"][0]["op"], "delete");
        assert_eq!(v["phases"][1]["waits"][0]["wait"], "gone");
    }

    fn crd(plural: &str, group: &str, kind: &str) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "names": {"plural": plural, "kind": kind}}})
    }

    #[test]
    fn crd_kinds_come_from_spec_names() {
        let mut p = Phase::new("CRDs");
        p.ops.push(Op::apply(crd(
            "telemetries",
            "telemetry.istio.io",
            "Telemetry",
        )));
        p.ops.push(Op::apply(crd(
            "authorizationpolicies",
            "security.istio.io",
            "AuthorizationPolicy",
        )));
        p.ops.push(Op::apply(crd(
            "serviceentries",
            "networking.istio.io",
            "ServiceEntry",
        )));
        p.ops.push(Op::Restore {
            object: crd(
                "gatewayclasses",
                "gateway.networking.k8s.io",
                "GatewayClass",
            ),
        });
        let mut plan = ChangePlan::default();
        plan.push(p);
        let kinds = plan.crd_kinds();
        for (g, k) in [
            ("telemetry.istio.io", "Telemetry"),
            ("security.istio.io", "AuthorizationPolicy"),
            ("networking.istio.io", "ServiceEntry"),
            ("gateway.networking.k8s.io", "GatewayClass"),
        ] {
            assert!(kinds.contains(&(g.to_owned(), k.to_owned())), "{g} {k}");
        }
        assert!(
            !kinds.contains(&("gateway.networking.k8s.io".to_owned(), "Gateway".to_owned())),
            "gatewayclasses does not define Gateway"
        );
        assert_eq!(kinds.len(), 4);
    }
}
