//! Istio and Kubernetes versions, revision names, and Istio's skew rules. What each release
//! supports (Kubernetes windows, end of life, ...) is data: [`crate::releases`].
//!
//! Versions always compare as semver (`1.28.10 > 1.28.9`); istioctl compares image tags as
//! strings and reports such upgrades as downgrades. Image tags carry variants (`-distroless`,
//! `-debug`) and vendor suffixes (`-gke.0`) that say nothing about ordering, so they are kept
//! beside the version, not inside it. Everything here is pure data and functions.

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Image variants Istio publishes for the same version; they do not change what version it is.
const VARIANTS: &[&str] = &["distroless", "debug"];
/// Pre-release markers: a tag carrying one of these is older than the plain release.
const PRERELEASES: &[&str] = &["alpha", "beta", "rc", "dev"];

/// An Istio version as found in an image tag, a revision name or a flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct IstioVersion {
    /// Ordered part: major.minor.patch plus a pre-release marker (`1.31.0-dev`).
    pub semver: semver::Version,
    /// Whether the patch number was given (`1.30` names a minor, `1.30.0` a release).
    pub has_patch: bool,
    /// Image variant (`distroless`), if any.
    pub variant: Option<String>,
    /// Vendor or build suffix (`gke.0`), ignored when ordering.
    pub suffix: Option<String>,
}

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not an Istio version (expected e.g. `1.30.3`, `1.30.3-distroless` or `1.30`)"
)]
pub struct VersionError {
    /// What was given.
    pub input: String,
}

impl IstioVersion {
    /// Builds a plain release version.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            semver: semver::Version::new(major, minor, patch),
            has_patch: true,
            variant: None,
            suffix: None,
        }
    }

    /// Parses a version or an image tag (`1.30.3`, `v1.30.3`, `1.30.3-distroless`, `1.31-dev`).
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = || VersionError {
            input: input.to_owned(),
        };
        let text = input.trim().trim_start_matches('v');
        let (core, rest) = text.split_once('-').unwrap_or((text, ""));
        let nums = core
            .split('.')
            .map(|p| p.parse::<u64>().map_err(|_| err()))
            .collect::<Result<Vec<_>, _>>()?;
        let (major, minor, patch) = match nums.as_slice() {
            [ma, mi] => (*ma, *mi, None),
            [ma, mi, pa] => (*ma, *mi, Some(*pa)),
            _ => return Err(err()),
        };
        let mut version = Self {
            semver: semver::Version::new(major, minor, patch.unwrap_or(0)),
            has_patch: patch.is_some(),
            variant: None,
            suffix: None,
        };
        version.apply_suffix(rest).map_err(|()| err())?;
        Ok(version)
    }

    /// Parses a version a user names as a target (`--target-version`): a release as Istio numbers
    /// them — `1.30.3`, or a pre-release of a minor's first patch (`1.31.0-rc.1`,
    /// `1.31.0-beta.0`). Not an image tag: no `v`, no variant, no missing patch.
    pub fn parse_release(input: &str) -> Result<Self, VersionError> {
        let err = || VersionError {
            input: input.to_owned(),
        };
        let text = input.trim();
        if text.starts_with('v') || text.matches('.').count() < 2 {
            return Err(err());
        }
        let v = Self::parse(text)?;
        let pre = !v.semver.pre.is_empty();
        let ok = v.variant.is_none()
            && v.suffix.is_none()
            && (!pre || (v.semver.patch == 0 && !v.semver.pre.as_str().starts_with("dev")));
        if ok { Ok(v) } else { Err(err()) }
    }

    /// Sorts the part after the first `-` into variant, pre-release or vendor suffix.
    fn apply_suffix(&mut self, rest: &str) -> Result<(), ()> {
        if rest.is_empty() {
            return Ok(());
        }
        if let Some(variant) = VARIANTS.iter().find(|v| rest == **v) {
            self.variant = Some((*variant).to_owned());
        } else if PRERELEASES.iter().any(|p| rest.starts_with(p)) {
            let (pre, variant) = match rest.rsplit_once('-') {
                Some((pre, v)) if VARIANTS.contains(&v) => (pre, Some(v.to_owned())),
                _ => (rest, None),
            };
            self.semver.pre = semver::Prerelease::new(pre).map_err(|_| ())?;
            self.variant = variant;
        } else if rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            self.suffix = Some(rest.to_owned());
        } else {
            return Err(());
        }
        Ok(())
    }

    /// Major version.
    pub fn major(&self) -> u64 {
        self.semver.major
    }

    /// Minor version.
    pub fn minor(&self) -> u64 {
        self.semver.minor
    }

    /// `1.30` for any 1.30.x.
    pub fn minor_string(&self) -> String {
        format!("{}.{}", self.major(), self.minor())
    }

    /// Signed minor distance `self - other` (major versions other than 1 count 100 minors).
    pub fn minors_since(&self, other: &IstioVersion) -> i64 {
        let at = |v: &IstioVersion| v.major() as i64 * 100 + v.minor() as i64;
        at(self) - at(other)
    }

    /// The version without its image variant, as messages show it (`1.30.3-distroless` names
    /// an image; its version is `1.30.3`).
    pub fn without_variant(&self) -> IstioVersion {
        IstioVersion {
            variant: None,
            ..self.clone()
        }
    }

    /// The revision name Istio's docs recommend for this version (`1-30-3`).
    pub fn revision_name(&self) -> String {
        format!("{}-{}-{}", self.major(), self.minor(), self.semver.patch)
    }
}

