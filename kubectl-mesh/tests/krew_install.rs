//! End to end: the release archive for this host, installed by the real krew and run through
//! the real kubectl, as a user would after `kubectl krew install mesh`.
//!
//! Needs the test bed built by `tests/testbed/build.sh` (krew and validate-krew-manifest in
//! `<cache>/krew-<v>/bin`, kubectl in `<cache>/k8s-<v>/bin`; versions from
//! `tests/testbed/versions.env`, cache from `$KUBECTL_MESH_TESTBED_CACHE`, else
//! `${XDG_CACHE_HOME:-~/.cache}/kubectl-mesh-testbed`). Scratch files live in
//! `<target>/krew-e2e/`. What it runs, in order (`$T` = that directory):
//!
//! ```text
//! CARGO_TARGET_DIR=<target> bash krew/release.sh --platforms host --profile <this test's> \
//!     --out $T/dist --manifest $T/manifest/mesh.yaml          # cargo build --bins + pack + render
//! tar -tvzf $T/dist/kubectl-mesh-v<version>-<os>-<arch>.tar.gz # flat, regular files, 0755 bins,
//!                                                              # every subcommand binary
//! validate-krew-manifest --manifest=$T/manifest/mesh.yaml --skip-install
//! KREW_ROOT=$T/<test>/krew KREW_NO_UPGRADE_CHECK=1 krew install --manifest=$T/manifest/mesh.yaml \
//!     --archive=$T/dist/<archive>
//! # with PATH=$KREW_ROOT/bin:<kubectl dir>:/usr/bin:/bin
//! kubectl mesh --help ; kubectl mesh <each subcommand> --help ; kubectl mesh version
//! kubectl mesh upgrade dataplane --help ; kubectl mesh upgrade rollback --help ; kubectl mesh nope
//! kubectl plugin list                                          # no warnings on stderr
//! kubectl mesh tag list --snapshot $T/tag/snapshot.yaml
//! kubectl mesh upgrade -f $T/upgrade/istio-1-30-4.yaml --dry-run --snapshot \
//!     $T/upgrade/snapshot.yaml --kube-version v1.34.4           # plans a patch upgrade offline
//! kubectl mesh upgrade dataplane -A --to-revision prod --dry-run --snapshot $T/upgrade/snapshot.yaml
//! ln -s kubectl-mesh $KREW_ROOT/bin/kubectl_complete-mesh      # the caveat's instruction
//! kubectl __complete mesh "" ; kubectl __complete mesh up ; kubectl __complete mesh upgrade ...
//! # and, with the archive served on 127.0.0.1 and a kubectl-krew link on PATH:
//! validate-krew-manifest --manifest=$T/served/mesh.yaml        # full install + LICENSE check
//! ```
//! The binaries are the ones release.sh builds in the profile of this test run (`dev` under
//! `cargo test`: debug binaries, no release build), so they are always those of this source tree;
//! a subcommand missing from the archive fails the test. The drift test
//! (`bot_template_is_up_to_date`) needs no test bed.
#![cfg(unix)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Product subcommands every archive holds (`kubectl-mesh-<name>`), in catalogue order, besides
/// the dispatcher and the completer.
const SUBCOMMANDS: [&str; 4] = ["precheck", "upgrade", "tag", "uninstall"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `<target>/<profile dir>` of this test run, from where cargo put the dispatcher.
fn profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kubectl-mesh"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test bed's binaries this test uses.
struct Testbed {
    krew: PathBuf,
    validate: PathBuf,
    kubectl_dir: PathBuf,
}

fn testbed() -> Testbed {
    let versions = fs::read_to_string(workspace().join("tests/testbed/versions.env")).unwrap();
    let versions: HashMap<&str, &str> = versions
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    let cache = std::env::var_os("KUBECTL_MESH_TESTBED_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            base.join("kubectl-mesh-testbed")
        });
    let krew_dir = cache.join(format!("krew-{}/bin", versions["KREW_VERSION"]));
    let k8s = cache.join(format!("k8s-{}", versions["K8S_VERSION"]));
    let tb = Testbed {
        krew: krew_dir.join("krew"),
        validate: krew_dir.join("validate-krew-manifest"),
        kubectl_dir: k8s.join("bin"),
    };
    let needed = [
        tb.krew.clone(),
        tb.validate.clone(),
        tb.kubectl_dir.join("kubectl"),
        k8s.join(".built"),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "test bed binaries are missing ({}): build them with `bash tests/testbed/build.sh krew k8s` \
         (cache: {})",
        missing.join(", "),
        cache.display()
    );
    tb
}

