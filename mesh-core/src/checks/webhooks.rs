//! Webhook checks: Istio webhooks pointing at a Service that is gone or has no ready endpoints
//! (with `failurePolicy: Fail` this blocks pod creation or config writes), and injectors whose
//! selectors overlap on one namespace.

use k8s_openapi::api::admissionregistration::v1::ServiceReference;

use super::{Category, Context, Finding};
use crate::{
    inventory::{Injection, is_injector},
    snapshot::{Source, label, name, namespace},
};

const CAT: Category = Category::Webhooks;

/// One webhook's target, wherever it is declared.
struct Hook<'a> {
    config: String,
    webhook: &'a str,
    service: Option<&'a ServiceReference>,
    fail: bool,
    injector: bool,
}

/// The Istio webhooks of the kinds that were read: a snapshot without validating webhook
/// configurations still has its mutating ones judged, and the other way round.
fn hooks<'a>(ctx: &'a Context<'_>) -> Vec<Hook<'a>> {
    let mut out = Vec::new();
    let mutating = ctx.snap.gap(Source::MutatingWebhooks).is_none();
    for m in ctx.snap.mutating_webhooks.iter().filter(|_| mutating) {
        let injector = is_injector(m);
        if !injector && !is_istio(&m.metadata) {
            continue;
        }
        for w in m.webhooks.iter().flatten() {
            if injector && crate::inventory::is_deactivated(w) {
                continue;
            }
            out.push(Hook {
                config: format!("MutatingWebhookConfiguration/{}", name(&m.metadata)),
                webhook: &w.name,
                service: w.client_config.service.as_ref(),
                fail: w.failure_policy.as_deref() != Some("Ignore"),
                injector,
            });
        }
    }
    let validating = ctx.snap.gap(Source::ValidatingWebhooks).is_none();
    for v in ctx
        .snap
        .validating_webhooks
        .iter()
        .filter(|v| validating && is_istio(&v.metadata))
    {
        for w in v.webhooks.iter().flatten() {
            out.push(Hook {
                config: format!("ValidatingWebhookConfiguration/{}", name(&v.metadata)),
                webhook: &w.name,
                service: w.client_config.service.as_ref(),
                fail: w.failure_policy.as_deref() != Some("Ignore"),
                injector: false,
            });
        }
    }
    out
}

fn is_istio(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    label(meta, "istio.io/rev").is_some()
        || label(meta, "app") == Some("istiod")
        || name(meta).starts_with("istio")
}

