//! Unit tests of the uninstall planner on snapshots shaped like real `istioctl install`s.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        admissionregistration::v1::{
            MutatingWebhookConfiguration, ServiceReference, ValidatingWebhook,
            ValidatingWebhookConfiguration, WebhookClientConfig,
        },
        apps::v1::Deployment,
        core::v1::{Container, PodSpec},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};

use super::*;
use crate::{
    snapshot::{CrdInfo, CrdNamesInfo, CrdSpecInfo},
    testkit::{Snap, injector, istiod, labels, meta, pod_object, service},
};

const NS: &str = "istio-system";

fn sfx(rev: &str) -> String {
    if rev == "default" {
        String::new()
    } else {
        format!("-{rev}")
    }
}

/// Labels `istioctl install` puts on an object of `component` of revision `rev`.
fn owner(rev: &str, component: &str) -> Vec<(String, String)> {
    vec![
        ("istio.io/rev".into(), rev.into()),
        ("operator.istio.io/component".into(), component.into()),
        ("operator.istio.io/managed".into(), "Reconcile".into()),
    ]
}

fn with_labels(mut m: ObjectMeta, l: &[(String, String)]) -> ObjectMeta {
    m.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(l.iter().cloned());
    m
}

fn listed(api: &str, kind: &str, ns: &str, name: &str, l: &[(String, String)]) -> Candidate {
    Candidate::new(api, kind, &with_labels(meta(ns, name, &[]), l))
}

fn validator(
    name: &str,
    l: &[(String, String)],
    hook: &str,
    svc: &str,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: with_labels(meta("", name, &[]), l),
        webhooks: Some(vec![ValidatingWebhook {
            name: hook.into(),
            client_config: WebhookClientConfig {
                service: Some(ServiceReference {
                    name: svc.into(),
                    namespace: NS.into(),
                    path: Some("/validate".into()),
                    port: Some(443),
                }),
                ..Default::default()
            },
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            ..Default::default()
        }]),
    }
}

/// A cluster and the objects the shell would list by label.
struct World {
    snap: Snap,
    listed: Vec<Candidate>,
}

impl World {
    fn new() -> Self {
        Self {
            snap: Snap::new(),
            listed: Vec::new(),
        }
    }

    /// Revision `rev` as `istioctl install` leaves it: every object labelled with it.
    fn install(mut self, rev: &str, version: &str) -> Self {
        let s = sfx(rev);
        let pilot = owner(rev, "Pilot");
        let mut d = istiod(rev, version, 1, 1);
        d.metadata = with_labels(d.metadata, &pilot);
        let mut mwc = injector(rev, None);
        mwc.metadata = with_labels(mwc.metadata, &pilot);
        let vwc = validator(
            &format!("istio-validator{s}-{NS}"),
            &pilot,
            "rev.validation.istio.io",
            &format!("istiod{s}"),
        );
        self.snap = self.snap.with(|x| {
            x.deployments.push(d);
            let mut svc = service(&format!("istiod{s}"), &[("app", "istiod")]);
            svc.metadata = with_labels(svc.metadata, &pilot);
            x.services.push(svc);
            for cm in [format!("istio{s}"), format!("istio-sidecar-injector{s}")] {
                x.config_maps.push(k8s_openapi::api::core::v1::ConfigMap {
                    metadata: with_labels(meta(NS, &cm, &[]), &pilot),
                    ..Default::default()
                });
            }
            x.mutating_webhooks.push(mwc);
            x.validating_webhooks.push(vwc);
        });
        for (api, kind, ns, name) in [
            ("v1", "ServiceAccount", NS, format!("istiod{s}")),
            (
                "rbac.authorization.k8s.io/v1",
                "Role",
                NS,
                format!("istiod{s}"),
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                NS,
                format!("istiod{s}"),
            ),
            (
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                NS,
                format!("istiod{s}"),
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "",
                format!("istiod-clusterrole{s}-{NS}"),
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                "",
                format!("istiod-clusterrole{s}-{NS}"),
            ),
        ] {
            self.listed.push(listed(api, kind, ns, &name, &pilot));
        }
        self
    }

