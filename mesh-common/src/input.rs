//! Reading what the user hands in — snapshot files and manifests — from a file, a directory of
//! files or stdin (`-`): one reader for every command, with one set of errors: missing,
//! unreadable, a directory where a file is needed, not text, too large.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use mesh_core::error::{Class, Classify};

/// Largest input read (a snapshot of a 20,000-pod cluster is well under this).
pub const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

/// Why an input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Missing or unreadable.
    #[error("cannot read {what} `{}`", path.display())]
    Unreadable {
        /// snapshot, manifest.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory where a file is needed.
    #[error("{what} `{}` is a directory", path.display())]
    Directory {
        /// snapshot, manifest.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A directory with no manifest files.
    #[error("directory `{}` has no .yaml, .yml or .json files", path.display())]
    EmptyDirectory {
        /// The path.
        path: PathBuf,
    },
    /// Binary or not UTF-8.
    #[error("{what} `{}` is not text (UTF-8 YAML or JSON)", path.display())]
    NotText {
        /// snapshot, manifest.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("{what} `{}` is larger than {} MB", path.display(), MAX_INPUT_BYTES / 1024 / 1024)]
    TooLarge {
        /// snapshot, manifest.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// stdin given twice.
    #[error("`-` (stdin) can be given only once")]
    StdinTwice,
}

impl Classify for InputError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hints(&self) -> Vec<String> {
        let h = match self {
            Self::Unreadable {
                what: "snapshot", ..
            }
            | Self::Directory {
                what: "snapshot", ..
            }
            | Self::NotText {
                what: "snapshot", ..
            }
            | Self::TooLarge {
                what: "snapshot", ..
            } => "pass a file written by `kubectl get ... -A -o yaml` or `--dump-snapshot`",
            Self::StdinTwice => "read one manifest from stdin and pass the others as files",
            Self::Unreadable {
                what: "release data",
                ..
            }
            | Self::Directory {
                what: "release data",
                ..
            }
            | Self::NotText {
                what: "release data",
                ..
            }
            | Self::TooLarge {
                what: "release data",
                ..
            } => {
                "pass a release data file (format: docs/release-data.md), or drop --release-data and KUBECTL_MESH_RELEASE_DATA to use the built-in data"
            }
            _ => {
                "pass the output of `istioctl manifest generate` or `helm template` (a file, a directory of files, or `-` for stdin)"
            }
        };
        vec![h.to_owned()]
    }
}

/// Reads one text input: a file, or stdin for `-`.
pub fn read_text(path: &Path, what: &'static str) -> Result<String, InputError> {
    let unreadable = |source| InputError::Unreadable {
        what,
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
    } else {
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if meta.is_dir() {
            return Err(InputError::Directory {
                what,
                path: path.to_owned(),
            });
        }
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes))
            .map_err(unreadable)?;
    }
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    if bytes.contains(&0) {
        return Err(InputError::NotText {
            what,
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|_| InputError::NotText {
        what,
        path: path.to_owned(),
    })
}

/// One manifest document source: its name (for line-numbered errors) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// File path, or `-`.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// Reads manifests: every `-f` in order; a directory contributes its `.yaml`, `.yml` and
/// `.json` files in name order (not recursively); `-` is stdin, at most once.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<Source>, InputError> {
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(InputError::StdinTwice);
    }
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() != "-" && p.is_dir() {
            let files = manifest_files(p)?;
            for f in files {
                out.push(Source {
                    name: f.display().to_string(),
                    text: read_text(&f, "manifest")?,
                });
            }
            continue;
        }
        out.push(Source {
            name: p.display().to_string(),
            text: read_text(p, "manifest")?,
        });
    }
    Ok(out)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::Unreadable {
        what: "manifest",
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(InputError::EmptyDirectory {
            path: dir.to_owned(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_directories_and_bad_inputs() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("b.yaml");
        std::fs::write(&a, "kind: A\n").unwrap();
        std::fs::write(tmp.path().join("a.yml"), "kind: B\n").unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "x").unwrap();
        let got = read_manifests(&[tmp.path().to_owned()]).unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(names, ["kind: B\n", "kind: A\n"]);
        assert!(matches!(
            read_text(tmp.path(), "snapshot"),
            Err(InputError::Directory { .. })
        ));
        let missing = tmp.path().join("nope.yaml");
        let e = read_text(&missing, "snapshot").unwrap_err();
        assert_eq!(e.class(), Class::Usage);
        assert!(e.to_string().starts_with("cannot read snapshot `"), "{e}");
        let bin = tmp.path().join("bin.yaml");
        std::fs::write(&bin, [0x7f, b'E', b'L', b'F', 0, 1]).unwrap();
        assert!(matches!(
            read_text(&bin, "manifest"),
            Err(InputError::NotText { .. })
        ));
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(matches!(
            read_manifests(&[empty]),
            Err(InputError::EmptyDirectory { .. })
        ));
        assert!(matches!(
            read_manifests(&["-".into(), "-".into()]),
            Err(InputError::StdinTwice)
        ));
    }
}