/// Why a Service cannot answer, if it cannot: it does not exist, or (when the EndpointSlices
/// were read) none of its endpoints is ready.
fn service_problem(ctx: &Context<'_>, svc: &ServiceReference) -> Option<&'static str> {
    let exists = ctx
        .snap
        .services
        .iter()
        .any(|s| name(&s.metadata) == svc.name && namespace(&s.metadata) == svc.namespace);
    if !exists {
        return Some("does not exist");
    }
    if ctx.snap.gap(Source::EndpointSlices).is_some() {
        return None;
    }
    let ready = ctx.snap.endpoint_slices.iter().any(|e| {
        label(&e.metadata, "kubernetes.io/service-name") == Some(svc.name.as_str())
            && namespace(&e.metadata) == svc.namespace
            && e.endpoints
                .iter()
                .any(|ep| ep.conditions.as_ref().and_then(|c| c.ready) != Some(false))
    });
    (!ready).then_some("has no ready endpoints")
}

/// The finding for a webhook whose Service cannot answer.
fn dangling(h: &Hook<'_>, svc: &ServiceReference, problem: &str) -> Finding {
    const ID: &str = "webhooks.service";
    let what = format!(
        "webhook `{}` calls Service {}/{}, which {problem}",
        h.webhook, svc.namespace, svc.name
    );
    match (h.fail, h.injector) {
        (true, true) => Finding::error(ID, CAT, format!("{what}: pod creation in the namespaces it selects is rejected"))
            .hint("delete the stale webhook configuration (its control plane is gone) or restore the Service"),
        (true, false) => Finding::error(ID, CAT, format!("{what}: writes it validates are rejected"))
            .hint("delete the stale webhook configuration or restore the Service"),
        (false, _) => Finding::warning(ID, CAT, format!("{what}; failurePolicy Ignore lets requests through after the timeout"))
            .hint("delete the stale webhook configuration"),
    }
    .objects([h.config.clone()])
}

/// Istio webhooks point at Services that exist and have ready endpoints. Judges what was read:
/// without EndpointSlices a missing Service is still found, without one kind of webhook
/// configuration the other kind is still judged; what could not be judged is `skipped`.
pub fn dangling_services(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "webhooks.service";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Services]) {
        return vec![f];
    }
    let kinds = [Source::MutatingWebhooks, Source::ValidatingWebhooks];
    if kinds.iter().all(|s| ctx.snap.gap(*s).is_some()) {
        return ctx.missing(ID, CAT, &kinds).into_iter().collect();
    }
    let all = hooks(ctx);
    let mut out = Vec::new();
    for h in &all {
        // Only Services in the Istio namespace were read; others cannot be judged.
        let Some(svc) = h
            .service
            .filter(|s| s.namespace == ctx.snap.istio_namespace)
        else {
            continue;
        };
        if let Some(problem) = service_problem(ctx, svc) {
            out.push(dangling(h, svc, problem));
        }
    }
    if out.is_empty() {
        let endpoints = if ctx.snap.gap(Source::EndpointSlices).is_some() {
            "existing"
        } else {
            "live"
        };
        out.push(Finding::ok(
            ID,
            CAT,
            format!("{} Istio webhooks point at {endpoints} Services", all.len()),
        ));
    }
    out.extend(not_judged(ctx));
    out
}

/// What `webhooks.service` could not judge for want of a source, as `skipped` findings.
fn not_judged(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "webhooks.service";
    [
        (Source::MutatingWebhooks, "mutating webhooks"),
        (Source::ValidatingWebhooks, "validating webhooks"),
        (
            Source::EndpointSlices,
            "endpoint readiness of their Services",
        ),
    ]
    .into_iter()
    .filter_map(|(source, what)| {
        let g = ctx.snap.gap(source)?;
        Some(Finding::skipped(
            ID,
            CAT,
            format!(
                "{what} not judged: cannot read {}: {}",
                source.describe(),
                g.reason
            ),
        ))
    })
    .collect()
}

