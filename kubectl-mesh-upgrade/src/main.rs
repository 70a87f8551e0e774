//! `kubectl mesh upgrade`: guarded in-place upgrade, downgrade, canary and fresh install of an
//! Istio control plane from a manifest; `dataplane` moves workloads onto the new proxies;
//! `rollback` undoes a change from its backup.

mod apply;
mod args;
mod dataplane;
mod load;
mod rollback;
mod show;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: args::Args = mesh_common::knowledge::parse_args();
    if let Err(e) = args.check() {
        use clap::CommandFactory;
        args::Args::command()
            .error(clap::error::ErrorKind::ArgumentConflict, e)
            .exit();
    }
    let color = args.output.color;
    mesh_common::exit::run_main(color, async move {
        match &args.command {
            Some(args::Command::Dataplane(d)) => dataplane::run(&args, d).await,
            Some(args::Command::Rollback(r)) => rollback::run(&args, r).await,
            None => apply::run(&args).await,
        }
    })
}
