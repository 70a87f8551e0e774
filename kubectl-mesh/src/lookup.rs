//! Finding `kubectl-mesh-<name>` binaries: first in the dispatcher's own canonical
//! directory (a krew install symlinks only `kubectl-mesh` into `$KREW_ROOT/bin`; the
//! siblings stay in the store directory the symlink resolves to), then on `PATH`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::catalog;

/// File-name prefix of every subcommand binary.
pub const PREFIX: &str = "kubectl-mesh-";

/// Where a subcommand binary was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In the dispatcher's own (canonicalised) directory.
    Beside,
    /// In a `PATH` directory.
    Path,
}

/// A subcommand binary found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The subcommand name (`precheck` for `kubectl-mesh-precheck`).
    pub name: String,
    /// Full path of the binary.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: Origin,
}

/// The ordered list of directories searched for subcommand binaries.
#[derive(Debug, Clone, Default)]
pub struct Finder {
    own_dir: Option<PathBuf>,
    path: Vec<PathBuf>,
}

impl Finder {
    /// Searches `own_dir` first (when known), then each `path` directory in order.
    pub fn new(own_dir: Option<PathBuf>, path: Vec<PathBuf>) -> Self {
        Self { own_dir, path }
    }

    /// The finder of the running process: the canonical directory of
    /// `std::env::current_exe()` (so a symlink resolves to the real install
    /// directory), then `$PATH`.
    pub fn from_env() -> Self {
        let own_dir = std::env::current_exe()
            .and_then(fs::canonicalize)
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let path = std::env::var_os("PATH").unwrap_or_default();
        Self::new(own_dir, std::env::split_paths(&path).collect())
    }

    /// The finder of the completion helper `kubectl_complete-mesh`: like
    /// [`Finder::from_env`], plus the real directory of the `kubectl-mesh` found on
    /// `PATH`, so a helper copied anywhere on `PATH` still finds the siblings of the
    /// dispatcher krew installed.
    pub fn for_completer() -> Self {
        let mut finder = Self::from_env();
        let dispatcher = format!("kubectl-mesh{}", std::env::consts::EXE_SUFFIX);
        let real_dir = finder
            .path
            .iter()
            .map(|d| d.join(&dispatcher))
            .find(|p| is_executable(p))
            .and_then(|p| fs::canonicalize(p).ok())
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(dir) = real_dir {
            finder.path.insert(0, dir);
        }
        finder
    }

    /// The dispatcher's own directory, if it could be determined.
    pub fn own_dir(&self) -> Option<&Path> {
        self.own_dir.as_deref()
    }

    fn dirs(&self) -> impl Iterator<Item = (&Path, Origin)> {
        let own = self.own_dir.as_deref().map(|d| (d, Origin::Beside));
        let path = self
            .path
            .iter()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| (d.as_path(), Origin::Path));
        own.into_iter().chain(path)
    }

    /// The binary for subcommand `name`: beside the dispatcher first, then on `PATH`.
    pub fn find(&self, name: &str) -> Option<Found> {
        if !is_valid_name(name) {
            return None;
        }
        let file = binary_file_name(name);
        self.dirs().find_map(|(dir, origin)| {
            let path = dir.join(&file);
            is_executable(&path).then(|| Found {
                name: name.to_owned(),
                path,
                origin,
            })
        })
    }

    /// Every subcommand binary found, the first of each name winning (beside the
    /// dispatcher before `PATH`), product subcommands first in catalogue order.
    pub fn available(&self) -> Vec<Found> {
        let mut found: Vec<Found> = Vec::new();
        for (dir, origin) in self.dirs() {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| subcommand_of(&e.file_name()))
                .collect();
            names.sort();
            for name in names {
                if found.iter().any(|f| f.name == name) {
                    continue;
                }
                let path = dir.join(binary_file_name(&name));
                if is_executable(&path) {
                    found.push(Found { name, path, origin });
                }
            }
        }
        found.sort_by(|a, b| catalog::order_key(&a.name).cmp(&catalog::order_key(&b.name)));
        found
    }
}

