//! The fleet as text: one table with a row per cluster, the checks across clusters, then each
//! cluster's findings (only what is not ok, unless `-v`), a summary and the verdict.

use mesh_common::{
    checks::{Finding, Outcome, Summary},
    cluster::fleet::{ClusterRead, Failure},
    exit::ExitStatus,
    fleet::{FleetChecks, Row, plan::Way},
    output::{self, Printer, Style, paint, table},
};

use super::{Ask, Judged, failure_text};

/// Everything the fleet output shows.
pub struct Fleet<'a> {
    /// Every cluster, read or not.
    pub reads: &'a [ClusterRead<Judged>],
    /// The checks across clusters.
    pub fleet: &'a FleetChecks,
    /// What was asked.
    pub ask: &'a Ask,
    /// `-v`.
    pub verbose: bool,
    /// The exit status.
    pub status: ExitStatus,
}

/// The whole text output.
pub fn render(v: &Fleet<'_>, color: bool) -> String {
    let read = v.reads.iter().filter(|r| r.result.is_ok()).count();
    let mut out = format!(
        "Fleet: {} cluster(s), {read} read, {} not read\n",
        v.reads.len(),
        v.reads.len() - read
    );
    if let Some(w) = &v.ask.want {
        let how = if w.canary {
            "as a canary".to_owned()
        } else if let Some(r) = &w.revision {
            format!("as revision `{r}`")
        } else {
            "in place where it can, else as a canary".to_owned()
        };
        out.push_str(&format!("Target: Istio {} {how}\n", w.version));
    }
    out.push('\n');
    out.push_str(&fleet_table(v));
    out.push('\n');
    out.push_str(&paint("Multi-cluster mesh", Style::Bold, color));
    out.push('\n');
    out.push_str(&across(v, color));
    for r in v.reads {
        out.push('\n');
        out.push_str(&cluster_section(v, r, color));
    }
    out.push('\n');
    out.push_str(&summary(v));
    out
}

/// The columns every fleet table starts with (see [`row_cells`]).
const ROW_HEADERS: [&str; 6] = [
    "CONTEXT",
    "KUBERNETES",
    "CONTROL PLANES",
    "TAGS",
    "PROXIES",
    "MODE",
];

/// A row for a cluster that was not read: its name, `-` up to the last column, the reason.
fn unread_cells(name: &str, columns: usize, f: &Failure) -> Vec<String> {
    let mut cells = vec![name.to_owned()];
    cells.extend(std::iter::repeat_n("-".to_owned(), columns - 2));
    cells.push(format!("not read: {}", f.kind));
    cells
}

fn fleet_table(v: &Fleet<'_>) -> String {
    let target = v.ask.want.is_some();
    let mut headers = ROW_HEADERS.to_vec();
    if target {
        headers.push("PLAN");
    }
    headers.push("VERDICT");
    let rows = v
        .reads
        .iter()
        .map(|r| match &r.result {
            Ok(j) => {
                let mut cells = row_cells(&r.name, j.kube_version.as_ref(), &j.row);
                if let Some(p) = &j.plan {
                    cells.push(format!("{} ({})", p.way, p.revision));
                }
                cells.push(verdict(j));
                cells
            }
            Err(f) => unread_cells(&r.name, headers.len(), f),
        })
        .collect();
    table(&headers, rows)
}

/// CONTEXT, KUBERNETES, CONTROL PLANES, TAGS, PROXIES, MODE.
fn row_cells(
    name: &str,
    kube: Option<&mesh_common::version::KubeVersion>,
    row: &Row,
) -> Vec<String> {
    let or_none = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let planes = row
        .revisions
        .iter()
        .map(|c| {
            let ver = c.version.as_ref().map_or("?".into(), ToString::to_string);
            format!("{} {ver}", c.revision)
        })
        .chain(row.remote_revisions.iter().map(|r| format!("{r} (remote)")))
        .collect();
    vec![
        name.to_owned(),
        kube.map_or("-".into(), ToString::to_string),
        or_none(planes),
        or_none(row.tags.iter().map(|(t, r)| format!("{t}→{r}")).collect()),
        or_none(
            row.proxies
                .iter()
                .map(|(v, n)| format!("{v}: {n}"))
                .collect(),
        ),
        row.mode.map_or("unknown".into(), |m| m.to_string()),
    ]
}

fn verdict(j: &Judged) -> String {
    let s = Summary::of(&j.findings);
    if j.blocked {
        let mut ids: Vec<&str> = j
            .plan
            .as_ref()
            .map(|p| p.blocked_by.clone())
            .unwrap_or_else(|| {
                j.findings
                    .iter()
                    .filter(|f| f.result == Outcome::Error)
                    .map(|f| f.id)
                    .collect()
            });
        ids.dedup();
        let more = ids.len().saturating_sub(2);
        ids.truncate(2);
        let tail = if more > 0 {
            format!(" +{more}")
        } else {
            String::new()
        };
        return format!("blocked: {}{tail}", ids.join(", "));
    }
    match (s.error, s.warning) {
        (0, 0) => "ok".into(),
        (0, w) => format!("ok, {w} warning(s)"),
        (e, w) => format!("{e} error(s), {w} warning(s)"),
    }
}

