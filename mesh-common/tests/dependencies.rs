//! Every crate of the workspace uses each dependency it declares: a dependency no source names
//! is dead weight in every build and every audit, so declaring one fails here (CI runs it with
//! the other tests; no extra tool). Read from `cargo metadata`, the resolved truth, not from
//! TOML text: a normal dependency must be named in the crate's `src/` (or `build.rs`), a
//! dev-dependency in `src/`, `tests/`, `benches/` or `examples/`.

use std::path::Path;

#[path = "../../mesh-core/tests/common/workspace.rs"]
mod workspace;

use serde_json::Value;

/// The Rust text of a crate's directories (and its `build.rs`), joined.
fn rust_text(root: &Path, dirs: &[&str]) -> String {
    let mut files = Vec::new();
    for d in dirs {
        workspace::rust_files(&root.join(d), &mut files);
    }
    files.push(root.join("build.rs"));
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `name` occurs in `text` as a whole identifier (`serde_json::`, `use semver;`).
fn names(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn the_identifier_search_is_whole_words() {
    assert!(names("use serde_json::Value;", "serde_json"));
    assert!(!names("use serde_json::Value;", "serde"));
    assert!(names("#[derive(serde::Serialize)]", "serde"));
    assert!(!names("mesh_core_x", "mesh_core"));
}

#[test]
fn every_declared_dependency_is_used() {
    let meta = workspace::metadata(env!("CARGO_MANIFEST_DIR"));
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: Vec<&Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or_default()))
        .collect();
    assert!(packages.len() >= 7, "workspace members: {members:?}");
    let mut unused = Vec::new();
    let mut checked = 0;
    for p in packages {
        let root = Path::new(p["manifest_path"].as_str().unwrap())
            .parent()
            .unwrap();
        let src = rust_text(root, &["src"]);
        let all = rust_text(root, &["src", "tests", "benches", "examples"]);
        for d in p["dependencies"].as_array().unwrap() {
            let name = d["rename"]
                .as_str()
                .or(d["name"].as_str())
                .unwrap()
                .replace('-', "_");
            let text = if d["kind"] == "dev" { &all } else { &src };
            checked += 1;
            if !names(text, &name) {
                unused.push(format!(
                    "{}: {} ({})",
                    p["name"].as_str().unwrap(),
                    d["name"].as_str().unwrap(),
                    d["kind"].as_str().unwrap_or("normal")
                ));
            }
        }
    }
    assert!(checked > 30, "dependencies checked: {checked}");
    assert!(
        unused.is_empty(),
        "declared but never named in the crate's sources; remove them from its Cargo.toml: {unused:#?}"
    );
}
