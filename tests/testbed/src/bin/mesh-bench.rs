//! The side-by-side benchmark (a program, not a test): kubectl-mesh against istioctl and
//! kubectl on the test bed's scale scenarios, with the API server's floor beside them.
//!
//! ```text
//! cargo build --release
//! cargo run --release -p mesh-testbed --bin mesh-bench -- --out docs/benchmarks.md
//! ```
//!
//! One cluster: Istio installed by the real istioctl (revision `default` at the old release,
//! the new release's canary revision, a third at the new minor's `.0` patch, tag `prod` on the
//! canary; versions from `tests/testbed/versions.env`), then namespaces spread over those
//! revisions and tags, each with injected pods that kwok makes Running, grown size by size.
//! At each size every pair of commands runs `--runs` times, alternating which goes first,
//! under GNU time (peak RSS) and through the test bed's counting proxy (API requests by verb
//! and resource). The floor is the lists precheck made, read again at the same moment, whole
//! and raw: protobuf for built-in kinds, JSON for custom resources. Medians and ratios go to
//! a markdown file.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark's report is its output

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use mesh_testbed::{
    Cluster, ScaleRevision, ScaleSpec,
    fault::{FaultProxy, RequestRecord, Upstream},
    scale, scenario,
};

#[derive(Parser)]
#[command(about = "kubectl-mesh against istioctl at scale on the test bed")]
struct Args {
    /// Sizes to grow through, `<namespaces>x<pods per namespace>`, increasing.
    #[arg(long, default_value = "200x10,2000x10")]
    sizes: String,
    /// Runs of each command per size (medians are reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The results file (markdown).
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Where the release binaries of kubectl-mesh are (default: beside this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// A markdown file appended to the results as it is (what the figures mean).
    #[arg(long)]
    notes: Option<PathBuf>,
    /// Build the cluster at the largest size, print its kubeconfig and keep it until killed,
    /// measuring nothing (for profiling by hand).
    #[arg(long)]
    hold: bool,
}

/// The figures the targets are judged on, per size: (namespaces, work) → (ratio to the other
/// side, ratio to the floor, peak RSS in MB, requests besides next pages).
type Figures = BTreeMap<(usize, &'static str), (f64, f64, f64, usize)>;

/// One line per target of the issue, met or not.
fn targets(f: &Figures, sizes: &[usize], binaries: &[(String, f64, f64)]) -> String {
    let mut out = String::from("## Targets\n\n| target | measured | met |\n|---|---|---|\n");
    let mut line = |what: String, measured: String, met: bool| {
        let _ = writeln!(
            out,
            "| {what} | {measured} | {} |",
            if met { "yes" } else { "**no**" }
        );
    };
    let (Some(&small), Some(&big)) = (sizes.first(), sizes.last()) else {
        return out;
    };
    if let Some(&(r, fl, rss, _)) = f.get(&(big, "precheck")) {
        line(
            format!("precheck at {big} namespaces ≤ 0.4× istioctl"),
            format!("{r:.2}×"),
            r <= 0.4,
        );
        line(
            format!("precheck at {big} namespaces ≤ 1.5× the floor"),
            format!("{fl:.2}×"),
            fl <= 1.5,
        );
        line(
            format!("precheck peak RSS at {big} namespaces ≤ 50 MB"),
            format!("{rss:.0} MB"),
            rss <= 50.0,
        );
    }
    if let Some(&(r, ..)) = f.get(&(small, "precheck")) {
        line(
            format!("precheck at {small} namespaces ≤ 0.5× istioctl"),
            format!("{r:.2}×"),
            r <= 0.5,
        );
    }
    if let (Some(a), Some(b)) = (f.get(&(small, "precheck")), f.get(&(big, "precheck"))) {
        line(
            format!("precheck requests do not grow with namespaces ({small} → {big})"),
            format!("{} → {} requests besides the next pages of lists", a.3, b.3),
            b.3 <= a.3,
        );
    }
    for size in [small, big] {
        if let Some(&(r, ..)) = f.get(&(size, "tag list")) {
            line(
                format!("tag list at {size} namespaces ≤ 0.5× istioctl"),
                format!("{r:.2}×"),
                r <= 0.5,
            );
        }
    }
    if let Some(&(r, ..)) = f.get(&(big, "upgrade --dry-run")) {
        line(
            "upgrade --dry-run ≤ 1× kubectl apply --server-side --dry-run=server".into(),
            format!("{r:.2}×"),
            r <= 1.0,
        );
    }
    for (name, mib, help_ms) in binaries {
        line(
            format!("`{name}` ≤ 10 MB stripped"),
            format!("{mib:.2} MiB"),
            *mib * 1.048_576 <= 10.0,
        );
        line(
            format!("`{name} --help` < 10 ms"),
            format!("{help_ms:.1} ms"),
            *help_ms < 10.0,
        );
    }
    out
}

/// One run of one command.
#[derive(Debug, Clone)]
struct Sample {
    wall: f64,
    rss_mb: f64,
    requests: BTreeMap<String, usize>,
    bytes: u64,
    /// The lists the run made (path and selectors, unpaged).
    lists: Vec<String>,
    /// Requests other than the next page of a list (those grow with objects, not namespaces).
    calls: usize,
}

fn is_next_page(r: &RequestRecord) -> bool {
    r.query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("continue=")))
}

