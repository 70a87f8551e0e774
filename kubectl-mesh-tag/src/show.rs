//! Human rendering of tag plans: the blast radius table, checks, the changes and notes.
//! Colour never carries meaning alone: every check has its symbol and the plan its words.

use mesh_common::{
    checks::Finding,
    output::{Style, paint, table},
    plan::tag::{NamespaceImpact, RemovePlan, SetPlan, Step},
    version::IstioVersion,
};

fn version(v: Option<&IstioVersion>) -> String {
    v.map_or_else(|| "version unknown".to_owned(), ToString::to_string)
}

fn proxies(n: &NamespaceImpact) -> String {
    if n.proxies.is_empty() {
        return "-".to_owned();
    }
    n.proxies
        .iter()
        .map(|(v, c)| format!("{v} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The namespaces table.
pub fn namespaces(list: &[NamespaceImpact]) -> String {
    let rows = list
        .iter()
        .map(|n| {
            vec![
                n.namespace.clone(),
                n.selected_by.clone(),
                n.before.describe(),
                n.after.describe(),
                n.pods.to_string(),
                proxies(n),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "SELECTED BY",
            "INJECTED BY NOW",
            "AFTER",
            "PODS",
            "PROXIES NOW",
        ],
        rows,
    )
}

/// Checks, one line each with symbol, message and id; objects and hint below.
pub fn findings(list: &[Finding], color: bool) -> String {
    mesh_common::output::finding_lines(&list.iter().collect::<Vec<_>>(), color)
}

fn steps(list: &[Step]) -> String {
    let rows = list
        .iter()
        .map(|s| {
            let action = serde_json::to_value(s.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            vec![
                format!("  {action}"),
                s.object.to_string(),
                s.detail.clone(),
            ]
        })
        .collect();
    let text = table(&["", "", ""], rows);
    text.lines().skip(1).map(|l| l.to_owned() + "\n").collect()
}

fn section(out: &mut String, title: &str, body: &str, color: bool) {
    if body.trim().is_empty() {
        return;
    }
    out.push('\n');
    out.push_str(&paint(title, Style::Bold, color));
    out.push('\n');
    out.push_str(body);
}

fn notes(list: &[String]) -> String {
    list.iter().map(|n| format!("  - {n}\n")).collect()
}

/// The plan of `set`.
pub fn set_plan(plan: &SetPlan, previous_version: Option<&IstioVersion>, color: bool) -> String {
    let target = format!(
        "`{}` ({})",
        plan.revision,
        version(plan.revision_version.as_ref())
    );
    let mut out = match &plan.previous_revision {
        Some(prev) if prev != &plan.revision => {
            format!(
                "Move tag `{}` from `{prev}` ({}) to {target}\n",
                plan.tag,
                version(previous_version)
            )
        }
        Some(_) => format!("Re-apply tag `{}` → {target}\n", plan.tag),
        None => format!("Create tag `{}` → {target}\n", plan.tag),
    };
    let radius = if plan.namespaces.is_empty() {
        "  none: no namespace or pod selects this tag yet\n".to_owned()
    } else {
        namespaces(&plan.namespaces)
    };
    section(
        &mut out,
        &format!(
            "Blast radius (PODS: get the proxy of `{}` on their next restart)",
            plan.revision
        ),
        &radius,
        color,
    );
    section(&mut out, "Checks", &findings(&plan.findings, color), color);
    section(&mut out, "Changes", &steps(&plan.steps), color);
    section(&mut out, "Notes", &notes(&plan.notes), color);
    out
}

/// The plan of `remove`.
pub fn remove_plan(plan: &RemovePlan, color: bool) -> String {
    let rev = plan
        .revision
        .as_deref()
        .map_or_else(String::new, |r| format!(" (points at `{r}`)"));
    let mut out = format!("Remove tag `{}`{rev}\n", plan.tag);
    let users = if plan.namespaces.is_empty() {
        "  none\n".to_owned()
    } else {
        namespaces(&plan.namespaces)
    };
    section(
        &mut out,
        "Namespaces using it (AFTER: what injects their pods afterwards)",
        &users,
        color,
    );
    section(&mut out, "Checks", &findings(&plan.findings, color), color);
    section(&mut out, "Changes", &steps(&plan.steps), color);
    section(&mut out, "Notes", &notes(&plan.notes), color);
    out
}
