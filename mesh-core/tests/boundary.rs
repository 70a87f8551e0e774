//! The core stays pure (DESIGN.md §2): it depends on no client, runtime, CLI or terminal crate
//! (so it cannot import the shell: the shell crate depends on it, not the reverse), and its
//! sources do no I/O of their own — no files, environment, processes, network or printing.

use std::path::Path;

#[path = "common/workspace.rs"]
mod workspace;

/// The only crates the core may depend on: plain data, parsing, versions and calendar dates.
const ALLOWED: [&str; 7] = [
    "jiff",
    "k8s-openapi",
    "semver",
    "serde",
    "serde_json",
    "serde-saphyr",
    "thiserror",
];

/// Source text that means I/O or printing (tests and the testkit excepted).
const FORBIDDEN: [&str; 10] = [
    "std::fs",
    "std::env",
    "std::process",
    "std::net",
    "std::io::stdin",
    "println!",
    "eprintln!",
    "print!(",
    "tokio",
    "kube::",
];

/// The core's normal (non-dev, non-build) dependencies as cargo resolves them: `cargo metadata`
/// reads every way of declaring one (tables, `[target.'cfg(..)'.dependencies]`, renames) that
/// a line scan of the TOML would miss.
fn core_dependencies() -> Vec<String> {
    let meta = workspace::metadata(env!("CARGO_MANIFEST_DIR"));
    let core = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == env!("CARGO_PKG_NAME"))
        .expect("mesh-core in the metadata");
    core["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"].is_null())
        .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_core_depends_only_on_data_crates() {
    let deps = core_dependencies();
    assert!(deps.contains(&"serde".to_owned()), "read: {deps:?}");
    let extra: Vec<&String> = deps
        .iter()
        .filter(|d| !ALLOWED.contains(&d.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "mesh-core must stay pure; move code needing {extra:?} into mesh-common"
    );
}

/// The text of a source file before its `#[cfg(test)]` module, if any.
fn non_test_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

#[test]
fn the_core_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    workspace::rust_files(&src, &mut files);
    assert!(files.len() > 10, "found {files:?}");
    let mut offences = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs" || name == "testkit.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in FORBIDDEN {
            if non_test_part(&text).contains(needle) {
                offences.push(format!("{}: {needle}", f.display()));
            }
        }
    }
    assert!(offences.is_empty(), "I/O in the core: {offences:#?}");
}