impl Ord for IstioVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.semver.cmp_precedence(&other.semver)
    }
}

impl PartialOrd for IstioVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.semver;
        write!(f, "{}.{}", v.major, v.minor)?;
        if self.has_patch {
            write!(f, ".{}", v.patch)?;
        }
        if !v.pre.is_empty() {
            write!(f, "-{}", v.pre)?;
        }
        if let Some(suffix) = &self.suffix {
            write!(f, "-{suffix}")?;
        }
        if let Some(variant) = &self.variant {
            write!(f, "-{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for IstioVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<IstioVersion> for String {
    fn from(v: IstioVersion) -> Self {
        v.to_string()
    }
}

impl TryFrom<String> for IstioVersion {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// The version a revision name spells, if it spells one (`1-30-3` → 1.30.3, `canary` → none).
pub fn version_from_revision(revision: &str) -> Option<IstioVersion> {
    let dotted = revision.replacen('-', ".", 2);
    IstioVersion::parse(&dotted).ok()
}

/// The tag of a container image reference (`docker.io/istio/pilot:1.30.3` → `1.30.3`).
/// Digests (`@sha256:`) carry no tag and give `None`.
pub fn image_tag(image: &str) -> Option<&str> {
    let image = image.split('@').next()?;
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    image[last_slash..].split_once(':').map(|(_, tag)| tag)
}

/// The Istio version in a container image reference, if its tag is one.
pub fn image_version(image: &str) -> Option<IstioVersion> {
    image_tag(image).and_then(|t| IstioVersion::parse(t).ok())
}

/// The Istio release of an image: its version without the variant
/// ([`IstioVersion::without_variant`]).
pub fn image_release(image: &str) -> Option<IstioVersion> {
    image_version(image).map(|v| v.without_variant())
}

/// A Kubernetes server version (`v1.34.4`, `v1.30.2-eks-1234`, `v1.29.1+k3s1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct KubeVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// The text as the server gave it.
    #[serde(skip)]
    pub raw: String,
}

impl KubeVersion {
    /// Parses a `gitVersion`.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = || VersionError {
            input: input.to_owned(),
        };
        let text = input.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next().unwrap_or_default();
        let nums = core
            .split('.')
            .map(|p| p.parse::<u64>().map_err(|_| err()))
            .collect::<Result<Vec<_>, _>>()?;
        match nums.as_slice() {
            [major, minor, rest @ ..] if rest.len() <= 1 => Ok(Self {
                major: *major,
                minor: *minor,
                patch: rest.first().copied().unwrap_or(0),
                raw: input.trim().to_owned(),
            }),
            _ => Err(err()),
        }
    }

    /// `1.34`.
    pub fn minor_string(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.raw.is_empty() {
            write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
        } else {
            f.write_str(&self.raw)
        }
    }
}

impl From<KubeVersion> for String {
    fn from(v: KubeVersion) -> Self {
        v.to_string()
    }
}

impl TryFrom<String> for KubeVersion {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// The kind of control-plane change being judged by the skew rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Replace the running control plane of a revision.
    InPlace,
    /// Install a new revision beside the old one.
    Canary,
}

/// How far a control-plane change may move (ISTIO.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skew {
    /// Same minor: a patch change.
    Patch,
    /// Allowed minor change (signed: negative is a downgrade).
    Allowed(i64),
    /// More minors than the mode allows.
    TooFar {
        /// Signed distance.
        minors: i64,
        /// The most the mode allows.
        limit: i64,
    },
}

/// Judges moving a control plane from `from` to `to`.
pub fn control_plane_skew(from: &IstioVersion, to: &IstioVersion, mode: UpgradeMode) -> Skew {
    let minors = to.minors_since(from);
    let (up, down) = match mode {
        UpgradeMode::InPlace => (1, 1),
        UpgradeMode::Canary => (2, 1),
    };
    if minors == 0 {
        Skew::Patch
    } else if (minors > 0 && minors <= up) || (minors < 0 && -minors <= down) {
        Skew::Allowed(minors)
    } else {
        Skew::TooFar {
            minors,
            limit: if minors > 0 { up } else { -down },
        }
    }
}

/// How a proxy's version fits the control plane that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySkew {
    /// Same minor.
    Same,
    /// One minor behind: supported.
    OneBehind,
    /// Newer than the control plane: never supported.
    Newer,
    /// Two or more minors behind.
    TooOld {
        /// How many minors behind.
        minors: i64,
    },
}

