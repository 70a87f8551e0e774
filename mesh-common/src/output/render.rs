//! Human renderers: findings grouped by category, and the inventory tables ("what do I have").

use std::collections::BTreeMap;

use super::{Style, paint, table};
use crate::{
    checks::{Category, Finding, Outcome, Summary},
    inventory::{Injection, Inventory},
};

/// Findings, one line each with symbol, word, message and id; for those not ok, their objects
/// and hint below. Colour never carries meaning alone: the symbol and the word say it too.
pub fn finding_lines(list: &[&Finding], color: bool) -> String {
    let mut out = String::new();
    for f in list {
        let (sym, style, word) = match f.result {
            Outcome::Ok => ("✔", Style::Ok, ""),
            Outcome::Warning => ("‼", Style::Warn, "warning: "),
            Outcome::Error => ("×", Style::Error, "error: "),
            Outcome::Skipped => ("○", Style::Dim, "skipped: "),
        };
        out.push_str(&format!(
            "  {} {word}{} {}\n",
            paint(sym, style, color),
            f.message,
            paint(&format!("[{}]", f.id), Style::Dim, color)
        ));
        if f.result != Outcome::Ok {
            for o in &f.objects {
                out.push_str(&format!("      {o}\n"));
            }
            if let Some(h) = &f.hint {
                out.push_str(&format!(
                    "      {} {h}\n",
                    paint("hint:", Style::Bold, color)
                ));
            }
        }
    }
    out
}

/// Findings grouped by category (see [`finding_lines`]), then a summary line.
pub fn findings(list: &[Finding], color: bool) -> String {
    let mut by_cat: BTreeMap<Category, Vec<&Finding>> = BTreeMap::new();
    for f in list {
        by_cat.entry(f.category).or_default().push(f);
    }
    let mut out = String::new();
    for (cat, items) in by_cat {
        out.push_str(&paint(cat.title(), Style::Bold, color));
        out.push('\n');
        out.push_str(&finding_lines(&items, color));
    }
    let s = Summary::of(list);
    out.push_str(&format!(
        "\nSummary: {} ok, {} warning(s), {} error(s), {} skipped\n",
        s.ok, s.warning, s.error, s.skipped
    ));
    out
}

