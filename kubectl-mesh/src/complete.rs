//! Shell completion. One engine, [`complete`], answers in cobra's plugin-completion
//! format (candidates one per line, `name<TAB>description`, then `:<directive>`), the
//! format kubectl ≥ 1.26 expects from `kubectl_complete-mesh`. The scripts printed by
//! `kubectl mesh completion SHELL` (for running `kubectl-mesh` directly) call the same
//! engine through the hidden `kubectl-mesh __complete WORDS...`.
//!
//! First word: the subcommands found on disk and the builtins. Later words of a product
//! subcommand: its flags and nested subcommands, read from its `--help` output (clap's
//! layout), so the binaries need no completion code of their own.

use std::ffi::OsString;
use std::process::{Command, Stdio};

use crate::catalog;
use crate::lookup::Finder;

/// Cobra directive: let the shell complete file names if there are no candidates.
pub const DIRECTIVE_DEFAULT: u32 = 0;
/// Cobra directive: never fall back to file names.
pub const DIRECTIVE_NO_FILE_COMP: u32 = 4;

/// Candidates for the last word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// `name` or `name\tdescription`, already filtered by the typed prefix.
    pub candidates: Vec<String>,
    /// A cobra `ShellCompDirective`.
    pub directive: u32,
}

impl Completion {
    fn of(candidates: Vec<String>, directive: u32) -> Self {
        Self {
            candidates,
            directive,
        }
    }

    /// Cobra's wire format: one candidate per line, then `:<directive>`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for c in &self.candidates {
            text.push_str(c);
            text.push('\n');
        }
        text.push_str(&format!(":{}\n", self.directive));
        text
    }
}

/// Completes the last of `words` (the words after `kubectl mesh`; the last may be empty).
pub fn complete(words: &[String], finder: &Finder) -> Completion {
    let (current, before) = match words.split_last() {
        Some((current, before)) => (current.as_str(), before),
        None => ("", &[][..]),
    };
    let Some((sub, args)) = before.split_first() else {
        return first_word(current, finder);
    };
    let no_files = |c| Completion::of(c, DIRECTIVE_NO_FILE_COMP);
    match sub.as_str() {
        "completion" if args.is_empty() => {
            no_files(filter(catalog::SHELLS.iter().copied(), current))
        }
        "help" if args.is_empty() => {
            let mut c = first_word(current, finder);
            c.candidates.retain(|c| !c.starts_with('-'));
            c
        }
        "completion" | "help" | "version" => no_files(Vec::new()),
        _ => match finder.find(sub) {
            Some(found) => from_help(&found.path, args, current),
            None => Completion::of(Vec::new(), DIRECTIVE_DEFAULT),
        },
    }
}

fn first_word(current: &str, finder: &Finder) -> Completion {
    let candidates = if current.starts_with('-') {
        filter(["--help", "--version"], current)
    } else {
        let found = finder.available();
        let found = found
            .iter()
            .map(|f| (f.name.as_str(), catalog::summary_of(&f.name)));
        let builtins = catalog::BUILTIN.iter().map(|e| (e.name, e.summary));
        found
            .chain(builtins)
            .filter(|(name, _)| name.starts_with(current))
            .map(|(name, summary)| format!("{name}\t{summary}"))
            .collect()
    };
    Completion::of(candidates, DIRECTIVE_NO_FILE_COMP)
}

fn filter<'a>(names: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Completes within a subcommand from its `--help`: nested subcommands are followed
/// (`tag set --<TAB>` reads `kubectl-mesh-tag set --help`; the value of a flag that takes
/// one is skipped on the way), then flags are offered for `-`, nothing after a flag that
/// takes a value (the shell completes files), else the nested subcommand names — but not
/// after a positional argument, nor after a flag when the usage shows that the subcommands
/// cannot follow flags (`kubectl mesh upgrade -f x.yaml <TAB>` is no place for `dataplane`).
fn from_help(binary: &std::path::Path, args: &[String], current: &str) -> Completion {
    let mut path: Vec<&str> = Vec::new();
    let mut help = run_help(binary, &path);
    // What was typed since the innermost subcommand.
    let (mut flag_typed, mut positional_typed) = (false, false);
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            positional_typed = true;
            break;
        }
        if word.starts_with('-') && word.len() > 1 {
            flag_typed = true;
            if !word.contains('=') && takes_value(&flags_in_help(&help), word) {
                words.next();
            }
        } else if !positional_typed && commands_in_help(&help).iter().any(|(n, _)| n == word) {
            path.push(word);
            help = run_help(binary, &path);
            flag_typed = false;
        } else {
            positional_typed = true;
        }
    }
    let flags = flags_in_help(&help);
    if current.starts_with('-') {
        let names = flags
            .iter()
            .flat_map(|f| &f.names)
            .filter(|n| n.starts_with("--"));
        return Completion::of(
            filter(names.map(String::as_str), current),
            DIRECTIVE_NO_FILE_COMP,
        );
    }
    let after_value_flag = args.last().is_some_and(|prev| takes_value(&flags, prev));
    let commands_fit = !positional_typed && (!flag_typed || commands_follow_flags(&help));
    let commands: Vec<String> = commands_in_help(&help)
        .into_iter()
        .filter(|(name, _)| commands_fit && name.starts_with(current))
        .map(|(name, summary)| format!("{name}\t{summary}"))
        .collect();
    if after_value_flag || commands.is_empty() {
        return Completion::of(Vec::new(), DIRECTIVE_DEFAULT);
    }
    Completion::of(commands, DIRECTIVE_NO_FILE_COMP)
}

