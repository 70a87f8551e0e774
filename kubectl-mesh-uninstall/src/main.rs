//! `kubectl mesh uninstall`: remove an old control plane revision safely, refusing while
//! anything still uses it; or every control plane (`--purge`), the CRDs only on request.

mod args;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    mesh_common::exit::run_main(args.output.color, run::run(args))
}
