//! Dispatch: refuse `--snapshot` for a change, read the cluster once, run the subcommand.

use mesh_common::{
    exit::{ExitStatus, MeshError},
    output::Printer,
};

use crate::{
    args::{Args, Command},
    list, load, remove, set,
};

/// Runs a subcommand and returns the exit status.
pub async fn run(args: Args) -> Result<ExitStatus, MeshError> {
    let mut printer = Printer::stdio(&args.output);
    let changes = match &args.command {
        Command::Set(s) => !s.change.dry_run,
        Command::Remove(r) => !r.change.dry_run,
        Command::List | Command::Generate(_) => false,
    };
    if changes && args.snapshot.snapshot.is_some() {
        return Err(
            MeshError::usage(anyhow::anyhow!("--snapshot cannot change a cluster"))
                .hint("add --dry-run to see the plan against the snapshot, or drop --snapshot"),
        );
    }
    let loaded = load::load(&args, &mut printer).await?;
    match &args.command {
        Command::Set(s) => set::set(s, &loaded, &mut printer).await,
        Command::Generate(g) => set::generate(g, &loaded, &mut printer),
        Command::List => list::list(&loaded, &mut printer),
        Command::Remove(r) => remove::remove(r, &loaded, &mut printer).await,
    }
}
