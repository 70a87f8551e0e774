//! Version skew: control plane moves (in place ≤ 1 minor, canary ≤ 2 up) and proxies versus
//! the control plane that serves them (ISTIO.md §6.2). ztunnel, istio-cni and waypoints are
//! judged with ambient mode (`checks/ambient/skew.rs`).

use std::collections::BTreeMap;

use super::{Category, Context, Finding, TargetMode};
use crate::{
    inventory::Proxy,
    snapshot::Source,
    version::{IstioVersion, ProxySkew, Skew, UpgradeMode, control_plane_skew, proxy_skew},
};

const CAT: Category = Category::VersionSkew;
/// How many objects a finding lists before summarising.
const LIST_MAX: usize = 10;

/// The first [`LIST_MAX`] items and a count of the rest (shared with the release checks).
pub(super) fn short_list(mut items: Vec<String>) -> Vec<String> {
    if items.len() > LIST_MAX {
        let more = items.len() - LIST_MAX;
        items.truncate(LIST_MAX);
        items.push(format!("... and {more} more"));
    }
    items
}

/// For a target from a manifest: the gateway proxies (`proxyv2` images) it applies against the
/// target istiod. A whole manifest holds them at istiod's version; a manifest of gateways alone
/// is judged against the installed istiod, which stays: never newer, at most one minor older.
/// Says nothing when every proxy is at istiod's version.
pub fn manifest_proxies(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "skew.manifest-proxies";
    let Some(t) = ctx.target else {
        return Vec::new();
    };
    let istiod = t.version.without_variant();
    let mut out = Vec::new();
    for image in t.images.iter().filter(|i| {
        i.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("proxyv2:"))
    }) {
        let Some(v) = crate::version::image_release(image).filter(|v| *v != istiod) else {
            continue;
        };
        let rev = &t.revision;
        out.push(match proxy_skew(&v, &istiod) {
            ProxySkew::Same | ProxySkew::OneBehind => Finding::ok(
                ID,
                CAT,
                format!("the manifest's proxy {image} fits istiod `{rev}` {istiod}"),
            ),
            ProxySkew::Newer => Finding::error(
                ID,
                CAT,
                format!("the manifest's proxy {image} is newer than istiod `{rev}` ({istiod}): istiod first — a proxy may never be newer than its control plane"),
            )
            .hint(format!("upgrade istiod `{rev}` to {} first (kubectl mesh upgrade -f a manifest with istiod at that version), then apply this one", v.minor_string())),
            ProxySkew::TooOld { minors } => Finding::error(
                ID,
                CAT,
                format!("the manifest's proxy {image} is {minors} minors behind istiod `{rev}` ({istiod})"),
            )
            .hint(format!("generate the manifest at {} (istioctl manifest generate --set tag=...)", istiod.minor_string())),
        });
    }
    out
}

/// The target is within the minors the mode allows from every control plane it replaces.
pub fn control_plane(ctx: &Context<'_>) -> Vec<Finding> {
    let Some(t) = ctx.target else {
        return vec![Finding::ok(
            "skew.control-plane",
            CAT,
            "no target version given",
        )];
    };
    let id = match t.mode {
        TargetMode::InPlace => "skew.in-place",
        TargetMode::Canary => "skew.canary",
        TargetMode::Fresh => "skew.control-plane",
    };
    if let Some(f) = ctx.missing(id, CAT, &[Source::Deployments]) {
        return vec![f];
    }
    match t.mode {
        TargetMode::Fresh => vec![Finding::ok(
            "skew.control-plane",
            CAT,
            "fresh install: no skew",
        )],
        TargetMode::InPlace => in_place(ctx, &t.version, &t.revision),
        TargetMode::Canary => canary(ctx, &t.version),
    }
}

fn in_place(ctx: &Context<'_>, to: &IstioVersion, revision: &str) -> Vec<Finding> {
    const ID: &str = "skew.in-place";
    let Some(from) = ctx.inv.revision_version(revision) else {
        return vec![Finding::warning(ID, CAT, format!("the version of revision `{revision}` is unknown (istiod image has no version tag)"))
            .hint("check the istiod image; skew cannot be judged")];
    };
    let mut out = vec![judge(ID, from, to, UpgradeMode::InPlace, revision)];
    out.extend(proxies_after(ctx, to, revision));
    out
}

fn canary(ctx: &Context<'_>, to: &IstioVersion) -> Vec<Finding> {
    const ID: &str = "skew.canary";
    let out: Vec<Finding> = ctx
        .inv
        .control_planes
        .iter()
        .filter_map(|c| {
            Some(judge(
                ID,
                c.version.as_ref()?,
                to,
                UpgradeMode::Canary,
                &c.revision,
            ))
        })
        .collect();
    if out.is_empty() {
        return vec![
            Finding::warning(ID, CAT, "no installed control plane has a known version")
                .hint("skew cannot be judged"),
        ];
    }
    out
}

