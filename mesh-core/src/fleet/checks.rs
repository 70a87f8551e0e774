//! The multi-cluster checks: pure functions from the members of one mesh to findings (ids
//! `fleet.*`, category [`Category::MultiCluster`], documented in docs/checks.md).
//!
//! Like every check, each returns at least one finding, and a cluster whose needed input was not
//! read makes the check `skipped` for it, never a pass.

use std::collections::BTreeMap;

use super::{
    Member,
    facts::{DEFAULT_CLUSTER_NAME, RemoteInjector},
    mesh::{Mesh, meshes},
    order::{self, MeshOrder},
};
use crate::{
    checks::{Category, Finding},
    snapshot::Source,
    version::IstioVersion,
};

const CAT: Category = Category::MultiCluster;

/// What the fleet checks found.
#[derive(Debug, Clone)]
pub struct FleetChecks {
    /// The multi-cluster meshes.
    pub meshes: Vec<Mesh>,
    /// Findings across clusters.
    pub findings: Vec<Finding>,
    /// For a target: the order to upgrade each mesh's clusters in.
    pub order: Vec<MeshOrder>,
}

/// Runs the multi-cluster checks over the clusters read (and, for a target, the upgrade order).
pub fn check(members: &[Member], target: Option<&IstioVersion>) -> FleetChecks {
    let meshes = meshes(members);
    let mut findings = Vec::new();
    if meshes.is_empty() {
        findings.push(Finding::ok(
            "fleet.meshes",
            CAT,
            format!(
                "no two of the {} cluster(s) read share a mesh: nothing to judge across clusters",
                members.len()
            ),
        ));
    }
    for mesh in &meshes {
        let ms: Vec<&Member> = mesh.members.iter().map(|i| &members[*i]).collect();
        findings.push(describe(mesh, &ms));
        findings.extend(identity(mesh, &ms));
        findings.extend(control_plane_skew(mesh, &ms));
        findings.extend(remote_injection(&ms));
        findings.extend(remote_secrets(mesh, &ms));
        findings.extend(revisions_served(mesh, &ms));
    }
    let mut order = Vec::new();
    if let Some(t) = target {
        let (o, f) = order::order(members, &meshes, t);
        order = o;
        findings.extend(f);
    }
    FleetChecks {
        meshes,
        findings,
        order,
    }
}

fn describe(mesh: &Mesh, ms: &[&Member]) -> Finding {
    let of = |remote: bool| -> String {
        let names: Vec<&str> = ms
            .iter()
            .filter(|m| m.facts.is_remote() == remote)
            .map(|m| m.name.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    Finding::ok(
        "fleet.meshes",
        CAT,
        format!(
            "mesh `{}`: {} cluster(s); primaries: {}; remotes: {}",
            mesh.id,
            ms.len(),
            of(false),
            of(true)
        ),
    )
}

/// The clusters that did not read one of `sources`, as a skipped finding.
fn unread(id: &'static str, ms: &[&Member], sources: &[Source]) -> Option<Finding> {
    let missing: Vec<String> = ms
        .iter()
        .filter_map(|m| m.facts.missing(sources).map(|r| format!("{}: {r}", m.name)))
        .collect();
    (!missing.is_empty()).then(|| {
        Finding::skipped(
            id,
            CAT,
            format!(
                "not judged for {} cluster(s) whose input was not read",
                missing.len()
            ),
        )
        .objects(missing)
    })
}

/// One mesh ID, one trust domain and distinct cluster names across a mesh.
fn identity(mesh: &Mesh, ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.mesh-identity";
    if let Some(f) = unread(ID, ms, &[Source::ConfigMaps]) {
        return vec![f];
    }
    let mut out = Vec::new();
    let ids = spread(ms, |m| m.facts.mesh_ids.iter().cloned().collect());
    if ids.len() > 1 {
        out.push(
            Finding::warning(ID, CAT, format!("the clusters of mesh `{}` disagree on the mesh ID", mesh.id))
                .objects(listing(&ids))
                .hint("give every cluster's install the same `values.global.meshID` (changing it restarts every proxy)"),
        );
    }
    let domains = spread(ms, |m| m.facts.trust_domains.iter().cloned().collect());
    if domains.len() > 1 {
        out.push(
            Finding::warning(ID, CAT, format!("the clusters of mesh `{}` have different trust domains: workloads of one reject the others' certificates", mesh.id))
                .objects(listing(&domains))
                .hint("use one `meshConfig.trustDomain`, or list the others in `meshConfig.trustDomainAliases`"),
        );
    }
    out.extend(cluster_names(mesh, ms));
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            format!(
                "mesh `{}`: one mesh ID, one trust domain, distinct cluster names",
                mesh.id
            ),
        ));
    }
    out
}

