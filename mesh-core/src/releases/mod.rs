//! What kubectl-mesh knows about Istio releases, as data: support windows and end of life,
//! Kubernetes windows and istioctl's enforced minimums, the Gateway API each release needs, the
//! compatibility profiles it ships, defaults it changed, known upgrade hazards, and the image
//! hosts Istio retired.
//!
//! The facts live in one YAML file (`mesh-core/data/istio-releases.yaml`, format in
//! `docs/release-data.md`), built into every binary and replaceable at run time by a newer copy
//! (`--release-data`), so a new Istio release needs a new file, not a new build. This module
//! parses and checks that file ([`Releases::parse`]) and answers questions about it; the checks
//! in [`crate::checks`] turn the answers into findings. Nothing here reads a file or a clock: the
//! shell hands in the text and today's date.

mod parse;
#[cfg(test)]
mod tests;

use std::{fmt, sync::OnceLock};

use jiff::civil::Date;
use semver::{Version, VersionReq};

use crate::version::{IstioVersion, KubeVersion};

pub use parse::ReleaseDataError;

/// The release data built into this binary.
pub const BUILTIN: &str = include_str!("../../data/istio-releases.yaml");

/// The format version this build reads (`schema:` in the file).
pub const SCHEMA: &str = "kubectl-mesh.dev/istio-releases/v1";

/// Where release data came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into the binary.
    BuiltIn,
    /// A file given with `--release-data` (or its environment variable).
    File(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("the built-in release data"),
            Self::File(path) => write!(f, "release data `{path}`"),
        }
    }
}

/// A calendar month (`2026-12`), for dates Istio announces only to the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    /// Year.
    pub year: i16,
    /// Month, 1–12.
    pub month: i8,
}

impl Month {
    /// The month's last day.
    pub fn last_day(self) -> Date {
        Date::new(self.year, self.month, 1)
            .map(|d| d.last_of_month())
            .unwrap_or(Date::MAX)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let name = usize::try_from(self.month - 1)
            .ok()
            .and_then(|i| NAMES.get(i))
            .unwrap_or(&"?");
        write!(f, "{name} {}", self.year)
    }
}

/// One source the data was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    /// Short name.
    pub id: String,
    /// Where it is.
    pub url: String,
    /// What was read there.
    pub about: String,
}

/// A minor the data deliberately does not cover yet, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIncluded {
    /// The minor (`32` for 1.32).
    pub minor: u64,
    /// Why it is not in the data.
    pub reason: String,
}

/// An image host Istio stopped publishing to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredHost {
    /// Image reference prefix (`gcr.io/istio-release/`).
    pub prefix: String,
    /// Where the images are now (`docker.io/istio`).
    pub replacement: String,
    /// The last minor published there.
    pub last_minor: u64,
    /// When the host goes away.
    pub goes_away: Month,
    /// The last announced brown-out (first day), if any.
    pub last_brownout: Option<Date>,
    /// Where Istio says so.
    pub source: String,
}

/// How a missing served version of a Gateway API CRD is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Istio does not work without it (istioctl: an error).
    Error,
    /// Istio works, but a future release will not (istioctl: a warning).
    Warning,
}

/// Gateway API kinds that must serve an API version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRule {
    /// API version (`v1beta1`).
    pub version: String,
    /// Kinds that must serve it.
    pub kinds: Vec<String>,
    /// How a CRD without it is judged.
    pub missing: Severity,
    /// istioctl's analyzer code for the same rule (`IST0156`).
    pub code: String,
}

/// The oldest Gateway API bundle a CRD must come from; istiod ignores the CRD below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleMinimum {
    /// CRD name (`tlsroutes.gateway.networking.k8s.io`).
    pub crd: String,
    /// Minimum `gateway.networking.k8s.io/bundle-version`.
    pub version: Version,
    /// The first patch of the minor with this minimum.
    pub from_patch: u64,
}

/// The Gateway API a release is built with and needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayApi {
    /// `sigs.k8s.io/gateway-api` in istio's go.mod, per first patch.
    pub bundled: Vec<(u64, String)>,
    /// Served-version rules (istioctl's IST0156, IST0172).
    pub served: Vec<ServedRule>,
    /// Minimum bundle versions per CRD (istiod's CRD filter; istioctl's IST0176).
    pub minimum_bundle: Vec<BundleMinimum>,
}