/// The release built once per test binary.
struct Release {
    root: PathBuf,
    manifest: PathBuf,
    archive: PathBuf,
    /// File names inside the archive.
    files: Vec<String>,
}

fn release() -> &'static Release {
    static RELEASE: OnceLock<Release> = OnceLock::new();
    RELEASE.get_or_init(build_release)
}

fn build_release() -> Release {
    let root = profile_dir().parent().unwrap().join("krew-e2e");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    let profile = match profile_dir().file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    };
    let manifest = root.join("manifest/mesh.yaml");
    let out = run(Command::new("bash")
        .arg(workspace().join("krew/release.sh"))
        .args(["--platforms", "host", "--profile", &profile, "--out"])
        .arg(root.join("dist"))
        .arg("--manifest")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", profile_dir().parent().unwrap()));
    assert!(
        out.status.success(),
        "krew/release.sh failed: {}",
        show(&out)
    );
    let archive = fs::read_dir(root.join("dist"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().is_some_and(|s| s.ends_with(".tar.gz")))
        .expect("release.sh wrote no .tar.gz");
    let files = check_archive(&archive);
    Release {
        root,
        manifest,
        archive,
        files,
    }
}

/// Every entry is a regular file at the top level; binaries are 0755, docs 0644.
fn check_archive(archive: &Path) -> Vec<String> {
    let out = run(Command::new("tar").arg("-tvzf").arg(archive));
    assert!(out.status.success(), "{}", show(&out));
    let mut files = Vec::new();
    for line in text(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, name) = (fields[0], *fields.last().unwrap());
        assert!(!name.contains('/'), "entry with a directory: {line}");
        let want = if name == "LICENSE" || name == "README.md" {
            "-rw-r--r--"
        } else {
            "-rwxr-xr-x"
        };
        assert_eq!(mode, want, "{line}");
        files.push(name.to_owned());
    }
    let subcommands = SUBCOMMANDS.map(|s| format!("kubectl-mesh-{s}"));
    let needed = [
        "kubectl-mesh",
        "kubectl_complete-mesh",
        "LICENSE",
        "README.md",
    ]
    .into_iter()
    .chain(subcommands.iter().map(String::as_str));
    for needed in needed {
        assert!(
            files.iter().any(|f| f == needed),
            "{needed} missing from the archive {}: {files:?}",
            archive.display()
        );
    }
    files
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A fresh `KREW_ROOT` under the release directory with the plugin installed by krew.
struct Installed {
    krew_root: PathBuf,
    home: PathBuf,
    tb: Testbed,
}

fn install(test: &str) -> Installed {
    let tb = testbed();
    let rel = release();
    let dir = rel.root.join(test);
    let _ = fs::remove_dir_all(&dir);
    let (krew_root, home) = (dir.join("krew"), dir.join("home"));
    fs::create_dir_all(&home).unwrap();
    let out = run(Command::new(&tb.krew)
        .arg("install")
        .arg(format!("--manifest={}", rel.manifest.display()))
        .arg(format!("--archive={}", rel.archive.display()))
        .env_clear()
        .env("HOME", &home)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", tb.kubectl_dir.display()),
        )
        .env("KREW_ROOT", &krew_root)
        .env("KREW_NO_UPGRADE_CHECK", "1"));
    assert!(out.status.success(), "krew install failed: {}", show(&out));
    assert!(
        text(&out.stderr).contains("kubectl mesh precheck"),
        "the caveats should name the first command: {}",
        show(&out)
    );
    Installed {
        krew_root,
        home,
        tb,
    }
}

