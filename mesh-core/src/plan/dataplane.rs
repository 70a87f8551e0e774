//! Data-plane planning: `kubectl mesh upgrade dataplane [-n NS ... | -A] [--to-revision REV|TAG]
//! [--batch N]`.
//!
//! Owns the decision of which namespaces are relabelled and which workloads are restarted so
//! that every proxy runs what its namespace (or pod labels) now select. Which revision a pod gets
//! on restart is answered the way the API server answers it: the injector webhooks' selectors are
//! evaluated against the namespace's labels — as they will be after the relabel — and the pod's
//! labels ([`crate::plan::tag::resolve`]), so tags, the `default` tag, `istio-injection`
//! precedence and pod-level opt-outs need no special cases (ISTIO.md §3.2). What a pod runs now
//! comes from its injection status and proxy image (ISTIO.md §3.5).
//!
//! A workload is restarted when any of its running proxies is of another revision or version
//! than the one it would get; everything else is left alone, so a second run after a successful
//! one plans nothing. Pods no restart of a workload can fix — bare pods, Job pods — are listed
//! for a manual restart; pods that would lose their proxy or be injected twice are reported as
//! stuck and never restarted. Pure: snapshot and inventory in, plan out.
//!
//! Ambient mode ([`ambient`]): waypoints move with their namespaces (or by name) onto the
//! target, and ambient namespaces are reported as needing no restart; waypoint pods are
//! waypoints, never sidecars to restart.

mod ambient;

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet},
};

use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration, core::v1::Namespace,
};
use serde::Serialize;

pub use ambient::{AmbientScope, WaypointMove};

use crate::{
    ObjRef,
    ambient::{is_ambient, is_waypoint_pod},
    change::{ChangePlan, Expected, ExpectedProxy, Op, Phase, Wait},
    error::{Class, Classify, RevisionError},
    inventory::{
        INJECTION_LABEL, Inventory, REV_LABEL, STATUS_ANNOTATION, injected_revision, is_injector,
    },
    plan::{
        resolve_revision_or_tag,
        tag::{Injects, resolve},
    },
    snapshot::{ClusterSnapshot, PodInfo, Source, Unread, labels, name},
    version::{IstioVersion, image_version},
};

/// Pod label or annotation that opts a pod out of injection when `false`.
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";

/// Sources the plan cannot do without.
const REQUIRED: [Source; 3] = [Source::Namespaces, Source::Pods, Source::MutatingWebhooks];

/// Why a pod whose proxy is part of its template is never restarted.
const TEMPLATE_PROXY: &str =
    "its proxy is part of its pod template (not injected): a restart does not change it";

/// What is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Namespaces named with `-n` (repeatable).
    pub namespaces: Vec<String>,
    /// `-A`: every namespace but the Istio namespace (wins over `-n`).
    pub all: bool,
    /// `--to-revision`: a revision or tag to move the namespaces onto.
    pub to_revision: Option<String>,
    /// `--batch`: workloads restarted at once.
    pub batch: usize,
    /// `--waypoint NS/NAME` (repeatable): waypoints to move onto `--to-revision` besides those
    /// of the namespaces in scope.
    pub waypoints: Vec<String>,
}

/// Why a dataplane change cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataplaneError {
    /// Neither `-n` nor `-A`.
    #[error("no namespace chosen")]
    NoScope,
    /// A namespace named with `-n` does not exist.
    #[error("namespace `{namespace}` does not exist")]
    UnknownNamespace {
        /// The name given.
        namespace: String,
    },
    /// `--batch 0`.
    #[error("--batch must be at least 1")]
    Batch,
    /// `--waypoint` without `--to-revision`.
    #[error("--waypoint needs --to-revision: a waypoint moves onto a revision or tag")]
    WaypointsNeedTarget,
    /// A `--waypoint` value that is not `NAMESPACE/NAME`.
    #[error("--waypoint `{given}` is not NAMESPACE/NAME")]
    BadWaypoint {
        /// The value given.
        given: String,
    },
    /// A `--waypoint` names no waypoint.
    #[error("no waypoint `{waypoint}` (a Gateway of class `istio-waypoint`)")]
    UnknownWaypoint {
        /// `namespace/name` as given.
        waypoint: String,
        /// The waypoints of the cluster.
        known: Vec<String>,
    },
    /// `--to-revision` names no revision or tag.
    #[error(transparent)]
    Revision(#[from] RevisionError),
    /// A source the plan needs could not be read.
    #[error(transparent)]
    Unreadable(#[from] Unread),
}

impl Classify for DataplaneError {
    fn class(&self) -> Class {
        match self {
            Self::Unreadable(e) => e.class(),
            _ => Class::Usage,
        }
    }

    fn hints(&self) -> Vec<String> {
        match self {
            Self::NoScope => {
                vec!["pass -n NAMESPACE (repeatable) or -A for every namespace".to_owned()]
            }
            Self::UnknownNamespace { .. } => {
                vec!["check the name with `kubectl get namespaces`".to_owned()]
            }
            Self::Batch => vec![
                "pass --batch N with N of 1 or more (workloads restarted at a time)".to_owned(),
            ],
            Self::WaypointsNeedTarget => vec![
                "add --to-revision REV|TAG, e.g. `kubectl mesh upgrade dataplane --waypoint NS/NAME --to-revision REV`".to_owned(),
            ],
            Self::BadWaypoint { .. } => {
                vec!["name each waypoint as NAMESPACE/NAME, e.g. --waypoint shop/waypoint".to_owned()]
            }
            Self::UnknownWaypoint { known, .. } if known.is_empty() => {
                vec!["this cluster has no waypoint; list them with `kubectl mesh precheck`".to_owned()]
            }
            Self::UnknownWaypoint { known, .. } => {
                vec![format!("waypoints in this cluster: {}", known.join(", "))]
            }
            Self::Revision(e) => e.hints(),
            Self::Unreadable(e) => e.hints(),
        }
    }
}

/// The revision (or tag) `--to-revision` moves the namespaces onto.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The revision it resolves to.
    pub revision: String,
    /// The tag it goes through, if a tag was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The revision's control-plane version, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<IstioVersion>,
}

