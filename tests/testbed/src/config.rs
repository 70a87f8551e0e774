//! Files and command lines of one cluster: free loopback ports, the static token file, the
//! kubeconfig (contexts `admin` and `restricted`) and each component's flags.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::Result;

/// Loopback ports of one cluster.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// etcd client port.
    pub etcd: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// kube-apiserver secure port.
    pub apiserver: u16,
    /// kube-controller-manager secure (health) port.
    pub kcm: u16,
    /// kube-scheduler secure (health) port.
    pub scheduler: u16,
}

impl Ports {
    /// Picks five distinct free ports on 127.0.0.1 (bound together, then released).
    pub fn pick() -> Result<Self> {
        let ls = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let p = ls
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            etcd: p[0],
            etcd_peer: p[1],
            apiserver: p[2],
            kcm: p[3],
            scheduler: p[4],
        })
    }
}

/// Bearer tokens of the two users.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `admin`, group `system:masters`.
    pub admin: String,
    /// `restricted`, only `system:authenticated`.
    pub restricted: String,
}

impl Tokens {
    /// Two random tokens.
    pub fn generate() -> Result<Self> {
        Ok(Self {
            admin: random_hex()?,
            restricted: random_hex()?,
        })
    }

    /// The apiserver's `--token-auth-file` (`token,user,uid[,"groups"]`).
    pub fn csv(&self) -> String {
        format!(
            "{},admin,uid-admin,\"system:masters\"\n{},restricted,uid-restricted\n",
            self.admin, self.restricted
        )
    }
}

fn random_hex() -> Result<String> {
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Kubeconfig with contexts `admin` (current) and `restricted`.
pub fn kubeconfig(server: &str, ca: &Path, tokens: &Tokens) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {admin}
- name: restricted
  user:
    token: {restricted}
contexts:
- name: admin
  context:
    cluster: testbed
    user: admin
- name: restricted
  context:
    cluster: testbed
    user: restricted
    namespace: default
current-context: admin
"#,
        ca = ca.display(),
        admin = tokens.admin,
        restricted = tokens.restricted,
    )
}

/// kwok's own options: more parallel pod stages than the default 4, so thousands of pods
/// (scale generator) turn Running faster. A KwokConfiguration given in `--config` is not
/// defaulted, so every option kwok needs is spelled out (values of its defaults otherwise).
pub const KWOK_CONFIG: &str = "apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 32
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
  enableDebuggingHandlers: false
  enableProfilingHandler: false
  enableContentionProfiling: false
";

/// Inputs for the component command lines.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Cluster directory.
    pub dir: PathBuf,
    /// Ports.
    pub ports: Ports,
    /// Admin kubeconfig used by KCM, scheduler and kwok.
    pub kubeconfig: PathBuf,
}

impl Layout {
    fn p(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    /// etcd flags (single member, no fsync).
    pub fn etcd(&self) -> Vec<String> {
        let (c, p) = (self.ports.etcd, self.ports.etcd_peer);
        vec![
            "--name=tb".into(),
            format!("--data-dir={}", self.p("etcd")),
            format!("--listen-client-urls=http://127.0.0.1:{c}"),
            format!("--advertise-client-urls=http://127.0.0.1:{c}"),
            format!("--listen-peer-urls=http://127.0.0.1:{p}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{p}"),
            format!("--initial-cluster=tb=http://127.0.0.1:{p}"),
            "--unsafe-no-fsync=true".into(),
            format!("--quota-backend-bytes={}", 4u64 << 30),
            "--log-level=warn".into(),
        ]
    }

    /// kube-apiserver flags (TESTBED.md §3.2, with our own serving certificate).
    pub fn apiserver(&self) -> Vec<String> {
        let mut v = vec![
            format!("--etcd-servers=http://127.0.0.1:{}", self.ports.etcd),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", self.ports.apiserver),
            format!("--tls-cert-file={}", self.p("pki/apiserver.crt")),
            format!("--tls-private-key-file={}", self.p("pki/apiserver.key")),
            format!("--client-ca-file={}", self.p("pki/ca.crt")),
            "--advertise-address=127.0.0.1".into(),
            "--endpoint-reconciler-type=none".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        ];
        v.extend([
            format!("--service-account-key-file={}", self.p("pki/sa.pub")),
            format!(
                "--service-account-signing-key-file={}",
                self.p("pki/sa.key")
            ),
            format!("--token-auth-file={}", self.p("tokens.csv")),
            "--authorization-mode=Node,RBAC".into(),
            "--allow-privileged=true".into(),
            // No node-lifecycle controller runs (see `controller_manager`), so nothing would
            // lift the not-ready taint this plugin puts on new nodes: kwok nodes stay untainted.
            "--disable-admission-plugins=TaintNodesByCondition".into(),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--profiling=false".into(),
            format!("--cert-dir={}", self.p("pki")),
        ]);
        v
    }

    /// kube-controller-manager flags. The node-lifecycle controller is off, so kwok nodes never
    /// get `not-ready`/`unreachable` taints (and pods are never evicted) when a loaded 2-core
    /// machine delays kwok's heartbeats.
    pub fn controller_manager(&self) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--leader-elect=false".into(),
            "--controllers=*,-node-lifecycle-controller".into(),
            "--use-service-account-credentials=false".into(),
            format!(
                "--service-account-private-key-file={}",
                self.p("pki/sa.key")
            ),
            format!("--root-ca-file={}", self.p("pki/ca.crt")),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", self.ports.kcm),
            "--kube-api-qps=300".into(),
            "--kube-api-burst=600".into(),
            "--concurrent-replicaset-syncs=10".into(),
            "--concurrent-deployment-syncs=10".into(),
        ]
    }

    /// kube-scheduler flags.
    pub fn scheduler(&self) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", self.ports.scheduler),
            "--kube-api-qps=300".into(),
            "--kube-api-burst=600".into(),
        ]
    }

    /// kwok flags: manages nodes annotated `kwok.x-k8s.io/node=fake`; `--config` takes the
    /// stages and [`KWOK_CONFIG`] (written to `<dir>/kwok.yaml` by the caller).
    pub fn kwok(&self, stages: &Path) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--config={}", stages.display()),
            format!("--config={}", self.p("kwok.yaml")),
            "--manage-all-nodes=false".into(),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
            "--cidr=10.244.0.0/16".into(),
            "--node-ip=127.0.0.1".into(),
            "--node-lease-duration-seconds=40".into(),
        ]
    }
}
