//! Field-level summary of what an upgrade changes in one object — the "defaults changed between
//! versions" alert.
//!
//! Owns [`diff`]: the fields a platform engineer reads (images, env vars, replicas, resources,
//! mesh config keys, injector values and templates, the installer's Helm values — where a
//! chart default that changes shows up —, webhook endpoints, revision labels) as
//! [`FieldChange`]s, and the paths of every other changed leaf; [`same`]: equality ignoring what
//! the server owns; [`overlay`]: a manifest object laid over the live one, for offline planning.
//! Pure: no I/O. Never prints Secret data or CA bundles, and never a whole injector template.

use std::{
    collections::{BTreeMap, BTreeSet},
    mem::discriminant,
};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::inventory::REV_LABEL;

/// Metadata fields the server owns.
const SERVER_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];
/// Annotations the server or kubectl maintain.
const SERVER_ANNOTATIONS: [&str; 2] = [
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
];
/// Labels whose changes matter.
const KEY_LABELS: [&str; 4] = [
    REV_LABEL,
    "operator.istio.io/version",
    "operator.istio.io/managed",
    "operator.istio.io/component",
];
/// How a field of a named element is reported.
enum How {
    /// As a whole, rendered.
    Whole,
    /// Leaf by leaf, shown so.
    Leaves(Show),
    /// Env vars by name.
    Env,
    /// An OpenAPI schema: each changed leaf as a path of property names, under the rule's first
    /// key ([`schema_path`]).
    Schema,
}
/// A field of a named element (its keys) and how it is reported.
type Rule = (&'static [&'static str], How);
/// Container fields that matter.
const CONTAINER_FIELDS: [Rule; 3] = [
    (&["image"], How::Whole),
    (&["env"], How::Env),
    (&["resources"], How::Leaves(render)),
];
/// Webhook fields that matter; the CA bundle is never shown.
const WEBHOOK_FIELDS: [Rule; 6] = [
    (&["clientConfig", "caBundle"], How::Leaves(ca_bundle)),
    (&["clientConfig", "url"], How::Whole),
    (&["clientConfig", "service"], How::Whole),
    (&["failurePolicy"], How::Whole),
    (&["namespaceSelector"], How::Whole),
    (&["objectSelector"], How::Whole),
];
/// CRD version fields that matter; the schema is named by property.
const CRD_VERSION_FIELDS: [Rule; 4] = [
    (&["served"], How::Whole),
    (&["storage"], How::Whole),
    (&["deprecated"], How::Whole),
    (&["schema", "openAPIV3Schema"], How::Schema),
];
/// Longest rendered value, in characters.
const MAX_RENDERED: usize = 80;
/// Name of the injector ConfigMap (of the default revision).
const INJECTOR: &str = "istio-sidecar-injector";
/// Name of the ConfigMap where istioctl's installer records the Helm values (default revision).
const VALUES: &str = "values";
/// Its keys: the values merged with the charts' defaults, and as given.
const VALUES_KEYS: [&str; 2] = ["merged-values", "original-values"];
/// What a CA bundle renders as.
const CA_BUNDLE: &str = "(CA bundle)";
/// The value of an env var with neither `value` nor `valueFrom`.
static EMPTY: Value = Value::String(String::new());

/// One field that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// Where, in words a platform engineer reads: `containers[discovery].image`,
    /// `containers[discovery].env.PILOT_TRACE_SAMPLING`, `replicas`,
    /// `mesh.defaultConfig.holdApplicationUntilProxyStarts`, `values.global.proxy.image`,
    /// `templates.sidecar`, `webhooks[rev.namespace.sidecar-injector.istio.io].clientConfig.url`.
    pub field: String,
    /// Value before (None: absent), rendered compactly (strings as is, others as compact JSON,
    /// longer than 80 chars cut with `…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Value after (None: removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What changes in one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    /// The fields that matter, in a stable order.
    pub changes: Vec<FieldChange>,
    /// Every other changed leaf path (JSON-pointer-like, e.g. `spec.ports[0].port`), sorted,
    /// for a count and a short list.
    pub other: Vec<String>,
}

impl ObjectDiff {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.other.is_empty()
    }
}

/// Whether two versions of an object are the same, ignoring what the server owns:
/// metadata.managedFields, resourceVersion, generation, uid, creationTimestamp, selfLink, the
/// `deployment.kubernetes.io/revision` and `kubectl.kubernetes.io/last-applied-configuration`
/// annotations, and `status`.
pub fn same(before: &Value, after: &Value) -> bool {
    strip(before) == strip(after)
}

/// What changes from `before` (the live object) to `after` (the server's dry-run result, or
/// `overlay(live, manifest_object)` when planning offline).
pub fn diff(before: &Value, after: &Value) -> ObjectDiff {
    let (mut b, mut a) = (strip(before), strip(after));
    let kind = str_at(after, "/kind").or_else(|| str_at(before, "/kind"));
    let name = str_at(after, "/metadata/name").or_else(|| str_at(before, "/metadata/name"));
    let name = name.unwrap_or_default();
    let mut out = Out::default();
    match kind.unwrap_or_default() {
        "Deployment" | "DaemonSet" | "StatefulSet" => workload(&mut b, &mut a, &mut out),
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            webhooks(&mut b, &mut a, &mut out);
        }
        "ConfigMap" if is_injector(name) => injector(&mut b, &mut a, &mut out),
        "ConfigMap" if is_mesh_config(name, &b, &a) => mesh_config(&mut b, &mut a, &mut out),
        "ConfigMap" if is_values(name, &b, &a) => values(&mut b, &mut a, &mut out),
        "CustomResourceDefinition" => crd(&mut b, &mut a, &mut out),
        _ => {}
    }
    out.rest(&b, &a);
    out.finish()
}

