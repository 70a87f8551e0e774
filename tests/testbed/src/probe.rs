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

/// Runs a kubectl-mesh binary as a user would, with `ARGS --kubeconfig K`, `HOME` (where backups
/// go), no colour, no `KUBECONFIG` and no terminal; reports on stderr how long it took.
#[allow(clippy::print_stderr)] // the tests' timings, for the record
pub fn run_mesh(binary: &Path, kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    let t = std::time::Instant::now();
    let out = Command::new(binary)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    let name = name.replacen("kubectl-mesh-", "kubectl mesh ", 1);
    eprintln!(
        "{name} {} -> {:?} in {:.1?}",
        args.join(" "),
        out.status.code(),
        t.elapsed()
    );
    out
}

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

/// The findings with `id` of a precheck report (`precheck -o json`); asserts there is one.
pub fn findings<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    let found: Vec<&Value> = report["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["checks"].as_array().into_iter().flatten())
        .filter(|f| f["id"] == id)
        .collect();
    assert!(!found.is_empty(), "no {id} finding in {report:#}");
    found
}

/// One object of a kubectl-mesh change report (`upgrade -o json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `create`, `update`, `unchanged`, `prune` or `keep`.
    pub action: String,
    /// The fields its diff names (`changes` and `other`), label changes left out.
    pub fields: Vec<String>,
}

/// The objects of a kubectl-mesh change report, by `Kind/namespace/name`.
pub fn planned(report: &Value) -> BTreeMap<String, Planned> {
    let objects = report["objects"].as_array().into_iter().flatten();
    objects
        .map(|o| {
            let r = &o["object"];
            let key = format!(
                "{}/{}/{}",
                r["kind"].as_str().unwrap_or_default(),
                r["namespace"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            );
            let diff = &o["diff"];
            let named = diff["changes"].as_array().into_iter().flatten();
            let named = named.filter_map(|c| c["field"].as_str());
            let other = diff["other"].as_array().into_iter().flatten();
            let fields = named
                .chain(other.filter_map(Value::as_str))
                .filter(|f| !f.starts_with("metadata.labels."))
                .map(str::to_owned)
                .collect();
            let action = o["action"].as_str().unwrap_or_default().to_owned();
            (key, Planned { action, fields })
        })
        .collect()
}

/// The objects a change report created or updated, by `Kind/namespace/name`.
pub fn applied(report: &Value) -> std::collections::BTreeSet<String> {
    let plan = planned(report).into_iter();
    let changed = plan.filter(|(_, p)| p.action == "create" || p.action == "update");
    changed.map(|(k, _)| k).collect()
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

/// The label istioctl's installer stamps with the version that made an object (kubectl-mesh
/// stamps it too, as its successor): istioctl writes its own build's version, kubectl-mesh the
/// version of the manifest it applies. Two installers of one manifest differ in it by design.
pub const VERSION_STAMP: &str = "operator.istio.io/version";

/// The namespace the test bed installs Istio into.
const ISTIO_NAMESPACE: &str = "istio-system";

/// Whether `Kind/namespace/name` is an object of an Istio install: anything in `istio-system`
/// but the CA ConfigMap the controller manager puts in every namespace, the namespace itself,
/// and cluster-scoped objects named for Istio (CRDs `*.istio.io`, webhooks, cluster roles and
/// bindings).
pub fn is_istio_object(key: &str) -> bool {
    let mut parts = key.splitn(3, '/');
    let (kind, ns, name) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    match ns {
        ISTIO_NAMESPACE => !(kind == "ConfigMap" && name == "kube-root-ca.crt"),
        "" => name.contains("istio"),
        _ => false,
    }
}

/// Objects of one state ([`Cluster::state`]) that belong to the Istio install
/// ([`is_istio_object`]).
pub fn istio_objects(state: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    state
        .into_iter()
        .filter(|(k, _)| is_istio_object(k))
        .collect()
}

/// An object without what the API server allocates per cluster, so that the same manifest
/// installed on two clusters compares equal: a Service's `clusterIP`, `clusterIPs` and node
/// ports. (Use with [`Uids::Ignore`]: UIDs are per cluster too.)
pub fn portable(mut o: Value) -> Value {
    if o["kind"] == "Service"
        && let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(p) = port.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    o
}

/// Takes the [`VERSION_STAMP`] label out of every object: the objects without it, and the
/// stamp of each object that had one (`Kind/namespace/name` → version).
pub fn split_stamps(
    state: BTreeMap<String, Value>,
) -> (BTreeMap<String, Value>, BTreeMap<String, String>) {
    let mut stamps = BTreeMap::new();
    let objects = state
        .into_iter()
        .map(|(k, mut o)| {
            let labels = o
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut);
            if let Some(Value::String(v)) = labels.and_then(|l| l.remove(VERSION_STAMP)) {
                stamps.insert(k.clone(), v);
            }
            (k, o)
        })
        .collect();
    (objects, stamps)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn istio_objects_are_its_namespace_and_its_cluster_scoped_names() {
        for (k, want) in [
            ("Deployment/istio-system/istiod", true),
            ("Namespace//istio-system", true),
            (
                "CustomResourceDefinition//gateways.networking.istio.io",
                true,
            ),
            ("MutatingWebhookConfiguration//istio-sidecar-injector", true),
            ("ConfigMap/istio-system/kube-root-ca.crt", false),
            ("ConfigMap/istio-system/istio", true),
            ("Service/default/kubernetes", false),
            ("Deployment/apps/istio-lookalike", false),
            ("ClusterRole//system:controller:foo", false),
        ] {
            assert_eq!(is_istio_object(k), want, "{k}");
        }
    }

    #[test]
    fn portable_drops_allocations_and_split_stamps_takes_the_version_label() {
        let svc = json!({"kind": "Service", "spec": {"clusterIP": "10.96.0.7",
            "clusterIPs": ["10.96.0.7"], "type": "LoadBalancer",
            "ports": [{"port": 80, "nodePort": 31000}]}});
        assert_eq!(
            portable(svc),
            json!({"kind": "Service", "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
        );
        let cm = json!({"kind": "ConfigMap", "spec": {"clusterIP": "kept"}});
        assert_eq!(portable(cm.clone()), cm, "only Services");
        let state = BTreeMap::from([
            (
                "a".to_owned(),
                json!({"metadata": {"labels": {VERSION_STAMP: "1.31.1", "app": "x"}}}),
            ),
            ("b".to_owned(), json!({"metadata": {"name": "b"}})),
        ]);
        let (objects, stamps) = split_stamps(state);
        assert_eq!(objects["a"], json!({"metadata": {"labels": {"app": "x"}}}));
        assert_eq!(objects["b"], json!({"metadata": {"name": "b"}}));
        assert_eq!(
            stamps,
            BTreeMap::from([("a".to_owned(), "1.31.1".to_owned())])
        );
    }
}
