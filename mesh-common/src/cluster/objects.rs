//! Objects of any kind, by reference: get, server-side apply (field manager `kubectl-mesh`),
//! delete with a UID precondition, merge patches, replace and create — each optionally as a
//! server-side dry run, each retried on transient errors ([`super::retry`]). Kinds are resolved
//! through discovery once each.

use std::{collections::HashMap, sync::Arc};

use kube::{
    Api,
    api::{
        DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
        Preconditions, PropagationPolicy,
    },
    discovery::{ApiResource, Scope},
};
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use super::{Connection, Error, error::FieldConflict, retry::retry};
use crate::ObjRef;

/// GETs of single objects in flight at once ([`Objects::get_all`]).
pub const GETS_IN_FLIGHT: usize = 8;

/// Field manager of every change kubectl-mesh makes.
pub const FIELD_MANAGER: &str = "kubectl-mesh";

/// How often, and how many times, a restore looks again at an object still being deleted
/// before it creates it again (two minutes in all: a CRD's cleanup of its resources).
const TERMINATING_POLL: std::time::Duration = std::time::Duration::from_millis(500);
const TERMINATING_POLLS: u32 = 240;

/// What a delete found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted (or, in a dry run, would be).
    Deleted,
    /// Already gone.
    Gone,
    /// The name now belongs to another object (a different UID): left alone.
    Replaced,
}

/// A kind as discovery resolved it: its resource and whether it is namespaced.
type Resolved = (ApiResource, bool);

/// Reads and changes objects of any kind.
pub struct Objects {
    conn: Connection,
    /// One cell per kind: distinct kinds are discovered concurrently, each only once.
    kinds: Mutex<HashMap<GroupVersionKind, Arc<OnceCell<Resolved>>>>,
}

fn gvk(r: &ObjRef) -> GroupVersionKind {
    GroupVersionKind::gvk(r.group(), r.version(), &r.kind)
}

fn to_value(obj: DynamicObject, r: &ObjRef) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("apiVersion".into(), r.api_version.clone().into());
        m.insert("kind".into(), r.kind.clone().into());
    }
    v
}

