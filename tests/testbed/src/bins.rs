//! Where the test bed's binaries and charts live: versions come from `tests/testbed/versions.env`
//! (read at run time, the one source of truth shared with `build.sh`), binaries and the older
//! chart generation from the build cache. Also the two Istio releases the scenarios install
//! ([`Releases`]): each an image tag and the charts that render it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The versions file next to this crate's manifest.
pub fn versions_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("versions.env")
}

/// The cache root: `$KUBECTL_MESH_TESTBED_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/kubectl-mesh-testbed`
/// (the same rule as `build.sh`).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KUBECTL_MESH_TESTBED_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"));
    base.join("kubectl-mesh-testbed")
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// Parsed `versions.env`.
#[derive(Debug, Clone)]
pub struct Versions(HashMap<String, String>);

impl Versions {
    /// Reads and parses `versions.env` (`KEY=value` lines, `#` comments).
    pub fn load() -> Result<Self> {
        let path = versions_file();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let pairs = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
        Self(pairs.collect())
    }

    /// The value of `key`, or an error naming the file.
    pub fn get(&self, key: &str) -> Result<&str> {
        match self.0.get(key) {
            Some(v) => Ok(v),
            None => bail!("{key} missing from {}", versions_file().display()),
        }
    }
}

/// Paths of every binary the test bed runs, all checked to exist.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Versions they were built at.
    pub versions: Versions,
    dirs: HashMap<&'static str, PathBuf>,
    /// kwok's stage configuration (`kwok-<v>/stages.yaml`).
    pub kwok_stages: PathBuf,
    /// The "old" and "new" Istio releases, with their charts.
    pub releases: Releases,
}

/// The charts a release is rendered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charts {
    /// The charts built into the test bed's istioctl.
    Istioctl,
    /// The `manifests/` directory of another istio.io/istio module version, cached by
    /// `build.sh` (`istio-charts-<version>/manifests`), rendered with `istioctl --manifests`.
    Manifests(PathBuf),
}

impl Charts {
    /// From a `versions.env` value: `istioctl`, or an istio.io/istio module version.
    fn from_setting(value: &str) -> Self {
        if value == "istioctl" {
            Self::Istioctl
        } else {
            Self::Manifests(cache_dir().join(format!("istio-charts-{value}/manifests")))
        }
    }

    /// istioctl's flags selecting these charts (`--manifests <dir>`, or none), for `install`
    /// and `manifest generate` alike.
    pub fn args(&self) -> Vec<String> {
        match self {
            Self::Istioctl => vec![],
            Self::Manifests(dir) => vec!["--manifests".to_owned(), dir.display().to_string()],
        }
    }
}

/// One Istio release of the test bed: the image tag its control plane runs and the charts that
/// render its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Image tag, e.g. `1.31.1` (where the product reads a control plane's version from).
    pub tag: String,
    /// The charts of this release.
    pub charts: Charts,
}

impl Release {
    /// The revision name a canary of this release gets: the tag with dashes (`1-31-1`).
    pub fn revision(&self) -> String {
        self.tag.replace('.', "-")
    }

    /// The `.0` release `offset` minors away from this one (`1.32.0` for 1.30.5 and 2, `1.29.0`
    /// for -1): a version the skew rules judge, without being a release of the test bed.
    pub fn minor_offset(&self, offset: i64) -> String {
        let (major, minor) = minor_of(&self.tag).unwrap_or((1, 0));
        format!("{major}.{}.0", minor.saturating_add_signed(offset))
    }
}

/// The test bed's two releases: `ISTIO_OLD_TAG` rendered with `ISTIO_OLD_CHARTS`, and
/// `ISTIO_NEW_TAG` with `ISTIO_NEW_CHARTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Releases {
    /// The installed ("old") control plane of the scenarios.
    pub old: Release,
    /// The target ("new") control plane.
    pub new: Release,
}

impl Releases {
    fn from_versions(v: &Versions) -> Result<Self> {
        let release = |tag: &str, charts: &str| -> Result<Release> {
            Ok(Release {
                tag: v.get(tag)?.to_owned(),
                charts: Charts::from_setting(v.get(charts)?),
            })
        };
        Ok(Self {
            old: release("ISTIO_OLD_TAG", "ISTIO_OLD_CHARTS")?,
            new: release("ISTIO_NEW_TAG", "ISTIO_NEW_CHARTS")?,
        })
    }

    /// The charts that render image `tag`: the old release's for a tag of its minor or an older
    /// one (e.g. a `1.29.x` or `1.30.x` control plane when the old release is 1.30.5), the new
    /// release's for any other — so every scenario renders a version with the charts of its
    /// generation.
    pub fn charts_for(&self, tag: &str) -> &Charts {
        match (minor_of(tag), minor_of(&self.old.tag)) {
            (Some(m), Some(old)) if m <= old => &self.old.charts,
            _ => &self.new.charts,
        }
    }
}

/// The releases of `versions.env`, read once: for tests that name a release's revision before
/// (or without) starting a cluster. Panics when the file cannot be read or lacks a key.
pub fn releases() -> &'static Releases {
    static RELEASES: OnceLock<Releases> = OnceLock::new();
    RELEASES.get_or_init(|| {
        Versions::load()
            .and_then(|v| Releases::from_versions(&v))
            .unwrap_or_else(|e| panic!("mesh-testbed: {e:#}"))
    })
}

