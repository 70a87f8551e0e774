//! Control-plane checks: presence, health, availability (replicas and PDB), revision and tag
//! names, and EnvoyFilters the upgrade puts at risk.

use super::{Category, Context, Finding, TargetMode, obj};
use crate::{
    inventory::DEFAULT_REVISION,
    selector,
    snapshot::{Source, labels, name, namespace},
};

const CAT: Category = Category::ControlPlane;

/// At least one control plane is installed (or the target is a fresh install).
pub fn inventory_present(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "control-plane.present";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Deployments]) {
        return vec![f];
    }
    let cps = &ctx.inv.control_planes;
    let remote = crate::fleet::facts::remote_revisions(ctx.snap, ctx.inv);
    if cps.is_empty() && !remote.is_empty() {
        let revs = remote.into_iter().collect::<Vec<_>>().join(", ");
        return vec![Finding::ok(
            ID,
            CAT,
            format!(
                "no istiod here: a remote cluster, injected for revision(s) {revs} by an istiod in another cluster (judge both: `kubectl mesh precheck --context <this> --context <primary>`)"
            ),
        )];
    }
    if cps.is_empty() {
        let fresh = ctx.target.is_some_and(|t| t.mode == TargetMode::Fresh);
        let msg = "no istiod control plane found in any namespace".to_owned();
        return vec![if fresh {
            Finding::ok(ID, CAT, format!("{msg}; the target is a fresh install"))
        } else {
            Finding::warning(ID, CAT, msg).hint("install Istio first, or check the context")
        }];
    }
    let list = cps
        .iter()
        .map(|c| {
            let v = c
                .version
                .as_ref()
                .map_or("unknown version".into(), ToString::to_string);
            format!("`{}` ({v}, {})", c.revision, c.install.short())
        })
        .collect::<Vec<_>>()
        .join(", ");
    vec![Finding::ok(
        ID,
        CAT,
        format!("{} control plane(s): {list}", cps.len()),
    )]
}

/// Every istiod has its replicas ready.
pub fn health(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "control-plane.health";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Deployments]) {
        return vec![f];
    }
    ctx.inv
        .control_planes
        .iter()
        .map(|c| {
            let o = obj("Deployment", &c.namespace, &c.deployment);
            let what = format!(
                "revision `{}`: {}/{} istiod replicas ready",
                c.revision, c.ready, c.replicas
            );
            if c.ready == 0 {
                Finding::error(
                    ID,
                    CAT,
                    format!("{what}; injection and config push are down"),
                )
                .objects([o.clone()])
                .hint(format!(
                    "kubectl -n {} describe deployment {}",
                    c.namespace, c.deployment
                ))
            } else if c.ready < c.replicas {
                Finding::warning(ID, CAT, what)
                    .objects([o.clone()])
                    .hint("wait for the rollout, or look at the pending pods")
            } else {
                Finding::ok(ID, CAT, what)
            }
        })
        .collect()
}

/// istiod runs at least 2 replicas and has a PodDisruptionBudget. Without the
/// PodDisruptionBudgets the replica count is still judged; only the budget is `skipped`.
pub fn availability(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "control-plane.availability";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Deployments]) {
        return vec![f];
    }
    let pdbs_unread = ctx.missing(ID, CAT, &[Source::Pdbs]);
    ctx.snap
        .deployments
        .iter()
        .filter(|d| crate::snapshot::label(&d.metadata, "app") == Some("istiod"))
        .map(|d| {
            let ns = namespace(&d.metadata);
            let o = obj("Deployment", ns, name(&d.metadata));
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            if replicas < 2 {
                return Finding::warning(
                    ID,
                    CAT,
                    format!("{o} runs {replicas} replica; a node drain or a failed rollout stops injection"),
                )
                .objects([o.clone()])
                .hint("set 2 or more replicas (autoscaleMin: 2) before upgrading");
            }
            if let Some(f) = &pdbs_unread {
                return Finding::skipped(
                    ID,
                    CAT,
                    format!("{o} runs {replicas} replicas; its PodDisruptionBudget is not judged: {}", f.message),
                );
            }
            if has_pdb(ctx, d) {
                Finding::ok(ID, CAT, format!("{o}: {replicas} replicas with a PodDisruptionBudget"))
            } else {
                Finding::warning(ID, CAT, format!("{o} has no PodDisruptionBudget"))
                    .objects([o.clone()])
                    .hint("add a PodDisruptionBudget with minAvailable: 1")
            }
        })
        .collect()
}

/// Whether a PodDisruptionBudget of the Deployment's namespace selects its pods.
fn has_pdb(ctx: &Context<'_>, d: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    let ns = namespace(&d.metadata);
    let pod_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .map(labels)
        .cloned()
        .unwrap_or_default();
    ctx.snap.pdbs.iter().any(|p| {
        namespace(&p.metadata) == ns
            && p.spec.as_ref().is_some_and(|s| {
                s.selector.is_some() && selector::matches(s.selector.as_ref(), &pod_labels)
            })
    })
}