/// `kubectl-mesh-<name>` plus the platform's executable suffix (`.exe` on Windows).
pub fn binary_file_name(name: &str) -> String {
    format!("{PREFIX}{name}{}", std::env::consts::EXE_SUFFIX)
}

/// The subcommand a file name stands for, if it is `kubectl-mesh-<name>[.exe]`.
pub fn subcommand_of(file_name: &OsStr) -> Option<String> {
    let file_name = file_name.to_str()?;
    let rest = file_name.strip_prefix(PREFIX)?;
    let suffix = std::env::consts::EXE_SUFFIX;
    let name = if suffix.is_empty() {
        rest
    } else {
        let cut = rest.len().checked_sub(suffix.len())?;
        let (name, ext) = rest.split_at_checked(cut)?;
        ext.eq_ignore_ascii_case(suffix).then_some(name)?
    };
    is_valid_name(name).then(|| name.to_owned())
}

/// A subcommand name is non-empty ASCII letters, digits, `-` and `_`, not starting with `-`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kubectl-mesh-lookup-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn touch(dir: &Path, file: &str, mode: u32) {
        let p = dir.join(file);
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn own_dir_wins_over_path_and_non_executables_are_skipped() {
        let (own, on_path) = (scratch("own"), scratch("path"));
        touch(&own, "kubectl-mesh-tag", 0o755);
        touch(&on_path, "kubectl-mesh-tag", 0o755);
        touch(&on_path, "kubectl-mesh-precheck", 0o755);
        touch(&own, "kubectl-mesh-uninstall", 0o644);
        touch(&own, "kubectl-mesh-bad.name", 0o755);
        touch(&own, "unrelated", 0o755);
        let finder = Finder::new(Some(own.clone()), vec![PathBuf::new(), on_path.clone()]);

        let tag = finder.find("tag").unwrap();
        assert_eq!(
            (tag.path, tag.origin),
            (own.join("kubectl-mesh-tag"), Origin::Beside)
        );
        assert_eq!(finder.find("precheck").unwrap().origin, Origin::Path);
        assert_eq!(
            finder.find("uninstall"),
            None,
            "mode 0644 is not a subcommand"
        );
        assert_eq!(finder.find("../tag"), None);

        let names: Vec<_> = finder
            .available()
            .into_iter()
            .map(|f| (f.name, f.origin))
            .collect();
        assert_eq!(
            names,
            [
                ("precheck".into(), Origin::Path),
                ("tag".into(), Origin::Beside)
            ]
        );
        fs::remove_dir_all(own).unwrap();
        fs::remove_dir_all(on_path).unwrap();
    }

    #[test]
    fn extras_sort_after_product_subcommands() {
        let own = scratch("extras");
        for f in [
            "kubectl-mesh-zeta",
            "kubectl-mesh-alpha",
            "kubectl-mesh-uninstall",
            "kubectl-mesh-precheck",
        ] {
            touch(&own, f, 0o755);
        }
        let finder = Finder::new(Some(own.clone()), Vec::new());
        let names: Vec<_> = finder.available().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["precheck", "uninstall", "alpha", "zeta"]);
        fs::remove_dir_all(own).unwrap();
    }

    #[test]
    fn file_names_map_to_subcommands() {
        let of = |s: &str| subcommand_of(OsStr::new(s));
        assert_eq!(of("kubectl-mesh-precheck").as_deref(), Some("precheck"));
        assert_eq!(
            of("kubectl-mesh-upgrade-dataplane").as_deref(),
            Some("upgrade-dataplane")
        );
        assert_eq!(of("kubectl-mesh-"), None);
        assert_eq!(of("kubectl-mesh"), None);
        assert_eq!(of("kubectl-mesh-a.sh"), None);
        assert_eq!(of("kubectl_complete-mesh"), None);
    }
}
