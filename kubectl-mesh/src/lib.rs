//! `kubectl mesh`: a tiny dispatcher in front of the product binaries.
//!
//! krew installs one plugin, `mesh`, whose `bin` is `kubectl-mesh`. `kubectl mesh
//! <subcommand> args...` runs `kubectl-mesh-<subcommand> args...`, found beside the
//! dispatcher's canonical path (krew's `$KREW_ROOT/bin/kubectl-mesh` is a symlink into
//! the store directory that holds all the binaries) or else on `PATH`. The dispatcher
//! parses none of the subcommand's flags; it only owns `--help`, `version`,
//! `completion` and the completion protocol. std only, so it stays small and starts fast.
//!
//! Exit codes: 0 success; 2 usage (unknown subcommand, flag before the subcommand);
//! 3 the subcommand binary is missing or cannot be executed; `version` exits 1 when a
//! subcommand reports another version than the dispatcher. Once a subcommand runs, its
//! exit code is the process's.

pub mod catalog;
pub mod complete;
mod dispatch;
mod exec;
pub mod exit;
pub mod lookup;
pub mod suggest;
pub mod usage;
pub mod version;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;

pub use dispatch::{Invocation, parse};

/// The dispatcher's version (the workspace version every product binary shares).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Name of the completion helper kubectl looks for on `PATH`.
pub const COMPLETER_NAME: &str = "kubectl_complete-mesh";

/// Entry point of `kubectl-mesh`. Invoked through a file named `kubectl_complete-mesh`
/// (e.g. a symlink to `kubectl-mesh` in `$KREW_ROOT/bin`, which survives plugin upgrades)
/// it behaves as the completion helper.
pub fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    if invoked_as_completer(&argv0) {
        return complete_main(args.collect());
    }
    dispatch::run(args.collect(), &lookup::Finder::from_env())
}

/// Entry point of `kubectl_complete-mesh`: `words` are the words after `kubectl mesh`,
/// the last one being completed.
pub fn complete_main(words: Vec<OsString>) -> ExitCode {
    let words: Vec<String> = words
        .into_iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let result = complete::complete(&words, &lookup::Finder::for_completer());
    exit::stdout(&result.render());
    ExitCode::SUCCESS
}

fn invoked_as_completer(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_stem()
        .is_some_and(|stem| stem == COMPLETER_NAME)
}
