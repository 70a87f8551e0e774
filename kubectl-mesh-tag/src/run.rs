//! Dispatch and what every subcommand shares: reading the cluster (or `--snapshot FILE`) and
//! turning planning errors into exit codes.

use mesh_common::{
    cluster::{self, Connection, FetchOptions},
    exit::{ExitStatus, MeshError},
    inventory::Inventory,
    output::Printer,
    plan::tag::{ErrorKind, TagError},
    snapshot::ClusterSnapshot,
};

use crate::{
    args::{Args, Command},
    list, remove, set,
};

/// The cluster as read once: snapshot, inventory and (for a live cluster) the connection.
pub struct Loaded {
    /// Snapshot.
    pub snap: ClusterSnapshot,
    /// Its Istio view.
    pub inv: Inventory,
    /// The connection, unless read from `--snapshot`.
    pub conn: Option<Connection>,
}

/// Runs a subcommand and returns the exit status.
pub async fn run(args: Args) -> Result<ExitStatus, MeshError> {
    let mut printer = Printer::stdio(&args.output);
    let changes = match &args.command {
        Command::Set(s) => !s.dry_run,
        Command::Remove(r) => !r.dry_run,
        Command::List | Command::Generate(_) => false,
    };
    if changes && args.snapshot.snapshot.is_some() {
        return Err(
            MeshError::usage(anyhow::anyhow!("--snapshot cannot change a cluster"))
                .hint("add --dry-run to see the plan against the snapshot, or drop --snapshot"),
        );
    }
    let loaded = load(&args, &mut printer).await?;
    match &args.command {
        Command::Set(s) => set::set(s, &loaded, &mut printer).await,
        Command::Generate(g) => set::generate(g, &loaded, &mut printer),
        Command::List => list::list(&loaded, &mut printer),
        Command::Remove(r) => remove::remove(r, &loaded, &mut printer).await,
    }
}

async fn load(args: &Args, printer: &mut Printer) -> Result<Loaded, MeshError> {
    let opts = FetchOptions {
        istio_namespace: args.kube.istio_namespace.clone(),
        access: Vec::new(),
    };
    printer.progress("reading cluster state...")?;
    let (snap, conn) = cluster::load(&args.kube, &args.snapshot, &opts).await?;
    let inv = Inventory::from_snapshot(&snap);
    Ok(Loaded { snap, inv, conn })
}

/// A planning error with its exit code and hint.
pub fn plan_error(e: TagError) -> MeshError {
    let hint = e.hint();
    let err = match e.kind() {
        ErrorKind::Usage => MeshError::usage(e),
        ErrorKind::Blocked => MeshError::blocked(e),
        ErrorKind::Failed => MeshError::failed(e),
    };
    err.hint(hint)
}

/// The command line, for backups (`kubectl mesh tag set prod --revision 1-30-3 -y`).
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("kubectl mesh tag {}", args.join(" "))
}
