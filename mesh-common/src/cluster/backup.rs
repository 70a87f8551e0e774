//! Backups: every live object a change will touch is written to a file before the change, with
//! the identity of the cluster, so the change can be undone — automatically when it fails, or
//! later with `kubectl mesh upgrade rollback`. A backup is never restored into another cluster.
//!
//! Files are created with mode 0600 in a directory created with mode 0700, under names that are
//! unique even within one second (nanoseconds, process id, and a counter on collision).
//! Server-owned fields are dropped. Secrets are never written: [`Backup::new`] drops them and
//! [`Backup::write`] refuses a backup that holds one, so no credential reaches a backup file.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;
use crate::{ObjRef, change::ExpectedProxy};

/// Format marker of backup files.
pub const BACKUP_KIND: &str = "kubectl-mesh.dev/backup/v1";

/// Which cluster a backup belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// API server URL.
    pub server: String,
    /// Context used.
    pub context: String,
    /// UID of the `kube-system` namespace (stable for a cluster's life): the identity.
    pub uid: String,
}

impl ClusterIdentity {
    /// Whether two identities name the same cluster (the URL may differ: proxies, DNS names).
    pub fn same_cluster(&self, other: &Self) -> bool {
        !self.uid.is_empty() && self.uid == other.uid
    }
}

impl std::fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (kube-system uid {})", self.server, self.uid)
    }
}

/// An object the change created, so a rollback deletes it — only it, by UID, once known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedObject {
    /// The object.
    #[serde(flatten)]
    pub object: ObjRef,
    /// Its UID once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// A backup file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// [`BACKUP_KIND`].
    pub kind: String,
    /// The cluster it was taken from.
    pub cluster: ClusterIdentity,
    /// The command line that took it.
    pub command: String,
    /// What the change was (`upgrade`, `tag-set`, `uninstall`, `dataplane`).
    #[serde(default)]
    pub operation: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Nanoseconds within that second (orders backups taken in the same second).
    #[serde(default)]
    pub created_nanos: u32,
    /// Live objects as they were, before the change.
    pub objects: Vec<Value>,
    /// Objects the change was about to create (a rollback deletes these).
    #[serde(default)]
    pub created_objects: Vec<CreatedObject>,
    /// Whether the change finished (`false` while running, or when it failed).
    #[serde(default)]
    pub complete: bool,
    /// Workloads the change restarted, with the proxy their pods get again when it is rolled
    /// back (a rollback waits for it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undo_proxies: Vec<(ObjRef, ExpectedProxy)>,
}

/// The default backup directory: `~/.kube/mesh-backups`.
pub fn default_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".kube").join("mesh-backups")
}

/// Drops server-owned fields so the object can be re-created or put back.
pub fn clean(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(key);
        }
    }
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
    obj
}

fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

impl Backup {
    /// A backup of `objects` (cleaned; Secrets dropped) for `cluster`.
    pub fn new(
        cluster: ClusterIdentity,
        command: &str,
        operation: &str,
        objects: Vec<Value>,
        created_objects: Vec<ObjRef>,
    ) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            kind: BACKUP_KIND.to_owned(),
            cluster,
            command: command.to_owned(),
            operation: operation.to_owned(),
            created: now.as_secs(),
            created_nanos: now.subsec_nanos(),
            objects: objects
                .into_iter()
                .filter(|o| !is_secret(o))
                .map(clean)
                .collect(),
            created_objects: created_objects
                .into_iter()
                .filter(|r| !(r.kind == "Secret" && r.api_version == "v1"))
                .map(|object| CreatedObject { object, uid: None })
                .collect(),
            complete: false,
            undo_proxies: Vec::new(),
        }
    }

    /// Writes the backup into a new file in `dir` (created 0700 if needed), mode 0600.
    pub fn write(&self, dir: &Path, label: &str) -> Result<PathBuf, Error> {
        create_dir(dir)?;
        let stem = format!(
            "{}-{:09}-{}-{}",
            self.created,
            self.created_nanos,
            sanitize(label),
            std::process::id()
        );
        for n in 0..1000 {
            let name = if n == 0 {
                format!("{stem}.yaml")
            } else {
                format!("{stem}-{n}.yaml")
            };
            let path = dir.join(name);
            match self.write_new(&path) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(Error::Backup {
                        what: format!("cannot write backup file `{}`", path.display()),
                        source,
                    });
                }
            }
        }
        Err(Error::Backup {
            what: format!("cannot find a free backup file name in `{}`", dir.display()),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        })
    }

    /// Rewrites an existing backup file in place (through a temporary file and a rename, so a
    /// crash never leaves half a backup), keeping mode 0600.
    pub fn rewrite(&self, path: &Path) -> Result<(), Error> {
        let tmp = path.with_extension("yaml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let io = |source| Error::Backup {
            what: format!("cannot update backup file `{}`", path.display()),
            source,
        };
        self.write_new(&tmp).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        if self.objects.iter().any(is_secret) {
            return Err(std::io::Error::other(
                "refusing to write a Secret into a backup",
            ));
        }
        let text = serde_saphyr::to_string(self).map_err(std::io::Error::other)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    }

    /// Reads a backup file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let not = |why: String| Error::NotABackup {
            path: path.to_owned(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| Error::Backup {
            what: format!("cannot read backup `{}`", path.display()),
            source: e,
        })?;
        if meta.is_dir() {
            return Err(not("it is a directory".into()));
        }
        if meta.len() > MAX_BACKUP_BYTES {
            return Err(not(format!("it is larger than {MAX_BACKUP_BYTES} bytes")));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::Backup {
            what: format!("cannot read backup `{}`", path.display()),
            source: e,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| not("it is not text".into()))?;
        let b: Backup =
            serde_saphyr::from_str(&text).map_err(|e| not(crate::snapshot::first_line(&e)))?;
        if b.kind != BACKUP_KIND {
            return Err(not(format!("its kind is `{}`", b.kind)));
        }
        Ok(b)
    }

    /// Refuses to restore into another cluster.
    pub fn check_cluster(&self, path: &Path, live: &ClusterIdentity) -> Result<(), Error> {
        if self.cluster.same_cluster(live) {
            Ok(())
        } else {
            Err(Error::OtherCluster {
                path: path.to_owned(),
                theirs: self.cluster.to_string(),
                ours: live.to_string(),
            })
        }
    }

    /// The backups in `dir` taken from `cluster`, newest first (unreadable files skipped).
    pub fn list(dir: &Path, cluster: &ClusterIdentity) -> Vec<(PathBuf, Backup)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, Backup)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .filter_map(|p| Backup::read(&p).ok().map(|b| (p, b)))
            .filter(|(_, b)| b.cluster.same_cluster(cluster))
            .collect();
        out.sort_by(|a, b| {
            (b.1.created, b.1.created_nanos, &b.0).cmp(&(a.1.created, a.1.created_nanos, &a.0))
        });
        out
    }
}

