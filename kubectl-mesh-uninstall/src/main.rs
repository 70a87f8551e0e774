//! `kubectl mesh uninstall`: remove an old control plane revision safely, refusing while
//! anything still uses it; or every control plane (`--purge`), the CRDs only on request.

mod args;
mod execute;
mod gather;
mod report;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    let stderr_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let color = mesh_common::output::use_color(args.output.color, stderr_tty);
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