fn judge(
    id: &'static str,
    from: &IstioVersion,
    to: &IstioVersion,
    mode: UpgradeMode,
    rev: &str,
) -> Finding {
    let how = match mode {
        UpgradeMode::InPlace => "in place",
        UpgradeMode::Canary => "as a canary",
    };
    match control_plane_skew(from, to, mode) {
        Skew::Patch => Finding::ok(
            id,
            CAT,
            format!("`{rev}` {from} → {to} {how}: patch change"),
        ),
        Skew::Allowed(n) if n > 0 => Finding::ok(
            id,
            CAT,
            format!("`{rev}` {from} → {to} {how}: {n} minor up, supported"),
        ),
        Skew::Allowed(n) => Finding::warning(
            id,
            CAT,
            format!("`{rev}` {from} → {to} {how}: downgrade by {} minor", -n),
        )
        .hint(
            "downgrade with the older release's manifest, then restart workloads onto its proxies",
        ),
        Skew::TooFar { minors, limit } => {
            let step = if minors > 0 {
                from.minor() + 1
            } else {
                from.minor() - 1
            };
            Finding::error(
                id,
                CAT,
                format!(
                    "`{rev}` {from} → {to} {how} moves {} minors; Istio supports {} at a time",
                    minors.abs(),
                    limit.abs()
                ),
            )
            .hint(match mode {
                UpgradeMode::InPlace if minors > 0 => format!(
                    "upgrade through 1.{step} first, or install {to} as a canary (up to 2 minors)"
                ),
                _ => format!("go through 1.{step} first"),
            })
        }
    }
}

/// After an in-place move, the revision's proxies stay on their version until restarted.
/// Without the pods they are not judged (`skipped`), never taken for none.
fn proxies_after(ctx: &Context<'_>, to: &IstioVersion, revision: &str) -> Vec<Finding> {
    const ID: &str = "skew.in-place-proxies";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Pods]) {
        return vec![f];
    }
    let mut too_old = Vec::new();
    let mut newer = Vec::new();
    for p in ctx
        .inv
        .proxies
        .iter()
        .filter(|p| p.revision.as_deref() == Some(revision))
    {
        match p.version.as_ref().map(|v| proxy_skew(v, to)) {
            Some(ProxySkew::TooOld { .. }) => too_old.push(pod(p)),
            Some(ProxySkew::Newer) => newer.push(pod(p)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !too_old.is_empty() {
        out.push(
            Finding::error(
                ID,
                CAT,
                format!(
                    "{} proxies of `{revision}` would be 2 or more minors behind {to}",
                    too_old.len()
                ),
            )
            .objects(short_list(too_old))
            .hint(
                "restart these workloads onto the current control plane's proxy before upgrading",
            ),
        );
    }
    if !newer.is_empty() {
        out.push(
            Finding::warning(
                ID,
                CAT,
                format!(
                    "{} proxies of `{revision}` would be newer than {to} until restarted",
                    newer.len()
                ),
            )
            .objects(short_list(newer))
            .hint("restart these workloads right after the downgrade"),
        );
    }
    out
}

fn pod(p: &Proxy) -> String {
    format!("Pod/{}/{}", p.namespace, p.pod)
}

/// Every proxy is at most one minor behind its control plane and never newer.
pub fn data_plane(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "skew.data-plane";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Pods, Source::Deployments]) {
        return vec![f];
    }
    let mut groups: BTreeMap<(String, String), Vec<&Proxy>> = BTreeMap::new();
    for p in &ctx.inv.proxies {
        let rev = p.revision.clone().unwrap_or_default();
        let ver = p
            .version
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        groups.entry((rev, ver)).or_default().push(p);
    }
    let mut out = Vec::new();
    let remote = crate::fleet::facts::remote_revisions(ctx.snap, ctx.inv);
    for ((rev, _), proxies) in &groups {
        if remote.contains(rev) {
            out.push(Finding::skipped(ID, CAT, format!(
                "{} proxies of revision `{rev}` are served by an istiod in another cluster (this is a remote cluster): `fleet.remote-injection` judges them when precheck reads that cluster too",
                proxies.len()
            )));
        } else if let Some(f) = judge_group(ctx, rev, proxies) {
            out.push(f);
        }
    }
    if out.is_empty() {
        let n = ctx.inv.proxies.len();
        out.push(Finding::ok(
            ID,
            CAT,
            format!("{n} proxies are within one minor of their control plane"),
        ));
    }
    out
}