impl Installed {
    /// `kubectl ARGS` as a user with only krew's bin directory and kubectl on PATH.
    fn kubectl(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}:/usr/bin:/bin",
            self.krew_root.join("bin").display(),
            self.tb.kubectl_dir.display()
        );
        run(Command::new(self.tb.kubectl_dir.join("kubectl"))
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", path)
            .env("KUBECONFIG", self.home.join("no-such-kubeconfig")))
    }
}

#[test]
fn krew_installs_the_release_and_kubectl_runs_it() {
    let tb = testbed();
    let rel = release();
    let out = run(Command::new(&tb.validate)
        .arg(format!("--manifest={}", rel.manifest.display()))
        .arg("--skip-install"));
    assert!(
        out.status.success(),
        "validate-krew-manifest: {}",
        show(&out)
    );

    let inst = install("kubectl");
    // krew links only `bin`; the siblings stay in the store directory the link points into.
    let link = inst.krew_root.join("bin/kubectl-mesh");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let store = fs::canonicalize(&link)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    for f in &rel.files {
        assert!(
            store.join(f).is_file(),
            "{f} not installed in {}",
            store.display()
        );
    }

    let help = inst.kubectl(&["mesh", "--help"]);
    assert!(help.status.success(), "{}", show(&help));
    let usage = text(&help.stdout);
    assert!(
        usage.contains("Usage: kubectl mesh <subcommand>"),
        "{usage}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            usage.contains(&format!("\n  {sub} ")),
            "`{sub}` not in --help:\n{usage}"
        );
    }

    // Each subcommand's own help, through kubectl and the dispatcher.
    for words in SUBCOMMANDS
        .iter()
        .map(|s| vec![*s])
        .chain([vec!["upgrade", "dataplane"], vec!["upgrade", "rollback"]])
    {
        let args: Vec<&str> = ["mesh"]
            .into_iter()
            .chain(words.iter().copied())
            .chain(["--help"])
            .collect();
        let out = inst.kubectl(&args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        let usage = format!("Usage: kubectl mesh {}", words.join(" "));
        assert!(
            text(&out.stdout).contains(&usage),
            "{args:?} printed no `{usage}`: {}",
            show(&out)
        );
    }
    let out = inst.kubectl(&["mesh", "upgrade", "--help"]);
    let help = text(&out.stdout);
    for word in [
        "dataplane",
        "rollback",
        "--filename",
        "--canary",
        "--no-rollback",
    ] {
        assert!(
            help.contains(word),
            "`{word}` not in upgrade --help: {help}"
        );
    }

    // Every binary of one release reports the same version: exit 0, nothing on stderr.
    let out = inst.kubectl(&["mesh", "version"]);
    assert!(
        out.status.success(),
        "binaries of one release must agree: {}",
        show(&out)
    );
    assert!(out.stderr.is_empty(), "{}", show(&out));
    let stdout = text(&out.stdout);
    let (table, releases) = stdout.split_once("\n\n").unwrap_or((&stdout, ""));
    // The binaries that judge versions say which Istio minors their (built-in) data knows.
    assert!(
        releases.starts_with("release data: Istio 1.20 to ")
            && releases.contains("(built-in data, checked "),
        "{}",
        show(&out)
    );
    let versions: Vec<(String, String)> = table
        .lines()
        .map(|l| {
            let (binary, version) = l.split_once(' ').unwrap_or((l, ""));
            (binary.to_owned(), version.trim().to_owned())
        })
        .collect();
    let expected: Vec<(String, String)> = std::iter::once("kubectl-mesh".to_owned())
        .chain(SUBCOMMANDS.map(|s| format!("kubectl-mesh-{s}")))
        .map(|b| (b, VERSION.to_owned()))
        .collect();
    assert_eq!(versions, expected, "{}", show(&out));

    let out = inst.kubectl(&["mesh", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("error: unknown subcommand `nope`"),
        "{}",
        show(&out)
    );

    let out = inst.kubectl(&["plugin", "list"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stdout).contains(&link.display().to_string()),
        "{}",
        show(&out)
    );
    assert!(
        out.stderr.is_empty(),
        "kubectl plugin list warned: {}",
        show(&out)
    );
}

/// Writes [`SNAPSHOT`] (the `kubectl get ... -o yaml` List format `--snapshot` reads: one
/// revision `1-30-3` with its Service and a ready endpoint, and a tag `prod` pointing at it)
/// into the test's directory.
fn snapshot(test: &str) -> PathBuf {
    let path = release().root.join(test).join("snapshot.yaml");
    fs::write(&path, SNAPSHOT).unwrap();
    path
}

#[test]
fn tag_list_runs_through_kubectl_on_a_snapshot() {
    let inst = install("tag");
    let snapshot = snapshot("tag");
    let out = inst.kubectl(&[
        "mesh",
        "tag",
        "list",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["prod", "1-30-3"])),
        "tag `prod` of revision `1-30-3` not listed: {}",
        show(&out)
    );
}