/// No namespace is selected by more than one injector.
pub fn overlapping_injectors(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "webhooks.overlap";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::MutatingWebhooks, Source::Namespaces]) {
        return vec![f];
    }
    let out: Vec<Finding> = ctx
        .inv
        .namespaces
        .iter()
        .filter_map(|ns| match &ns.injection {
            Injection::Overlap { webhooks } => Some(
                Finding::error(
                    ID,
                    CAT,
                    format!(
                        "namespace `{}` is selected by {} injectors: {}",
                        ns.name,
                        webhooks.len(),
                        webhooks.join(", ")
                    ),
                )
                .objects([format!("Namespace/{}", ns.name)])
                .hint(
                    "remove the extra tag or injector; pods there are injected twice or rejected",
                ),
            ),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            "no namespace is selected by more than one injector",
        )];
    }
    out
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

    #[test]
    fn service_ok_gone_no_endpoints_missing() {
        assert_eq!(
            run(
                dangling_services,
                Snap::new().control_plane("1-29-6", "1.29.6")
            )[0]
            .result,
            Outcome::Ok
        );
        let gone = Snap::new()
            .control_plane("1-29-6", "1.29.6")
            .with(|s| s.services.clear());
        let f = run(dangling_services, gone);
        assert_eq!(f[0].result, Outcome::Error);
        assert!(f[0].message.contains("does not exist"), "{}", f[0].message);
        assert_eq!(
            f[0].objects,
            ["MutatingWebhookConfiguration/istio-sidecar-injector-1-29-6"]
        );
        let empty = Snap::new()
            .control_plane("1-29-6", "1.29.6")
            .with(|s| s.endpoint_slices.clear());
        assert!(
            run(dangling_services, empty)[0]
                .message
                .contains("no ready endpoints")
        );
        let gap = Snap::new().with(|s| s.add_gap(Source::Services, "forbidden"));
        assert_eq!(run(dangling_services, gap)[0].result, Outcome::Skipped);
    }

    /// A dump without ValidatingWebhookConfigurations (or without EndpointSlices) still reports
    /// an injector whose Service is gone: only what needs the missing kind is skipped.
    #[test]
    fn a_missing_kind_silences_only_the_verdicts_that_need_it() {
        let gone = || {
            Snap::new()
                .control_plane("1-29-6", "1.29.6")
                .with(|s| s.services.clear())
        };
        let no_validating = gone().with(|s| s.add_gap(Source::ValidatingWebhooks, "not dumped"));
        let f = run(dangling_services, no_validating);
        let results: Vec<_> = f.iter().map(|f| f.result).collect();
        // One error per webhook of the injector (rev.namespace, rev.object), then the skip.
        assert_eq!(
            results,
            [Outcome::Error, Outcome::Error, Outcome::Skipped],
            "{f:#?}"
        );
        assert_eq!(
            f[0].objects,
            ["MutatingWebhookConfiguration/istio-sidecar-injector-1-29-6"]
        );
        assert!(f[0].message.contains("does not exist"), "{}", f[0].message);
        assert_eq!(
            f[2].message,
            "validating webhooks not judged: cannot read validatingwebhookconfigurations: not dumped"
        );

        let no_slices = gone().with(|s| s.add_gap(Source::EndpointSlices, "not dumped"));
        let f = run(dangling_services, no_slices);
        assert_eq!(f[0].result, Outcome::Error, "{f:#?}");
        assert!(f[0].message.contains("does not exist"), "{}", f[0].message);
        assert_eq!(f[2].result, Outcome::Skipped);
        assert!(
            f[2].message.starts_with("endpoint readiness"),
            "{}",
            f[2].message
        );
        // A Service that exists is not called endpoint-less when the slices were never read.
        let present = Snap::new().control_plane("1-29-6", "1.29.6").with(|s| {
            s.endpoint_slices.clear();
            s.add_gap(Source::EndpointSlices, "not dumped");
        });
        let f = run(dangling_services, present);
        assert_eq!(f[0].result, Outcome::Ok, "{f:#?}");
        assert_eq!(f[0].message, "2 Istio webhooks point at existing Services");
        assert_eq!(f[1].result, Outcome::Skipped);

        let neither = gone().with(|s| {
            s.add_gap(Source::MutatingWebhooks, "forbidden");
            s.add_gap(Source::ValidatingWebhooks, "forbidden");
        });
        let f = run(dangling_services, neither);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].result, Outcome::Skipped);
    }

    #[test]
    fn overlap_ok_overlapping_missing() {
        let one = Snap::new()
            .control_plane("default", "1.29.6")
            .namespace("a", &[("istio-injection", "enabled")]);
        assert_eq!(run(overlapping_injectors, one)[0].result, Outcome::Ok);
        // A second, non-deactivated injector that also serves istio-injection=enabled.
        let two = Snap::new()
            .control_plane("default", "1.29.6")
            .tag("default", "default")
            .namespace("a", &[("istio-injection", "enabled")]);
        let f = run(overlapping_injectors, two);
        assert_eq!(f[0].result, Outcome::Error);
        assert_eq!(f[0].objects, ["Namespace/a"]);
        let gap = Snap::new().with(|s| s.add_gap(Source::MutatingWebhooks, "forbidden"));
        assert_eq!(run(overlapping_injectors, gap)[0].result, Outcome::Skipped);
    }
}
