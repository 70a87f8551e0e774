//! [`Cluster`]: etcd → kube-apiserver → kube-controller-manager → kube-scheduler → kwok on
//! loopback ports in one directory, three Ready kwok nodes, and the injector webhook. Every
//! component lives in one process group that dies with the owning process (see [`crate::process`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

use crate::bins::Binaries;
use crate::config::{Layout, Ports, Tokens};
use crate::pki::Pki;
use crate::process::Group;
use crate::rt::block;
use crate::webhook::Injector;

/// Number of kwok nodes every cluster gets.
pub const NODES: usize = 3;

/// A running test cluster. Dropping it stops every component and removes its directory.
pub struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    ca: PathBuf,
    tokens: Tokens,
    bins: Binaries,
    client: Client,
    injector: Injector,
    group: Mutex<Group>,
    started_in: Duration,
    pub(crate) istio: Mutex<BTreeSet<String>>,
    ns_counter: AtomicU32,
}

impl Cluster {
    /// Starts a cluster in a fresh temporary directory (removed on drop or when this process
    /// dies; set `MESH_TESTBED_KEEP=1` to keep it for debugging).
    pub fn start() -> Result<Cluster> {
        let bins = Binaries::locate()?;
        let keep = std::env::var_os("MESH_TESTBED_KEEP").is_some_and(|v| v == "1");
        let dir = tempfile::Builder::new()
            .prefix("mesh-testbed-")
            .tempdir()?
            .keep();
        let cleanup = if keep { vec![] } else { vec![dir.clone()] };
        Self::boot(bins, dir, cleanup)
    }

    /// Starts a cluster in `dir` (created if needed). On teardown the cluster's state is removed
    /// but `dir/logs` is kept.
    pub fn start_in(dir: &Path) -> Result<Cluster> {
        let bins = Binaries::locate()?;
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        let cleanup = ["etcd", "pki", "tokens.csv", "kubeconfig", "kwok.yaml"]
            .iter()
            .map(|p| dir.join(p))
            .collect();
        Self::boot(bins, dir, cleanup)
    }

    /// One cluster per test binary, started on first use (never dropped: its processes die with
    /// the test process through the watchdog). Panics with the start-up error.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<std::result::Result<Cluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Cluster::start().map_err(|e| format!("{e:#}"))) {
            Ok(c) => c,
            Err(e) => panic!("mesh-testbed: starting the shared cluster failed: {e}"),
        }
    }

    fn boot(bins: Binaries, dir: PathBuf, cleanup: Vec<PathBuf>) -> Result<Cluster> {
        let t0 = Instant::now();
        let pki = Pki::generate(&dir)?;
        let tokens = Tokens::generate()?;
        std::fs::write(dir.join("tokens.csv"), tokens.csv())?;
        std::fs::write(dir.join("kwok.yaml"), crate::config::KWOK_CONFIG)?;
        let ports = Ports::pick()?;
        let server_url = format!("https://127.0.0.1:{}", ports.apiserver);
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            crate::config::kubeconfig(&server_url, &pki.ca_cert, &tokens),
        )?;
        let layout = Layout {
            dir: dir.clone(),
            ports,
            kubeconfig: kubeconfig.clone(),
        };
        let mut group = Group::new(&dir.join("logs"), cleanup)?;
        match launch(&mut group, &layout, &bins, &pki) {
            Ok((client, injector)) => Ok(Cluster {
                ca: pki.ca_cert.clone(),
                started_in: t0.elapsed(),
                group: Mutex::new(group),
                istio: Mutex::new(BTreeSet::new()),
                ns_counter: AtomicU32::new(0),
                dir,
                kubeconfig,
                server_url,
                tokens,
                bins,
                client,
                injector,
            }),
            Err(e) => {
                group.shutdown(Duration::from_secs(2));
                Err(e.context(format!("starting the test cluster in {}", dir.display())))
            }
        }
    }

    /// Path of the kubeconfig (contexts `admin`, current, and `restricted`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>` of the apiserver.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// CA certificate (PEM) that signed the apiserver's and the injector's certificates.
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    /// Bearer token of `admin` (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.tokens.admin
    }

    /// Bearer token of `restricted` (only `system:authenticated`).
    pub fn restricted_token(&self) -> &str {
        &self.tokens.restricted
    }

    /// The cluster's directory (logs in `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Cluster::start`] took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Path of a test bed binary: `kubectl`, `istioctl`, `krew`, `validate-krew-manifest`,
    /// `etcd`, `kube-apiserver`, … (see [`crate::bins::NAMES`]).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bins.path(name)
    }

    /// Versions from `versions.env` (e.g. `get("ISTIO_OLD_TAG")`).
    pub fn versions(&self) -> &crate::bins::Versions {
        &self.bins.versions
    }

    /// The "old" and "new" Istio releases (image tag and charts) from `versions.env`.
    pub fn releases(&self) -> &crate::bins::Releases {
        &self.bins.releases
    }

    /// An admin kube-rs client (usable from any runtime).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The injector webhook.
    pub fn injector(&self) -> &Injector {
        &self.injector
    }

    /// Pids of the components by name, and the process group id.
    pub fn pids(&self) -> (Vec<(String, u32)>, u32) {
        let g = self.group.lock().unwrap_or_else(|e| e.into_inner());
        (g.pids(), g.pgid())
    }

    /// Real `kubectl` against this cluster. `KUBECONFIG` is set in its environment (not the
    /// `--kubeconfig` flag, which kubectl refuses before a plugin name).
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.binary("kubectl"));
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// Real `istioctl` against this cluster (`KUBECONFIG` in its environment).
    pub fn istioctl(&self) -> Command {
        let mut c = Command::new(self.binary("istioctl"));
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// `kubectl apply --server-side --force-conflicts -f -` of `yaml`; returns kubectl's stdout.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        let mut c = self.kubectl();
        c.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=mesh-testbed",
            "-f",
            "-",
        ]);
        run_with_stdin(c, yaml)
    }

    /// `kubectl rollout status -n <ns> <what> --timeout=180s` (e.g. `deployment/web`).
    pub fn wait_rollout(&self, ns: &str, what: &str) -> Result<()> {
        let mut c = self.kubectl();
        c.args(["rollout", "status", "-n", ns, what, "--timeout=180s"]);
        run_with_stdin(c, "").map(drop)
    }

    /// Creates a namespace `<prefix>-<n>` unique in this cluster and waits for its
    /// `default` ServiceAccount (bare pods need it).
    pub fn unique_namespace(&self, prefix: &str) -> Result<String> {
        let n = self.ns_counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{n}-{}", &self.tokens.admin[..5]);
        let client = self.client();
        let ns = name.clone();
        block(async move { create_namespace(client, &ns).await })?;
        Ok(name)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let g = self.group.get_mut().unwrap_or_else(|e| e.into_inner());
        g.shutdown(Duration::from_secs(3));
    }
}