/// Lists whose members the API server fills with defaults (a container's
/// `terminationMessagePath`, a port's `protocol`, a webhook's `timeoutSeconds`): merged by
/// `name` in [`overlay`]. Other lists — a CRD's versions and their schemas, which the server
/// stores as given — are replaced whole, so a field the manifest drops from them is a change.
const MERGED_BY_NAME: [&str; 8] = [
    "containers",
    "initContainers",
    "ephemeralContainers",
    "env",
    "ports",
    "volumes",
    "volumeMounts",
    "webhooks",
];

/// The manifest object laid over the live one, as an approximation of a server-side apply for
/// offline (--snapshot) planning: maps merge recursively; the lists of [`MERGED_BY_NAME`], when
/// every member is named, take their members and order from `desired`, each laid over the live
/// member of that name, so what the server defaulted inside them stays; other arrays and
/// scalars from `desired` replace the live ones; fields only in `live` stay. Not modelled: a
/// field the manifest no longer sets inside a map or a merged member (an apply removes it when
/// the installer owned it; here it stays).
pub fn overlay(live: &Value, desired: &Value) -> Value {
    overlay_field(None, live, desired)
}

/// [`overlay`] of the value of field `key`.
fn overlay_field(key: Option<&str>, live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut merged = l.clone();
            for (key, value) in d {
                let value = match l.get(key) {
                    // The server keeps no empty field the live object lacks, and null unsets
                    // nothing an apply does not own.
                    None => match pruned(value) {
                        Some(v) => v,
                        None => continue,
                    },
                    Some(_) if value.is_null() => continue,
                    // A quantity the server wrote in its canonical form (`2000m` is `2`).
                    Some(Value::String(have))
                        if is_quantity_key(key) && same_quantity(have, value) =>
                    {
                        continue;
                    }
                    Some(have) => overlay_field(Some(key), have, value),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (Value::Array(l), Value::Array(d))
            if key.is_some_and(|k| MERGED_BY_NAME.contains(&k)) && all_named(l) && all_named(d) =>
        {
            Value::Array(
                d.iter()
                    .map(|want| {
                        l.iter()
                            .find(|have| have["name"] == want["name"])
                            .map_or_else(|| want.clone(), |have| overlay(have, want))
                    })
                    .collect(),
            )
        }
        _ => desired.clone(),
    }
}

/// The defaults the API server writes into members of unnamed lists, which [`overlay`] cannot
/// take from the live object (such lists are replaced whole): a webhook rule's `scope` (`*`)
/// and a `fieldRef`'s `apiVersion` (`v1`). Added where absent, as the server would.
pub fn with_server_defaults(mut v: Value) -> Value {
    if let Some(hooks) = v.get_mut("webhooks").and_then(Value::as_array_mut) {
        for rule in hooks
            .iter_mut()
            .filter_map(|h| h.get_mut("rules").and_then(Value::as_array_mut))
            .flatten()
        {
            if let Some(r) = rule.as_object_mut() {
                r.entry("scope").or_insert_with(|| "*".into());
            }
        }
    }
    default_field_refs(&mut v);
    v
}

fn default_field_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(f)) = m.get_mut("fieldRef") {
                f.entry("apiVersion").or_insert_with(|| "v1".into());
            }
            m.values_mut().for_each(default_field_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(default_field_refs),
        _ => {}
    }
}

/// A new field as the server keeps it: without nulls, empty strings, maps and lists (what it
/// drops from fields that omit empties), `None` when nothing is left.
fn pruned(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(m) => {
            let kept: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), pruned(v)?)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

/// Keys whose values are resource quantities (`resources.limits.cpu`, `requests.memory`, ...).
fn is_quantity_key(key: &str) -> bool {
    matches!(key, "cpu" | "memory" | "ephemeral-storage" | "storage")
        || key.starts_with("hugepages-")
}

/// Whether a desired value is the same quantity as the live string (`1024Mi` and `1Gi`).
fn same_quantity(live: &str, desired: &Value) -> bool {
    let desired = match desired {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return false,
    };
    matches!((milli(live), milli(&desired)), (Some(a), Some(b)) if a == b)
}

/// A Kubernetes quantity in thousandths of its unit (`100m` → 100, `1Gi` → 1073741824000),
/// exactly; `None` for anything else.
fn milli(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (factor, divisor): (u128, u128) = match suffix {
        "m" => (1, 1),
        "" => (1000, 1),
        "k" => (1000 * 1000, 1),
        "M" => (1000 * 1000u128.pow(2), 1),
        "G" => (1000 * 1000u128.pow(3), 1),
        "T" => (1000 * 1000u128.pow(4), 1),
        "P" => (1000 * 1000u128.pow(5), 1),
        "E" => (1000 * 1000u128.pow(6), 1),
        "Ki" => (1000 << 10, 1),
        "Mi" => (1000 << 20, 1),
        "Gi" => (1000 << 30, 1),
        "Ti" => (1000 << 40, 1),
        "Pi" => (1000 << 50, 1),
        "Ei" => (1000 << 60, 1),
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 9 {
        return None;
    }
    let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let value = digits.checked_mul(factor)? / divisor;
    (value % scale == 0).then(|| value / scale)
}

/// Whether every member of a list is an object with a string `name`, each name once.
fn all_named(list: &[Value]) -> bool {
    let names: BTreeSet<&str> = list.iter().filter_map(|v| v["name"].as_str()).collect();
    names.len() == list.len()
}

/// A copy of an object without the server-owned fields.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    take(&mut v, &["status"]);
    for field in SERVER_METADATA {
        take(&mut v, &["metadata", field]);
    }
    for key in SERVER_ANNOTATIONS {
        take(&mut v, &["metadata", "annotations", key]);
    }
    let annotations = v
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    if annotations.is_some_and(Map::is_empty) {
        take(&mut v, &["metadata", "annotations"]);
    }
    v
}

