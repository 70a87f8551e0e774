//! The core stays pure (DESIGN.md §2): it depends on no client, runtime, CLI or terminal crate
//! (so it cannot import the shell: the shell crate depends on it, not the reverse), and its
//! sources do no I/O of their own — no files, environment, processes, network or printing.

use std::path::{Path, PathBuf};

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

fn manifest_dependencies(toml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            out.push(name.trim().to_owned());
        }
    }
    out
}

#[test]
fn the_core_depends_only_on_data_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest_dependencies(&toml);
    assert!(deps.contains(&"serde".to_owned()), "parsed: {deps:?}");
    let extra: Vec<&String> = deps
        .iter()
        .filter(|d| !ALLOWED.contains(&d.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "mesh-core must stay pure; move code needing {extra:?} into mesh-common"
    );
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a source file before its `#[cfg(test)]` module, if any.
fn non_test_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

#[test]
fn the_core_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
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
