//! Version skew in ambient mode (ISTIO.md §6.2, §8.4): istio-cni and ztunnel are istiod's
//! version or one minor older, never newer; waypoints are proxies of their istiod. For a
//! target, the cluster as the plan leaves it: the agents the manifest holds at their new
//! version, the others as they run — and how ztunnel's update strategy rolls the nodes.

use super::{CAT, Context, Finding, eligible_nodes};
use crate::{
    ambient::{AgentKind, NodeAgent, PlannedAgent, Rollout},
    checks::{Category, Target, TargetMode, obj},
    snapshot::Source,
    version::{IstioVersion, ProxySkew, proxy_skew},
};

const SKEW: Category = Category::VersionSkew;

/// Each istio-cni and ztunnel against the istiod it serves, as they run now.
pub fn live(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "skew.ambient";
    if let Some(f) = ctx.missing(ID, SKEW, &[Source::DaemonSets, Source::Deployments]) {
        return vec![f];
    }
    let out: Vec<Finding> = ctx
        .inv
        .ambient
        .agents
        .iter()
        .map(|a| live_one(ctx, a))
        .collect();
    if out.is_empty() {
        return vec![Finding::ok(ID, SKEW, "no istio-cni or ztunnel DaemonSets")];
    }
    out
}

fn live_one(ctx: &Context<'_>, a: &NodeAgent) -> Finding {
    const ID: &str = "skew.ambient";
    let o = a.object();
    let rev = a.istiod_revision();
    let cp = ctx
        .inv
        .revision_version(rev)
        .map(IstioVersion::without_variant);
    let (Some(v), Some(cp)) = (a.version.as_ref(), cp.as_ref()) else {
        if ctx.inv.control_plane(rev).is_none() {
            return Finding::skipped(
                ID,
                SKEW,
                format!(
                    "{o}: no istiod of revision `{rev}` to compare with (see ambient.ztunnel-istiod)"
                ),
            );
        }
        return Finding::warning(
            ID,
            SKEW,
            format!("{o}: its version or its istiod's is unknown (image without a version tag)"),
        )
        .objects([o.clone()]);
    };
    match proxy_skew(v, cp) {
        ProxySkew::Same | ProxySkew::OneBehind => {
            Finding::ok(ID, SKEW, format!("{o} {v} fits istiod `{rev}` {cp}"))
        }
        ProxySkew::Newer => Finding::error(ID, SKEW, format!("{o} runs {v}, newer than istiod `{rev}` ({cp}): it may only be istiod's version or one minor older"))
            .objects([o.clone()])
            .hint(format!("take {} down to {} (kubectl mesh upgrade -f a manifest of it at that version), or upgrade istiod first", a.kind.name(), cp.minor_string())),
        ProxySkew::TooOld { minors } => Finding::error(ID, SKEW, format!("{o} runs {v}, {minors} minors behind istiod `{rev}` ({cp})"))
            .objects([o.clone()])
            .hint(format!("upgrade {} to {} (kubectl mesh upgrade -f a manifest of it)", a.kind.name(), cp.minor_string())),
    }
}

/// Each waypoint's proxies against its istiod.
pub fn waypoints(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "skew.waypoints";
    let sources = [Source::Gateways, Source::Pods, Source::Deployments];
    if let Some(f) = ctx.missing(ID, SKEW, &sources) {
        return vec![f];
    }
    let mut out = Vec::new();
    let mut fine = 0;
    for w in &ctx.inv.ambient.waypoints {
        let g = obj("Gateway", &w.namespace, &w.name);
        let Some((rev, cp)) = w
            .revision
            .as_deref()
            .and_then(|r| Some((r, ctx.inv.revision_version(r)?.without_variant())))
        else {
            continue;
        };
        let cp = &cp;
        let mut bad = false;
        for v in &w.versions {
            let verdict = match proxy_skew(v, cp) {
                ProxySkew::Same | ProxySkew::OneBehind => continue,
                ProxySkew::Newer => format!("runs proxy {v}, newer than its istiod `{rev}` ({cp})"),
                ProxySkew::TooOld { minors } => {
                    format!("runs proxy {v}, {minors} minors behind its istiod `{rev}` ({cp})")
                }
            };
            bad = true;
            out.push(
                Finding::error(ID, SKEW, format!("waypoint {g} {verdict}"))
                    .objects([g.clone()])
                    .hint(format!("restart it so istiod `{rev}` renders it anew: kubectl -n {} rollout restart deployment {}", w.namespace, w.name)),
            );
        }
        fine += usize::from(!bad);
    }
    if out.is_empty() && !ctx.inv.ambient.waypoints.is_empty() {
        out.push(Finding::ok(
            ID,
            SKEW,
            format!("{fine} waypoint(s) within one minor of their istiod"),
        ));
    }
    out
}

