//! `tag list`: every tag with its revision, that revision's version and the namespaces it
//! injects — plus what istioctl hides: revisions without a tag, namespaces labelled with a
//! revision name directly, and namespaces whose label no injector answers.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{
    inventory::{Injection, Inventory, REV_LABEL, TAG_LABEL},
    snapshot::{ClusterSnapshot, label, name},
};

/// Version of the JSON/YAML shape of [`TagList`].
pub const LIST_SCHEMA_VERSION: u32 = 1;

/// The result of `tag list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagList {
    /// [`LIST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Tags and revisions, sorted by revision then tag (revision rows first).
    pub items: Vec<TagRow>,
    /// Namespaces asking for injection that no single injector answers.
    pub unresolved: Vec<Unresolved>,
}

/// One tag, or one revision reached without a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagRow {
    /// The tag; `None` for a revision's own row.
    pub tag: Option<String>,
    /// The revision.
    pub revision: String,
    /// Its control plane's version (`None` when no istiod of that revision is found).
    pub revision_version: Option<String>,
    /// Namespaces injected through this row.
    pub namespaces: Vec<String>,
    /// The tag's MutatingWebhookConfiguration (`None` for revision rows and Service-only tags).
    pub webhook: Option<String>,
}

/// A namespace whose injection label resolves to no single injector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    /// Namespace.
    pub namespace: String,
    /// The label asking for injection.
    pub label: String,
    /// What happens instead.
    pub problem: String,
}

/// Lists tags and revisions.
pub fn list(snap: &ClusterSnapshot, inv: &Inventory) -> TagList {
    let mut items = tag_rows(snap, inv);
    let tagged: BTreeSet<String> = items.iter().map(|r| r.revision.clone()).collect();
    let tag_names: BTreeSet<String> = items.iter().filter_map(|r| r.tag.clone()).collect();
    for rev in inv.revisions() {
        let namespaces = revision_namespaces(inv, &rev, &tag_names);
        if !tagged.contains(&rev) || !namespaces.is_empty() {
            items.push(TagRow {
                tag: None,
                revision_version: version(inv, &rev),
                revision: rev,
                namespaces,
                webhook: None,
            });
        }
    }
    items.sort_by(|a, b| (&a.revision, &a.tag).cmp(&(&b.revision, &b.tag)));
    TagList {
        schema_version: LIST_SCHEMA_VERSION,
        items,
        unresolved: unresolved(inv),
    }
}

fn version(inv: &Inventory, rev: &str) -> Option<String> {
    inv.revision_version(rev).map(ToString::to_string)
}

/// Tags from their webhooks, and tags that exist only as a Service (Istio 1.28+, ambient).
fn tag_rows(snap: &ClusterSnapshot, inv: &Inventory) -> Vec<TagRow> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let from_webhooks = snap.mutating_webhooks.iter().map(|m| (&m.metadata, true));
    let from_services = snap.services.iter().map(|s| (&s.metadata, false));
    for (meta, is_webhook) in from_webhooks.chain(from_services) {
        let (Some(tag), Some(rev)) = (label(meta, TAG_LABEL), label(meta, REV_LABEL)) else {
            continue;
        };
        if !seen.insert((tag.to_owned(), rev.to_owned())) {
            continue;
        }
        out.push(TagRow {
            tag: Some(tag.to_owned()),
            revision: rev.to_owned(),
            revision_version: version(inv, rev),
            namespaces: tag_namespaces(inv, tag),
            webhook: is_webhook.then(|| name(meta).to_owned()),
        });
    }
    out
}

fn tag_namespaces(inv: &Inventory, tag: &str) -> Vec<String> {
    inv.namespaces
        .iter()
        .filter(|n| match &n.injection {
            Injection::Revision { tag: t, .. } => t.as_deref() == Some(tag),
            _ => n.rev_label.as_deref() == Some(tag),
        })
        .map(|n| n.name.clone())
        .collect()
}

fn revision_namespaces(inv: &Inventory, rev: &str, tags: &BTreeSet<String>) -> Vec<String> {
    inv.namespaces
        .iter()
        .filter(|n| match &n.injection {
            Injection::Revision {
                revision,
                tag: None,
                ..
            } => revision == rev,
            Injection::Revision { .. } => false,
            _ => n.rev_label.as_deref() == Some(rev) && !tags.contains(rev),
        })
        .map(|n| n.name.clone())
        .collect()
}

fn unresolved(inv: &Inventory) -> Vec<Unresolved> {
    inv.namespaces
        .iter()
        .filter_map(|n| {
            let (label, problem) = match &n.injection {
                Injection::Dangling { label } => (
                    label.clone(),
                    "no injector matches: pods start without a proxy".to_owned(),
                ),
                Injection::Overlap { webhooks } => (
                    n.rev_label
                        .clone()
                        .map_or_else(String::new, |r| format!("{REV_LABEL}={r}")),
                    format!(
                        "selected by {} injectors: {}",
                        webhooks.len(),
                        webhooks.join(", ")
                    ),
                ),
                _ => return None,
            };
            Some(Unresolved {
                namespace: n.name.clone(),
                label,
                problem,
            })
        })
        .collect()
}