/// Values and the clusters that have each.
fn spread(ms: &[&Member], of: impl Fn(&Member) -> Vec<String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in ms {
        for v in of(m) {
            out.entry(v).or_default().push(m.name.clone());
        }
    }
    out
}

fn listing(map: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    map.iter()
        .map(|(v, who)| format!("`{v}`: {}", who.join(", ")))
        .collect()
}

fn cluster_names(mesh: &Mesh, ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.mesh-identity";
    let names = spread(ms, |m| m.facts.cluster_names.iter().cloned().collect());
    let mut out = Vec::new();
    let shared: BTreeMap<String, Vec<String>> = names
        .iter()
        .filter(|(n, who)| who.len() > 1 || *n == DEFAULT_CLUSTER_NAME)
        .map(|(n, who)| (n.clone(), who.clone()))
        .collect();
    if !shared.is_empty() {
        out.push(
            Finding::error(ID, CAT, format!("clusters of mesh `{}` share a cluster name (or keep Istio's default `{DEFAULT_CLUSTER_NAME}`): istiod cannot tell their endpoints and remote secrets apart", mesh.id))
                .objects(listing(&shared))
                .hint("give each cluster's install its own `values.global.multiCluster.clusterName`"),
        );
    }
    out
}

/// Control planes of different clusters of a mesh within one minor of each other.
fn control_plane_skew(mesh: &Mesh, ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.control-plane-skew";
    if let Some(f) = unread(ID, ms, &[Source::Deployments]) {
        return vec![f];
    }
    let planes: Vec<(&str, &str, &IstioVersion)> =
        ms.iter()
            .flat_map(|m| {
                m.facts.control_planes.iter().filter_map(|c| {
                    Some((m.name.as_str(), c.revision.as_str(), c.version.as_ref()?))
                })
            })
            .collect();
    let worst = planes
        .iter()
        .flat_map(|a| planes.iter().map(move |b| (a, b)))
        .filter(|(a, b)| a.0 != b.0)
        .max_by_key(|(a, b)| (b.2.minors_since(a.2), b.2.clone()));
    let show = |p: &(&str, &str, &IstioVersion)| format!("{} ({}/{})", p.2, p.0, p.1);
    match worst {
        None => vec![Finding::ok(
            ID,
            CAT,
            format!("mesh `{}` has control planes in one cluster only", mesh.id),
        )],
        Some((lo, hi)) if hi.2.minors_since(lo.2) <= 1 => vec![Finding::ok(
            ID,
            CAT,
            format!(
                "control planes of mesh `{}` are within one minor across clusters: {} … {}",
                mesh.id,
                show(lo),
                show(hi)
            ),
        )],
        Some((lo, hi)) => vec![
            Finding::error(
                ID,
                CAT,
                format!(
                    "control planes of mesh `{}` are {} minors apart across clusters: {} and {}; one minor is the most between clusters",
                    mesh.id,
                    hi.2.minors_since(lo.2),
                    show(lo),
                    show(hi)
                ),
            )
            .objects(planes.iter().map(show))
            .hint(format!(
                "upgrade `{}` toward 1.{} first: `kubectl mesh precheck --context {} --target-version <1.{}.x>`",
                lo.0,
                lo.2.minor() + 1,
                lo.0,
                lo.2.minor() + 1
            )),
        ],
    }
}

/// The primary a remote injector sends pods to: the cluster with an istiod at its endpoint.
pub(super) fn primary_of<'a>(inj: &RemoteInjector, ms: &[&'a Member]) -> Option<&'a Member> {
    let e = inj.endpoint.as_ref()?;
    ms.iter().copied().find(|m| m.facts.endpoints.contains(e))
}

/// Every injector of a remote cluster sends pods to a primary that runs its revision.
fn remote_injection(ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.remote-injection";
    let mut out: Vec<Finding> = unread(ID, ms, &[Source::MutatingWebhooks])
        .into_iter()
        .collect();
    for r in ms {
        for inj in &r.facts.remote_injectors {
            out.extend(judge_injector(r, inj, ms));
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            "no cluster of the mesh injects through another cluster's istiod",
        ));
    }
    out
}

