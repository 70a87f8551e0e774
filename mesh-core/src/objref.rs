//! [`ObjRef`]: a reference to one Kubernetes object (apiVersion, kind, namespace, name). Plain
//! data shared by planners, plans of changes, backups and reports.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A reference to one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Namespace, for namespaced objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjRef {
    /// A reference from its parts.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// A reference built from an object's `apiVersion`, `kind` and metadata.
    pub fn of(obj: &Value) -> Option<Self> {
        Some(Self {
            api_version: obj.get("apiVersion")?.as_str()?.to_owned(),
            kind: obj.get("kind")?.as_str()?.to_owned(),
            namespace: obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            name: obj.pointer("/metadata/name")?.as_str()?.to_owned(),
        })
    }

    /// A reference to a typed object.
    pub fn typed<
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    >(
        obj: &K,
    ) -> Self {
        let m = obj.metadata();
        Self {
            api_version: K::API_VERSION.to_owned(),
            kind: K::KIND.to_owned(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
        }
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// The API version without the group (`v1`).
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, v)| v)
    }

    /// Whether two references name the same object, whatever the API version.
    pub fn same_object(&self, other: &ObjRef) -> bool {
        self.group() == other.group()
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl std::fmt::Display for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_references_from_objects() {
        let v = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system"}});
        let r = ObjRef::of(&v).unwrap();
        assert_eq!(r.to_string(), "Deployment/istio-system/istiod");
        assert_eq!((r.group(), r.version()), ("apps", "v1"));
        let cm = ObjRef::new("v1", "ConfigMap", None, "x");
        assert_eq!((cm.group(), cm.version()), ("", "v1"));
        assert!(ObjRef::of(&serde_json::json!({"kind": "X"})).is_none());
        let beta = ObjRef::new("apps/v1beta1", "Deployment", Some("istio-system"), "istiod");
        assert!(beta.same_object(&r));
    }
}
