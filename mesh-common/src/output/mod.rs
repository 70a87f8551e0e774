//! Output: the [`Printer`] (data on stdout, everything else on stderr), colour rules,
//! kubectl-like tables, JSON/YAML, and the renderers of findings and inventories.
//!
//! Colour follows `--color`; `auto` means stdout is a terminal and `NO_COLOR` is unset. Colour
//! never carries meaning alone: every finding has its symbol and word. Progress goes to stderr
//! and only when stderr is a terminal. The printer is the change engine's [`crate::cluster::Sink`]:
//! it renders the engine's events and asks its questions.

mod ambient;
mod events;
mod render;

use std::{
    io::{self, BufRead, IsTerminal, Write},
    sync::{Arc, Mutex},
};

use serde::Serialize;

pub use crate::cluster::Confirmation;
pub use ambient::ambient_tables;
pub use events::event_text;
pub use render::{finding_lines, findings, inventory_tables, proxies_table};

use crate::cli::{ColorChoice, OutputFlags, OutputFormat};

type Sink = Box<dyn Write + Send>;

/// Where answers to prompts come from.
enum Answers {
    /// The process's stdin, when it is a terminal.
    Stdin,
    /// Scripted answers (tests); none left reads as end of input.
    Scripted(std::collections::VecDeque<String>),
}

/// Where a command's output goes, and where its prompts are answered.
pub struct Printer {
    out: Sink,
    err: Sink,
    color: bool,
    progress: bool,
    answers: Answers,
    /// The chosen data format.
    pub format: OutputFormat,
}

/// Whether colour is on for a choice, given whether stdout is a terminal.
pub fn use_color(choice: ColorChoice, stdout_tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

impl Printer {
    /// A printer on the process's stdout and stderr.
    pub fn stdio(flags: &OutputFlags) -> Self {
        Self {
            out: Box::new(io::stdout()),
            err: Box::new(io::stderr()),
            color: use_color(flags.color, io::stdout().is_terminal()),
            progress: io::stderr().is_terminal(),
            answers: Answers::Stdin,
            format: flags.output,
        }
    }

    /// A printer writing into shared buffers (tests): returns (printer, stdout, stderr).
    pub fn buffered(format: OutputFormat, color: bool) -> (Self, Buffer, Buffer) {
        let (out, err) = (Buffer::default(), Buffer::default());
        let p = Self {
            out: Box::new(out.clone()),
            err: Box::new(err.clone()),
            color,
            progress: false,
            answers: Answers::Scripted(std::collections::VecDeque::new()),
            format,
        };
        (p, out, err)
    }

    /// Answers the next prompts with these lines (tests).
    pub fn script_answers<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, answers: I) {
        self.answers = Answers::Scripted(answers.into_iter().map(Into::into).collect());
    }

    /// Asks `question [y/N]` on stderr. `yes` answers in advance; without a terminal on stdin
    /// (and no scripted answers) there is no one to ask. Anything but y/yes is no.
    pub fn confirm(&mut self, question: &str, yes: bool) -> io::Result<Confirmation> {
        if yes {
            return Ok(Confirmation::Yes);
        }
        let line = match &mut self.answers {
            Answers::Stdin if !io::stdin().is_terminal() => return Ok(Confirmation::NoTerminal),
            Answers::Scripted(q) if q.is_empty() => return Ok(Confirmation::NoTerminal),
            Answers::Stdin => {
                write!(self.err, "{question} [y/N] ")?;
                self.err.flush()?;
                let mut line = String::new();
                io::stdin().lock().read_line(&mut line)?;
                line
            }
            Answers::Scripted(q) => {
                writeln!(self.err, "{question} [y/N] ")?;
                q.pop_front().unwrap_or_default()
            }
        };
        Ok(
            if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                Confirmation::Yes
            } else {
                Confirmation::No
            },
        )
    }

    /// Whether colour is on.
    pub fn color(&self) -> bool {
        self.color
    }

    /// Writes data to stdout.
    pub fn data(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// Writes a human note to stderr (always shown: warnings, where a backup went).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        self.err.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            self.err.write_all(b"\n")?;
        }
        self.err.flush()
    }

    /// Writes progress to stderr, only on a terminal.
    pub fn progress(&mut self, text: &str) -> io::Result<()> {
        if self.progress {
            self.note(text)?;
        }
        Ok(())
    }

    /// Writes a value as JSON or YAML per the chosen format (table falls back to YAML).
    pub fn structured<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        let text = match self.format {
            OutputFormat::Json => {
                serde_json::to_string_pretty(value).map_err(io::Error::other)? + "\n"
            }
            OutputFormat::Yaml | OutputFormat::Table => {
                serde_saphyr::to_string(value).map_err(io::Error::other)?
            }
        };
        self.data(&text)
    }

    /// Paints text when colour is on.
    pub fn paint(&self, text: &str, style: Style) -> String {
        paint(text, style, self.color)
    }
}

