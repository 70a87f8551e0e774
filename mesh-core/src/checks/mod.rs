//! The precheck catalogue: pure functions from a snapshot (and an optional target) to findings.
//!
//! Every check returns at least one finding, so a passing check is visible as ✔ and a check
//! that could not run is `skipped` with the reason — never a silent pass. Finding ids are
//! stable: scripts match on them. One module per family.

mod ambient;
mod cluster;
mod controlplane;
mod namespaces;
mod skew;
mod support;
mod webhooks;

use serde::Serialize;

use crate::{
    inventory::{DEFAULT_REVISION, Inventory},
    releases::Releases,
    snapshot::{ClusterSnapshot, Source},
    version::{IstioVersion, UpgradeMode},
};

pub use cluster::{AccessRequest, ObjectKind, required_access};

/// Base of the documentation links findings carry.
pub const DOCS: &str = "https://github.com/kubectl-mesh/kubectl-mesh/blob/main/docs/checks.md";

/// The result of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Could not run (missing data, forbidden); says why.
    Skipped,
    /// Risky; does not block by default.
    Warning,
    /// Blocks the operation.
    Error,
}

/// The groups findings are shown in, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Kubernetes version window.
    Kubernetes,
    /// What is known about the Istio releases in use: support, hazards, retired image hosts.
    Releases,
    /// Access reviews.
    Permissions,
    /// Gateway API CRDs.
    GatewayApi,
    /// istiod health and availability.
    ControlPlane,
    /// Version skew rules.
    VersionSkew,
    /// Webhooks.
    Webhooks,
    /// Namespaces and pods.
    Namespaces,
    /// Ambient mode: istio-cni, ztunnel, waypoints.
    Ambient,
    /// Configuration at risk across the upgrade.
    Configuration,
    /// Across the clusters of a multi-cluster mesh (fleet runs).
    MultiCluster,
}

impl Category {
    /// Heading text.
    pub fn title(self) -> &'static str {
        match self {
            Self::Kubernetes => "Kubernetes",
            Self::Releases => "Istio releases",
            Self::Permissions => "Permissions",
            Self::GatewayApi => "Gateway API",
            Self::ControlPlane => "Control plane",
            Self::VersionSkew => "Version skew",
            Self::Webhooks => "Webhooks",
            Self::Namespaces => "Namespaces",
            Self::Ambient => "Ambient",
            Self::Configuration => "Configuration",
            Self::MultiCluster => "Multi-cluster mesh",
        }
    }
}

/// One result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id (`skew.in-place`).
    pub id: &'static str,
    /// Group.
    #[serde(skip)]
    pub category: Category,
    /// Outcome.
    pub result: Outcome,
    /// What was found and why it matters.
    pub message: String,
    /// Objects it is about (`Namespace/prod`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Link to the check's documentation.
    pub docs: String,
}

impl Finding {
    fn new(id: &'static str, category: Category, result: Outcome, message: String) -> Self {
        Self {
            id,
            category,
            result,
            message,
            objects: Vec::new(),
            hint: None,
            docs: format!("{DOCS}#{}", id.replace('.', "-")),
        }
    }

    /// A passing finding.
    pub fn ok(id: &'static str, category: Category, message: impl Into<String>) -> Self {
        Self::new(id, category, Outcome::Ok, message.into())
    }

    /// A warning.
    pub fn warning(id: &'static str, category: Category, message: impl Into<String>) -> Self {
        Self::new(id, category, Outcome::Warning, message.into())
    }

    /// An error.
    pub fn error(id: &'static str, category: Category, message: impl Into<String>) -> Self {
        Self::new(id, category, Outcome::Error, message.into())
    }

    /// A check that could not run.
    pub fn skipped(id: &'static str, category: Category, reason: impl Into<String>) -> Self {
        Self::new(id, category, Outcome::Skipped, reason.into())
    }

    /// Adds objects.
    #[must_use]
    pub fn objects(mut self, objects: impl IntoIterator<Item = String>) -> Self {
        self.objects.extend(objects);
        self
    }

    /// Sets the hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What the user wants to move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Target version.
    pub version: IstioVersion,
    /// Target revision (`default` for a non-revisioned control plane).
    pub revision: String,
    /// In place, canary, or a first install.
    pub mode: TargetMode,
    /// The istio-cni and ztunnel DaemonSets a manifest applies (`-f`); `None` without a
    /// manifest (`--target-version`: only istiod moves).
    pub agents: Option<Vec<crate::ambient::PlannedAgent>>,
    /// Container images the target's manifest pulls (empty for a bare `--target-version`).
    pub images: Vec<String>,
}

/// How the target relates to what is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetMode {
    /// Replace the running control plane of the same revision.
    InPlace,
    /// A new revision beside the others.
    Canary,
    /// Nothing installed yet.
    Fresh,
}

impl std::fmt::Display for TargetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InPlace => "in-place upgrade",
            Self::Canary => "canary beside the installed revisions",
            Self::Fresh => "fresh install",
        })
    }
}

impl TargetMode {
    /// The skew mode, if one applies.
    pub fn upgrade_mode(self) -> Option<UpgradeMode> {
        match self {
            Self::InPlace => Some(UpgradeMode::InPlace),
            Self::Canary => Some(UpgradeMode::Canary),
            Self::Fresh => None,
        }
    }
}