    /// Base objects (CRDs and the reader ServiceAccount), last labelled by revision `rev`.
    fn base(mut self, rev: &str) -> Self {
        let base = owner(rev, "Base");
        self.snap = self.snap.with(|x| {
            for (plural, group, kind) in [
                ("virtualservices", "networking.istio.io", "VirtualService"),
                ("gateways", "networking.istio.io", "Gateway"),
                ("httproutes", "gateway.networking.k8s.io", "HTTPRoute"),
            ] {
                let istio = group.ends_with("istio.io");
                x.crds.push(CrdInfo {
                    metadata: with_labels(
                        meta("", &format!("{plural}.{group}"), &[]),
                        if istio { &base } else { &[] },
                    ),
                    spec: CrdSpecInfo {
                        group: group.into(),
                        names: CrdNamesInfo {
                            kind: kind.into(),
                            plural: plural.into(),
                        },
                        versions: Vec::new(),
                    },
                });
            }
        });
        self.listed.push(listed(
            "v1",
            "ServiceAccount",
            NS,
            "istio-reader-service-account",
            &base,
        ));
        self
    }

    /// The IOP ingress gateway of revision `rev`, with its Ready pod.
    fn gateway(mut self, rev: &str, version: &str) -> Self {
        let gw = owner(rev, "IngressGateways");
        let mut d = Deployment {
            metadata: with_labels(
                meta(NS, "istio-ingressgateway", &[("istio", "ingressgateway")]),
                &gw,
            ),
            ..istiod(rev, version, 1, 1)
        };
        if let Some(spec) = d.spec.as_mut() {
            spec.template.spec = Some(PodSpec {
                containers: vec![Container {
                    name: "istio-proxy".into(),
                    image: Some(format!("docker.io/istio/proxyv2:{version}")),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        let mut p = pod_object(NS, "istio-ingressgateway-5d9c7b-abcde", None, version);
        p.metadata = with_labels(p.metadata, &gw);
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "istio-ingressgateway-5d9c7b".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        p.spec.containers = vec![crate::snapshot::ContainerInfo {
            name: "istio-proxy".into(),
            image: Some(format!("docker.io/istio/proxyv2:{version}")),
        }];
        self.snap = self.snap.with(|x| {
            x.deployments.push(d);
            let mut svc = service("istio-ingressgateway", &[("app", "istio-ingressgateway")]);
            svc.metadata = with_labels(svc.metadata, &gw);
            x.services.push(svc);
            x.pods.push(p.into());
        });
        self
    }

    /// The installer-made `default` tag pointing at `rev` (webhook, validator, Service).
    fn default_tag(mut self, rev: &str, deactivate_legacy: bool) -> Self {
        let mut l = owner(rev, "Pilot");
        l.push(("istio.io/tag".into(), "default".into()));
        let mut mwc: MutatingWebhookConfiguration = injector(rev, Some("default"));
        mwc.metadata = with_labels(mwc.metadata, &l);
        let vwc = validator(
            "istiod-default-validator",
            &l,
            "validation.istio.io",
            &format!("istiod{}", sfx(rev)),
        );
        self.snap = self.snap.with(|x| {
            x.mutating_webhooks
                .retain(|m| m.metadata.name.as_deref() != Some("istio-revision-tag-default"));
            x.mutating_webhooks.push(mwc);
            x.validating_webhooks.push(vwc);
            let mut svc = service("istiod-revision-tag-default", &[("app", "istiod")]);
            svc.metadata = with_labels(svc.metadata, &l);
            x.services.push(svc);
            if deactivate_legacy {
                deactivate(x);
            }
        });
        self
    }

    /// A user tag (`istioctl tag set`: no installer labels).
    fn tag(mut self, tag: &str, rev: &str) -> Self {
        self.snap = self.snap.tag(tag, rev);
        self
    }

    fn ns(mut self, name: &str, l: &[(&str, &str)]) -> Self {
        self.snap = self.snap.namespace(name, l);
        self
    }

    fn pod(mut self, ns: &str, name: &str, rev: &str, version: &str) -> Self {
        self.snap = self.snap.pod(ns, name, Some(rev), version);
        self
    }

    fn plan(self, target: Target, force: bool) -> Result<UninstallPlan, UninstallError> {
        self.plan_counted(target, force, &BTreeMap::new())
    }

    fn plan_counted(
        self,
        target: Target,
        force: bool,
        counts: &BTreeMap<String, usize>,
    ) -> Result<UninstallPlan, UninstallError> {
        let (snap, inv) = self.snap.build();
        let input = Input {
            snapshot: &snap,
            inventory: &inv,
            listed: &self.listed,
            crd_counts: counts,
        };
        plan(&input, &Request { target, force })
    }
}

fn deactivate(x: &mut ClusterSnapshot) {
    let never = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(labels(&[("istio.io/deactivated", "never-match")])),
        match_expressions: None,
    };
    for m in &mut x.mutating_webhooks {
        if m.metadata.name.as_deref() == Some("istio-sidecar-injector") {
            for h in m.webhooks.iter_mut().flatten() {
                h.namespace_selector = Some(never.clone());
                h.object_selector = Some(never.clone());
            }
        }
    }
}

fn rev(r: &str) -> Target {
    Target::Revision { revision: r.into() }
}

fn names(plan: &UninstallPlan) -> Vec<String> {
    plan.steps.iter().map(|s| s.object.to_string()).collect()
}

fn commands(plan: &UninstallPlan) -> Vec<&str> {
    plan.blockers
        .iter()
        .filter_map(|b| b.command.as_deref())
        .collect()
}

/// Both revisions installed, the 1.29 one with its gateway; the canary serves nothing yet.
fn canary_started() -> World {
    World::new()
        .install("default", "1.29.6")
        .gateway("default", "1.29.6")
        .base("default")
        .default_tag("default", true)
        .install("1-30-3", "1.30.3")
        .base("1-30-3")
}

/// Everything moved to the canary: tag `default` moved (legacy injector deactivated), namespaces
/// relabelled, pods restarted, the gateway reinstalled with the canary.
fn canary_done() -> World {
    World {
        snap: Snap::new(),
        listed: Vec::new(),
    }
    .install("default", "1.29.6")
    .install("1-30-3", "1.30.3")
    .gateway("1-30-3", "1.30.3")
    .base("1-30-3")
    .default_tag("1-30-3", true)
    .ns("demo", &[("istio-injection", "enabled")])
    .ns("prod", &[("istio.io/rev", "1-30-3")])
    .pod("demo", "web-1", "1-30-3", "1.30.3")
    .pod("prod", "web-1", "1-30-3", "1.30.3")
}

#[test]
fn after_the_canary_the_old_default_goes_alone_webhooks_first() {
    let plan = canary_done().plan(rev("default"), false).unwrap();
    assert!(plan.blockers.is_empty(), "{:#?}", plan.blockers);
    assert!(!plan.refused());
    assert_eq!(
        names(&plan),
        [
            "MutatingWebhookConfiguration/istio-sidecar-injector",
            "ValidatingWebhookConfiguration/istio-validator-istio-system",
            "HorizontalPodAutoscaler/istio-system/istiod",
            "Deployment/istio-system/istiod",
            "Service/istio-system/istiod",
            "ConfigMap/istio-system/istio",
            "ConfigMap/istio-system/istio-sidecar-injector",
            "RoleBinding/istio-system/istiod",
            "Role/istio-system/istiod",
            "ServiceAccount/istio-system/istiod",
            "ClusterRoleBinding/istiod-clusterrole-istio-system",
            "ClusterRole/istiod-clusterrole-istio-system",
        ]
    );
    let phases: Vec<Phase> = plan.steps.iter().map(|s| s.phase).collect();
    assert!(phases.is_sorted(), "{phases:?}");
    assert!(plan.steps.iter().all(|s| s.owner == "revision default"));
    assert!(plan.crds.is_empty() && plan.warnings.is_empty());
}

#[test]
fn istio_injection_namespaces_follow_the_default_tag_not_the_label() {
    // Same labels as `canary_done`, but the default tag still points at the old revision.
    let plan = canary_started()
        .ns("demo", &[("istio-injection", "enabled")])
        .pod("demo", "web-1", "default", "1.29.6")
        .plan(rev("default"), false)
        .unwrap();
    assert!(plan.refused());
    let kinds: Vec<BlockerKind> = plan.blockers.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockerKind::Namespace,
            BlockerKind::Tag,
            BlockerKind::Pods,
            BlockerKind::Gateway
        ]
    );
    assert_eq!(
        commands(&plan)[..3],
        [
            "kubectl mesh tag set default --revision 1-30-3 --overwrite",
            "kubectl mesh tag set default --revision 1-30-3 --overwrite",
            "kubectl rollout restart -n demo deployment/web",
        ]
    );
    assert!(
        plan.blockers[0].message.contains("through tag `default`"),
        "{}",
        plan.blockers[0].message
    );
    assert!(plan.blockers.iter().all(|b| b.overridable));
    // The tag's objects are not part of the revision unless forced.
    assert!(
        !names(&plan)
            .iter()
            .any(|n| n.contains("revision-tag") || n.contains("default-validator"))
    );
}

#[test]
fn force_takes_the_tag_objects_along_so_no_webhook_dangles() {
    let plan = canary_started()
        .ns("demo", &[("istio-injection", "enabled")])
        .plan(rev("default"), true)
        .unwrap();
    assert!(!plan.refused());
    let n = names(&plan);
    for obj in [
        "MutatingWebhookConfiguration/istio-revision-tag-default",
        "ValidatingWebhookConfiguration/istiod-default-validator",
        "Service/istio-system/istiod-revision-tag-default",
        "Deployment/istio-system/istio-ingressgateway",
    ] {
        assert!(n.contains(&obj.to_owned()), "{obj} missing from {n:#?}");
    }
    assert!(plan.steps.iter().any(|s| s.owner == "tag default"));
    assert!(
        plan.warnings[0].contains("--force deletes tag(s) `default`"),
        "{:?}",
        plan.warnings
    );
    assert!(!n.iter().any(|x| x.contains("1-30-3")), "{n:#?}");
}

#[test]
fn a_namespace_labelled_with_the_revision_blocks_with_the_relabel_command() {
    let plan = canary_done().plan(rev("1-30-3"), false).unwrap();
    assert!(plan.refused());
    let cmds = commands(&plan);
    assert!(
        cmds.contains(&"kubectl label namespace prod istio.io/rev=default --overwrite"),
        "{cmds:#?}"
    );
    // demo is served through the default tag, which points here too.
    assert!(
        cmds.contains(&"kubectl mesh tag set default --revision default --overwrite"),
        "{cmds:#?}"
    );
    assert!(
        cmds.contains(&"kubectl rollout restart -n prod deployment/web"),
        "{cmds:#?}"
    );
    let gw = plan
        .blockers
        .iter()
        .find(|b| b.kind == BlockerKind::Gateway)
        .unwrap();
    assert_eq!(gw.subject, "gateway istio-system/istio-ingressgateway");
    assert!(
        !plan
            .blockers
            .iter()
            .any(|b| b.subject.contains("istio-ingressgateway") && b.kind == BlockerKind::Pods)
    );
    // The way to move it is kubectl-mesh's own: the other revision's manifest with the gateway,
    // applied in place (that revision is installed, so not as a canary).
    assert_eq!(
        gw.command.as_deref(),
        Some(
            "kubectl mesh upgrade -f <revision default's manifest with this gateway, e.g. istioctl manifest generate --set revision=default --set profile=default>"
        )
    );
}

/// No other revision is installed yet: the gateway goes with the new revision's canary install.
#[test]
fn a_gateway_with_no_revision_to_move_to_is_moved_by_the_canary_install() {
    let plan = World::new()
        .install("default", "1.29.6")
        .gateway("default", "1.29.6")
        .base("default")
        .plan(rev("default"), false)
        .unwrap();
    let gw = plan
        .blockers
        .iter()
        .find(|b| b.kind == BlockerKind::Gateway)
        .unwrap();
    assert_eq!(
        gw.command.as_deref(),
        Some("kubectl mesh upgrade --canary -f <the new revision's manifest with this gateway>")
    );
    for b in &plan.blockers {
        assert!(
            !b.command
                .as_deref()
                .unwrap_or_default()
                .contains("istioctl install"),
            "{b:?}"
        );
    }
}

#[test]
fn pods_still_running_the_old_proxy_block_until_restarted() {
    let plan = canary_done()
        .pod("prod", "db-0", "default", "1.29.6")
        .plan(rev("default"), false)
        .unwrap();
    assert_eq!(plan.blockers.len(), 1, "{:#?}", plan.blockers);
    let b = &plan.blockers[0];
    assert_eq!(
        (b.kind, b.subject.as_str()),
        (BlockerKind::Pods, "Deployment/db in namespace prod")
    );
    assert_eq!(
        b.command.as_deref(),
        Some("kubectl rollout restart -n prod deployment/db")
    );
    assert!(
        b.message
            .starts_with("1 running pod(s) carry the proxy of revision `default`")
    );
}

#[test]
fn a_user_tag_blocks_and_force_deletes_it() {
    let world = || {
        canary_done()
            .tag("prod", "1-30-3")
            .ns("shop", &[("istio.io/rev", "prod")])
    };
    let plan = world().plan(rev("1-30-3"), false).unwrap();
    let tag = plan
        .blockers
        .iter()
        .find(|b| b.subject == "tag prod")
        .unwrap();
    assert_eq!(
        tag.command.as_deref(),
        Some("kubectl mesh tag set prod --revision default --overwrite")
    );
    assert!(
        tag.message.contains("1 namespace(s) use it"),
        "{}",
        tag.message
    );
    let forced = world().plan(rev("1-30-3"), true).unwrap();
    assert!(!forced.refused());
    assert!(
        names(&forced).contains(&"MutatingWebhookConfiguration/istio-revision-tag-prod".to_owned())
    );
    assert!(
        names(&forced)
            .contains(&"MutatingWebhookConfiguration/istio-revision-tag-default".to_owned())
    );
    assert!(
        !names(&forced)
            .iter()
            .any(|n| n == "Deployment/istio-system/istiod")
    );
}

#[test]
fn helm_installs_and_foreign_webhooks_are_refused_even_with_force() {
    let plan = canary_done()
        .with_snapshot(|x| {
            let d = x
                .deployments
                .iter_mut()
                .find(|d| d.metadata.name.as_deref() == Some("istiod"))
                .unwrap();
            d.metadata.annotations = Some(labels(&[
                ("meta.helm.sh/release-name", "istiod"),
                ("meta.helm.sh/release-namespace", "istio-system"),
            ]));
            x.validating_webhooks
                .push(validator("policy", &[], "check.example.com", "istiod"));
            x.validating_webhooks.push(validator(
                "old-istio-validator",
                &[],
                "validation.istio.io",
                "istiod",
            ));
        })
        .plan(rev("default"), true)
        .unwrap();
    assert!(plan.refused());
    let hard: Vec<(&BlockerKind, Option<&str>)> = plan
        .hard_blockers()
        .map(|b| (&b.kind, b.command.as_deref()))
        .collect();
    assert_eq!(
        hard,
        [
            (
                &BlockerKind::Helm,
                Some("helm uninstall istiod -n istio-system")
            ),
            (
                &BlockerKind::Webhook,
                Some("kubectl delete validatingwebhookconfiguration policy")
            ),
        ]
    );
    // An unlabelled Istio validator goes with the non-revisioned control plane.
    assert!(
        plan.steps
            .iter()
            .any(|s| s.object.name == "old-istio-validator")
    );
}

#[test]
fn istio_webhooks_of_another_label_calling_a_deleted_service_go_with_it() {
    let plan = canary_done()
        .with_snapshot(|x| {
            let l = [("istio.io/rev".to_owned(), "1-29-0".to_owned())];
            x.validating_webhooks.push(validator(
                "stale-validator",
                &l,
                "validation.istio.io",
                "istiod-1-30-3",
            ));
        })
        .plan(rev("1-30-3"), true)
        .unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.object.name == "stale-validator")
        .unwrap();
    assert_eq!(
        (step.phase, step.owner.as_str()),
        (Phase::Webhooks, "calls Service istio-system/istiod-1-30-3")
    );
}

#[test]
fn unknown_revisions_and_tags_are_usage_errors() {
    let err = canary_done().plan(rev("1-28-0"), false).unwrap_err();
    assert_eq!(err.class(), Class::Usage);
    assert_eq!(err.to_string(), "revision `1-28-0` does not exist");
    assert!(
        err.hints()[0].contains("1-30-3, default"),
        "{:?}",
        err.hints()
    );
    let err = canary_done()
        .tag("prod", "1-30-3")
        .plan(rev("prod"), false)
        .unwrap_err();
    assert_eq!(
        err.hints(),
        [
            "tag `prod` points at revision `1-30-3`: pass `--revision 1-30-3`, or move the tag with `kubectl mesh tag set`"
        ]
    );
    let mut w = canary_done();
    w.snap = w.snap.with(|x| x.add_gap(Source::Pods, "forbidden"));
    let err = w.plan(rev("default"), false).unwrap_err();
    assert_eq!(
        (err.class(), err.to_string().as_str()),
        (Class::Failed, "cannot read pods: forbidden")
    );
}

/// Without one of the kinds a complete plan reads, what uses the revision is still found and
/// refuses; only a plan that would go ahead fails, classified by why the kind is missing: a
/// snapshot file that lacks it is bad input (never a permission problem), a refusal by the
/// server is.
#[test]
fn a_missing_kind_still_refuses_and_only_a_plan_to_carry_out_needs_it() {
    use crate::snapshot::GapCause;
    let partial = || {
        let mut w = canary_started().ns("demo", &[("istio-injection", "enabled")]);
        w.snap = w.snap.with(|x| {
            x.validating_webhooks.clear();
            x.add_gap_because(
                Source::ValidatingWebhooks,
                GapCause::NotInFile,
                "not in the file",
            );
        });
        w
    };
    let plan = partial().plan(rev("default"), false).unwrap();
    assert!(plan.refused());
    let subjects: Vec<&str> = plan.blockers.iter().map(|b| b.subject.as_str()).collect();
    assert!(
        subjects.contains(&"namespace demo") && subjects.contains(&"tag default"),
        "{subjects:?}"
    );
    assert_eq!(plan.unread.len(), 1);
    assert_eq!(plan.unread[0].source, Source::ValidatingWebhooks);

    let err = partial().plan(rev("default"), true).unwrap_err();
    assert_eq!(err.class(), Class::Usage, "{err}");
    assert!(!err.hints()[0].contains("auth can-i"), "{:?}", err.hints());
    let mut done = canary_done();
    done.snap = done.snap.with(|x| {
        x.add_gap_because(Source::Pods, GapCause::Forbidden, "forbidden: no");
    });
    let err = done.plan(rev("default"), false).unwrap_err();
    assert_eq!(err.class(), Class::Failed, "{err}");
    assert_eq!(
        err.hints(),
        ["check your permissions with `kubectl auth can-i list pods`"]
    );
    // Without the webhooks or the Deployments the revision itself cannot be found.
    let mut blind = canary_started();
    blind.snap = blind
        .snap
        .with(|x| x.add_gap_because(Source::MutatingWebhooks, GapCause::NotInFile, "x"));
    let err = blind.plan(rev("default"), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read mutatingwebhookconfigurations: x"
    );
}

#[test]
fn unlabelled_default_objects_and_chart_named_rbac_belong_to_default() {
    // testkit's control plane: istiod and its injector without a revision label (older charts),
    // RBAC from a `kubectl apply`-ed manifest (chart labels only).
    let mut w = World::new().with_snapshot(|x| {
        x.deployments.push(istiod("default", "1.29.6", 1, 1));
        x.mutating_webhooks.push(injector("default", None));
    });
    let chart = [("app".to_owned(), "istiod".to_owned())];
    w.listed
        .push(listed("v1", "ServiceAccount", NS, "istiod", &chart));
    w.listed.push(listed(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "",
        "istiod-gateway-controller-istio-system",
        &chart,
    ));
    w.listed.push(listed(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "",
        "istiod-clusterrole-1-30-3-istio-system",
        &chart,
    ));
    w.listed
        .push(listed("v1", "ServiceAccount", "shop", "istiod", &chart));
    let plan = w.plan(rev("default"), false).unwrap();
    assert_eq!(
        names(&plan),
        [
            "MutatingWebhookConfiguration/istio-sidecar-injector",
            "Deployment/istio-system/istiod",
            "ServiceAccount/istio-system/istiod",
            "ClusterRole/istiod-gateway-controller-istio-system",
        ]
    );
}

#[test]
fn user_pods_labelled_with_the_revision_are_never_deleted() {
    let plan = canary_done()
        .with_snapshot(|x| {
            let mut p = pod_object("shop", "bare", Some("default"), "1.29.6");
            p.metadata.owner_references = None;
            p.metadata.labels = Some(labels(&[("istio.io/rev", "default")]));
            x.pods.push(p.into());
        })
        .plan(rev("default"), true)
        .unwrap();
    assert!(!names(&plan).iter().any(|n| n.starts_with("Pod/")));
    assert_eq!(
        plan.blockers[0].command.as_deref(),
        Some("kubectl delete pod -n shop bare")
    );
}

#[test]
fn purge_takes_every_control_plane_and_tag_but_crds_only_when_asked() {
    let world = || canary_done().tag("prod", "1-30-3");
    let counts: BTreeMap<String, usize> = [
        ("virtualservices.networking.istio.io".to_owned(), 3),
        ("gateways.networking.istio.io".to_owned(), 1),
    ]
    .into();
    let plan = world()
        .plan_counted(
            Target::Purge {
                include_crds: false,
            },
            true,
            &counts,
        )
        .unwrap();
    let n = names(&plan);
    for obj in [
        "MutatingWebhookConfiguration/istio-revision-tag-prod",
        "Deployment/istio-system/istiod-1-30-3",
        "Deployment/istio-system/istiod",
        "ServiceAccount/istio-system/istio-reader-service-account",
    ] {
        assert!(n.contains(&obj.to_owned()), "{obj} missing from {n:#?}");
    }
    assert!(!n.iter().any(|x| x.starts_with("CustomResourceDefinition")));
    assert_eq!(plan.crds.len(), 2, "Gateway API CRDs are not Istio's");
    assert!(
        plan.warnings[0].contains("the 2 Istio CRDs and the Istio resources in them (4) are kept"),
        "{:?}",
        plan.warnings
    );
    let kinds: Vec<BlockerKind> = plan.blockers.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockerKind::Namespace,
            BlockerKind::Namespace,
            BlockerKind::Pods,
            BlockerKind::Pods,
            BlockerKind::Gateway
        ]
    );
    assert_eq!(
        plan.blockers[0].command.as_deref(),
        Some("kubectl label namespace demo istio-injection- istio.io/rev-")
    );

    let all = world()
        .plan_counted(Target::Purge { include_crds: true }, true, &counts)
        .unwrap();
    let crds: Vec<&Step> = all
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Crds)
        .collect();
    assert_eq!(crds.len(), 2);
    assert_eq!(all.steps.last().unwrap().phase, Phase::Crds);
    assert_eq!(all.deleted_resources(), Some(4));
    assert!(
        all.warnings[0]
            .contains("every Istio resource in the cluster (4): 3 VirtualService, 1 Gateway"),
        "{:?}",
        all.warnings
    );
}

