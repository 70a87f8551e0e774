//! What the end-to-end tests of every subcommand share: reading what a binary printed, running
//! kubectl and istioctl against a [`Cluster`], reading objects without what the server and its
//! controllers write on their own (to compare "before" and "after" a change), and finding —
//! building when needed — a sibling subcommand's binary.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::{Cluster, run_with_stdin};

/// Every kind a control plane is made of, plus the CRDs and namespaces: what "nothing changed"
/// compares.
pub const CONTROL_PLANE_KINDS: &str = "deployments,daemonsets,services,configmaps,serviceaccounts,roles,rolebindings,horizontalpodautoscalers,poddisruptionbudgets,mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings,customresourcedefinitions,namespaces";

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the exit code; returns (stdout, stderr).
pub fn expect(out: &Output, code: i32) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// Asserts the exit code; returns stdout parsed as JSON.
pub fn json(out: &Output, code: i32) -> Value {
    let (stdout, stderr) = expect(out, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\nstderr:\n{stderr}"))
}

/// Whether a comparison of objects includes their UIDs (the same objects, not recreated ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uids {
    /// Compare UIDs too: an object deleted and recreated counts as changed.
    Compare,
    /// Ignore UIDs: a restored (recreated) object counts as the same.
    Ignore,
}

/// An object without what the server and controllers write on their own: resourceVersion,
/// generation, managed fields, creation time, status, a Deployment's revision counter (and the
/// UID unless compared).
pub fn essence(mut o: Value, uids: Uids) -> Value {
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "generation",
            "managedFields",
            "creationTimestamp",
        ] {
            m.remove(k);
        }
        if uids == Uids::Ignore {
            m.remove("uid");
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

/// `Kind/namespace/name` of an object.
pub fn key(o: &Value) -> String {
    format!(
        "{}/{}/{}",
        o["kind"].as_str().unwrap_or_default(),
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Asserts two sets of objects are equal, naming what differs (without dumping megabytes).
pub fn assert_same(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>, what: &str) {
    let gone: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    let detail: String = changed
        .iter()
        .take(3)
        .map(|k| {
            format!(
                "\n--- {k} before:\n{}\n--- after:\n{}",
                serde_json::to_string(&before[*k]).unwrap_or_default(),
                serde_json::to_string(&after[*k]).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        gone.is_empty() && new.is_empty() && changed.is_empty(),
        "{what}: gone {gone:?}, new {new:?}, changed {changed:?}{detail}"
    );
}

impl Cluster {
    /// Runs kubectl with `args`; its stdout (panics on failure).
    pub fn kubectl_out(&self, args: &[&str]) -> String {
        let mut cmd = self.kubectl();
        cmd.args(args);
        run_with_stdin(cmd, "").unwrap_or_else(|e| panic!("kubectl {args:?}: {e:#}"))
    }

    /// Runs istioctl with `args`; its stdout (panics on failure).
    pub fn istioctl_out(&self, args: &[&str]) -> String {
        let mut cmd = self.istioctl();
        cmd.args(args);
        run_with_stdin(cmd, "").unwrap_or_else(|e| panic!("istioctl {args:?}: {e:#}"))
    }

    /// Every object of `kinds` (cluster-wide), by `Kind/namespace/name`, as the server holds it.
    pub fn objects_of(&self, kinds: &str) -> BTreeMap<String, Value> {
        let out = self.kubectl_out(&["get", kinds, "-A", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| (key(o), o.clone()))
            .collect()
    }

    /// (proxy image or `none`, injected revision or empty) of the live (not terminating) pods
    /// matching `selector` in `ns`, sorted.
    pub fn proxies(&self, ns: &str, selector: &str) -> Vec<(String, String)> {
        let out = self.kubectl_out(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut pods: Vec<(String, String)> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| (proxy_image(p), injected_revision(p)))
            .collect();
        pods.sort();
        pods
    }

    /// [`Cluster::objects_of`] the control plane's kinds, reduced to their [`essence`].
    pub fn state(&self, uids: Uids) -> BTreeMap<String, Value> {
        self.objects_of(CONTROL_PLANE_KINDS)
            .into_iter()
            .map(|(k, v)| (k, essence(v, uids)))
            .collect()
    }
}

/// The image of a pod's `istio-proxy` container (regular or native sidecar), or `none`.
pub fn proxy_image(pod: &Value) -> String {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .find(|c| c["name"] == "istio-proxy")
        .and_then(|c| c["image"].as_str())
        .unwrap_or("none")
        .to_owned()
}

/// The revision in a pod's `sidecar.istio.io/status` annotation, or empty.
pub fn injected_revision(pod: &Value) -> String {
    let status = pod["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .unwrap_or("{}");
    serde_json::from_str::<Value>(status).unwrap_or_default()["revision"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// A subcommand binary of this workspace, next to `test_binary` (a test's
/// `CARGO_BIN_EXE_<name>`), built with cargo into the same target directory — a no-op when it
/// is fresh. The variables cargo sets for a test are cleared first: build scripts that watch
/// them (ring's) would otherwise rerun and the next `cargo test` would rebuild half the
/// workspace.
pub fn sibling_binary(test_binary: &Path, package: &str) -> PathBuf {
    let profile = test_binary
        .parent()
        .expect("a binary in a profile directory");
    let target = profile
        .parent()
        .expect("a profile directory in a target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", package, "--bin", package])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .iter()
        .any(|p| k.starts_with(p));
        if set_for_tests {
            cmd.env_remove(k.as_ref());
        }
    }
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo build -p {package}: {}",
        text(&out.stderr)
    );
    profile.join(package)
}