/// One namespace label change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relabel {
    /// The namespace.
    pub namespace: String,
    /// Label changes: `Some` sets, `None` removes.
    pub labels: BTreeMap<String, Option<String>>,
    /// What injects its pods now ([`Injects::describe`]).
    pub before: String,
    /// What injects its pods after the change.
    pub after: String,
}

/// A workload to restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restart {
    /// The Deployment, StatefulSet or DaemonSet.
    pub workload: ObjRef,
    /// Its pods needing a new proxy.
    pub pods: usize,
    /// What those pods run now: `"<revision> <version>"` (`unknown` where missing) → pods.
    pub current: BTreeMap<String, usize>,
    /// What its pods must run after the restart.
    pub expected: ExpectedProxy,
}

/// A pod needing a new proxy that no workload restart replaces (bare pod, Job pod): it must be
/// restarted by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manual {
    /// `<namespace>/<name>`.
    pub pod: String,
    /// Its controller (`Job/migrate`), or `none`.
    pub owner: String,
    /// What it runs now (`<revision> <version>`).
    pub current: String,
    /// What it would get (`<revision> <version>`).
    pub expected: String,
}

/// A pod with a proxy that a restart would break: its namespace and pod labels resolve to no
/// injector (it would lose its proxy) or to several (injected twice or rejected), or its proxy is
/// part of its template. Never restarted (nor its workload), reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    /// `<namespace>/<name>`.
    pub pod: String,
    /// Why.
    pub why: String,
}

/// The plan of a data-plane upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplanePlan {
    /// Where `--to-revision` moves the namespaces, if asked.
    pub target: Option<Target>,
    /// Namespace label changes, by namespace.
    pub relabel: Vec<Relabel>,
    /// Waypoints moved onto the target, by namespace and name.
    pub waypoints: Vec<WaypointMove>,
    /// Ambient namespaces in scope: no restart (no sidecar; ztunnel carries their pods).
    pub ambient_namespaces: Vec<AmbientScope>,
    /// Workloads to restart, sorted by namespace, kind, name.
    pub restart: Vec<Restart>,
    /// Workloads whose proxies are all current (left alone).
    pub current: usize,
    /// Workloads whose pods have no proxy (left alone).
    pub without_proxy: usize,
    /// Pods opted out with `sidecar.istio.io/inject=false` (label or annotation).
    pub opted_out: usize,
    /// Pods to restart by hand, by name.
    pub manual: Vec<Manual>,
    /// Pods a restart would break, by name.
    pub stuck: Vec<Stuck>,
    /// Workloads restarted at a time.
    pub batch: usize,
}

impl DataplanePlan {
    /// The plan of changes: phase `namespace labels` (one label change per [`Relabel`]), phase
    /// `waypoints` (each Gateway labelled, each waypoint waited on until it runs the target's
    /// proxy), then phases `batch i of n` of up to `batch` restarts each, each waiting for its
    /// workloads to roll out with the expected proxy. Empty phases are dropped.
    pub fn changes(&self) -> ChangePlan {
        let mut plan = ChangePlan::default();
        let mut labels = Phase::new("namespace labels");
        labels.ops.extend(self.relabel.iter().map(|r| Op::Label {
            target: ObjRef::new("v1", "Namespace", None, &r.namespace),
            labels: r.labels.clone(),
        }));
        plan.push(labels);
        plan.push(ambient::phase(&self.waypoints));
        let n = self.batches();
        for (i, chunk) in self.restart.chunks(self.batch.max(1)).enumerate() {
            let mut phase = Phase::new(format!("batch {} of {n}", i + 1));
            for r in chunk {
                phase.ops.push(Op::Restart {
                    target: r.workload.clone(),
                });
                phase.waits.push(Wait::Rollout {
                    target: r.workload.clone(),
                    expect: Expected {
                        images: BTreeMap::new(),
                        proxy: Some(r.expected.clone()),
                    },
                });
            }
            plan.push(phase);
        }
        plan
    }

    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.restart.len().div_ceil(self.batch.max(1))
    }
}

