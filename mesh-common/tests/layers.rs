//! The shell's layers point one way (DESIGN.md §2): `cluster` — connecting, fetching, the change
//! engine — holds no printer, prompt, flag or exit code. It reports events to a sink its caller
//! owns, so `output`, `cli`, `carry`, `exit`, `input` and `knowledge` may use `cluster`, never
//! the reverse (once `cluster` imported the printer: `cluster` → `output` → `cli` → `cluster`).

use std::path::Path;

#[path = "../../mesh-core/tests/common/workspace.rs"]
mod workspace;

/// Modules of mesh-common that `cluster` must not reach.
const ABOVE_CLUSTER: [&str; 6] = ["output", "cli", "carry", "exit", "input", "knowledge"];

/// The crate-level modules a source names: `crate::x` paths and `use crate::{x, y::z}` lists.
fn crate_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in list.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c != ',' && c != '{' {
                    item.push(c);
                }
            }
            items.push(item);
            out.extend(items.iter().map(|i| head(i)));
        } else {
            out.push(head(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn head(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn the_module_reader_sees_nested_lists() {
    let text = "use crate::{\n    ObjRef,\n    output::{Confirmation, Printer},\n};\nfn f() { crate::cli::x(); }";
    assert_eq!(crate_modules(text), ["ObjRef", "output", "cli"]);
}

#[test]
fn the_cluster_layer_imports_no_printer_flags_or_exit_codes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cluster");
    let mut files = Vec::new();
    workspace::rust_files(&dir, &mut files);
    assert!(files.len() > 5, "found {files:?}");
    let mut offences = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for m in crate_modules(&text) {
            if ABOVE_CLUSTER.contains(&m.as_str()) {
                offences.push(format!("{}: crate::{m}", f.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "`cluster` reaches a layer above it (report events to a Sink instead): {offences:#?}"
    );
}

/// Fields of the flags every changing command shares (`cli::ChangeFlags`, `TimeoutFlag`,
/// `NoRollbackFlag`): declared once, in mesh-common, never again in a binary.
const SHARED_FLAGS: [&str; 6] = [
    "pub dry_run: bool",
    "pub yes: bool",
    "pub timeout: Duration",
    "pub no_rollback: bool",
    "pub backup_dir: Option<PathBuf>",
    "pub force_conflicts: bool",
];

#[test]
fn the_shared_change_flags_are_declared_once_in_mesh_common() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cli = std::fs::read_to_string(root.join("src/cli.rs")).unwrap();
    for field in SHARED_FLAGS {
        assert_eq!(
            cli.matches(field).count(),
            1,
            "`{field}` in mesh-common's cli.rs"
        );
    }
    let workspace = root.parent().unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(workspace).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("kubectl-mesh") && dir.join("src").is_dir() {
            workspace::rust_files(&dir.join("src"), &mut files);
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("kubectl-mesh-upgrade/src/args.rs")),
        "found {files:?}"
    );
    let mut again = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for field in SHARED_FLAGS {
            if text.contains(field) {
                again.push(format!("{}: {field}", f.display()));
            }
        }
    }
    assert!(
        again.is_empty(),
        "flatten mesh_common::cli::{{ChangeFlags, TimeoutFlag, NoRollbackFlag}} instead: {again:#?}"
    );
}
