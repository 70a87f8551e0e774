//! `kubectl mesh tag`: Istio revision tags with guardrails and blast radius.

mod args;
mod execute;
mod list;
mod remove;
mod run;
mod set;
mod show;

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use mesh_common::exit::{MeshError, finish};

fn main() -> ExitCode {
    let args = args::Args::parse();
    let color = mesh_common::output::use_color(args.output.color, std::io::stderr().is_terminal());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run::run(args)),
        Err(e) => Err(MeshError::failed(e)),
    };
    finish(result, color)
}
