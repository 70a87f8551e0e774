//! Changing the cluster: server-side apply (field manager `kubectl-mesh`), delete, get and wait,
//! on objects given as JSON values or references. Every call can run as a server-side dry run,
//! so a plan is checked by the API server before anything changes.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PropagationPolicy},
    discovery::{ApiResource, Scope},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use super::Connection;
pub use crate::ObjRef;

/// The group/version/kind of a reference, for discovery.
fn gvk(r: &ObjRef) -> GroupVersionKind {
    GroupVersionKind::gvk(r.group(), r.version(), &r.kind)
}

/// Field manager of every change kubectl-mesh makes.
pub const FIELD_MANAGER: &str = "kubectl-mesh";

/// Applies, deletes and reads objects of any kind, resolving kinds through discovery once each.
pub struct Executor {
    conn: Connection,
    kinds: Mutex<HashMap<GroupVersionKind, (ApiResource, bool)>>,
    /// Server-side dry run: the API server validates, nothing is stored.
    pub dry_run: bool,
}

impl Executor {
    /// An executor over a connection.
    pub fn new(conn: Connection, dry_run: bool) -> Self {
        Self {
            conn,
            kinds: Mutex::new(HashMap::new()),
            dry_run,
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    async fn api(&self, r: &ObjRef) -> anyhow::Result<Api<DynamicObject>> {
        let gvk = gvk(r);
        let mut kinds = self.kinds.lock().await;
        if !kinds.contains_key(&gvk) {
            let (ar, caps) = kube::discovery::pinned_kind(&self.conn.client, &gvk)
                .await
                .with_context(|| {
                    format!("the API server does not serve {} {}", r.api_version, r.kind)
                })?;
            kinds.insert(gvk.clone(), (ar, caps.scope == Scope::Namespaced));
        }
        let (ar, namespaced) = kinds[&gvk].clone();
        let c = self.conn.client.clone();
        Ok(match (&r.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(c, ns, &ar),
            _ => Api::all_with(c, &ar),
        })
    }

    /// Server-side applies an object (forcing ownership of the fields it sets).
    pub async fn apply(&self, obj: &Value) -> anyhow::Result<Value> {
        let r = ObjRef::of(obj).context("object without apiVersion, kind or name")?;
        let api = self.api(&r).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = self.dry_run;
        let out = api
            .patch(&r.name, &params, &Patch::Apply(obj))
            .await
            .with_context(|| format!("cannot apply {r}"))?;
        Ok(serde_json::to_value(out)?)
    }

    /// Gets an object; `None` when it does not exist.
    pub async fn get(&self, r: &ObjRef) -> anyhow::Result<Option<Value>> {
        let api = self.api(r).await?;
        let got = api
            .get_opt(&r.name)
            .await
            .with_context(|| format!("cannot read {r}"))?;
        Ok(got.map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            if let Value::Object(m) = &mut v {
                m.insert("apiVersion".into(), r.api_version.clone().into());
                m.insert("kind".into(), r.kind.clone().into());
            }
            v
        }))
    }

    /// Deletes an object in the foreground; `false` when it was already gone.
    pub async fn delete(&self, r: &ObjRef) -> anyhow::Result<bool> {
        let api = self.api(r).await?;
        let params = DeleteParams {
            dry_run: self.dry_run,
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        match api.delete(&r.name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot delete {r}"))),
        }
    }

    /// Waits until every object is gone; returns those still present at the timeout.
    pub async fn wait_gone(
        &self,
        refs: &[ObjRef],
        timeout: Duration,
    ) -> anyhow::Result<Vec<ObjRef>> {
        if self.dry_run {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut left: Vec<ObjRef> = refs.to_vec();
        loop {
            let mut still = Vec::new();
            for r in left {
                if self.get(&r).await?.is_some() {
                    still.push(r);
                }
            }
            if still.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(still);
            }
            left = still;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The cluster's identity for backups: server URL and the `kube-system` namespace UID.
    pub async fn identity(&self) -> anyhow::Result<ClusterIdentity> {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.conn.client.clone());
        let ks = ns
            .get("kube-system")
            .await
            .context("cannot read namespace kube-system")?;
        Ok(ClusterIdentity {
            server: self.conn.server.clone(),
            context: self.conn.context.clone(),
            uid: ks.metadata.uid.unwrap_or_default(),
        })
    }
}

/// Which cluster a backup belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// API server URL.
    pub server: String,
    /// Context used.
    pub context: String,
    /// UID of the `kube-system` namespace (stable for a cluster's life).
    pub uid: String,
}