/// The real `kubectl-mesh-upgrade`, installed by krew and run through kubectl, plans offline:
/// an in-place patch upgrade of `1-30-3` from a manifest, and the data-plane move to tag `prod`.
#[test]
fn upgrade_plans_through_kubectl_on_a_snapshot() {
    let inst = install("upgrade");
    let snapshot = snapshot("upgrade");
    let manifest = release().root.join("upgrade/istio-1-30-4.yaml");
    fs::write(&manifest, MANIFEST_1_30_4).unwrap();
    let out = inst.kubectl(&[
        "mesh",
        "upgrade",
        "-f",
        manifest.to_str().unwrap(),
        "--dry-run",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--kube-version",
        "v1.34.4",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let plan = text(&out.stdout);
    for want in [
        "`1-30-3`: 1.30.3 → 1.30.4",
        "Deployment/istio-system/istiod-1-30-3",
        "docker.io/istio/pilot:1.30.3 → docker.io/istio/pilot:1.30.4",
    ] {
        assert!(
            plan.contains(want),
            "`{want}` not in the plan: {}",
            show(&out)
        );
    }

    let out = inst.kubectl(&[
        "mesh",
        "upgrade",
        "dataplane",
        "-A",
        "--to-revision",
        "prod",
        "--dry-run",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("revision `1-30-3`"),
        "tag `prod` not resolved to its revision: {}",
        show(&out)
    );
}

#[test]
fn kubectl_completes_plugin_words_through_the_helper_link() {
    let inst = install("completion");
    // The caveat's instruction, verbatim in spirit.
    symlink(
        "kubectl-mesh",
        inst.krew_root.join("bin/kubectl_complete-mesh"),
    )
    .unwrap();
    let out = inst.kubectl(&["__complete", "mesh", ""]);
    assert!(out.status.success(), "{}", show(&out));
    let words: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    for w in SUBCOMMANDS.into_iter().chain(["version", "completion"]) {
        assert!(
            words.iter().any(|x| x == w),
            "`{w}` not offered: {}",
            show(&out)
        );
    }
    let out = inst.kubectl(&["__complete", "mesh", "completion", "f"]);
    assert!(text(&out.stdout).starts_with("fish\n"), "{}", show(&out));

    // `kubectl mesh up<TAB>`, `kubectl mesh upgrade <TAB>` and the flags of the real binary.
    let complete = |words: &[&str]| -> Vec<String> {
        let args: Vec<&str> = ["__complete", "mesh"]
            .into_iter()
            .chain(words.iter().copied())
            .collect();
        let out = inst.kubectl(&args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        text(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(':') && !l.starts_with("Completion ended"))
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(complete(&["up"]), ["upgrade"]);
    assert_eq!(
        complete(&["upgrade", ""]),
        ["dataplane", "rollback", "help"]
    );
    assert_eq!(complete(&["upgrade", "d"]), ["dataplane"]);
    let expect_flags = |words: &[&str], flags: &[&str]| {
        let offered = complete(words);
        for flag in flags {
            assert_eq!(
                offered.iter().filter(|o| o == flag).count(),
                1,
                "`{flag}` offered once for {words:?}: {offered:?}"
            );
        }
        let mut unique = offered.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), offered.len(), "duplicates: {offered:?}");
    };
    expect_flags(
        &["upgrade", "--"],
        &[
            "--filename",
            "--canary",
            "--dry-run",
            "--yes",
            "--force",
            "--timeout",
            "--no-rollback",
            "--backup-dir",
            "--force-conflicts",
        ],
    );
    expect_flags(
        &["upgrade", "dataplane", "--"],
        &[
            "--namespace",
            "--all-namespaces",
            "--to-revision",
            "--batch",
            "--timeout",
            "--dry-run",
            "--yes",
        ],
    );
    expect_flags(
        &["upgrade", "rollback", "--"],
        &["--dry-run", "--yes", "--timeout"],
    );
    assert_eq!(
        complete(&["upgrade", "dataplane", "--to"]),
        ["--to-revision"]
    );
    assert!(
        complete(&["upgrade", "-f", ""]).is_empty(),
        "files after -f"
    );
    // The completion helper must not show up as a plugin (it starts with `kubectl_`).
    let out = inst.kubectl(&["plugin", "list"]);
    assert!(
        !text(&out.stdout).contains("kubectl_complete-mesh"),
        "{}",
        show(&out)
    );
    assert!(out.stderr.is_empty(), "{}", show(&out));
}

/// validate-krew-manifest without `--skip-install` downloads each `uri` and checks that a
/// LICENSE is installed: serve the archive on 127.0.0.1 and point the manifest there.
#[test]
fn validate_krew_manifest_installs_from_a_local_server() {
    let tb = testbed();
    let rel = release();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bytes = fs::read(&rel.archive).unwrap();
    std::thread::spawn(move || serve(&listener, &bytes));

    let github =
        format!("https://github.com/kubectl-mesh/kubectl-mesh/releases/download/v{VERSION}/");
    let manifest = fs::read_to_string(&rel.manifest).unwrap();
    assert!(manifest.contains(&github), "{manifest}");
    let served = rel.root.join("served/mesh.yaml");
    fs::create_dir_all(served.parent().unwrap()).unwrap();
    fs::write(
        &served,
        manifest.replace(&github, &format!("http://127.0.0.1:{port}/")),
    )
    .unwrap();

    // validate-krew-manifest runs `kubectl krew install`: kubectl must find `kubectl-krew`.
    let bin = rel.root.join("served/bin");
    fs::create_dir_all(&bin).unwrap();
    symlink(&tb.krew, bin.join("kubectl-krew")).unwrap();
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        bin.display(),
        tb.kubectl_dir.display()
    );
    let out = run(Command::new(&tb.validate)
        .arg(format!("--manifest={}", served.display()))
        .env("PATH", path));
    assert!(
        out.status.success(),
        "validate-krew-manifest (with install): {}",
        show(&out)
    );
}

/// Answers every request with the archive (enough for krew's HTTP GET).
fn serve(listener: &TcpListener, body: &[u8]) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let _ = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body));
    }
}

