//! The real `kubectl-mesh` binary, copied into a scratch directory beside fake
//! `kubectl-mesh-<name>` shell scripts: arguments, stdin, exit codes and signals pass
//! through; lookup follows the canonical path, then PATH; errors and completion.
#![cfg(unix)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const DISPATCHER: &str = env!("CARGO_BIN_EXE_kubectl-mesh");
const COMPLETER: &str = env!("CARGO_BIN_EXE_kubectl_complete-mesh");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A scratch directory: `bin/` holds the dispatcher copy and its siblings, `path/` is
/// the only PATH entry besides the shell's own directories.
struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("kubectl-mesh-it-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("path")).unwrap();
        fs::copy(DISPATCHER, root.join("bin/kubectl-mesh")).unwrap();
        Self { root }
    }

    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Writes an executable script `dir/name` with `body` after the shebang.
    fn script(&self, dir: &str, name: &str, body: &str) -> PathBuf {
        let path = self.root.join(dir).join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Runs `exe` with `args`, PATH = `<root>/path` plus the system directories the
    /// scripts need (no `kubectl-mesh-*` there), stdin from `stdin`.
    fn run_exe(&self, exe: &Path, args: &[&str], stdin: &str) -> Output {
        let path = format!("{}:/usr/bin:/bin", self.root.join("path").display());
        let spawn = || {
            Command::new(exe)
                .args(args)
                .env("PATH", &path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        // A script written by this test can be briefly "busy" (ETXTBSY) while another test
        // thread forks with the write descriptor still open; the exec succeeds once it closes.
        let mut child = spawn();
        for _ in 0..50 {
            match &child {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    child = spawn();
                }
                _ => break,
            }
        }
        let mut child = child.unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_exe(&self.bin().join("kubectl-mesh"), args, "")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const ECHO_ARGS: &str = r#"for a in "$@"; do printf '<%s>\n' "$a"; done
read -r line; printf 'stdin=%s\n' "$line"
echo "to stderr" >&2
exit 7"#;

const FAKE_TAG: &str = r#"case "$*" in
  --version) echo "kubectl-mesh-tag VERSION" ;;
  --help) printf 'Usage: kubectl mesh tag <COMMAND>\n\nCommands:\n  set   Point a tag at a revision\n  list  List tags\n\nOptions:\n  -h, --help  Print help\n' ;;
  "set --help") printf 'Usage: kubectl mesh tag set\n\nOptions:\n      --revision <REV>  Revision\n      --overwrite       Replace\n  -h, --help            Print help\n' ;;
esac"#;

/// Shaped like `kubectl-mesh-upgrade --help` (clap long help): an about text wrapping onto a
/// line that starts with `--canary`, two usage lines (no subcommand after flags), nested
/// `dataplane` and `rollback`. Other arguments are echoed.
const FAKE_UPGRADE: &str = r#"case "$*" in
  --version) echo "kubectl-mesh-upgrade VERSION" ;;
  --help) cat <<'EOF'
Upgrade, downgrade or canary-install an Istio control plane from a manifest.

Exit codes: 0 done; 1 refused (guardrail, Helm,
--canary missing, answered no); 2 bad input

Usage: kubectl mesh upgrade [OPTIONS] --filename <FILE|DIR|->
       kubectl mesh upgrade <COMMAND>

Commands:
  dataplane  Move namespaces to a revision or tag and restart workloads onto its proxy
  rollback   Undo a change: restore the latest backup of this cluster
  help       Print this message or the help of the given subcommand(s)

Options:
  -f, --filename <FILE|DIR|->
          Manifest of the target version

      --canary
          Install the manifest's revision as a new control plane

      --dry-run
          Show the plan; change nothing

  -y, --yes
          Do not ask for confirmation

      --timeout <DURATION>
          How long each wait may take

          [default: 5m]

  -h, --help
          Print help
EOF
  ;;
  "dataplane --help") cat <<'EOF'
Move namespaces to a revision or tag and restart workloads onto its proxy

Usage: kubectl mesh upgrade dataplane [OPTIONS]

