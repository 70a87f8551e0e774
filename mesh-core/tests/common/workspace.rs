//! What the workspace's structural tests read: `cargo metadata` and the Rust files under a
//! directory. Shared by `mesh-core/tests/boundary.rs` and `mesh-common/tests/{layers,
//! dependencies}.rs` (included with `#[path]`).

use std::path::{Path, PathBuf};

/// `cargo metadata --no-deps` of the workspace holding `manifest_dir` (offline: it resolves
/// nothing).
#[allow(dead_code)]
pub fn metadata(manifest_dir: &str) -> serde_json::Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(manifest_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every `.rs` file under `dir` (none if it does not exist).
#[allow(dead_code)]
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