/// `(major, minor)` of an image tag such as `1.30.5` or `1.31-dev`.
fn minor_of(tag: &str) -> Option<(u64, u64)> {
    let mut parts = tag.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Every binary name [`Binaries::path`] knows.
pub const NAMES: [&str; 10] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "krew",
    "validate-krew-manifest",
    "istioctl",
    "kwok-stages",
];

impl Binaries {
    /// Locates all binaries; fails naming `tests/testbed/build.sh` if any is not built.
    pub fn locate() -> Result<Self> {
        let v = Versions::load()?;
        let cache = cache_dir();
        let dir = |prefix: &str, key: &str| -> Result<PathBuf> {
            Ok(cache.join(format!("{prefix}-{}", v.get(key)?)))
        };
        let (k8s, etcd, kwok) = (
            dir("k8s", "K8S_VERSION")?,
            dir("etcd", "ETCD_VERSION")?,
            dir("kwok", "KWOK_VERSION")?,
        );
        let (krew, istioctl) = (
            dir("krew", "KREW_VERSION")?,
            dir("istioctl", "ISTIO_MODULE_VERSION")?,
        );
        let mut dirs = HashMap::new();
        for n in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
        ] {
            dirs.insert(n, k8s.join("bin"));
        }
        dirs.insert("etcd", etcd.join("bin"));
        dirs.insert("kwok", kwok.join("bin"));
        dirs.insert("krew", krew.join("bin"));
        dirs.insert("validate-krew-manifest", krew.join("bin"));
        dirs.insert("istioctl", istioctl.join("bin"));
        let b = Self {
            releases: Releases::from_versions(&v)?,
            versions: v,
            dirs,
            kwok_stages: kwok.join("stages.yaml"),
        };
        b.check()?;
        Ok(b)
    }

    fn check(&self) -> Result<()> {
        let mut missing: Vec<PathBuf> = NAMES[..9]
            .iter()
            .map(|n| self.path(n))
            .filter(|p| !p.is_file())
            .collect();
        if !self.kwok_stages.is_file() {
            missing.push(self.kwok_stages.clone());
        }
        for r in [&self.releases.old, &self.releases.new] {
            if let Charts::Manifests(dir) = &r.charts
                && !dir.join("profiles/default.yaml").is_file()
            {
                missing.push(dir.clone());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "test bed binaries are not built (missing: {}); run `bash tests/testbed/build.sh` \
             (tens of minutes the first time; cached in {})",
            list.join(", "),
            cache_dir().display()
        )
    }

    /// Path of binary `name` (one of [`NAMES`]); `kwok-stages` gives the stages file.
    pub fn path(&self, name: &str) -> PathBuf {
        if name == "kwok-stages" {
            return self.kwok_stages.clone();
        }
        match self.dirs.get(name) {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_env() {
        let v = Versions::parse("# c\nA=1\n\nB = \"x y\"\n");
        assert_eq!(v.get("A").unwrap(), "1");
        assert_eq!(v.get("B").unwrap(), "x y");
        assert!(v.get("C").is_err());
    }

    #[test]
    fn real_versions_file_has_every_key() {
        let v = Versions::load().unwrap();
        for k in [
            "K8S_VERSION",
            "ETCD_VERSION",
            "KWOK_VERSION",
            "KREW_VERSION",
            "ISTIO_MODULE_VERSION",
        ] {
            v.get(k).unwrap();
        }
        for k in [
            "ISTIOCTL_VERSION",
            "ISTIO_OLD_TAG",
            "ISTIO_OLD_CHARTS",
            "ISTIO_NEW_TAG",
            "ISTIO_NEW_CHARTS",
            "GATEWAY_API_VERSION",
        ] {
            v.get(k).unwrap();
        }
    }

    fn release(tag: &str, charts: Charts) -> Release {
        Release {
            tag: tag.to_owned(),
            charts,
        }
    }

    #[test]
    fn each_tag_renders_with_the_charts_of_its_generation() {
        let old = Charts::Manifests(PathBuf::from("/c/old/manifests"));
        let r = Releases {
            old: release("1.30.5", old.clone()),
            new: release("1.31.1", Charts::Istioctl),
        };
        for (tag, want) in [
            ("1.30.5", &old),
            ("1.30.9", &old),
            ("1.29.2", &old),
            ("1.31.1", &Charts::Istioctl),
            ("1.31-dev", &Charts::Istioctl),
            ("1.32.0", &Charts::Istioctl),
            ("latest", &Charts::Istioctl),
        ] {
            assert_eq!(r.charts_for(tag), want, "{tag}");
        }
        assert_eq!(old.args(), ["--manifests", "/c/old/manifests"]);
        assert!(Charts::Istioctl.args().is_empty());
        assert_eq!(r.new.revision(), "1-31-1");
        assert_eq!(r.old.minor_offset(2), "1.32.0");
        assert_eq!(r.old.minor_offset(-1), "1.29.0");
    }

    #[test]
    fn real_releases_name_both_generations() {
        let r = Releases::from_versions(&Versions::load().unwrap()).unwrap();
        assert_ne!(r.old.charts, r.new.charts, "two chart generations");
        assert_eq!(r.charts_for(&r.old.tag), &r.old.charts);
        assert_eq!(r.charts_for(&r.new.tag), &r.new.charts);
    }
}