/// One agent as the plan leaves it.
struct After<'a> {
    live: Option<&'a NodeAgent>,
    planned: Option<&'a PlannedAgent>,
}

impl After<'_> {
    fn object(&self) -> String {
        match (self.live, self.planned) {
            (Some(l), _) => l.object(),
            (None, Some(p)) => obj("DaemonSet", &p.namespace, &p.name),
            (None, None) => String::new(),
        }
    }

    fn kind(&self) -> AgentKind {
        self.live.map_or_else(
            || self.planned.map_or(AgentKind::Cni, |p| p.kind),
            |l| l.kind,
        )
    }
}

/// Pairs the live agents with the manifest's.
fn agents_after<'a>(ctx: &'a Context<'_>, t: &'a Target) -> Vec<After<'a>> {
    let planned = t.agents.as_deref().unwrap_or_default();
    let mut out: Vec<After<'a>> = ctx
        .inv
        .ambient
        .agents
        .iter()
        .map(|l| After {
            live: Some(l),
            planned: planned
                .iter()
                .find(|p| p.kind == l.kind && p.name == l.name && p.namespace == l.namespace),
        })
        .collect();
    out.extend(
        planned
            .iter()
            .filter(|p| {
                !ctx.inv
                    .ambient
                    .agents
                    .iter()
                    .any(|l| l.kind == p.kind && l.name == p.name && l.namespace == p.namespace)
            })
            .map(|p| After {
                live: None,
                planned: Some(p),
            }),
    );
    out
}

/// For a target: istio-cni and ztunnel as the plan leaves them, against the istiod they serve
/// then — never newer, at most one minor older — and the order Istio requires.
pub fn order(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "skew.ambient-order";
    let Some(t) = ctx.target else {
        return Vec::new();
    };
    let sources = [Source::DaemonSets, Source::Deployments, Source::Services];
    if let Some(f) = ctx.missing(ID, SKEW, &sources) {
        return vec![f];
    }
    agents_after(ctx, t)
        .iter()
        .map(|a| order_one(ctx, t, a))
        .collect()
}

fn order_one(ctx: &Context<'_>, t: &Target, a: &After<'_>) -> Finding {
    const ID: &str = "skew.ambient-order";
    let o = a.object();
    let name = a.kind().name();
    let now = a.live.and_then(|l| l.version.as_ref());
    let serves = a
        .live
        .map_or(t.revision.as_str(), NodeAgent::istiod_revision);
    let serves = if a.planned.is_some() {
        t.revision.as_str()
    } else {
        serves
    };
    let istiod = if serves == t.revision {
        Some(&t.version)
    } else {
        ctx.inv.revision_version(serves)
    };
    let after = a.planned.map_or(now, |p| p.version.as_ref());
    let (Some(v), Some(cp)) = (after, istiod) else {
        return Finding::warning(
            ID,
            SKEW,
            format!(
                "{o}: its version or its istiod's after the {} is unknown",
                t.mode
            ),
        )
        .objects([o.clone()]);
    };
    if let (Some(p), Some(from)) = (a.planned, now)
        && p.version.as_ref().is_some_and(|to| to < from)
    {
        return Finding::ok(
            ID,
            SKEW,
            format!(
                "{o} {from} → {v} with istiod {cp}: a downgrade takes {name} down before istiod, so it is never newer"
            ),
        );
    }
    if let (Some(_), Some(_), TargetMode::Canary) = (a.planned, a.live, t.mode) {
        return Finding::warning(ID, SKEW, format!("{o} moves to revision `{}` ({v}) with this canary: {name} is one per node, not per revision, so moving it moves every ambient namespace at once — there is no canary of {name}", t.revision))
            .objects([o.clone()])
            .hint(format!("to try `{}` on a few namespaces first, leave {name} out of the canary's manifest (--set components.{}.enabled=false) and move it once the canary is trusted", t.revision, if a.kind() == AgentKind::Ztunnel { "ztunnel" } else { "cni" }));
    }
    match proxy_skew(v, cp) {
        ProxySkew::Same | ProxySkew::OneBehind => Finding::ok(ID, SKEW, fits(t, a, serves, v, cp)),
        ProxySkew::Newer if a.planned.is_some() => Finding::error(ID, SKEW, format!("{o} would run {v}, newer than istiod `{serves}` ({cp}): istiod first — istio-cni and ztunnel may never be newer than istiod"))
            .objects([o.clone()])
            .hint(format!("upgrade istiod `{serves}` to {} first (kubectl mesh upgrade -f a manifest with istiod at that version), then apply this one", v.minor_string())),
        ProxySkew::Newer => Finding::error(ID, SKEW, format!("{o} runs {v}, which would be newer than istiod `{serves}` {cp} after this {}: istio-cni and ztunnel may never be newer than istiod", t.mode))
            .objects([o.clone()])
            .hint("take istio-cni and ztunnel down first: include them in the manifest (istioctl manifest generate --set profile=ambient ...) so that kubectl mesh upgrade -f moves them before istiod"),
        ProxySkew::TooOld { minors } => Finding::error(ID, SKEW, format!("{o} runs {v}, which would be {minors} minors behind istiod `{serves}` {cp} after this {}", t.mode))
            .objects([o.clone()])
            .hint(format!("include istio-cni and ztunnel in the manifest (kubectl mesh upgrade -f moves them after istiod), or upgrade them to {} first", cp.minor_string())),
    }
}