/// Tag and revision names do not collide, and an in-place target matches how it is installed.
pub fn names(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "names.collision";
    let cat = Category::Namespaces;
    if let Some(f) = ctx.missing(ID, cat, &[Source::Deployments, Source::MutatingWebhooks]) {
        return vec![f];
    }
    let revisions = ctx.inv.revisions();
    let mut out: Vec<Finding> = ctx
        .inv
        .tags
        .iter()
        .filter(|t| revisions.contains(&t.name) && t.name != DEFAULT_REVISION)
        .map(|t| {
            Finding::error(
                ID,
                cat,
                format!("tag `{}` has the name of an existing revision", t.name),
            )
            .objects([format!("MutatingWebhookConfiguration/{}", t.webhook)])
            .hint("remove the tag or the revision; namespaces labelled with the name are ambiguous")
        })
        .collect();
    if let Some(t) = ctx.target {
        if t.mode == TargetMode::Canary && ctx.inv.tag(&t.revision).is_some() {
            out.push(
                Finding::error(
                    ID,
                    cat,
                    format!("the target revision `{}` is already a tag name", t.revision),
                )
                .hint("pick another revision name (e.g. the version: 1-30-3)"),
            );
        }
        if t.mode == TargetMode::Canary && !ctx.canary_requested {
            let existing: Vec<_> = revisions.iter().map(|r| format!("`{r}`")).collect();
            out.push(
                Finding::warning(
                    "names.in-place-on-revisioned",
                    cat,
                    format!(
                        "revision `{}` is not installed, so this is not an in-place upgrade; installed: {}",
                        t.revision,
                        existing.join(", ")
                    ),
                )
                .hint("pass --canary to install a new revision beside the old one, or target an installed revision"),
            );
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(ID, cat, "revision and tag names are distinct"));
    }
    out
}

