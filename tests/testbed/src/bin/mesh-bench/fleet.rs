//! The fleet benchmark: N test-bed clusters, each with Istio and injected pods, read by one
//! `kubectl mesh precheck --all-contexts` against each cluster's own precheck.
//!
//! Measured, medians of `--runs`: every cluster's single precheck (`--context cN`), the fleet
//! read concurrently (`--parallel N`), the fleet read one at a time (`--parallel 1`), and peak
//! RSS of fleets of 1…N clusters read concurrently, then of all N at `--parallel` 1…N. Targets:
//! the concurrent fleet within 1.3× the slowest single precheck; peak memory growing at most
//! linearly with the clusters read at once, and bounded by `--parallel`.

use std::{fmt::Write as _, path::Path, time::Instant};

use anyhow::{Result, ensure};
use mesh_testbed::{
    Cluster, ScaleRevision, ScaleSpec,
    multicluster::{self, Entry, User},
    scale,
};

/// Markers around the fleet section of the results file (`--fleet-only` replaces what is
/// between them).
pub const START: &str = "<!-- fleet benchmark: start -->";
/// End marker.
pub const END: &str = "<!-- fleet benchmark: end -->";

/// One run: wall seconds and peak RSS in MB (exit 0 or 1: the precheck did its work).
fn run(argv: &[String], scratch: &Path) -> Result<(f64, f64)> {
    let (wall, rss, out) = super::timed(argv, scratch)?;
    ensure!(
        matches!(out.status.code(), Some(0 | 1)),
        "{argv:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok((wall, rss))
}

/// Medians of `runs` runs.
fn measure(argv: &[String], runs: usize, scratch: &Path) -> Result<(f64, f64)> {
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    run(argv, scratch)?; // warm-up
    for _ in 0..runs {
        let (w, r) = run(argv, scratch)?;
        walls.push(w);
        rss.push(r);
    }
    Ok((super::median(walls), super::median(rss)))
}

/// Starts `n` clusters at once, each with the default revision at `ISTIO_OLD_TAG` and
/// `namespaces × pods` injected pods.
fn clusters(n: usize, namespaces: usize, pods: usize) -> Result<Vec<Cluster>> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || -> Result<Cluster> {
                let c = Cluster::start()?;
                let old = c.versions().get("ISTIO_OLD_TAG")?.to_owned();
                multicluster::install_primary(&c, &old, &format!("c{i}"), "bench")?;
                scale::generate(
                    &c,
                    ScaleSpec {
                        namespaces,
                        pods_per_namespace: pods,
                        revisions: vec![ScaleRevision::injection_enabled(&old)],
                        prefix: format!("fleet{i}"),
                        wait_running: true,
                        ..ScaleSpec::default()
                    },
                )?;
                Ok(c)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("a cluster panicked"))?
        })
        .collect()
}