impl Objects {
    /// Objects over a connection.
    pub fn new(conn: Connection) -> Self {
        Self {
            conn,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn err(&self, verb: &'static str, r: &ObjRef, e: kube::Error) -> Error {
        self.conn.error(verb, r, e)
    }

    async fn api(&self, r: &ObjRef) -> Result<Api<DynamicObject>, Error> {
        let gvk = gvk(r);
        let cell = self
            .kinds
            .lock()
            .await
            .entry(gvk.clone())
            .or_default()
            .clone();
        let (ar, namespaced) = cell.get_or_try_init(|| self.discover(r, &gvk)).await?;
        let c = self.conn.client.clone();
        Ok(match (&r.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(c, ns, ar),
            _ => Api::all_with(c, ar),
        })
    }

    async fn discover(&self, r: &ObjRef, gvk: &GroupVersionKind) -> Result<Resolved, Error> {
        let not_served = || Error::NotServed {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
        };
        match retry(|| kube::discovery::pinned_kind(&self.conn.client, gvk)).await {
            Ok((ar, caps)) => Ok((ar, caps.scope == Scope::Namespaced)),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(not_served()),
            // kube reports a kind missing from a served group this way.
            Err(kube::Error::Discovery(_)) => Err(not_served()),
            Err(e) => Err(self.err("discover", r, e)),
        }
    }

    /// Gets an object; `None` when it does not exist.
    pub async fn get(&self, r: &ObjRef) -> Result<Option<Value>, Error> {
        let api = self.api(r).await?;
        let got = match retry(|| api.get_opt(&r.name)).await {
            Ok(got) => got,
            // A 404 that is not an object's: the kind stopped being served (its CRD was
            // deleted since discovery). Forget it, so it is discovered again when it is back.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.kinds.lock().await.remove(&gvk(r));
                return Err(Error::NotServed {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                });
            }
            Err(e) => return Err(self.err("read", r, e)),
        };
        Ok(got.map(|o| to_value(o, r)))
    }

    /// Gets many objects, [`GETS_IN_FLIGHT`] at a time; one result per reference, in order. A
    /// kind the server does not serve (its CRD not installed yet) reads as absent when
    /// `unserved_is_absent`.
    pub async fn get_all(
        &self,
        refs: &[ObjRef],
        unserved_is_absent: bool,
    ) -> Vec<Result<Option<Value>, Error>> {
        use futures::StreamExt;
        futures::stream::iter(refs)
            .map(|r| async move {
                match self.get(r).await {
                    Err(Error::NotServed { .. }) if unserved_is_absent => Ok(None),
                    other => other,
                }
            })
            .buffered(GETS_IN_FLIGHT)
            .collect()
            .await
    }

    /// Server-side applies an object. Without `force`, fields another manager owns are a
    /// [`Error::Conflict`] listing them.
    pub async fn apply(&self, obj: &Value, dry_run: bool, force: bool) -> Result<Value, Error> {
        let r = ObjRef::of(obj)
            .ok_or_else(|| Error::Unexpected("object without apiVersion, kind or name".into()))?;
        let api = self.api(&r).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        params.dry_run = dry_run;
        let patch = Patch::Apply(obj);
        let out = retry(|| api.patch(&r.name, &params, &patch))
            .await
            .map_err(|e| conflict(&r, &e).unwrap_or_else(|| self.err("apply", &r, e)))?;
        Ok(to_value(out, &r))
    }

    /// Deletes an object in the foreground. With `uid`, only that very object: a newer object
    /// of the same name is [`Deleted::Replaced`] and left alone.
    pub async fn delete(
        &self,
        r: &ObjRef,
        uid: Option<&str>,
        dry_run: bool,
    ) -> Result<Deleted, Error> {
        let api = self.api(r).await?;
        let params = DeleteParams {
            dry_run,
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: uid.map(|u| Preconditions {
                uid: Some(u.to_owned()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match retry(|| api.delete(&r.name, &params)).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Gone),
            Err(kube::Error::Api(s)) if s.code == 409 && uid.is_some() => Ok(Deleted::Replaced),
            Err(e) => Err(self.err("delete", r, e)),
        }
    }

    /// Applies a JSON merge patch (labels, the restart annotation).
    pub async fn merge_patch(
        &self,
        r: &ObjRef,
        patch: &Value,
        dry_run: bool,
        verb: &'static str,
    ) -> Result<Value, Error> {
        let api = self.api(r).await?;
        let mut params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        params.dry_run = dry_run;
        let patch = Patch::Merge(patch);
        let out = retry(|| api.patch(&r.name, &params, &patch))
            .await
            .map_err(|e| self.err(verb, r, e))?;
        Ok(to_value(out, r))
    }

    /// Makes a live object equal to `obj` (a PUT over its current resourceVersion), or creates
    /// it when it is gone — once it is gone, if it is being deleted. Used to restore backups.
    pub async fn restore(&self, obj: &Value, dry_run: bool) -> Result<Value, Error> {
        let r = ObjRef::of(obj)
            .ok_or_else(|| Error::Unexpected("object without apiVersion, kind or name".into()))?;
        let api = self.api(&r).await?;
        let mut conflicts = 0;
        let mut terminating = 0;
        while conflicts < 5 {
            let live = self.get(&r).await?;
            if live
                .as_ref()
                .is_some_and(|l| l.pointer("/metadata/deletionTimestamp").is_some())
            {
                // Being deleted (a change stopped right after deleting it): it can only come
                // back once it is gone.
                terminating += 1;
                if dry_run || terminating > TERMINATING_POLLS {
                    return Err(Error::Unexpected(format!(
                        "{r} is still being deleted and cannot be put back yet"
                    )));
                }
                tokio::time::sleep(TERMINATING_POLL).await;
                continue;
            }
            let Some(live) = live else {
                let typed: DynamicObject = serde_json::from_value(obj.clone())
                    .map_err(|e| Error::Unexpected(e.to_string()))?;
                let pp = PostParams {
                    dry_run,
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                };
                match retry(|| api.create(&pp, &typed)).await {
                    Ok(o) => return Ok(to_value(o, &r)),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        conflicts += 1;
                        continue;
                    }
                    Err(e) => return Err(self.err("create", &r, e)),
                }
            };
            let mut want = obj.clone();
            if let Some(meta) = want.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "resourceVersion".into(),
                    live.pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
            let typed: DynamicObject =
                serde_json::from_value(want).map_err(|e| Error::Unexpected(e.to_string()))?;
            let pp = PostParams {
                dry_run,
                field_manager: Some(FIELD_MANAGER.to_owned()),
            };
            match retry(|| api.replace(&r.name, &pp, &typed)).await {
                Ok(o) => return Ok(to_value(o, &r)),
                // Changed meanwhile (a controller wrote its status): read it again.
                Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                Err(e) => return Err(self.err("restore", &r, e)),
            }
        }
        Err(Error::Unexpected(format!(
            "{r} kept changing while it was being restored"
        )))
    }

    /// Lists objects of a kind (metadata and all), all namespaces or one, by label selector.
    pub async fn list(&self, r: &ObjRef, selector: &str) -> Result<Vec<Value>, Error> {
        let api = self.api(r).await?;
        let params = kube::api::ListParams::default().labels(selector);
        let items = super::fetch::list_all(api, params)
            .await
            .map_err(|e| self.err("list", r, e))?;
        Ok(items.into_iter().map(|o| to_value(o, r)).collect())
    }
}

/// A server-side apply conflict, as the fields and managers the server named.
fn conflict(r: &ObjRef, e: &kube::Error) -> Option<Error> {
    let kube::Error::Api(s) = e else { return None };
    if s.code != 409 {
        return None;
    }
    let causes = s
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    let conflicts: Vec<FieldConflict> = causes
        .iter()
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| FieldConflict {
            field: c.field.clone(),
            manager: manager_of(&c.message),
        })
        .collect();
    (!conflicts.is_empty()).then(|| Error::Conflict {
        object: Box::new(r.clone()),
        conflicts,
    })
}

/// `conflict with "istio-operator" using apps/v1` → `istio-operator`.
fn manager_of(message: &str) -> String {
    message
        .split('"')
        .nth(1)
        .map_or_else(|| message.to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_name_the_manager() {
        assert_eq!(
            manager_of(r#"conflict with "istio-operator" using apps/v1"#),
            "istio-operator"
        );
        assert_eq!(manager_of("odd"), "odd");
    }
}
