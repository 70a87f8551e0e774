//! The control-plane upgrade: manifest → cluster state → mode and guardrails → server-side dry
//! run of every object → plan (create / update with what changes / unchanged / prune) → confirm,
//! back up, apply in phases with waits, verify — rolled back on failure → data-plane report.

use mesh_common::{
    carry::{self, Carried, How},
    checks::{self, Finding},
    cli::OutputFormat,
    cluster::Checked,
    exit::{ExitStatus, MeshError},
    input,
    manifest::Manifest,
    output::Printer,
    plan::upgrade::{
        self, NamespaceProxies, ObjectPlan, PhaseSummary, Prepared, Target, UpgradePlan,
    },
};
use serde::Serialize;

use crate::{
    args::{Args, UpgradeArgs},
    load::{self, Loaded},
    show,
};

/// Schema of the JSON/YAML report (docs/upgrade-json.md).
pub const SCHEMA: &str = "kubectl-mesh.dev/upgrade/v1";

/// What `-o json|yaml` prints.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    schema_version: &'static str,
    success: bool,
    dry_run: bool,
    refused: bool,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Target>,
    findings: &'a [Finding],
    objects: &'a [ObjectPlan],
    phases: &'a [PhaseSummary],
    data_plane: &'a [NamespaceProxies],
    next: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn read_manifest(files: &[std::path::PathBuf]) -> Result<Manifest, MeshError> {
    let sources = input::read_manifests(files)?;
    let named: Vec<(String, String)> = sources.into_iter().map(|s| (s.name, s.text)).collect();
    Ok(Manifest::parse_files(&named)?)
}

/// The manifest's objects and the Istio namespace: what the plan needs the live version of.
fn objects(manifest: &Manifest, istio_ns: &str) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> =
        manifest.objects.iter().map(|o| o.value.clone()).collect();
    out.push(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": istio_ns},
    }));
    out
}

/// `kubectl mesh upgrade -f ...`.
pub async fn run(args: &Args) -> Result<ExitStatus, MeshError> {
    let a = &args.upgrade;
    let mut printer = Printer::stdio(&args.output);
    if args.snapshot.snapshot.is_some() && !a.change.dry_run {
        return Err(
            MeshError::usage(anyhow::anyhow!("--snapshot cannot change a cluster"))
                .hint("add --dry-run to see the plan against the snapshot, or drop --snapshot"),
        );
    }
    let manifest = read_manifest(&a.files)?;
    let known = args.release.load()?;
    let ns = args.kube.istio_namespace.clone();
    let asks = checks::required_access(&manifest.object_kinds(), &ns);
    let (loaded, live) =
        load::load_with_live(args, asks, &objects(&manifest, &ns), &mut printer).await?;
    let req = upgrade::Request {
        canary: a.canary,
        force: a.force,
        knowledge: known.knowledge(),
    };
    let prepared = upgrade::prepare(
        &loaded.snap,
        &loaded.inv,
        &manifest,
        &req,
        &live.before,
        &live.installed,
    )?;
    if let Some(refusal) = prepared.refusal(a.force) {
        return refuse(&prepared, refusal, &loaded, &mut printer);
    }
    let how = how(a, &prepared.target.revision);
    let ready = carry::check_plan(loaded.conn.as_ref(), &prepared.full, &how, &mut printer).await?;
    let after = ready.checked().map(Checked::applied).unwrap_or_default();
    let plan = upgrade::finish(
        &prepared,
        &loaded.snap,
        &loaded.inv,
        &live.before,
        &after,
        &live.unseen,
    )?;
    let origin = loaded.snap.origin.clone();
    if printer.format == OutputFormat::Table {
        printer.data(&show::plan(&plan, &origin, printer.color()))?;
    }
    if !a.change.dry_run && plan.changes.is_empty() {
        printer.note(&format!(
            "nothing to change: revision `{}` already matches the manifest",
            plan.target.revision
        ))?;
        report(&mut printer, &plan, &origin, false, Ok(None))?;
        return Ok(ExitStatus::Success);
    }
    let question = format!("Proceed with the {}?", plan.target.describe());
    let carried = ready
        .retain(|op| plan.keeps(op))
        .carry_out(&question, &mut printer)
        .await;
    match carried {
        Ok(Carried::Done(done)) => {
            let backup = done.backup.display().to_string();
            if printer.format == OutputFormat::Table {
                printer.data(&show::after(&plan, printer.color()))?;
            }
            report(&mut printer, &plan, &origin, false, Ok(Some(backup)))?;
            Ok(ExitStatus::Success)
        }
        Ok(Carried::Snapshot | Carried::DryRun) => {
            report(&mut printer, &plan, &origin, true, Ok(None))?;
            Ok(ExitStatus::Success)
        }
        Err(stopped) => {
            let backup = stopped
                .execution
                .as_ref()
                .map(|e| e.backup.display().to_string());
            report(
                &mut printer,
                &plan,
                &origin,
                false,
                Err((stopped.error.error.to_string(), backup)),
            )?;
            Err(stopped.error)
        }
    }
}

fn how<'a>(a: &'a UpgradeArgs, revision: &str) -> How<'a> {
    How {
        question: String::new(),
        operation: "upgrade".to_owned(),
        revision: Some(revision.to_owned()),
        command: "upgrade",
        flags: &a.change,
        rollback: !a.rollback.no_rollback,
        timeout: a.wait.timeout,
    }
}

fn report(
    printer: &mut Printer,
    plan: &UpgradePlan,
    origin: &str,
    dry_run: bool,
    outcome: Result<Option<String>, (String, Option<String>)>,
) -> Result<(), MeshError> {
    if printer.format == OutputFormat::Table {
        return Ok(());
    }
    let (success, backup, error) = match outcome {
        Ok(b) => (true, b, None),
        Err((e, b)) => (false, b, Some(e)),
    };
    printer.structured(&Report {
        schema_version: SCHEMA,
        success,
        dry_run,
        refused: false,
        source: origin,
        target: Some(&plan.target),
        findings: &plan.findings,
        objects: &plan.objects,
        phases: &plan.phases,
        data_plane: &plan.data_plane,
        next: &plan.next,
        backup,
        error,
    })?;
    Ok(())
}

/// A guardrail refused: show the checks (or the report) and exit 1 before any dry run.
fn refuse(
    prepared: &Prepared,
    refusal: upgrade::UpgradeError,
    loaded: &Loaded,
    printer: &mut Printer,
) -> Result<ExitStatus, MeshError> {
    if printer.format == OutputFormat::Table {
        let color = printer.color();
        let mut text = format!(
            "Upgrade: {} on {}\n\nChecks\n",
            prepared.target.describe(),
            loaded.snap.origin
        );
        text.push_str(&show::checks(&prepared.findings, color));
        printer.data(&text)?;
    } else {
        let no_objects: [ObjectPlan; 0] = [];
        printer.structured(&Report {
            schema_version: SCHEMA,
            success: false,
            refused: true,
            source: &loaded.snap.origin,
            target: Some(&prepared.target),
            findings: &prepared.findings,
            objects: &no_objects,
            error: Some(refusal.to_string()),
            ..Report::default()
        })?;
    }
    Err(refusal.into())
}