fn takes_value(flags: &[Flag], word: &str) -> bool {
    flags
        .iter()
        .any(|f| f.takes_value && f.names.iter().any(|n| n == word))
}

fn run_help(binary: &std::path::Path, path: &[&str]) -> String {
    let mut args: Vec<OsString> = path.iter().map(OsString::from).collect();
    args.push("--help".into());
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A flag read from `--help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Its spellings, e.g. `["-n", "--namespace"]`.
    pub names: Vec<String>,
    /// Whether it is followed by a value (`<VALUE>` or `=VALUE` in the help).
    pub takes_value: bool,
}

/// The flags in clap-style help: lines indented by two to six spaces that start with `-`,
/// like `  -n, --namespace <NAMESPACE>  Namespace to read` or `      --dry-run` (deeper lines
/// are descriptions and possible values, unindented ones the about text, which may wrap
/// onto a line starting with a flag), each spelling once.
pub fn flags_in_help(help: &str) -> Vec<Flag> {
    let mut flags: Vec<Flag> = Vec::new();
    for line in help.lines() {
        let l = line.trim_start_matches(' ');
        if !(2..=6).contains(&(line.len() - l.len())) || !l.starts_with('-') {
            continue;
        }
        let spec = l.split("  ").next().unwrap_or(l);
        let names: Vec<String> = spec
            .split(", ")
            .filter_map(|item| item.split([' ', '=', '[']).next())
            .filter(|n| n.starts_with('-') && n.len() > 1)
            .filter(|n| !flags.iter().any(|f| f.names.iter().any(|x| x == n)))
            .map(str::to_owned)
            .collect();
        if !names.is_empty() {
            flags.push(Flag {
                names,
                takes_value: spec.contains('<') || spec.contains('='),
            });
        }
    }
    flags
}

/// Whether the usage lets flags come before a nested subcommand: some usage line naming
/// `COMMAND` also has `[OPTIONS]` (`tag [OPTIONS] <COMMAND>`), or none names it. clap's
/// `args_conflicts_with_subcommands` prints `upgrade [OPTIONS] --filename <FILE>` and
/// `upgrade <COMMAND>` on separate lines: flags there rule the subcommands out.
pub fn commands_follow_flags(help: &str) -> bool {
    let mut usage = help
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with(' ') && !l.trim().is_empty())
        .map(|(_, l)| l)
        .filter(|l| l.contains("COMMAND"))
        .peekable();
    usage.peek().is_none() || usage.any(|l| l.contains("[OPTIONS]"))
}

/// `(name, summary)` of each entry in the `Commands:` section of clap-style help
/// (entries are indented by exactly two spaces; wrapped descriptions deeper).
pub fn commands_in_help(help: &str) -> Vec<(String, String)> {
    let mut lines = help
        .lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1);
    let mut commands = Vec::new();
    for line in lines.by_ref() {
        let Some(entry) = line.strip_prefix("  ") else {
            break;
        };
        if entry.starts_with(' ') {
            continue;
        }
        let (name, summary) = entry.split_once(' ').unwrap_or((entry, ""));
        commands.push((name.to_owned(), summary.trim().to_owned()));
    }
    commands
}

/// The completion script for `shell` (`bash`, `zsh` or `fish`).
pub fn script(shell: &str) -> Option<&'static str> {
    match shell {
        "bash" => Some(BASH),
        "zsh" => Some(ZSH),
        "fish" => Some(FISH),
        _ => None,
    }
}

const BASH: &str = r#"# bash completion for kubectl-mesh (from `kubectl mesh completion bash`).
# Load now:    source <(kubectl mesh completion bash)
# Load always: kubectl mesh completion bash > ~/.local/share/bash-completion/completions/kubectl-mesh
#
# This completes the `kubectl-mesh` command. `kubectl mesh <TAB>` is completed by kubectl's own
# completion (source <(kubectl completion bash)), which runs `kubectl_complete-mesh` from PATH.
# With krew, put it there once:  ln -s kubectl-mesh "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-mesh"
_kubectl_mesh() {
    local cur=${COMP_WORDS[COMP_CWORD]} line directive=0 IFS=$'\n'
    local -a words=()
    while IFS= read -r line; do
        case $line in
            :[0-9]*) directive=${line#:} ;;
            ?*) words+=("${line%%$'\t'*}") ;;
        esac
    done < <("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${words[*]}" -- "$cur"))
    if [ ${#COMPREPLY[@]} -eq 0 ] && [ $((directive & 4)) -eq 0 ]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _kubectl_mesh kubectl-mesh
"#;

const ZSH: &str = r#"#compdef kubectl-mesh
# zsh completion for kubectl-mesh (from `kubectl mesh completion zsh`).
# Load now:    source <(kubectl mesh completion zsh)      (after compinit)
# Load always: kubectl mesh completion zsh > "${fpath[1]}/_kubectl-mesh"
#
# This completes the `kubectl-mesh` command. `kubectl mesh <TAB>` is completed by kubectl's own
# completion (source <(kubectl completion zsh)), which runs `kubectl_complete-mesh` from PATH.
# With krew, put it there once:  ln -s kubectl-mesh "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-mesh"
_kubectl_mesh() {
    local line name desc directive=0
    local -a comps
    for line in "${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}"; do
        if [[ $line == :<-> ]]; then
            directive=${line#:}
        elif [[ -n $line ]]; then
            name=${line%%$'\t'*}
            desc=
            [[ $line == *$'\t'* ]] && desc=${line#*$'\t'}
            comps+=("${name//:/\\:}${desc:+:$desc}")
        fi
    done
    if (( ${#comps} )); then
        _describe -t commands 'kubectl mesh' comps
    elif (( (directive & 4) == 0 )); then
        _files
    fi
}
if [[ $funcstack[1] == _kubectl-mesh ]]; then
    _kubectl_mesh "$@"
else
    compdef _kubectl_mesh kubectl-mesh
fi
"#;

const FISH: &str = r#"# fish completion for kubectl-mesh (from `kubectl mesh completion fish`).
# Load now:    kubectl mesh completion fish | source
# Load always: kubectl mesh completion fish > ~/.config/fish/completions/kubectl-mesh.fish
#
# This completes the `kubectl-mesh` command. `kubectl mesh <TAB>` is completed by kubectl's own
# completion (kubectl completion fish | source), which runs `kubectl_complete-mesh` from PATH.
# With krew, put it there once:  ln -s kubectl-mesh "$HOME/.krew/bin/kubectl_complete-mesh"
function __kubectl_mesh_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    for line in ($tokens[1] __complete $tokens[2..-1] "$cur" 2>/dev/null)
        string match -qr '^:[0-9]+$' -- $line; or echo $line
    end
end
complete -c kubectl-mesh -f -a '(__kubectl_mesh_complete)'
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const CLAP_HELP: &str = "\
Manage revision tags

Usage: kubectl mesh tag [OPTIONS] <COMMAND>

Commands:
  set       Point a tag at a revision; namespaces labelled with the tag move on
            their next restart
  list      List tags and revisions
  help      Print this message or the help of the given subcommand(s)

Options:
  -n, --namespace <NAMESPACE>  Namespace
      --kubeconfig <FILE>      Path to the kubeconfig
  -y, --yes                    Do not ask
      --color[=<WHEN>]         When to colour
  -h, --help                   Print help
";

    #[test]
    fn reads_commands_and_flags_from_clap_help() {
        let names: Vec<_> = commands_in_help(CLAP_HELP)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["set", "list", "help"]);
        assert_eq!(commands_in_help(CLAP_HELP)[1].1, "List tags and revisions");

        let flags = flags_in_help(CLAP_HELP);
        let flag = |n: &str| {
            flags
                .iter()
                .find(|f| f.names.iter().any(|x| x == n))
                .cloned()
        };
        assert_eq!(
            flag("-n"),
            Some(Flag {
                names: vec!["-n".into(), "--namespace".into()],
                takes_value: true
            })
        );
        assert_eq!(flag("--yes").map(|f| f.takes_value), Some(false));
        assert_eq!(flag("--color").map(|f| f.takes_value), Some(true));
        assert_eq!(flag("--kubeconfig").map(|f| f.names.len()), Some(1));
        assert_eq!(flags.len(), 5);
    }

    /// Excerpt of `kubectl-mesh-upgrade --help` (long help: descriptions on their own lines,
    /// an about text that wraps onto a line starting with `--canary`, two usage lines).
    const UPGRADE_HELP: &str = "\
Upgrade, downgrade or canary-install an Istio control plane from a manifest.

Exit codes: 0 done (or nothing to change, or a clean --dry-run); 1 refused (guardrail, Helm,
--canary missing, answered no, no --yes without a terminal, field conflict); 2 bad input

Usage: kubectl mesh upgrade [OPTIONS] --filename <FILE|DIR|->
       kubectl mesh upgrade <COMMAND>

Commands:
  dataplane  Move namespaces to a revision or tag and restart workloads onto its proxy, in batches
  rollback   Undo a change: restore the latest backup of this cluster (or the one named)
  help       Print this message or the help of the given subcommand(s)

Options:
  -f, --filename <FILE|DIR|->
          Manifest of the target version: a file, a directory of .yaml/.yml/.json files, or `-` for
          stdin (repeatable)

      --canary
          Install the manifest's revision as a new control plane beside the installed ones

      --timeout <DURATION>
          How long each wait may take (CRDs established, istiod and gateways rolled out)

          [default: 5m]

  -o, --output <OUTPUT>
          Output format

          Possible values:
          - table: Human-readable tables and findings
          - json:  JSON (versioned schema)

  -h, --help
          Print help (see a summary with '-h')
";

    #[test]
    fn reads_upgrade_help_flags_once_and_not_from_prose() {
        let flags = flags_in_help(UPGRADE_HELP);
        let names: Vec<&str> = flags
            .iter()
            .flat_map(|f| &f.names)
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "-f",
                "--filename",
                "--canary",
                "--timeout",
                "-o",
                "--output",
                "-h",
                "--help"
            ]
        );
        let takes: Vec<bool> = flags.iter().map(|f| f.takes_value).collect();
        assert_eq!(takes, [true, false, true, true, false]);
        let commands: Vec<String> = commands_in_help(UPGRADE_HELP)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(commands, ["dataplane", "rollback", "help"]);
    }

    #[test]
    fn usage_tells_whether_subcommands_may_follow_flags() {
        assert!(!commands_follow_flags(UPGRADE_HELP));
        assert!(commands_follow_flags(CLAP_HELP), "tag [OPTIONS] <COMMAND>");
        assert!(commands_follow_flags(
            "Usage: kubectl mesh upgrade rollback [OPTIONS] [BACKUP]\n\nOptions:\n"
        ));
        assert!(commands_follow_flags("no usage at all"));
    }

    #[test]
    fn help_without_sections_gives_nothing() {
        assert!(commands_in_help("Usage: x\n").is_empty());
        assert!(flags_in_help("").is_empty());
    }

    #[test]
    fn builtins_complete_without_a_disk() {
        let finder = Finder::new(None, Vec::new());
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let c = complete(&words(&["ver"]), &finder);
        assert_eq!(
            c.candidates,
            [
                "version\tPrint the version of kubectl-mesh, of every subcommand, and of their Istio release data"
            ]
        );
        assert_eq!(c.directive, DIRECTIVE_NO_FILE_COMP);
        assert_eq!(
            complete(&words(&["completion", ""]), &finder).candidates,
            ["bash", "zsh", "fish"]
        );
        assert_eq!(
            complete(&words(&["completion", "f"]), &finder).candidates,
            ["fish"]
        );
        assert_eq!(complete(&words(&["--h"]), &finder).candidates, ["--help"]);
        assert_eq!(
            complete(&[], &finder).candidates.len(),
            catalog::BUILTIN.len()
        );
        assert_eq!(
            complete(&words(&["nothere", ""]), &finder),
            Completion::of(Vec::new(), DIRECTIVE_DEFAULT)
        );
        assert_eq!(
            complete(&words(&["co"]), &finder).render().lines().last(),
            Some(":4")
        );
    }
}