/// Removes and returns the field at `path` (object keys), if every step is an object.
fn take(v: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for key in parents {
        cur = cur.get_mut(*key)?;
    }
    cur.as_object_mut()?.remove(*last)
}

/// A field before and after.
type Pair = (Option<Value>, Option<Value>);

/// [`take`] from both sides.
fn take2(b: &mut Value, a: &mut Value, path: &[&str]) -> Pair {
    (take(b, path), take(a, path))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn is_injector(name: &str) -> bool {
    name.strip_prefix(INJECTOR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

fn is_values(name: &str, b: &Value, a: &Value) -> bool {
    let named = name
        .strip_prefix(VALUES)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'));
    let has = |v: &Value| {
        VALUES_KEYS
            .iter()
            .any(|k| v.pointer(&format!("/data/{k}")).is_some())
    };
    named && (has(b) || has(a))
}

fn is_mesh_config(name: &str, b: &Value, a: &Value) -> bool {
    (name == "istio" || name.starts_with("istio-"))
        && (b.pointer("/data/mesh").is_some() || a.pointer("/data/mesh").is_some())
}

/// A value as one short line: strings as is, others as compact JSON, cut at 80 characters.
fn render(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        _ => v.to_string(),
    };
    if text.chars().count() <= MAX_RENDERED {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_RENDERED - 1).collect();
    cut.push('…');
    cut
}

/// A long text as its number of lines (other values rendered).
fn lines(v: &Value) -> String {
    v.as_str()
        .map_or_else(|| render(v), |s| format!("{} lines", s.lines().count()))
}

/// One changed leaf: path, before, after.
type Leaf<'a> = (String, Option<&'a Value>, Option<&'a Value>);

/// Whether to compare `b` and `a` child by child: both maps or both arrays, or one a non-empty
/// map or array and the other absent.
fn descend(b: Option<&Value>, a: Option<&Value>) -> bool {
    let size = |v: &Value| v.as_object().map(Map::len).or(v.as_array().map(Vec::len));
    match (b, a) {
        (Some(x), Some(y)) => size(x).is_some() && discriminant(x) == discriminant(y),
        (Some(x), None) | (None, Some(x)) => size(x).is_some_and(|n| n > 0),
        (None, None) => false,
    }
}

/// Every changed leaf under `path`: map keys joined with `.`, array indexes as `[i]`.
fn leaves<'a>(path: &str, b: Option<&'a Value>, a: Option<&'a Value>) -> Vec<Leaf<'a>> {
    let mut out = Vec::new();
    walk(path, b, a, &mut out);
    out
}

fn walk<'a>(path: &str, b: Option<&'a Value>, a: Option<&'a Value>, out: &mut Vec<Leaf<'a>>) {
    if b == a {
        return;
    }
    if !descend(b, a) {
        return out.push((path.to_owned(), b, a));
    }
    let maps = [b, a].into_iter().flatten().filter_map(Value::as_object);
    let keys: BTreeSet<&'a String> = maps.flat_map(Map::keys).collect();
    for k in keys {
        let child = format!("{path}{}{k}", if path.is_empty() { "" } else { "." });
        let (x, y) = (b.and_then(|v| v.get(k)), a.and_then(|v| v.get(k)));
        walk(&child, x, y, out);
    }
    let lists = [b, a].into_iter().flatten().filter_map(Value::as_array);
    for i in 0..lists.map(Vec::len).max().unwrap_or(0) {
        let (x, y) = (b.and_then(|v| v.get(i)), a.and_then(|v| v.get(i)));
        walk(&format!("{path}[{i}]"), x, y, out);
    }
}

/// Elements of an array by name, with their index.
type Named<'a> = BTreeMap<String, (usize, &'a Value)>;

/// The elements of an array keyed by their `name` (or `#index` when unnamed or repeated);
/// absent is empty; `None` when present but not an array.
fn named(v: Option<&Value>) -> Option<Named<'_>> {
    let mut map = BTreeMap::new();
    let Some(v) = v else { return Some(map) };
    for (i, item) in v.as_array()?.iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str);
        let name = name.filter(|n| !map.contains_key(*n));
        map.insert(
            name.map_or_else(|| format!("#{i}"), str::to_owned),
            (i, item),
        );
    }
    Some(map)
}

/// Whether the elements both versions have are in a different order.
fn reordered(b: &Named, a: &Named) -> bool {
    let order = |m: &Named, o: &Named| {
        let common = m.iter().filter(|(k, _)| o.contains_key(*k));
        let mut common: Vec<(usize, String)> = common.map(|(k, (i, _))| (*i, k.clone())).collect();
        common.sort_unstable();
        common.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    };
    order(b, a) != order(a, b)
}

fn union<'m>(b: &'m Named, a: &'m Named) -> BTreeSet<&'m String> {
    b.keys().chain(a.keys()).collect()
}

/// The diff being built.
#[derive(Default)]
struct Out {
    changes: Vec<FieldChange>,
    other: BTreeSet<String>,
}

impl Out {
    fn push(&mut self, field: String, before: Option<String>, after: Option<String>) {
        self.changes.push(FieldChange {
            field,
            before,
            after,
        });
    }

    /// A field that matters, if it differs.
    fn change(&mut self, field: String, b: Option<&Value>, a: Option<&Value>) {
        if b != a {
            self.push(field, b.map(render), a.map(render));
        }
    }

    /// Every changed leaf under `path` as a field that matters, its values shown by `show`.
    fn important(&mut self, path: &str, b: Option<&Value>, a: Option<&Value>, show: Show) {
        for (field, x, y) in leaves(path, b, a) {
            self.push(field, x.map(show), y.map(show));
        }
    }

