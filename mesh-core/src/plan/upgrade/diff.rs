//! Field-level summary of what an upgrade changes in an object (stub until the real module
//! lands).

use serde::Serialize;
use serde_json::Value;

/// One field that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// Where.
    pub field: String,
    /// Before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// After.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What changes in one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    /// The fields that matter.
    pub changes: Vec<FieldChange>,
    /// Every other changed path.
    pub other: Vec<String>,
}

impl ObjectDiff {
    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.other.is_empty()
    }
}

fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            m.remove(k);
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    v
}

/// Same object, ignoring server-owned fields.
pub fn same(before: &Value, after: &Value) -> bool {
    strip(before) == strip(after)
}

/// What changes.
pub fn diff(before: &Value, after: &Value) -> ObjectDiff {
    if same(before, after) {
        ObjectDiff::default()
    } else {
        ObjectDiff {
            changes: Vec::new(),
            other: vec!["(changed)".into()],
        }
    }
}

/// Manifest laid over live.
pub fn overlay(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut out = l.clone();
            for (k, v) in d {
                let merged = l.get(k).map_or_else(|| v.clone(), |lv| overlay(lv, v));
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, d) => d.clone(),
    }
}
