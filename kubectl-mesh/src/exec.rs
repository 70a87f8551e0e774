//! Handing the process over to a subcommand binary, arguments untouched.
//!
//! Unix: `exec(2)` replaces the dispatcher, so signals, the TTY, stdin and the exit
//! status (including death by signal) are the subcommand's own. Windows has no exec:
//! spawn, wait, and exit with the child's code.

use std::ffi::OsString;
use std::io;
use std::path::Path;

/// Runs `path` with `args`; returns only if it could not be started.
#[cfg(unix)]
pub fn replace_process(path: &Path, args: &[OsString]) -> io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(path).args(args).exec()
}

/// Runs `path` with `args`, waits, and exits with its code; returns only if it could
/// not be started.
#[cfg(windows)]
pub fn replace_process(path: &Path, args: &[OsString]) -> io::Error {
    // Ctrl+C reaches the child too (same console); the child decides how to stop and
    // we report its code.
    match std::process::Command::new(path).args(args).status() {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => e,
    }
}
