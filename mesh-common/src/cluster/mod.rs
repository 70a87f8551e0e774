//! The only code that holds a `kube::Client`: connecting ([`connect`]), reading a snapshot
//! ([`fetch`]), reading and changing objects ([`objects`]), waiting ([`wait`]), the change
//! engine every command uses ([`engine`]) and what it reports ([`events`]), backups ([`backup`]) and reading many clusters at once
//! ([`fleet`]). It takes plain options, not CLI structs, and returns its own [`Error`].

pub mod backup;
mod connect;
pub mod engine;
mod error;
pub mod events;
mod fetch;
pub mod fleet;
pub mod objects;
pub mod proto;
pub mod retry;
pub mod signals;
pub mod wait;

pub use connect::{ConnectOptions, Connection, connect, load_kubeconfig};
pub use engine::{Checked, Engine, EngineOptions, Execution, OpStatus, Stopped};
pub use error::{Error, FieldConflict};
pub use events::{Confirmation, Event, Sink};
pub use fetch::{
    FetchOptions, LabelledKind, PAGE, fetch, fetch_whole, list_all, list_labelled, list_namespaces,
    list_pods, list_resources, namespace_kept, webhook_configurations,
};

use crate::{
    ObjRef,
    snapshot::{ClusterSnapshot, Source},
    version::KubeVersion,
};

impl Connection {
    /// Classifies the error of a call about `object` (credentials and reachability name this
    /// connection; API refusals keep only the server's message).
    pub fn error(&self, verb: &'static str, object: &ObjRef, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) if s.code == 401 => Error::Unauthorized {
                server: self.server.clone(),
                context: self.describe(),
            },
            kube::Error::Api(s) => Error::Refused {
                verb,
                object: Box::new(object.clone()),
                code: s.code,
                message: s.message.clone(),
            },
            kube::Error::Auth(a) => Error::Unauthorized {
                server: format!("{} ({a})", self.server),
                context: self.describe(),
            },
            other => Error::Unreachable {
                server: self.server.clone(),
                context: self.describe(),
                reason: error::transport_reason(&other),
            },
        }
    }
}

/// Where the cluster state comes from: a live cluster, or a snapshot file.
#[derive(Debug, Clone)]
pub enum StateSource {
    /// Connect and fetch.
    Cluster(ConnectOptions),
    /// Read a snapshot file (`-` for stdin) already read into text by the caller.
    File {
        /// Path as given (for messages).
        path: std::path::PathBuf,
        /// The file's text.
        text: String,
        /// `--kube-version`.
        kube_version: Option<String>,
    },
}

/// Why a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot.
    #[error("cannot use snapshot `{}`", path.display())]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<crate::snapshot::SnapshotFileError>,
    },
    /// `--kube-version` is not a version.
    #[error("`{given}` is not a Kubernetes version")]
    KubeVersion {
        /// What was given.
        given: String,
    },
}

impl mesh_core::error::Classify for SnapshotError {
    fn class(&self) -> mesh_core::error::Class {
        mesh_core::error::Class::Usage
    }
    fn hints(&self) -> Vec<String> {
        match self {
            Self::Invalid { .. } => vec![
                "pass a file written by `kubectl get ... -A -o yaml` or `--dump-snapshot`".into(),
            ],
            Self::KubeVersion { .. } => vec!["use a version like v1.34.4".into()],
        }
    }
}

/// Parses a snapshot file's text: the one snapshot reader of every command.
pub fn snapshot_from_text(
    path: &std::path::Path,
    text: &str,
    kube_version: Option<&str>,
    istio_ns: &str,
) -> Result<ClusterSnapshot, SnapshotError> {
    let mut s =
        ClusterSnapshot::from_yaml(text, istio_ns).map_err(|source| SnapshotError::Invalid {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    s.origin = format!("snapshot {}", path.display());
    if let Some(v) = kube_version {
        let v = KubeVersion::parse(v).map_err(|_| SnapshotError::KubeVersion {
            given: v.to_owned(),
        })?;
        s.kube_version = Some(v);
        s.gaps.retain(|g| g.source != Source::Version);
    }
    Ok(s)
}

/// Reads the cluster state: the snapshot file's, or the live cluster's (with the connection).
pub async fn load(
    source: &StateSource,
    opts: &FetchOptions,
) -> Result<(ClusterSnapshot, Option<Connection>), Error> {
    match source {
        StateSource::File {
            path,
            text,
            kube_version,
        } => Ok((
            snapshot_from_text(path, text, kube_version.as_deref(), &opts.istio_namespace)
                .map_err(Box::new)?,
            None,
        )),
        StateSource::Cluster(options) => {
            let conn = connect(options).await?;
            let snap = fetch(&conn, opts).await?;
            Ok((snap, Some(conn)))
        }
    }
}
