//! mesh-common: the shared core of the kubectl-mesh plugins.
//!
//! Functional core, imperative shell (DESIGN.md §2). The pure part — [`version`], [`snapshot`],
//! [`selector`], [`inventory`], [`checks`], [`manifest`] — has no client, no async and does no
//! printing; it is unit-tested on small snapshot builders. The shell — [`cluster`] (the only
//! code holding a `kube::Client`), [`output`], [`cli`] and [`exit`] — connects, fetches,
//! executes and renders.
#![warn(missing_docs)]

pub mod checks;
pub mod cli;
pub mod cluster;
pub mod exit;
pub mod inventory;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod selector;
pub mod snapshot;
pub mod version;

#[cfg(test)]
pub(crate) mod testkit;
