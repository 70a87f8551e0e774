//! What Istio's sidecar injection adds to a pod, as a JSONPatch (pure functions).
//!
//! Mirrors istiod's injection template closely enough for upgrade tooling: container
//! `istio-proxy` and init container `istio-init` (both `<hub>/proxyv2:<tag>`), the
//! `sidecar.istio.io/status` and `istio.io/rev` annotations, and the labels
//! `security.istio.io/tlsMode`, `service.istio.io/canonical-name/-revision`. The proxy image
//! comes from the revision's `istio-sidecar-injector[-<rev>]` ConfigMap `values` (see
//! [`proxy_image`]).

use serde_json::{Value, json};

/// Annotation holding the injection status (what was injected, by which revision).
pub const STATUS: &str = "sidecar.istio.io/status";

/// Volumes the injection adds, in order.
pub const VOLUMES: [&str; 8] = [
    "workload-socket",
    "credential-socket",
    "workload-certs",
    "istio-envoy",
    "istio-data",
    "istio-podinfo",
    "istio-token",
    "istiod-ca-cert",
];

/// The proxy image istiod would inject, from the injector ConfigMap's `values` JSON:
/// `global.proxy.image` (default `proxyv2`; used verbatim when it contains `/`), `global.hub`,
/// `global.tag`, `global.variant`.
pub fn proxy_image(values: &Value) -> Option<String> {
    let g = values.get("global")?;
    let image = g
        .pointer("/proxy/image")
        .and_then(Value::as_str)
        .unwrap_or("proxyv2");
    if image.contains('/') {
        return Some(image.to_owned());
    }
    let hub = g.get("hub").and_then(Value::as_str)?;
    let tag = match g.get("tag")? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let variant = g.get("variant").and_then(Value::as_str).unwrap_or("");
    let suffix = if variant.is_empty() {
        String::new()
    } else {
        format!("-{variant}")
    };
    Some(format!("{hub}/{image}:{tag}{suffix}"))
}

/// True when the pod already carries a sidecar (status annotation or `istio-proxy` container)
/// or opted out (`sidecar.istio.io/inject: "false"` label/annotation, host network).
pub fn skip(pod: &Value) -> bool {
    let meta = &pod["metadata"];
    let opted_out = ["labels", "annotations"]
        .iter()
        .any(|k| meta[k]["sidecar.istio.io/inject"].as_str() == Some("false"));
    let has_proxy = pod["spec"]["containers"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["name"] == "istio-proxy"));
    opted_out
        || has_proxy
        || meta["annotations"].get(STATUS).is_some()
        || pod["spec"]["hostNetwork"] == true
}

/// The status annotation value for `revision`.
pub fn status_annotation(revision: &str) -> String {
    json!({
        "initContainers": ["istio-init"],
        "containers": ["istio-proxy"],
        "volumes": VOLUMES,
        "imagePullSecrets": null,
        "revision": revision,
    })
    .to_string()
}