impl Target {
    /// Decides the mode from what is installed: an existing revision is upgraded in place, a new
    /// one is a canary (when asked for) and an empty cluster is a fresh install.
    pub fn resolve(
        inv: &Inventory,
        version: IstioVersion,
        revision: Option<String>,
        canary: bool,
    ) -> Self {
        let revision = revision.unwrap_or_else(|| {
            if canary {
                version.revision_name()
            } else {
                DEFAULT_REVISION.to_owned()
            }
        });
        let mode = if inv.control_planes.is_empty() {
            TargetMode::Fresh
        } else if canary || inv.control_plane(&revision).is_none() {
            TargetMode::Canary
        } else {
            TargetMode::InPlace
        };
        Self {
            version,
            revision,
            mode,
            agents: None,
            images: Vec::new(),
        }
    }

    /// The same target, pulling these images (from its manifest).
    #[must_use]
    pub fn with_images(mut self, images: Vec<String>) -> Self {
        self.images = images;
        self
    }
}

/// What the checks know about Istio releases, and the day they judge support on.
#[derive(Debug, Clone, Copy)]
pub struct Knowledge<'a> {
    /// The release data (built in, or `--release-data`).
    pub releases: &'a Releases,
    /// Today, from the shell; `None` leaves dates unjudged (end-of-life is skipped).
    pub today: Option<jiff::civil::Date>,
}

impl Default for Knowledge<'_> {
    /// The built-in data and no date.
    fn default() -> Self {
        Self {
            releases: Releases::builtin(),
            today: None,
        }
    }
}

/// Everything a check may read.
pub struct Context<'a> {
    /// The raw snapshot.
    pub snap: &'a ClusterSnapshot,
    /// The derived Istio view.
    pub inv: &'a Inventory,
    /// The target, when asked about an upgrade.
    pub target: Option<&'a Target>,
    /// Whether the user asked for a canary (`--canary`).
    pub canary_requested: bool,
    /// Release data and today's date.
    pub knowledge: Knowledge<'a>,
}

impl Context<'_> {
    /// A `skipped` finding when a source is missing.
    fn missing(&self, id: &'static str, category: Category, sources: &[Source]) -> Option<Finding> {
        sources.iter().find_map(|s| {
            self.snap.gap(*s).map(|g| {
                Finding::skipped(
                    id,
                    category,
                    format!("cannot read {}: {}", s.describe(), g.reason),
                )
            })
        })
    }
}

/// Runs the whole catalogue, in display order.
pub fn run_all(ctx: &Context<'_>) -> Vec<Finding> {
    let checks: &[fn(&Context<'_>) -> Vec<Finding>] = &[
        cluster::kubernetes_version,
        support::end_of_life,
        support::known_hazards,
        support::retired_image_hosts,
        cluster::permissions,
        cluster::gateway_api,
        controlplane::inventory_present,
        controlplane::health,
        controlplane::availability,
        skew::control_plane,
        skew::data_plane,
        skew::manifest_proxies,
        webhooks::dangling_services,
        webhooks::overlapping_injectors,
        namespaces::conflicting_labels,
        namespaces::dangling_revisions,
        namespaces::stale_pods,
        namespaces::uninjected_pods,
        ambient::all,
        controlplane::names,
        controlplane::envoy_filters,
        support::changed_defaults,
    ];
    let mut out: Vec<Finding> = checks.iter().flat_map(|c| c(ctx)).collect();
    out.sort_by_key(|f| f.category);
    out
}

/// Counts per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed.
    pub ok: usize,
    /// Warnings.
    pub warning: usize,
    /// Errors.
    pub error: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Summary {
    /// Counts findings.
    pub fn of(findings: &[Finding]) -> Self {
        let mut s = Self::default();
        for f in findings {
            match f.result {
                Outcome::Ok => s.ok += 1,
                Outcome::Warning => s.warning += 1,
                Outcome::Error => s.error += 1,
                Outcome::Skipped => s.skipped += 1,
            }
        }
        s
    }
}

/// `Kind/namespace/name` or `Kind/name` for cluster-scoped objects.
pub(crate) fn obj(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{namespace}/{name}")
    }
}

#[cfg(test)]
mod unread_input {
    use super::*;
    use crate::{snapshot::FILE_SOURCES, testkit::Snap};

    /// No verdict from data that was never read: with every source of a snapshot unread, each
    /// check says `skipped` (or, for the one that needs nothing from the cluster, judges only
    /// the target it was given: whether that version is still supported).
    #[test]
    fn every_check_is_skipped_when_its_input_was_never_read() {
        let (mut snap, _) = Snap::new().control_plane("default", "1.29.6").build();
        for s in FILE_SOURCES
            .into_iter()
            .chain([Source::Access, Source::Version])
        {
            snap.add_gap(s, "not in the test's snapshot");
        }
        let inv = Inventory::from_snapshot(&snap);
        for mode in [TargetMode::InPlace, TargetMode::Canary] {
            let target = Target {
                version: IstioVersion::parse("1.30.3").unwrap(),
                revision: "default".into(),
                mode,
                agents: None,
                images: Vec::new(),
            };
            let ctx = Context {
                snap: &snap,
                inv: &inv,
                target: Some(&target),
                canary_requested: true,
                knowledge: Knowledge {
                    today: Some(jiff::civil::date(2026, 12, 4)),
                    ..Knowledge::default()
                },
            };
            let all = run_all(&ctx);
            // Support of the target version itself needs nothing from the cluster.
            let target_only = |f: &Finding| {
                f.id == "release.end-of-life" && f.message.starts_with("the target Istio 1.30.3:")
            };
            assert!(all.iter().any(target_only), "{all:#?}");
            let judged: Vec<String> = all
                .into_iter()
                .filter(|f| f.result != Outcome::Skipped && !target_only(f))
                .map(|f| format!("{} ({:?}): {}", f.id, f.result, f.message))
                .collect();
            assert!(
                judged.is_empty(),
                "{mode:?}: judged without input: {judged:#?}"
            );
        }
    }
}