    /// Every changed leaf under `path` as a path only.
    fn other(&mut self, path: &str, b: Option<&Value>, a: Option<&Value>) {
        self.other
            .extend(leaves(path, b, a).into_iter().map(|l| l.0));
    }

    /// What is left of the object: key labels matter, the rest are paths.
    fn rest(&mut self, b: &Value, a: &Value) {
        for (path, x, y) in leaves("", Some(b), Some(a)) {
            let label = path.strip_prefix("metadata.labels.");
            if label.is_some_and(|l| KEY_LABELS.contains(&l)) {
                self.change(path, x, y);
            } else {
                self.other.insert(path);
            }
        }
    }

    /// A text field holding a document (`parse`): its changed leaves under `prefix`; the field
    /// as a whole when a side does not parse; a path when only its formatting changed.
    fn text(&mut self, prefix: &str, b: Option<Value>, a: Option<Value>, parser: Parser) {
        if b == a {
            return;
        }
        let field = format!("data.{prefix}");
        let before = self.changes.len();
        match (parse(b.as_ref(), parser), parse(a.as_ref(), parser)) {
            (Some(pb), Some(pa)) => self.important(prefix, pb.as_ref(), pa.as_ref(), render),
            _ => self.push(field.clone(), b.as_ref().map(lines), a.as_ref().map(lines)),
        }
        if self.changes.len() == before {
            self.other.insert(field);
        }
    }

    fn finish(self) -> ObjectDiff {
        let whole = |p: String| if p.is_empty() { "(object)".into() } else { p };
        ObjectDiff {
            changes: self.changes,
            other: self.other.into_iter().map(whole).collect(),
        }
    }
}

/// Parses a document.
type Parser = fn(&str) -> Option<Value>;
/// Shows a value.
type Show = fn(&Value) -> String;

fn yaml(text: &str) -> Option<Value> {
    serde_saphyr::from_str(text).ok()
}

fn json(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// A text field parsed: `Some(None)` when absent or empty, `None` when it is not a string or
/// does not parse.
fn parse(v: Option<&Value>, parser: Parser) -> Option<Option<Value>> {
    let Some(v) = v else { return Some(None) };
    let parsed = parser(v.as_str()?)?;
    Some(Some(parsed).filter(|p| !p.is_null()))
}

/// Deployment, DaemonSet, StatefulSet: replicas, then containers and init containers by name.
fn workload(b: &mut Value, a: &mut Value, out: &mut Out) {
    let (rb, ra) = take2(b, a, &["spec", "replicas"]);
    out.important("replicas", rb.as_ref(), ra.as_ref(), render);
    for key in ["containers", "initContainers"] {
        let list = take2(b, a, &["spec", "template", "spec", key]);
        let path = format!("spec.template.spec.{key}");
        by_name(out, (key, &path), list, &CONTAINER_FIELDS, image);
    }
}

/// A list of elements matched by name (containers, webhooks): for each, its `fields` reported
/// under `label[NAME]`, the rest of it as paths under `path[NAME]`; an element added or removed
/// shown by `show`.
fn by_name(out: &mut Out, names: (&str, &str), list: Pair, fields: &[Rule], show: Show) {
    let ((label, path), (b, a)) = (names, (list.0.as_ref(), list.1.as_ref()));
    let (Some(bm), Some(am)) = (named(b), named(a)) else {
        return out.other(path, b, a);
    };
    if reordered(&bm, &am) {
        out.other.insert(format!("{path} (order)"));
    }
    for name in union(&bm, &am) {
        let field = format!("{label}[{name}]");
        let (x, y) = (bm.get(name).map(|e| e.1), am.get(name).map(|e| e.1));
        let (Some(x), Some(y)) = (x, y) else {
            out.push(field, x.map(show), y.map(show));
            continue;
        };
        if x == y {
            continue;
        }
        let (mut x, mut y) = (x.clone(), y.clone());
        for (keys, how) in fields {
            let (fb, fa) = take2(&mut x, &mut y, keys);
            let (fb, fa) = (fb.as_ref(), fa.as_ref());
            let f = format!("{field}.{}", keys.join("."));
            match how {
                How::Whole => out.change(f, fb, fa),
                How::Leaves(show) => out.important(&f, fb, fa, *show),
                How::Env => env(out, (&f, &format!("{path}[{name}].env")), fb, fa),
                How::Schema => {
                    let under = format!("{field}.{}", keys[0]);
                    for (leaf, ..) in leaves("", fb, fa) {
                        out.other.insert(format!("{under}.{}", schema_path(&leaf)));
                    }
                }
            }
        }
        out.other(&format!("{path}[{name}]"), Some(&x), Some(&y));
    }
}

/// Env vars by name: `label.VAR` with their values, or `path[VAR]` when only other fields of
/// the var changed.
fn env(out: &mut Out, (label, path): (&str, &str), b: Option<&Value>, a: Option<&Value>) {
    let (Some(bm), Some(am)) = (named(b), named(a)) else {
        return out.other(path, b, a);
    };
    if reordered(&bm, &am) {
        out.other.insert(format!("{path} (order)"));
    }
    for name in union(&bm, &am) {
        let (x, y) = (bm.get(name).map(|e| e.1), am.get(name).map(|e| e.1));
        if x == y {
            continue;
        }
        let (vx, vy) = (x.map(env_value), y.map(env_value));
        if vx == vy {
            out.other.insert(format!("{path}[{name}]"));
        } else {
            out.change(format!("{label}.{name}"), vx, vy);
        }
    }
}

/// An env var's `value`, else its `valueFrom`.
fn env_value(e: &Value) -> &Value {
    e.get("value")
        .or_else(|| e.get("valueFrom"))
        .unwrap_or(&EMPTY)
}

/// The `istio[-<rev>]` ConfigMap: mesh config and mesh networks, key by key.
fn mesh_config(b: &mut Value, a: &mut Value, out: &mut Out) {
    for key in ["mesh", "meshNetworks"] {
        let (vb, va) = take2(b, a, &["data", key]);
        out.text(key, vb, va, yaml);
    }
}

/// A CRD's versions by name: whether each is served, the storage version or deprecated matter;
/// its schema's changes are named by property (`versions[v1].schema.spec.servers[].tls.mode.enum[3]`).
fn crd(b: &mut Value, a: &mut Value, out: &mut Out) {
    let list = take2(b, a, &["spec", "versions"]);
    let names = ("versions", "spec.versions");
    by_name(out, names, list, &CRD_VERSION_FIELDS, served);
}

/// A CRD version as the plan shows it when added or removed.
fn served(v: &Value) -> String {
    let served = v.get("served").and_then(Value::as_bool).unwrap_or(false);
    let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
    match (served, storage) {
        (_, true) => "served, storage".into(),
        (true, false) => "served".into(),
        (false, false) => "not served".into(),
    }
}

/// A leaf path inside an OpenAPI schema as property names: `properties.spec.properties.servers.
/// items.properties.tls.description` → `spec.servers[].tls.description`.
fn schema_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut segments = path.split('.');
    while let Some(seg) = segments.next() {
        match seg {
            "properties" => match segments.next() {
                Some(name) => out.push(name),
                None => out.push(seg),
            },
            "items" if !out.is_empty() => out.push("[]"),
            _ => out.push(seg),
        }
    }
    out.join(".").replace(".[]", "[]")
}

