//! mesh-testbed: the end-to-end test bed of kubectl-mesh.
//!
//! A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler built from Go modules by `tests/testbed/build.sh`) with three kwok nodes, on
//! loopback ports, plus a sidecar-injector webhook so that Istio installed by real `istioctl`
//! injects restarted pods with the revision's proxy image.
//!
//! ```no_run
//! use mesh_testbed::{Cluster, scenario};
//! let c = Cluster::shared();                     // one per test binary
//! scenario::install_default(c)?;                 // istiod of the old release (ISTIO_OLD_TAG)
//! let ns = c.unique_namespace("web")?;
//! scenario::label_namespace(c, &ns, &[("istio-injection", "enabled")])?;
//! scenario::sample_app(c, &ns, 2)?;              // pods carry its istio-proxy
//! let out = c.kubectl().args(["get", "pods", "-n", &ns]).output()?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Every component dies with the process that started the cluster (watchdog), also when it
//! panics or is killed. If the binaries are not built, [`Cluster::start`] fails with a message
//! naming `tests/testbed/build.sh`.

pub mod ambient;
pub mod bins;
mod cluster;
pub mod config;
pub mod dump;
pub mod fault;
pub mod inject;
pub mod multicluster;
pub mod pki;
pub mod probe;
pub mod process;
pub mod rt;
pub mod scale;
pub mod scenario;
pub mod webhook;

pub use cluster::{Cluster, NODES, client_from, create_namespace, node_ready, run_with_stdin};
pub use scale::{ScaleReport, ScaleRevision, ScaleSpec};
