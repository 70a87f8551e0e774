//! The injector: an HTTPS admission webhook on `127.0.0.1` that stands in for istiod's
//! `/inject` and `/validate` endpoints (TESTBED.md §6.3 option 1). Every `istioctl install`
//! points its webhook configurations here with `values.istiodRemote.injectionURL` and
//! `values.base.validationURL`.
//!
//! Paths: `/inject/rev/<rev>` injects for revision `<rev>` (`default` reads ConfigMap
//! `istio-sidecar-injector`, any other `istio-sidecar-injector-<rev>`, live per request, so an
//! in-place upgrade changes the proxies injected afterwards); `/validate` allows everything.
//! It runs on the harness runtime and stops when the [`Injector`] is dropped.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::{inject, pki::Pki, rt};

/// The Istio namespace the injector reads ConfigMaps from.
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// A running injector webhook.
#[derive(Debug)]
pub struct Injector {
    port: u16,
    ca_bundle: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Injector {
    /// Binds `127.0.0.1:0` and serves on the harness runtime.
    pub fn start(pki: &Pki, client: Client) -> Result<Self> {
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(pki)?));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the injector")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = oneshot::channel();
        rt::runtime().spawn(serve(listener, acceptor, client, rx));
        let ca_bundle = B64.encode(&pki.ca_pem);
        Ok(Self {
            port,
            ca_bundle,
            stop: Some(tx),
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Base64 of the CA PEM that signed the injector's certificate (a webhook `caBundle`).
    pub fn ca_bundle(&self) -> &str {
        &self.ca_bundle
    }

    /// `https://127.0.0.1:<port>/inject/rev/<revision>`.
    pub fn injection_url(&self, revision: &str) -> String {
        format!("https://127.0.0.1:{}/inject/rev/{revision}", self.port)
    }

    /// `https://127.0.0.1:<port>/validate`.
    pub fn validation_url(&self) -> String {
        format!("https://127.0.0.1:{}/validate", self.port)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(pki.webhook_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the webhook certificate")?;
    let key = PrivateKeyDer::from_pem_slice(pki.webhook_key_pem.as_bytes())
        .context("parsing the webhook key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

async fn serve(
    listener: std::net::TcpListener,
    tls: TlsAcceptor,
    client: Client,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let conn = tokio::select! {
            _ = &mut stop => return,
            c = listener.accept() => c,
        };
        let Ok((tcp, _)) = conn else { continue };
        let (tls, client) = (tls.clone(), client.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(req, client.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    client: Client,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = if path.starts_with("/validate") {
        verdict(&review, Ok(None))
    } else if let Some(rev) = revision_of(&path) {
        let outcome = injection(&review["request"], &rev, client).await;
        verdict(&review, outcome)
    } else {
        return Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found")))
            .unwrap_or_default());
    };
    let bytes = serde_json::to_vec(&response).unwrap_or_default();
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_default())
}

/// `/inject/rev/<rev>` → `<rev>`; `/inject` (or any other `/inject…`) → `default`.
fn revision_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/inject")?;
    let rev = rest
        .strip_prefix("/rev/")
        .map(|r| r.trim_end_matches('/'))
        .unwrap_or("");
    Some(if rev.is_empty() {
        "default".to_owned()
    } else {
        rev.to_owned()
    })
}

/// The patch for one AdmissionRequest, `None` when the pod is left alone.
async fn injection(request: &Value, revision: &str, client: Client) -> Result<Option<Vec<Value>>> {
    let pod = &request["object"];
    if inject::skip(pod) {
        return Ok(None);
    }
    let namespace = request["namespace"].as_str().unwrap_or("default");
    let image = proxy_image_of(client, revision).await?;
    Ok(Some(inject::patch(pod, namespace, revision, &image)))
}

/// Reads the revision's injector ConfigMap live and derives the proxy image.
pub async fn proxy_image_of(client: Client, revision: &str) -> Result<String> {
    let name = injector_configmap(revision);
    let cm = Api::<ConfigMap>::namespaced(client, ISTIO_NAMESPACE)
        .get(&name)
        .await
        .with_context(|| {
            format!("no injector ConfigMap {ISTIO_NAMESPACE}/{name} for revision {revision}")
        })?;
    let raw = cm
        .data
        .as_ref()
        .and_then(|d| d.get("values"))
        .context("injector ConfigMap has no `values`")?;
    let values: Value = serde_json::from_str(raw).context("injector `values` is not JSON")?;
    inject::proxy_image(&values).context("injector `values` lacks global.hub/global.tag")
}

/// `istio-sidecar-injector` for `default`, else `istio-sidecar-injector-<rev>`.
pub fn injector_configmap(revision: &str) -> String {
    if revision == "default" {
        "istio-sidecar-injector".to_owned()
    } else {
        format!("istio-sidecar-injector-{revision}")
    }
}

fn verdict(review: &Value, outcome: Result<Option<Vec<Value>>>) -> Value {
    let uid = review["request"]["uid"].clone();
    let response = match outcome {
        Ok(None) => json!({"uid": uid, "allowed": true}),
        Ok(Some(ops)) => {
            let patch = B64.encode(serde_json::to_vec(&ops).unwrap_or_default());
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch})
        }
        Err(e) => json!({"uid": uid, "allowed": false,
            "status": {"code": 500, "message": format!("mesh-testbed injector: {e:#}")}}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_from_paths() {
        assert_eq!(revision_of("/inject/rev/1-30-3").unwrap(), "1-30-3");
        assert_eq!(revision_of("/inject").unwrap(), "default");
        assert_eq!(revision_of("/inject/rev/default").unwrap(), "default");
        assert!(revision_of("/other").is_none());
        assert_eq!(
            injector_configmap("canary"),
            "istio-sidecar-injector-canary"
        );
    }
}