/// A default a minor changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedDefault {
    /// The setting (`meshConfig.defaultConfig.tracer`, an istiod environment variable).
    pub setting: String,
    /// What changed.
    pub summary: String,
    /// How to tell whether a cluster relies on the old default (a detector of
    /// [`crate::checks`]); `None`: it cannot be told from what kubectl-mesh reads.
    pub detect: Option<String>,
    /// Where Istio says so.
    pub source: String,
}

/// A known problem of some control-plane versions with some proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hazard {
    /// Stable id.
    pub id: String,
    /// istiod versions that carry it.
    pub control_plane: VersionReq,
    /// Proxy versions it breaks.
    pub proxies: VersionReq,
    /// What happens.
    pub summary: String,
    /// What to do.
    pub fix: String,
    /// Where it is reported.
    pub source: String,
}

impl Hazard {
    /// Whether an istiod version carries the hazard.
    pub fn affects_control_plane(&self, v: &IstioVersion) -> bool {
        self.control_plane.matches(&v.semver)
    }

    /// Whether a proxy version is broken by it.
    pub fn affects_proxy(&self, v: &IstioVersion) -> bool {
        self.proxies.matches(&v.semver)
    }
}

/// Everything known about one Istio minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The minor (`31` for 1.31).
    pub minor: u64,
    /// Date of the .0 release.
    pub released: Date,
    /// End of support, once Istio has announced it.
    pub end_of_life: Option<Date>,
    /// The month support is expected to end, while not announced.
    pub expected_end_of_life: Option<Month>,
    /// Oldest Kubernetes minor of the documented window.
    pub kube_min: u64,
    /// Newest Kubernetes minor of the documented window.
    pub kube_max: u64,
    /// istioctl's `MinK8SVersion`: (first patch, Kubernetes minor).
    pub istioctl_minimum: Vec<(u64, u64)>,
    /// Gateway API.
    pub gateway_api: GatewayApi,
    /// `compatibilityVersion` values it ships (minors).
    pub compatibility_profiles: Vec<u64>,
    /// Defaults it changed.
    pub changed_defaults: Vec<ChangedDefault>,
    /// Hazards of its control planes.
    pub hazards: Vec<Hazard>,
}

/// How a Kubernetes version fits an Istio version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSupport {
    /// Inside the published window.
    Supported,
    /// Below istioctl's enforced minimum: Istio refuses or breaks.
    BelowMinimum {
        /// Minimum minor.
        minimum: u64,
    },
    /// At or above istioctl's minimum but below the docs' window.
    BelowSupported {
        /// First supported minor.
        minimum: u64,
    },
    /// Newer than the docs' window: untested.
    AboveSupported {
        /// Last supported minor.
        maximum: u64,
    },
    /// The release data has no entry for that Istio minor.
    Unknown,
}

/// The last value whose first patch is at or below `patch`.
fn at_patch<T>(list: &[(u64, T)], patch: u64) -> Option<&T> {
    list.iter()
        .rev()
        .find(|(from, _)| *from <= patch)
        .map(|(_, v)| v)
}

impl Release {
    /// `1.31`.
    pub fn name(&self) -> String {
        format!("1.{}", self.minor)
    }

    /// The Kubernetes minor istioctl of this patch enforces.
    pub fn istioctl_minimum_at(&self, patch: u64) -> u64 {
        at_patch(&self.istioctl_minimum, patch)
            .copied()
            .unwrap_or(self.kube_min)
    }

    /// How a Kubernetes version fits this release at a patch.
    pub fn kube_support(&self, patch: u64, kube: &KubeVersion) -> KubeSupport {
        let enforced = self.istioctl_minimum_at(patch);
        if kube.major != 1 {
            KubeSupport::Unknown
        } else if kube.minor < enforced {
            KubeSupport::BelowMinimum { minimum: enforced }
        } else if kube.minor < self.kube_min {
            KubeSupport::BelowSupported {
                minimum: self.kube_min,
            }
        } else if kube.minor > self.kube_max {
            KubeSupport::AboveSupported {
                maximum: self.kube_max,
            }
        } else {
            KubeSupport::Supported
        }
    }

    /// The Gateway API version this patch is built with.
    pub fn bundled_gateway_api(&self, patch: u64) -> Option<&str> {
        at_patch(&self.gateway_api.bundled, patch).map(String::as_str)
    }