Options:
  -n, --namespace <NS>
          Namespace to move or restart (repeatable)

  -A, --all-namespaces
          Every namespace

      --to-revision <REV|TAG>
          Relabel the namespaces first

      --batch <BATCH>
          Workloads restarted at once

  -h, --help
          Print help
EOF
  ;;
  "rollback --help") printf 'Usage: kubectl mesh upgrade rollback [OPTIONS] [BACKUP]\n\nArguments:\n  [BACKUP]\n          Backup file\n\nOptions:\n      --dry-run\n          Change nothing\n  -h, --help\n          Print help\n' ;;
  *) for a in "$@"; do printf '<%s>\n' "$a"; done ;;
esac"#;

fn fake_upgrade(sb: &Sandbox, dir: &str, version: &str) {
    sb.script(
        dir,
        "kubectl-mesh-upgrade",
        &FAKE_UPGRADE.replace("VERSION", version),
    );
}

fn fake_tag(sb: &Sandbox, dir: &str, version: &str) {
    sb.script(
        dir,
        "kubectl-mesh-tag",
        &FAKE_TAG.replace("VERSION", version),
    );
}

#[test]
fn arguments_stdin_stderr_and_exit_code_pass_through() {
    let sb = Sandbox::new("args");
    sb.script("bin", "kubectl-mesh-foo", ECHO_ARGS);
    let args = ["foo", "--help", "-n", "a b", "", "--", "ünï", "-o=json"];
    let out = sb.run_exe(&sb.bin().join("kubectl-mesh"), &args, "hello\n");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "<--help>\n<-n>\n<a b>\n<>\n<-->\n<ünï>\n<-o=json>\nstdin=hello\n"
    );
    assert_eq!(text(&out.stderr), "to stderr\n");
}

#[test]
fn a_symlinked_dispatcher_finds_siblings_in_its_real_directory() {
    // The krew layout: $KREW_ROOT/bin/kubectl-mesh -> store/mesh/vX/kubectl-mesh.
    let sb = Sandbox::new("symlink");
    sb.script("bin", "kubectl-mesh-foo", ECHO_ARGS);
    fs::create_dir_all(sb.root.join("links")).unwrap();
    let link = sb.root.join("links/kubectl-mesh");
    symlink(sb.bin().join("kubectl-mesh"), &link).unwrap();

    let out = sb.run_exe(&link, &["foo", "x"], "");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(7), "<x>\nstdin=\n".to_owned())
    );

    let help = sb.run_exe(&link, &["--help"], "");
    assert!(help.status.success());
    assert!(
        text(&help.stdout).contains("\n  foo "),
        "{}",
        text(&help.stdout)
    );
}

#[test]
fn path_is_the_fallback_and_beside_wins() {
    let sb = Sandbox::new("path");
    sb.script("path", "kubectl-mesh-bar", "echo bar-from-path");
    sb.script("path", "kubectl-mesh-foo", "echo foo-from-path");
    sb.script("bin", "kubectl-mesh-foo", "echo foo-beside");
    assert_eq!(text(&sb.run(&["bar"]).stdout), "bar-from-path\n");
    assert_eq!(text(&sb.run(&["foo"]).stdout), "foo-beside\n");
}

#[test]
fn usage_lists_only_subcommands_that_exist() {
    let sb = Sandbox::new("usage");
    fake_tag(&sb, "bin", VERSION);
    for args in [&[][..], &["--help"], &["-h"], &["help"]] {
        let out = sb.run(args);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            stdout.contains("Usage: kubectl mesh <subcommand>"),
            "{stdout}"
        );
        assert!(stdout.contains("\n  tag "), "{stdout}");
        assert!(stdout.contains("\n  version "), "{stdout}");
        assert!(!stdout.contains("\n  upgrade "), "{stdout}");
        assert!(!stdout.contains("\n  precheck "), "{stdout}");
    }
    let out = sb.run(&["help", "tag"]);
    assert!(
        text(&out.stdout).starts_with("Usage: kubectl mesh tag"),
        "{out:?}"
    );
}