/// Largest backup file read (a backup holds a control plane's objects: a few MB at most).
pub const MAX_BACKUP_BYTES: u64 = 64 * 1024 * 1024;

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|source| Error::Backup {
        what: format!("cannot create backup directory `{}`", dir.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ClusterIdentity {
        ClusterIdentity {
            server: "https://127.0.0.1:1".into(),
            context: "admin".into(),
            uid: "u".into(),
        }
    }

    #[test]
    fn writes_0600_in_a_0700_dir_without_server_fields_or_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istiod", "namespace": "istio-system", "resourceVersion": "7", "managedFields": []},
            "status": {}});
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "token", "namespace": "istio-system"}, "data": {"token": "c2VjcmV0"}});
        let b = Backup::new(
            id(),
            "kubectl mesh uninstall",
            "uninstall",
            vec![obj, secret],
            vec![],
        );
        assert_eq!(b.objects.len(), 1, "the Secret is dropped");
        let path = b.write(&dir, "uninstall default").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("c2VjcmV0") && !text.contains("kind: Secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        let back = Backup::read(&path).unwrap();
        assert_eq!(back.cluster, id());
        assert_eq!(back.operation, "uninstall");
        assert!(
            back.objects[0]
                .pointer("/metadata/resourceVersion")
                .is_none()
        );
        assert!(back.objects[0].get("status").is_none());
        // A Secret slipped in later is refused, not written.
        let mut sneaky = back.clone();
        sneaky.objects.push(
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
        );
        assert!(sneaky.write(&dir, "x").is_err());
    }

    #[test]
    fn names_are_unique_within_a_second_and_newest_comes_first() {
        let tmp = tempfile::tempdir().unwrap();
        let b = Backup::new(id(), "c", "upgrade", vec![], vec![]);
        let p1 = b.write(tmp.path(), "upgrade").unwrap();
        let p2 = b.write(tmp.path(), "upgrade").unwrap();
        assert_ne!(p1, p2);
        let mut later = Backup::new(id(), "c", "upgrade", vec![], vec![]);
        later.created_nanos = later.created_nanos.saturating_add(1);
        later.created += 1;
        let p3 = later.write(tmp.path(), "upgrade").unwrap();
        let listed = Backup::list(tmp.path(), &id());
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].0, p3);
        let other = ClusterIdentity {
            uid: "other".into(),
            ..id()
        };
        assert!(Backup::list(tmp.path(), &other).is_empty());
        assert!(matches!(
            b.check_cluster(&p1, &other),
            Err(Error::OtherCluster { .. })
        ));
    }

    #[test]
    fn reading_refuses_what_is_not_a_backup() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            Backup::read(tmp.path()),
            Err(Error::NotABackup { .. })
        ));
        let f = tmp.path().join("x.yaml");
        std::fs::write(&f, [0xff, 0xfe, 0]).unwrap();
        assert!(matches!(Backup::read(&f), Err(Error::NotABackup { .. })));
        std::fs::write(&f, "kind: something/else\ncluster: {server: a, context: b, uid: c}\ncommand: x\ncreated: 1\nobjects: []\n").unwrap();
        let e = Backup::read(&f).unwrap_err();
        assert!(
            e.to_string().contains("its kind is `something/else`"),
            "{e}"
        );
    }
}
