//! The names the dispatcher knows: the product subcommands (each a separate
//! `kubectl-mesh-<name>` binary, listed only when that binary is found) and the
//! builtins the dispatcher answers itself.

/// A subcommand name with its one-line description for `kubectl mesh --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The word after `kubectl mesh`.
    pub name: &'static str,
    /// One line, no final period.
    pub summary: &'static str,
}

/// Product subcommands in the order users meet them. Knowing a name here does not
/// make it available: it is listed only if `kubectl-mesh-<name>` exists.
pub const PRODUCT: &[Entry] = &[
    Entry {
        name: "precheck",
        summary: "Show what Istio runs here and whether an upgrade is safe (start here)",
    },
    Entry {
        name: "upgrade",
        summary: "Upgrade, downgrade or canary-install a control plane; move the data plane; roll back",
    },
    Entry {
        name: "tag",
        summary: "Set, list, remove and generate revision tags",
    },
    Entry {
        name: "uninstall",
        summary: "Remove a control-plane revision nothing uses any more",
    },
];

/// Subcommands the dispatcher implements itself; they shadow binaries of the same name.
pub const BUILTIN: &[Entry] = &[
    Entry {
        name: "version",
        summary: "Print the version of kubectl-mesh, of every subcommand, and of their Istio release data",
    },
    Entry {
        name: "completion",
        summary: "Print a shell completion script (bash, zsh, fish)",
    },
    Entry {
        name: "help",
        summary: "Print this help, or a subcommand's help",
    },
];

/// Hidden builtin used by the completion scripts: `kubectl-mesh __complete <words>`.
pub const COMPLETE_BUILTIN: &str = "__complete";

/// Shells `kubectl mesh completion` can write a script for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// The description of a product subcommand, or a neutral one for an extra
/// `kubectl-mesh-<name>` found on disk.
pub fn summary_of(name: &str) -> &'static str {
    PRODUCT
        .iter()
        .find(|e| e.name == name)
        .map_or("(no description: found on disk)", |e| e.summary)
}

/// Whether `name` is answered by the dispatcher itself.
pub fn is_builtin(name: &str) -> bool {
    name == COMPLETE_BUILTIN || BUILTIN.iter().any(|e| e.name == name)
}

/// Whether `name` is a product subcommand (installed or not).
pub fn is_product(name: &str) -> bool {
    PRODUCT.iter().any(|e| e.name == name)
}

/// Sort key putting product subcommands first in catalogue order, extras after by name.
pub fn order_key(name: &str) -> (usize, &str) {
    let pos = PRODUCT.iter().position(|e| e.name == name);
    (pos.unwrap_or(PRODUCT.len()), name)
}
