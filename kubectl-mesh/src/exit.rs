//! Exit codes (DESIGN.md §3) and the one place that writes to stdout and stderr.

use std::io::{self, Write};
use std::process::ExitCode;

/// How the dispatcher itself ends. Once a subcommand is exec'd its exit code is the
/// process's exit code, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Success,
    /// 1: `kubectl mesh version` found subcommands of another version (or one that
    /// would not say).
    Mismatch,
    /// 2: bad usage: unknown subcommand, flag before the subcommand, unknown shell.
    Usage,
    /// 3: a subcommand binary is missing or could not be executed.
    CannotRun,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Mismatch => 1,
            Self::Usage => 2,
            Self::CannotRun => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// An error for the user: `error: <message>` then one `hint: <hint>` line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code it leads to.
    pub exit: Exit,
    /// What went wrong, naming the object in backticks; no final period.
    pub message: String,
    /// What to do about it.
    pub hints: Vec<String>,
}

impl Failure {
    /// A failure with no hints yet.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Adds a `hint:` line.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// The text written to stderr.
    pub fn render(&self) -> String {
        let mut text = format!("error: {}\n", self.message);
        for hint in &self.hints {
            text.push_str(&format!("hint: {hint}\n"));
        }
        text
    }

    /// Writes the failure to stderr and returns its exit code.
    pub fn report(&self) -> ExitCode {
        stderr(&self.render());
        self.exit.into()
    }
}

/// Writes data to stdout. A closed pipe (`kubectl mesh --help | head -1`) is not an error.
pub fn stdout(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes a diagnostic to stderr.
pub fn stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_error_then_hints() {
        let f = Failure::new(Exit::Usage, "unknown subcommand `tga`").hint("did you mean `tag`?");
        assert_eq!(
            f.render(),
            "error: unknown subcommand `tga`\nhint: did you mean `tag`?\n"
        );
        assert_eq!(f.exit.code(), 2);
    }
}
