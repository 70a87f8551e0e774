//! Cluster-level checks: Kubernetes version window, permissions, Gateway API CRDs. The
//! windows and minimums come from the release data ([`crate::releases`]).

use std::collections::BTreeSet;

use super::{Category, Context, Finding};
use crate::{
    releases::{KubeSupport, Release, Severity},
    snapshot::{CrdInfo, Source, annotation},
    version::IstioVersion,
};

const CAT_K: Category = Category::Kubernetes;

/// The Istio versions the cluster must support: the target, else every control plane.
fn versions_in_scope<'a>(ctx: &'a Context<'_>) -> Vec<(&'a IstioVersion, String)> {
    if let Some(t) = ctx.target {
        return vec![(&t.version, format!("target Istio {}", t.version))];
    }
    ctx.inv
        .control_planes
        .iter()
        .filter_map(|c| {
            let v = c.version.as_ref()?;
            Some((v, format!("revision `{}` (Istio {v})", c.revision)))
        })
        .collect()
}

/// Kubernetes version inside the supported window of the Istio version(s) in scope.
pub fn kubernetes_version(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "kubernetes.version";
    if let Some(f) = ctx.missing(ID, CAT_K, &[Source::Version]) {
        return vec![f];
    }
    let Some(kube) = ctx.snap.kube_version.as_ref() else {
        return vec![Finding::skipped(
            ID,
            CAT_K,
            "the Kubernetes version is unknown",
        )];
    };
    let scope = versions_in_scope(ctx);
    if scope.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT_K,
            format!("Kubernetes {kube}; no Istio version to check it against"),
        )];
    }
    let data = ctx.knowledge.releases;
    scope
        .into_iter()
        .map(|(istio, what)| match data.kube_support(istio, kube) {
            KubeSupport::Supported => Finding::ok(
                ID,
                CAT_K,
                format!("Kubernetes {kube} is supported by {what}"),
            ),
            KubeSupport::BelowMinimum { minimum } => Finding::error(
                ID,
                CAT_K,
                format!("Kubernetes {kube} is older than 1.{minimum}, the minimum of {what}"),
            )
            .hint(format!("upgrade the cluster to Kubernetes 1.{minimum} or newer first")),
            KubeSupport::BelowSupported { minimum } => Finding::warning(
                ID,
                CAT_K,
                format!("Kubernetes {kube} is below 1.{minimum}, the oldest version {what} supports"),
            )
            .hint("istioctl still installs, but Istio does not test this combination"),
            KubeSupport::AboveSupported { maximum } => Finding::warning(
                ID,
                CAT_K,
                format!("Kubernetes {kube} is newer than 1.{maximum}, the newest version {what} supports"),
            )
            .hint("upgrade Istio to a release that supports this Kubernetes version"),
            KubeSupport::Unknown => {
                let (why, hint) = data.unknown(istio);
                Finding::warning(
                    ID,
                    CAT_K,
                    format!("no support data for {what} ({why})"),
                )
                .hint(hint)
            }
        })
        .collect()
}

/// An object a manifest applies: (apiVersion, kind, namespace).
pub type ObjectKind = (String, String, Option<String>);

/// One access review to ask.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessRequest {
    /// Verb.
    pub verb: &'static str,
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Namespace, for namespaced resources.
    pub namespace: Option<String>,
}

/// istioctl's install set (ISTIO.md §1.2): cluster-scoped and Istio-namespace resources.
const INSTALL_SET: &[(&str, &str, bool)] = &[
    ("", "namespaces", false),
    ("rbac.authorization.k8s.io", "clusterroles", false),
    ("rbac.authorization.k8s.io", "clusterrolebindings", false),
    ("apiextensions.k8s.io", "customresourcedefinitions", false),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        false,
    ),
    ("rbac.authorization.k8s.io", "roles", true),
    ("", "serviceaccounts", true),
    ("", "services", true),
    ("apps", "deployments", true),
    ("", "configmaps", true),
];