/// One command line of a comparison.
struct Side {
    label: String,
    argv: Vec<String>,
    /// Exit codes that mean the work was done (a plan that refuses still did the work).
    ok_codes: &'static [i32],
}

/// Verb and resource of a request, e.g. `list pods`, `get deployments`, `discovery`.
fn classify(r: &RequestRecord) -> String {
    let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", _v, rest @ ..] => rest,
        ["apis", _g, _v, rest @ ..] => rest,
        _ => return "discovery".into(),
    };
    let (resource, name) = match rest {
        ["namespaces", _ns, res, tail @ ..] => (*res, tail.first().copied()),
        [res, tail @ ..] => (*res, tail.first().copied()),
        [] => return "discovery".into(),
    };
    let verb = match (r.method.as_str(), name) {
        ("GET", _) if r.is_watch() => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        (m, _) => return format!("{m} {resource}"),
    };
    format!("{verb} {resource}")
}

fn by_kind(records: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        *out.entry(classify(r)).or_default() += 1;
    }
    out
}

/// Runs one command under GNU time through the proxy.
fn sample(proxy: &FaultProxy, side: &Side, scratch: &Path) -> Result<Sample> {
    let rss_file = scratch.join("rss");
    proxy.clear_requests();
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .args(&side.argv)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", side.argv[0]))?;
    let wall = start.elapsed().as_secs_f64();
    let code = out.status.code().unwrap_or(-1);
    if !side.ok_codes.contains(&code) {
        bail!(
            "{} exited {code}: {}",
            side.label,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let rss_kb: f64 = std::fs::read_to_string(&rss_file)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .context("GNU time wrote no peak RSS")?;
    let records = proxy.take_requests();
    Ok(Sample {
        wall,
        rss_mb: rss_kb / 1024.0,
        requests: by_kind(&records),
        bytes: 0,
        lists: lists_of(&records),
        calls: records.iter().filter(|r| !is_next_page(r)).count(),
    })
}

/// The lists `records` made, each once, without paging: (path, label selector).
fn lists_of(records: &[RequestRecord]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for r in records {
        if r.method != "GET" || r.is_watch() || !classify(r).starts_with("list ") {
            continue;
        }
        let query: Vec<&str> = r
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|kv| kv.starts_with("labelSelector=") || kv.starts_with("fieldSelector="))
            .collect();
        out.insert(if query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{}", r.path, query.join("&"))
        });
    }
    out.into_iter().collect()
}

/// Built-in kinds are served as protobuf; custom resources only as JSON.
fn built_in(path: &str) -> bool {
    match path
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", ..] => true,
        ["apis", group, ..] => !group.contains('.') || group.ends_with(".k8s.io"),
        _ => false,
    }
}