impl World {
    fn with_snapshot(mut self, f: impl FnOnce(&mut ClusterSnapshot)) -> Self {
        self.snap = self.snap.with(f);
        self
    }
}

#[test]
fn the_changes_are_one_phase_per_step_each_delete_waited_on_by_uid() {
    let plan = canary_done().plan(rev("default"), false).unwrap();
    let changes = plan.changes();
    let names: Vec<&str> = changes.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "webhook configurations",
            "workloads and services",
            "configuration and RBAC"
        ]
    );
    assert_eq!(changes.len(), plan.steps.len());
    for phase in &changes.phases {
        assert_eq!(phase.ops.len(), phase.waits.len());
        for (op, wait) in phase.ops.iter().zip(&phase.waits) {
            let (
                crate::change::Op::Delete { target, uid },
                crate::change::Wait::Gone { target: t, uid: u },
            ) = (op, wait)
            else {
                panic!("{op:?} {wait:?}")
            };
            assert_eq!(
                (target, uid),
                (t, u),
                "the wait follows the deleted object's UID"
            );
        }
    }
    assert!(changes.takeover.is_empty(), "uninstall applies nothing");
}

/// Ambient mode on `default` (1.29.6) beside canary `1-30-3`: istio-cni and ztunnel of
/// `default` on 3 nodes (ztunnel's XDS/CA address: `istiod.istio-system.svc:15012`), namespace
/// `shop` in ambient mode behind waypoint `shop/waypoint`, rendered by `waypoint_rev`.
fn ambient_world(waypoint_rev: &str, version: &str) -> World {
    let label = (waypoint_rev != "default").then_some(waypoint_rev);
    let mut w = World::new()
        .install("default", "1.29.6")
        .install("1-30-3", "1.30.3");
    w.snap = w
        .snap
        .ambient("default", "1.29.6", 3)
        .ambient_namespace("shop", &[("istio.io/use-waypoint", "waypoint")], 2)
        .waypoint("shop", "waypoint", label, waypoint_rev, version);
    w
}

