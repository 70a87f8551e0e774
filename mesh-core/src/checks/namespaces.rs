//! Namespace checks: conflicting injection labels, labels naming no revision or tag, pods not
//! restarted since their namespace's revision changed, and un-injected pods where injection is on.

use std::collections::BTreeMap;

use super::{Category, Context, Finding};
use crate::{
    inventory::{INJECTION_LABEL, Injection, REV_LABEL},
    snapshot::Source,
};

const CAT: Category = Category::Namespaces;
const SYSTEM: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// No namespace carries both `istio-injection` and `istio.io/rev`.
pub fn conflicting_labels(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "namespaces.conflicting-labels";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Namespaces]) {
        return vec![f];
    }
    let both: Vec<_> = ctx
        .inv
        .namespaces
        .iter()
        .filter(|n| n.injection_label.is_some() && n.rev_label.is_some())
        .collect();
    if both.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            format!("no namespace has both `{INJECTION_LABEL}` and `{REV_LABEL}`"),
        )];
    }
    vec![Finding::warning(
        ID,
        CAT,
        format!("{} namespace(s) have both `{INJECTION_LABEL}` and `{REV_LABEL}`; `{INJECTION_LABEL}` wins", both.len()),
    )
    .objects(both.iter().map(|n| format!("Namespace/{}", n.name)))
    .hint(format!("keep one: kubectl label namespace <ns> {INJECTION_LABEL}-"))]
}

/// Namespace labels name a revision or tag that exists.
pub fn dangling_revisions(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "namespaces.dangling-revision";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Namespaces, Source::MutatingWebhooks]) {
        return vec![f];
    }
    let dangling: Vec<(String, String)> = ctx
        .inv
        .namespaces
        .iter()
        .filter_map(|n| match &n.injection {
            Injection::Dangling { label } => Some((n.name.clone(), label.clone())),
            _ => None,
        })
        .collect();
    if dangling.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            "every injection label names an installed revision or tag",
        )];
    }
    let revisions: Vec<String> = ctx.inv.revisions().into_iter().collect();
    let tags: Vec<String> = ctx.inv.tags.iter().map(|t| t.name.clone()).collect();
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    vec![Finding::error(
        ID,
        CAT,
        format!("{} namespace(s) ask for injection that no webhook provides; new pods there start without a proxy", dangling.len()),
    )
    .objects(dangling.iter().map(|(ns, l)| format!("Namespace/{ns} ({l})")))
    .hint(format!("label them with an installed revision ({}) or tag ({})", list(&revisions), list(&tags)))]
}

/// Pods run the proxy of the revision (and version) their namespace selects now.
pub fn stale_pods(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "namespaces.stale-pods";
    if let Some(f) = ctx.missing(
        ID,
        CAT,
        &[Source::Pods, Source::Namespaces, Source::MutatingWebhooks],
    ) {
        return vec![f];
    }
    let selects: BTreeMap<&str, &str> = ctx
        .inv
        .namespaces
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.injection.revision()?)))
        .collect();
    let mut per_ns: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for p in &ctx.inv.proxies {
        let Some(want) = selects.get(p.namespace.as_str()) else {
            continue;
        };
        let want_version = ctx.inv.revision_version(want);
        let stale_rev = p.revision.as_deref() != Some(*want);
        let stale_version = !stale_rev
            && p.version.is_some()
            && want_version.is_some_and(|v| Some(v) != p.version.as_ref());
        if stale_rev || stale_version {
            per_ns.entry(p.namespace.as_str()).or_insert((0, want)).0 += 1;
        }
    }
    if per_ns.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            "every injected pod runs the proxy its namespace selects",
        )];
    }
    let total: usize = per_ns.values().map(|(n, _)| n).sum();
    vec![Finding::warning(
        ID,
        CAT,
        format!("{total} pod(s) in {} namespace(s) were injected before their revision or version changed", per_ns.len()),
    )
    .objects(per_ns.iter().map(|(ns, (n, rev))| format!("Namespace/{ns}: {n} pod(s), selects `{rev}`")))
    .hint("restart them: kubectl rollout restart deployment -n <namespace>")]
}

