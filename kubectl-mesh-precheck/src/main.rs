//! `kubectl mesh precheck`: what is installed, is it healthy, is it safe to upgrade to X.

mod args;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    mesh_common::exit::run_main(args.output.color, run::run(args))
}