fn judge_group(ctx: &Context<'_>, rev: &str, proxies: &[&Proxy]) -> Option<Finding> {
    const ID: &str = "skew.data-plane";
    let pods = || short_list(proxies.iter().map(|p| pod(p)).collect());
    let n = proxies.len();
    let Some(cp) = ctx.inv.control_plane(rev) else {
        return Some(
            Finding::warning(
                ID,
                CAT,
                format!(
                    "{n} proxies were injected by revision `{rev}`, which has no control plane"
                ),
            )
            .objects(pods())
            .hint("restart them so a running revision injects them; they get no config updates"),
        );
    };
    let (cpv, pv) = (cp.version.as_ref()?, proxies[0].version.as_ref()?);
    match proxy_skew(pv, cpv) {
        ProxySkew::Same | ProxySkew::OneBehind => None,
        ProxySkew::Newer => Some(
            Finding::error(ID, CAT, format!("{n} proxies run {pv}, newer than their control plane `{rev}` ({cpv})"))
                .objects(pods())
                .hint("proxies must never be newer than istiod: upgrade the control plane or restart these pods"),
        ),
        ProxySkew::TooOld { minors } => Some(
            Finding::error(ID, CAT, format!("{n} proxies run {pv}, {minors} minors behind `{rev}` ({cpv})"))
                .objects(pods())
                .hint(format!("restart them: kubectl rollout restart deployment -n {}", proxies[0].namespace)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checks::{Outcome, Target},
        inventory::Inventory,
        testkit::Snap,
    };

    fn run(
        f: fn(&Context<'_>) -> Vec<Finding>,
        s: Snap,
        version: Option<&str>,
        canary: bool,
    ) -> Vec<Finding> {
        let (snap, inv) = s.build();
        let target =
            version.map(|v| Target::resolve(&inv, IstioVersion::parse(v).unwrap(), None, canary));
        f(&Context {
            snap: &snap,
            inv: &inv,
            target: target.as_ref(),
            canary_requested: canary,
            knowledge: Default::default(),
        })
    }

    #[test]
    fn in_place_allows_one_minor_and_refuses_two() {
        let cp = || Snap::new().control_plane("default", "1.28.9");
        assert_eq!(
            run(control_plane, cp(), Some("1.28.10"), false)[0].result,
            Outcome::Ok
        );
        assert_eq!(
            run(control_plane, cp(), Some("1.29.6"), false)[0].result,
            Outcome::Ok
        );
        let far = run(control_plane, cp(), Some("1.30.3"), false);
        assert_eq!(far[0].result, Outcome::Error);
        assert!(far[0].hint.as_deref().unwrap().contains("1.29"), "{far:?}");
        assert_eq!(
            run(control_plane, cp(), Some("1.27.0"), false)[0].result,
            Outcome::Warning
        );
    }

    #[test]
    fn canary_allows_two_minors_up() {
        let cp = || Snap::new().control_plane("default", "1.28.9");
        let f = run(control_plane, cp(), Some("1.30.3"), true);
        assert_eq!((f[0].id, f[0].result), ("skew.canary", Outcome::Ok));
        let f = run(
            control_plane,
            Snap::new().control_plane("default", "1.27.1"),
            Some("1.30.3"),
            true,
        );
        assert_eq!(f[0].result, Outcome::Error);
        let unknown = Snap::new().with(|s| {
            s.deployments
                .push(crate::testkit::istiod("x", "latest", 1, 1))
        });
        assert_eq!(
            run(control_plane, unknown, Some("1.30.3"), true)[0].result,
            Outcome::Warning
        );
    }

    #[test]
    fn in_place_flags_proxies_left_too_far_behind() {
        let s = Snap::new().control_plane("default", "1.29.6").pod(
            "a",
            "web-1",
            Some("default"),
            "1.28.2",
        );
        let f = run(control_plane, s, Some("1.30.3"), false);
        assert!(
            f.iter()
                .any(|f| f.id == "skew.in-place-proxies" && f.result == Outcome::Error),
            "{f:?}"
        );
    }

    #[test]
    fn data_plane_ok_newer_too_old_orphaned_missing() {
        let ok = Snap::new().control_plane("default", "1.30.3").pod(
            "a",
            "web-1",
            Some("default"),
            "1.29.6",
        );
        assert_eq!(run(data_plane, ok, None, false)[0].result, Outcome::Ok);
        let newer = Snap::new().control_plane("default", "1.29.6").pod(
            "a",
            "web-1",
            Some("default"),
            "1.30.3",
        );
        let f = run(data_plane, newer, None, false);
        assert_eq!(f[0].result, Outcome::Error);
        assert_eq!(f[0].objects, ["Pod/a/web-1"]);
        let old = Snap::new().control_plane("default", "1.30.3").pod(
            "a",
            "web-1",
            Some("default"),
            "1.28.0",
        );
        assert_eq!(run(data_plane, old, None, false)[0].result, Outcome::Error);
        let orphan = Snap::new().control_plane("default", "1.30.3").pod(
            "a",
            "web-1",
            Some("gone"),
            "1.30.3",
        );
        assert_eq!(
            run(data_plane, orphan, None, false)[0].result,
            Outcome::Warning
        );
        let gap = Snap::new().with(|s| s.add_gap(Source::Pods, "forbidden"));
        assert_eq!(
            run(data_plane, gap, None, false)[0].result,
            Outcome::Skipped
        );
    }

    #[test]
    fn long_object_lists_are_summarised() {
        let mut s = Snap::new().control_plane("default", "1.30.3");
        for i in 0..15 {
            s = s.pod("a", &format!("web-{i}"), Some("default"), "1.27.0");
        }
        let f = run(data_plane, s, None, false);
        assert_eq!(f[0].objects.len(), LIST_MAX + 1);
        assert!(f[0].message.starts_with("15 proxies"));
        let inv = Inventory::default();
        assert!(inv.proxies.is_empty());
    }
}
