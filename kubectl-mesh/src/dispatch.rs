//! Reading the first argument, and only the first: a builtin, a top-level flag, or the
//! name of a subcommand binary to hand everything else to.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::exit::{self, Exit, Failure};
use crate::lookup::{self, Finder, Found};
use crate::{catalog, complete, exec, suggest, usage, version};

/// What the command line asks the dispatcher to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// No arguments, `-h` or `--help`: print usage.
    Usage,
    /// `--version` / `-V`: print the dispatcher's version only.
    OwnVersion,
    /// `version [--release-data FILE]`: the dispatcher's and every subcommand's version, and
    /// what their release data knows.
    Versions(Vec<OsString>),
    /// `version` naming clusters (`--context A --context B`, `--all-contexts`,
    /// `--contexts-from FILE`, with any other flag of precheck): what Istio runs in each
    /// context, answered by `kubectl-mesh-precheck --mesh-versions ARGS…`.
    MeshVersions(Vec<OsString>),
    /// `completion [SHELL]`.
    Completion(Vec<OsString>),
    /// `__complete WORDS...` (used by the completion scripts).
    Complete(Vec<String>),
    /// `help [SUBCOMMAND]`.
    Help(Option<OsString>),
    /// Run `kubectl-mesh-<name>` with these arguments.
    Run(String, Vec<OsString>),
    /// An argument before the subcommand: a flag (or not valid UTF-8).
    Unexpected(OsString),
}

/// Classifies the arguments after `kubectl mesh`; never looks past the first one
/// except for the builtins.
pub fn parse(args: Vec<OsString>) -> Invocation {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Invocation::Usage;
    };
    let rest: Vec<OsString> = args.collect();
    let Some(word) = first.to_str() else {
        return Invocation::Unexpected(first);
    };
    match word {
        "-h" | "--help" => Invocation::Usage,
        "-V" | "--version" => Invocation::OwnVersion,
        "version" if version::names_clusters(&rest) => Invocation::MeshVersions(rest),
        "version" => Invocation::Versions(rest),
        "completion" => Invocation::Completion(rest),
        "help" => Invocation::Help(rest.into_iter().next()),
        catalog::COMPLETE_BUILTIN => Invocation::Complete(
            rest.iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect(),
        ),
        w if lookup::is_valid_name(w) => Invocation::Run(w.to_owned(), rest),
        _ => Invocation::Unexpected(first),
    }
}

/// The flag of `kubectl-mesh-precheck` that prints what Istio runs per context.
pub const MESH_VERSIONS: &str = "--mesh-versions";

/// Runs the dispatcher; returns only when no subcommand took over the process.
pub fn run(args: Vec<OsString>, finder: &Finder) -> ExitCode {
    match parse(args) {
        Invocation::Usage => {
            exit::stdout(&usage::render(&finder.available()));
            ExitCode::SUCCESS
        }
        Invocation::OwnVersion => {
            exit::stdout(&format!("kubectl-mesh {}\n", crate::VERSION));
            ExitCode::SUCCESS
        }
        Invocation::Versions(rest) => version::run(finder, &rest),
        Invocation::MeshVersions(rest) => match resolve("precheck", finder) {
            Ok(found) => {
                let args: Vec<OsString> = std::iter::once(OsString::from(MESH_VERSIONS))
                    .chain(rest)
                    .collect();
                hand_over(&found, &args)
            }
            Err(failure) => failure.report(),
        },
        Invocation::Completion(rest) => completion(&rest),
        Invocation::Complete(words) => {
            exit::stdout(&complete::complete(&words, finder).render());
            ExitCode::SUCCESS
        }
        Invocation::Help(None) => run(Vec::new(), finder),
        Invocation::Help(Some(name)) => help(name, finder),
        Invocation::Run(name, rest) => match resolve(&name, finder) {
            Ok(found) => hand_over(&found, &rest),
            Err(failure) => failure.report(),
        },
        Invocation::Unexpected(arg) => unexpected(&arg).report(),
    }
}

/// `help SUBCOMMAND`: the subcommand's own `--help`; builtins are described in the usage.
fn help(name: OsString, finder: &Finder) -> ExitCode {
    match name.to_str() {
        Some(n) if catalog::is_builtin(n) => run(Vec::new(), finder),
        Some(n) if lookup::is_valid_name(n) => match resolve(n, finder) {
            Ok(found) => hand_over(&found, &[OsString::from("--help")]),
            Err(failure) => failure.report(),
        },
        _ => unknown(&name.to_string_lossy(), finder).report(),
    }
}

/// The binary for subcommand `name`, or why there is none.
pub fn resolve(name: &str, finder: &Finder) -> Result<Found, Failure> {
    if let Some(found) = finder.find(name) {
        return Ok(found);
    }
    if catalog::is_product(name) {
        return Err(not_installed(name, finder));
    }
    Err(unknown(name, finder))
}

