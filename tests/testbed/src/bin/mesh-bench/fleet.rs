//! The fleet benchmark: N test-bed clusters, each with Istio and injected pods, read by one
//! `kubectl mesh precheck --all-contexts` against each cluster's own precheck.
//!
//! Measured, medians of `--runs`: every cluster's single precheck (`--context cN`), the fleet
//! read concurrently (`--parallel N`), the fleet read one at a time (`--parallel 1`), and peak
//! RSS of fleets of 1…N clusters read concurrently, then of all N at `--parallel` 1…N; the API
//! servers' CPU per run (all of them share this machine's cores); then the singles and the
//! fleet again through the test bed's proxy with every request delayed, as over a network.
//! Targets: the concurrent fleet within 1.3× the slowest single precheck; peak memory growing at
//! most linearly with the clusters read at once, and bounded by `--parallel`.

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use mesh_testbed::{
    Cluster, ScaleRevision, ScaleSpec,
    fault::{FaultProxy, Rule, Upstream},
    multicluster::{self, Entry, Spelled, User},
    scale,
};

/// Markers around the fleet section of the results file (`--fleet-only` replaces what is
/// between them).
pub const START: &str = "<!-- fleet benchmark: start -->";
/// End marker.
pub const END: &str = "<!-- fleet benchmark: end -->";

/// One run's wall seconds, peak RSS in MB and CPU seconds (exit 0 or 1: precheck did its work).
type Run = (f64, f64, f64);

fn run(argv: &[String], scratch: &Path) -> Result<Run> {
    let t = super::timed(argv, scratch)?;
    ensure!(
        matches!(t.out.status.code(), Some(0 | 1)),
        "{argv:?} exited {:?}: {}",
        t.out.status.code(),
        String::from_utf8_lossy(&t.out.stderr).trim()
    );
    Ok((t.wall, t.rss_mb, t.cpu))
}

