//! Where the test bed's binaries live: versions come from `tests/testbed/versions.env` (read at
//! run time, the one source of truth shared with `build.sh`), binaries from the build cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
            "ISTIO_NEW_TAG",
            "GATEWAY_API_VERSION",
        ] {
            v.get(k).unwrap();
        }
    }
}