/// Runs the fleet benchmark and returns its markdown section (between the markers).
pub fn bench(
    precheck: &str,
    n: usize,
    size: (usize, usize),
    runs: usize,
    scratch: &Path,
) -> Result<String> {
    ensure!(n >= 2, "--fleet needs at least 2 clusters");
    let t0 = Instant::now();
    let cs = clusters(n, size.0, size.1)?;
    let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let entries: Vec<Entry<'_>> = cs
        .iter()
        .zip(&names)
        .map(|(c, name)| Entry {
            name,
            cluster: Some(c),
            user: User::Admin,
        })
        .collect();
    let kc = multicluster::kubeconfig(scratch, &entries)?
        .display()
        .to_string();
    eprintln!(
        "[bench] fleet of {n} clusters ready in {:.0?}",
        t0.elapsed()
    );
    let argv = |rest: &[&str]| -> Vec<String> {
        let mut v = vec![
            precheck.to_owned(),
            "--kubeconfig".into(),
            kc.clone(),
            "-o".into(),
            "json".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let mut singles = Vec::new();
    for name in &names {
        singles.push(measure(&argv(&["--context", name]), runs, scratch)?);
    }
    let par = n.to_string();
    let fleet = measure(
        &argv(&["--all-contexts", "--parallel", &par]),
        runs,
        scratch,
    )?;
    let serial = measure(&argv(&["--all-contexts", "--parallel", "1"]), runs, scratch)?;
    let mut by_clusters = Vec::new();
    for k in 1..=n {
        let mut a: Vec<String> = vec!["--parallel".into(), k.to_string()];
        for name in &names[..k] {
            a.extend(["--context".to_owned(), name.clone()]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        by_clusters.push((k, measure(&argv(&a), runs, scratch)?));
    }
    let mut by_parallel = Vec::new();
    for p in 1..=n {
        let ps = p.to_string();
        by_parallel.push((
            p,
            measure(&argv(&["--all-contexts", "--parallel", &ps]), runs, scratch)?,
        ));
    }
    drop(cs);
    Ok(report(
        n,
        size,
        runs,
        &singles,
        fleet,
        serial,
        &by_clusters,
        &by_parallel,
    ))
}

#[allow(clippy::too_many_arguments)]
fn report(
    n: usize,
    size: (usize, usize),
    runs: usize,
    singles: &[(f64, f64)],
    fleet: (f64, f64),
    serial: (f64, f64),
    by_clusters: &[(usize, (f64, f64))],
    by_parallel: &[(usize, (f64, f64))],
) -> String {
    let slowest = singles.iter().map(|s| s.0).fold(0.0, f64::max);
    let single_rss = singles.iter().map(|s| s.1).fold(0.0, f64::max);
    let mut out = format!("{START}\n## Fleet: {n} clusters read by one precheck\n\n");
    let _ = writeln!(
        out,
        "{n} test-bed clusters at once, each with Istio (default revision, `ISTIO_OLD_TAG`) and \
         {} namespaces × {} injected pods; one kubeconfig with a context per cluster. Medians of \
         {runs} runs after a warm-up, `-o json`. All {n} API servers and precheck share this \
         machine's cores, so a concurrent read competes with itself for CPU in a way real \
         clusters (each its own API server) do not.\n",
        size.0, size.1
    );
    out.push_str("| run | wall | peak RSS |\n|---|---|---|\n");
    for (i, (w, r)) in singles.iter().enumerate() {
        let _ = writeln!(out, "| `precheck --context c{i}` | {w:.2} s | {r:.0} MB |");
    }
    let _ = writeln!(
        out,
        "| `precheck --all-contexts --parallel {n}` | {:.2} s | {:.0} MB |",
        fleet.0, fleet.1
    );
    let _ = writeln!(
        out,
        "| `precheck --all-contexts --parallel 1` | {:.2} s | {:.0} MB |",
        serial.0, serial.1
    );
    out.push_str("\nPeak RSS by clusters read at once (`--context c0 … c<k-1> --parallel k`) and by `--parallel` over all clusters:\n\n| k | clusters, parallel k | all clusters, parallel k |\n|---|---|---|\n");
    for ((k, (wc, rc)), (_, (wp, rp))) in by_clusters.iter().zip(by_parallel) {
        let _ = writeln!(
            out,
            "| {k} | {rc:.0} MB ({wc:.2} s) | {rp:.0} MB ({wp:.2} s) |"
        );
    }
    let ratio = fleet.0 / slowest;
    let growth: Vec<f64> = by_clusters
        .windows(2)
        .map(|w| w[1].1.1 - w[0].1.1)
        .collect();
    let per_cluster = by_clusters.first().map_or(0.0, |f| f.1.1);
    let linear = growth.iter().all(|g| *g <= per_cluster * 1.1);
    let bounded = by_parallel
        .first()
        .is_some_and(|p1| p1.1.1 <= single_rss * 1.2);
    let _ = writeln!(
        out,
        "\n| target | measured | met |\n|---|---|---|\n\
         | {n} clusters concurrently ≤ 1.3× the slowest single precheck | {ratio:.2}× ({:.2} s vs {slowest:.2} s) | {} |\n\
         | peak RSS grows at most linearly with clusters read at once | +{} MB per cluster (one cluster alone: {per_cluster:.0} MB) | {} |\n\
         | peak RSS bounded by `--parallel` (all {n} at `--parallel 1` ≈ one cluster) | {:.0} MB vs {single_rss:.0} MB | {} |",
        fleet.0,
        yes(ratio <= 1.3),
        growth
            .iter()
            .map(|g| format!("{g:.0}"))
            .collect::<Vec<_>>()
            .join(", +"),
        yes(linear),
        by_parallel.first().map_or(0.0, |p| p.1.1),
        yes(bounded)
    );
    out.push_str(END);
    out.push('\n');
    out
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// Replaces the fleet section of `text` (or appends it).
pub fn splice(text: &str, section: &str) -> String {
    match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!(
                "{}{}{}",
                &text[..a],
                section.trim_end(),
                &text[b + END.len()..]
            )
        }
        _ => format!("{}\n{section}", text.trim_end()),
    }
}
