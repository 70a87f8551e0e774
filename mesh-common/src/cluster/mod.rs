//! The only code that holds a `kube::Client`: connecting ([`connect`]), reading a snapshot
//! ([`fetch`]), changing objects ([`ops`]) and keeping backups ([`backup`]). Plus the one
//! confirmation prompt, and loading a snapshot from `--snapshot FILE` instead of a cluster.

pub mod backup;
mod connect;
mod fetch;
pub mod ops;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context as _;

pub use connect::{Connection, connect, load_kubeconfig};
pub use fetch::{FetchOptions, PAGE, fetch, list_all};

use crate::{
    cli::{KubeFlags, SnapshotFlags},
    exit::MeshError,
    snapshot::{ClusterSnapshot, Source},
    version::KubeVersion,
};

/// Reads the cluster state: from `--snapshot FILE` if given, else from the cluster.
/// Returns the snapshot and, for a live cluster, the connection.
pub async fn load(
    kube: &KubeFlags,
    snap: &SnapshotFlags,
    opts: &FetchOptions,
) -> Result<(ClusterSnapshot, Option<Connection>), MeshError> {
    if let Some(path) = &snap.snapshot {
        return Ok((
            read_snapshot_file(path, snap.kube_version.as_deref(), &kube.istio_namespace)?,
            None,
        ));
    }
    let conn = connect(kube).await?;
    let s = fetch(&conn, opts).await?;
    Ok((s, Some(conn)))
}

/// Reads `--snapshot FILE` (`-` for stdin).
pub fn read_snapshot_file(
    path: &std::path::Path,
    kube_version: Option<&str>,
    istio_ns: &str,
) -> Result<ClusterSnapshot, MeshError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the snapshot from stdin")
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read snapshot `{}`", path.display()))
    }
    .map_err(|e| {
        MeshError::usage(e)
            .hint("pass a file written by `kubectl get ... -A -o yaml` or `--dump-snapshot`")
    })?;
    let mut s = ClusterSnapshot::from_yaml(&text, istio_ns).map_err(|e| {
        MeshError::usage(
            anyhow::Error::new(e).context(format!("cannot use snapshot `{}`", path.display())),
        )
    })?;
    s.origin = format!("snapshot {}", path.display());
    if let Some(v) = kube_version {
        let v = KubeVersion::parse(v)
            .map_err(|e| MeshError::usage(e).hint("use a version like v1.34.4"))?;
        s.kube_version = Some(v);
        s.gaps.retain(|g| g.source != Source::Version);
    }
    Ok(s)
}

/// Asks for confirmation before a change. `--yes` answers yes; without a terminal on stdin
/// there is no one to ask, so it refuses (exit 1) with a hint.
pub fn confirm(question: &str, yes: bool) -> Result<bool, MeshError> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(MeshError::blocked(anyhow::anyhow!(
            "refusing to change the cluster without confirmation"
        ))
        .hint(
            "stdin is not a terminal: pass --yes to proceed, or --dry-run to only show the plan",
        ));
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ").context("cannot write the prompt")?;
    err.flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