/// Runs a command with `input` on stdin; fails with its stderr unless it exits 0.
pub fn run_with_stdin(mut cmd: Command, input: &str) -> Result<String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts the components in order and waits for a usable cluster.
fn launch(group: &mut Group, l: &Layout, bins: &Binaries, pki: &Pki) -> Result<(Client, Injector)> {
    let client = start_storage_and_apiserver(group, l, bins)?;
    for (name, args) in [
        ("kube-controller-manager", l.controller_manager()),
        ("kube-scheduler", l.scheduler()),
        ("kwok", l.kwok(&bins.kwok_stages)),
    ] {
        group.spawn(name, Command::new(bins.path(name)).args(args))?;
    }
    let injector = Injector::start(pki, client.clone())?;
    let (c, kubelet) = (
        client.clone(),
        format!("v{}", bins.versions.get("K8S_VERSION")?),
    );
    block(async move { create_nodes(c, kubelet).await })?;
    let what = "Ready nodes and serviceaccount/default";
    wait_until(group, what, Duration::from_secs(90), || {
        let c = client.clone();
        block(async move { settled(c).await })
    })?;
    Ok((client, injector))
}

/// etcd, then kube-apiserver until `/readyz` says ok; returns an admin client.
fn start_storage_and_apiserver(group: &mut Group, l: &Layout, bins: &Binaries) -> Result<Client> {
    group.spawn("etcd", Command::new(bins.path("etcd")).args(l.etcd()))?;
    let etcd = ("127.0.0.1", l.ports.etcd);
    wait_until(group, "etcd", Duration::from_secs(30), || {
        Ok(TcpStream::connect(etcd).is_ok())
    })?;
    let apiserver = bins.path("kube-apiserver");
    group.spawn(
        "kube-apiserver",
        Command::new(apiserver).args(l.apiserver()),
    )?;
    let client = block(client_from(l.kubeconfig.clone()))?;
    let what = "kube-apiserver /readyz";
    wait_until(group, what, Duration::from_secs(90), || Ok(ready(&client)))?;
    Ok(client)
}

/// Polls `probe` every 100 ms, failing early (with a log tail) if a component exits.
fn wait_until(
    group: &mut Group,
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        group.check_alive()?;
        if probe()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An admin client from the kubeconfig (ring crypto provider installed first).
pub async fn client_from(kubeconfig: PathBuf) -> Result<Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(&kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn ready(client: &Client) -> bool {
    let c = client.clone();
    block(async move {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("static request");
        c.request_text(req).await.is_ok_and(|t| t.trim() == "ok")
    })
}

/// Three untainted kwok nodes. `nodeInfo` is set so they report a real kubelet version
/// (kwok's node-initialize stage keeps it; otherwise they would say `kwok-0.8.0`).
async fn create_nodes(client: Client, kubelet: String) -> Result<()> {
    let api = Api::<Node>::all(client);
    for i in 0..NODES {
        let name = format!("kwok-node-{i}");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "10000"},
                       "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "10000"},
                       "nodeInfo": {"kubeletVersion": kubelet, "kubeProxyVersion": "",
                           "containerRuntimeVersion": "containerd://2.1.4", "kernelVersion": "6.8.0-kwok",
                           "osImage": "kwok fake node", "operatingSystem": "linux", "architecture": "amd64",
                           "machineID": "", "systemUUID": "", "bootID": ""}},
        }))?;
        api.create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))?;
    }
    Ok(())
}

/// All nodes Ready and `default/default` ServiceAccount present.
async fn settled(client: Client) -> Result<bool> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let ready = nodes.items.iter().filter(|n| node_ready(n)).count();
    let sa = Api::<ServiceAccount>::namespaced(client, "default")
        .get_opt("default")
        .await?;
    Ok(ready == NODES && sa.is_some())
}

/// True when the node's `Ready` condition is `True`.
pub fn node_ready(n: &Node) -> bool {
    let conds = n.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates namespace `name` and waits (≤ 30 s) for its `default` ServiceAccount.
pub async fn create_namespace(client: Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let sas = Api::<ServiceAccount>::namespaced(client, name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sas.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            bail!("serviceaccount {name}/default did not appear");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