const UPGRADE_SUMMARY: &str =
    "Upgrade, downgrade or canary-install a control plane; move the data plane; roll back";

#[test]
fn upgrade_is_listed_helped_and_run_through_the_dispatcher() {
    let sb = Sandbox::new("upgrade");
    fake_tag(&sb, "bin", VERSION);
    fake_upgrade(&sb, "bin", VERSION);
    let out = sb.run(&["--help"]);
    let usage = text(&out.stdout);
    let line = |name: &str| {
        usage
            .lines()
            .position(|l| l.starts_with(&format!("  {name} ")))
    };
    let (upgrade, tag) = (line("upgrade"), line("tag"));
    assert!(
        upgrade.is_some() && upgrade < tag,
        "upgrade listed before tag: {usage}"
    );
    assert!(
        usage.contains(&format!("\n  upgrade     {UPGRADE_SUMMARY}\n")),
        "{usage}"
    );

    for args in [&["upgrade", "--help"][..], &["help", "upgrade"]] {
        let out = sb.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let help = text(&out.stdout);
        assert!(help.starts_with("Upgrade, downgrade"), "{args:?}: {help}");
        assert!(
            help.contains("Usage: kubectl mesh upgrade [OPTIONS] --filename"),
            "{help}"
        );
    }
    let out = sb.run(&["upgrade", "dataplane", "--help"]);
    assert!(
        text(&out.stdout).contains("Usage: kubectl mesh upgrade dataplane"),
        "{out:?}"
    );
    let out = sb.run(&["upgrade", "-f", "istio.yaml", "--canary", "--dry-run"]);
    assert_eq!(
        text(&out.stdout),
        "<-f>\n<istio.yaml>\n<--canary>\n<--dry-run>\n"
    );
    let out = sb.run(&["upgarde", "-f", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: unknown subcommand `upgarde`\nhint: did you mean `upgrade`?\n"
    );
}

#[test]
fn unknown_subcommand_suggests_the_nearest_and_exits_2() {
    let sb = Sandbox::new("unknown");
    fake_tag(&sb, "bin", VERSION);
    let out = sb.run(&["tga", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: unknown subcommand `tga`\nhint: did you mean `tag`?\n"
    );
    assert!(out.stdout.is_empty());

    let out = sb.run(&["-n", "istio-system", "tag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("flags go after the subcommand"),
        "{out:?}"
    );
}

#[test]
fn missing_or_broken_binaries_exit_3_with_a_hint() {
    let sb = Sandbox::new("broken");
    let out = sb.run(&["upgrade", "-f", "x.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: subcommand `upgrade` is not installed"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");

    // Like a binary whose dynamic loader is missing: exec(2) fails with ENOENT.
    let junk = sb.bin().join("kubectl-mesh-junk");
    fs::write(&junk, "#!/nonexistent/interpreter\n").unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o755)).unwrap();
    let out = sb.run(&["junk"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).starts_with("error: could not run `"),
        "{out:?}"
    );
}

#[test]
fn death_by_signal_is_the_callers_to_see() {
    let sb = Sandbox::new("signal");
    sb.script("bin", "kubectl-mesh-die", "kill -TERM $$");
    let out = sb.run(&["die"]);
    assert_eq!(out.status.signal(), Some(15), "{out:?}");
}

#[test]
fn version_with_arguments_asks_precheck_what_istio_runs_per_context() {
    let sb = Sandbox::new("mesh-versions");
    let out = sb.run(&["version", "--context", "east"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        text(&out.stderr).contains("subcommand `precheck` is not installed"),
        "{out:?}"
    );
    sb.script("bin", "kubectl-mesh-precheck", ECHO_ARGS);
    let out = sb.run(&["version", "--context", "east", "--context", "west"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the exit code passes through: {out:?}"
    );
    assert_eq!(
        text(&out.stdout),
        "<--mesh-versions>\n<--context>\n<east>\n<--context>\n<west>\nstdin=\n"
    );
}

#[test]
fn version_reports_every_binary_and_flags_mismatches() {
    let sb = Sandbox::new("version");
    fake_tag(&sb, "bin", VERSION);
    fake_upgrade(&sb, "bin", VERSION);
    let out = sb.run(&["version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!(
            "kubectl-mesh          {VERSION}\n\
             kubectl-mesh-upgrade  {VERSION}\n\
             kubectl-mesh-tag      {VERSION}\n"
        )
    );
    assert!(out.stderr.is_empty(), "{out:?}");

    // A stale upgrade binary beside the dispatcher (a half-finished manual update).
    fake_upgrade(&sb, "bin", "0.0.9");
    let out = sb.run(&["version"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stdout).contains("\nkubectl-mesh-upgrade  0.0.9\n"),
        "{out:?}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: `kubectl-mesh-upgrade` is version 0.0.9, `kubectl-mesh` is {VERSION} ("
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("`kubectl-mesh-tag`"), "{stderr}");
    fake_upgrade(&sb, "bin", VERSION);

    sb.script(
        "path",
        "kubectl-mesh-precheck",
        "echo kubectl-mesh-precheck 0.0.1",
    );
    let out = sb.run(&["version"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stdout).contains("kubectl-mesh-precheck  0.0.1\n"),
        "{out:?}"
    );
    assert!(
        text(&out.stderr).contains("warning: `kubectl-mesh-precheck` is version 0.0.1"),
        "{out:?}"
    );
    assert_eq!(
        text(&sb.run(&["--version"]).stdout),
        format!("kubectl-mesh {VERSION}\n")
    );
}

/// Shaped like the real `--version` of a binary that judges versions: a second line says what
/// its release data knows, from `KUBECTL_MESH_RELEASE_DATA` when set.
const FAKE_PRECHECK: &str = r#"case "$*" in
  --version) echo "kubectl-mesh-precheck VERSION"
    case "$KUBECTL_MESH_RELEASE_DATA" in
      "") echo "release data: Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)" ;;
      *bad*) echo "release data: error: release data \`$KUBECTL_MESH_RELEASE_DATA\`, line 7: release 1.25: end_of_life 2024-09-30 is not after released 2025-03-03" ;;
      *) echo "release data: Istio 1.20 to 1.32 (from \`$KUBECTL_MESH_RELEASE_DATA\`, checked 2026-12-20)" ;;
    esac ;;
esac"#;

#[test]
fn version_says_what_the_release_data_knows() {
    let sb = Sandbox::new("version-releases");
    fake_tag(&sb, "bin", VERSION);
    sb.script(
        "bin",
        "kubectl-mesh-precheck",
        &FAKE_PRECHECK.replace("VERSION", VERSION),
    );
    let out = sb.run(&["version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!(
            "kubectl-mesh           {VERSION}\n\
             kubectl-mesh-precheck  {VERSION}\n\
             kubectl-mesh-tag       {VERSION}\n\
             \n\
             release data: Istio 1.20 to 1.31 (built-in data, checked 2026-12-04)\n"
        )
    );
    let out = sb.run(&["version", "--release-data", "/data/new.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text(&out.stdout).ends_with(
            "\nrelease data: Istio 1.20 to 1.32 (from `/data/new.yaml`, checked 2026-12-20)\n"
        ),
        "{out:?}"
    );
    let out = sb.run(&["version", "--release-data=/data/bad.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).starts_with(
            "error: release data `/data/bad.yaml`, line 7: release 1.25: end_of_life 2024-09-30 is not after released 2025-03-03\nhint: "
        ),
        "{out:?}"
    );
    let out = sb.run(&["version", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).starts_with("error: `kubectl mesh version` takes no argument `-o`"),
        "{out:?}"
    );
}

#[test]
fn completion_helper_completes_names_and_subcommand_flags() {
    let sb = Sandbox::new("complete");
    fake_tag(&sb, "bin", VERSION);
    fake_upgrade(&sb, "bin", VERSION);
    // The krew layout: path/ is $KREW_ROOT/bin, bin/ the store directory.
    symlink(
        sb.bin().join("kubectl-mesh"),
        sb.root.join("path/kubectl-mesh"),
    )
    .unwrap();
    // The helper binary copied anywhere: it finds the siblings through `kubectl-mesh` on PATH.
    fs::create_dir_all(sb.root.join("elsewhere")).unwrap();
    let shim = sb.root.join("elsewhere/kubectl_complete-mesh");
    fs::copy(COMPLETER, &shim).unwrap();
    // The caveat's way: `ln -s kubectl-mesh $KREW_ROOT/bin/kubectl_complete-mesh`.
    let link = sb.root.join("path/kubectl_complete-mesh");
    symlink("kubectl-mesh", &link).unwrap();

    for exe in [&shim, &link] {
        let out = sb.run_exe(exe, &["t"], "");
        assert_eq!(
            text(&out.stdout),
            "tag\tSet, list, remove and generate revision tags\n:4\n"
        );
        let out = sb.run_exe(exe, &["tag", ""], "");
        assert_eq!(
            text(&out.stdout),
            "set\tPoint a tag at a revision\nlist\tList tags\n:4\n"
        );
        let out = sb.run_exe(exe, &["tag", "set", "canary", "--"], "");
        assert_eq!(text(&out.stdout), "--revision\n--overwrite\n--help\n:4\n");
        let out = sb.run_exe(exe, &["tag", "set", "--revision", ""], "");
        assert_eq!(text(&out.stdout), ":0\n");
        let out = sb.run_exe(exe, &["completion", "z"], "");
        assert_eq!(text(&out.stdout), "zsh\n:4\n");
        upgrade_completes(&sb, exe);
    }
}

/// `kubectl mesh up<TAB>`, `kubectl mesh upgrade <TAB>` and the flags of upgrade and its
/// subcommands, through completer `exe`.
fn upgrade_completes(sb: &Sandbox, exe: &Path) {
    let complete = |words: &[&str]| text(&sb.run_exe(exe, words, "").stdout);
    assert_eq!(
        complete(&["up"]),
        format!("upgrade\t{UPGRADE_SUMMARY}\n:4\n")
    );
    let first: Vec<String> = complete(&[""])
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        first[..3],
        ["upgrade", "tag", "version"],
        "catalogue order, then the builtins"
    );
    assert_eq!(
        complete(&["upgrade", ""]),
        "dataplane\tMove namespaces to a revision or tag and restart workloads onto its proxy\n\
         rollback\tUndo a change: restore the latest backup of this cluster\n\
         help\tPrint this message or the help of the given subcommand(s)\n:4\n"
    );
    assert_eq!(
        complete(&["upgrade", "r"]),
        "rollback\tUndo a change: restore the latest backup of this cluster\n:4\n"
    );
    // Each flag once: `--canary` also starts a line of the about text.
    assert_eq!(
        complete(&["upgrade", "--"]),
        "--filename\n--canary\n--dry-run\n--yes\n--timeout\n--help\n:4\n"
    );
    assert_eq!(
        complete(&["upgrade", "-f", "x.yaml", "--c"]),
        "--canary\n:4\n"
    );
    assert_eq!(
        complete(&["upgrade", "dataplane", "--"]),
        "--namespace\n--all-namespaces\n--to-revision\n--batch\n--help\n:4\n"
    );
    assert_eq!(
        complete(&["upgrade", "dataplane", "-n", "apps", "--to"]),
        "--to-revision\n:4\n"
    );
    assert_eq!(
        complete(&["upgrade", "rollback", "--"]),
        "--dry-run\n--help\n:4\n"
    );
    // Files: the manifest, the value of --timeout, the BACKUP of rollback.
    assert_eq!(complete(&["upgrade", "-f", ""]), ":0\n");
    assert_eq!(complete(&["upgrade", "--timeout", ""]), ":0\n");
    assert_eq!(complete(&["upgrade", "rollback", ""]), ":0\n");
    // After a flag of the control-plane upgrade, `dataplane` / `rollback` cannot follow.
    assert_eq!(complete(&["upgrade", "--dry-run", ""]), ":0\n");
    assert_eq!(complete(&["upgrade", "-f", "x.yaml", "d"]), ":0\n");
}

