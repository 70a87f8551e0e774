//! Planners: pure functions from a snapshot and a request to the list of changes a command
//! will make (shown, dry-run checked, backed up, then executed by the shell).

pub mod tag;
pub mod uninstall;