/// Lower-case plural of a kind, as the apiserver names resources.
fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with("policy") || k.ends_with("ry") {
        format!("{}ies", &k[..k.len() - 1])
    } else if k.ends_with('s') {
        format!("{k}es")
    } else {
        format!("{k}s")
    }
}

/// The access reviews an operation needs: from a manifest's objects (create + patch, since
/// server-side apply may do either), else istioctl's install set.
pub fn required_access(objects: &[ObjectKind], istio_ns: &str) -> Vec<AccessRequest> {
    let mut out = BTreeSet::new();
    match objects {
        [_, ..] => {
            for (api_version, kind, ns) in objects {
                let group = api_version
                    .rsplit_once('/')
                    .map_or("", |(g, _)| g)
                    .to_owned();
                for verb in ["create", "patch"] {
                    out.insert(AccessRequest {
                        verb,
                        group: group.clone(),
                        resource: plural(kind),
                        namespace: ns.clone(),
                    });
                }
            }
        }
        [] => {
            for (group, resource, namespaced) in INSTALL_SET {
                out.insert(AccessRequest {
                    verb: "create",
                    group: (*group).to_owned(),
                    resource: (*resource).to_owned(),
                    namespace: namespaced.then(|| istio_ns.to_owned()),
                });
            }
        }
    }
    out.into_iter().collect()
}

/// Every access review needed was allowed.
pub fn permissions(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "permissions.install";
    const CAT: Category = Category::Permissions;
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Access]) {
        return vec![f];
    }
    let denied: Vec<_> = ctx.snap.access.iter().filter(|a| !a.allowed).collect();
    if denied.is_empty() {
        return vec![Finding::ok(
            ID,
            CAT,
            format!(
                "allowed to {} resource kinds the operation needs",
                ctx.snap.access.len()
            ),
        )];
    }
    let objects = denied.iter().map(|a| {
        let res = if a.group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        match &a.namespace {
            Some(ns) => format!("{} {res} in {ns}", a.verb),
            None => format!("{} {res}", a.verb),
        }
    });
    vec![
        Finding::error(
            ID,
            CAT,
            format!(
                "{} of {} required permissions are denied to the current user",
                denied.len(),
                ctx.snap.access.len()
            ),
        )
        .objects(objects)
        .hint("use a context with cluster-admin rights, or ask an admin to grant these"),
    ]
}

/// Gateway API CRDs serve the versions Istio reads, at a bundle version it accepts (the
/// target's rules, else the newest installed control plane's; istioctl's IST0156, IST0172 and
/// IST0176).
pub fn gateway_api(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "gateway-api.crds";
    const CAT: Category = Category::GatewayApi;
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Crds]) {
        return vec![f];
    }
    let crds: Vec<_> = ctx
        .snap
        .crds
        .iter()
        .filter(|c| c.spec.group == "gateway.networking.k8s.io")
        .collect();
    if crds.is_empty() {
        return vec![Finding::ok(ID, CAT, "Gateway API CRDs are not installed")];
    }
    let data = ctx.knowledge.releases;
    let istio = versions_in_scope(ctx)
        .into_iter()
        .map(|(v, _)| v)
        .max()
        .map(IstioVersion::without_variant);
    let release = istio.as_ref().and_then(|v| data.release(v));
    let mut out = Vec::new();
    if let (Some(v), None) = (&istio, release) {
        let (why, hint) = data.unknown(v);
        out.push(
            Finding::warning(
                "gateway-api.bundle-version",
                CAT,
                format!("no Gateway API minimums for Istio {v} ({why}); served versions judged by Istio {}'s rules", data.newest().name()),
            )
            .hint(hint),
        );
    }
    // With no version in scope (nothing installed, no target): the newest release's rules.
    let rules = release.unwrap_or(data.newest());
    for crd in &crds {
        out.extend(served_findings(rules, crd));
        if let (Some(v), Some(r)) = (&istio, release) {
            out.extend(bundle_finding(r, v, crd));
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            format!(
                "{} Gateway API CRDs serve the versions and bundle versions Istio {} needs",
                crds.len(),
                istio.map_or(rules.name(), |v| v.to_string())
            ),
        ));
    }
    out
}

