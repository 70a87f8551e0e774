//! The change engine's events as the commands show them on stderr: where the backup went and a
//! rollback (always), phases, waits and restores (progress: on a terminal only).

use std::io;

use super::Printer;
use crate::cluster::{Confirmation, Event, Sink};

/// The text of an event, and whether it is always shown (a note) or only as progress.
pub fn event_text(event: &Event<'_>) -> (String, bool) {
    match event {
        Event::BackupWritten { objects, path } => (
            format!(
                "backup of {objects} object(s) written to {}",
                path.display()
            ),
            true,
        ),
        Event::BackupNotUpdated { error } => (format!("warning: {error}"), true),
        Event::Phase {
            number,
            total,
            name,
            changes,
        } => (
            format!("[{number}/{total}] {name} ({changes} change(s))..."),
            false,
        ),
        Event::Waiting { conditions } => {
            (format!("  waiting for {conditions} condition(s)..."), false)
        }
        Event::RollingBack { cause } => (
            format!("error: {cause}\nrolling back from the backup..."),
            true,
        ),
        Event::Removing { object } => (format!("removing {object}..."), false),
        Event::Restoring { object } => (format!("restoring {object}..."), false),
    }
}

impl Sink for Printer {
    fn event(&mut self, event: Event<'_>) {
        let (text, note) = event_text(&event);
        // Progress that cannot be written (a closed stderr) must not stop the change.
        let _ = if note {
            self.note(&text)
        } else {
            self.progress(&text)
        };
    }

    fn confirm(&mut self, question: &str) -> io::Result<Confirmation> {
        Printer::confirm(self, question, false)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{ObjRef, cli::OutputFormat, cluster::Error};

    #[test]
    fn notes_always_progress_only_on_a_terminal() {
        let (mut p, out, err) = Printer::buffered(OutputFormat::Table, false);
        let cm = ObjRef::new("v1", "ConfigMap", Some("ns"), "a");
        let cause = Error::Declined;
        let events = [
            Event::BackupWritten {
                objects: 3,
                path: Path::new("/b/x.yaml"),
            },
            Event::Phase {
                number: 1,
                total: 2,
                name: "CRDs",
                changes: 4,
            },
            Event::Waiting { conditions: 2 },
            Event::RollingBack { cause: &cause },
            Event::Removing { object: &cm },
            Event::Restoring { object: &cm },
        ];
        for e in events {
            p.event(e);
        }
        assert_eq!(
            err.text(),
            format!(
                "backup of 3 object(s) written to /b/x.yaml\nerror: {cause}\nrolling back from the backup...\n"
            )
        );
        assert_eq!(out.text(), "", "events never reach stdout");
        assert_eq!(
            event_text(&Event::Phase {
                number: 1,
                total: 2,
                name: "CRDs",
                changes: 4
            }),
            ("[1/2] CRDs (4 change(s))...".to_owned(), false)
        );
        assert_eq!(
            event_text(&Event::Waiting { conditions: 2 }).0,
            "  waiting for 2 condition(s)..."
        );
        assert_eq!(
            event_text(&Event::Restoring { object: &cm }).0,
            format!("restoring {cm}...")
        );
    }
}
