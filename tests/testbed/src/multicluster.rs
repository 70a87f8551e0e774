//! Several test-bed clusters as one multi-cluster mesh, the way Istio's multicluster install
//! guides make one: primaries installed by real `istioctl install` with a mesh ID, a cluster name
//! and a network; a remote cluster installed with istioctl's `remote` profile whose injection
//! URL points at a primary; remote secrets made by real `istioctl create-remote-secret` and
//! applied to the cluster that reads them; and one kubeconfig holding every context, like a
//! platform team's.
//!
//! What the test bed emulates: a primary's istiod is the harness's injector of that primary
//! (`/inject/rev/<rev>` reads the primary's injector ConfigMap), reached on loopback instead of
//! through an east-west gateway; nothing reads the remote secrets (no istiod runs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{Cluster, run_with_stdin, scenario};

/// Installs the default revision at `tag` as a primary of mesh `mesh_id`, named `cluster_name`.
pub fn install_primary(c: &Cluster, tag: &str, cluster_name: &str, mesh_id: &str) -> Result<()> {
    let mut cmd = c.istioctl();
    cmd.args(scenario::istioctl_install_args(c, "default", tag))
        .args(identity_sets(cluster_name, mesh_id));
    run_with_stdin(cmd, "")
        .map(drop)
        .with_context(|| format!("istioctl install of primary {cluster_name} ({tag})"))
}

/// Installs `revision` on `remote` with istioctl's `remote` profile: no istiod, its injector
/// (and validation) pointing at `primary`'s istiod for that revision.
pub fn install_remote(
    remote: &Cluster,
    primary: &Cluster,
    revision: &str,
    tag: &str,
    cluster_name: &str,
    mesh_id: &str,
) -> Result<()> {
    let mut cmd = remote.istioctl();
    // Later `--set`s win: the remote profile, and the primary's injector instead of the
    // remote's own.
    cmd.args(scenario::istioctl_install_args(remote, revision, tag))
        .args(identity_sets(cluster_name, mesh_id))
        .args(sets(&["profile=remote".to_owned()]))
        .args(scenario::injection_set_args(primary, revision));
    run_with_stdin(cmd, "")
        .map(drop)
        .with_context(|| format!("istioctl install of remote {cluster_name} ({revision})"))
}

/// `istioctl create-remote-secret --name <name>` against `of`, applied to `on` (the cluster
/// whose istiod would read `of`'s API server).
pub fn remote_secret(of: &Cluster, name: &str, on: &Cluster) -> Result<()> {
    let mut create = of.istioctl();
    create.args(["create-remote-secret", "--name", name]);
    let secret = run_with_stdin(create, "")
        .with_context(|| format!("istioctl create-remote-secret --name {name}"))?;
    on.apply(&secret).map(drop)
}

fn identity_sets(cluster_name: &str, mesh_id: &str) -> Vec<String> {
    sets(&[
        format!("values.global.meshID={mesh_id}"),
        format!("values.global.multiCluster.clusterName={cluster_name}"),
        "values.global.network=n1".to_owned(),
    ])
}

fn sets(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| ["--set".to_owned(), v.clone()])
        .collect()
}

/// Who a context acts as.
#[derive(Debug, Clone)]
pub enum User {
    /// The cluster's admin (`system:masters`).
    Admin,
    /// The restricted user (discovery and access reviews only): every LIST is forbidden.
    Restricted,
    /// A token the API server does not know: 401.
    BadToken,
}

/// One context of a fleet kubeconfig: a cluster of the test bed, or `None` for a server nobody
/// listens on.
pub struct Entry<'a> {
    /// Context name.
    pub name: &'a str,
    /// The cluster, or `None` for an unreachable server.
    pub cluster: Option<&'a Cluster>,
    /// The user.
    pub user: User,
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One context spelled out: name, server URL, CA file, bearer token.
pub struct Spelled {
    /// Context (and cluster and user) name.
    pub name: String,
    /// API server URL.
    pub server: String,
    /// CA certificate file of the server.
    pub ca: PathBuf,
    /// Bearer token.
    pub token: String,
}

/// Writes a kubeconfig with one context (and cluster and user) per entry to `dir/kubeconfig`;
/// the first entry is the current context.
pub fn kubeconfig(dir: &Path, entries: &[Entry<'_>]) -> Result<PathBuf> {
    let gone = format!("https://127.0.0.1:{}", closed_port()?);
    let any_ca = entries
        .iter()
        .find_map(|x| x.cluster)
        .context("a reachable cluster")?
        .ca_path()
        .to_owned();
    let spelled: Vec<Spelled> = entries
        .iter()
        .map(|e| {
            let (server, ca) = match e.cluster {
                Some(c) => (c.server_url().to_owned(), c.ca_path().to_owned()),
                None => (gone.clone(), any_ca.clone()),
            };
            let token = match (&e.user, e.cluster) {
                (User::Admin, Some(c)) => c.admin_token().to_owned(),
                (User::Restricted, Some(c)) => c.restricted_token().to_owned(),
                _ => "not-a-token".to_owned(),
            };
            Spelled {
                name: e.name.to_owned(),
                server,
                ca,
                token,
            }
        })
        .collect();
    write_kubeconfig(dir, &spelled)
}

/// Writes a kubeconfig of the spelled-out contexts to `dir/kubeconfig` (the first is current).
pub fn write_kubeconfig(dir: &Path, contexts: &[Spelled]) -> Result<PathBuf> {
    let (mut clusters, mut users, mut ctxs) = (String::new(), String::new(), String::new());
    for c in contexts {
        let n = &c.name;
        clusters.push_str(&format!(
            "- name: {n}\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\n",
            c.server,
            c.ca.display()
        ));
        users.push_str(&format!(
            "- name: {n}\n  user: {{token: \"{}\"}}\n",
            c.token
        ));
        ctxs.push_str(&format!(
            "- name: {n}\n  context: {{cluster: {n}, user: {n}}}\n"
        ));
    }
    let current = &contexts.first().context("no context")?.name;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n{users}contexts:\n{ctxs}current-context: {current}\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text)?;
    Ok(path)
}
