//! Human rendering of upgrade, data-plane and rollback plans. Colour never carries meaning
//! alone: every line has its action word or finding symbol.

use mesh_common::{
    checks::{Finding, Outcome},
    output::{Style, finding_lines, paint, table},
    plan::{
        dataplane::DataplanePlan,
        rollback::RollbackPlan,
        upgrade::{Action, NamespaceProxies, ObjectPlan, UpgradePlan},
    },
};

/// How many changed fields an update lists before summarising.
const FIELDS_MAX: usize = 12;
/// How many other paths an update names.
const OTHER_MAX: usize = 4;

fn section(out: &mut String, title: &str, body: &str, color: bool) {
    if body.trim().is_empty() {
        return;
    }
    out.push('\n');
    out.push_str(&paint(title, Style::Bold, color));
    out.push('\n');
    out.push_str(body);
}

/// The checks that did not pass, then how many did.
pub fn checks(findings: &[Finding], color: bool) -> String {
    let shown: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.result != Outcome::Ok)
        .collect();
    let ok = findings.len() - shown.len();
    let mut out = finding_lines(&shown, color);
    out.push_str(&format!(
        "  {} {ok} check(s) passed\n",
        paint("✔", Style::Ok, color)
    ));
    out
}

fn object_lines(o: &ObjectPlan) -> String {
    let word = match o.action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Unchanged => "unchanged",
        Action::Prune => "prune",
        Action::Keep => "keep",
        Action::Unknown => "unknown",
    };
    let mut out = format!("  {word:<9} {}", o.object);
    if o.action == Action::Keep {
        out.push_str("   (marked not-pruned)");
    }
    out.push('\n');
    if let Some(why) = &o.reason {
        out.push_str(&format!("              {why}\n"));
    }
    let Some(d) = &o.diff else { return out };
    for c in d.changes.iter().take(FIELDS_MAX) {
        let before = c.before.as_deref().unwrap_or("(none)");
        let after = c.after.as_deref().unwrap_or("(removed)");
        out.push_str(&format!("              {}: {before} → {after}\n", c.field));
    }
    if d.changes.len() > FIELDS_MAX {
        out.push_str(&format!(
            "              … and {} more field(s)\n",
            d.changes.len() - FIELDS_MAX
        ));
    }
    if !d.other.is_empty() {
        let named: Vec<&str> = d.other.iter().take(OTHER_MAX).map(String::as_str).collect();
        let more = d.other.len().saturating_sub(OTHER_MAX);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "              {} other field(s): {}{tail}\n",
            d.other.len(),
            named.join(", ")
        ));
    }
    out
}

/// An update that changes only labels (typically the owner labels: installer version,
/// revision): listed as a group, not one by one.
fn labels_only(o: &ObjectPlan) -> bool {
    o.action == Action::Update
        && o.diff.as_ref().is_some_and(|d| {
            d.other.is_empty()
                && !d.changes.is_empty()
                && d.changes
                    .iter()
                    .all(|c| c.field.starts_with("metadata.labels."))
        })
}

fn label_group(list: &[&ObjectPlan]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut changes: Vec<String> = list
        .iter()
        .filter_map(|o| o.diff.as_ref())
        .flat_map(|d| d.changes.iter())
        .map(|c| {
            format!(
                "{}: {} → {}",
                c.field.trim_start_matches("metadata.labels."),
                c.before.as_deref().unwrap_or("(none)"),
                c.after.as_deref().unwrap_or("(removed)")
            )
        })
        .collect();
    changes.sort();
    changes.dedup();
    let mut out = format!(
        "  update    {} more object(s), owner labels only (listed with -o json)
",
        list.len()
    );
    for c in changes {
        out.push_str(&format!(
            "              {c}
"
        ));
    }
    out
}

/// The objects: everything but unchanged ones (counted) and label-only updates (grouped).
pub fn objects(plan: &UpgradePlan) -> String {
    let mut out: String = plan
        .objects
        .iter()
        .filter(|o| o.action != Action::Unchanged && !labels_only(o))
        .map(object_lines)
        .collect();
    let grouped: Vec<&ObjectPlan> = plan.objects.iter().filter(|o| labels_only(o)).collect();
    out.push_str(&label_group(&grouped));
    let unchanged = plan.count(Action::Unchanged);
    if unchanged > 0 {
        out.push_str(&format!(
            "  {unchanged} object(s) unchanged (listed with -o json)\n"
        ));
    }
    out
}

