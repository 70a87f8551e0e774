//! Which clusters of a fleet form one multi-cluster mesh.
//!
//! Two clusters are in one mesh when they share an explicitly set mesh ID, or a trust domain
//! other than Istio's default (`cluster.local` alone says nothing: every cluster has it), or when
//! one holds a remote secret for the other's cluster name, or when one's injector points at an
//! address of the other's istiod. A cluster linked to no other is not in a multi-cluster mesh and
//! gets no fleet check.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    Member,
    facts::{DEFAULT_CLUSTER_NAME, DEFAULT_TRUST_DOMAIN},
};

/// A multi-cluster mesh found in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mesh {
    /// Its name: the mesh ID its clusters share, else their trust domain, else `linked`.
    pub id: String,
    /// Indexes of its clusters in the member list, in that list's order.
    #[serde(skip)]
    pub members: Vec<usize>,
    /// Its clusters' names, in the member list's order.
    pub clusters: Vec<String>,
}

/// Union-find over member indexes.
struct Groups(Vec<usize>);

impl Groups {
    fn root(&mut self, i: usize) -> usize {
        let mut r = i;
        while self.0[r] != r {
            r = self.0[r];
        }
        self.0[i] = r;
        r
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// The multi-cluster meshes of a fleet (groups of two or more clusters).
pub fn meshes(members: &[Member]) -> Vec<Mesh> {
    let mut g = Groups((0..members.len()).collect());
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for key in keys(m) {
            match by_key.get(&key) {
                Some(&j) => g.join(i, j),
                None => {
                    by_key.insert(key, i);
                }
            }
        }
        for (j, other) in members.iter().enumerate() {
            if i != j && linked(m, other) {
                g.join(i, j);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..members.len() {
        let r = g.root(i);
        groups.entry(r).or_default().push(i);
    }
    groups
        .into_values()
        .filter(|ix| ix.len() > 1)
        .map(|ix| Mesh {
            id: name_of(members, &ix),
            clusters: ix.iter().map(|i| members[*i].name.clone()).collect(),
            members: ix,
        })
        .collect()
}

/// What makes two clusters one mesh by configuration alone.
fn keys(m: &Member) -> Vec<String> {
    let ids = m.facts.mesh_ids.iter().map(|id| format!("mesh ID {id}"));
    let domains = m
        .facts
        .trust_domains
        .iter()
        .filter(|d| *d != DEFAULT_TRUST_DOMAIN)
        .map(|d| format!("trust domain {d}"));
    ids.chain(domains).collect()
}

/// Whether `a` reaches into `b`: a remote secret for `b`'s cluster name, or an injector
/// pointing at one of `b`'s istiod addresses.
pub(super) fn linked(a: &Member, b: &Member) -> bool {
    let secret =
        a.facts.remote_secrets.iter().any(|s| {
            s.cluster != DEFAULT_CLUSTER_NAME && b.facts.cluster_names.contains(&s.cluster)
        });
    let injection = a.facts.remote_injectors.iter().any(|i| {
        i.endpoint
            .as_ref()
            .is_some_and(|e| b.facts.endpoints.contains(e))
    });
    secret || injection
}

fn name_of(members: &[Member], ix: &[usize]) -> String {
    let mut ids: Vec<&String> = ix
        .iter()
        .flat_map(|i| &members[*i].facts.mesh_ids)
        .collect();
    ids.sort();
    ids.dedup();
    if let [one] = ids.as_slice() {
        return (*one).clone();
    }
    let mut domains: Vec<&String> = ix
        .iter()
        .flat_map(|i| &members[*i].facts.trust_domains)
        .filter(|d| *d != DEFAULT_TRUST_DOMAIN)
        .collect();
    domains.sort();
    domains.dedup();
    match (ids.as_slice(), domains.as_slice()) {
        ([], [one]) => format!("trust domain {one}"),
        ([], _) => "linked".to_owned(),
        (many, _) => many
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("+"),
    }
}