/// Plans a data-plane upgrade.
pub fn plan(
    snap: &ClusterSnapshot,
    inv: &Inventory,
    req: &Request,
) -> Result<DataplanePlan, DataplaneError> {
    check_request(req)?;
    snap.require(&REQUIRED)?;
    let scope = scope(snap, req)?;
    let named = ambient::parse(&req.waypoints)?;
    let target = match &req.to_revision {
        Some(name) => Some(target(inv, name)?),
        None => None,
    };
    let names: BTreeSet<String> = scope.iter().map(|n| name(&n.metadata).to_owned()).collect();
    let ambient_scope = ambient::scope(inv, &names);
    let waypoints = match (&target, &req.to_revision) {
        (Some(t), Some(to)) => {
            // Which waypoints move is unknown without them (`-A` moves every one).
            if req.all || !named.is_empty() || !ambient_scope.is_empty() {
                snap.require(&[Source::Gateways])?;
            }
            ambient::moves(inv, &names, &named, t, to)?
        }
        _ => Vec::new(),
    };
    let mut planner = Planner::new(snap, inv, target, req.batch);
    let mut ns_after = BTreeMap::new();
    for ns in scope {
        let relabel_to = req
            .to_revision
            .as_deref()
            .filter(|_| in_mesh(ns) || (!req.all && !is_ambient(labels(&ns.metadata))));
        ns_after.insert(name(&ns.metadata), planner.namespace(ns, relabel_to));
    }
    for pod in snap
        .pods
        .iter()
        .filter(|p| !p.is_finished() && !is_waypoint_pod(p))
    {
        if let Some(ns_labels) = ns_after.get(pod.namespace()) {
            planner.pod(pod, ns_labels);
        }
    }
    let mut out = planner.finish();
    out.waypoints = waypoints;
    out.ambient_namespaces = ambient_scope;
    Ok(out)
}

fn check_request(req: &Request) -> Result<(), DataplaneError> {
    if !req.all && req.namespaces.is_empty() && req.waypoints.is_empty() {
        return Err(DataplaneError::NoScope);
    }
    if !req.waypoints.is_empty() && req.to_revision.is_none() {
        return Err(DataplaneError::WaypointsNeedTarget);
    }
    if req.batch == 0 {
        return Err(DataplaneError::Batch);
    }
    Ok(())
}

