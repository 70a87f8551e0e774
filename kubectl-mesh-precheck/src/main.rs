//! `kubectl mesh precheck`: what is installed, is it healthy, is it safe to upgrade to X.

mod args;
mod fleet;
mod report;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: args::Args =
        mesh_common::knowledge::parse_fleet_args(|a: &mut args::Args| &mut a.fleet);
    mesh_common::exit::run_main(args.output.color, run::run(args))
}