fn not_installed(name: &str, finder: &Finder) -> Failure {
    let file = lookup::binary_file_name(name);
    let place = finder.own_dir().map_or_else(
        || "on PATH".to_owned(),
        |d| format!("beside `{}` or on PATH", d.display()),
    );
    Failure::new(
        Exit::CannotRun,
        format!("subcommand `{name}` is not installed: no `{file}` {place}"),
    )
    .hint("a newer release may provide it: `kubectl krew upgrade mesh`")
    .hint(format!("or put `{file}` beside `kubectl-mesh` or on PATH"))
}

/// `error: unknown subcommand` with the nearest available name as a hint.
pub fn unknown(name: &str, finder: &Finder) -> Failure {
    let available = finder.available();
    let names = available
        .iter()
        .map(|f| f.name.as_str())
        .chain(catalog::BUILTIN.iter().map(|e| e.name));
    let failure = Failure::new(Exit::Usage, format!("unknown subcommand `{name}`"));
    match suggest::closest(name, names) {
        Some(near) => failure.hint(format!("did you mean `{near}`?")),
        None => failure.hint("run `kubectl mesh --help` to list the subcommands"),
    }
}

fn unexpected(arg: &OsString) -> Failure {
    let shown = arg.to_string_lossy();
    if shown.starts_with('-') {
        Failure::new(
            Exit::Usage,
            format!("unexpected argument `{shown}` before the subcommand"),
        )
        .hint(format!(
            "flags go after the subcommand: `kubectl mesh <subcommand> {shown}`"
        ))
    } else {
        Failure::new(Exit::Usage, format!("invalid subcommand name `{shown}`"))
            .hint("run `kubectl mesh --help` to list the subcommands")
    }
}

fn completion(rest: &[OsString]) -> ExitCode {
    let shells = catalog::SHELLS.join(", ");
    let shell = match rest {
        [one] => one.to_str(),
        _ => {
            return Failure::new(
                Exit::Usage,
                "`kubectl mesh completion` takes one shell name",
            )
            .hint(format!(
                "one of: {shells}, e.g. `kubectl mesh completion bash`"
            ))
            .report();
        }
    };
    match shell.and_then(complete::script) {
        Some(script) => {
            exit::stdout(script);
            ExitCode::SUCCESS
        }
        None => Failure::new(
            Exit::Usage,
            format!("unsupported shell `{}`", rest[0].to_string_lossy()),
        )
        .hint(format!("one of: {shells}"))
        .report(),
    }
}

/// Replaces this process with the subcommand; returns only if that failed.
fn hand_over(found: &Found, args: &[OsString]) -> ExitCode {
    let err = exec::replace_process(&found.path, args);
    Failure::new(
        Exit::CannotRun,
        format!("could not run `{}`: {err}", found.path.display()),
    )
    .hint("check that it is an executable for this platform, or reinstall: `kubectl krew upgrade mesh`")
    .report()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_the_first_argument_is_read() {
        assert_eq!(parse(args(&[])), Invocation::Usage);
        assert_eq!(parse(args(&["--help"])), Invocation::Usage);
        assert_eq!(parse(args(&["-h"])), Invocation::Usage);
        assert_eq!(parse(args(&["--version"])), Invocation::OwnVersion);
        assert_eq!(parse(args(&["version"])), Invocation::Versions(Vec::new()));
        assert_eq!(
            parse(args(&["version", "--release-data", "r.yaml"])),
            Invocation::Versions(args(&["--release-data", "r.yaml"]))
        );
        assert_eq!(
            parse(args(&["version", "--context", "a", "--context", "b"])),
            Invocation::MeshVersions(args(&["--context", "a", "--context", "b"]))
        );
        assert_eq!(
            parse(args(&["tag", "--help", "-n", "x y", ""])),
            Invocation::Run("tag".into(), args(&["--help", "-n", "x y", ""]))
        );
        assert_eq!(
            parse(args(&["help", "tag", "x"])),
            Invocation::Help(Some("tag".into()))
        );
        assert_eq!(
            parse(args(&["-n", "tag"])),
            Invocation::Unexpected("-n".into())
        );
        assert_eq!(
            parse(args(&["../x"])),
            Invocation::Unexpected("../x".into())
        );
        assert_eq!(
            parse(args(&["__complete", "ta"])),
            Invocation::Complete(vec!["ta".to_owned()])
        );
    }

    #[test]
    fn unknown_and_missing_subcommands_explain_themselves() {
        let finder = Finder::new(None, Vec::new());
        let f = resolve("tga", &finder).unwrap_err();
        assert_eq!(f.exit, Exit::Usage);
        assert_eq!(f.message, "unknown subcommand `tga`");
        assert_eq!(
            f.hints,
            ["run `kubectl mesh --help` to list the subcommands"]
        );

        let f = resolve("verison", &finder).unwrap_err();
        assert_eq!(f.hints, ["did you mean `version`?"]);

        let f = resolve("upgrade", &finder).unwrap_err();
        assert_eq!(f.exit, Exit::CannotRun);
        assert!(
            f.message
                .starts_with("subcommand `upgrade` is not installed"),
            "{}",
            f.message
        );
    }
}
