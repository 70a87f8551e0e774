//! Rendering: the plan as kubectl-like tables grouped by kind, what blocks it with the commands
//! that resolve it, and the JSON/YAML report (schema `kubectl-mesh.dev/uninstall/v1`).

use mesh_common::{
    ObjRef,
    inventory::Inventory,
    output::{Style, paint, table},
    plan::uninstall::{Blocker, Target, UninstallPlan},
};
use serde::Serialize;

/// Schema id of the report.
pub const SCHEMA: &str = "kubectl-mesh.dev/uninstall/v1";

/// The whole report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    schema_version: &'static str,
    /// Uninstalled (or, for a dry run, would proceed).
    pub success: bool,
    dry_run: bool,
    source: &'a str,
    refused: bool,
    #[serde(flatten)]
    plan: &'a UninstallPlan,
    /// Path of the backup file, once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Objects deleted by this run.
    pub deleted: Vec<ObjRef>,
    /// Where a failed run left the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl<'a> Report<'a> {
    /// A report of a plan not yet executed.
    pub fn new(plan: &'a UninstallPlan, source: &'a str, dry_run: bool) -> Self {
        Self {
            schema_version: SCHEMA,
            success: !plan.refused(),
            dry_run,
            source,
            refused: plan.refused(),
            plan,
            backup: None,
            deleted: Vec::new(),
            state: None,
        }
    }
}

/// What is uninstalled, in words.
pub fn target_text(plan: &UninstallPlan, inv: &Inventory) -> String {
    match &plan.target {
        Target::Revision { revision } => {
            let detail = inv.control_plane(revision).map(|c| {
                let v = c
                    .version
                    .as_ref()
                    .map_or("unknown version".to_owned(), |v| {
                        format!("Istio {}", v.without_variant())
                    });
                format!(" ({v}, installed by {})", c.install.short())
            });
            format!("revision `{revision}`{}", detail.unwrap_or_default())
        }
        Target::Purge { include_crds } => {
            let what = if *include_crds {
                "every control plane and the Istio CRDs"
            } else {
                "every control plane"
            };
            let revs = if plan.revisions.is_empty() {
                "none".to_owned()
            } else {
                plan.revisions.join(", ")
            };
            format!("{what} (revisions: {revs})")
        }
    }
}

/// The plan: heading, objects grouped by kind in deletion order, warnings, blockers.
pub fn plan_text(plan: &UninstallPlan, inv: &Inventory, origin: &str, color: bool) -> String {
    let mut out = format!(
        "{} {} from {origin}\n\n",
        paint("Uninstall", Style::Bold, color),
        target_text(plan, inv)
    );
    if plan.steps.is_empty() {
        out.push_str("Nothing to delete.\n");
    } else {
        out.push_str(&paint(
            &format!("Objects to delete ({}), in this order:", plan.steps.len()),
            Style::Bold,
            color,
        ));
        out.push('\n');
        let rows = plan
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.phase.describe().to_owned(),
                    s.object.kind.clone(),
                    s.object.namespace.clone().unwrap_or_else(|| "-".into()),
                    s.object.name.clone(),
                    s.owner.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["PHASE", "KIND", "NAMESPACE", "NAME", "BELONGS TO"],
            rows,
        ));
    }
    for w in &plan.warnings {
        out.push_str(&format!(
            "{} warning: {w}\n",
            paint("‼", Style::Warn, color)
        ));
    }
    if !plan.blockers.is_empty() {
        out.push('\n');
        out.push_str(&paint("Still in use:", Style::Bold, color));
        out.push('\n');
        for b in &plan.blockers {
            out.push_str(&blocker_text(b, plan.force, color));
        }
    }
    out.push_str(&unread_text(plan, color));
    out
}

/// What the plan could not judge: the sources it lacks, and why.
fn unread_text(plan: &UninstallPlan, color: bool) -> String {
    if plan.unread.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{}\n",
        paint(
            "Not judged (the plan is incomplete without them):",
            Style::Bold,
            color
        )
    );
    for g in &plan.unread {
        out.push_str(&format!(
            "  {} {}: {}\n",
            paint("○", Style::Dim, color),
            g.source.describe(),
            g.reason
        ));
    }
    out
}

fn blocker_text(b: &Blocker, force: bool, color: bool) -> String {
    let (sym, style, note) = match (b.overridable, force) {
        (false, _) => ("×", Style::Error, " (--force does not override this)"),
        (true, true) => ("‼", Style::Warn, " (overridden by --force)"),
        (true, false) => ("×", Style::Error, ""),
    };
    let mut out = format!(
        "  {} {}: {}{note}\n",
        paint(sym, style, color),
        b.subject,
        b.message
    );
    if let Some(c) = &b.command {
        out.push_str(&format!("      {} {c}\n", paint("fix:", Style::Dim, color)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_common::plan::uninstall::{BlockerKind, Phase, Step};

    fn plan(force: bool) -> UninstallPlan {
        UninstallPlan {
            target: Target::Revision {
                revision: "default".into(),
            },
            revisions: vec!["default".into()],
            steps: vec![Step {
                phase: Phase::Webhooks,
                object: ObjRef {
                    api_version: "admissionregistration.k8s.io/v1".into(),
                    kind: "MutatingWebhookConfiguration".into(),
                    namespace: None,
                    name: "istio-sidecar-injector".into(),
                },
                owner: "revision default".into(),
                uid: None,
            }],
            blockers: vec![Blocker {
                kind: BlockerKind::Namespace,
                subject: "namespace demo".into(),
                message: "new pods get the proxy of revision `default`".into(),
                command: Some(
                    "kubectl label namespace demo istio.io/rev=1-30-3 --overwrite".into(),
                ),
                overridable: true,
            }],
            warnings: Vec::new(),
            crds: Vec::new(),
            resources: Vec::new(),
            force,
            unread: Vec::new(),
        }
    }

    #[test]
    fn blockers_show_their_fix_and_whether_force_overrides_them() {
        let text = plan_text(
            &plan(false),
            &Inventory::default(),
            "context `admin`",
            false,
        );
        assert!(
            text.starts_with("Uninstall revision `default` from context `admin`\n\n"),
            "{text}"
        );
        assert!(text.contains("webhook configurations   MutatingWebhookConfiguration   -           istio-sidecar-injector   revision default"), "{text}");
        assert!(text.contains("  × namespace demo: new pods get the proxy of revision `default`\n      fix: kubectl label namespace demo istio.io/rev=1-30-3 --overwrite\n"), "{text}");
        let forced = plan_text(&plan(true), &Inventory::default(), "x", false);
        assert!(forced.contains("‼ namespace demo: new pods get the proxy of revision `default` (overridden by --force)"), "{forced}");
    }

    #[test]
    fn json_report_carries_the_plan_and_the_verdict() {
        let p = plan(false);
        let v = serde_json::to_value(Report::new(&p, "snapshot s.yaml", true)).unwrap();
        assert_eq!(v["schemaVersion"], SCHEMA);
        assert_eq!(v["success"], false);
        assert_eq!(v["refused"], true);
        assert_eq!(v["target"]["mode"], "revision");
        assert_eq!(v["steps"][0]["kind"], "MutatingWebhookConfiguration");
        assert_eq!(v["steps"][0]["phase"], "webhooks");
        assert_eq!(v["blockers"][0]["kind"], "namespace");
    }
}
