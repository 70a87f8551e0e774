//! What the change engine reports while it works, and how it asks: the engine owns no terminal.
//!
//! The engine sends [`Event`]s to a [`Sink`] the caller owns and asks the caller for
//! confirmation through the same sink; the command's printer (`output`) decides how events look
//! and where questions go. This keeps the dependency one way: `cluster` knows nothing of
//! `output`, `cli` or the binaries.

use std::path::Path;

use crate::ObjRef;

/// The answer to a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Yes (or `--yes`).
    Yes,
    /// No, an empty answer, or end of input.
    No,
    /// Nobody to ask: stdin is not a terminal and `--yes` was not given.
    NoTerminal,
}

/// Progress of a change, in the order the engine makes it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The backup was written before the first change.
    BackupWritten {
        /// Objects saved.
        objects: usize,
        /// The file.
        path: &'a Path,
    },
    /// The backup could not be brought up to date after the change (the one written first
    /// stays).
    BackupNotUpdated {
        /// Why.
        error: &'a super::Error,
    },
    /// A phase starts.
    Phase {
        /// 1-based.
        number: usize,
        /// Phases in the plan.
        total: usize,
        /// Its name.
        name: &'a str,
        /// Operations in it.
        changes: usize,
    },
    /// The phase's operations are done; its waits start.
    Waiting {
        /// Conditions waited on.
        conditions: usize,
    },
    /// The change failed; the backup is being restored.
    RollingBack {
        /// What failed.
        cause: &'a super::Error,
    },
    /// A restore removes an object the change created.
    Removing {
        /// The object.
        object: &'a ObjRef,
    },
    /// A restore puts an object back as the backup has it.
    Restoring {
        /// The object.
        object: &'a ObjRef,
    },
}

/// Where the engine reports to, and who answers its question. Implemented by the command's
/// printer; tests record events in a list.
pub trait Sink: Send {
    /// Something happened.
    fn event(&mut self, event: Event<'_>);
    /// Asks `question` (the engine has already handled `--yes`).
    fn confirm(&mut self, question: &str) -> std::io::Result<Confirmation>;
}