fn of_kind(p: &UninstallPlan, kind: BlockerKind) -> Vec<&Blocker> {
    p.blockers.iter().filter(|b| b.kind == kind).collect()
}

#[test]
fn ztunnel_and_waypoints_on_the_revision_block_with_the_commands_that_move_them() {
    let p = ambient_world("default", "1.29.6")
        .plan(rev("default"), false)
        .unwrap();
    assert!(p.refused());
    let z = of_kind(&p, BlockerKind::Ztunnel);
    assert_eq!(z.len(), 1, "{:#?}", p.blockers);
    assert_eq!(z[0].subject, "ztunnel istio-system/ztunnel");
    assert!(
        z[0].message.starts_with(
            "talks to the istiod of revision `default` (XDS_ADDRESS istiod.istio-system.svc:15012) and is deleted with it; every ambient pod on its 3 node(s) depends on it"
        ),
        "{}",
        z[0].message
    );
    assert_eq!(
        z[0].command.as_deref(),
        Some(
            "kubectl mesh upgrade -f <ztunnel of revision 1-30-3: istioctl manifest generate --set profile=ambient --set revision=1-30-3>"
        )
    );
    let w = of_kind(&p, BlockerKind::Waypoint);
    assert_eq!(w.len(), 1, "{:#?}", p.blockers);
    assert_eq!(w[0].subject, "waypoint shop/waypoint");
    assert!(
        w[0].message.starts_with(
            "rendered and configured by the istiod of revision `default` (the default revision; used by Namespace/shop)"
        ),
        "{}",
        w[0].message
    );
    assert_eq!(
        w[0].command.as_deref(),
        Some("kubectl mesh upgrade dataplane --waypoint shop/waypoint --to-revision 1-30-3")
    );
    assert!(w[0].overridable && z[0].overridable);
    let cni = of_kind(&p, BlockerKind::Cni);
    assert_eq!(cni.len(), 1, "{:#?}", p.blockers);
    assert_eq!(
        cni[0].message,
        "is deleted with revision `default`: new pods of the ambient namespace(s) shop would start without being captured, their traffic outside the mesh"
    );
    assert_eq!(
        cni[0].command.as_deref(),
        Some(
            "kubectl mesh upgrade -f <istio-cni of revision 1-30-3: istioctl manifest generate --set profile=ambient --set revision=1-30-3>"
        )
    );
    let forced = ambient_world("default", "1.29.6")
        .plan(rev("default"), true)
        .unwrap();
    assert!(!forced.refused(), "--force overrides them like other uses");
}