/// The `values[-<rev>]` ConfigMap istioctl's installer writes: the Helm values merged with the
/// charts' defaults and as given, leaf by leaf (`merged-values.global.tag`) — a default the new
/// charts change shows up under `merged-values`.
fn values(b: &mut Value, a: &mut Value, out: &mut Out) {
    for key in VALUES_KEYS {
        let (vb, va) = take2(b, a, &["data", key]);
        out.text(key, vb, va, json);
    }
}

/// The `istio-sidecar-injector[-<rev>]` ConfigMap: values leaf by leaf, templates by line
/// count, the rest of the config leaf by leaf.
fn injector(b: &mut Value, a: &mut Value, out: &mut Out) {
    let (vb, va) = take2(b, a, &["data", "values"]);
    out.text("values", vb, va, json);
    let (cb, ca) = take2(b, a, &["data", "config"]);
    if cb == ca {
        return;
    }
    let (Some(mut pb), Some(mut pa)) = (parse(cb.as_ref(), yaml), parse(ca.as_ref(), yaml)) else {
        return out.text("config", cb, ca, yaml);
    };
    let tb = pb.as_mut().and_then(|v| take(v, &["templates"]));
    let ta = pa.as_mut().and_then(|v| take(v, &["templates"]));
    let count = out.changes.len();
    out.important("templates", tb.as_ref(), ta.as_ref(), lines);
    out.important("config", pb.as_ref(), pa.as_ref(), render);
    if out.changes.len() == count {
        out.other.insert("data.config".into());
    }
}

/// Mutating and validating webhook configurations: webhook by webhook.
fn webhooks(b: &mut Value, a: &mut Value, out: &mut Out) {
    let list = take2(b, a, &["webhooks"]);
    by_name(
        out,
        ("webhooks", "webhooks"),
        list,
        &WEBHOOK_FIELDS,
        endpoint,
    );
}

/// A container's image.
fn image(c: &Value) -> String {
    c.get("image").map_or_else(|| "(no image)".into(), render)
}

/// Where a webhook calls: its URL or service (never its CA bundle).
fn endpoint(w: &Value) -> String {
    let config = w.get("clientConfig");
    let url = config.and_then(|c| c.get("url"));
    url.or_else(|| config.and_then(|c| c.get("service")))
        .map_or_else(|| "(webhook)".into(), render)
}

