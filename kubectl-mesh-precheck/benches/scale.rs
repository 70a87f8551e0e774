//! Benchmark (not a test): `kubectl mesh precheck` at scale on the test bed.
//!
//! Starts a real cluster, installs Istio (default 1.29.6, canary `1-30-3` at 1.30.3, tag
//! `prod`), then grows a scale scenario step by step (namespaces spread over three revisions
//! or tags, N injected pods each) and runs the release binary against it through the counting
//! proxy. For each step it prints wall time, peak RSS (GNU time) and the API requests made, by
//! kind, so it shows that requests grow only with pages of 500 objects, never per namespace.
//!
//!     cargo bench -p kubectl-mesh-precheck --bench scale
//!     MESH_BENCH_SIZES=100x10,1000x10,2000x10 cargo bench -p kubectl-mesh-precheck --bench scale
//!
//! Sizes are `<namespaces>x<pods per namespace>`, increasing namespaces, same pods per namespace.
#![allow(clippy::print_stdout)] // a benchmark's report is its stdout

use std::{collections::BTreeMap, process::Command, time::Instant};

use anyhow::{Context, Result, bail};
use mesh_testbed::{
    Cluster, ScaleRevision, ScaleSpec,
    fault::{FaultProxy, Upstream},
    scale, scenario,
};

fn sizes() -> Result<Vec<(usize, usize)>> {
    let text =
        std::env::var("MESH_BENCH_SIZES").unwrap_or_else(|_| "200x10,1000x10,2000x10".into());
    text.split(',')
        .map(|s| {
            let (n, p) = s
                .trim()
                .split_once('x')
                .context("size must be <namespaces>x<pods>")?;
            Ok((n.parse()?, p.parse()?))
        })
        .collect()
}

struct Run {
    wall: f64,
    rss_mb: f64,
    requests: BTreeMap<String, usize>,
}

/// Runs the precheck binary once under GNU time through the proxy.
fn run_precheck(kubeconfig: &std::path::Path, proxy: &FaultProxy) -> Result<Run> {
    proxy.clear_requests();
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "MAXRSS_KB=%M"])
        .arg(env!("CARGO_BIN_EXE_kubectl-mesh-precheck"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-o", "json"])
        .output()
        .context("run /usr/bin/time kubectl-mesh-precheck")?;
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss_kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS_KB="))
        .context("GNU time printed no MAXRSS")?
        .trim()
        .parse()?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!("precheck failed: {stderr}");
    }
    let mut requests = BTreeMap::new();
    for r in proxy.requests() {
        let resource = r.path.rsplit('/').next().unwrap_or_default().to_owned();
        let key = if r.path.ends_with("/version") {
            "version".to_owned()
        } else {
            format!("{} {resource}", r.method)
        };
        *requests.entry(key).or_default() += 1;
    }
    Ok(Run {
        wall,
        rss_mb: rss_kb / 1024.0,
        requests,
    })
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks benches to list themselves
    }
    let c = Cluster::start()?;
    scenario::install_default(&c)?;
    scenario::install_canary(&c, "1-30-3")?;
    let tag = c
        .istioctl()
        .args(["tag", "set", "prod", "--revision", "1-30-3", "-y"])
        .output()?;
    anyhow::ensure!(
        tag.status.success(),
        "istioctl tag set: {}",
        String::from_utf8_lossy(&tag.stderr)
    );
    let proxy = FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path())?)?;
    let kubeconfig = proxy.write_kubeconfig(c.dir(), c.admin_token())?;
    println!(
        "| namespaces | pods | generated in | precheck wall | peak RSS | API requests | by kind |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut made = 0;
    for (namespaces, pods_per_ns) in sizes()? {
        let spec = ScaleSpec {
            namespaces: namespaces.saturating_sub(made),
            pods_per_namespace: pods_per_ns,
            revisions: vec![
                ScaleRevision::injection_enabled("1.29.6"),
                ScaleRevision::revision("1-30-3", "1.30.3"),
                ScaleRevision::tag("prod", "1-30-3", "1.30.3"),
            ],
            prefix: format!("bench{namespaces}"),
            wait_running: false,
            ..ScaleSpec::default()
        };
        let report = scale::generate(&c, spec)?;
        made = namespaces;
        let _warm = run_precheck(&kubeconfig, &proxy)?;
        let run = run_precheck(&kubeconfig, &proxy)?;
        let total: usize = run.requests.values().sum();
        let kinds: Vec<String> = run
            .requests
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!(
            "| {namespaces} | {} | {:.0}s | {:.2}s | {:.1} MB | {total} | {} |",
            namespaces * pods_per_ns,
            report.created_in.as_secs_f64(),
            run.wall,
            run.rss_mb,
            kinds.join(", ")
        );
    }
    Ok(())
}
