//! mesh-common: the shell of the kubectl-mesh plugins, over the pure core [`mesh_core`].
//!
//! Functional core, imperative shell (DESIGN.md §2). The pure part lives in the `mesh-core`
//! crate and is re-exported here ([`version`], [`releases`], [`snapshot`], [`selector`],
//! [`inventory`], [`ambient`], [`checks`], [`fleet`], [`manifest`], [`plan`], [`change`]) so
//! binaries depend on one library. The shell — [`cluster`] (the only code holding a
//! `kube::Client`: connect, fetch, the change engine, backups), [`output`], [`cli`], [`input`],
//! [`knowledge`] (which release data, today's date) and [`exit`] — connects, fetches, carries
//! plans out and renders. The core cannot reach the shell: it does not depend on this crate.
#![warn(missing_docs)]

pub use mesh_core::{
    ObjRef, ambient, change, checks, error, fleet, inventory, manifest, objref, plan, releases,
    selector, snapshot, version,
};

pub mod carry;
pub mod cli;
pub mod cluster;
pub mod exit;
pub mod input;
pub mod knowledge;
pub mod output;
