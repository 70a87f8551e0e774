//! Process groups with a watchdog, so no component ever outlives the process that owns it.
//!
//! Layout: a placeholder `sleep` is spawned first as the leader of a new process group; every
//! component joins that group. A watchdog `sh` in its own group polls the owner's pid and, when
//! the owner is gone (normal exit, panic, SIGKILL), sends SIGTERM then SIGKILL to the whole
//! component group and removes the paths it was given. A normal [`Group::shutdown`] does the
//! same at once and then kills the watchdog.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use std::os::unix::process::CommandExt;

// POSIX sh (dash): its `kill` takes no `--`, so a negative pid follows the signal directly.
const WATCHDOG: &str = r#"
trap '' TERM INT HUP
owner=$1; pgid=$2; shift 2
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
kill -TERM "-$pgid" 2>/dev/null
i=0; while [ $i -lt 20 ] && kill -0 "-$pgid" 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -KILL "-$pgid" 2>/dev/null
sleep 0.2
for p in "$@"; do rm -rf -- "$p"; done
"#;

/// A process group of components plus the watchdog that reaps it when the owner dies.
#[derive(Debug)]
pub struct Group {
    pgid: u32,
    leader: Child,
    watchdog: Child,
    children: Vec<(String, Child)>,
    cleanup: Vec<PathBuf>,
    logs: PathBuf,
}

impl Group {
    /// Creates the group, owned by the current process; `cleanup` paths are removed after the
    /// group is killed (by [`Group::shutdown`] or by the watchdog).
    pub fn new(logs: &Path, cleanup: Vec<PathBuf>) -> Result<Self> {
        std::fs::create_dir_all(logs)?;
        let leader = Command::new("sleep")
            .arg("2147483647")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the process-group leader")?;
        let pgid = leader.id();
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "mesh-testbed-watchdog"])
            .arg(std::process::id().to_string())
            .arg(pgid.to_string())
            .args(&cleanup)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the watchdog")?;
        let logs = logs.to_path_buf();
        Ok(Self {
            pgid,
            leader,
            watchdog,
            children: Vec::new(),
            cleanup,
            logs,
        })
    }

    /// The process group id of all components.
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Pid of the watchdog process.
    pub fn watchdog_pid(&self) -> u32 {
        self.watchdog.id()
    }

    /// Spawns `cmd` into the group with stdout+stderr appended to `<logs>/<name>.log`.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<u32> {
        let log = self.log_path(name);
        let out = File::options().create(true).append(true).open(&log)?;
        let child = cmd
            .process_group(self.pgid as i32)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        let pid = child.id();
        self.children.push((name.to_owned(), child));
        Ok(pid)
    }

    /// Path of component `name`'s log file.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Pids of the components, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(n, c)| (n.clone(), c.id()))
            .collect()
    }

    /// Fails with the component's log tail if any component has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let log = self.logs.join(format!("{name}.log"));
                bail!(
                    "{name} exited ({status}); last log lines:\n{}",
                    tail(&log, 25)
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to the group, SIGKILL after `grace`, reap, remove cleanup paths, stop the watchdog.
    pub fn shutdown(&mut self, grace: Duration) {
        signal_group("TERM", self.pgid);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.all_exited() {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group("KILL", self.pgid);
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
        let _ = self.leader.kill();
        let _ = self.leader.wait();
        for p in &self.cleanup {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }

    fn all_exited(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|(_, c)| matches!(c.try_wait(), Ok(Some(_))))
    }
}

fn signal_group(sig: &str, pgid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), "--".into(), format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