/// Medians of `runs` runs, after a warm-up.
fn measure(argv: &[String], runs: usize, scratch: &Path) -> Result<Run> {
    let mut all: Vec<Run> = Vec::new();
    run(argv, scratch)?;
    for _ in 0..runs {
        all.push(run(argv, scratch)?);
    }
    let m = |f: fn(&Run) -> f64| super::median(all.iter().map(f).collect());
    Ok((m(|r| r.0), m(|r| r.1), m(|r| r.2)))
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

/// Delay the test bed's proxy adds to every request in the "over a network" runs: a round
/// trip to a cloud API server from a laptop or a CI runner.
const RTT: Duration = Duration::from_millis(25);

/// What one set of runs measured: each single precheck, the fleet at `--parallel N` and 1, and
/// peak RSS by clusters read at once and by `--parallel`.
#[derive(Default)]
struct Figures {
    singles: Vec<Run>,
    fleet: Run,
    serial: Run,
    by_clusters: Vec<(usize, Run)>,
    by_parallel: Vec<(usize, Run)>,
    /// API servers' CPU seconds per single precheck (the mean over clusters) and per fleet run.
    server_cpu: (f64, f64),
}

impl Figures {
    fn slowest(&self) -> f64 {
        self.singles.iter().map(|s| s.0).fold(0.0, f64::max)
    }
}

/// CPU seconds the clusters' API servers have used so far.
fn server_cpu(cs: &[Cluster]) -> f64 {
    let ticks: u64 = cs
        .iter()
        .flat_map(|c| c.pids().0)
        .filter(|(name, _)| name == "kube-apiserver")
        .filter_map(|(_, pid)| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0
}

/// Measures the fleet of `names` through kubeconfig `kc`; `full` adds the memory series.
fn figures(ctx: &Ctx<'_>, kc: &str, full: bool) -> Result<Figures> {
    let argv = |rest: &[String]| -> Vec<String> {
        let mut v = vec![
            ctx.precheck.to_owned(),
            "--kubeconfig".into(),
            kc.to_owned(),
            "-o".into(),
            "json".into(),
        ];
        v.extend(rest.iter().cloned());
        v
    };
    let s = |a: &[&str]| a.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    let n = ctx.names.len();
    let mut f = Figures::default();
    let cpu0 = server_cpu(ctx.clusters);
    for name in ctx.names {
        f.singles.push(measure(
            &argv(&s(&["--context", name])),
            ctx.runs,
            ctx.scratch,
        )?);
    }
    let cpu1 = server_cpu(ctx.clusters);
    f.fleet = measure(
        &argv(&s(&["--all-contexts", "--parallel", &n.to_string()])),
        ctx.runs,
        ctx.scratch,
    )?;
    let cpu2 = server_cpu(ctx.clusters);
    let runs = (ctx.runs + 1) as f64; // with the warm-up
    f.server_cpu = ((cpu1 - cpu0) / runs / n as f64, (cpu2 - cpu1) / runs);
    if !full {
        return Ok(f);
    }
    f.serial = measure(
        &argv(&s(&["--all-contexts", "--parallel", "1"])),
        ctx.runs,
        ctx.scratch,
    )?;
    for k in 1..=n {
        let mut a = s(&["--parallel", &k.to_string()]);
        for name in &ctx.names[..k] {
            a.extend(["--context".to_owned(), name.clone()]);
        }
        f.by_clusters
            .push((k, measure(&argv(&a), ctx.runs, ctx.scratch)?));
        let all = s(&["--all-contexts", "--parallel", &k.to_string()]);
        f.by_parallel
            .push((k, measure(&argv(&all), ctx.runs, ctx.scratch)?));
    }
    Ok(f)
}

/// What every measurement needs.
struct Ctx<'a> {
    precheck: &'a str,
    clusters: &'a [Cluster],
    names: &'a [String],
    runs: usize,
    scratch: &'a Path,
}

/// The clusters behind the test bed's proxy, each request delayed by [`RTT`]; the proxies and
/// the kubeconfig of contexts through them.
fn over_network(
    cs: &[Cluster],
    names: &[String],
    scratch: &Path,
) -> Result<(Vec<FaultProxy>, String)> {
    let dir = scratch.join("network");
    std::fs::create_dir_all(&dir)?;
    let mut proxies = Vec::new();
    let mut spelled = Vec::new();
    for (c, name) in cs.iter().zip(names) {
        let p = FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path())?)?;
        p.set_rules(vec![Rule::delay(RTT)]);
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, p.ca_pem())?;
        spelled.push(Spelled {
            name: name.clone(),
            server: p.url(),
            ca,
            token: c.admin_token().to_owned(),
        });
        proxies.push(p);
    }
    let kc = multicluster::write_kubeconfig(&dir, &spelled)?
        .display()
        .to_string();
    Ok((proxies, kc))
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
    let ctx = Ctx {
        precheck,
        clusters: &cs,
        names: &names,
        runs,
        scratch,
    };
    let direct = figures(&ctx, &kc, true)?;
    let (proxies, net_kc) = over_network(&cs, &names, scratch)?;
    let network = figures(&ctx, &net_kc, false)?;
    drop(proxies);
    Ok(report(n, size, runs, &direct, &network))
}

