//! `mesh-testbed`: start, inspect and stop a test bed cluster by hand (demo, manual testing).
//!
//! `up [--istio] [--dir D] [--detach]` starts a cluster (optionally with the Istio demo: the
//! old release as the default revision, the new one as a canary, namespaces `demo` and `prod`
//! with a sample app), prints `export KUBECONFIG=…` and stays in the foreground until Ctrl-C/SIGTERM; `--detach`
//! re-executes itself in the background as the owner and returns once the cluster is ready.
//! `down`, `env` and `status` act on the state directory (default `$CACHE/run/default`).
//! It builds nothing: missing binaries are reported with a pointer to `tests/testbed/build.sh`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a CLI: printing is its job

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use mesh_testbed::{Cluster, bins, process, rt, scenario};
use std::os::unix::process::CommandExt;

#[derive(Parser)]
#[command(
    name = "mesh-testbed",
    about = "Real Kubernetes control plane + kwok + Istio test bed"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a cluster and keep it running until Ctrl-C/SIGTERM (or detach).
    Up {
        /// Also install Istio (the old release as the default revision, the new one as a
        /// canary) and the demo namespaces.
        #[arg(long)]
        istio: bool,
        /// State directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run in the background; return once the cluster is ready.
        #[arg(long)]
        detach: bool,
    },
    /// Stop the cluster of a state directory.
    Down {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print `export KUBECONFIG=…` for a running cluster.
    Env {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Tell whether the cluster of a state directory is running.
    Status {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Up { istio, dir, detach } => {
            let dir = state_dir(dir)?;
            if detach {
                up_detached(&dir, istio)
            } else {
                up(&dir, istio)
            }
        }
        Cmd::Down { dir } => down(&state_dir(dir)?),
        Cmd::Env { dir } => env(&state_dir(dir)?),
        Cmd::Status { dir } => status(&state_dir(dir)?),
    }
}

fn state_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    let d = dir.unwrap_or_else(|| bins::cache_dir().join("run").join("default"));
    std::fs::create_dir_all(&d)?;
    Ok(std::fs::canonicalize(&d)?)
}

/// Pid of the live owner of `dir`, if any.
fn owner(dir: &Path) -> Option<u32> {
    let pid = std::fs::read_to_string(dir.join("owner.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    process::pid_alive(pid).then_some(pid)
}

fn up(dir: &Path, istio: bool) -> Result<()> {
    if let Some(pid) = owner(dir) {
        bail!(
            "a cluster already runs in {} (owner pid {pid}); `mesh-testbed down` first",
            dir.display()
        );
    }
    bins::Binaries::locate()?;
    let _ = std::fs::remove_file(dir.join("ready"));
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string())?;
    let cluster = Cluster::start_in(dir)?;
    eprintln!(
        "cluster up in {:.1?} at {}",
        cluster.started_in(),
        cluster.server_url()
    );
    if istio {
        let t = Instant::now();
        scenario::demo(&cluster)?;
        eprintln!("istio demo installed in {:.1?}", t.elapsed());
    }
    let exports = format!("export KUBECONFIG={}\n", cluster.kubeconfig().display());
    std::fs::write(dir.join("env"), &exports)?;
    std::fs::write(dir.join("ready"), "")?;
    println!("kubeconfig: {}\n{exports}", cluster.kubeconfig().display());
    wait_for_signal();
    eprintln!("stopping");
    for f in ["ready", "env", "owner.pid"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    drop(cluster);
    Ok(())
}

fn wait_for_signal() {
    rt::block(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => t.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
    });
}

fn up_detached(dir: &Path, istio: bool) -> Result<()> {
    if let Some(pid) = owner(dir) {
        bail!(
            "a cluster already runs in {} (owner pid {pid})",
            dir.display()
        );
    }
    bins::Binaries::locate()?;
    let _ = std::fs::remove_file(dir.join("ready"));
    std::fs::create_dir_all(dir.join("logs"))?;
    let log = std::fs::File::create(dir.join("logs/owner.log"))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["up", "--dir"]).arg(dir);
    if istio {
        cmd.arg("--istio");
    }
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the background owner")?;
    let deadline = Instant::now() + Duration::from_secs(1200);
    while !dir.join("ready").exists() {
        if let Some(st) = child.try_wait()? {
            bail!(
                "background owner exited ({st}):\n{}",
                process::tail(&dir.join("logs/owner.log"), 30)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "cluster not ready after 20 minutes; see {}",
                dir.join("logs").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "owner pid {} (stop with `mesh-testbed down --dir {}`)",
        child.id(),
        dir.display()
    );
    env(dir)
}

fn down(dir: &Path) -> Result<()> {
    let Some(pid) = owner(dir) else {
        println!("not running ({})", dir.display());
        return Ok(());
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while process::pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if process::pid_alive(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    for f in ["ready", "env", "owner.pid"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    println!("stopped (owner pid {pid})");
    Ok(())
}

fn env(dir: &Path) -> Result<()> {
    match (owner(dir), std::fs::read_to_string(dir.join("env"))) {
        (Some(_), Ok(exports)) if dir.join("ready").exists() => {
            print!("{exports}");
            Ok(())
        }
        _ => bail!(
            "no running cluster in {}; start one with `mesh-testbed up`",
            dir.display()
        ),
    }
}

fn status(dir: &Path) -> Result<()> {
    match owner(dir) {
        Some(pid) if dir.join("ready").exists() => {
            println!(
                "running: owner pid {pid}, kubeconfig {}",
                dir.join("kubeconfig").display()
            );
            Ok(())
        }
        Some(pid) => {
            println!("starting: owner pid {pid}");
            Ok(())
        }
        None => {
            println!("not running ({})", dir.display());
            std::process::exit(3)
        }
    }
}