/// krew/.krew.yaml is generated from krew/mesh.yaml.tmpl; it must not drift.
#[test]
fn bot_template_is_up_to_date() {
    let out = run(Command::new("bash")
        .arg(workspace().join("krew/release.sh"))
        .arg("--bot-template"));
    assert!(out.status.success(), "{}", show(&out));
    let committed = fs::read_to_string(workspace().join("krew/.krew.yaml")).unwrap();
    assert!(
        committed == text(&out.stdout),
        "krew/.krew.yaml is stale: run `krew/release.sh --bot-template > krew/.krew.yaml`"
    );
    for platform in [
        "linux-amd64",
        "linux-arm64",
        "darwin-amd64",
        "darwin-arm64",
        "windows-amd64.zip",
    ] {
        assert!(
            committed.contains(platform),
            "{platform} missing from krew/.krew.yaml"
        );
    }
    assert!(committed.contains("{{ addURIAndSha \"https://github.com/kubectl-mesh/kubectl-mesh/releases/download/{{ .TagName }}/kubectl-mesh-{{ .TagName }}-linux-amd64.tar.gz\" .TagName }}"));
}

/// The `1-30-3` control plane of [`SNAPSHOT`], as 1.30.4 would install it (a patch upgrade in
/// place).
const MANIFEST_1_30_4: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod-1-30-3
  namespace: istio-system
  labels: {app: istiod, istio: pilot, istio.io/rev: 1-30-3}