/// Colours used by the renderers.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// Passed.
    Ok,
    /// Warning.
    Warn,
    /// Error.
    Error,
    /// Secondary text.
    Dim,
    /// Headings.
    Bold,
}

/// Paints text when `color` is on.
pub fn paint(text: &str, style: Style, color: bool) -> String {
    use owo_colors::OwoColorize;
    if !color {
        return text.to_owned();
    }
    match style {
        Style::Ok => text.green().to_string(),
        Style::Warn => text.yellow().to_string(),
        Style::Error => text.red().bold().to_string(),
        Style::Dim => text.dimmed().to_string(),
        Style::Bold => text.bold().to_string(),
    }
}

/// A kubectl-like table: upper-case headers, columns separated by spaces, no borders.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    use tabled::settings::{Padding, Style};
    let mut b = tabled::builder::Builder::default();
    b.push_record(headers.iter().map(|h| h.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::empty()).with(Padding::new(0, 3, 0, 0));
    let text = t.to_string();
    let mut out: String = text
        .lines()
        .map(|l| l.trim_end().to_owned() + "\n")
        .collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// An in-memory writer shared with a test.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// The text written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_look_like_kubectl() {
        let t = table(
            &["NAME", "VERSION"],
            vec![vec!["istiod".into(), "1.29.6".into()]],
        );
        assert_eq!(t, "NAME     VERSION\nistiod   1.29.6\n");
    }

    #[test]
    fn colour_follows_the_flag() {
        assert!(use_color(ColorChoice::Always, false));
        assert!(!use_color(ColorChoice::Never, true));
        assert!(!use_color(ColorChoice::Auto, false));
        assert_eq!(paint("x", Style::Error, false), "x");
        assert_ne!(paint("x", Style::Error, true), "x");
    }

    #[test]
    fn prompts_take_yes_no_and_refuse_without_anyone_to_ask() {
        let (mut p, _, err) = Printer::buffered(OutputFormat::Table, false);
        assert_eq!(p.confirm("Go?", true).unwrap(), Confirmation::Yes);
        assert_eq!(p.confirm("Go?", false).unwrap(), Confirmation::NoTerminal);
        p.script_answers(["y", "", "YES", "nope"]);
        let got: Vec<Confirmation> = (0..4).map(|_| p.confirm("Go?", false).unwrap()).collect();
        use Confirmation::{No, Yes};
        assert_eq!(got, [Yes, No, Yes, No]);
        assert!(err.text().contains("Go? [y/N]"));
    }

    #[test]
    fn progress_is_silent_off_a_terminal() {
        let (mut p, out, err) = Printer::buffered(OutputFormat::Table, false);
        p.progress("reading").unwrap();
        p.note("backup written").unwrap();
        p.data("data\n").unwrap();
        assert_eq!(err.text(), "backup written\n");
        assert_eq!(out.text(), "data\n");
    }
}