fn crd_object(crd: &CrdInfo) -> String {
    format!(
        "CustomResourceDefinition/{}",
        crd.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A CRD without a served version a rule of the release requires.
fn served_findings(release: &Release, crd: &CrdInfo) -> Vec<Finding> {
    const ID: &str = "gateway-api.crds";
    let kind = crd.spec.names.kind.as_str();
    let served: Vec<&str> = crd.served().collect();
    release
        .gateway_api
        .served
        .iter()
        .filter(|r| r.kinds.iter().any(|k| k == kind) && !served.contains(&r.version.as_str()))
        .map(|r| {
            let f = match r.missing {
                Severity::Error => Finding::error(
                    ID,
                    Category::GatewayApi,
                    format!(
                        "{kind} CRD does not serve {}, which Istio {} reads ({})",
                        r.version,
                        release.name(),
                        r.code
                    ),
                ),
                Severity::Warning => Finding::warning(
                    ID,
                    Category::GatewayApi,
                    format!(
                        "{kind} CRD does not serve {}; newer Istio releases need it ({})",
                        r.version, r.code
                    ),
                ),
            };
            f.objects([crd_object(crd)]).hint(format!(
                "install a Gateway API bundle that serves {} for {kind}{}",
                r.version,
                bundled(release)
            ))
        })
        .collect()
}

/// `: Istio 1.31 is built with v1.6.0`.
fn bundled(release: &Release) -> String {
    release
        .bundled_gateway_api(u64::MAX)
        .map(|b| format!(" (Istio {} is built with {b})", release.name()))
        .unwrap_or_default()
}

/// istiod ignores a filtered CRD whose bundle version is below its minimum, missing or not a
/// version: its routes stop working with no error (istioctl's IST0176 only warns).
fn bundle_finding(release: &Release, istio: &IstioVersion, crd: &CrdInfo) -> Option<Finding> {
    let name = crd.metadata.name.as_deref().unwrap_or_default();
    let minimum = release.minimum_bundle(name, istio.semver.patch)?;
    let raw = annotation(&crd.metadata, "gateway.networking.k8s.io/bundle-version");
    let bundle = raw.and_then(|r| semver::Version::parse(r.trim_start_matches('v')).ok());
    let found = match (raw, &bundle) {
        (_, Some(b)) if b >= minimum => return None,
        (Some(r), Some(_)) => {
            format!("is from Gateway API {r}; Istio {istio} ignores it below v{minimum}")
        }
        (Some(r), None) => format!(
            "has bundle version `{r}`, which is not a version; Istio {istio} ignores it (it needs v{minimum} or newer)"
        ),
        (None, _) => format!(
            "has no gateway.networking.k8s.io/bundle-version annotation; Istio {istio} ignores it (it needs v{minimum} or newer)"
        ),
    };
    Some(
        Finding::error(
            "gateway-api.bundle-version",
            Category::GatewayApi,
            format!("{name} {found}, so its routes stop working (IST0176)"),
        )
        .objects([crd_object(crd)])
        .hint(format!(
            "install Gateway API v{minimum} or newer{} before this Istio version runs",
            bundled(release)
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checks::{Outcome, Target, TargetMode},
        snapshot::{AccessCheck, CrdInfo, CrdNamesInfo, CrdSpecInfo, CrdVersionInfo},
        testkit::{Snap, labels, meta},
        version::KubeVersion,
    };

    fn run(f: fn(&Context<'_>) -> Vec<Finding>, s: Snap, target: Option<&Target>) -> Vec<Finding> {
        let (snap, inv) = s.build();
        f(&Context {
            snap: &snap,
            inv: &inv,
            target,
            canary_requested: false,
            knowledge: Default::default(),
        })
    }

    fn target(v: &str) -> Target {
        Target {
            version: IstioVersion::parse(v).unwrap(),
            revision: "default".into(),
            mode: TargetMode::InPlace,
            agents: None,
            images: Vec::new(),
        }
    }

    #[test]
    fn kubernetes_version_ok_fail_missing() {
        let ok = run(
            kubernetes_version,
            Snap::new().control_plane("default", "1.30.3"),
            None,
        );
        assert_eq!(ok[0].result, Outcome::Ok, "{ok:?}");
        let old =
            Snap::new().with(|s| s.kube_version = Some(KubeVersion::parse("v1.31.2").unwrap()));
        let bad = run(kubernetes_version, old, Some(&target("1.30.3")));
        assert_eq!(bad[0].result, Outcome::Error);
        assert!(bad[0].message.contains("1.32"), "{}", bad[0].message);
        let missing = Snap::new().with(|s| {
            s.kube_version = None;
            s.add_gap(Source::Version, "forbidden");
        });
        assert_eq!(
            run(kubernetes_version, missing, None)[0].result,
            Outcome::Skipped
        );
    }

    #[test]
    fn permissions_ok_fail_missing() {
        let allowed = |ok| AccessCheck {
            verb: "create".into(),
            group: "apps".into(),
            resource: "deployments".into(),
            namespace: Some("istio-system".into()),
            allowed: ok,
            reason: None,
        };
        let ok = run(
            permissions,
            Snap::new().with(|s| s.access = vec![allowed(true)]),
            None,
        );
        assert_eq!(ok[0].result, Outcome::Ok);
        let denied = run(
            permissions,
            Snap::new().with(|s| s.access = vec![allowed(false)]),
            None,
        );
        assert_eq!(denied[0].result, Outcome::Error);
        assert_eq!(
            denied[0].objects,
            ["create deployments.apps in istio-system"]
        );
        let gap = Snap::new().with(|s| s.add_gap(Source::Access, "no cluster"));
        assert_eq!(run(permissions, gap, None)[0].result, Outcome::Skipped);
    }

    #[test]
    fn required_access_follows_the_manifest() {
        assert_eq!(
            required_access(&[], "istio-system").len(),
            INSTALL_SET.len()
        );
        let objects = vec![
            (
                "apps/v1".into(),
                "Deployment".into(),
                Some("istio-system".into()),
            ),
            (
                "policy/v1".into(),
                "PodDisruptionBudget".into(),
                Some("istio-system".into()),
            ),
        ];
        let asked = required_access(&objects, "istio-system");
        assert_eq!(asked.len(), 4);
        assert!(
            asked
                .iter()
                .any(|a| a.resource == "poddisruptionbudgets" && a.verb == "patch")
        );
    }

    fn crd(name: &str, kind: &str, served: &[&str], bundle: &str) -> CrdInfo {
        let mut m = meta("", name, &[]);
        m.annotations = Some(labels(&[(
            "gateway.networking.k8s.io/bundle-version",
            bundle,
        )]));
        CrdInfo {
            metadata: m,
            spec: CrdSpecInfo {
                group: "gateway.networking.k8s.io".into(),
                names: CrdNamesInfo {
                    kind: kind.into(),
                    plural: String::new(),
                },
                versions: served
                    .iter()
                    .map(|v| CrdVersionInfo {
                        name: (*v).into(),
                        served: true,
                        storage: false,
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn gateway_api_ok_fail_missing() {
        let good = Snap::new().with(|s| {
            s.crds.push(crd(
                "httproutes.gateway.networking.k8s.io",
                "HTTPRoute",
                &["v1", "v1beta1"],
                "v1.5.0",
            ));
        });
        assert_eq!(
            run(gateway_api, good, Some(&target("1.30.3")))[0].result,
            Outcome::Ok
        );
        let old = Snap::new().with(|s| {
            s.crds.push(crd(
                "tlsroutes.gateway.networking.k8s.io",
                "TLSRoute",
                &["v1alpha2"],
                "v1.4.1",
            ));
            s.crds.push(crd(
                "gateways.gateway.networking.k8s.io",
                "Gateway",
                &["v1"],
                "v1.4.1",
            ));
        });
        let found = run(gateway_api, old.with(|_| {}), Some(&target("1.30.3")));
        assert!(
            found
                .iter()
                .any(|f| f.id == "gateway-api.bundle-version" && f.result == Outcome::Error)
        );
        assert!(
            found
                .iter()
                .any(|f| f.message.contains("v1beta1") && f.result == Outcome::Error)
        );
        let not_yet = Snap::new().with(|s| {
            s.crds.push(crd(
                "tlsroutes.gateway.networking.k8s.io",
                "TLSRoute",
                &["v1alpha2"],
                "v1.4.1",
            ));
        });
        assert_eq!(
            run(gateway_api, not_yet, Some(&target("1.29.6")))[0].result,
            Outcome::Ok
        );
        let gap = Snap::new().with(|s| s.add_gap(Source::Crds, "forbidden"));
        assert_eq!(run(gateway_api, gap, None)[0].result, Outcome::Skipped);
    }

    fn with_knowledge(s: Snap, target: &Target, data: &crate::releases::Releases) -> Vec<Finding> {
        let (snap, inv) = s.build();
        gateway_api(&Context {
            snap: &snap,
            inv: &inv,
            target: Some(target),
            canary_requested: false,
            knowledge: crate::checks::Knowledge {
                releases: data,
                today: None,
            },
        })
    }

    #[test]
    fn gateway_api_rules_come_from_the_data() {
        let grpc = || {
            Snap::new().with(|s| {
                s.crds.push(crd(
                    "grpcroutes.gateway.networking.k8s.io",
                    "GRPCRoute",
                    &["v1alpha2"],
                    "v1.0.0",
                ));
            })
        };
        let f = run(gateway_api, grpc(), Some(&target("1.25.5")));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(
            (f[0].id, f[0].result),
            ("gateway-api.bundle-version", Outcome::Error)
        );
        assert!(
            f[0].message
                .contains("Istio 1.25.5 ignores it below v1.1.0"),
            "{}",
            f[0].message
        );
        let f = run(gateway_api, grpc(), Some(&target("1.26.0")));
        let v1 = f.iter().find(|f| f.id == "gateway-api.crds").unwrap();
        assert_eq!(v1.result, Outcome::Warning, "IST0172 from 1.26 on");
        assert!(v1.message.contains("does not serve v1"), "{}", v1.message);
        let bare = Snap::new().with(|s| {
            let mut c = crd(
                "tlsroutes.gateway.networking.k8s.io",
                "TLSRoute",
                &["v1alpha2"],
                "",
            );
            c.metadata.annotations = None;
            s.crds.push(c);
        });
        let f = run(gateway_api, bare, Some(&target("1.30.3")));
        assert!(
            f[0].message
                .contains("has no gateway.networking.k8s.io/bundle-version annotation"),
            "{f:#?}"
        );
        let tls = || {
            Snap::new().with(|s| {
                s.crds.push(crd(
                    "tlsroutes.gateway.networking.k8s.io",
                    "TLSRoute",
                    &["v1alpha2"],
                    "v1.4.1",
                ));
            })
        };
        let text = crate::releases::BUILTIN.replacen(
            "        - { crd: tlsroutes.gateway.networking.k8s.io, version: v1.5.0 }\n        - { crd: tcproutes",
            "        - { crd: tlsroutes.gateway.networking.k8s.io, version: v1.4.0 }\n        - { crd: tcproutes",
            1,
        );
        assert_ne!(text, crate::releases::BUILTIN);
        let relaxed =
            crate::releases::Releases::parse(&text, crate::releases::Origin::BuiltIn).unwrap();
        let strict = crate::releases::Releases::builtin();
        assert_eq!(
            with_knowledge(tls(), &target("1.31.1"), strict)[0].result,
            Outcome::Error
        );
        assert_eq!(
            with_knowledge(tls(), &target("1.31.1"), &relaxed)[0].result,
            Outcome::Ok,
            "the verdict follows the data"
        );
        let unknown = run(gateway_api, tls(), Some(&target("1.99.0")));
        assert_eq!(unknown[0].result, Outcome::Warning);
        assert!(
            unknown[0]
                .message
                .starts_with("no Gateway API minimums for Istio 1.99.0"),
            "{}",
            unknown[0].message
        );
    }
}
