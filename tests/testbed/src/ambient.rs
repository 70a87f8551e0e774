//! Ambient mode on the test bed: the Gateway API CRDs, istioctl's `profile=ambient` install,
//! and what the test bed **emulates** because no real istiod or istio-cni runs here:
//!
//! - **istiod's gateway controller** (`pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go`
//!   with the `waypoint` template of `manifests/charts/istio-control/istio-discovery/files/
//!   waypoint.yaml`): for a Gateway of class `istio-waypoint` managed by an installed revision
//!   it creates the ServiceAccount, Deployment and Service named after the Gateway, with the
//!   labels, annotations, owner references and proxy image the controller uses (the image comes
//!   from the revision's injector ConfigMap, as istiod's own injection config would give it),
//!   and reports the Gateway `Accepted` and `Programmed`. A Gateway whose revision has no istiod
//!   gets nothing, as in a real cluster. The GatewayClass `istio-waypoint` istiod creates at
//!   start-up is created with the first waypoint.
//! - **istio-cni's node agent**: it annotates the pods of ambient namespaces it captured
//!   (`ambient.istio.io/redirection: enabled`); [`capture`] does that.
//!
//! Everything else is real: the apiserver, the CRDs from the `sigs.k8s.io/gateway-api` module,
//! istioctl's install of istiod, istio-cni and ztunnel (DaemonSets rolled on the kwok nodes).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{
    bins::cache_dir,
    cluster::{Cluster, run_with_stdin},
    rt::block,
    scenario, webhook,
};

/// The label the gateway controller puts on what it renders for waypoints.
pub const WAYPOINT_CONTROLLER_LABEL: &str = "istio.io-mesh-controller";
/// The field manager istiod's gateway controller applies with.
pub const WAYPOINT_FIELD_MANAGER: &str = "istio.io/mesh-controller";

/// The directory of the Gateway API CRDs `build.sh` copied (`gateway-api-<v>/crds`).
pub fn gateway_api_crds(c: &Cluster) -> Result<PathBuf> {
    let v = c.versions().get("GATEWAY_API_VERSION")?;
    let dir = cache_dir().join(format!("gateway-api-{v}")).join("crds");
    if !dir.is_dir() {
        bail!(
            "the Gateway API CRDs are not built ({} missing); run `bash tests/testbed/build.sh gatewayapi`",
            dir.display()
        );
    }
    Ok(dir)
}

/// Installs the Gateway API's standard CRDs (once per cluster) and waits until served.
pub fn install_gateway_api(c: &Cluster) -> Result<()> {
    once(c, "gateway-api", || {
        let dir = gateway_api_crds(c)?;
        let mut cmd = c.kubectl();
        cmd.args([
            "apply",
            "--server-side",
            "--field-manager=mesh-testbed",
            "-f",
        ])
        .arg(&dir);
        run_with_stdin(cmd, "").context("kubectl apply of the Gateway API CRDs")?;
        let mut wait = c.kubectl();
        wait.args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/gateways.gateway.networking.k8s.io",
            "crd/gatewayclasses.gateway.networking.k8s.io",
        ]);
        run_with_stdin(wait, "").map(drop)
    })
}

/// Runs `f` once per cluster under `key` (serialised with the Istio installs).
fn once(c: &Cluster, key: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let mut done = c.istio.lock().unwrap_or_else(|e| e.into_inner());
    if done.contains(key) {
        return Ok(());
    }
    f()?;
    done.insert(key.to_owned());
    Ok(())
}

/// `istioctl install --set profile=ambient` of the default revision at image `tag`, with the
/// harness's injection sets (istiod, istio-cni and ztunnel; the DaemonSets on every kwok node).
pub fn install_ambient(c: &Cluster, tag: &str) -> Result<()> {
    once(c, &format!("ambient@{tag}"), || {
        let mut cmd = c.istioctl();
        cmd.args(ambient_install_args(c, tag));
        run_with_stdin(cmd, "")
            .with_context(|| format!("istioctl install --set profile=ambient ({tag})"))
            .map(drop)
    })
}