#[test]
fn a_moved_waypoint_blocks_its_new_revision_and_not_the_old() {
    let p = ambient_world("1-30-3", "1.30.3")
        .plan(rev("1-30-3"), false)
        .unwrap();
    assert!(
        of_kind(&p, BlockerKind::Ztunnel).is_empty(),
        "ztunnel talks to `default`"
    );
    assert!(
        of_kind(&p, BlockerKind::Cni).is_empty(),
        "istio-cni is `default`'s"
    );
    let w = of_kind(&p, BlockerKind::Waypoint);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message
            .contains("(`istio.io/rev=1-30-3` on its gateway; used by Namespace/shop)"),
        "{}",
        w[0].message
    );
    assert_eq!(
        w[0].command.as_deref(),
        Some("kubectl mesh upgrade dataplane --waypoint shop/waypoint --to-revision default")
    );
    let p = ambient_world("1-30-3", "1.30.3")
        .plan(rev("default"), false)
        .unwrap();
    assert!(of_kind(&p, BlockerKind::Waypoint).is_empty());
    assert_eq!(of_kind(&p, BlockerKind::Ztunnel).len(), 1);
}

#[test]
fn a_ztunnel_that_talks_to_another_revision_but_is_deleted_with_this_one_blocks() {
    let mut w = ambient_world("1-30-3", "1.30.3");
    w.snap = w.snap.with(|x| {
        let z = x
            .daemonsets
            .iter_mut()
            .find(|d| d.metadata.name.as_deref() == Some("ztunnel"))
            .unwrap();
        let env = z
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .env
            .as_mut()
            .unwrap();
        for e in env {
            e.value = Some("istiod-1-30-3.istio-system.svc:15012".into());
        }
    });
    let p = w.plan(rev("default"), false).unwrap();
    let z = of_kind(&p, BlockerKind::Ztunnel);
    assert_eq!(z.len(), 1, "{:#?}", p.blockers);
    assert!(
        z[0].message
            .starts_with("is deleted with revision `default`;"),
        "{}",
        z[0].message
    );
}

#[test]
fn purge_is_refused_while_namespaces_are_in_ambient_mode() {
    let p = ambient_world("default", "1.29.6")
        .plan(
            Target::Purge {
                include_crds: false,
            },
            false,
        )
        .unwrap();
    let shop: Vec<&Blocker> = p
        .blockers
        .iter()
        .filter(|b| b.subject == "namespace shop")
        .collect();
    assert_eq!(shop.len(), 1, "{:#?}", p.blockers);
    assert_eq!(
        shop[0].message,
        "is in ambient mode (2 of 2 pod(s) captured): --purge deletes ztunnel and istio-cni, so its traffic would leave the mesh"
    );
    assert_eq!(
        shop[0].command.as_deref(),
        Some("kubectl label namespace shop istio.io/dataplane-mode-")
    );
    assert!(p.refused());
}