    /// The minimum bundle version of a CRD at this patch, if istiod filters it.
    pub fn minimum_bundle(&self, crd: &str, patch: u64) -> Option<&Version> {
        self.gateway_api
            .minimum_bundle
            .iter()
            .filter(|m| m.crd == crd && m.from_patch <= patch)
            .max_by_key(|m| m.from_patch)
            .map(|m| &m.version)
    }

    /// Whether it ships `compatibilityVersion=1.<minor>`.
    pub fn ships_profile(&self, minor: u64) -> bool {
        self.compatibility_profiles.contains(&minor)
    }

    /// Whether support has ended on `today`.
    pub fn out_of_support(&self, today: Date) -> bool {
        self.end_of_life.is_some_and(|eol| eol <= today)
    }
}

/// The whole release data: every known minor, the retired image hosts, and where it all came
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Releases {
    /// Built in or a file.
    pub origin: Origin,
    /// When the figures were checked against Istio's sources.
    pub checked: Date,
    /// The sources.
    pub sources: Vec<SourceRef>,
    /// Minors after the newest that are deliberately absent.
    pub not_included: Vec<NotIncluded>,
    /// Image hosts Istio retired.
    pub retired_hosts: Vec<RetiredHost>,
    /// Every minor, oldest first, without gaps.
    pub releases: Vec<Release>,
}

impl Releases {
    /// The data built into this binary (checked by this crate's tests, so it always parses).
    pub fn builtin() -> &'static Releases {
        static DATA: OnceLock<Releases> = OnceLock::new();
        DATA.get_or_init(|| {
            Self::parse(BUILTIN, Origin::BuiltIn)
                .unwrap_or_else(|e| panic!("the built-in release data is invalid: {e}"))
        })
    }

    /// Parses and checks release data.
    pub fn parse(text: &str, origin: Origin) -> Result<Self, ReleaseDataError> {
        parse::parse(text, origin)
    }

    /// The entry of an Istio 1.x version's minor.
    pub fn release(&self, version: &IstioVersion) -> Option<&Release> {
        if version.major() != 1 {
            return None;
        }
        self.releases.iter().find(|r| r.minor == version.minor())
    }

    /// The oldest minor known.
    pub fn oldest(&self) -> &Release {
        &self.releases[0]
    }

    /// The newest minor known.
    pub fn newest(&self) -> &Release {
        &self.releases[self.releases.len() - 1]
    }

    /// `Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)`: what `--version` says.
    pub fn summary(&self) -> String {
        let whence = match &self.origin {
            Origin::BuiltIn => "built-in data".to_owned(),
            Origin::File(path) => format!("from `{path}`"),
        };
        format!(
            "Istio {} to {} ({whence}, checked {})",
            self.oldest().name(),
            self.newest().name(),
            self.checked
        )
    }

    /// How a Kubernetes version fits an Istio version.
    pub fn kube_support(&self, istio: &IstioVersion, kube: &KubeVersion) -> KubeSupport {
        self.release(istio).map_or(KubeSupport::Unknown, |r| {
            r.kube_support(istio.semver.patch, kube)
        })
    }

    /// Why a version has no entry, and what to do: the message part and the hint.
    pub fn unknown(&self, version: &IstioVersion) -> (String, String) {
        let knows = format!(
            "{} knows Istio {} to {}",
            self.origin,
            self.oldest().name(),
            self.newest().name()
        );
        let minor = version.minor();
        let why = self
            .not_included
            .iter()
            .find(|n| version.major() == 1 && n.minor == minor)
            .map(|n| format!("; {}", n.reason.trim_end_matches('.')))
            .unwrap_or_default();
        let hint = match &self.origin {
            Origin::BuiltIn => format!(
                "pass release data that covers {} with --release-data FILE (format: docs/release-data.md), or update kubectl-mesh",
                version.minor_string()
            ),
            Origin::File(path) => format!(
                "add Istio {} to `{path}` (format: docs/release-data.md), or update kubectl-mesh",
                version.minor_string()
            ),
        };
        (format!("{knows}{why}"), hint)
    }

    /// The retired host an image is pulled from, if any.
    pub fn retired_host(&self, image: &str) -> Option<&RetiredHost> {
        self.retired_hosts
            .iter()
            .find(|h| image.starts_with(h.prefix.as_str()))
    }
}