/// The `istioctl` arguments of [`install_ambient`].
pub fn ambient_install_args(c: &Cluster, tag: &str) -> Vec<String> {
    let mut args = vec![
        "install".to_owned(),
        "-y".to_owned(),
        "--set".to_owned(),
        "profile=ambient".to_owned(),
    ];
    args.extend(scenario::install_sets(c, "default", tag));
    args
}

/// `istioctl manifest generate` of [`install_ambient`]'s install.
pub fn ambient_manifest(c: &Cluster, tag: &str) -> Result<String> {
    let mut cmd = c.istioctl();
    cmd.args(["manifest", "generate", "--set", "profile=ambient"])
        .args(scenario::install_sets(c, "default", tag));
    run_with_stdin(cmd, "")
        .with_context(|| format!("istioctl manifest generate --set profile=ambient ({tag})"))
}

/// `istioctl manifest generate` of one component of [`install_ambient`]'s install at image
/// `tag` (`cni` or `ztunnel`): the ambient profile with istiod, the base chart and the other
/// node agent disabled — a component manifest, as Istio's Helm guide upgrades one chart at a
/// time.
pub fn component_manifest(c: &Cluster, tag: &str, component: &str) -> Result<String> {
    let other = match component {
        "cni" => "ztunnel",
        "ztunnel" => "cni",
        _ => bail!("component `{component}`: cni or ztunnel"),
    };
    let mut cmd = c.istioctl();
    cmd.args(["manifest", "generate", "--set", "profile=ambient"])
        .args(scenario::install_sets(c, "default", tag));
    for off in ["pilot", "base", other] {
        cmd.args(["--set", &format!("components.{off}.enabled=false")]);
    }
    run_with_stdin(cmd, "")
        .with_context(|| format!("istioctl manifest generate of {component} alone ({tag})"))
}

/// Emulates istio-cni capturing the running pods of ambient namespace `ns`: annotates them
/// `ambient.istio.io/redirection: enabled`, as its node agent does.
pub fn capture(c: &Cluster, ns: &str) -> Result<()> {
    let mut cmd = c.kubectl();
    cmd.args([
        "annotate",
        "pods",
        "-n",
        ns,
        "--overwrite",
        "--field-selector=status.phase=Running",
        "ambient.istio.io/redirection=enabled",
    ]);
    run_with_stdin(cmd, "").map(drop)
}

/// A waypoint `name` in `ns`: its Gateway (class `istio-waypoint`, `istio.io/rev=<rev>` when
/// given), and — when an installed revision manages it — what istiod's gateway controller
/// renders for it, rolled out. Returns the revision that rendered it (`None`: nothing did).
pub fn waypoint(c: &Cluster, ns: &str, name: &str, rev: Option<&str>) -> Result<Option<String>> {
    c.apply(&serde_json::to_string(&gateway_class())?)?;
    c.apply(&serde_json::to_string(&gateway(ns, name, rev))?)?;
    let Some(revision) = managing_revision(c, ns, rev)? else {
        return Ok(None);
    };
    let uid = kubectl_json(c, &["get", "gateway", "-n", ns, name])?["metadata"]["uid"]
        .as_str()
        .context("the Gateway has no uid")?
        .to_owned();
    apply_rendered(c, ns, name, &uid, &revision)?;
    c.wait_rollout(ns, &format!("deployment/{name}"))?;
    programmed(c, ns, name)?;
    Ok(Some(revision))
}

/// Applies what the gateway controller of `revision` renders for waypoint `name` (Gateway
/// `uid`), with the proxy image of the revision's injector ConfigMap, as its field manager.
fn apply_rendered(c: &Cluster, ns: &str, name: &str, uid: &str, revision: &str) -> Result<()> {
    let (client, r) = (c.client(), revision.to_owned());
    let image = block(async move { webhook::proxy_image_of(client, &r).await })?;
    let yaml: Vec<String> = rendered(ns, name, uid, revision, &image)
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut cmd = c.kubectl();
    cmd.args([
        "apply",
        "--server-side",
        "--force-conflicts",
        &format!("--field-manager={WAYPOINT_FIELD_MANAGER}"),
        "-f",
        "-",
    ]);
    run_with_stdin(cmd, &yaml.join("\n---\n")).map(drop)
}

