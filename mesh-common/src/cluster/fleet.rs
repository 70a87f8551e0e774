//! Reading many clusters in one run: every context with its own connection (and its own
//! `--request-timeout`), at most `parallel` at once, each reduced by the caller's `judge` as soon
//! as it is read — so no more than `parallel` snapshots are ever in memory, whatever the number
//! of clusters. A cluster that cannot be read (unreachable, credentials rejected, forbidden, a
//! context that cannot be used) becomes a [`Failure`] in its place and never stops the others.

use std::sync::Arc;

use futures::{StreamExt, stream};
use mesh_core::error::Classify;

use super::{ConnectOptions, Error, FetchOptions, connect, fetch, load_kubeconfig};
use crate::snapshot::{ClusterSnapshot, Source};

/// Why a cluster could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The API server did not answer.
    Unreachable,
    /// The API server rejected the credentials (401).
    Unauthorized,
    /// Nothing of the mesh may be read (403 on deployments, namespaces and webhooks).
    Forbidden,
    /// The context cannot be used (kubeconfig entry, TLS material, exec plugin).
    Invalid,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "unreachable",
            Self::Unauthorized => "credentials rejected",
            Self::Forbidden => "forbidden",
            Self::Invalid => "cannot use context",
        })
    }
}

/// A cluster that could not be read, and why (never a credential: messages name the context
/// and the server only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// The error and its causes, in one line.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

impl Failure {
    fn of(e: &Error) -> Self {
        let kind = match e {
            Error::Unreachable { .. } => FailureKind::Unreachable,
            Error::Unauthorized { .. } => FailureKind::Unauthorized,
            _ => FailureKind::Invalid,
        };
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            cause = c.source();
        }
        Self {
            kind,
            message,
            hints: e.hints(),
        }
    }

    /// Forbidden when the sources that say what Istio runs were all refused.
    fn forbidden(snap: &ClusterSnapshot) -> Option<Self> {
        let core = [
            Source::Deployments,
            Source::Namespaces,
            Source::MutatingWebhooks,
        ];
        let reasons: Vec<&str> = core
            .iter()
            .filter_map(|s| snap.gap(*s))
            .filter(|g| g.reason.starts_with("forbidden"))
            .map(|g| g.reason.as_str())
            .collect();
        (reasons.len() == core.len()).then(|| Self {
            kind: FailureKind::Forbidden,
            message: format!(
                "{} may not list deployments, namespaces or webhook configurations ({})",
                snap.origin, reasons[0]
            ),
            hints: vec![
                "use a context whose user may list them (`kubectl auth can-i list deployments -A`)"
                    .into(),
            ],
        })
    }
}

/// One cluster of a fleet run: its name and what the caller made of it, or why it could not be
/// read.
#[derive(Debug)]
pub struct ClusterRead<T> {
    /// The context (or file) name.
    pub name: String,
    /// The API server URL the context reaches (none for a snapshot file): two contexts of one
    /// cluster (another user, another namespace) name the same one.
    pub server: Option<String>,
    /// The caller's reduction of the snapshot, or the failure.
    pub result: Result<T, Failure>,
}

/// Every context of the kubeconfig (`--all-contexts`), in the kubeconfig's order.
pub fn context_names(opts: &ConnectOptions) -> Result<Vec<String>, Error> {
    let kc = load_kubeconfig(opts)?;
    Ok(kc.contexts.into_iter().map(|c| c.name).collect())
}

/// Checks that every named context exists before anything is read (an unknown name is a usage
/// error naming the known ones, not a failed cluster).
pub fn check_contexts(opts: &ConnectOptions, names: &[String]) -> Result<(), Error> {
    let known = context_names(opts)?;
    match names.iter().find(|n| !known.contains(n)) {
        Some(name) => Err(Error::UnknownEntry {
            kind: "context",
            name: name.clone(),
            known,
        }),
        None => Ok(()),
    }
}

/// How a fleet is read.
#[derive(Debug, Clone)]
pub struct FleetRead {
    /// What each cluster's snapshot holds.
    pub fetch: FetchOptions,
    /// Clusters read at once (at least 1).
    pub parallel: usize,
    /// Also read what a plan from a dump needs ([`super::fetch_whole`]; `--dump-snapshot`).
    pub whole: bool,
}

/// Reads `contexts` (each with `base`'s flags and its own context), at most `how.parallel` at
/// once, and hands each snapshot to `judge` as soon as it is read. Results come back in
/// `contexts`' order.
pub async fn read_contexts<T, F>(
    base: &ConnectOptions,
    contexts: &[String],
    how: &FleetRead,
    judge: F,
) -> Vec<ClusterRead<T>>
where
    T: Send + 'static,
    F: Fn(&str, ClusterSnapshot) -> T + Send + Sync + 'static,
{
    let judge = Arc::new(judge);
    let reads = contexts.iter().map(|name| {
        let options = ConnectOptions {
            context: Some(name.clone()),
            ..base.clone()
        };
        let (how, judge, name) = (how.clone(), Arc::clone(&judge), name.clone());
        tokio::spawn(async move {
            let read = read_one(&options, &how).await;
            let server = read.as_ref().ok().map(|(server, _)| server.clone());
            let result = read.map(|(_, s)| judge(&name, s));
            ClusterRead {
                name,
                server,
                result,
            }
        })
    });
    let joined: Vec<_> = stream::iter(reads)
        .buffered(how.parallel.max(1))
        .collect()
        .await;
    joined
        .into_iter()
        .zip(contexts)
        .map(|(r, name)| {
            r.unwrap_or_else(|e| ClusterRead {
                name: name.clone(),
                server: None,
                result: Err(Failure {
                    kind: FailureKind::Invalid,
                    message: format!("reading the cluster stopped: {e}"),
                    hints: Vec::new(),
                }),
            })
        })
        .collect()
}

/// The API server's URL and the snapshot, or why the cluster could not be read.
async fn read_one(
    options: &ConnectOptions,
    how: &FleetRead,
) -> Result<(String, ClusterSnapshot), Failure> {
    let conn = connect(options).await.map_err(|e| Failure::of(&e))?;
    let mut snap = fetch(&conn, &how.fetch)
        .await
        .map_err(|e| Failure::of(&e))?;
    if let Some(f) = Failure::forbidden(&snap) {
        return Err(f);
    }
    if how.whole {
        super::fetch_whole(&conn, &mut snap)
            .await
            .map_err(|e| Failure::of(&e))?;
    }
    Ok((conn.server, snap))
}