/// The inventory tables: control planes, tags, namespaces with injection, proxies.
pub fn inventory_tables(inv: &Inventory, color: bool) -> String {
    let mut out = String::new();
    let heading = |t: &str| paint(t, Style::Bold, color) + "\n";
    out.push_str(&heading("Control planes"));
    if inv.control_planes.is_empty() {
        out.push_str("  none found\n");
    } else {
        out.push_str(&control_planes(inv));
    }
    if !inv.tags.is_empty() {
        out.push('\n');
        out.push_str(&heading("Revision tags"));
        let rows = inv
            .tags
            .iter()
            .map(|t| vec![t.name.clone(), t.revision.clone(), ns_using(inv, &t.name)])
            .collect();
        out.push_str(&table(&["TAG", "REVISION", "NAMESPACES"], rows));
    }
    let injected: Vec<_> = inv
        .namespaces
        .iter()
        .filter(|n| !matches!(n.injection, Injection::NotEnabled))
        .collect();
    if !injected.is_empty() {
        out.push('\n');
        out.push_str(&heading("Namespaces"));
        let rows = injected
            .iter()
            .map(|n| {
                let label = match (&n.injection_label, &n.rev_label) {
                    (Some(i), Some(r)) => format!("istio-injection={i},istio.io/rev={r}"),
                    (Some(i), None) => format!("istio-injection={i}"),
                    (None, Some(r)) => format!("istio.io/rev={r}"),
                    (None, None) => "-".into(),
                };
                let proxies = inv.proxies.iter().filter(|p| p.namespace == n.name).count();
                vec![
                    n.name.clone(),
                    label,
                    injection_text(&n.injection),
                    proxies.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["NAMESPACE", "LABEL", "INJECTED BY", "PROXIES"],
            rows,
        ));
    }
    out.push('\n');
    out.push_str(&heading("Proxies"));
    out.push_str(&proxies_table(inv));
    out
}

fn control_planes(inv: &Inventory) -> String {
    let rows = inv
        .control_planes
        .iter()
        .map(|c| {
            let tags: Vec<_> = inv
                .tags
                .iter()
                .filter(|t| t.revision == c.revision)
                .map(|t| t.name.as_str())
                .collect();
            let proxies = inv
                .proxies
                .iter()
                .filter(|p| p.revision.as_deref() == Some(&c.revision))
                .count();
            vec![
                c.revision.clone(),
                c.version
                    .as_ref()
                    .map_or("unknown".into(), ToString::to_string),
                format!("{}/{}", c.ready, c.replicas),
                c.install.short().to_owned(),
                if tags.is_empty() {
                    "-".into()
                } else {
                    tags.join(",")
                },
                proxies.to_string(),
                format!("{}/{}", c.namespace, c.deployment),
            ]
        })
        .collect();
    table(
        &[
            "REVISION",
            "VERSION",
            "READY",
            "INSTALLED BY",
            "TAGS",
            "PROXIES",
            "DEPLOYMENT",
        ],
        rows,
    )
}

fn ns_using(inv: &Inventory, tag: &str) -> String {
    let names: Vec<_> = inv
        .namespaces
        .iter()
        .filter(|n| matches!(&n.injection, Injection::Revision { tag: Some(t), .. } if t == tag))
        .map(|n| n.name.as_str())
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn injection_text(i: &Injection) -> String {
    match i {
        Injection::Revision {
            revision,
            tag: Some(t),
            ..
        } => format!("{revision} (tag {t})"),
        Injection::Revision { revision, .. } => revision.clone(),
        Injection::Disabled => "disabled".into(),
        Injection::NotEnabled => "-".into(),
        Injection::Dangling { .. } => "nothing (no such revision)".into(),
        Injection::Overlap { webhooks } => format!("{} injectors (overlap)", webhooks.len()),
    }
}

/// Proxies per revision and version.
pub fn proxies_table(inv: &Inventory) -> String {
    let counts = inv.proxy_counts();
    if counts.is_empty() {
        return "  none found\n".into();
    }
    let rows = counts
        .into_iter()
        .map(|((rev, ver), n)| vec![rev, ver, n.to_string()])
        .collect();
    table(&["REVISION", "PROXY VERSION", "PODS"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::{checks::Finding, testkit::Snap};

    #[test]
    fn findings_show_symbol_word_objects_and_hint_without_colour() {
        let f = vec![
            Finding::ok("a.b", Category::Kubernetes, "fine"),
            Finding::error("c.d", Category::Webhooks, "broken")
                .objects(["X/y".to_owned()])
                .hint("fix it"),
            Finding::skipped("e.f", Category::Namespaces, "cannot read pods: forbidden"),
        ];
        let text = findings(&f, false);
        assert!(text.contains("Kubernetes\n  ✔ fine [a.b]\n"), "{text}");
        assert!(
            text.contains("  × error: broken [c.d]\n      X/y\n      hint: fix it\n"),
            "{text}"
        );
        assert!(
            text.contains("○ skipped: cannot read pods: forbidden"),
            "{text}"
        );
        assert!(text.ends_with("Summary: 1 ok, 0 warning(s), 1 error(s), 1 skipped\n"));
    }

    #[test]
    fn inventory_lists_revisions_tags_namespaces_and_proxies() {
        let (_, inv) = Snap::new()
            .control_plane("default", "1.29.6")
            .control_plane("1-30-3", "1.30.3")
            .tag("prod", "1-30-3")
            .namespace("shop", &[("istio.io/rev", "prod")])
            .pod("shop", "web-1", Some("1-30-3"), "1.30.3")
            .build();
        let text = inventory_tables(&inv, false);
        assert!(
            text.contains("1-30-3     1.30.3    2/2     istioctl       prod   1"),
            "{text}"
        );
        assert!(text.contains("prod   1-30-3     shop"), "{text}");
        assert!(
            text.contains("shop        istio.io/rev=prod   1-30-3 (tag prod)   1"),
            "{text}"
        );
    }
}