fn judge_injector(r: &Member, inj: &RemoteInjector, ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.remote-injection";
    let what = format!(
        "`{}`'s injector `{}` (revision `{}`)",
        r.name, inj.webhook, inj.revision
    );
    let Some(e) = &inj.endpoint else {
        return vec![Finding::warning(
            ID,
            CAT,
            format!(
                "{what}: where it sends pods cannot be told (no URL, no Service with an address, no remotePilotAddress)"
            ),
        )];
    };
    let Some(p) = primary_of(inj, ms) else {
        return vec![Finding::skipped(
            ID,
            CAT,
            format!(
                "{what} sends pods to {e}, which is no cluster of this run: add its context to judge it"
            ),
        )];
    };
    let namespaces = inj
        .namespaces
        .iter()
        .map(|n| format!("{}: Namespace/{n}", r.name));
    if !p.facts.runs(&inj.revision) {
        let has: Vec<&str> = p
            .facts
            .control_planes
            .iter()
            .map(|c| c.revision.as_str())
            .collect();
        return vec![Finding::error(ID, CAT, format!("{what} sends pods to `{}` ({e}), which runs no istiod of revision `{}` (it runs: {}): the namespaces it selects get another revision's proxy, or none (pods rejected)", p.name, inj.revision, has.join(", ")))
            .objects(namespaces)
            .hint(format!("install revision `{}` on `{}` first (`kubectl mesh upgrade --canary -f <manifest> --context {}`), or point the webhook at a primary that runs it", inj.revision, p.name, p.name))];
    }
    let mut out = vec![Finding::ok(
        ID,
        CAT,
        format!("{what} injects through `{}` ({e}), which runs it", p.name),
    )];
    out.extend(install_skew(r, inj, p));
    out.extend(proxy_skew_remote(r, inj, p));
    out.extend(path_cluster(r, inj));
    out.extend(leader(r, p));
    out
}

/// The remote's own install (CRDs, webhooks) against the version its primary runs.
fn install_skew(r: &Member, inj: &RemoteInjector, p: &Member) -> Option<Finding> {
    let mine = r.facts.remote_install_versions.get(&inj.revision)?;
    let theirs = p.facts.revision_version(&inj.revision)?;
    (theirs.minors_since(mine).abs() > 1).then(|| {
        Finding::warning("fleet.remote-injection", CAT, format!("`{}` was installed for Istio {mine}, but `{}` injects it with {theirs}: more than one minor apart", r.name, p.name))
            .hint(format!("install the remote profile of {theirs} on `{}`", r.name))
    })
}

/// A remote's proxies against the primary istiod that serves them (never newer, at most one
/// minor behind), as `skew.data-plane` judges proxies of a local istiod.
fn proxy_skew_remote(r: &Member, inj: &RemoteInjector, p: &Member) -> Option<Finding> {
    use crate::version::{ProxySkew, proxy_skew};
    let cp = p.facts.revision_version(&inj.revision)?;
    let proxies = r.facts.remote_proxies.get(&inj.revision)?;
    let bad: Vec<String> = proxies
        .iter()
        .filter(|(v, _)| {
            matches!(
                proxy_skew(v, cp),
                ProxySkew::Newer | ProxySkew::TooOld { .. }
            )
        })
        .map(|(v, n)| format!("{}: {n} proxies at {v}", r.name))
        .collect();
    (!bad.is_empty()).then(|| {
        Finding::error("fleet.remote-injection", CAT, format!("proxies of `{}` (revision `{}`) are newer than, or more than one minor behind, the istiod of `{}` that serves them ({cp})", r.name, inj.revision, p.name))
            .objects(bad)
            .hint(format!("restart them onto {cp}: `kubectl mesh upgrade dataplane -A --context {}`", r.name))
    })
}

/// `/inject/cluster/<c>/net/<n>`: istiod registers the pods under cluster `c`.
fn path_cluster(r: &Member, inj: &RemoteInjector) -> Option<Finding> {
    let path = inj.path.as_deref()?;
    let mut parts = path.split('/');
    let c = parts.by_ref().skip_while(|p| *p != "cluster").nth(1)?;
    let own = r.facts.cluster_name()?;
    (c != own).then(|| {
        Finding::warning("fleet.remote-injection", CAT, format!("`{}`'s injector `{}` names cluster `{c}` in its path, but the cluster is `{own}`: its pods are registered under the wrong cluster", r.name, inj.webhook))
            .hint(format!("install with `values.istiodRemote.injectionPath=/inject/cluster/{own}/net/<network>`"))
    })
}