/// EnvoyFilters patch Envoy internals and often break across upgrades.
pub fn envoy_filters(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "config.envoyfilters";
    let cat = Category::Configuration;
    if let Some(f) = ctx.missing(ID, cat, &[Source::EnvoyFilters]) {
        return vec![f];
    }
    let filters: Vec<String> = ctx
        .snap
        .envoy_filters
        .iter()
        .map(|e| obj("EnvoyFilter", namespace(&e.metadata), name(&e.metadata)))
        .collect();
    match (filters.is_empty(), ctx.target) {
        (true, _) => vec![Finding::ok(ID, cat, "no EnvoyFilters")],
        (false, None) => vec![
            Finding::ok(ID, cat, format!("{} EnvoyFilter(s) in use", filters.len()))
                .objects(filters),
        ],
        (false, Some(t)) => vec![
            Finding::warning(
                ID,
                cat,
                format!(
                    "{} EnvoyFilter(s) patch Envoy internals that may change in Istio {}",
                    filters.len(),
                    t.version
                ),
            )
            .objects(filters)
            .hint("test them against the new proxy on a canary revision before moving workloads"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checks::{Outcome, Target},
        snapshot::MetaOnly,
        testkit::{Snap, meta},
        version::IstioVersion,
    };
    use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};

    fn run(
        f: fn(&Context<'_>) -> Vec<Finding>,
        s: Snap,
        target: Option<&Target>,
        canary: bool,
    ) -> Vec<Finding> {
        let (snap, inv) = s.build();
        f(&Context {
            snap: &snap,
            inv: &inv,
            target,
            canary_requested: canary,
            knowledge: Default::default(),
        })
    }

    fn target(inv_snap: &Snap, v: &str, canary: bool) -> Target {
        let inv = crate::inventory::Inventory::from_snapshot(&inv_snap.0);
        Target::resolve(&inv, IstioVersion::parse(v).unwrap(), None, canary)
    }

    #[test]
    fn present_ok_empty_fresh_missing() {
        let one = run(
            inventory_present,
            Snap::new().control_plane("1-29-6", "1.29.6"),
            None,
            false,
        );
        assert_eq!(one[0].result, Outcome::Ok);
        assert!(
            one[0].message.contains("`1-29-6` (1.29.6, istioctl)"),
            "{}",
            one[0].message
        );
        assert_eq!(
            run(inventory_present, Snap::new(), None, false)[0].result,
            Outcome::Warning
        );
        let t = target(&Snap::new(), "1.30.3", false);
        assert_eq!(
            run(inventory_present, Snap::new(), Some(&t), false)[0].result,
            Outcome::Ok,
            "fresh install"
        );
        let gap = Snap::new().with(|s| s.add_gap(Source::Deployments, "forbidden"));
        assert_eq!(
            run(inventory_present, gap, None, false)[0].result,
            Outcome::Skipped
        );
    }

    #[test]
    fn health_ok_degraded_down_missing() {
        let ok = run(
            health,
            Snap::new().control_plane("default", "1.29.6"),
            None,
            false,
        );
        assert_eq!(ok[0].result, Outcome::Ok);
        let degraded = Snap::new().with(|s| {
            s.deployments
                .push(crate::testkit::istiod("a", "1.29.6", 2, 1))
        });
        assert_eq!(
            run(health, degraded, None, false)[0].result,
            Outcome::Warning
        );
        let down = Snap::new().with(|s| {
            s.deployments
                .push(crate::testkit::istiod("a", "1.29.6", 1, 0))
        });
        let f = run(health, down, None, false);
        assert_eq!(f[0].result, Outcome::Error);
        assert_eq!(f[0].objects, ["Deployment/istio-system/istiod-a"]);
        let gap = Snap::new().with(|s| s.add_gap(Source::Deployments, "forbidden"));
        assert_eq!(run(health, gap, None, false)[0].result, Outcome::Skipped);
    }

    #[test]
    fn availability_wants_two_replicas_and_a_pdb() {
        let no_pdb = Snap::new().control_plane("default", "1.29.6");
        let f = run(availability, no_pdb, None, false);
        assert_eq!(f[0].result, Outcome::Warning);
        assert!(f[0].message.contains("PodDisruptionBudget"));
        let with_pdb = Snap::new().control_plane("default", "1.29.6").with(|s| {
            let d = &mut s.deployments[0];
            d.spec.as_mut().unwrap().template.metadata = Some(meta("", "", &[("app", "istiod")]));
            s.pdbs.push(PodDisruptionBudget {
                metadata: meta("istio-system", "istiod", &[]),
                spec: Some(PodDisruptionBudgetSpec {
                    selector: Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                            match_labels: Some(crate::testkit::labels(&[("app", "istiod")])),
                            match_expressions: None,
                        },
                    ),
                    ..Default::default()
                }),
                status: None,
            });
        });
        assert_eq!(
            run(availability, with_pdb, None, false)[0].result,
            Outcome::Ok
        );
        // Without the PodDisruptionBudgets only the budget is unknown: two replicas are not
        // judged, one replica is still a warning.
        let gap = Snap::new()
            .control_plane("default", "1.29.6")
            .with(|s| s.add_gap(Source::Pdbs, "forbidden"));
        let f = run(availability, gap, None, false);
        assert_eq!(f[0].result, Outcome::Skipped, "{f:#?}");
        assert!(
            f[0].message.contains("runs 2 replicas; its PodDisruptionBudget is not judged: cannot read poddisruptionbudgets: forbidden"),
            "{}",
            f[0].message
        );
        let single = Snap::new().with(|s| {
            s.deployments
                .push(crate::testkit::istiod("default", "1.29.6", 1, 1));
            s.add_gap(Source::Pdbs, "forbidden");
        });
        let f = run(availability, single, None, false);
        assert_eq!(f[0].result, Outcome::Warning, "{f:#?}");
        assert!(f[0].message.contains("runs 1 replica"), "{}", f[0].message);
    }

    #[test]
    fn names_catch_collisions_and_unasked_canaries() {
        let clash = Snap::new()
            .control_plane("1-29-6", "1.29.6")
            .tag("1-29-6", "1-29-6");
        assert_eq!(run(names, clash, None, false)[0].result, Outcome::Error);
        let revisioned = Snap::new().control_plane("1-29-6", "1.29.6");
        let t = target(&revisioned, "1.30.3", false);
        let f = run(names, revisioned, Some(&t), false);
        assert_eq!(f[0].id, "names.in-place-on-revisioned");
        let fine = Snap::new().control_plane("default", "1.29.6");
        let t = target(&fine, "1.30.3", false);
        assert_eq!(run(names, fine, Some(&t), false)[0].result, Outcome::Ok);
    }

    #[test]
    fn envoy_filters_warn_only_with_a_target() {
        let ef = || {
            Snap::new().control_plane("default", "1.29.6").with(|s| {
                s.envoy_filters.push(MetaOnly {
                    metadata: meta("prod", "lua", &[]),
                });
            })
        };
        assert_eq!(run(envoy_filters, ef(), None, false)[0].result, Outcome::Ok);
        let t = target(&ef(), "1.30.3", false);
        let f = run(envoy_filters, ef(), Some(&t), false);
        assert_eq!(f[0].result, Outcome::Warning);
        assert_eq!(f[0].objects, ["EnvoyFilter/prod/lua"]);
        let gap = Snap::new().with(|s| s.add_gap(Source::EnvoyFilters, "forbidden"));
        assert_eq!(
            run(envoy_filters, gap, None, false)[0].result,
            Outcome::Skipped
        );
    }
}