/// The revision whose istiod would manage the waypoint (as `pkg/revisions` `IsMine` decides:
/// the Gateway's label, else the namespace's, else the default revision), if one is installed.
fn managing_revision(c: &Cluster, ns: &str, rev: Option<&str>) -> Result<Option<String>> {
    let ns_rev = kubectl_json(c, &["get", "namespace", ns])?["metadata"]["labels"]["istio.io/rev"]
        .as_str()
        .map(str::to_owned);
    let wanted = rev
        .map(str::to_owned)
        .or(ns_rev)
        .unwrap_or_else(|| "default".into());
    // A tag resolves through its webhook; a revision through its istiod Deployment.
    let hooks = kubectl_json(
        c,
        &[
            "get",
            "mutatingwebhookconfigurations",
            "-l",
            &format!("istio.io/tag={wanted}"),
        ],
    )?;
    let target = hooks["items"][0]["metadata"]["labels"]["istio.io/rev"]
        .as_str()
        .map_or(wanted, str::to_owned);
    let istiods = kubectl_json(
        c,
        &[
            "get",
            "deployments",
            "-n",
            "istio-system",
            "-l",
            "app=istiod",
        ],
    )?;
    let installed = istiods["items"].as_array().into_iter().flatten().any(|d| {
        d["metadata"]["labels"]["istio.io/rev"]
            .as_str()
            .unwrap_or("default")
            == target
    });
    Ok(installed.then_some(target))
}

fn kubectl_json(c: &Cluster, args: &[&str]) -> Result<Value> {
    let mut cmd = c.kubectl();
    cmd.args(args).args(["-o", "json"]);
    let out = run_with_stdin(cmd, "")?;
    serde_json::from_str(&out).with_context(|| format!("kubectl {args:?}: not JSON"))
}

/// The GatewayClass istiod creates for waypoints.
pub fn gateway_class() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "istio-waypoint"},
        "spec": {"controllerName": "istio.io/mesh-controller",
            "description": "The default Istio waypoint GatewayClass"},
    })
}

/// A waypoint Gateway as `istioctl waypoint generate` writes it.
pub fn gateway(ns: &str, name: &str, rev: Option<&str>) -> Value {
    let mut labels = json!({"istio.io/waypoint-for": "service"});
    if let Some(r) = rev {
        labels["istio.io/rev"] = r.into();
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
    })
}

/// What the gateway controller renders for waypoint `name` of revision `revision` with proxy
/// `image`: ServiceAccount, Deployment and Service, owned by the Gateway `uid`.
pub fn rendered(ns: &str, name: &str, uid: &str, revision: &str, image: &str) -> Vec<Value> {
    let owner = json!([{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "name": name, "uid": uid}]);
    let mut infra = json!({"istio.io/waypoint-for": "service",
        "gateway.networking.k8s.io/gateway-name": name,
        "gateway.networking.k8s.io/gateway-class-name": "istio-waypoint"});
    let meta = |kind_labels: Value| {
        json!({"name": name, "namespace": ns,
        "labels": kind_labels, "ownerReferences": owner})
    };
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(infra.clone())});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(infra.clone()),
        "spec": {"type": "ClusterIP", "ipFamilyPolicy": "PreferDualStack",
            "selector": {"gateway.networking.k8s.io/gateway-name": name},
            "ports": [{"name": "status-port", "port": 15021, "protocol": "TCP", "appProtocol": "tcp"},
                      {"name": "mesh", "port": 15008, "protocol": "TCP", "appProtocol": "all"}]}});
    infra["gateway.istio.io/managed"] = WAYPOINT_CONTROLLER_LABEL.into();
    let mut pod_labels = infra.clone();
    for (k, v) in [
        ("sidecar.istio.io/inject", "false"),
        ("istio.io/dataplane-mode", "none"),
        ("service.istio.io/canonical-name", name),
        ("service.istio.io/canonical-revision", "latest"),
    ] {
        pod_labels[k] = v.into();
    }
    let istiod = if revision == "default" {
        "istiod".to_owned()
    } else {
        format!("istiod-{revision}")
    };
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(infra),
    "spec": {
        "selector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": name}},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": {"istio.io/rev": revision,
                "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020",
                "prometheus.io/scrape": "true"}},
            "spec": {"serviceAccountName": name, "containers": [{
                "name": "istio-proxy", "image": image,
                "args": ["proxy", "waypoint", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                    "--serviceCluster", format!("{name}.$(POD_NAMESPACE)")],
                "env": [{"name": "CA_ADDR", "value": format!("{istiod}.istio-system.svc:15012")},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "ISTIO_META_WORKLOAD_NAME", "value": name}],
                "ports": [{"containerPort": 15020, "name": "metrics", "protocol": "TCP"},
                    {"containerPort": 15021, "name": "status-port", "protocol": "TCP"},
                    {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15},
            }]},
        },
    }});
    vec![sa, deployment, service]
}

