//! Cluster-level checks: Kubernetes version window, permissions, Gateway API CRDs.

use std::collections::BTreeSet;

use super::{Category, Context, Finding};
use crate::{
    snapshot::{Source, annotation},
    version::{IstioVersion, KubeSupport, kube_support, newest_known_minor},
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
    scope
        .into_iter()
        .map(|(istio, what)| match kube_support(istio, kube) {
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
            KubeSupport::Unknown => Finding::warning(
                ID,
                CAT_K,
                format!(
                    "no support data for {what} (this build knows Istio up to 1.{})",
                    newest_known_minor()
                ),
            )
            .hint("check Istio's supported-releases page, or update kubectl-mesh"),
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

/// Minimum Gateway API bundle version Istio filters CRDs on (`MinimumCRDVersions`, 1.30+).
fn min_bundle(istio: &IstioVersion, crd: &str) -> Option<semver::Version> {
    let table: &[(&str, u64, u64)] = &[
        ("grpcroutes.gateway.networking.k8s.io", 30, 1),
        ("backendtlspolicies.gateway.networking.k8s.io", 30, 4),
        ("tlsroutes.gateway.networking.k8s.io", 30, 5),
        ("tcproutes.gateway.networking.k8s.io", 31, 6),
    ];
    table
        .iter()
        .find(|(name, since, _)| *name == crd && istio.major() == 1 && istio.minor() >= *since)
        .map(|(_, _, minor)| semver::Version::new(1, *minor, 0))
}

/// Gateway API CRDs serve the versions Istio reads, at a bundle version it accepts.
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
    let target = versions_in_scope(ctx)
        .into_iter()
        .map(|(v, _)| v)
        .max()
        .cloned();
    let mut out = Vec::new();
    for crd in &crds {
        let kind = crd.spec.names.kind.as_str();
        let served: Vec<&str> = crd.served().collect();
        let name = crd.metadata.name.clone().unwrap_or_default();
        let object = format!("CustomResourceDefinition/{name}");
        if ["Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"].contains(&kind)
            && !served.contains(&"v1beta1")
        {
            out.push(
                Finding::error(
                    ID,
                    CAT,
                    format!("{kind} CRD does not serve v1beta1, which Istio reads"),
                )
                .objects([object.clone()])
                .hint("install a Gateway API bundle (v1.0 or newer) that serves v1beta1"),
            );
        }
        if ["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute"].contains(&kind)
            && !served.contains(&"v1")
        {
            out.push(
                Finding::warning(
                    ID,
                    CAT,
                    format!("{kind} CRD does not serve v1; future Istio releases need it"),
                )
                .objects([object.clone()])
                .hint("upgrade the Gateway API CRDs to a bundle that serves v1"),
            );
        }
        if let Some(f) = bundle_finding(target.as_ref(), crd, &name, &object) {
            out.push(f);
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            format!(
                "{} Gateway API CRDs serve the versions Istio needs",
                crds.len()
            ),
        ));
    }
    out
}

fn bundle_finding(
    target: Option<&IstioVersion>,
    crd: &crate::snapshot::CrdInfo,
    name: &str,
    object: &str,
) -> Option<Finding> {
    let istio = target?;
    let minimum = min_bundle(istio, name)?;
    let raw = annotation(&crd.metadata, "gateway.networking.k8s.io/bundle-version")?;
    let bundle = semver::Version::parse(raw.trim_start_matches('v')).ok()?;
    (bundle < minimum).then(|| {
        Finding::error(
            "gateway-api.bundle-version",
            Category::GatewayApi,
            format!(
                "{name} is from Gateway API {raw}; Istio {istio} ignores it below v{minimum}, so its routes stop working",
            ),
        )
        .objects([object.to_owned()])
        .hint(format!("install Gateway API v{minimum} or newer before upgrading Istio"))
    })
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
        })
    }

    fn target(v: &str) -> Target {
        Target {
            version: IstioVersion::parse(v).unwrap(),
            revision: "default".into(),
            mode: TargetMode::InPlace,
            agents: None,
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
}
