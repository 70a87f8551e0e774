//! Backups: every live object a change will touch is written to a file before the change, with
//! the identity of the cluster, so the change can be undone — automatically when it fails, or
//! later with `kubectl mesh upgrade rollback`. A backup is never restored into another cluster.
//!
//! Files are created with mode 0600 in a directory created with mode 0700, named by their UTC
//! date and what they are (`20261205T081502Z-upgrade-1-31-1.yaml`), unique by a counter when
//! two land in one second. Names are for people: reading never depends on them, so files named
//! by earlier versions (`1796398807-118292004-upgrade-12088.yaml`) are read like any other.
//! Server-owned fields are dropped. Secrets are never written: [`Backup::new`] drops them and
//! [`Backup::write`] refuses a backup that holds one, so no credential reaches a backup file.
//!
//! A backup is only as trustworthy as where it lives: whoever can write there can plant the file
//! `upgrade rollback` restores. So a backup directory must be the user's own and writable by
//! no one else (an existing one is checked, a new one is made 0700); a named backup file must be
//! the user's own; and the latest backup is chosen by the files' own metadata (owner, mtime),
//! never by a date written inside a file, among the user's files only.

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

    /// Writes the backup into a new file in `dir` (created 0700 if needed), mode 0600, named
    /// `<UTC date>-<label>.yaml` (`20261205T081502Z-upgrade-1-31-1.yaml`: `ls` sorts them by
    /// date), with `-1`, `-2`… added when that name is taken.
    pub fn write(&self, dir: &Path, label: &str) -> Result<PathBuf, Error> {
        create_dir(dir)?;
        let stem = format!("{}-{}", file_date(self.created), sanitize(label));
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

    /// Reads a backup file; refuses one someone else owns.
    pub fn read(path: &Path) -> Result<Self, Error> {
        if let Ok(meta) = std::fs::metadata(path)
            && let Some(why) = not_ours(&meta)
        {
            return Err(Error::UntrustedBackup {
                what: "backup file",
                path: path.to_owned(),
                why: format!("{why}: anyone but you could have written it"),
                fix: format!(
                    "check its content, then copy it to a file of your own (`cp {} ~/.kube/mesh-backups/`) and name that",
                    path.display()
                ),
            });
        }
        Self::read_unchecked(path)
    }

    fn read_unchecked(path: &Path) -> Result<Self, Error> {
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

    /// The backups in `dir` taken from `cluster`, newest first by the files' modification time
    /// (unreadable files, and files that are not the user's own, skipped). Refuses a directory
    /// that others can write to or that is not the user's.
    pub fn list(dir: &Path, cluster: &ClusterIdentity) -> Result<Vec<(PathBuf, Backup)>, Error> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        private_dir(dir)?;
        let mut out: Vec<(std::time::SystemTime, PathBuf, Backup)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .filter_map(|p| {
                let meta = std::fs::symlink_metadata(&p).ok()?;
                if !meta.is_file() || not_ours(&meta).is_some() {
                    return None;
                }
                let b = Backup::read_unchecked(&p).ok()?;
                Some((meta.modified().ok()?, p, b))
            })
            .filter(|(_, _, b)| b.cluster.same_cluster(cluster))
            .collect();
        // Newest first; among files of one instant (the clock's grain), the later date inside.
        out.sort_by(|a, b| {
            (b.0, b.2.created, b.2.created_nanos, &b.1).cmp(&(
                a.0,
                a.2.created,
                a.2.created_nanos,
                &a.1,
            ))
        });
        Ok(out.into_iter().map(|(_, p, b)| (p, b)).collect())
    }
}

/// Why a file or directory is not the user's own, if it is not.
#[cfg(unix)]
fn not_ours(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    (meta.uid() != me).then(|| format!("belongs to uid {}, not to you (uid {me})", meta.uid()))
}

#[cfg(not(unix))]
fn not_ours(_: &std::fs::Metadata) -> Option<String> {
    None
}