/// Reports the Gateway `Accepted` and `Programmed`, as istiod does once it is deployed.
fn programmed(c: &Cluster, ns: &str, name: &str) -> Result<()> {
    let now = chrono_now();
    let cond = |t: &str| {
        json!({"type": t, "status": "True", "reason": t, "message": "Resource programmed, assigned to service(s)",
        "lastTransitionTime": now, "observedGeneration": 1})
    };
    let status = json!({"status": {"conditions": [cond("Accepted"), cond("Programmed")]}});
    let mut cmd = c.kubectl();
    cmd.args([
        "patch",
        "gateway",
        "-n",
        ns,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
    ])
    .arg(status.to_string());
    run_with_stdin(cmd, "").map(drop)
}

/// The two-revision ambient mesh of the data-plane and uninstall tests: the Gateway API CRDs;
/// the default revision of the old release installed with `profile=ambient` (istiod, istio-cni
/// and ztunnel on every node; ztunnel talks to `istiod`); the new release's canary
/// ([`scenario::canary_revision`], istiod only); namespace `shop` in ambient mode
/// (`istio.io/use-waypoint=waypoint`) with [`scenario::sample_app`] (2 replicas, captured) and
/// waypoint `shop/waypoint` rendered by `default`; namespace `legacy` with sidecars
/// (`istio-injection=enabled`, 1 replica). Once per cluster.
pub fn canary_mesh(c: &Cluster) -> Result<()> {
    install_gateway_api(c)?;
    install_ambient(c, scenario::old_tag())?;
    scenario::install_canary(c, scenario::canary_revision())?;
    once(c, "ambient-canary-mesh", || {
        for ns in ["shop", "legacy"] {
            c.apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
            ))?;
        }
        scenario::label_namespace(
            c,
            "shop",
            &[
                ("istio.io/dataplane-mode", "ambient"),
                ("istio.io/use-waypoint", "waypoint"),
            ],
        )?;
        scenario::label_namespace(c, "legacy", &[("istio-injection", "enabled")])?;
        scenario::sample_app(c, "shop", 2)?;
        capture(c, "shop")?;
        let rev = waypoint(c, "shop", "waypoint", None)?;
        if rev.as_deref() != Some("default") {
            bail!("the default revision did not render shop/waypoint: {rev:?}");
        }
        scenario::sample_app(c, "legacy", 1)
    })
}

