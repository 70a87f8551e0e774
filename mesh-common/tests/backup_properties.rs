//! The backup reader on generated files (fuzzing by property): it never panics, refuses what is
//! not a kubectl-mesh backup with a reason, and reads back every backup it wrote.

use mesh_common::cluster::backup::{Backup, ClusterIdentity};
use proptest::prelude::*;

fn backupish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("kind: kubectl-mesh.dev/backup/v1\n".to_owned()),
        Just("kind: something/else\n".to_owned()),
        Just("cluster: {server: https://x, context: c, uid: u}\n".to_owned()),
        Just("command: kubectl mesh upgrade\noperation: upgrade\ncreated: 1\n".to_owned()),
        Just("objects:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n".to_owned()),
        Just("objects: 7\n".to_owned()),
        Just("createdObjects:\n- {apiVersion: v1, kind: Service, name: s, uid: u1}\n".to_owned()),
        Just("complete: true\n".to_owned()),
        "[ -~]{0,40}\n",
        "\\PC{0,20}",
    ];
    prop::collection::vec(fragment, 0..10).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_backup_reader_never_panics(text in backupish(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b.yaml");
        std::fs::write(&f, &text).unwrap();
        if let Err(e) = Backup::read(&f) {
            prop_assert!(!e.to_string().is_empty());
        }
        std::fs::write(&f, &bytes).unwrap();
        let _ = Backup::read(&f);
    }

    #[test]
    fn what_is_written_reads_back(names in prop::collection::vec("[a-z][a-z0-9-]{0,10}", 0..5), label in "[ -~]{0,20}") {
        let dir = tempfile::tempdir().unwrap();
        let id = ClusterIdentity { server: "https://127.0.0.1:1".into(), context: "c".into(), uid: "u".into() };
        let objects = names
            .iter()
            .map(|n| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": "x"}, "data": {"k": label}}))
            .collect();
        let b = Backup::new(id.clone(), "kubectl mesh test", "test", objects, Vec::new());
        let path = b.write(dir.path(), &label).unwrap();
        let back = Backup::read(&path).unwrap();
        prop_assert_eq!(back.objects, b.objects);
        prop_assert_eq!(back.cluster, id);
    }
}
