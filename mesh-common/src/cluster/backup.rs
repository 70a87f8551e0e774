//! Backups: every live object a command changes or deletes is written to a file (mode 0600)
//! before the change, with the cluster's identity, so it can be restored and so a backup is
//! never restored into another cluster. Server-owned fields are dropped; Secrets are never
//! backed up (no command here changes them).

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ops::{ClusterIdentity, ObjRef};

/// Format marker of backup files.
pub const BACKUP_KIND: &str = "kubectl-mesh.dev/backup/v1";

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
    /// Seconds since the epoch.
    pub created: u64,
    /// Live objects as they were, before the change.
    pub objects: Vec<Value>,
    /// Objects the command was about to create (a rollback deletes these).
    #[serde(default)]
    pub created_objects: Vec<ObjRef>,
}

/// The default backup directory: `~/.kube/mesh-backups`.
pub fn default_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".kube").join("mesh-backups")
}

/// Drops server-owned fields so the object can be re-applied.
pub fn clean(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
    }
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
    obj
}

impl Backup {
    /// A backup of `objects` (cleaned) for `cluster`.
    pub fn new(
        cluster: ClusterIdentity,
        command: &str,
        objects: Vec<Value>,
        created_objects: Vec<ObjRef>,
    ) -> Self {
        Self {
            kind: BACKUP_KIND.to_owned(),
            cluster,
            command: command.to_owned(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            objects: objects.into_iter().map(clean).collect(),
            created_objects,
        }
    }

    /// Writes the backup into `dir` (created if needed) with mode 0600; returns its path.
    pub fn write(&self, dir: &Path, label: &str) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create backup directory `{}`", dir.display()))?;
        let path = dir.join(format!("{}-{label}.yaml", self.created));
        let text = serde_saphyr::to_string(self)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&path)
            .with_context(|| format!("cannot create backup file `{}`", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(path)
    }

    /// Reads a backup file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read backup `{}`", path.display()))?;
        let b: Backup = serde_saphyr::from_str(&text)
            .with_context(|| format!("`{}` is not a kubectl-mesh backup", path.display()))?;
        anyhow::ensure!(
            b.kind == BACKUP_KIND,
            "`{}` is not a kubectl-mesh backup (kind {})",
            path.display(),
            b.kind
        );
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_without_server_fields_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("mesh-backup-test-{}", std::process::id()));
        let id = ClusterIdentity {
            server: "https://127.0.0.1:1".into(),
            context: "admin".into(),
            uid: "u".into(),
        };
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istiod", "namespace": "istio-system", "resourceVersion": "7", "managedFields": []},
            "status": {}});
        let b = Backup::new(id.clone(), "kubectl mesh uninstall", vec![obj], vec![]);
        let path = b.write(&dir, "uninstall").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let back = Backup::read(&path).unwrap();
        assert_eq!(back.cluster, id);
        assert!(
            back.objects[0]
                .pointer("/metadata/resourceVersion")
                .is_none()
        );
        assert!(back.objects[0].get("status").is_none());
        assert_eq!(back.objects[0].pointer("/metadata/name").unwrap(), "istiod");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