/// Pods in namespaces with injection on carry a proxy.
pub fn uninjected_pods(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "namespaces.uninjected-pods";
    if let Some(f) = ctx.missing(
        ID,
        CAT,
        &[Source::Pods, Source::Namespaces, Source::MutatingWebhooks],
    ) {
        return vec![f];
    }
    let injected: BTreeMap<&str, &str> = ctx
        .inv
        .namespaces
        .iter()
        .filter(|n| !SYSTEM.contains(&n.name.as_str()))
        .filter_map(|n| Some((n.name.as_str(), n.injection.revision()?)))
        .collect();
    let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in &ctx.snap.pods {
        let opted_out = pod.label("sidecar.istio.io/inject") == Some("false")
            || pod.annotation("sidecar.istio.io/inject") == Some("false");
        if injected.contains_key(pod.namespace())
            && !pod.is_finished()
            && !opted_out
            && pod.proxy_image().is_none()
        {
            *per_ns.entry(pod.namespace()).or_default() += 1;
        }
    }
    if per_ns.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            "every pod in an injection-enabled namespace has a proxy",
        )];
    }
    vec![Finding::warning(
        ID,
        CAT,
        format!("{} pod(s) in injection-enabled namespaces have no proxy (created before the label, or injection failed)", per_ns.values().sum::<usize>()),
    )
    .objects(per_ns.iter().map(|(ns, n)| format!("Namespace/{ns}: {n} pod(s)")))
    .hint("restart them, or label them sidecar.istio.io/inject=false if intended")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{checks::Outcome, testkit::Snap};

    fn run(f: fn(&Context<'_>) -> Vec<Finding>, s: Snap) -> Vec<Finding> {
        let (snap, inv) = s.build();
        f(&Context {
            snap: &snap,
            inv: &inv,
            target: None,
            canary_requested: false,
            knowledge: Default::default(),
        })
    }

    fn base() -> Snap {
        Snap::new()
            .control_plane("default", "1.29.6")
            .control_plane("1-30-3", "1.30.3")
            .tag("prod", "1-30-3")
    }

    #[test]
    fn conflicting_labels_ok_fail_missing() {
        assert_eq!(
            run(
                conflicting_labels,
                base().namespace("a", &[("istio.io/rev", "prod")])
            )[0]
            .result,
            Outcome::Ok
        );
        let both = base().namespace(
            "a",
            &[("istio.io/rev", "prod"), ("istio-injection", "enabled")],
        );
        assert_eq!(run(conflicting_labels, both)[0].result, Outcome::Warning);
        let gap = Snap::new().with(|s| s.add_gap(Source::Namespaces, "forbidden"));
        assert_eq!(run(conflicting_labels, gap)[0].result, Outcome::Skipped);
    }

    #[test]
    fn dangling_ok_fail_missing() {
        assert_eq!(
            run(
                dangling_revisions,
                base().namespace("a", &[("istio.io/rev", "prod")])
            )[0]
            .result,
            Outcome::Ok
        );
        let f = run(
            dangling_revisions,
            base().namespace("a", &[("istio.io/rev", "canary")]),
        );
        assert_eq!(f[0].result, Outcome::Error);
        assert_eq!(f[0].objects, ["Namespace/a (istio.io/rev=canary)"]);
        assert!(f[0].hint.as_deref().unwrap().contains("prod"));
        let gap = Snap::new().with(|s| s.add_gap(Source::MutatingWebhooks, "forbidden"));
        assert_eq!(run(dangling_revisions, gap)[0].result, Outcome::Skipped);
    }

    #[test]
    fn stale_pods_after_a_tag_moves_or_an_in_place_upgrade() {
        let fresh = base().namespace("a", &[("istio.io/rev", "prod")]).pod(
            "a",
            "web-1",
            Some("1-30-3"),
            "1.30.3",
        );
        assert_eq!(run(stale_pods, fresh)[0].result, Outcome::Ok);
        let moved = base().namespace("a", &[("istio.io/rev", "prod")]).pod(
            "a",
            "web-1",
            Some("default"),
            "1.29.6",
        );
        let f = run(stale_pods, moved);
        assert_eq!(f[0].result, Outcome::Warning);
        assert_eq!(f[0].objects, ["Namespace/a: 1 pod(s), selects `1-30-3`"]);
        let upgraded = base()
            .namespace("b", &[("istio-injection", "enabled")])
            .pod("b", "web-1", Some("default"), "1.28.0");
        assert_eq!(run(stale_pods, upgraded)[0].result, Outcome::Warning);
        let gap = Snap::new().with(|s| s.add_gap(Source::Pods, "forbidden"));
        assert_eq!(run(stale_pods, gap)[0].result, Outcome::Skipped);
    }

    #[test]
    fn uninjected_pods_ok_fail_missing() {
        let ok = base()
            .namespace("a", &[("istio-injection", "enabled")])
            .pod("a", "web-1", Some("default"), "1.29.6");
        assert_eq!(run(uninjected_pods, ok)[0].result, Outcome::Ok);
        let bare = base()
            .namespace("a", &[("istio-injection", "enabled")])
            .pod("a", "web-1", None, "");
        assert_eq!(run(uninjected_pods, bare)[0].result, Outcome::Warning);
        let off = base().namespace("a", &[]).pod("a", "web-1", None, "");
        assert_eq!(run(uninjected_pods, off)[0].result, Outcome::Ok);
        let gap = Snap::new().with(|s| s.add_gap(Source::Pods, "forbidden"));
        assert_eq!(run(uninjected_pods, gap)[0].result, Outcome::Skipped);
    }
}