/// An istiod with `EXTERNAL_ISTIOD=true` manages only remotes whose Istio namespace names it.
fn leader(r: &Member, p: &Member) -> Option<Finding> {
    if !p.facts.external_istiod || r.facts.unread.contains_key(&Source::Namespaces) {
        return None;
    }
    let name = p.facts.cluster_name()?;
    let named = r
        .facts
        .control_plane_clusters
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c == "*" || c == name));
    (!named).then(|| {
        Finding::warning("fleet.remote-injection", CAT, format!("`{}` runs istiod with EXTERNAL_ISTIOD, but `{}`'s Istio namespace does not name `{name}` in topology.istio.io/controlPlaneClusters: the primary will not manage it (webhook CA bundles, validation)", p.name, r.name))
            .hint(format!("kubectl annotate namespace istio-system topology.istio.io/controlPlaneClusters={name} --context {}", r.name))
    })
}

/// Remote secrets: every remote is read by its primary; primaries read each other.
fn remote_secrets(mesh: &Mesh, ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.remote-secrets";
    if let Some(f) = unread(ID, ms, &[Source::RemoteSecrets, Source::ConfigMaps]) {
        return vec![f];
    }
    let holders = |cluster: &str| -> Vec<&str> {
        ms.iter()
            .filter(|m| m.facts.remote_secrets.iter().any(|s| s.cluster == cluster))
            .map(|m| m.name.as_str())
            .collect()
    };
    let mut out = Vec::new();
    for r in ms.iter().filter(|m| m.facts.is_remote()) {
        let Some(n) = r.facts.cluster_name() else {
            continue;
        };
        if holders(n).is_empty() {
            out.push(Finding::error(ID, CAT, format!("no cluster of mesh `{}` holds a remote secret for remote `{}` (cluster `{n}`): its primary cannot read its API server, so its workloads get no certificates and its services are not discovered", mesh.id, r.name))
                .hint(format!("istioctl create-remote-secret --context {} --name {n} | kubectl apply -f - --context <primary>", r.name)));
        }
    }
    let primaries: Vec<&&Member> = ms.iter().filter(|m| m.facts.is_primary()).collect();
    for a in &primaries {
        for b in primaries.iter().filter(|b| b.name != a.name) {
            let Some(n) = b.facts.cluster_name() else {
                continue;
            };
            if !a.facts.remote_secrets.iter().any(|s| s.cluster == n) {
                out.push(Finding::warning(ID, CAT, format!("primary `{}` holds no remote secret for primary `{}` (cluster `{n}`): services of `{}` are not visible to the proxies of `{}`", a.name, b.name, b.name, a.name))
                    .hint(format!("istioctl create-remote-secret --context {} --name {n} | kubectl apply -f - --context {}", b.name, a.name)));
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            format!(
                "mesh `{}`: every remote is read by a primary and the primaries read each other",
                mesh.id
            ),
        ));
    }
    out
}

/// A revision or tag asked for in one cluster is served there, not only in another cluster.
fn revisions_served(mesh: &Mesh, ms: &[&Member]) -> Vec<Finding> {
    const ID: &str = "fleet.revision-served";
    if let Some(f) = unread(ID, ms, &[Source::Namespaces, Source::MutatingWebhooks]) {
        return vec![f];
    }
    let mut out = Vec::new();
    for m in ms {
        for d in &m.facts.dangling {
            let elsewhere: Vec<&str> = ms
                .iter()
                .filter(|o| o.name != m.name && o.facts.served.contains_key(&d.wants))
                .map(|o| o.name.as_str())
                .collect();
            if !elsewhere.is_empty() {
                out.push(Finding::error(ID, CAT, format!("Namespace `{}` in `{}` asks for `{}`, which only {} serve(s): an istiod injects its own cluster and its remotes only", d.namespace, m.name, d.wants, elsewhere.join(", ")))
                    .objects([format!("{}: Namespace/{}", m.name, d.namespace)])
                    .hint(format!("install `{}` in `{}` (`kubectl mesh upgrade --canary -f <manifest> --context {}`), or label the namespace with a revision `{}` serves", d.wants, m.name, m.name, m.name)));
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(ID, CAT, format!("mesh `{}`: every revision and tag a namespace asks for is served in its own cluster", mesh.id)));
    }
    out
}