/// Emulates istiod's gateway controller **running**: until stopped, it re-renders every
/// waypoint whose managing revision (the Gateway's `istio.io/rev`, else its namespace's, else
/// `default`, as `IsMine` decides) differs from the revision that rendered its Deployment (the
/// pod template's `istio.io/rev` annotation), as the controller of the new revision does when a
/// Gateway is relabelled. [`waypoint`] is the one-shot form. Stop it with
/// [`WaypointController::stop`], which returns what it re-rendered (`ns/name@revision`).
pub struct WaypointController {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl WaypointController {
    /// Starts polling the cluster's waypoints every 300 ms.
    pub fn start(c: &'static Cluster) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut rendered = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                // A failed pass (a conflict, a rollout still under way) is retried on the next.
                if let Ok(mut done) = reconcile_waypoints(c) {
                    rendered.append(&mut done);
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            rendered
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops it; returns the waypoints it re-rendered, in order (`ns/name@revision`).
    pub fn stop(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for WaypointController {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One pass of the emulated gateway controller: re-renders each waypoint whose Deployment was
/// rendered by another revision than the one that manages it now.
pub fn reconcile_waypoints(c: &Cluster) -> Result<Vec<String>> {
    let gateways = kubectl_json(c, &["get", "gateways", "-A"])?;
    let mut done = Vec::new();
    for g in gateways["items"].as_array().into_iter().flatten() {
        if g["spec"]["gatewayClassName"] != "istio-waypoint" {
            continue;
        }
        let (ns, name) = (
            g["metadata"]["namespace"].as_str().unwrap_or_default(),
            g["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let label = g["metadata"]["labels"]["istio.io/rev"].as_str();
        let Some(revision) = managing_revision(c, ns, label)? else {
            continue;
        };
        let deployment = kubectl_json(
            c,
            &[
                "get",
                "deployments",
                "-n",
                ns,
                "-l",
                &format!("gateway.networking.k8s.io/gateway-name={name}"),
            ],
        )?;
        let by =
            deployment["items"][0]["spec"]["template"]["metadata"]["annotations"]["istio.io/rev"]
                .as_str();
        if by == Some(revision.as_str()) {
            continue;
        }
        let uid = g["metadata"]["uid"]
            .as_str()
            .context("the Gateway has no uid")?;
        apply_rendered(c, ns, name, uid, &revision)?;
        programmed(c, ns, name)?;
        done.push(format!("{ns}/{name}@{revision}"));
    }
    Ok(done)
}

/// The current UTC time as RFC 3339 (`2026-12-04T10:00:00Z`), from the system clock.
fn chrono_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let t = out.trim();
    if t.is_empty() {
        "2026-01-01T00:00:00Z".to_owned()
    } else {
        t.to_owned()
    }
}

/// Checks that DaemonSet `name` of `istio-system` has rolled out on every node of the cluster:
/// one ready pod per node, none terminating, each running an image of tag `tag` (variant
/// allowed: `1.31.1-distroless`). Returns the nodes, sorted.
pub fn rolled_on_every_node(c: &Cluster, name: &str, tag: &str) -> Result<Vec<String>> {
    c.wait_rollout("istio-system", &format!("daemonset/{name}"))?;
    let ds = kubectl_json(c, &["get", "daemonset", "-n", "istio-system", name])?;
    let selector: Vec<String> = ds["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("DaemonSet without matchLabels")?
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let pods = kubectl_json(
        c,
        &[
            "get",
            "pods",
            "-n",
            "istio-system",
            "-l",
            &selector.join(","),
        ],
    )?;
    let nodes = kubectl_json(c, &["get", "nodes"])?;
    let mut all: Vec<String> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    all.sort();
    let mut on: Vec<String> = Vec::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        let pod = p["metadata"]["name"].as_str().unwrap_or_default();
        if p["metadata"]["deletionTimestamp"].is_string() {
            bail!("{name}: pod {pod} is still terminating");
        }
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let image = p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        let tagged = image.ends_with(&format!(":{tag}")) || image.contains(&format!(":{tag}-"));
        if !ready || !tagged {
            bail!("{name}: pod {pod} ready={ready} runs {image}, not tag {tag}");
        }
        on.push(
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    on.sort();
    if on != all || all.is_empty() {
        bail!("{name}: pods on {on:?}, nodes {all:?}");
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_the_gateway_controller_renders() {
        let docs = rendered(
            "shop",
            "waypoint",
            "uid-1",
            "1-30-3",
            "docker.io/istio/proxyv2:1.30.3",
        );
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ServiceAccount", "Deployment", "Service"]);
        let d = &docs[1];
        let pod = &d["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["gateway.istio.io/managed"],
            WAYPOINT_CONTROLLER_LABEL
        );
        assert_eq!(
            pod["metadata"]["labels"]["sidecar.istio.io/inject"],
            "false"
        );
        assert_eq!(pod["metadata"]["annotations"]["istio.io/rev"], "1-30-3");
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            "docker.io/istio/proxyv2:1.30.3"
        );
        assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["value"],
            "istiod-1-30-3.istio-system.svc:15012"
        );
    }
}
