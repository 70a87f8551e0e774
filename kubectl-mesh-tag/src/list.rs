//! `list`: tags, their revisions and versions, the namespaces they inject; revisions without a
//! tag and namespaces labelled with a revision directly; namespaces no injector answers.

use mesh_common::{
    cli::OutputFormat,
    exit::{ExitStatus, MeshError},
    output::{Printer, table},
    plan::tag::{TagList, list as list_tags},
};

use crate::load::Loaded;

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// The table: `TAG REVISION VERSION NAMESPACES`, `-` for a revision's own row.
pub fn render(l: &TagList) -> String {
    if l.items.is_empty() {
        return "No Istio revisions or tags found.\n".to_owned();
    }
    let rows = l
        .items
        .iter()
        .map(|r| {
            vec![
                or_dash(r.tag.as_deref().unwrap_or_default()),
                r.revision.clone(),
                r.revision_version
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned()),
                or_dash(&r.namespaces.join(",")),
            ]
        })
        .collect();
    table(&["TAG", "REVISION", "VERSION", "NAMESPACES"], rows)
}

/// `list`.
pub fn list(loaded: &Loaded, printer: &mut Printer) -> Result<ExitStatus, MeshError> {
    let l = list_tags(&loaded.snap, &loaded.inv);
    match printer.format {
        OutputFormat::Table => {
            printer.data(&render(&l))?;
            for u in &l.unresolved {
                printer.note(&format!(
                    "warning: namespace `{}` ({}): {}",
                    u.namespace, u.label, u.problem
                ))?;
            }
        }
        OutputFormat::Json | OutputFormat::Yaml => printer.structured(&l)?,
    }
    Ok(ExitStatus::Success)
}
