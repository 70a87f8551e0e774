//! Reading the cluster once: the snapshot (with the access reviews asked), its inventory, the
//! connection for a live cluster — and for an upgrade, the live version of each manifest object
//! and the objects an installer labelled (what a prune may take).

use std::collections::BTreeMap;

use mesh_common::{
    ObjRef,
    checks::AccessRequest,
    cluster::{self, Connection, FetchOptions, StateSource, objects::Objects},
    exit::MeshError,
    inventory::Inventory,
    output::Printer,
    plan::{
        uninstall::{INSTALLED_SELECTOR, LISTED},
        upgrade::Unseen,
    },
    snapshot::{ClusterSnapshot, Presence, TypedMeta},
};
use serde_json::Value;

use crate::args::Args;

/// The cluster as read once.
pub struct Loaded {
    /// Snapshot.
    pub snap: ClusterSnapshot,
    /// Its Istio view.
    pub inv: Inventory,
    /// The connection, unless read from `--snapshot`.
    pub conn: Option<Connection>,
}

/// Reads the cluster (or `--snapshot FILE`), asking `access` reviews.
pub async fn load(
    args: &Args,
    access: Vec<AccessRequest>,
    printer: &mut Printer,
) -> Result<Loaded, MeshError> {
    let source = args.snapshot.source(&args.kube)?;
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access,
        skip: Vec::new(),
        read_remote_secrets: false,
    };
    printer.progress("reading cluster state...")?;
    let (snap, conn) = cluster::load(&source, &opts).await?;
    let inv = Inventory::from_snapshot(&snap);
    Ok(Loaded { snap, inv, conn })
}

/// Reads the cluster like [`load`] and, at the same time, the live version of each of
/// `objects` (manifest objects; `None`: it does not exist) and the objects an installer
/// labelled: the GETs and labelled LISTs run while the snapshot's LISTs do. From
/// `--snapshot`, both come from the file, with what it cannot show of each object.
pub async fn load_with_live(
    args: &Args,
    access: Vec<AccessRequest>,
    objects: &[Value],
    printer: &mut Printer,
) -> Result<(Loaded, Live), MeshError> {
    let source = args.snapshot.source(&args.kube)?;
    let StateSource::Cluster(options) = &source else {
        let loaded = load(args, access, printer).await?;
        let live = live_from_snapshot(&loaded.snap, objects);
        return Ok((loaded, live));
    };
    let refs: Vec<ObjRef> = objects.iter().filter_map(ObjRef::of).collect();
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access,
        skip: Vec::new(),
        read_remote_secrets: false,
    };
    printer.progress("reading cluster state...")?;
    let conn = cluster::connect(options).await?;
    let (snap, live) = tokio::join!(
        cluster::fetch(&conn, &opts),
        live_from_cluster(&conn, &refs)
    );
    let (snap, mut live) = (snap?, live?);
    live.installed.extend(
        snap.metas()
            .into_iter()
            .filter(|t| !LISTED.iter().any(|(_, k, _)| *k == t.kind)),
    );
    let inv = Inventory::from_snapshot(&snap);
    let loaded = Loaded {
        snap,
        inv,
        conn: Some(conn),
    };
    Ok((loaded, live))
}

/// The live state as a snapshot file records it: each object whole, by its metadata only, known
/// absent, or unknown (a kind or scope the file does not hold).
fn live_from_snapshot(snap: &ClusterSnapshot, objects: &[Value]) -> Live {
    let mut live = Live {
        before: BTreeMap::new(),
        installed: snap.metas(),
        unseen: BTreeMap::new(),
    };
    for o in objects {
        let Some(r) = ObjRef::of(o) else { continue };
        let (before, unseen) = match snap.presence(o) {
            Presence::Whole(v) => (Some(v), None),
            Presence::Metadata(v) => (Some(v), Some(Unseen::MetadataOnly)),
            Presence::Absent => (None, None),
            Presence::Unknown(why) => (None, Some(Unseen::NotInSnapshot(why))),
        };
        live.before.insert(r.clone(), before);
        if let Some(u) = unseen {
            live.unseen.insert(r, u);
        }
    }
    live
}

/// The live version of each object and the objects an installer labelled (of the kinds in
/// [`LISTED`]; the caller adds the snapshot's own).
async fn live_from_cluster(conn: &Connection, refs: &[ObjRef]) -> Result<Live, MeshError> {
    let objects = Objects::new(conn.clone());
    // A kind the server does not serve yet (its CRD comes with this manifest): absent.
    let got = objects.get_all(refs, true).await;
    let mut before = BTreeMap::new();
    for (r, g) in refs.iter().zip(got) {
        before.insert(r.clone(), g?);
    }
    let installed = cluster::list_labelled(conn, &LISTED, &[INSTALLED_SELECTOR]).await?;
    Ok(Live {
        before,
        installed,
        unseen: BTreeMap::new(),
    })
}

/// The live state an upgrade is planned against.
pub struct Live {
    /// Each manifest object's live version (`None`: it does not exist).
    pub before: BTreeMap<ObjRef, Option<Value>>,
    /// Objects an installer labelled.
    pub installed: Vec<TypedMeta>,
    /// What a snapshot file could not show of an object (nothing for a live cluster).
    pub unseen: BTreeMap<ObjRef, Unseen>,
}