#[test]
fn bash_script_completes_through_the_dispatcher() {
    let sb = Sandbox::new("bash");
    fake_tag(&sb, "bin", VERSION);
    fake_upgrade(&sb, "bin", VERSION);
    let script = sb.run(&["completion", "bash"]);
    assert!(script.status.success());
    fs::write(sb.root.join("completion.bash"), &script.stdout).unwrap();
    let probe = format!(
        "source {root}/completion.bash\n\
         COMP_WORDS=({bin}/kubectl-mesh ta); COMP_CWORD=1; _kubectl_mesh; echo \"1:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=({bin}/kubectl-mesh tag l); COMP_CWORD=2; _kubectl_mesh; echo \"2:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=({bin}/kubectl-mesh completion ''); COMP_CWORD=2; _kubectl_mesh; echo \"3:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=({bin}/kubectl-mesh up); COMP_CWORD=1; _kubectl_mesh; echo \"4:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=({bin}/kubectl-mesh upgrade ''); COMP_CWORD=2; _kubectl_mesh; echo \"5:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=({bin}/kubectl-mesh upgrade dataplane --a); COMP_CWORD=3; _kubectl_mesh; echo \"6:${{COMPREPLY[*]}}\"\n",
        root = sb.root.display(),
        bin = sb.bin().display()
    );
    let out = Command::new("bash").arg("-c").arg(probe).output().unwrap();
    assert_eq!(
        text(&out.stdout),
        "1:tag\n2:list\n3:bash zsh fish\n4:upgrade\n5:dataplane rollback help\n6:--all-namespaces\n",
        "{out:?}"
    );

    let bad = sb.run(&["completion", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("unsupported shell `tcsh`"),
        "{bad:?}"
    );
    for shell in ["zsh", "fish"] {
        assert!(sb.run(&["completion", shell]).status.success());
    }
}

/// zsh and fish must be installed (`bash .ci/run` installs them): a missing shell fails the
/// test instead of skipping what it checks.
#[test]
fn zsh_and_fish_scripts_complete_through_the_dispatcher() {
    let sb = Sandbox::new("zshfish");
    fake_tag(&sb, "bin", VERSION);
    let path = format!("{}:/usr/bin:/bin", sb.bin().display());
    let shell_exists = |sh: &str| Command::new(sh).arg("-c").arg("exit 0").output().is_ok();
    for sh in ["zsh", "fish"] {
        assert!(
            shell_exists(sh),
            "{sh} is not installed: install it (`bash .ci/run` does) to test its completion script"
        );
    }

    {
        fs::write(sb.root.join("c.zsh"), sb.run(&["completion", "zsh"]).stdout).unwrap();
        // Outside a completion context: stub the zsh helpers the script calls.
        let probe = format!(
            "compdef() {{ : }}; _describe() {{ print -l -- \"${{(@P)4}}\" }}; _files() {{ print FILES }}\n\
             source {}/c.zsh\n\
             words=(kubectl-mesh ta); CURRENT=2; _kubectl_mesh\n\
             words=(kubectl-mesh tag set --revision ''); CURRENT=5; _kubectl_mesh\n",
            sb.root.display()
        );
        let out = Command::new("zsh")
            .args(["-f", "-c", &probe])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(
            text(&out.stdout),
            "tag:Set, list, remove and generate revision tags\nFILES\n",
            "{out:?}"
        );
    }
    {
        fs::write(
            sb.root.join("c.fish"),
            sb.run(&["completion", "fish"]).stdout,
        )
        .unwrap();
        let probe = format!(
            "source {}/c.fish; complete -C'kubectl-mesh tag '; complete -C'kubectl-mesh completion f'",
            sb.root.display()
        );
        let out = Command::new("fish")
            .args(["--no-config", "-c", &probe])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(
            text(&out.stdout),
            "list\tList tags\nset\tPoint a tag at a revision\nfish\n",
            "{out:?}"
        );
    }
}