/// The namespaces in scope, by name: `-A` means every one but the Istio namespace; `-n` names
/// must all exist (the Istio namespace only when named).
fn scope<'a>(
    snap: &'a ClusterSnapshot,
    req: &Request,
) -> Result<Vec<&'a Namespace>, DataplaneError> {
    let mut out: Vec<&Namespace> = if req.all {
        snap.namespaces
            .iter()
            .filter(|n| name(&n.metadata) != snap.istio_namespace)
            .collect()
    } else {
        req.namespaces
            .iter()
            .map(|n| {
                snap.namespace(n)
                    .ok_or_else(|| DataplaneError::UnknownNamespace {
                        namespace: n.clone(),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    out.sort_by_key(|n| name(&n.metadata));
    out.dedup_by_key(|n| name(&n.metadata));
    Ok(out)
}

fn target(inv: &Inventory, name: &str) -> Result<Target, RevisionError> {
    let (revision, tag) = resolve_revision_or_tag(inv, name)?;
    Ok(Target {
        version: inv.revision_version(&revision).cloned(),
        revision,
        tag,
    })
}

/// Whether a namespace asks for injection by label; with `-A` only those are relabelled, so
/// namespaces outside the mesh (or with `istio-injection=disabled`) are never pulled into it.
/// An ambient namespace without such a label is never relabelled either (`-n` or `-A`):
/// `istio.io/rev` would turn sidecar injection on beside ambient mode.
fn in_mesh(ns: &Namespace) -> bool {
    let l = labels(&ns.metadata);
    l.contains_key(REV_LABEL) || l.get(INJECTION_LABEL).is_some_and(|v| v == "enabled")
}

/// The label changes that put a namespace on `to`: `istio.io/rev=<to>`, no `istio-injection`.
fn label_changes(
    ns_labels: &BTreeMap<String, String>,
    to: &str,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    if ns_labels.get(REV_LABEL).map(String::as_str) != Some(to) {
        out.insert(REV_LABEL.to_owned(), Some(to.to_owned()));
    }
    if ns_labels.contains_key(INJECTION_LABEL) {
        out.insert(INJECTION_LABEL.to_owned(), None);
    }
    out
}

fn apply_changes(
    ns_labels: &BTreeMap<String, String>,
    changes: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, String> {
    let mut out = ns_labels.clone();
    for (k, v) in changes {
        match v {
            Some(v) => out.insert(k.clone(), v.clone()),
            None => out.remove(k),
        };
    }
    out
}

fn opted_out(pod: &PodInfo) -> bool {
    pod.label(INJECT_LABEL) == Some("false") || pod.annotation(INJECT_LABEL) == Some("false")
}

/// `<revision> <version>`, `unknown` for what is missing.
fn proxy_label(revision: Option<&str>, version: Option<&IstioVersion>) -> String {
    format!(
        "{} {}",
        revision.unwrap_or("unknown"),
        version.map_or_else(|| "unknown".to_owned(), ToString::to_string)
    )
}

/// Whether two versions differ, when both are known (variants and vendor suffixes aside).
fn versions_differ(now: Option<&IstioVersion>, expected: Option<&IstioVersion>) -> bool {
    matches!((now, expected), (Some(a), Some(b)) if a.cmp(b) != Ordering::Equal)
}

/// What restarting a pod would do.
enum Verdict {
    /// `sidecar.istio.io/inject=false`.
    OptedOut,
    /// No proxy now.
    NoProxy,
    /// A restart would break it.
    Stuck(String),
    /// Its proxy is what a restart would give.
    Current,
    /// A restart gives it another proxy.
    Stale {
        /// What it runs now.
        current: String,
        /// What it would get.
        expected: ExpectedProxy,
    },
}

/// Who restarts a pod.
enum Owner {
    /// A Deployment, StatefulSet or DaemonSet.
    Workload(ObjRef),
    /// Nothing this command restarts: `none`, `Job/<name>`.
    Manual(String),
}

fn owner(pod: &PodInfo) -> Owner {
    let Some(o) = pod.controller() else {
        return Owner::Manual("none".to_owned());
    };
    let ns = Some(pod.namespace());
    match o.kind.as_str() {
        "ReplicaSet" => {
            let deploy = deployment_name(&o.name, pod.label("pod-template-hash"));
            Owner::Workload(ObjRef::new("apps/v1", "Deployment", ns, deploy))
        }
        kind @ ("StatefulSet" | "DaemonSet") => {
            Owner::Workload(ObjRef::new("apps/v1", kind, ns, &o.name))
        }
        kind => Owner::Manual(format!("{kind}/{}", o.name)),
    }
}

/// The Deployment of a ReplicaSet `<deploy>-<hash>`: by the pod's `pod-template-hash`, else by
/// dropping the last `-segment`.
fn deployment_name<'a>(replica_set: &'a str, hash: Option<&str>) -> &'a str {
    hash.and_then(|h| replica_set.strip_suffix(h)?.strip_suffix('-'))
        .or_else(|| replica_set.rsplit_once('-').map(|(d, _)| d))
        .unwrap_or(replica_set)
}

/// What the pods of one workload add up to.
#[derive(Default)]
struct Tally {
    /// Some pod has a proxy.
    proxied: bool,
    /// Some pod is stuck.
    stuck: bool,
    /// Pods needing a new proxy, by what they run now.
    stale: BTreeMap<String, usize>,
    /// What the first stale pod would get.
    expected: Option<ExpectedProxy>,
}

/// One pass over the namespaces and pods in scope.
struct Planner<'a> {
    inv: &'a Inventory,
    injectors: Vec<&'a MutatingWebhookConfiguration>,
    out: DataplanePlan,
    /// By (namespace, kind, name).
    workloads: BTreeMap<(String, String, String), (ObjRef, Tally)>,
}

impl<'a> Planner<'a> {
    fn new(
        snap: &'a ClusterSnapshot,
        inv: &'a Inventory,
        target: Option<Target>,
        batch: usize,
    ) -> Self {
        Self {
            inv,
            injectors: snap
                .mutating_webhooks
                .iter()
                .filter(|m| is_injector(m))
                .collect(),
            out: DataplanePlan {
                target,
                relabel: Vec::new(),
                waypoints: Vec::new(),
                ambient_namespaces: Vec::new(),
                restart: Vec::new(),
                current: 0,
                without_proxy: 0,
                opted_out: 0,
                manual: Vec::new(),
                stuck: Vec::new(),
                batch,
            },
            workloads: BTreeMap::new(),
        }
    }

    /// Records the relabel of a namespace onto `to` (if it changes anything) and returns the
    /// namespace's labels after it.
    fn namespace(&mut self, ns: &Namespace, to: Option<&str>) -> BTreeMap<String, String> {
        let before = labels(&ns.metadata);
        let changes = to.map(|to| label_changes(before, to)).unwrap_or_default();
        if changes.is_empty() {
            return before.clone();
        }
        let after = apply_changes(before, &changes);
        let none = BTreeMap::new();
        self.out.relabel.push(Relabel {
            namespace: name(&ns.metadata).to_owned(),
            labels: changes,
            before: resolve(&self.injectors, before, &none).describe(),
            after: resolve(&self.injectors, &after, &none).describe(),
        });
        after
    }

    fn pod(&mut self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) {
        let pod_name = format!("{}/{}", pod.namespace(), pod.name());
        match (self.verdict(pod, ns_labels), owner(pod)) {
            (Verdict::OptedOut, _) => self.out.opted_out += 1,
            (Verdict::Stuck(why), owner) => {
                self.out.stuck.push(Stuck { pod: pod_name, why });
                if let Owner::Workload(w) = owner {
                    self.tally(w).stuck = true;
                }
            }
            (Verdict::Stale { current, expected }, Owner::Manual(owner)) => {
                self.out.manual.push(Manual {
                    pod: pod_name,
                    owner,
                    current,
                    expected: proxy_label(Some(&expected.revision), expected.version.as_ref()),
                });
            }
            (_, Owner::Manual(_)) => {}
            (verdict, Owner::Workload(w)) => add(self.tally(w), verdict),
        }
    }

    fn tally(&mut self, w: ObjRef) -> &mut Tally {
        let key = (
            w.namespace.clone().unwrap_or_default(),
            w.kind.clone(),
            w.name.clone(),
        );
        &mut self
            .workloads
            .entry(key)
            .or_insert_with(|| (w, Tally::default()))
            .1
    }

    fn verdict(&self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> Verdict {
        if opted_out(pod) {
            return Verdict::OptedOut;
        }
        let status = pod.annotation(STATUS_ANNOTATION);
        match (pod.proxy_image(), status) {
            (None, None) => return Verdict::NoProxy,
            (Some(_), None) => return Verdict::Stuck(TEMPLATE_PROXY.to_owned()),
            _ => {}
        }
        let expected = match self.expected(pod, ns_labels) {
            Ok(e) => e,
            Err(why) => return Verdict::Stuck(why),
        };
        let injected = injected_revision(pod);
        let version = pod.proxy_image().and_then(image_version);
        if injected.as_deref() == Some(expected.revision.as_str())
            && !versions_differ(version.as_ref(), expected.version.as_ref())
        {
            return Verdict::Current;
        }
        Verdict::Stale {
            current: proxy_label(injected.as_deref(), version.as_ref()),
            expected,
        }
    }

    /// The proxy a restart gives the pod, or why it would break.
    fn expected(
        &self,
        pod: &PodInfo,
        ns_labels: &BTreeMap<String, String>,
    ) -> Result<ExpectedProxy, String> {
        match resolve(&self.injectors, ns_labels, pod.labels()) {
            Injects::Revision { revision, .. } => Ok(ExpectedProxy {
                version: self.inv.revision_version(&revision).cloned(),
                revision,
            }),
            Injects::Nothing => Err(
                "no injector matches its namespace and pod labels: a restart would start it without a proxy"
                    .to_owned(),
            ),
            Injects::Overlap { webhooks } => Err(format!(
                "{} injectors match it ({}): a restart would inject it twice or be rejected",
                webhooks.len(),
                webhooks.join(", ")
            )),
        }
    }

    fn finish(mut self) -> DataplanePlan {
        for (workload, t) in std::mem::take(&mut self.workloads).into_values() {
            match t.expected {
                _ if t.stuck => {}
                Some(expected) => self.out.restart.push(Restart {
                    workload,
                    pods: t.stale.values().sum(),
                    current: t.stale,
                    expected,
                }),
                None if t.proxied => self.out.current += 1,
                None => self.out.without_proxy += 1,
            }
        }
        self.out.manual.sort_by(|a, b| a.pod.cmp(&b.pod));
        self.out.stuck.sort_by(|a, b| a.pod.cmp(&b.pod));
        self.out
    }
}

/// Adds a pod's verdict to its workload's tally.
fn add(t: &mut Tally, verdict: Verdict) {
    match verdict {
        Verdict::Current => t.proxied = true,
        Verdict::Stale { current, expected } => {
            t.proxied = true;
            *t.stale.entry(current).or_default() += 1;
            t.expected.get_or_insert(expected);
        }
        Verdict::NoProxy | Verdict::OptedOut | Verdict::Stuck(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        snapshot::PodObject,
        testkit::{Snap, injector, owned_pod},
    };

    const ENABLED: (&str, &str) = ("istio-injection", "enabled");

    fn req(namespaces: &[&str], to: Option<&str>, batch: usize) -> Request {
        Request {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            all: false,
            to_revision: to.map(str::to_owned),
            batch,
            waypoints: Vec::new(),
        }
    }

    fn all(to: Option<&str>) -> Request {
        Request {
            all: true,
            ..req(&[], to, 1)
        }
    }

    fn v(text: &str) -> Option<IstioVersion> {
        Some(IstioVersion::parse(text).unwrap())
    }

    fn proxy(revision: &str, version: &str) -> ExpectedProxy {
        ExpectedProxy {
            revision: revision.to_owned(),
            version: v(version),
        }
    }

    fn deploy(ns: &str, kind: &str, name: &str) -> ObjRef {
        ObjRef::new("apps/v1", kind, Some(ns), name)
    }

    fn workloads(p: &DataplanePlan) -> Vec<String> {
        p.restart.iter().map(|r| r.workload.to_string()).collect()
    }

    /// Revision `default` at 1.29.6, canary revision `1-30-3` with tag `canary`.
    fn canary() -> Snap {
        Snap::new()
            .control_plane("default", "1.29.6")
            .control_plane("1-30-3", "1.30.3")
            .tag("canary", "1-30-3")
            .namespace("istio-system", &[])
    }

    #[test]
    fn moves_a_namespace_onto_a_canary_tag_and_restarts_its_workloads() {
        let (snap, inv) = canary()
            .namespace("shop", &[ENABLED])
            .pod("shop", "web-1", Some("default"), "1.29.6")
            .pod("shop", "web-2", Some("default"), "1.29.6")
            .labelled_pod("shop", "batch-1", None, "", &[(INJECT_LABEL, "false")])
            .build();
        let p = plan(&snap, &inv, &req(&["shop"], Some("canary"), 5)).unwrap();
        assert_eq!(
            p.target,
            Some(Target {
                revision: "1-30-3".into(),
                tag: Some("canary".into()),
                version: v("1.30.3"),
            })
        );
        let labels = BTreeMap::from([
            ("istio-injection".to_owned(), None),
            ("istio.io/rev".to_owned(), Some("canary".to_owned())),
        ]);
        assert_eq!(
            p.relabel,
            [Relabel {
                namespace: "shop".into(),
                labels,
                before: "default".into(),
                after: "1-30-3 (tag canary)".into(),
            }]
        );
        assert_eq!(
            p.restart,
            [Restart {
                workload: deploy("shop", "Deployment", "web"),
                pods: 2,
                current: BTreeMap::from([("default 1.29.6".to_owned(), 2)]),
                expected: proxy("1-30-3", "1.30.3"),
            }]
        );
        assert_eq!((p.opted_out, p.current, p.without_proxy), (1, 0, 0));
        assert!(p.manual.is_empty() && p.stuck.is_empty());
    }

    #[test]
    fn a_second_run_after_the_move_plans_nothing() {
        let (snap, inv) = canary()
            .namespace("shop", &[("istio.io/rev", "canary")])
            .pod("shop", "web-1", Some("1-30-3"), "1.30.3")
            .build();
        let p = plan(&snap, &inv, &req(&["shop"], Some("canary"), 1)).unwrap();
        assert!(p.relabel.is_empty() && p.restart.is_empty());
        assert_eq!(p.current, 1);
        assert!(p.changes().is_empty());
    }

    #[test]
    fn a_revision_name_labels_the_revision_and_only_what_differs_changes() {
        let (snap, inv) = canary()
            .namespace("both", &[ENABLED, ("istio.io/rev", "1-30-3")])
            .build();
        let p = plan(&snap, &inv, &req(&["both"], Some("1-30-3"), 1)).unwrap();
        assert_eq!(p.target.as_ref().unwrap().tag, None);
        assert_eq!(
            p.relabel[0].labels,
            BTreeMap::from([("istio-injection".to_owned(), None)])
        );
        assert_eq!(
            (p.relabel[0].before.as_str(), p.relabel[0].after.as_str()),
            ("default", "1-30-3")
        );
    }

    /// Control plane `default` upgraded in place to 1.30.3; proxies still 1.29.6.
    fn in_place() -> Snap {
        Snap::new()
            .control_plane("default", "1.30.3")
            .namespace("istio-system", &[ENABLED])
            .namespace("a", &[ENABLED])
            .namespace("b", &[("istio.io/rev", "default")])
            .namespace("c", &[])
            .pod("a", "web-1", Some("default"), "1.29.6")
            .pod("a", "web-2", Some("default"), "1.30.3")
            .pod("a", "api-1", Some("default"), "1.30.3")
            .pod("b", "cart-1", Some("default"), "1.29.6-distroless")
            .pod("c", "plain-1", None, "")
            .pod("istio-system", "gw-1", Some("default"), "1.29.6")
    }

    #[test]
    fn after_an_in_place_upgrade_restarts_exactly_the_stale_workloads() {
        let (snap, inv) = in_place().build();
        let p = plan(&snap, &inv, &all(None)).unwrap();
        assert_eq!(p.target, None);
        assert!(p.relabel.is_empty());
        assert_eq!(workloads(&p), ["Deployment/a/web", "Deployment/b/cart"]);
        let web = &p.restart[0];
        assert_eq!(web.pods, 1, "only the 1.29.6 pod needs a new proxy");
        assert_eq!(
            web.current,
            BTreeMap::from([("default 1.29.6".to_owned(), 1)])
        );
        assert_eq!(web.expected, proxy("default", "1.30.3"));
        assert_eq!(
            p.restart[1].current,
            BTreeMap::from([("default 1.29.6-distroless".to_owned(), 1)])
        );
        assert_eq!((p.current, p.without_proxy, p.opted_out), (1, 1, 0));
    }

    #[test]
    fn the_istio_namespace_only_when_named() {
        let (snap, inv) = in_place().build();
        let p = plan(
            &snap,
            &inv,
            &req(&["istio-system", "istio-system"], None, 1),
        )
        .unwrap();
        assert_eq!(workloads(&p), ["Deployment/istio-system/gw"]);
        let both = Request {
            all: true,
            ..req(&["istio-system"], None, 1)
        };
        let p = plan(&snap, &inv, &both).unwrap();
        assert_eq!(workloads(&p), ["Deployment/a/web", "Deployment/b/cart"]);
    }

    #[test]
    fn all_namespaces_relabels_only_those_in_the_mesh() {
        let (snap, inv) = canary()
            .namespace("kube-system", &[])
            .namespace("off", &[("istio-injection", "disabled")])
            .namespace("shop", &[ENABLED])
            .namespace("cart", &[("istio.io/rev", "default")])
            .build();
        let p = plan(&snap, &inv, &all(Some("canary"))).unwrap();
        let names: Vec<&str> = p.relabel.iter().map(|r| r.namespace.as_str()).collect();
        assert_eq!(names, ["cart", "shop"]);
        let p = plan(&snap, &inv, &req(&["off"], Some("canary"), 1)).unwrap();
        assert_eq!(p.relabel[0].before, "nothing");
        assert_eq!(p.relabel[0].after, "1-30-3 (tag canary)");
    }

    #[test]
    fn bare_and_job_pods_are_manual_and_finished_pods_ignored() {
        let mut done = PodObject::from(owned_pod(
            "a",
            "migrate-old",
            Some("default"),
            "1.29.6",
            Some(("Job", "old")),
        ));
        done.status.phase = Some("Succeeded".into());
        let done = PodInfo::from(done);
        let (snap, inv) = in_place()
            .push_pod(owned_pod("a", "debug", Some("default"), "1.29.6", None))
            .push_pod(owned_pod(
                "a",
                "migrate-x",
                Some("default"),
                "1.29.6",
                Some(("Job", "migrate")),
            ))
            .push_pod(owned_pod("a", "tool", Some("default"), "1.30.3", None))
            .push_pod(done)
            .build();
        let p = plan(&snap, &inv, &req(&["a"], None, 1)).unwrap();
        let manual = |pod: &str, owner: &str| Manual {
            pod: pod.into(),
            owner: owner.into(),
            current: "default 1.29.6".into(),
            expected: "default 1.30.3".into(),
        };
        assert_eq!(
            p.manual,
            [
                manual("a/debug", "none"),
                manual("a/migrate-x", "Job/migrate")
            ]
        );
        assert_eq!(workloads(&p), ["Deployment/a/web"]);
        assert_eq!(p.current, 1, "api; bare pods and Jobs are not workloads");
    }

    #[test]
    fn statefulset_daemonset_and_replicaset_owners() {
        let (snap, inv) = in_place()
            .push_pod(owned_pod(
                "c",
                "db-0",
                Some("default"),
                "1.29.6",
                Some(("StatefulSet", "db")),
            ))
            .push_pod(owned_pod(
                "c",
                "db-1",
                Some("default"),
                "1.29.6",
                Some(("StatefulSet", "db")),
            ))
            .push_pod(owned_pod(
                "c",
                "agent-x",
                Some("default"),
                "1.29.6",
                Some(("DaemonSet", "agent")),
            ))
            .push_pod(owned_pod(
                "c",
                "legacy-abc-1",
                Some("default"),
                "1.29.6",
                Some(("ReplicaSet", "legacy-abc")),
            ))
            .push_pod(owned_pod(
                "c",
                "ok-0",
                Some("default"),
                "1.30.3",
                Some(("StatefulSet", "ok")),
            ))
            .with(|s| {
                let c = s
                    .namespaces
                    .iter_mut()
                    .find(|n| name(&n.metadata) == "c")
                    .unwrap();
                c.metadata.labels = Some(BTreeMap::from([(
                    "istio-injection".into(),
                    "enabled".into(),
                )]));
            })
            .build();
        let p = plan(&snap, &inv, &req(&["c"], None, 1)).unwrap();
        assert_eq!(
            workloads(&p),
            [
                "DaemonSet/c/agent",
                "Deployment/c/legacy",
                "StatefulSet/c/db"
            ]
        );
        assert_eq!(p.restart[2].workload, deploy("c", "StatefulSet", "db"));
        assert_eq!(p.restart[2].pods, 2);
        assert_eq!((p.current, p.without_proxy), (1, 1));
        assert_eq!(deployment_name("web-7f9-5d9c7b", Some("5d9c7b")), "web-7f9");
        assert_eq!(deployment_name("web-7f9-5d9c7b", None), "web-7f9");
        assert_eq!(deployment_name("plain", Some("x")), "plain");
    }

    #[test]
    fn errors() {
        let (snap, inv) = in_place().build();
        let err = |r: Request| plan(&snap, &inv, &r).unwrap_err();
        assert_eq!(err(req(&[], None, 1)), DataplaneError::NoScope);
        assert_eq!(
            err(req(&["a", "nope"], None, 1)),
            DataplaneError::UnknownNamespace {
                namespace: "nope".into()
            }
        );
        assert_eq!(err(req(&["a"], None, 0)), DataplaneError::Batch);
        let e = err(req(&["a"], Some("canary"), 1));
        assert!(
            matches!(e, DataplaneError::Revision(RevisionError::UnknownTarget { ref name, .. }) if name == "canary"),
            "{e:?}"
        );
        assert_eq!(e.class(), Class::Usage);
        assert!(e.hints()[0].contains("revisions in this cluster: default"));
        assert_eq!(
            DataplaneError::NoScope.hints(),
            ["pass -n NAMESPACE (repeatable) or -A for every namespace"]
        );
        let (snap, inv) = in_place()
            .with(|s| s.add_gap(Source::Pods, "forbidden"))
            .build();
        let e = plan(&snap, &inv, &all(None)).unwrap_err();
        assert!(
            matches!(&e, DataplaneError::Unreadable(u) if u.gap.source == Source::Pods && u.gap.reason == "forbidden"),
            "{e:?}"
        );
        assert_eq!(e.class(), Class::Failed);
        assert_eq!(e.to_string(), "cannot read pods: forbidden");
    }

    #[test]
    fn changes_are_labels_then_batches_waiting_for_the_expected_proxy() {
        let (snap, inv) = canary()
            .namespace("shop", &[ENABLED])
            .pod("shop", "web-1", Some("default"), "1.29.6")
            .pod("shop", "api-1", Some("default"), "1.29.6")
            .pod("shop", "cart-1", Some("default"), "1.29.6")
            .build();
        let p = plan(&snap, &inv, &req(&["shop"], Some("canary"), 2)).unwrap();
        assert_eq!(p.batches(), 2);
        let c = p.changes();
        let names: Vec<&str> = c.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["namespace labels", "batch 1 of 2", "batch 2 of 2"]);
        assert_eq!(
            c.phases[0].ops,
            [Op::Label {
                target: ObjRef::new("v1", "Namespace", None, "shop"),
                labels: p.relabel[0].labels.clone(),
            }]
        );
        assert_eq!(
            c.phases[1].ops,
            [
                Op::Restart {
                    target: deploy("shop", "Deployment", "api")
                },
                Op::Restart {
                    target: deploy("shop", "Deployment", "cart")
                },
            ]
        );
        assert_eq!(c.phases[2].waits.len(), 1);
        assert!(c.phases[1..].iter().flat_map(|p| &p.waits).all(|w| matches!(
            w,
            Wait::Rollout { expect, .. }
                if expect.images.is_empty() && expect.proxy == Some(proxy("1-30-3", "1.30.3"))
        )));
        assert!(c.takeover.is_empty());
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["withoutProxy"], 0);
        assert_eq!(json["target"]["version"], "1.30.3");
        assert_eq!(json["restart"][0]["expected"]["revision"], "1-30-3");
    }

    #[test]
    fn pods_a_restart_would_break_are_stuck_not_restarted() {
        let mut template = PodObject::from(owned_pod(
            "ingress",
            "gw-x",
            Some("default"),
            "1.29.6",
            Some(("DaemonSet", "gw")),
        ));
        template.metadata.annotations = None;
        let template = PodInfo::from(template);
        let mut dup = injector("default", None);
        dup.metadata.name = Some("istio-sidecar-injector-copy".into());
        let (snap, inv) = canary()
            .namespace("old", &[("istio.io/rev", "1-28-0")])
            .namespace("twice", &[ENABLED])
            .namespace("ingress", &[])
            .pod("old", "web-1", Some("1-28-0"), "1.28.0")
            .pod("twice", "api-1", Some("default"), "1.28.0")
            .push_pod(template)
            .webhook(dup)
            .build();
        let p = plan(&snap, &inv, &all(None)).unwrap();
        assert!(p.restart.is_empty(), "{:?}", p.restart);
        let stuck: Vec<&str> = p.stuck.iter().map(|s| s.pod.as_str()).collect();
        assert_eq!(stuck, ["ingress/gw-x", "old/web-1", "twice/api-1"]);
        assert_eq!(p.stuck[0].why, TEMPLATE_PROXY);
        assert!(
            p.stuck[1].why.starts_with("no injector matches"),
            "{}",
            p.stuck[1].why
        );
        assert!(
            p.stuck[2].why.starts_with("2 injectors match it"),
            "{}",
            p.stuck[2].why
        );
        assert_eq!((p.current, p.without_proxy), (0, 0));
    }
}
