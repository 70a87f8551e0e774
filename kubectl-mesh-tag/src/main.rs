//! `kubectl mesh tag`: Istio revision tags with guardrails and blast radius.

mod args;
mod list;
mod load;
mod remove;
mod run;
mod set;
mod show;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    mesh_common::exit::run_main(args.output.color, run::run(args))
}