/// The multi-cluster findings: what is not ok, plus the meshes found and the upgrade order.
fn across(v: &Fleet<'_>, color: bool) -> String {
    let shown: Vec<&Finding> = v
        .fleet
        .findings
        .iter()
        .filter(|f| {
            v.verbose
                || f.result != Outcome::Ok
                || matches!(f.id, "fleet.meshes" | "fleet.upgrade-order")
        })
        .collect();
    let mut out = output::finding_lines(&shown, color);
    let hidden = v.fleet.findings.len() - shown.len();
    if hidden > 0 {
        out.push_str(&format!(
            "  {hidden} more check(s) passed (-v lists them)\n"
        ));
    }
    out
}

fn cluster_section(v: &Fleet<'_>, r: &ClusterRead<Judged>, color: bool) -> String {
    let j = match &r.result {
        Ok(j) => j,
        Err(f) => {
            let mut out = format!("{}\n", paint(&r.name, Style::Bold, color));
            out.push_str(&format!(
                "  {} could not be read: {}\n",
                paint("×", Style::Error, color),
                failure_text(f)
            ));
            for h in &f.hints {
                out.push_str(&format!(
                    "      {} {h}\n",
                    paint("hint:", Style::Bold, color)
                ));
            }
            return out;
        }
    };
    let mut out = format!("{} — {}\n", paint(&r.name, Style::Bold, color), j.origin);
    if let Some(p) = j.plan.as_ref().filter(|p| p.way == Way::Remote) {
        out.push_str(&format!(
            "  plan: remote cluster (revision `{}`): upgraded after its primary, see the upgrade order\n",
            p.revision
        ));
    } else if let Some(p) = &j.plan {
        out.push_str(&format!("  plan: {} as revision `{}`", p.way, p.revision));
        if let Some(o) = &p.other {
            out.push_str(&format!(
                " ({} `{}` is blocked by {})",
                o.way,
                o.revision,
                o.blocked_by.join(", ")
            ));
        }
        out.push('\n');
    }
    let shown: Vec<&Finding> = j
        .findings
        .iter()
        .filter(|f| v.verbose || f.result != Outcome::Ok)
        .collect();
    out.push_str(&output::finding_lines(&shown, color));
    let s = Summary::of(&j.findings);
    out.push_str(&format!(
        "  {} ok, {} warning(s), {} error(s), {} skipped\n",
        s.ok, s.warning, s.error, s.skipped
    ));
    out
}

fn summary(v: &Fleet<'_>) -> String {
    let unread = v.reads.iter().filter(|r| r.result.is_err()).count();
    let blocked = v
        .reads
        .iter()
        .filter(|r| r.result.as_ref().is_ok_and(|j| j.blocked))
        .count();
    let ok = v.reads.len() - unread - blocked;
    let across = Summary::of(&v.fleet.findings);
    let mut out = format!(
        "Summary: {} cluster(s): {ok} ok, {blocked} blocked, {unread} not read; across clusters: {} warning(s), {} error(s)\n",
        v.reads.len(),
        across.warning,
        across.error
    );
    let target = v.ask.want.is_some();
    out.push_str(match (v.status, target) {
        (ExitStatus::Failed, _) => "Not every cluster could be read: see above (exit 3).\n",
        (ExitStatus::Blocked, true) => {
            "Not every cluster is safe to upgrade: fix the findings above (exit 1).\n"
        }
        (ExitStatus::Blocked, false) => {
            "The fleet has problems: see the findings above (exit 1).\n"
        }
        (_, true) => "Safe to upgrade every cluster read: no blocking findings.\n",
        (_, false) => "No blocking findings.\n",
    });
    if unread > 0 && v.status != ExitStatus::Failed {
        out.push_str(&format!(
            "{unread} cluster(s) not read (--allow-unreachable): their part of the fleet is not judged.\n"
        ));
    }
    out
}

/// `kubectl mesh version --context …`: what Istio runs in each context.
pub fn versions(printer: &mut Printer, reads: &[ClusterRead<Judged>]) -> std::io::Result<()> {
    if printer.format != mesh_common::cli::OutputFormat::Table {
        return printer.structured(&super::json::Versions::new(reads));
    }
    let rows = reads
        .iter()
        .map(|r| match &r.result {
            Ok(j) => row_cells(&r.name, j.kube_version.as_ref(), &j.row),
            Err(f) => unread_cells(&r.name, ROW_HEADERS.len(), f),
        })
        .collect();
    let mut text = table(&ROW_HEADERS, rows);
    for r in reads {
        if let Err(f) = &r.result {
            text.push_str(&format!("{}: {}\n", r.name, failure_text(f)));
        }
    }
    printer.data(&text)
}