fn fits(t: &Target, a: &After<'_>, serves: &str, v: &IstioVersion, cp: &IstioVersion) -> String {
    let o = a.object();
    let name = a.kind().name();
    match (a.planned, a.live.and_then(|l| l.version.as_ref())) {
        (Some(_), Some(from)) if from.cmp(v).is_ne() => format!(
            "{o} {from} → {v} after istiod {cp}: istiod first, then istio-cni, then ztunnel"
        ),
        (Some(_), None) => format!("{o} {v} is installed after istiod {cp}"),
        (Some(_), Some(_)) => format!("{o} stays at {v}, which fits istiod {cp}"),
        (None, _) if serves != t.revision && t.mode == TargetMode::Canary => format!(
            "{o} {v} stays with istiod `{serves}`; {name} is one per node: moving it to `{}` moves every ambient namespace at once",
            t.revision
        ),
        (None, _) if serves != t.revision => format!("{o} {v} stays with istiod `{serves}` {cp}"),
        (None, _) => format!("{o} stays at {v}, which fits istiod {cp}; upgrade it after istiod"),
    }
}

/// For a target: ztunnel's update strategy replaces ztunnel on few nodes at a time (every
/// ambient pod on a node loses its long-lived connections when its ztunnel restarts).
pub fn ztunnel_rollout(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "ambient.ztunnel-rollout";
    let Some(t) = ctx.target else {
        return Vec::new();
    };
    if let Some(f) = ctx.missing(ID, CAT, &[Source::DaemonSets]) {
        return vec![f];
    }
    agents_after(ctx, t)
        .iter()
        .filter(|a| a.kind() == AgentKind::Ztunnel)
        .map(|a| rollout_one(ctx, a))
        .collect()
}

fn rollout_one(ctx: &Context<'_>, a: &After<'_>) -> Finding {
    const ID: &str = "ambient.ztunnel-rollout";
    let o = a.object();
    let rollout: &Rollout = a
        .planned
        .map_or_else(|| &a.live.expect("live or planned").rollout, |p| &p.rollout);
    let source = if a.planned.is_some() {
        "the manifest's"
    } else {
        "its"
    };
    let nodes = a
        .live
        .and_then(|l| l.desired)
        .and_then(|d| usize::try_from(d).ok())
        .filter(|d| *d > 0)
        .or_else(|| eligible_nodes(ctx));
    let moves = a.planned.is_some_and(|p| {
        let now = a.live.and_then(|l| l.version.as_ref());
        now.cmp(&p.version.as_ref()).is_ne()
    });
    if rollout.on_delete() {
        let msg = format!(
            "{o} updates OnDelete ({source} strategy): a changed DaemonSet replaces no pod; each node keeps its ztunnel until its pod is deleted"
        );
        return if moves {
            Finding::warning(ID, CAT, format!("{msg}, so this upgrade does not finish by itself"))
                .objects([o.clone()])
                .hint("after the upgrade, drain the nodes one by one (kubectl drain <node>, delete its ztunnel pod, uncordon)")
        } else {
            Finding::ok(ID, CAT, msg)
        };
    }
    let Some(n) = nodes else {
        return Finding::skipped(
            ID,
            CAT,
            format!("{o}: how many nodes it runs on is unknown (no status, nodes not read)"),
        );
    };
    let at_once = rollout.nodes_at_once(n).unwrap_or(1);
    let how = rollout.describe();
    if at_once > 1 {
        return Finding::warning(ID, CAT, format!("{o} would restart ztunnel on {at_once} of {n} nodes at once ({source} {how}): every ambient pod on them loses its long-lived connections at the same moment"))
            .objects([o.clone()])
            .hint("roll one node at a time: set ztunnel's updateStrategy to maxSurge: 1, maxUnavailable: 0 (istioctl's default) in the manifest");
    }
    Finding::ok(
        ID,
        CAT,
        format!("{o} restarts one node at a time ({source} {how}, {n} nodes)"),
    )
}