/// The JSONPatch operations that inject `pod` (in `namespace`) for `revision` with `image`.
pub fn patch(pod: &Value, namespace: &str, revision: &str, image: &str) -> Vec<Value> {
    let meta = &pod["metadata"];
    let mut ops = Vec::new();
    let labels = [
        ("security.istio.io/tlsMode", "istio".to_owned()),
        ("service.istio.io/canonical-name", canonical_name(meta)),
        (
            "service.istio.io/canonical-revision",
            canonical_revision(meta),
        ),
    ];
    add_map_entries(&mut ops, meta, "labels", &labels);
    let first = pod["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or("app")
        .to_owned();
    let annotations = [
        (STATUS, status_annotation(revision)),
        ("istio.io/rev", revision.to_owned()),
        ("kubectl.kubernetes.io/default-container", first.clone()),
        ("kubectl.kubernetes.io/default-logs-container", first),
    ];
    add_map_entries(&mut ops, meta, "annotations", &annotations);
    add_list_items(&mut ops, pod, "initContainers", vec![init_container(image)]);
    let workload = canonical_name(meta);
    add_list_items(
        &mut ops,
        pod,
        "containers",
        vec![proxy_container(image, namespace, revision, &workload)],
    );
    add_list_items(&mut ops, pod, "volumes", volumes());
    ops
}

fn add_map_entries(ops: &mut Vec<Value>, meta: &Value, field: &str, entries: &[(&str, String)]) {
    if meta[field].is_object() {
        for (k, v) in entries {
            let path = format!("/metadata/{field}/{}", escape(k));
            ops.push(json!({"op": "add", "path": path, "value": v}));
        }
    } else {
        let map: serde_json::Map<String, Value> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
            .collect();
        ops.push(json!({"op": "add", "path": format!("/metadata/{field}"), "value": map}));
    }
}

fn add_list_items(ops: &mut Vec<Value>, pod: &Value, field: &str, items: Vec<Value>) {
    if pod["spec"][field].is_array() {
        for item in items {
            ops.push(json!({"op": "add", "path": format!("/spec/{field}/-"), "value": item}));
        }
    } else {
        ops.push(json!({"op": "add", "path": format!("/spec/{field}"), "value": items}));
    }
}

/// JSON Pointer escaping of one path segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// istiod's canonical service name: label, `app.kubernetes.io/name`, `app`, else the workload
/// name derived from the pod's (generate)name.
pub fn canonical_name(meta: &Value) -> String {
    let labels = &meta["labels"];
    for k in [
        "service.istio.io/canonical-name",
        "app.kubernetes.io/name",
        "app",
    ] {
        if let Some(v) = labels[k].as_str() {
            return v.to_owned();
        }
    }
    workload_name(meta)
}

fn canonical_revision(meta: &Value) -> String {
    let labels = &meta["labels"];
    [
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
    ]
    .iter()
    .find_map(|k| labels[k].as_str())
    .unwrap_or("latest")
    .to_owned()
}

/// `web-7d9c8b5f4-` (ReplicaSet pod) → `web`; `db-` (StatefulSet) → `db`; a plain name stays.
fn workload_name(meta: &Value) -> String {
    let name = meta["generateName"]
        .as_str()
        .or(meta["name"].as_str())
        .unwrap_or("unknown");
    let trimmed = name.trim_end_matches('-');
    let is_rs = meta["ownerReferences"][0]["kind"] == "ReplicaSet";
    match trimmed.rsplit_once('-') {
        Some((base, _)) if is_rs => base.to_owned(),
        _ => trimmed.to_owned(),
    }
}

fn init_container(image: &str) -> Value {
    json!({
        "name": "istio-init",
        "image": image,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                 "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": false, "privileged": false, "readOnlyRootFilesystem": false,
            "runAsGroup": 0, "runAsNonRoot": false, "runAsUser": 0,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
    })
}

fn proxy_container(image: &str, namespace: &str, revision: &str, workload: &str) -> Value {
    let istiod = if revision == "default" {
        "istiod".to_owned()
    } else {
        format!("istiod-{revision}")
    };
    json!({
        "name": "istio-proxy",
        "image": image,
        "args": ["proxy", "sidecar", "--domain", format!("{namespace}.svc.cluster.local"),
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": format!("{istiod}.istio-system.svc:15012")},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
            {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
        ],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15,
            "timeoutSeconds": 3, "failureThreshold": 4},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": false, "privileged": false, "readOnlyRootFilesystem": true,
            "runAsGroup": 1337, "runAsNonRoot": true, "runAsUser": 1337, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds"},
            {"name": "credential-socket", "mountPath": "/var/run/secrets/credential-uds"},
            {"name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials"},
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
    })
}

fn volumes() -> Vec<Value> {
    let empty = |name: &str| json!({"name": name, "emptyDir": {}});
    vec![
        empty("workload-socket"),
        empty("credential-socket"),
        empty("workload-certs"),
        json!({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}),
        empty("istio-data"),
        json!({"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}),
        json!({"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_from_values() {
        let v = json!({"global": {"hub": "docker.io/istio", "tag": "1.29.6", "proxy": {"image": "proxyv2"}}});
        assert_eq!(proxy_image(&v).unwrap(), "docker.io/istio/proxyv2:1.29.6");
        let v = json!({"global": {"hub": "h", "tag": "1", "proxy": {"image": "r/x:y"}}});
        assert_eq!(proxy_image(&v).unwrap(), "r/x:y");
        let v = json!({"global": {"hub": "h", "tag": "1", "variant": "distroless"}});
        assert_eq!(proxy_image(&v).unwrap(), "h/proxyv2:1-distroless");
    }

    #[test]
    fn patch_adds_sidecar_and_metadata() {
        let pod = json!({"metadata": {"generateName": "web-5d4f8-", "labels": {"app": "web"},
            "ownerReferences": [{"kind": "ReplicaSet"}]},
            "spec": {"containers": [{"name": "web", "image": "x"}]}});
        let ops = patch(&pod, "demo", "1-30-3", "docker.io/istio/proxyv2:1.30.3");
        let mut doc = pod.clone();
        apply(&mut doc, &ops);
        assert_eq!(
            doc["spec"]["containers"][1]["image"],
            "docker.io/istio/proxyv2:1.30.3"
        );
        assert_eq!(doc["spec"]["initContainers"][0]["name"], "istio-init");
        assert_eq!(
            doc["metadata"]["labels"]["service.istio.io/canonical-name"],
            "web"
        );
        assert_eq!(doc["metadata"]["annotations"]["istio.io/rev"], "1-30-3");
        let status: Value =
            serde_json::from_str(doc["metadata"]["annotations"][STATUS].as_str().unwrap()).unwrap();
        assert_eq!(status["revision"], "1-30-3");
        assert!(skip(&doc));
        assert!(!skip(&pod));
    }

    #[test]
    fn workload_names() {
        let rs = json!({"generateName": "web-5d4f8-", "ownerReferences": [{"kind": "ReplicaSet"}]});
        assert_eq!(workload_name(&rs), "web");
        assert_eq!(workload_name(&json!({"generateName": "db-"})), "db");
        assert_eq!(escape("a/b~c"), "a~1b~0c");
    }

    /// Minimal JSONPatch "add" for the test.
    fn apply(doc: &mut Value, ops: &[Value]) {
        for op in ops {
            let path = op["path"].as_str().unwrap();
            let (parent, last) = path.rsplit_once('/').unwrap();
            let target = doc.pointer_mut(parent).unwrap();
            let key = last.replace("~1", "/").replace("~0", "~");
            match target {
                Value::Array(a) if key == "-" => a.push(op["value"].clone()),
                Value::Object(m) => {
                    m.insert(key, op["value"].clone());
                }
                _ => panic!("bad path {path}"),
            }
        }
    }
}