/// Refuses a backup directory that is not the user's or that others can write to.
fn private_dir(dir: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(dir).map_err(|source| Error::Backup {
        what: format!("cannot read backup directory `{}`", dir.display()),
        source,
    })?;
    let untrusted = |why: String, fix: String| Error::UntrustedBackup {
        what: "backup directory",
        path: dir.to_owned(),
        why,
        fix,
    };
    if let Some(why) = not_ours(&meta) {
        return Err(untrusted(
            format!("{why}: its owner could plant the backup a rollback restores"),
            "pass --backup-dir with a directory of your own (the default is ~/.kube/mesh-backups)"
                .into(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(untrusted(
                format!(
                    "can be written by others (mode {mode:o}): anyone who can write there could plant the backup a rollback restores"
                ),
                format!(
                    "run `chmod go-w {}`, or pass --backup-dir with a directory only you can write to",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Largest backup file read (a backup holds a control plane's objects: a few MB at most).
pub const MAX_BACKUP_BYTES: u64 = 64 * 1024 * 1024;

/// A backup's date in file names: basic ISO 8601 in UTC, to the second.
fn file_date(created: u64) -> String {
    i64::try_from(created)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

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

/// Creates the backup directory 0700, or checks an existing one is private.
fn create_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return private_dir(dir);
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
        let listed = Backup::list(tmp.path(), &id()).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].0, p3);
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        let date = file_date(b.created);
        assert_eq!(name(&p1), format!("{date}-upgrade.yaml"));
        assert_eq!(
            name(&p2),
            format!("{date}-upgrade-1.yaml"),
            "taken: a counter"
        );
        assert!(name(&p3) > name(&p2), "names sort by date");
        let other = ClusterIdentity {
            uid: "other".into(),
            ..id()
        };
        assert!(Backup::list(tmp.path(), &other).unwrap().is_empty());
        assert!(matches!(
            b.check_cluster(&p1, &other),
            Err(Error::OtherCluster { .. })
        ));
    }

    #[test]
    fn file_names_carry_the_utc_date_and_label_and_old_names_still_read() {
        assert_eq!(file_date(0), "19700101T000000Z");
        assert_eq!(file_date(1_796_458_502), "20261205T081502Z");
        let tmp = tempfile::tempdir().unwrap();
        let mut b = Backup::new(id(), "c", "upgrade", vec![], vec![]);
        b.created = 1_796_458_502;
        let p = b.write(tmp.path(), "upgrade-1-31-1").unwrap();
        assert_eq!(
            p.file_name().unwrap(),
            "20261205T081502Z-upgrade-1-31-1.yaml"
        );
        // A file named the way earlier versions named backups is read and listed all the same.
        let old = tmp
            .path()
            .join("1796398807-118292004-upgrade-dataplane-12088.yaml");
        b.created = 1_796_398_807;
        std::fs::write(&old, serde_saphyr::to_string(&b).unwrap()).unwrap();
        assert_eq!(Backup::read(&old).unwrap().created, 1_796_398_807);
        let listed: Vec<PathBuf> = Backup::list(tmp.path(), &id())
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert!(listed.contains(&old) && listed.contains(&p), "{listed:?}");
    }

    #[cfg(unix)]
    fn set_mode(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_to_is_refused_for_writing_and_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        set_mode(&shared, 0o777);
        let b = Backup::new(id(), "c", "upgrade", vec![], vec![]);
        let e = b.write(&shared, "upgrade").unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, Error::UntrustedBackup { .. })
                && text.contains("can be written by others (mode 777)")
                && !text.contains('\n'),
            "{text}"
        );
        let hint = mesh_core::error::Classify::hints(&e).join("\n");
        assert!(hint.contains("chmod go-w"), "{hint}");
        assert_eq!(
            mesh_core::error::Classify::class(&e),
            mesh_core::error::Class::Usage
        );
        assert_eq!(
            std::fs::read_dir(&shared).unwrap().count(),
            0,
            "nothing written"
        );
        assert!(matches!(
            Backup::list(&shared, &id()),
            Err(Error::UntrustedBackup { .. })
        ));
        set_mode(&shared, 0o770);
        assert!(b.write(&shared, "upgrade").is_err(), "group-writable too");
        set_mode(&shared, 0o755);
        assert!(
            b.write(&shared, "upgrade").is_ok(),
            "only the owner writes: fine"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_latest_backup_is_the_users_newest_file_not_the_newest_date_inside_one() {
        use std::time::{Duration, SystemTime};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        let b = Backup::new(
            id(),
            "kubectl mesh upgrade -f new.yaml",
            "upgrade",
            vec![],
            vec![],
        );
        let mine = b.write(&dir, "upgrade").unwrap();
        let set_mtime = |p: &Path, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        set_mtime(&mine, hour_ago);
        // Planted by someone else (another uid), newer on disk and claiming a later date.
        let mut forged = b.clone();
        forged.command = "planted".into();
        forged.created += 86_400;
        let planted = forged.write(&dir, "upgrade").unwrap();
        std::os::unix::fs::chown(&planted, Some(4242), Some(4242)).unwrap();
        // One of the user's own, older on disk but with a later date written inside.
        let mut stale = b.clone();
        stale.command = "stale".into();
        stale.created += 86_400;
        let older = stale.write(&dir, "upgrade").unwrap();
        set_mtime(&older, hour_ago - Duration::from_secs(60));
        let listed = Backup::list(&dir, &id()).unwrap();
        let commands: Vec<&str> = listed.iter().map(|(_, b)| b.command.as_str()).collect();
        assert_eq!(
            commands,
            ["kubectl mesh upgrade -f new.yaml", "stale"],
            "newest by mtime first; the planted file is not offered"
        );
        let e = Backup::read(&planted).unwrap_err();
        assert!(
            matches!(e, Error::UntrustedBackup { .. })
                && e.to_string().contains("belongs to uid 4242"),
            "{e}"
        );
        // A directory someone else owns is refused as a whole.
        std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
        assert!(matches!(
            Backup::list(&dir, &id()),
            Err(Error::UntrustedBackup { .. })
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