/// The floor: every list at once, whole, raw, through the same proxy; wall time and bytes.
fn floor(proxy: &FaultProxy, lists: &[String], token: &str, scratch: &Path) -> Result<Sample> {
    let ca = scratch.join("proxy-ca.pem");
    std::fs::write(&ca, proxy.ca_pem())?;
    let auth = scratch.join("auth-header");
    std::fs::write(&auth, format!("Authorization: Bearer {token}\n"))?;
    proxy.clear_requests();
    let start = Instant::now();
    let children = lists
        .iter()
        .map(|path| {
            let accept = if built_in(path) {
                "Accept: application/vnd.kubernetes.protobuf"
            } else {
                "Accept: application/json"
            };
            Command::new("curl")
                .args(["-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}"])
                .arg("--cacert")
                .arg(&ca)
                .arg("-H")
                .arg(format!("@{}", auth.display()))
                .args(["-H", accept])
                .arg(format!("{}{path}", proxy.url()))
                .stdout(Stdio::piped())
                .spawn()
                .context("run curl")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut bytes = 0;
    for child in children {
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "a raw list failed");
        bytes += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
    }
    Ok(Sample {
        wall: start.elapsed().as_secs_f64(),
        rss_mb: 0.0,
        requests: by_kind(&proxy.take_requests()),
        bytes,
        lists: lists.to_vec(),
        calls: lists.len(),
    })
}

/// One raw read of `/api/v1/pods` with curl through the proxy: wall time, bytes, and the
/// answer's `continue` token when the answer is JSON and asked to keep it.
fn curl_pods(
    proxy: &FaultProxy,
    auth: &Path,
    ca: &Path,
    accept: &str,
    query: &str,
    body: Option<&Path>,
) -> Result<(f64, u64, Option<String>)> {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-w", "%{size_download}", "-o"])
        .arg(body.map_or_else(|| PathBuf::from("/dev/null"), Path::to_path_buf))
        .arg("--cacert")
        .arg(ca)
        .arg("-H")
        .arg(format!("@{}", auth.display()))
        .args(["-H", &format!("Accept: {accept}")])
        .arg(format!("{}/api/v1/pods{query}", proxy.url()))
        .output()
        .context("run curl")?;
    let wall = start.elapsed().as_secs_f64();
    ensure!(out.status.success(), "a raw pod list failed");
    let bytes = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let token = match body {
        Some(b) => {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(b)?)?;
            v.pointer("/metadata/continue")
                .and_then(serde_json::Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        }
        None => None,
    };
    Ok((wall, bytes, token))
}

/// Ways to read every pod, raw with curl, medians of `runs`: what the API server costs for
/// each choice kubectl-mesh could make (encoding, pages, watch cache).
fn pod_reads(proxy: &FaultProxy, token: &str, scratch: &Path, runs: usize) -> Result<String> {
    let ca = scratch.join("proxy-ca.pem");
    std::fs::write(&ca, proxy.ca_pem())?;
    let auth = scratch.join("auth-header");
    std::fs::write(&auth, format!("Authorization: Bearer {token}\n"))?;
    const PB: &str = "application/vnd.kubernetes.protobuf";
    const JSON: &str = "application/json";
    let mut out = String::from(
        "Every pod read raw with curl through the same proxy, medians of the runs:\n\n\
         | read | wall | bytes |\n|---|---|---|\n",
    );
    for (label, accept, query) in [
        ("unpaged, protobuf (what kubectl-mesh does)", PB, ""),
        (
            "unpaged, protobuf, `resourceVersion=0` (watch cache, may be stale)",
            PB,
            "?resourceVersion=0",
        ),
        ("unpaged, JSON", JSON, ""),
    ] {
        let mut walls = Vec::new();
        let mut size = 0;
        for _ in 0..runs {
            let (w, b, _) = curl_pods(proxy, &auth, &ca, accept, query, None)?;
            walls.push(w);
            size = b;
        }
        let _ = writeln!(
            out,
            "| {label} | {:.2} s | {:.1} MB |",
            median(walls),
            size as f64 / 1e6
        );
    }
    let page = scratch.join("page.json");
    let mut walls = Vec::new();
    let (mut size, mut pages) = (0, 0);
    for _ in 0..runs {
        let (mut wall, mut bytes, mut n) = (0.0, 0, 0);
        let mut next: Option<String> = None;
        loop {
            let query = match &next {
                Some(t) => format!("?limit=500&continue={t}"),
                None => "?limit=500".to_owned(),
            };
            let (w, b, t) = curl_pods(proxy, &auth, &ca, JSON, &query, Some(&page))?;
            (wall, bytes, n) = (wall + w, bytes + b, n + 1);
            match t {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        walls.push(wall);
        (size, pages) = (bytes, n);
    }
    let _ = writeln!(
        out,
        "| {pages} pages of 500, JSON, one after another (the pages' curl wall times, summed) | {:.2} s | {:.1} MB |",
        median(walls),
        size as f64 / 1e6
    );
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians of a side's samples: wall, RSS, requests in all, the last run's requests by kind.
struct Summary {
    wall: f64,
    rss_mb: f64,
    requests: usize,
    by_kind: BTreeMap<String, usize>,
    bytes: u64,
    calls: usize,
}

fn summarize(samples: &[Sample]) -> Summary {
    let last = samples.last().cloned().expect("at least one run");
    Summary {
        wall: median(samples.iter().map(|s| s.wall).collect()),
        rss_mb: median(samples.iter().map(|s| s.rss_mb).collect()),
        requests: last.requests.values().sum(),
        by_kind: last.requests,
        bytes: last.bytes,
        calls: last.calls,
    }
}

fn kinds(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sizes(text: &str) -> Result<Vec<(usize, usize)>> {
    text.split(',')
        .map(|s| {
            let (n, p) = s
                .trim()
                .split_once('x')
                .context("a size is <namespaces>x<pods per namespace>")?;
            Ok((n.parse()?, p.parse()?))
        })
        .collect()
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("no directory beside this program")?
            .to_owned(),
    };
    let bin = |name: &str| -> Result<String> {
        let p = bin_dir.join(name);
        ensure!(
            p.is_file(),
            "{} is missing: build the release binaries first (`cargo build --release`) or pass --bin-dir",
            p.display()
        );
        Ok(p.display().to_string())
    };
    let (precheck, tag, uninstall, upgrade) = (
        bin("kubectl-mesh-precheck")?,
        bin("kubectl-mesh-tag")?,
        bin("kubectl-mesh-uninstall")?,
        bin("kubectl-mesh-upgrade")?,
    );
    let sizes = sizes(&args.sizes)?;
    ensure!(args.runs >= 1, "--runs must be at least 1");
    let scratch = tempfile::tempdir()?;

    let t0 = Instant::now();
    let c = Cluster::start()?;
    let (old_tag, new_tag, canary) = (
        scenario::old_tag(),
        scenario::new_tag(),
        scenario::canary_revision(),
    );
    let third_tag = c.releases().new.minor_offset(0);
    let third = third_tag.replace('.', "-");
    scenario::install_default(&c)?;
    scenario::install_canary(&c, canary)?;
    scenario::install_revision(&c, &third, &third_tag)?;
    let tagged = c
        .istioctl()
        .args(["tag", "set", "prod", "--revision", canary, "-y"])
        .output()?;
    ensure!(tagged.status.success(), "istioctl tag set prod failed");
    let manifest = scratch.path().join(format!("istio-default-{new_tag}.yaml"));
    std::fs::write(&manifest, scenario::manifest(&c, "default", new_tag)?)?;
    let proxy = FaultProxy::start(Upstream::from_ca_file(c.server_url(), c.ca_path())?)?;
    let kubeconfig = proxy
        .write_kubeconfig(scratch.path(), c.admin_token())?
        .display()
        .to_string();
    let istioctl = c.binary("istioctl").display().to_string();
    let kubectl = c.binary("kubectl").display().to_string();
    eprintln!(
        "[bench] cluster with three revisions in {:.0?}",
        t0.elapsed()
    );

    let kc = |tool: &str, rest: &[&str]| -> Vec<String> {
        let mut v = vec![tool.to_owned(), "--kubeconfig".into(), kubeconfig.clone()];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let manifest_s = manifest.display().to_string();
    let pairs: Vec<(&'static str, Side, Side)> = vec![
        (
            "precheck",
            Side {
                label: "kubectl mesh precheck".into(),
                argv: kc(&precheck, &["-o", "json"]),
                ok_codes: &[0, 1],
            },
            Side {
                label: "istioctl x precheck".into(),
                argv: kc(&istioctl, &["x", "precheck"]),
                ok_codes: &[0, 1],
            },
        ),
        (
            "tag list",
            Side {
                label: "kubectl mesh tag list".into(),
                argv: kc(&tag, &["list"]),
                ok_codes: &[0],
            },
            Side {
                label: "istioctl tag list".into(),
                argv: kc(&istioctl, &["tag", "list"]),
                ok_codes: &[0],
            },
        ),
        (
            "uninstall --dry-run",
            Side {
                label: format!("kubectl mesh uninstall --revision {third} --dry-run"),
                argv: kc(&uninstall, &["--revision", &third, "--dry-run"]),
                ok_codes: &[0, 1],
            },
            Side {
                label: format!("istioctl uninstall --revision {third} --dry-run"),
                argv: kc(
                    &istioctl,
                    &["uninstall", "--revision", &third, "--dry-run", "-y"],
                ),
                ok_codes: &[0],
            },
        ),
        (
            "upgrade --dry-run",
            Side {
                label: format!("kubectl mesh upgrade --dry-run -f (istiod {new_tag})"),
                argv: kc(&upgrade, &["--dry-run", "-f", &manifest_s]),
                ok_codes: &[0, 1],
            },
            Side {
                label: "kubectl apply --server-side --dry-run=server -f".into(),
                argv: kc(
                    &kubectl,
                    &[
                        "apply",
                        "--server-side",
                        "--force-conflicts",
                        "--dry-run=server",
                        "-f",
                        &manifest_s,
                    ],
                ),
                ok_codes: &[0],
            },
        ),
    ];

    let mut report = String::new();
    writeln!(
        report,
        "# Benchmark: kubectl-mesh beside istioctl at scale\n"
    )?;
    writeln!(
        report,
        "Written by `cargo run --release -p mesh-testbed --bin mesh-bench -- --sizes {} --runs {}` \
         (after `cargo build --release`) on {}, {}.\n",
        args.sizes,
        args.runs,
        output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        machine()
    )?;
    writeln!(
        report,
        "- kubectl-mesh: {} (release build); istioctl: {}; kubectl and apiserver: {}.\n\
         - The test bed: real etcd, kube-apiserver, controller-manager and scheduler, kwok nodes; \
         Istio installed by the real istioctl (its one build, 1.31-dev; {old_tag} rendered from \
         an older istio.io/istio commit's charts, {new_tag} and {third_tag} from istioctl's \
         own): revision `default` at {old_tag}, `{canary}` at {new_tag}, `{third}` at \
         {third_tag}, tag `prod` → `{canary}`. Namespaces are spread over \
         `istio-injection=enabled`, `istio.io/rev={canary}`, `istio.io/rev=prod` and \
         `istio.io/rev={third}`, each with injected pods kwok makes Running.\n\
         - Every command runs {} times per size after one warm-up, the two sides alternating \
         which goes first; figures are medians. Wall time is the whole process; peak RSS is GNU \
         time's; requests are counted by the test bed's proxy, by verb and resource, for the last \
         run. Both sides go through the same proxy.\n\
         - The floor is the lists precheck made, read again whole (unpaged) and raw, all at once \
         with curl: protobuf for built-in kinds, JSON for custom resources.\n",
        output(Command::new(&precheck).arg("--version")),
        output(Command::new(&istioctl).args(["version", "--remote=false"])),
        output(Command::new(&kubectl).args(["version", "--client", "-o", "json"]))
            .lines()
            .find(|l| l.contains("gitVersion"))
            .map_or_else(String::new, |l| l
                .trim()
                .trim_end_matches(',')
                .replace('"', "")),
        args.runs
    )?;

    let mut figures = Figures::new();
    let size_list: Vec<usize> = sizes.iter().map(|(n, _)| *n).collect();
    let mut made = 0usize;
    for (namespaces, per_ns) in sizes {
        ensure!(namespaces >= made, "sizes must increase");
        let spec = ScaleSpec {
            namespaces: namespaces - made,
            pods_per_namespace: per_ns,
            revisions: vec![
                ScaleRevision::injection_enabled(old_tag),
                ScaleRevision::revision(canary, new_tag),
                ScaleRevision::tag("prod", canary, new_tag),
                ScaleRevision::revision(&third, &third_tag),
            ],
            prefix: format!("bench{namespaces}"),
            wait_running: true,
            ..ScaleSpec::default()
        };
        let grown = scale::generate(&c, spec)?;
        made = namespaces;
        let pods: usize =
            output(
                c.kubectl()
                    .args(["get", "pods", "-A", "--no-headers", "-o", "name"]),
            )
            .lines()
            .count();
        let running = output(c.kubectl().args([
            "get",
            "pods",
            "-A",
            "--no-headers",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ]))
        .lines()
        .count();
        eprintln!(
            "[bench] {namespaces} namespaces: {} pods made in {:.0?}, running after {:.0?}",
            grown.pods, grown.created_in, grown.running_in
        );
        writeln!(
            report,
            "## {namespaces} namespaces, {} scale pods ({pods} pods in all, {running} Running)\n",
            namespaces * per_ns
        )?;
        writeln!(
            report,
            "| work | kubectl-mesh | other side | ratio | peak RSS (mesh / other) | API requests (mesh / other) |\n|---|---|---|---|---|---|"
        )?;
        if args.hold {
            continue;
        }
        let mut details = String::new();
        for (work, a, b) in &pairs {
            sample(&proxy, a, scratch.path())?;
            sample(&proxy, b, scratch.path())?;
            let (mut sa, mut sb, mut sf) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..args.runs {
                if round % 2 == 0 {
                    sa.push(sample(&proxy, a, scratch.path())?);
                    sb.push(sample(&proxy, b, scratch.path())?);
                } else {
                    sb.push(sample(&proxy, b, scratch.path())?);
                    sa.push(sample(&proxy, a, scratch.path())?);
                }
                if *work == "precheck" {
                    let lists = sa.last().map(|s| s.lists.clone()).unwrap_or_default();
                    sf.push(floor(&proxy, &lists, c.admin_token(), scratch.path())?);
                }
            }
            let (ma, mb) = (summarize(&sa), summarize(&sb));
            let mf = (!sf.is_empty()).then(|| summarize(&sf));
            let to_floor = mf.as_ref().map_or(f64::NAN, |f| ma.wall / f.wall);
            figures.insert(
                (namespaces, work),
                (ma.wall / mb.wall, to_floor, ma.rss_mb, ma.calls),
            );
            writeln!(
                report,
                "| {work}: `{}` vs `{}` | {:.2} s | {:.2} s | {:.2}× | {:.0} MB / {:.0} MB | {} / {} |",
                a.label,
                b.label,
                ma.wall,
                mb.wall,
                ma.wall / mb.wall,
                ma.rss_mb,
                mb.rss_mb,
                ma.requests,
                mb.requests
            )?;
            writeln!(details, "- {}: {}", a.label, kinds(&ma.by_kind))?;
            writeln!(details, "- {}: {}", b.label, kinds(&mb.by_kind))?;
            if let Some(mf) = mf {
                writeln!(
                    report,
                    "| precheck vs the floor (same lists, raw, whole, all at once: {:.1} MB) | {:.2} s | {:.2} s | {:.2}× | {:.0} MB / – | {} / {} |",
                    mf.bytes as f64 / 1e6,
                    ma.wall,
                    mf.wall,
                    ma.wall / mf.wall,
                    ma.rss_mb,
                    ma.requests,
                    mf.requests
                )?;
                writeln!(details, "- the floor: {}", kinds(&mf.by_kind))?;
            }
            eprintln!("[bench] {namespaces} namespaces: {work} done");
        }
        writeln!(
            report,
            "\nRequests of the last run, by verb and resource:\n\n{details}"
        )?;
        writeln!(
            report,
            "{}",
            pod_reads(&proxy, c.admin_token(), scratch.path(), args.runs.min(3))?
        )?;
    }

    if args.hold {
        eprintln!(
            "[bench] holding the cluster: KUBECONFIG={kubeconfig} (through the counting proxy), \
             istioctl {istioctl}; kill this program to stop it"
        );
        loop {
            std::thread::park();
        }
    }
    writeln!(
        report,
        "## Binaries\n\n| binary | size (stripped) | `--help` (median of 20) |\n|---|---|---|"
    )?;
    let mut binaries = Vec::new();
    for name in [
        "kubectl-mesh",
        "kubectl-mesh-precheck",
        "kubectl-mesh-tag",
        "kubectl-mesh-uninstall",
        "kubectl-mesh-upgrade",
    ] {
        let path = bin(name)?;
        let size = std::fs::metadata(&path)?.len();
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let out = Command::new(&path).arg("--help").output()?;
            times.push(t.elapsed().as_secs_f64());
            ensure!(out.status.success(), "{name} --help failed");
        }
        let (mib, help_ms) = (size as f64 / 1024.0 / 1024.0, median(times) * 1000.0);
        writeln!(report, "| `{name}` | {mib:.2} MiB | {help_ms:.1} ms |")?;
        binaries.push((name.to_owned(), mib, help_ms));
    }
    writeln!(report, "\n{}", targets(&figures, &size_list, &binaries))?;
    if let Some(notes) = &args.notes {
        let text =
            std::fs::read_to_string(notes).with_context(|| format!("read {}", notes.display()))?;
        writeln!(report, "{}", text.trim_end())?;
    }
    std::fs::write(&args.out, &report).with_context(|| format!("write {}", args.out.display()))?;
    print!("{report}");
    Ok(())
}
