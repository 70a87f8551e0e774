//! The shell's own error type: everything that can go wrong connecting to, reading or changing
//! a cluster, classified once (usage / blocked / could not complete) with hints.
//!
//! API errors keep only the server's message (kube-rs prints its whole `Status` and then the
//! cause again); credentials never appear: messages name the context and the server URL only.

use std::path::PathBuf;

use mesh_core::error::{Class, Classify};

use crate::ObjRef;

/// A field another manager owns, found by a server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The field path (`.spec.template.spec.containers[name="discovery"].image`).
    pub field: String,
    /// The manager that owns it.
    pub manager: String,
}

/// What went wrong reaching or changing the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--kubeconfig` names a missing file.
    #[error("kubeconfig `{}` does not exist", .0.display())]
    KubeconfigMissing(PathBuf),
    /// No kubeconfig anywhere.
    #[error("no kubeconfig found")]
    NoKubeconfig,
    /// A kubeconfig file could not be read or merged.
    #[error("cannot read kubeconfig `{}`", path.display())]
    KubeconfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig files could not be merged.
    #[error("cannot merge the kubeconfig files")]
    KubeconfigMerge(#[source] kube::config::KubeconfigError),
    /// `--context`, `--cluster` or `--user` names an entry that does not exist.
    #[error("{kind} `{name}` is not in the kubeconfig")]
    UnknownEntry {
        /// context, cluster or user.
        kind: &'static str,
        /// The name given.
        name: String,
        /// Names that exist.
        known: Vec<String>,
    },
    /// No current context and none given.
    #[error("the kubeconfig has no current context")]
    NoContext,
    /// The context cannot be turned into a client configuration.
    #[error("cannot use context `{context}`")]
    Context {
        /// The context.
        context: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client cannot be built (bad TLS material, proxy, ...).
    #[error("cannot build a client for context `{context}`")]
    Client {
        /// The context.
        context: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The API server does not answer.
    #[error("cannot reach the API server at {server}: {reason}")]
    Unreachable {
        /// Server URL.
        server: String,
        /// What to check.
        context: String,
        /// The transport error, in words.
        reason: String,
    },
    /// The API server rejects the credentials.
    #[error("the API server at {server} rejected the credentials (401 Unauthorized)")]
    Unauthorized {
        /// Server URL.
        server: String,
        /// Context used.
        context: String,
    },
    /// The API server refused an operation (validation, admission, forbidden, not found).
    #[error("the API server refused to {verb} {object} ({code}): {message}")]
    Refused {
        /// `apply`, `delete`, `read`, ...
        verb: &'static str,
        /// The object.
        object: Box<ObjRef>,
        /// HTTP status.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The API server does not serve a kind.
    #[error("the API server does not serve {api_version} {kind}")]
    NotServed {
        /// apiVersion.
        api_version: String,
        /// Kind.
        kind: String,
    },
    /// A server-side apply would take fields another manager owns.
    #[error("{object}: {} field(s) are owned by another field manager: {}", conflicts.len(), describe_conflicts(conflicts))]
    Conflict {
        /// The object.
        object: Box<ObjRef>,
        /// The fields and their managers.
        conflicts: Vec<FieldConflict>,
    },
    /// Several problems found by the server-side dry run.
    #[error("the API server rejected {} of {total} change(s) in a dry run: {}", problems.len(), first_problems(problems))]
    DryRun {
        /// Each problem.
        problems: Vec<Error>,
        /// Operations checked.
        total: usize,
    },
    /// The plan touches a Secret, which kubectl-mesh never backs up and so never changes.
    #[error(
        "the plan changes {0}, but kubectl-mesh never changes Secrets (they are never backed up)"
    )]
    Secret(Box<ObjRef>),
    /// A wait did not finish in time.
    #[error("timed out after {after} waiting for {what}")]
    Timeout {
        /// What was waited for, with what is missing.
        what: String,
        /// The timeout, in words.
        after: String,
    },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
    /// Nobody confirmed.
    #[error("refusing to change the cluster without confirmation")]
    NoTerminal,
    /// The user answered no.
    #[error("cancelled: nothing was changed")]
    Declined,
    /// Reading or writing a backup.
    #[error("{what}")]
    Backup {
        /// What failed.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A backup file is not one of ours.
    #[error("`{}` is not a kubectl-mesh backup: {why}", path.display())]
    NotABackup {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A backup directory others can write to, or a backup file someone else owns: whoever can
    /// write there could plant the backup a rollback restores.
    #[error("{what} `{}` {why}", path.display())]
    UntrustedBackup {
        /// `backup directory` or `backup file`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// The command that fixes it.
        fix: String,
    },
    /// A backup taken from another cluster.
    #[error("backup `{}` was taken from another cluster ({theirs}), not this one ({ours})", path.display())]
    OtherCluster {
        /// The file.
        path: PathBuf,
        /// Its cluster.
        theirs: String,
        /// This cluster.
        ours: String,
    },
    /// A change failed; what the rollback did is in the message.
    #[error("{state}")]
    Failed {
        /// The cluster's state, in words.
        state: String,
        /// What went wrong first.
        #[source]
        cause: Box<Error>,
        /// Where the backup is.
        backup: Option<PathBuf>,
        /// Further hints (how to finish, how to restore).
        hints: Vec<String>,
    },
    /// A snapshot file that cannot be used.
    #[error(transparent)]
    Snapshot(#[from] Box<super::SnapshotError>),
    /// The answer of the API server could not be understood.
    #[error("unexpected answer from the API server: {0}")]
    Unexpected(String),
}

/// The first three problems, and how many more.
fn first_problems(problems: &[Error]) -> String {
    let mut text = problems
        .iter()
        .take(3)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > 3 {
        text.push_str(&format!("; and {} more", problems.len() - 3));
    }
    text
}

/// One hint for every refused permission: `kubectl auth can-i` per verb and kind.
fn permission_hint(problems: &[Error]) -> Option<String> {
    let mut asks: Vec<String> = problems
        .iter()
        .filter_map(|p| match p {
            Error::Refused {
                code: 403,
                verb,
                object,
                ..
            } => Some(format!("{verb} {}", object.kind.to_lowercase())),
            _ => None,
        })
        .collect();
    asks.sort();
    asks.dedup();
    (!asks.is_empty()).then(|| {
        format!(
            "missing permissions: {} (check with `kubectl auth can-i <verb> <resource>`)",
            asks.join(", ")
        )
    })
}

fn describe_conflicts(c: &[FieldConflict]) -> String {
    c.iter()
        .map(|f| format!("{} (owned by `{}`)", f.field, f.manager))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Self::KubeconfigMissing(_)
            | Self::NoKubeconfig
            | Self::KubeconfigRead { .. }
            | Self::KubeconfigMerge(_)
            | Self::UnknownEntry { .. }
            | Self::NoContext
            | Self::Context { .. }
            | Self::Client { .. }
            | Self::NotABackup { .. }
            | Self::UntrustedBackup { .. }
            | Self::Snapshot(_)
            | Self::OtherCluster { .. } => Class::Usage,
            Self::Conflict { .. } | Self::NoTerminal | Self::Declined | Self::Secret(_) => {
                Class::Blocked
            }
            Self::DryRun { problems, .. }
                if problems.iter().all(|p| p.class() == Class::Blocked) =>
            {
                Class::Blocked
            }
            _ => Class::Failed,
        }
    }

    fn hints(&self) -> Vec<String> {
        match self {
            Self::KubeconfigMissing(_) => vec!["pass an existing file to --kubeconfig".into()],
            Self::NoKubeconfig => vec!["set KUBECONFIG or pass --kubeconfig; for a local test cluster run `cargo run -p mesh-testbed -- up --istio`".into()],
            Self::UnknownEntry { kind, known, .. } => vec![format!(
                "known {kind}s: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )],
            Self::NoContext => {
                vec!["pass --context NAME or run `kubectl config use-context NAME`".into()]
            }
            Self::Unreachable { context, .. } => vec![format!(
                "check the cluster is up and {context} is right (`kubectl cluster-info`)"
            )],
            Self::Unauthorized { context, .. } => {
                vec![format!("refresh the credentials of {context}")]
            }
            Self::Refused { code: 403, verb, object, .. } => vec![format!(
                "ask for permission to {verb} {} (`kubectl auth can-i {verb} {}`)",
                object.kind,
                object.kind.to_lowercase()
            )],
            Self::Conflict { .. } => vec![
                "nothing was changed; pass --force-conflicts to take these fields over, or change them back first".into(),
            ],
            Self::DryRun { problems, .. } => {
                let mut h: Vec<String> = permission_hint(problems).into_iter().collect();
                for p in problems.iter().filter(|p| !matches!(p, Error::Refused { code: 403, .. })) {
                    for hint in p.hints() {
                        if !h.contains(&hint) {
                            h.push(hint);
                        }
                    }
                }
                h.push("nothing was changed".into());
                h
            }
            Self::Secret(_) => vec!["apply Secrets yourself, separately from kubectl-mesh".into()],
            Self::NoTerminal => vec![
                "stdin is not a terminal: pass --yes to proceed, or --dry-run to only show the plan".into(),
            ],
            Self::NotABackup { .. } => vec!["pass a file written by a kubectl-mesh command (see `~/.kube/mesh-backups`)".into()],
            Self::UntrustedBackup { fix, .. } => vec![fix.clone()],
            Self::OtherCluster { .. } => vec!["use the backup with the cluster it was taken from (check --context)".into()],
            Self::Snapshot(e) => e.hints(),
            Self::Failed { backup, hints, .. } => {
                let mut h = hints.clone();
                if let Some(b) = backup {
                    h.push(format!("the objects as they were are in {}", b.display()));
                }
                h
            }
            _ => Vec::new(),
        }
    }
}

impl Error {
    /// Classifies an error of a call about `object`.
    pub fn api(verb: &'static str, object: &ObjRef, server: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 401 => Self::Unauthorized {
                server: server.to_owned(),
                context: String::new(),
            },
            kube::Error::Api(s) => Self::Refused {
                verb,
                object: Box::new(object.clone()),
                code: s.code,
                message: s.message.clone(),
            },
            other => Self::Unreachable {
                server: server.to_owned(),
                context: String::new(),
                reason: transport_reason(&other),
            },
        }
    }

    /// Whether this is the API server's "not found".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { code: 404, .. })
    }
}

/// A transport error in a few words: its deepest cause (`timed out`, `Connection refused (os
/// error 111)`), without kube's and hyper's wrapper names, URLs or debug dumps.
pub fn transport_reason(e: &kube::Error) -> String {
    let mut deepest: &dyn std::error::Error = e;
    while let Some(s) = deepest.source() {
        deepest = s;
    }
    let text = deepest.to_string();
    let text = text
        .rsplit(": ")
        .next()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(&text);
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_hints() {
        let obj = ObjRef::new("apps/v1", "Deployment", Some("istio-system"), "istiod");
        let c = Error::Conflict {
            object: Box::new(obj.clone()),
            conflicts: vec![FieldConflict {
                field: ".spec.replicas".into(),
                manager: "ops".into(),
            }],
        };
        assert_eq!(c.class(), Class::Blocked);
        assert_eq!(
            c.to_string(),
            "Deployment/istio-system/istiod: 1 field(s) are owned by another field manager: .spec.replicas (owned by `ops`)"
        );
        let forbidden = Error::Refused {
            verb: "delete",
            object: Box::new(obj),
            code: 403,
            message: "forbidden".into(),
        };
        assert_eq!(forbidden.class(), Class::Failed);
        assert!(forbidden.hints()[0].contains("kubectl auth can-i delete deployment"));
        let dry = Error::DryRun {
            problems: vec![c],
            total: 3,
        };
        assert_eq!(dry.class(), Class::Blocked);
        assert_eq!(dry.hints().last().unwrap(), "nothing was changed");
        assert_eq!(Error::NoKubeconfig.class(), Class::Usage);
    }
}