fn report(n: usize, size: (usize, usize), runs: usize, d: &Figures, net: &Figures) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut out = format!("{START}\n## Fleet: {n} clusters read by one precheck\n\n");
    let _ = writeln!(
        out,
        "{n} test-bed clusters at once, each with Istio (default revision, `ISTIO_OLD_TAG`) and \
         {} namespaces × {} injected pods; one kubeconfig with a context per cluster. Medians of \
         {runs} runs after a warm-up, `-o json`. All {n} API servers and precheck share this \
         machine's cores, so reading them at once competes for CPU in a way real clusters (each \
         its own API server, across a network) do not: the API servers' CPU per run is shown. \
         The second table reads the same clusters through the test bed's proxy, every request \
         delayed {} ms, as clusters over a network are.\n",
        size.0,
        size.1,
        RTT.as_millis()
    );
    out.push_str("| run | wall | peak RSS | precheck's CPU |\n|---|---|---|---|\n");
    let rows = d
        .singles
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("--context c{i}"), *r));
    let fleets = [
        (format!("--all-contexts --parallel {n}"), d.fleet),
        ("--all-contexts --parallel 1".to_owned(), d.serial),
    ];
    for (args, (w, r, c)) in rows.chain(fleets) {
        let _ = writeln!(
            out,
            "| `precheck {args}` | {w:.2} s | {r:.0} MB | {c:.2} s |"
        );
    }
    let _ = writeln!(
        out,
        "\nAPI servers' CPU: {:.2} s per single precheck, {:.2} s per fleet run; on this \
         machine's {cores} cores that is a floor of {:.2} s under the fleet's wall time, before \
         anything else running here takes its share.\n",
        d.server_cpu.0,
        d.server_cpu.1,
        d.server_cpu.1 / cores as f64
    );
    out.push_str(
        "Over a network (every request delayed by the proxy):\n\n| run | wall |\n|---|---|\n",
    );
    for (i, (w, ..)) in net.singles.iter().enumerate() {
        let _ = writeln!(out, "| `precheck --context c{i}` | {w:.2} s |");
    }
    let _ = writeln!(
        out,
        "| `precheck --all-contexts --parallel {n}` | {:.2} s |",
        net.fleet.0
    );
    out.push_str("\nPeak RSS by clusters read at once (`--context c0 … c<k-1> --parallel k`) and by `--parallel` over all clusters:\n\n| k | clusters, parallel k | all clusters, parallel k |\n|---|---|---|\n");
    for ((k, (wc, rc, _)), (_, (wp, rp, _))) in d.by_clusters.iter().zip(&d.by_parallel) {
        let _ = writeln!(
            out,
            "| {k} | {rc:.0} MB ({wc:.2} s) | {rp:.0} MB ({wp:.2} s) |"
        );
    }
    out.push_str(&targets(n, d, net));
    out.push_str(END);
    out.push('\n');
    out
}

fn targets(n: usize, d: &Figures, net: &Figures) -> String {
    let single_rss = d.singles.iter().map(|s| s.1).fold(0.0, f64::max);
    let (ratio, net_ratio) = (d.fleet.0 / d.slowest(), net.fleet.0 / net.slowest());
    let growth: Vec<f64> = d
        .by_clusters
        .windows(2)
        .map(|w| w[1].1.1 - w[0].1.1)
        .collect();
    let per_cluster = d.by_clusters.first().map_or(0.0, |f| f.1.1);
    let linear = growth.iter().all(|g| *g <= per_cluster * 1.1);
    let p1 = d.by_parallel.first().map_or(0.0, |p| p.1.1);
    format!(
        "\n| target | measured | met |\n|---|---|---|\n\
         | {n} clusters concurrently ≤ 1.3× the slowest single precheck (test bed, shared cores) | {ratio:.2}× ({:.2} s vs {:.2} s) | {} |\n\
         | the same over a network ({} ms per request) | {net_ratio:.2}× ({:.2} s vs {:.2} s) | {} |\n\
         | peak RSS grows at most linearly with clusters read at once | +{} MB per cluster (one cluster alone: {per_cluster:.0} MB) | {} |\n\
         | peak RSS bounded by `--parallel` (all {n} at `--parallel 1` ≈ one cluster) | {p1:.0} MB vs {single_rss:.0} MB | {} |\n",
        d.fleet.0,
        d.slowest(),
        yes(ratio <= 1.3),
        RTT.as_millis(),
        net.fleet.0,
        net.slowest(),
        yes(net_ratio <= 1.3),
        growth
            .iter()
            .map(|g| format!("{g:.0}"))
            .collect::<Vec<_>>()
            .join(", +"),
        yes(linear),
        yes(p1 <= single_rss * 1.2)
    )
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