/// Judges a proxy (or ztunnel/CNI) version against its control plane's.
pub fn proxy_skew(proxy: &IstioVersion, control_plane: &IstioVersion) -> ProxySkew {
    match control_plane.minors_since(proxy) {
        0 => ProxySkew::Same,
        1 => ProxySkew::OneBehind,
        n if n < 0 => ProxySkew::Newer,
        n => ProxySkew::TooOld { minors: n },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IstioVersion {
        IstioVersion::parse(s).unwrap()
    }

    #[test]
    fn targets_are_releases_not_image_tags() {
        for good in ["1.30.3", "1.31.0-rc.1", "1.31.0-beta.0", "2.0.0"] {
            assert!(IstioVersion::parse_release(good).is_ok(), "{good}");
        }
        for bad in [
            "1.3O.3",
            "v1.30",
            "v1.30.3",
            "1.30",
            "1.30.3-rc.0",
            "1.30.3-distroless",
            "1.31-dev",
            "1.30.3-vendor",
            "",
            "1..3",
        ] {
            assert!(IstioVersion::parse_release(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compares_as_semver_not_strings() {
        assert!(v("1.28.10") > v("1.28.9"));
        assert!(v("1.30.0") > v("1.29.12"));
        assert!(v("1.31.0-dev") < v("1.31.0"));
        assert!(v("1.30.0-rc.1") < v("1.30.0"));
    }

    #[test]
    fn variants_and_vendor_suffixes_do_not_change_order() {
        let d = v("1.30.3-distroless");
        assert_eq!(d.variant.as_deref(), Some("distroless"));
        assert_eq!(d.cmp(&v("1.30.3")), Ordering::Equal);
        let g = v("1.30.3-gke.0");
        assert_eq!(g.suffix.as_deref(), Some("gke.0"));
        assert_eq!(g.cmp(&v("1.30.3")), Ordering::Equal);
        assert_eq!(
            v("1.31-dev-distroless").variant.as_deref(),
            Some("distroless")
        );
        assert_eq!(d.to_string(), "1.30.3-distroless");
        assert_eq!(v("1.31-dev").to_string(), "1.31-dev");
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in ["latest", "", "1", "1.x.3", "1.2.3.4", "1.30.3-bad!"] {
            assert!(IstioVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_revision_names_and_image_tags() {
        assert_eq!(version_from_revision("1-30-3"), Some(v("1.30.3")));
        assert_eq!(version_from_revision("1-30"), Some(v("1.30")));
        assert_eq!(version_from_revision("canary"), None);
        assert_eq!(v("1.30.3").revision_name(), "1-30-3");
        assert_eq!(image_tag("docker.io/istio/pilot:1.30.3"), Some("1.30.3"));
        assert_eq!(
            image_tag("localhost:5000/istio/pilot:1.29.6"),
            Some("1.29.6")
        );
        assert_eq!(image_tag("localhost:5000/istio/pilot"), None);
        assert_eq!(image_tag("istio/pilot@sha256:abc"), None);
        assert_eq!(image_version("auto"), None);
    }

    #[test]
    fn kube_versions_parse_vendor_forms() {
        let k = KubeVersion::parse("v1.30.2-eks-1234").unwrap();
        assert_eq!((k.major, k.minor, k.patch), (1, 30, 2));
        assert_eq!(KubeVersion::parse("v1.29.1+k3s1").unwrap().minor, 29);
        assert!(KubeVersion::parse("v0.0.0-master+$Format").is_ok());
        assert!(KubeVersion::parse("garbage").is_err());
    }

    #[test]
    fn skew_rules_follow_the_docs() {
        use UpgradeMode::*;
        assert_eq!(
            control_plane_skew(&v("1.29.6"), &v("1.29.7"), InPlace),
            Skew::Patch
        );
        assert_eq!(
            control_plane_skew(&v("1.29.6"), &v("1.30.3"), InPlace),
            Skew::Allowed(1)
        );
        assert_eq!(
            control_plane_skew(&v("1.28.9"), &v("1.30.3"), InPlace),
            Skew::TooFar {
                minors: 2,
                limit: 1
            }
        );
        assert_eq!(
            control_plane_skew(&v("1.28.9"), &v("1.30.3"), Canary),
            Skew::Allowed(2)
        );
        assert_eq!(
            control_plane_skew(&v("1.27.0"), &v("1.30.3"), Canary),
            Skew::TooFar {
                minors: 3,
                limit: 2
            }
        );
        assert_eq!(
            control_plane_skew(&v("1.30.3"), &v("1.29.6"), InPlace),
            Skew::Allowed(-1)
        );
        assert_eq!(
            control_plane_skew(&v("1.30.3"), &v("1.28.0"), InPlace),
            Skew::TooFar {
                minors: -2,
                limit: -1
            }
        );
        assert_eq!(proxy_skew(&v("1.29.6"), &v("1.30.3")), ProxySkew::OneBehind);
        assert_eq!(proxy_skew(&v("1.30.3"), &v("1.29.6")), ProxySkew::Newer);
        assert_eq!(
            proxy_skew(&v("1.28.0"), &v("1.30.3")),
            ProxySkew::TooOld { minors: 2 }
        );
        assert_eq!(proxy_skew(&v("1.30.1"), &v("1.30.3")), ProxySkew::Same);
    }
}