spec:
  replicas: 1
  selector:
    matchLabels: {app: istiod, istio.io/rev: 1-30-3}
  template:
    metadata:
      labels: {app: istiod, istio.io/rev: 1-30-3}
    spec:
      containers:
      - name: discovery
        image: docker.io/istio/pilot:1.30.4
"#;

const SNAPSHOT: &str = r#"apiVersion: v1
kind: List
metadata:
  annotations: {kubectl-mesh.dev/sources: "namespaces,deployments,daemon-sets,services,endpoint-slices,config-maps,mutating-webhooks,validating-webhooks,crds,pdbs,pods,envoy-filters"}
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: istio-system
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: istiod-1-30-3
    namespace: istio-system
    labels: {app: istiod, istio: pilot, istio.io/rev: 1-30-3}
  spec:
    replicas: 1
    selector:
      matchLabels: {app: istiod, istio.io/rev: 1-30-3}
    template:
      metadata:
        labels: {app: istiod, istio.io/rev: 1-30-3}
      spec:
        containers:
        - name: discovery
          image: docker.io/istio/pilot:1.30.3
  status: {replicas: 1, readyReplicas: 1, availableReplicas: 1}
- apiVersion: admissionregistration.k8s.io/v1
  kind: MutatingWebhookConfiguration
  metadata:
    name: istio-revision-tag-prod
    labels: {app: sidecar-injector, istio.io/rev: 1-30-3, istio.io/tag: prod}
  webhooks:
  - name: rev.namespace.sidecar-injector.istio.io
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    clientConfig:
      service: {name: istiod-1-30-3, namespace: istio-system, path: /inject, port: 443}
    namespaceSelector:
      matchExpressions:
      - {key: istio.io/rev, operator: In, values: [prod]}
      - {key: istio-injection, operator: DoesNotExist}
- apiVersion: v1
  kind: Service
  metadata:
    name: istiod-1-30-3
    namespace: istio-system
    labels: {app: istiod, istio: pilot, istio.io/rev: 1-30-3}
  spec:
    selector: {app: istiod, istio.io/rev: 1-30-3}
    ports:
    - {name: https-webhook, port: 443, targetPort: 15017}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: istiod-1-30-3-x1
    namespace: istio-system
    labels: {kubernetes.io/service-name: istiod-1-30-3}
  addressType: IPv4
  endpoints:
  - addresses: [10.0.0.5]
    conditions: {ready: true}
  ports:
  - {name: https-webhook, port: 15017, protocol: TCP}
"#;

/// The release workflow builds each platform on its own runner and renders the manifest last,
/// from the archives alone (`release.sh --render-only`): that manifest is the one the build
/// rendered, and it still passes validate-krew-manifest.
#[test]
fn the_manifest_rendered_from_the_archives_alone_is_the_same() {
    let r = release();
    let tb = testbed();
    let manifest = r.root.join("render-only/mesh.yaml");
    let out = run(Command::new("bash")
        .arg(workspace().join("krew/release.sh"))
        .args(["--render-only", "--out"])
        .arg(r.archive.parent().unwrap())
        .arg("--manifest")
        .arg(&manifest)
        .env(
            "PATH",
            format!(
                "{}:{}",
                tb.validate.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ));
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("validate-krew-manifest --skip-install: OK"),
        "{}",
        show(&out)
    );
    let body = |p: &Path| -> String {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&manifest), body(&r.manifest));
}