fn ca_bundle(_: &Value) -> String {
    CA_BUNDLE.to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::Manifest;

    const OLD: &str = include_str!("../../../fixtures/manifests/default-1.29.6.yaml");
    const NEW: &str = include_str!("../../../fixtures/manifests/default-1.30.3.yaml");
    const HOOK: &str = "webhooks[rev.namespace.sidecar-injector.istio.io]";
    const DEFAULT_URL: &str = "https://127.0.0.1:9443/inject/rev/default";

    fn objects(text: &str) -> Vec<Value> {
        let manifest = Manifest::parse(text).unwrap();
        manifest.objects.into_iter().map(|o| o.value).collect()
    }

    fn object(text: &str, kind: &str, name: &str) -> Value {
        let is = |o: &Value| o["kind"] == kind && o["metadata"]["name"] == name;
        objects(text).into_iter().find(is).unwrap()
    }

    fn upgrade(kind: &str, name: &str) -> ObjectDiff {
        diff(&object(OLD, kind, name), &object(NEW, kind, name))
    }

    /// A change; "" is absent.
    fn fc(field: &str, before: &str, after: &str) -> FieldChange {
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        let (field, before, after) = (field.to_owned(), some(before), some(after));
        FieldChange {
            field,
            before,
            after,
        }
    }

    #[test]
    fn fixtures_istiod_injector_values_and_whole_manifest() {
        let d = upgrade("Deployment", "istiod");
        let image = |tag| format!("docker.io/istio/pilot:{tag}");
        let field = "containers[discovery].image";
        assert_eq!(d.changes, [fc(field, &image("1.29.6"), &image("1.30.3"))]);
        assert!(d.other.is_empty());
        let d = upgrade("ConfigMap", "istio-sidecar-injector");
        assert_eq!(d.changes, [fc("values.global.tag", "1.29.6", "1.30.3")]);
        assert!(d.other.is_empty());
        let d = upgrade("ConfigMap", "values");
        let tags = ["merged-values", "original-values"].map(|k| {
            let field = format!("{k}.global.tag");
            fc(&field, "1.29.6", "1.30.3")
        });
        assert_eq!(d.changes, tags);
        assert!(d.other.is_empty());
        let (new, mut fields) = (objects(NEW), BTreeSet::new());
        for old in objects(OLD) {
            let key = |o: &Value| (o["kind"].clone(), o["metadata"]["name"].clone());
            let after = new.iter().find(|n| key(n) == key(&old)).unwrap();
            let d = diff(&old, after);
            assert_eq!(same(&old, after), d.is_empty());
            fields.extend(d.changes.into_iter().map(|c| c.field));
        }
        let expected = [
            "containers[istio-proxy].image",
            field,
            "merged-values.global.tag",
            "original-values.global.tag",
            "values.global.tag",
        ];
        assert_eq!(fields, expected.map(String::from).into());
    }

    /// The test bed's two chart generations (trimmed, see the fixtures' headers).
    const GEN_OLD: &str = include_str!("../../../fixtures/manifests/generation-old-1.30.5.yaml");
    const GEN_NEW: &str = include_str!("../../../fixtures/manifests/generation-new-1.31.1.yaml");

    #[test]
    fn chart_generations_templates_added_changed_and_a_changed_default() {
        let cm = |text: &str, name: &str| object(text, "ConfigMap", name);
        let d = diff(
            &cm(GEN_OLD, "istio-sidecar-injector"),
            &cm(GEN_NEW, "istio-sidecar-injector"),
        );
        let fields: Vec<(&str, bool, bool)> = d
            .changes
            .iter()
            .map(|c| (c.field.as_str(), c.before.is_some(), c.after.is_some()))
            .collect();
        for want in [
            ("templates.agentgateway-waypoint", false, true),
            ("templates.sidecar", true, true),
            ("templates.gateway", true, true),
            ("values.global.tag", true, true),
        ] {
            assert!(fields.contains(&want), "{want:?} in {fields:?}");
        }
        let d = diff(&cm(GEN_OLD, "values"), &cm(GEN_NEW, "values"));
        let taint = fc("merged-values.taint.name", "", "cni.istio.io/not-ready");
        assert!(d.changes.contains(&taint), "{:?}", d.changes);
        let back = diff(&cm(GEN_NEW, "values"), &cm(GEN_OLD, "values"));
        let gone = fc("merged-values.taint.name", "cni.istio.io/not-ready", "");
        assert!(back.changes.contains(&gone), "{:?}", back.changes);
    }

    #[test]
    fn crd_versions_by_name_and_schema_changes_by_property() {
        let d = diff(
            &object(
                GEN_OLD,
                "CustomResourceDefinition",
                "envoyfilters.networking.istio.io",
            ),
            &object(
                GEN_NEW,
                "CustomResourceDefinition",
                "envoyfilters.networking.istio.io",
            ),
        );
        assert!(d.changes.is_empty(), "{:?}", d.changes);
        let op = "versions[v1alpha3].schema.spec.configPatches[].patch.operation";
        assert_eq!(
            d.other,
            [format!("{op}.description"), format!("{op}.enum[8]")]
        );
        let crd = |versions: Value| json!({"kind": "CustomResourceDefinition", "spec": {"versions": versions}});
        let schema =
            |props: Value| json!({"openAPIV3Schema": {"type": "object", "properties": props}});
        let before = crd(json!([
            {"name": "v1beta1", "served": true, "storage": true, "schema": schema(json!({}))},
            {"name": "v1alpha1", "served": true, "storage": false},
        ]));
        let list = json!({"type": "array", "items": {"type": "object", "properties":
            {"port": {"type": "integer"}}}});
        let after = crd(json!([
            {"name": "v1beta1", "served": true, "storage": false,
                "schema": schema(json!({"ports": list}))},
            {"name": "v1", "served": true, "storage": true},
        ]));
        let d = diff(&before, &after);
        let expected = [
            fc("versions[v1]", "", "served, storage"),
            fc("versions[v1alpha1]", "served", ""),
            fc("versions[v1beta1].storage", "true", "false"),
        ];
        assert_eq!(d.changes, expected);
        let port = "versions[v1beta1].schema.ports[].port.type";
        let list = "versions[v1beta1].schema.ports.type";
        assert_eq!(
            d.other,
            [list, port, "versions[v1beta1].schema.ports[].type"]
        );
        assert_eq!(
            schema_path("properties.a.items.items.properties.b.enum[2]"),
            "a[][].b.enum[2]"
        );
        assert_eq!(schema_path("items.type"), "items.type");
    }

    #[test]
    fn same_ignores_server_owned_fields() {
        let live = object(OLD, "Deployment", "istiod");
        let mut server = live.clone();
        let meta = server["metadata"].as_object_mut().unwrap();
        meta.insert("resourceVersion".into(), json!("12345"));
        meta.insert("managedFields".into(), json!([{"manager": "istioctl"}]));
        meta.insert("uid".into(), json!("6a1c"));
        let revision = json!({"deployment.kubernetes.io/revision": "3"});
        meta.insert("annotations".into(), revision);
        server["status"] = json!({"replicas": 1});
        assert!(same(&live, &server) && diff(&live, &server).is_empty());
        server["spec"]["template"]["spec"]["containers"][0]["image"] = json!("pilot:1.30.3");
        assert!(!same(&live, &server));
    }

    #[test]
    fn mesh_config_key_added_and_unparseable() {
        let live = object(OLD, "ConfigMap", "istio");
        let mut after = live.clone();
        let mesh = live["data"]["mesh"].as_str().unwrap();
        let added = "defaultConfig:\n  holdApplicationUntilProxyStarts: true\n";
        after["data"]["mesh"] = json!(mesh.replace("defaultConfig:\n", added));
        let d = diff(&live, &after);
        let field = "mesh.defaultConfig.holdApplicationUntilProxyStarts";
        assert_eq!(d.changes, [fc(field, "", "true")]);
        assert!(d.other.is_empty());
        after["data"]["mesh"] = json!("defaultConfig: [unclosed");
        let d = diff(&live, &after);
        assert_eq!(d.changes, [fc("data.mesh", "8 lines", "1 lines")]);
        after["data"]["mesh"] = json!(format!("{mesh}\n\n"));
        assert_eq!(diff(&live, &after).other, ["data.mesh"]);
    }

    #[test]
    fn workload_env_replicas_resources_labels() {
        let before = json!({"kind": "Deployment",
            "metadata": {"name": "istiod", "labels": {"istio.io/rev": "default", "app": "a"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "discovery",
                "image": "pilot:1", "env": [{"name": "A", "value": "1"}], "args": ["discovery"],
                "resources": {"requests": {"cpu": "500m"}}}]}}}});
        let mut after = before.clone();
        after["metadata"]["labels"] = json!({"istio.io/rev": "canary", "app": "b"});
        after["spec"]["replicas"] = json!(2);
        let pod = &mut after["spec"]["template"]["spec"];
        pod["initContainers"] = json!([{"name": "init", "image": "x:1"}]);
        let c = &mut pod["containers"][0];
        let from = json!({"fieldRef": {"fieldPath": "spec.nodeName"}});
        let var = json!({"name": "B", "valueFrom": from});
        c["env"].as_array_mut().unwrap().push(var);
        c["resources"] = json!({"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}});
        c["args"].as_array_mut().unwrap().push(json!("--v=2"));
        let d = diff(&before, &after);
        let expected = [
            fc("replicas", "1", "2"),
            fc("containers[discovery].env.B", "", &from.to_string()),
            fc("containers[discovery].resources.limits.memory", "", "1Gi"),
            fc("containers[discovery].resources.requests.cpu", "500m", "1"),
            fc("initContainers[init]", "", "x:1"),
            fc("metadata.labels.istio.io/rev", "default", "canary"),
        ];
        assert_eq!(d.changes, expected);
        let args = "spec.template.spec.containers[discovery].args[1]";
        assert_eq!(d.other, ["metadata.labels.app", args]);
    }

    #[test]
    fn webhook_url_changes_without_certificates() {
        let kind = "MutatingWebhookConfiguration";
        let live = object(OLD, kind, "istio-sidecar-injector");
        let mut after = live.clone();
        let hook = &mut after["webhooks"][0];
        hook["clientConfig"]["url"] = json!("https://istiod-canary:15017/inject");
        hook["clientConfig"]["caBundle"] = json!("TkVXQ0EK");
        hook["sideEffects"] = json!("NoneOnDryRun");
        after["webhooks"].as_array_mut().unwrap().pop();
        let d = diff(&live, &after);
        let (url, new) = (DEFAULT_URL, "https://istiod-canary:15017/inject");
        let at = |f: &str| format!("{HOOK}.clientConfig.{f}");
        let expected = [
            fc("webhooks[object.sidecar-injector.istio.io]", url, ""),
            fc(&at("caBundle"), CA_BUNDLE, CA_BUNDLE),
            fc(&at("url"), url, new),
        ];
        assert_eq!(d.changes, expected);
        assert_eq!(d.other, [format!("{HOOK}.sideEffects")]);
        let shown = serde_json::to_string(&d).unwrap();
        assert!(!shown.contains("Q0EK") && !shown.contains("TkVXQ0EK"));
    }

    #[test]
    fn overlay_keeps_live_fields_and_replaces_arrays() {
        let live = json!({"metadata": {"name": "s", "uid": "u", "labels": {"a": "1"}},
            "spec": {"ports": [{"port": 1}, {"port": 2}], "clusterIP": "10.0.0.1"}});
        let desired = json!({"metadata": {"labels": {"b": "2"}}, "spec": {"ports": [{"port": 3}]}});
        let merged = overlay(&live, &desired);
        let expected = json!({"metadata": {"name": "s", "uid": "u", "labels": {"a": "1", "b": "2"}},
            "spec": {"ports": [{"port": 3}], "clusterIP": "10.0.0.1"}});
        assert_eq!(merged, expected);
        let ports = ["spec.ports[0].port", "spec.ports[1].port"];
        assert_eq!(
            diff(&live, &merged).other,
            [&["metadata.labels.b"][..], &ports].concat()
        );
        assert_eq!(overlay(&json!(1), &json!({"a": 1})), json!({"a": 1}));
    }

    /// Lists of named members merge by name, as a server-side apply does: what the server
    /// defaulted inside a container or a CRD version stays; a member the manifest drops goes.
    #[test]
    fn overlay_merges_named_lists_by_name() {
        let live = json!({"spec": {"containers": [
            {"name": "discovery", "image": "pilot:1", "imagePullPolicy": "IfNotPresent"},
            {"name": "gone", "image": "x"}]}});
        let desired = json!({"spec": {"containers": [{"name": "discovery", "image": "pilot:1"}]}});
        let merged = overlay(&live, &desired);
        assert_eq!(
            merged,
            json!({"spec": {"containers": [
                {"name": "discovery", "image": "pilot:1", "imagePullPolicy": "IfNotPresent"}]}})
        );
        let same = overlay(
            &live,
            &json!({"spec": {"containers": [
            {"name": "discovery", "image": "pilot:1"}, {"name": "gone", "image": "x"}]}}),
        );
        assert!(super::same(&live, &same), "{same}");
        let changed = overlay(
            &live,
            &json!({"spec": {"containers": [
            {"name": "discovery", "image": "pilot:2"}, {"name": "gone", "image": "x"}]}}),
        );
        assert!(!super::same(&live, &changed), "{changed}");
        assert_eq!(
            changed["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        // What the server drops or rewrites is not a change: empty fields it omits, null, and
        // quantities in their canonical form.
        let live = json!({"spec": {"resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            "env": [{"name": "PLATFORM"}]}});
        let desired = json!({"spec": {"resources": {"limits": {"cpu": "2000m", "memory": "1024Mi"}},
            "affinity": {"nodeAffinity": null}, "nodeSelector": {}, "annotations": null,
            "env": [{"name": "PLATFORM", "value": ""}]}});
        assert!(
            super::same(&live, &overlay(&live, &desired)),
            "{}",
            overlay(&live, &desired)
        );
        let more = json!({"spec": {"resources": {"limits": {"cpu": "3", "memory": "1Gi"}}}});
        assert_eq!(
            overlay(&live, &more)["spec"]["resources"]["limits"]["cpu"],
            "3"
        );
        assert_eq!(super::milli("100m"), Some(100));
        assert_eq!(super::milli("0.5"), Some(500));
        assert_eq!(super::milli("1Gi"), super::milli("1024Mi"));
        assert_eq!(super::milli("2k"), Some(2_000_000));
        for bad in ["", "x", "1.2.3", "1Q", ".", "1e3"] {
            assert_eq!(super::milli(bad), None, "{bad}");
        }
        // Defaults inside unnamed lists are added as the server adds them.
        let hook = json!({"webhooks": [{"name": "w", "rules": [{"operations": ["CREATE"]}]}],
            "spec": {"volumes": [{"name": "v", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}});
        let defaulted = super::with_server_defaults(hook);
        assert_eq!(defaulted["webhooks"][0]["rules"][0]["scope"], "*");
        assert_eq!(
            defaulted["spec"]["volumes"][0]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        // Duplicate or missing names, or a list the server does not default into (a CRD's
        // versions): replaced whole, so what the manifest drops from it is a change.
        let dup = json!({"containers": [{"name": "a", "v": 1}, {"name": "a", "v": 2}]});
        assert_eq!(
            overlay(&json!({"containers": [{"name": "a", "w": 0}]}), &dup),
            dup
        );
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"a": 1, "b": 2}}]}});
        let older = json!({"spec": {"versions": [{"name": "v1", "schema": {"a": 1}}]}});
        assert!(!super::same(&crd, &overlay(&crd, &older)));
    }

    #[test]
    fn injector_templates_by_line_count_and_secrets_by_path() {
        let cm = |config: &str| {
            json!({"kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector-canary"}, "data": {"config": config}})
        };
        let before = cm("policy: enabled\ntemplates:\n  sidecar: |\n    a\n    b\n  gateway: g\n");
        let after =
            cm("policy: disabled\ntemplates:\n  sidecar: |\n    a\n    c\n    d\n  waypoint: w\n");
        let expected = [
            fc("templates.gateway", "1 lines", ""),
            fc("templates.sidecar", "2 lines", "3 lines"),
            fc("templates.waypoint", "", "1 lines"),
            fc("config.policy", "enabled", "disabled"),
        ];
        assert_eq!(diff(&before, &after).changes, expected);
        let long = render(&json!("x".repeat(100)));
        assert!(long.ends_with('…') && long.chars().count() == MAX_RENDERED);
        let secret =
            |v: &str| json!({"kind": "Secret", "data": {"key": v}, "stringData": {"pw": v}});
        let d = diff(&secret("czNjcjN0"), &secret("bjN3"));
        assert!(d.changes.is_empty() && !serde_json::to_string(&d).unwrap().contains("bjN3"));
        assert_eq!(d.other, ["data.key", "stringData.pw"]);
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        let odd = [
            json!(null),
            json!("text"),
            json!({"kind": "ConfigMap", "metadata": {"name": "istio"}, "data": 5}),
            json!({"kind": "ConfigMap", "metadata": "x", "data": {"mesh": 5}}),
            json!({"kind": "Deployment", "spec": "x"}),
            json!({"kind": "Deployment", "spec": {"replicas": "two", "template": {"spec":
                {"containers": "c", "initContainers": [1, {"name": 2}, {"env": {}}]}}}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "istio-sidecar-injector"},
                "data": {"values": "{not json", "config": "templates: 3\npolicy: [x"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "istio-sidecar-injector-1-30"},
                "data": {"values": "[]", "config": "templates: [1]\ndefaultTemplates: [x]"}}),
            json!({"kind": "ValidatingWebhookConfiguration", "webhooks": [{"clientConfig": 3}]}),
            json!({"kind": "MutatingWebhookConfiguration", "webhooks": {"a": 1}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "values-1-30"},
                "data": {"merged-values": "{not json", "original-values": 3}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "values"},
                "data": {"merged-values": "[1]", "original-values": "null"}}),
        ];
        for b in &odd {
            for a in &odd {
                let d = diff(b, a);
                assert_eq!(d.is_empty(), same(b, a), "{b} -> {a}: {d:?}");
                let _ = overlay(b, a);
            }
        }
        assert_eq!(diff(&json!(null), &json!("text")).other, ["(object)"]);
        let hooks = |names: [&str; 2]| {
            json!({"kind": "MutatingWebhookConfiguration",
            "webhooks": names.map(|n| json!({"name": n}))})
        };
        let d = diff(&hooks(["a", "b"]), &hooks(["b", "a"]));
        assert!(d.changes.is_empty() && d.other == ["webhooks (order)"]);
        assert_eq!(diff(&odd[2], &odd[6]).other, ["data", "metadata.name"]);
    }
}
