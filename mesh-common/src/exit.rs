//! Exit codes and the one error renderer every binary uses.
//!
//! Exit codes (DESIGN.md §3, all binaries): 0 success; 1 blocked (findings at or above
//! `--fail-on`, a guardrail refusal, "no" at a prompt); 2 usage or bad input (clap's code);
//! 3 could not complete (API unreachable, forbidden, timeout, failed and rolled back).
//! Errors print once, at the top: `error: …`, then `caused by: …` lines, then `hint: …` lines.

use std::{fmt, io::Write, process::ExitCode};

use mesh_core::error::{Class, Classify};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done, nothing blocking.
    Success = 0,
    /// 1: blocked by findings, a guardrail or the user's "no".
    Blocked = 1,
    /// 2: usage error or bad input.
    Usage = 2,
    /// 3: could not complete.
    Failed = 3,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s as u8)
    }
}

/// An error with the exit code it maps to and hints for the user.
#[derive(Debug)]
pub struct MeshError {
    /// Exit code.
    pub status: ExitStatus,
    /// The error and its causes.
    pub error: anyhow::Error,
    /// What to do about it.
    pub hints: Vec<String>,
}

impl MeshError {
    /// Bad input (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::new(ExitStatus::Usage, error)
    }

    /// Could not complete (exit 3).
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self::new(ExitStatus::Failed, error)
    }

    /// Refused by a guardrail (exit 1).
    pub fn blocked(error: impl Into<anyhow::Error>) -> Self {
        Self::new(ExitStatus::Blocked, error)
    }

    fn new(status: ExitStatus, error: impl Into<anyhow::Error>) -> Self {
        Self {
            status,
            error: error.into(),
            hints: Vec::new(),
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", render(self, false))
    }
}

impl MeshError {
    /// A classified error, with its own hints.
    pub fn classified<E: Classify>(e: E) -> Self {
        let hints = e.hints();
        let status = match e.class() {
            Class::Usage => ExitStatus::Usage,
            Class::Blocked => ExitStatus::Blocked,
            Class::Failed => ExitStatus::Failed,
        };
        Self {
            status,
            error: anyhow::Error::new(e),
            hints,
        }
    }

    /// Writing the output failed (a closed pipe is handled by [`finish`]): could not complete.
    pub fn output(e: impl Into<anyhow::Error>) -> Self {
        Self::failed(e.into().context("cannot write the output"))
    }
}

/// `?` on the classified error types of the core and the shell. There is deliberately no
/// blanket conversion: an error that reaches an exit code has been classified.
macro_rules! classified {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for MeshError {
            fn from(e: $ty) -> Self {
                Self::classified(e)
            }
        })*
    };
}

classified!(
    crate::cluster::Error,
    crate::cluster::Stopped,
    crate::cluster::SnapshotError,
    crate::input::InputError,
    mesh_core::error::RevisionError,
    mesh_core::manifest::ManifestError,
    mesh_core::plan::tag::TagError,
    mesh_core::plan::uninstall::UninstallError,
    mesh_core::plan::upgrade::UpgradeError,
    mesh_core::plan::dataplane::DataplaneError,
    mesh_core::releases::ReleaseDataError,
);

/// Output written to stdout or stderr.
impl From<std::io::Error> for MeshError {
    fn from(e: std::io::Error) -> Self {
        Self::output(e)
    }
}

/// Renders an error: `error:` line, `caused by:` chain, `hint:` lines.
pub fn render(err: &MeshError, color: bool) -> String {
    use owo_colors::OwoColorize;
    let label = |text: &str, red: bool| match (color, red) {
        (false, _) => text.to_owned(),
        (true, true) => text.red().bold().to_string(),
        (true, false) => text.cyan().bold().to_string(),
    };
    let mut out = format!("{} {}\n", label("error:", true), err.error);
    for cause in err.error.chain().skip(1) {
        out.push_str(&format!("  caused by: {cause}\n"));
    }
    for hint in &err.hints {
        out.push_str(&format!("{} {hint}\n", label("hint:", false)));
    }
    out
}

/// Runs a command body and turns its result into the process exit code. A broken pipe on
/// stdout (`kubectl mesh ... | head`) is a success.
pub fn finish(result: Result<ExitStatus, MeshError>, color: bool) -> ExitCode {
    match result {
        Ok(status) => status.into(),
        Err(err) if is_broken_pipe(&err.error) => ExitStatus::Success.into(),
        Err(err) => {
            let _ = std::io::stderr()
                .lock()
                .write_all(render(&err, color).as_bytes());
            err.status.into()
        }
    }
}

/// The whole `main` of a subcommand: runs its async body on a small runtime and turns the
/// result into the exit code (errors rendered on stderr, coloured per `--color` and stderr).
pub fn run_main<F>(color: crate::cli::ColorChoice, body: F) -> ExitCode
where
    F: std::future::Future<Output = Result<ExitStatus, MeshError>>,
{
    let stderr_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let color = crate::output::use_color(color, stderr_tty);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(body),
        Err(e) => Err(MeshError::failed(e)),
    };
    finish(result, color)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn renders_chain_and_hints_once() {
        let inner: Result<(), std::io::Error> = Err(std::io::Error::other("connection refused"));
        let err = MeshError::failed(inner.context("cannot reach the API server").unwrap_err())
            .hint("check `kubectl cluster-info`");
        let text = render(&err, false);
        assert_eq!(
            text,
            "error: cannot reach the API server\n  caused by: connection refused\nhint: check `kubectl cluster-info`\n"
        );
        assert_eq!(err.status as u8, 3);
    }

    #[test]
    fn broken_pipe_is_success() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(is_broken_pipe(&e));
    }
}
