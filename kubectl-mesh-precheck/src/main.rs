//! `kubectl mesh precheck`: what is installed, is it healthy, is it safe to upgrade to X.

mod args;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    let color = mesh_common::output::use_color(
        args.output.color,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run::run(args)),
        Err(e) => Err(mesh_common::exit::MeshError::failed(e)),
    };
    mesh_common::exit::finish(result, color)
}
