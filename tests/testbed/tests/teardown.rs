//! No component outlives its owner: after `Drop`, after `mesh-testbed down`, and after the
//! owning process is SIGKILLed (the watchdog's job).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesh_testbed::Cluster;
use mesh_testbed::process::pid_alive;

/// Pids of live processes whose command line mentions `needle` (the cluster's directory).
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && pid_alive(pid))
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(needle)
        })
        .collect()
}

fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn up(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mesh-testbed"))
        .args(["up", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_ready(dir: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.join("ready").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "mesh-testbed up exited early; see {}",
            dir.display()
        );
        assert!(Instant::now() < deadline, "cluster not ready in 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn drop_stops_every_component_and_removes_the_directory() {
    let c = Cluster::start().unwrap();
    let dir = c.dir().to_path_buf();
    let (pids, _) = c.pids();
    assert_eq!(pids.len(), 5, "{pids:?}");
    drop(c);
    let alive = wait_gone(
        &pids.iter().map(|p| p.1).collect::<Vec<_>>(),
        Duration::from_secs(1),
    );
    assert!(alive.is_empty(), "still alive after drop: {alive:?}");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn sigkill_of_the_owner_takes_every_component_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let mut child = up(&dir);
    wait_ready(&dir, &mut child);
    let needle = dir.to_str().unwrap();
    let pids = pids_mentioning(needle);
    // etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, watchdog
    assert!(
        pids.len() >= 5,
        "expected the components under {needle}: {pids:?}"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let alive = wait_gone(&pids, Duration::from_secs(6));
    assert!(
        alive.is_empty(),
        "orphans after SIGKILL of the owner: {alive:?}"
    );
    assert!(!dir.join("etcd").exists(), "etcd data not removed");
    assert!(dir.join("logs").is_dir(), "logs are kept");
}

#[test]
fn detached_up_then_status_env_and_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let bin = env!("CARGO_BIN_EXE_mesh-testbed");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = run(&["up", "--detach"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "export KUBECONFIG={}",
            dir.join("kubeconfig").display()
        )),
        "{stdout}"
    );
    let status = run(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("running"));
    let env = String::from_utf8_lossy(&run(&["env"]).stdout).into_owned();
    assert!(env.starts_with("export KUBECONFIG="));
    let pids = pids_mentioning(dir.to_str().unwrap());
    assert!(run(&["down"]).status.success());
    assert!(wait_gone(&pids, Duration::from_secs(6)).is_empty());
    assert_eq!(run(&["status"]).status.code(), Some(3));
}
