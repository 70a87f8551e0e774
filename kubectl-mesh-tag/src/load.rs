//! Reading the cluster once for any subcommand: snapshot, inventory and (for a live cluster)
//! the connection.

use mesh_common::{
    cluster::{self, Connection, FetchOptions},
    exit::MeshError,
    inventory::Inventory,
    output::Printer,
    snapshot::{ClusterSnapshot, Source},
};

use crate::args::{Args, Command};

/// What `list` never reads: it shows tags, revisions and namespaces, so the pods (the bulk of a
/// big cluster) and everything only the checks of `set`/`remove` read stay unread.
const LIST_SKIPS: [Source; 11] = [
    Source::Pods,
    Source::DaemonSets,
    Source::EndpointSlices,
    Source::ConfigMaps,
    Source::ValidatingWebhooks,
    Source::Crds,
    Source::Pdbs,
    Source::EnvoyFilters,
    Source::Gateways,
    Source::Nodes,
    Source::WaypointServices,
];

/// The cluster as read once.
pub struct Loaded {
    /// Snapshot.
    pub snap: ClusterSnapshot,
    /// Its Istio view.
    pub inv: Inventory,
    /// The connection, unless read from `--snapshot`.
    pub conn: Option<Connection>,
}

/// Reads the cluster (or `--snapshot FILE`).
pub async fn load(args: &Args, printer: &mut Printer) -> Result<Loaded, MeshError> {
    let source = args.snapshot.source(&args.kube)?;
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access: Vec::new(),
        skip: match args.command {
            Command::List => LIST_SKIPS.to_vec(),
            Command::Set(_) | Command::Remove(_) | Command::Generate(_) => Vec::new(),
        },
        read_remote_secrets: false,
    };
    printer.progress("reading cluster state...")?;
    let (snap, conn) = cluster::load(&source, &opts).await?;
    let inv = Inventory::from_snapshot(&snap);
    Ok(Loaded { snap, inv, conn })
}
