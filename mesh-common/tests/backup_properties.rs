//! The backup reader on generated files (fuzzing by property): valid-shaped backups built from
//! random parts (any printable Unicode in names, labels and commands; objects of several kinds;
//! optional fields present or not; YAML or JSON) are read back exactly — the accepting path —
//! files of another kind or with a field of the wrong type are refused with a reason, garbage
//! never makes it panic, and every backup it writes reads back.

use mesh_common::cluster::backup::{BACKUP_KIND, Backup, ClusterIdentity};
use proptest::prelude::*;
use serde_json::{Value, json};

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

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,12}",
        "\\PC{0,16}",
        Just("null".to_owned()),
        Just("07".to_owned())
    ]
}

/// One saved object of a kind a change backs up, with random names, labels and data.
fn object() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(vec![
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
        ),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("networking.istio.io/v1", "VirtualService"),
    ]);
    (kind, "[a-z][a-z0-9-]{0,12}", prop::option::of("[a-z][a-z0-9-]{0,8}"), prop::collection::btree_map("[a-z./]{1,12}", text(), 0..3), text())
        .prop_map(|((api, kind), name, ns, labels, data)| {
            let mut meta = json!({"name": name, "labels": labels});
            if let Some(ns) = ns {
                meta["namespace"] = json!(ns);
            }
            json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": {"data": data, "n": [1, 2.5, null, true]}})
        })
}

/// A backup file's content: every required field; optional ones present or not.
fn backup_doc() -> impl Strategy<Value = Value> {
    let created = prop::collection::vec(
        (object(), prop::option::of("[a-f0-9-]{8,36}")).prop_map(|(o, uid)| {
            let mut c = json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"]});
            if let Some(ns) = o["metadata"].get("namespace") {
                c["namespace"] = ns.clone();
            }
            if let Some(u) = uid {
                c["uid"] = json!(u);
            }
            c
        }),
        0..3,
    );
    (
        (text(), text(), text()),
        text(),
        prop::option::of(text()),
        any::<u64>(),
        prop::option::of(0u32..1_000_000_000),
        prop::collection::vec(object(), 0..5),
        prop::option::of(created),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                (server, context, uid),
                command,
                operation,
                secs,
                nanos,
                objects,
                created,
                complete,
            )| {
                let mut b = json!({
                    "kind": BACKUP_KIND,
                    "cluster": {"server": server, "context": context, "uid": uid},
                    "command": command,
                    "created": secs,
                    "objects": objects,
                });
                if let Some(o) = operation {
                    b["operation"] = json!(o);
                }
                if let Some(n) = nanos {
                    b["createdNanos"] = json!(n);
                }
                if let Some(c) = created {
                    b["createdObjects"] = json!(c);
                }
                if let Some(c) = complete {
                    b["complete"] = json!(c);
                }
                b
            },
        )
}

/// Writes `text` to a fresh file and reads it as a backup.
fn read(text: &str) -> Result<Backup, mesh_common::cluster::Error> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("b.yaml");
    std::fs::write(&f, text).unwrap();
    Backup::read(&f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_backup_reader_never_panics(text in backupish(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Err(e) = read(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b.yaml");
        std::fs::write(&f, &bytes).unwrap();
        let _ = Backup::read(&f);
    }

    /// A backup of the right shape is read, whatever its content, as exactly what it holds.
    #[test]
    fn a_valid_backup_reads_back_exactly(doc in backup_doc(), as_json in any::<bool>()) {
        let text = if as_json { doc.to_string() } else { serde_saphyr::to_string(&doc).unwrap() };
        let b = read(&text);
        prop_assert!(b.is_ok(), "{:?}\n{}", b.err(), text);
        let b = b.unwrap();
        prop_assert_eq!(&b.cluster.server, &doc["cluster"]["server"]);
        prop_assert_eq!(&b.cluster.uid, &doc["cluster"]["uid"]);
        prop_assert_eq!(&b.command, &doc["command"]);
        prop_assert_eq!(b.created, doc["created"].as_u64().unwrap());
        prop_assert_eq!(&b.objects, doc["objects"].as_array().unwrap());
        prop_assert_eq!(b.created_objects.len(), doc["createdObjects"].as_array().map_or(0, Vec::len));
        prop_assert_eq!(b.complete, doc["complete"].as_bool().unwrap_or(false));
        // And what was read is written and read again unchanged.
        let dir = tempfile::tempdir().unwrap();
        let again = Backup::read(&b.write(dir.path(), "again").unwrap()).unwrap();
        prop_assert_eq!(again.objects, b.objects);
        prop_assert_eq!(again.created_objects, b.created_objects);
    }

    /// Another kind, or a required field missing or of the wrong type, is refused with a reason.
    #[test]
    fn a_broken_backup_is_refused_with_a_reason(doc in backup_doc(), which in 0usize..4, kind in "[a-z./0-9]{1,20}") {
        let mut doc = doc;
        match which {
            0 => doc["kind"] = json!(kind),
            1 => doc["objects"] = json!(kind),
            2 => { doc.as_object_mut().unwrap().remove("cluster"); }
            _ => doc["created"] = json!(format!("x{kind}")),
        }
        prop_assume!(which != 0 || kind != BACKUP_KIND);
        let e = read(&serde_saphyr::to_string(&doc).unwrap());
        prop_assert!(e.is_err(), "{doc}");
        let e = e.unwrap_err().to_string();
        prop_assert!(e.contains("is not a kubectl-mesh backup: "), "{e}");
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