fn counts(plan: &UpgradePlan) -> String {
    let n = |a| plan.count(a);
    let some = |a, word: &str| {
        if n(a) > 0 {
            format!(", {} {word}", n(a))
        } else {
            String::new()
        }
    };
    format!(
        "Changes ({} create, {} update, {} unchanged, {} prune{}{})",
        n(Action::Create),
        n(Action::Update),
        n(Action::Unchanged),
        n(Action::Prune),
        some(Action::Keep, "kept"),
        some(Action::Unknown, "unknown"),
    )
}

/// The whole plan of an upgrade.
pub fn plan(plan: &UpgradePlan, origin: &str, color: bool) -> String {
    let mut out = format!(
        "{} {} on {origin}\n",
        paint("Upgrade:", Style::Bold, color),
        plan.target.describe()
    );
    if !plan.server_checked {
        out.push_str("(compared with the snapshot, not checked by an API server)\n");
    }
    section(&mut out, "Checks", &checks(&plan.findings, color), color);
    section(&mut out, &counts(plan), &objects(plan), color);
    section(
        &mut out,
        "Order (each phase waited before the next)",
        &phases(plan),
        color,
    );
    out
}

/// The phases in order: what each changes, how a DaemonSet rolls, what it waits for.
pub fn phases(plan: &UpgradePlan) -> String {
    let mut out = String::new();
    for (i, p) in plan.phases.iter().enumerate() {
        let first = p
            .objects
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let more = match p.objects.len() {
            0 | 1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        out.push_str(&format!("  {}. {:<27} {first}{more}\n", i + 1, p.name));
        if let Some(r) = &p.rollout {
            out.push_str(&format!("     {:<27} {r}\n", ""));
        }
        if !p.waits.is_empty() {
            out.push_str(&format!(
                "     {:<27} waits for {} condition(s)\n",
                "",
                p.waits.len()
            ));
        }
    }
    out
}

/// Pods that still run another proxy, per namespace.
pub fn data_plane(list: &[NamespaceProxies]) -> String {
    if list.is_empty() {
        return "  none: every injected pod already runs the target's proxy\n".to_owned();
    }
    let rows = list
        .iter()
        .map(|n| {
            let proxies = n
                .proxies
                .iter()
                .map(|(p, c)| format!("{p} ×{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![n.namespace.clone(), n.pods.to_string(), proxies]
        })
        .collect();
    indent(&table(&["NAMESPACE", "PODS", "PROXIES"], rows))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// After a successful upgrade: the data plane and what to run next.
pub fn after(plan: &UpgradePlan, color: bool) -> String {
    let mut out = format!(
        "\n{} {}: done\n",
        paint("✔", Style::Ok, color),
        plan.target.describe()
    );
    section(
        &mut out,
        "Data plane: pods not on the new proxy until restarted",
        &data_plane(&plan.data_plane),
        color,
    );
    if !plan.next.is_empty() {
        out.push_str("\nNext:\n");
        for n in &plan.next {
            out.push_str(&format!("  {n}\n"));
        }
    }
    out
}

/// The plan of `dataplane`.
pub fn dataplane(plan: &DataplanePlan, origin: &str, color: bool) -> String {
    let target = plan.target.as_ref().map_or_else(String::new, |t| {
        let v = t
            .version
            .as_ref()
            .map_or("version unknown".to_owned(), ToString::to_string);
        match &t.tag {
            Some(tag) => format!(" to tag `{tag}` → revision `{}` ({v})", t.revision),
            None => format!(" to revision `{}` ({v})", t.revision),
        }
    });
    let mut out = format!(
        "{} move the data plane{target} on {origin}\n",
        paint("Dataplane:", Style::Bold, color)
    );
    let relabel: Vec<Vec<String>> = plan
        .relabel
        .iter()
        .map(|r| {
            let labels = r
                .labels
                .iter()
                .map(|(k, v)| v.as_ref().map_or(format!("-{k}"), |v| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                r.namespace.clone(),
                labels,
                r.before.clone(),
                r.after.clone(),
            ]
        })
        .collect();
    if !relabel.is_empty() {
        section(
            &mut out,
            "Namespace labels",
            &indent(&table(
                &["NAMESPACE", "LABELS", "INJECTED BY NOW", "AFTER"],
                relabel,
            )),
            color,
        );
    }
    waypoints_and_ambient(&mut out, plan, color);
    let restart: Vec<Vec<String>> = plan
        .restart
        .iter()
        .map(|r| {
            let now = r
                .current
                .iter()
                .map(|(p, c)| format!("{p} ×{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let v = r
                .expected
                .version
                .as_ref()
                .map_or("?".to_owned(), ToString::to_string);
            vec![
                r.workload.to_string(),
                r.pods.to_string(),
                now,
                format!("{} {v}", r.expected.revision),
            ]
        })
        .collect();
    let title = format!(
        "Restarts ({} workload(s) in {} batch(es) of at most {})",
        plan.restart.len(),
        plan.batches(),
        plan.batch
    );
    let body = if restart.is_empty() {
        "  none\n".to_owned()
    } else {
        indent(&table(
            &["WORKLOAD", "PODS", "PROXIES NOW", "AFTER"],
            restart,
        ))
    };
    section(&mut out, &title, &body, color);
    out.push_str(&format!(
        "\nLeft alone: {} workload(s) already current, {} without a proxy, {} pod(s) opted out\n",
        plan.current, plan.without_proxy, plan.opted_out
    ));
    let mut notes = String::new();
    for m in &plan.manual {
        notes.push_str(&format!(
            "  ‼ restart by hand: pod {} ({}), {} → {}\n",
            m.pod, m.owner, m.current, m.expected
        ));
    }
    for s in &plan.stuck {
        notes.push_str(&format!("  ‼ not restarted: pod {}: {}\n", s.pod, s.why));
    }
    section(&mut out, "Needs attention", &notes, color);
    out
}

/// The waypoints a data-plane move takes onto the target, and the ambient namespaces in scope
/// (no restart: their pods have no sidecar).
fn waypoints_and_ambient(out: &mut String, plan: &DataplanePlan, color: bool) {
    if !plan.waypoints.is_empty() {
        let rows = plan
            .waypoints
            .iter()
            .map(|w| {
                let v = w
                    .expected
                    .version
                    .as_ref()
                    .map_or("?".to_owned(), ToString::to_string);
                vec![
                    format!("{}/{}", w.namespace, w.name),
                    w.by.clone(),
                    w.before.clone(),
                    format!("{} {v}", w.after),
                ]
            })
            .collect();
        section(
            out,
            "Waypoints (Gateway labelled istio.io/rev, re-rendered by the target's istiod, waited on)",
            &indent(&table(&["WAYPOINT", "MOVED WITH", "NOW", "AFTER"], rows)),
            color,
        );
    }
    if !plan.ambient_namespaces.is_empty() {
        let rows = plan
            .ambient_namespaces
            .iter()
            .map(|a| {
                vec![
                    a.namespace.clone(),
                    format!("{}/{}", a.captured, a.pods),
                    a.waypoint.clone().unwrap_or_else(|| "none".to_owned()),
                    if a.sidecars > 0 {
                        format!(
                            "no restart; {} pod(s) with a sidecar planned below",
                            a.sidecars
                        )
                    } else {
                        "no restart: no sidecar, ztunnel carries its pods".to_owned()
                    },
                ]
            })
            .collect();
        section(
            out,
            "Ambient namespaces",
            &indent(&table(
                &["NAMESPACE", "CAPTURED", "WAYPOINT", "RESTART"],
                rows,
            )),
            color,
        );
    }
}

/// The plan of `rollback`.
pub fn rollback(plan: &RollbackPlan, backup: &str, taken: &str, color: bool) -> String {
    let mut out = format!(
        "{} restore {backup}\n  taken by `{taken}`\n",
        paint("Rollback:", Style::Bold, color)
    );
    let rows = plan
        .steps
        .iter()
        .map(|s| vec![s.action.word().to_owned(), s.object.to_string()])
        .collect();
    section(
        &mut out,
        "Objects",
        &indent(&table(&["ACTION", "OBJECT"], rows)),
        color,
    );
    out
}
