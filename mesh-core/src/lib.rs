//! mesh-core: the pure core of kubectl-mesh.
//!
//! Functional core, imperative shell (DESIGN.md §2). Everything here is plain data and pure
//! functions over a [`snapshot::ClusterSnapshot`]: [`version`], [`releases`] (what each Istio
//! release supports, from one data file), [`snapshot`], [`selector`], [`inventory`],
//! [`checks`], [`manifest`], the planners in [`plan`] and the plan of changes they produce
//! ([`change`]). No Kubernetes client, no async runtime, no printing: this crate does not
//! even depend on them, so the compiler keeps the boundary (as kube-rs keeps `kube-core` beneath
//! `kube-client`). The shell — `mesh-common` — connects, fetches, carries plans out and renders.
#![warn(missing_docs)]

pub mod ambient;
pub mod change;
pub mod checks;
pub mod error;
pub mod fleet;
pub mod inventory;
pub mod manifest;
pub mod objref;
pub mod plan;
pub mod releases;
pub mod selector;
pub mod snapshot;
pub mod version;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use objref::ObjRef;
