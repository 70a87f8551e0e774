//! Checks that apply the release data ([`crate::releases`]): end of life of the installed and
//! target versions, known hazards between a control plane and the proxies it serves, images
//! pulled from hosts Istio retired, and defaults a target changes that this cluster relies on.
//! Every fact comes from the data; this module only knows how to look for it in a snapshot.

use std::collections::BTreeMap;

use jiff::civil::Date;

use super::{Category, Context, Finding, TargetMode, obj, skew::short_list};
use crate::{
    inventory::injected_revision,
    releases::{Hazard, Release, Releases, RetiredHost},
    snapshot::{Source, name, namespace},
    version::{IstioVersion, image_version},
};

const CAT: Category = Category::Releases;

/// The versions whose support is judged: every installed control plane, then the target.
fn subjects(ctx: &Context<'_>) -> Vec<(IstioVersion, String)> {
    let mut out: Vec<(IstioVersion, String)> = Vec::new();
    if ctx.snap.gap(Source::Deployments).is_none() {
        for c in &ctx.inv.control_planes {
            if let Some(v) = &c.version {
                let v = v.without_variant();
                out.push((
                    v.clone(),
                    format!("revision `{}` runs Istio {v}", c.revision),
                ));
            }
        }
    }
    if let Some(t) = ctx.target {
        let v = t.version.without_variant();
        out.push((v.clone(), format!("the target Istio {v}")));
    }
    out
}

/// Installed and target versions are inside Istio's support window.
pub fn end_of_life(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "release.end-of-life";
    let Some(today) = ctx.knowledge.today else {
        return vec![Finding::skipped(ID, CAT, "no date to judge support on")];
    };
    let mut out = Vec::new();
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Deployments]) {
        out.push(f);
    }
    let subjects = subjects(ctx);
    if subjects.is_empty() && out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            "no Istio version installed or targeted",
        ));
    }
    let data = ctx.knowledge.releases;
    out.extend(
        subjects
            .into_iter()
            .map(|(v, what)| support_of(data, today, &v, &what)),
    );
    out
}

fn support_of(data: &Releases, today: Date, v: &IstioVersion, what: &str) -> Finding {
    const ID: &str = "release.end-of-life";
    let oldest = data.oldest();
    match data.release(v) {
        Some(r) if r.out_of_support(today) => {
            let eol = r.end_of_life.map(|d| d.to_string()).unwrap_or_default();
            Finding::warning(
                ID,
                CAT,
                format!("{what}: Istio {} reached end of life on {eol} and gets no more fixes, security fixes included", r.name()),
            )
            .hint(supported_hint(data, today))
        }
        Some(r) => Finding::ok(
            ID,
            CAT,
            format!("{what}: Istio {} is supported{}", r.name(), until(r)),
        ),
        None if v.major() == 1 && v.minor() < oldest.minor && oldest.out_of_support(today) => {
            Finding::warning(
                ID,
                CAT,
                format!(
                    "{what}: older than Istio {}, which reached end of life on {}: out of support",
                    oldest.name(),
                    oldest
                        .end_of_life
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                ),
            )
            .hint(supported_hint(data, today))
        }
        None => {
            let (why, hint) = data.unknown(v);
            Finding::warning(
                ID,
                CAT,
                format!(
                    "{what}: no support data for Istio {} ({why})",
                    v.minor_string()
                ),
            )
            .hint(hint)
        }
    }
}

fn until(r: &Release) -> String {
    match (r.end_of_life, r.expected_end_of_life) {
        (Some(eol), _) => format!(" until {eol}"),
        (None, Some(m)) => format!(" (end of life expected in {m})"),
        (None, None) => " (end of life not announced)".to_owned(),
    }
}

fn supported_hint(data: &Releases, today: Date) -> String {
    let supported: Vec<String> = data
        .releases
        .iter()
        .filter(|r| !r.out_of_support(today))
        .map(Release::name)
        .collect();
    let newest = supported
        .last()
        .cloned()
        .unwrap_or_else(|| data.newest().name());
    format!(
        "upgrade to a supported minor ({}), one minor at a time in place or up to two as a canary: kubectl mesh precheck --target-version {newest}.<patch>",
        supported.join(", ")
    )
}

/// Known hazards (from the data) between a control plane and the proxies it serves: now, and
/// after an in-place change of the target's revision.
pub fn known_hazards(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "release.known-hazards";
    if let Some(f) = ctx.missing(ID, CAT, &[Source::Deployments, Source::Pods]) {
        return vec![f];
    }
    let data = ctx.knowledge.releases;
    let serving = match serving(ctx, data) {
        Ok(s) => s,
        Err(skipped) => return vec![skipped],
    };
    let mut out = Vec::new();
    for (rev, (istiod, after)) in &serving {
        let Some(release) = data.release(istiod) else {
            continue;
        };
        for h in release
            .hazards
            .iter()
            .filter(|h| h.affects_control_plane(istiod))
        {
            let pods = affected_pods(ctx, rev, |v| h.affects_proxy(v));
            if !pods.is_empty() {
                out.push(hazard_finding(h, rev, istiod, *after, pods));
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            ID,
            CAT,
            "no known hazard applies to these control planes and proxies",
        ));
    }
    out
}

/// Which istiod version serves each revision's proxies: now (`false`), or after an in-place
/// change (`true`). A target the data does not know is a skipped finding.
fn serving(
    ctx: &Context<'_>,
    data: &Releases,
) -> Result<BTreeMap<String, (IstioVersion, bool)>, Finding> {
    let mut serving: BTreeMap<String, (IstioVersion, bool)> = BTreeMap::new();
    for c in &ctx.inv.control_planes {
        if let Some(v) = &c.version {
            serving.insert(c.revision.clone(), (v.without_variant(), false));
        }
    }
    if let Some(t) = ctx.target.filter(|t| t.mode == TargetMode::InPlace) {
        if data.release(&t.version).is_none() {
            let (why, hint) = data.unknown(&t.version);
            let msg = format!("no hazard data for the target Istio {} ({why})", t.version);
            return Err(Finding::skipped("release.known-hazards", CAT, msg).hint(hint));
        }
        serving.insert(t.revision.clone(), (t.version.without_variant(), true));
    }
    Ok(serving)
}

fn hazard_finding(
    h: &Hazard,
    rev: &str,
    istiod: &IstioVersion,
    after: bool,
    pods: Vec<String>,
) -> Finding {
    let (when, hint) = if after {
        (
            format!("after `{rev}` moves to istiod {istiod}"),
            h.fix.clone(),
        )
    } else {
        let namespaces: std::collections::BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| p.strip_prefix("Pod/")?.split('/').next())
            .collect();
        let ns: Vec<&str> = namespaces.into_iter().collect();
        (
            format!("`{rev}` runs istiod {istiod}"),
            format!(
                "{}; to restart them onto `{rev}`'s current proxy: kubectl mesh upgrade dataplane -n {}",
                h.fix,
                ns.join(" -n ")
            ),
        )
    };
    let msg = format!(
        "{when}: {} ({} pod(s) of `{rev}` affected; {})",
        h.summary,
        pods.len(),
        h.source
    );
    Finding::warning("release.known-hazards", CAT, msg)
        .objects(short_list(pods))
        .hint(hint)
}

/// `Pod/ns/name (proxy 1.29.1)` of running pods injected by `rev` whose proxy matches.
fn affected_pods(
    ctx: &Context<'_>,
    rev: &str,
    matches: impl Fn(&IstioVersion) -> bool,
) -> Vec<String> {
    ctx.snap
        .pods
        .iter()
        .filter(|p| !p.is_finished())
        .filter(|p| {
            injected_revision(p)
                .or_else(|| p.label("istio.io/rev").map(str::to_owned))
                .as_deref()
                == Some(rev)
        })
        .filter_map(|p| {
            let v = p.proxy_image().and_then(image_version)?.without_variant();
            matches(&v).then(|| format!("Pod/{}/{} (proxy {v})", p.namespace(), p.name()))
        })
        .collect()
}

/// Running pods, Istio workloads and the target manifest pull no image from a retired host.
pub fn retired_image_hosts(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "release.retired-image-hosts";
    let data = ctx.knowledge.releases;
    let sources = [Source::Pods, Source::Deployments, Source::DaemonSets];
    let read: Vec<Source> = sources
        .into_iter()
        .filter(|s| ctx.snap.gap(*s).is_none())
        .collect();
    let target_images = ctx.target.map_or(&[][..], |t| t.images.as_slice());
    if read.is_empty() && target_images.is_empty() {
        return ctx.missing(ID, CAT, &sources).into_iter().collect();
    }
    let mut live: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (object, image) in live_images(ctx, &read) {
        if let Some(h) = data.retired_host(image) {
            live.entry(h.prefix.as_str()).or_default().push(object);
        }
    }
    let mut out = Vec::new();
    for (prefix, objects) in live {
        let Some(h) = data.retired_hosts.iter().find(|h| h.prefix == prefix) else {
            continue;
        };
        out.push(
            Finding::warning(
                ID,
                CAT,
                format!("{} object(s) pull images from {}: {}", objects.len(), h.prefix, retirement(h, ctx.knowledge.today)),
            )
            .objects(short_list(objects))
            .hint(format!(
                "pull from {} instead: generate the control plane's manifest with `--set hub={}`, apply it with `kubectl mesh upgrade -f`, then restart workloads onto it with `kubectl mesh upgrade dataplane -A`",
                h.replacement, h.replacement
            )),
        );
    }
    out.extend(manifest_finding(data, target_images, ctx.knowledge.today));
    if out.is_empty() {
        let mut what: Vec<&str> = read.iter().map(|s| s.describe()).collect();
        if !target_images.is_empty() {
            what.push("the target manifest");
        }
        out.push(Finding::ok(
            ID,
            CAT,
            format!("no image from a retired host in {}", what.join(", ")),
        ));
    }
    if read.len() < sources.len() {
        out.extend(ctx.missing(ID, CAT, &sources));
    }
    out
}

/// `(object, image)` for every container of running pods and Istio workloads that was read.
fn live_images<'a>(ctx: &'a Context<'_>, read: &[Source]) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    let template = |spec: Option<&'a k8s_openapi::api::core::v1::PodSpec>| {
        spec.into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .filter_map(|c| c.image.as_deref())
    };
    if read.contains(&Source::Deployments) {
        for d in &ctx.snap.deployments {
            let o = obj("Deployment", namespace(&d.metadata), name(&d.metadata));
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            out.extend(template(spec).map(|i| (o.clone(), i)));
        }
    }
    if read.contains(&Source::DaemonSets) {
        for d in &ctx.snap.daemonsets {
            let o = obj("DaemonSet", namespace(&d.metadata), name(&d.metadata));
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            out.extend(template(spec).map(|i| (o.clone(), i)));
        }
    }
    if read.contains(&Source::Pods) {
        for p in ctx.snap.pods.iter().filter(|p| !p.is_finished()) {
            let o = obj("Pod", p.namespace(), p.name());
            let spec = p.spec();
            let images = spec
                .containers
                .iter()
                .chain(&spec.init_containers)
                .filter_map(|c| c.image.as_deref());
            out.extend(images.map(|i| (o.clone(), i)));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn manifest_finding(data: &Releases, images: &[String], today: Option<Date>) -> Vec<Finding> {
    let mut by_host: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in images {
        if let Some(h) = data.retired_host(i) {
            by_host
                .entry(h.prefix.as_str())
                .or_default()
                .push(i.clone());
        }
    }
    by_host
        .into_iter()
        .filter_map(|(prefix, mut imgs)| {
            let h = data.retired_hosts.iter().find(|h| h.prefix == prefix)?;
            imgs.sort();
            imgs.dedup();
            Some(
                Finding::warning(
                    "release.retired-image-hosts",
                    CAT,
                    format!(
                        "the target manifest pulls {} image(s) from {}: {}",
                        imgs.len(),
                        h.prefix,
                        retirement(h, today)
                    ),
                )
                .objects(imgs)
                .hint(format!(
                    "generate the manifest with `--set hub={}`",
                    h.replacement
                )),
            )
        })
        .collect()
}

fn retirement(h: &RetiredHost, today: Option<Date>) -> String {
    let gone = today.is_some_and(|t| t > h.goes_away.last_day());
    let when = if gone {
        format!("Istio decommissioned it in {}", h.goes_away)
    } else {
        let brownout = h
            .last_brownout
            .map(|d| format!(", with brown-outs until {d}"))
            .unwrap_or_default();
        format!("Istio decommissions it in {}{brownout}", h.goes_away)
    };
    format!(
        "{when} (nothing newer than {} is published there); the next time such a pod is rescheduled it fails with ImagePullBackOff",
        format_args!("1.{}", h.last_minor)
    )
}

/// What a detector found about a changed default.
enum Detected {
    /// The objects that rely on the old default (possibly none).
    Objects(Vec<String>),
    /// Its input was not read: why.
    NotRead(String),
    /// This build has no such detector (a newer data file), or the data names none.
    Unknown,
}

/// Looks for the objects that rely on the old default of a changed setting.
fn detect(ctx: &Context<'_>, detector: Option<&str>) -> Detected {
    const ID: &str = "config.changed-defaults";
    match detector {
        Some("zipkin-service") => {
            match ctx.missing(ID, Category::Configuration, &[Source::Services]) {
                Some(f) => Detected::NotRead(f.message),
                None => Detected::Objects(
                    ctx.snap
                        .services
                        .iter()
                        .filter(|s| name(&s.metadata) == "zipkin")
                        .map(|s| obj("Service", namespace(&s.metadata), "zipkin"))
                        .collect(),
                ),
            }
        }
        _ => Detected::Unknown,
    }
}

/// Defaults the target changes (from the data) that this cluster relies on, with the
/// `compatibilityVersion` that keeps them (istioctl's IST0168/IST0169).
pub fn changed_defaults(ctx: &Context<'_>) -> Vec<Finding> {
    const ID: &str = "config.changed-defaults";
    let cat = Category::Configuration;
    let Some(t) = ctx.target else {
        return vec![Finding::ok(ID, cat, "no target version given")];
    };
    if let Some(f) = ctx.missing(ID, cat, &[Source::Deployments]) {
        return vec![f];
    }
    let Some(from) = ctx
        .inv
        .control_planes
        .iter()
        .filter_map(|c| c.version.as_ref())
        .min()
    else {
        return vec![Finding::ok(ID, cat, "no installed version to compare with")];
    };
    let data = ctx.knowledge.releases;
    let Some(target) = data.release(&t.version) else {
        let (why, hint) = data.unknown(&t.version);
        return vec![
            Finding::skipped(
                ID,
                cat,
                format!(
                    "no data on the defaults Istio {} changed ({why})",
                    t.version
                ),
            )
            .hint(hint),
        ];
    };
    let mut out = Vec::new();
    let mut unjudged = Vec::new();
    let range = (from.minor() + 1)..=t.version.minor();
    for r in data
        .releases
        .iter()
        .filter(|r| from.major() == 1 && range.contains(&r.minor))
    {
        for d in &r.changed_defaults {
            match detect(ctx, d.detect.as_deref()) {
                Detected::Objects(objects) if objects.is_empty() => {}
                Detected::Objects(objects) => out.push(
                    Finding::warning(
                        ID,
                        cat,
                        format!("Istio {} changed {}: {}", r.name(), d.setting, d.summary),
                    )
                    .objects(objects)
                    .hint(keep_hint(target, from.minor(), r.minor, &d.setting)),
                ),
                Detected::NotRead(why) => out.push(Finding::skipped(
                    ID,
                    cat,
                    format!(
                        "Istio {} changed {}; not judged: {why}",
                        r.name(),
                        d.setting
                    ),
                )),
                Detected::Unknown => unjudged.push(format!("{} ({})", d.setting, r.name())),
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(ID, cat, ok_message(from, t, target, &unjudged)));
    }
    out
}

/// The `compatibilityVersion` that keeps a default changed in `since`: the oldest profile the
/// target ships between the installed minor and the change.
fn keep_hint(target: &Release, from: u64, since: u64, setting: &str) -> String {
    match target
        .compatibility_profiles
        .iter()
        .find(|p| **p >= from && **p < since)
    {
        Some(p) => format!(
            "keep the old behaviour with --set compatibilityVersion=1.{p} (Istio {} ships it), or adapt the objects above",
            target.name()
        ),
        None => format!(
            "Istio {} ships no compatibility profile that keeps it: set {setting} explicitly in the manifest, or adapt the objects above",
            target.name()
        ),
    }
}

fn ok_message(
    from: &IstioVersion,
    t: &super::Target,
    target: &Release,
    unjudged: &[String],
) -> String {
    let mut msg = format!(
        "no changed default between {from} and {} affects this cluster",
        t.version
    );
    if !unjudged.is_empty() {
        let keep = if target.ships_profile(from.minor()) {
            format!("; compatibilityVersion={} keeps them", from.minor_string())
        } else {
            String::new()
        };
        msg.push_str(&format!(
            " as far as kubectl-mesh can see (not visible in what it reads: {}{keep})",
            unjudged.join(", ")
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checks::{Knowledge, Outcome, Target},
        inventory::Inventory,
        releases::{BUILTIN, Origin},
        snapshot::{ContainerInfo, PodInfo},
        testkit::{Snap, pod_object, service},
    };

    const TODAY: &str = "2026-12-04";

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    /// The built-in data with `old` replaced by `new` (which must occur once).
    fn data_with(old: &str, new: &str) -> Releases {
        assert_eq!(BUILTIN.matches(old).count(), 1, "`{old}`");
        Releases::parse(
            &BUILTIN.replacen(old, new, 1),
            Origin::File("edited.yaml".into()),
        )
        .unwrap()
    }

    struct Run<'a> {
        data: &'a Releases,
        today: Option<Date>,
        target: Option<(&'a str, TargetMode, Vec<String>)>,
    }

    impl<'a> Run<'a> {
        fn new() -> Self {
            Self {
                data: Releases::builtin(),
                today: Some(day(TODAY)),
                target: None,
            }
        }
        fn data(mut self, d: &'a Releases) -> Self {
            self.data = d;
            self
        }
        fn today(mut self, t: Option<&str>) -> Self {
            self.today = t.map(day);
            self
        }
        fn target(mut self, v: &'a str, mode: TargetMode) -> Self {
            self.target = Some((v, mode, Vec::new()));
            self
        }
        fn images(mut self, images: &[&str]) -> Self {
            if let Some(t) = &mut self.target {
                t.2 = images.iter().map(|i| (*i).to_owned()).collect();
            }
            self
        }
        fn check(&self, f: fn(&Context<'_>) -> Vec<Finding>, s: Snap) -> Vec<Finding> {
            let (snap, inv): (_, Inventory) = s.build();
            let target = self.target.as_ref().map(|(v, mode, images)| Target {
                version: IstioVersion::parse(v).unwrap(),
                revision: "default".into(),
                mode: *mode,
                agents: None,
                images: images.clone(),
            });
            f(&Context {
                snap: &snap,
                inv: &inv,
                target: target.as_ref(),
                canary_requested: false,
                knowledge: Knowledge {
                    releases: self.data,
                    today: self.today,
                },
            })
        }
    }

    fn only(findings: &[Finding]) -> &Finding {
        assert_eq!(findings.len(), 1, "{findings:#?}");
        &findings[0]
    }

    #[test]
    fn end_of_life_ok_warning_and_missing() {
        let supported =
            Run::new().check(end_of_life, Snap::new().control_plane("default", "1.30.3"));
        let f = only(&supported);
        assert_eq!(f.result, Outcome::Ok);
        assert!(
            f.message
                .starts_with("revision `default` runs Istio 1.30.3: Istio 1.30 is supported"),
            "{}",
            f.message
        );
        let ended = Run::new().check(end_of_life, Snap::new().control_plane("default", "1.29.6"));
        let f = only(&ended);
        assert_eq!(f.result, Outcome::Warning);
        assert_eq!(
            f.message,
            "revision `default` runs Istio 1.29.6: Istio 1.29 reached end of life on 2026-10-12 and gets no more fixes, security fixes included"
        );
        let supported: Vec<String> = Releases::builtin()
            .releases
            .iter()
            .filter(|r| !r.out_of_support(day(TODAY)))
            .map(Release::name)
            .collect();
        assert!(supported.starts_with(&["1.30".to_owned()]), "{supported:?}");
        assert!(
            f.hint
                .as_deref()
                .unwrap()
                .contains(&format!("({})", supported.join(", "))),
            "{f:?}"
        );
        let no_date = Run::new()
            .today(None)
            .check(end_of_life, Snap::new().control_plane("default", "1.29.6"));
        assert_eq!(only(&no_date).result, Outcome::Skipped);
        let unread = Snap::new()
            .control_plane("default", "1.29.6")
            .with(|s| s.add_gap(Source::Deployments, "forbidden"));
        assert_eq!(
            only(&Run::new().check(end_of_life, unread)).result,
            Outcome::Skipped
        );
    }

    #[test]
    fn end_of_life_follows_the_date_and_the_data() {
        let snap = || Snap::new().control_plane("default", "1.29.6");
        let before = Run::new()
            .today(Some("2026-10-11"))
            .check(end_of_life, snap());
        assert_eq!(only(&before).result, Outcome::Ok, "{before:?}");
        assert!(
            only(&before)
                .message
                .ends_with("supported until 2026-10-12")
        );
        let later_eol = data_with(
            "    end_of_life: 2026-10-12\n",
            "    end_of_life: 2026-12-31\n",
        );
        let f = Run::new().data(&later_eol).check(end_of_life, snap());
        assert_eq!(only(&f).result, Outcome::Ok, "the data decides: {f:?}");
    }

    #[test]
    fn unknown_and_too_old_versions_say_what_to_update() {
        let newer = Run::new()
            .target("1.99.0", TargetMode::InPlace)
            .check(end_of_life, Snap::new().control_plane("default", "1.31.1"));
        let f = newer
            .iter()
            .find(|f| f.message.starts_with("the target"))
            .unwrap();
        assert_eq!(f.result, Outcome::Warning);
        let newest = Releases::builtin().newest().name();
        assert_eq!(
            f.message,
            format!(
                "the target Istio 1.99.0: no support data for Istio 1.99 (the built-in release data knows Istio 1.20 to {newest})"
            )
        );
        assert!(f.hint.as_deref().unwrap().contains("--release-data FILE"));
        let old = Run::new().check(end_of_life, Snap::new().control_plane("default", "1.19.3"));
        let f = only(&old);
        assert_eq!(f.result, Outcome::Warning);
        assert!(
            f.message
                .contains("older than Istio 1.20, which reached end of life on 2024-06-25"),
            "{}",
            f.message
        );
    }

    fn proxies(s: Snap, version: &str, n: usize) -> Snap {
        (0..n).fold(s, |s, i| {
            s.pod("prod", &format!("web-{i}"), Some("default"), version)
        })
    }

    #[test]
    fn hazards_warn_now_and_after_an_in_place_move() {
        let now = Run::new().check(
            known_hazards,
            proxies(Snap::new().control_plane("default", "1.30.1"), "1.29.1", 2),
        );
        let f = only(&now);
        assert_eq!(f.result, Outcome::Warning);
        assert!(
            f.message
                .starts_with("`default` runs istiod 1.30.1: istiod 1.30.0 and 1.30.1 send"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains(
                "2 pod(s) of `default` affected; https://github.com/istio/istio/pull/60486"
            ),
            "{}",
            f.message
        );
        assert_eq!(
            f.objects,
            [
                "Pod/prod/web-0 (proxy 1.29.1)",
                "Pod/prod/web-1 (proxy 1.29.1)"
            ]
        );
        let before_move = || proxies(Snap::new().control_plane("default", "1.29.1"), "1.29.1", 1);
        let bad = Run::new()
            .target("1.30.1", TargetMode::InPlace)
            .check(known_hazards, before_move());
        assert!(
            only(&bad)
                .message
                .starts_with("after `default` moves to istiod 1.30.1"),
            "{bad:?}"
        );
        let fixed = Run::new()
            .target("1.30.2", TargetMode::InPlace)
            .check(known_hazards, before_move());
        assert_eq!(only(&fixed).result, Outcome::Ok);
        let canary = Run::new()
            .target("1.30.1", TargetMode::Canary)
            .check(known_hazards, before_move());
        assert_eq!(
            only(&canary).result,
            Outcome::Ok,
            "a canary's proxies start on its own version"
        );
        let recent = Run::new().check(
            known_hazards,
            proxies(Snap::new().control_plane("default", "1.30.1"), "1.29.2", 1),
        );
        assert_eq!(only(&recent).result, Outcome::Ok);
    }

    #[test]
    fn hazards_come_from_the_data_and_need_pods() {
        let snap = || proxies(Snap::new().control_plane("default", "1.30.1"), "1.29.1", 1);
        let without = data_with(
            "        control_plane: \">=1.30.0, <1.30.2\"\n",
            "        control_plane: \">=1.30.0, <1.30.1\"\n",
        );
        assert_eq!(
            only(&Run::new().data(&without).check(known_hazards, snap())).result,
            Outcome::Ok
        );
        let unread = snap().with(|s| s.add_gap(Source::Pods, "forbidden"));
        assert_eq!(
            only(&Run::new().check(known_hazards, unread)).result,
            Outcome::Skipped
        );
        let unknown = Run::new()
            .target("1.99.0", TargetMode::InPlace)
            .check(known_hazards, snap());
        assert_eq!(only(&unknown).result, Outcome::Skipped);
    }

    fn gcr_pod(s: Snap) -> Snap {
        let mut p = pod_object("prod", "web-0", Some("default"), "1.29.6");
        p.spec.containers[1] = ContainerInfo {
            name: "istio-proxy".into(),
            image: Some("gcr.io/istio-release/proxyv2:1.29.6".into()),
        };
        s.push_pod(PodInfo::from(p))
    }

    #[test]
    fn retired_hosts_in_pods_workloads_and_the_manifest() {
        let clean = Run::new().check(
            retired_image_hosts,
            Snap::new().control_plane("default", "1.30.3"),
        );
        assert_eq!(only(&clean).result, Outcome::Ok);
        let snap = gcr_pod(Snap::new().control_plane("default", "1.29.6")).with(|s| {
            let c = &mut s.deployments[0]
                .spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0];
            c.image = Some("gcr.io/istio-release/pilot:1.29.6".into());
        });
        let found = Run::new().check(retired_image_hosts, snap);
        let f = only(&found);
        assert_eq!(f.result, Outcome::Warning);
        assert_eq!(
            f.objects,
            ["Deployment/istio-system/istiod", "Pod/prod/web-0"]
        );
        assert!(
            f.message.contains(
                "Istio decommissions it in December 2026, with brown-outs until 2026-12-08"
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("ImagePullBackOff"));
        assert!(
            f.hint
                .as_deref()
                .unwrap()
                .contains("--set hub=docker.io/istio")
        );
        let manifest = Run::new()
            .today(Some("2027-01-02"))
            .target("1.30.3", TargetMode::InPlace)
            .images(&[
                "registry.istio.io/release/pilot:1.30.3",
                "docker.io/istio/proxyv2:1.30.3",
            ])
            .check(
                retired_image_hosts,
                Snap::new().control_plane("default", "1.29.6"),
            );
        let f = only(&manifest);
        assert!(f.message.starts_with("the target manifest pulls 1 image(s) from registry.istio.io/: Istio decommissioned it in December 2026"), "{}", f.message);
        assert_eq!(f.objects, ["registry.istio.io/release/pilot:1.30.3"]);
    }

    #[test]
    fn retired_hosts_judge_what_was_read() {
        let none = Snap::new().with(|s| {
            for src in [Source::Pods, Source::Deployments, Source::DaemonSets] {
                s.add_gap(src, "forbidden");
            }
        });
        assert_eq!(
            only(&Run::new().check(retired_image_hosts, none)).result,
            Outcome::Skipped
        );
        let pods_only = gcr_pod(Snap::new()).with(|s| s.add_gap(Source::Deployments, "forbidden"));
        let found = Run::new().check(retired_image_hosts, pods_only);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].result, Outcome::Warning);
        assert_eq!(found[1].result, Outcome::Skipped);
        let moved = data_with(
            "  - prefix: gcr.io/istio-release/\n",
            "  - prefix: quay.io/istio-release/\n",
        );
        let f = Run::new()
            .data(&moved)
            .check(retired_image_hosts, gcr_pod(Snap::new()));
        assert_eq!(only(&f).result, Outcome::Ok, "the hosts come from the data");
    }

    fn zipkin(v: &str) -> Snap {
        Snap::new()
            .control_plane("default", v)
            .with(|s| s.services.push(service("zipkin", &[])))
    }

    #[test]
    fn changed_defaults_name_the_compatibility_profile() {
        let f = Run::new()
            .target("1.22.0", TargetMode::InPlace)
            .check(changed_defaults, zipkin("1.21.0"));
        let f = only(&f);
        assert_eq!(f.result, Outcome::Warning);
        assert_eq!(f.objects, ["Service/istio-system/zipkin"]);
        assert_eq!(
            f.hint.as_deref(),
            Some(
                "keep the old behaviour with --set compatibilityVersion=1.21 (Istio 1.22 ships it), or adapt the objects above"
            )
        );
        let canary = Run::new()
            .target("1.23.0", TargetMode::Canary)
            .check(changed_defaults, zipkin("1.21.0"));
        assert!(
            only(&canary)
                .hint
                .as_deref()
                .unwrap()
                .contains("compatibilityVersion=1.21 (Istio 1.23")
        );
        let dropped = data_with(
            "    compatibility_profiles: [\"1.20\", \"1.21\"]\n",
            "    compatibility_profiles: [\"1.20\"]\n",
        );
        let f = Run::new()
            .data(&dropped)
            .target("1.22.0", TargetMode::InPlace)
            .check(changed_defaults, zipkin("1.21.0"));
        assert!(
            only(&f)
                .hint
                .as_deref()
                .unwrap()
                .starts_with("Istio 1.22 ships no compatibility profile that keeps it"),
            "{f:?}"
        );
        let after = Run::new()
            .target("1.30.3", TargetMode::InPlace)
            .check(changed_defaults, zipkin("1.29.6"));
        let f = only(&after);
        assert_eq!(f.result, Outcome::Ok);
        assert!(f.message.contains("not visible in what it reads: PILOT_SIDECAR_PICK_BEST_SERVICE_NAMESPACE (1.30); compatibilityVersion=1.29 keeps them"), "{}", f.message);
    }

    /// The zipkin detector reads Services: it is judged without ConfigMaps (which it never
    /// reads) and skipped without Services (never "no default affects the cluster").
    #[test]
    fn changed_defaults_missing_input_and_unknown_target() {
        let t = Run::new().target("1.22.0", TargetMode::InPlace);
        let no_config_maps = zipkin("1.21.2").with(|s| s.add_gap(Source::ConfigMaps, "not dumped"));
        let f = t.check(changed_defaults, no_config_maps);
        assert_eq!(only(&f).result, Outcome::Warning, "{f:#?}");
        assert_eq!(only(&f).objects, ["Service/istio-system/zipkin"]);
        let no_services = zipkin("1.21.2").with(|s| s.add_gap(Source::Services, "not dumped"));
        let f = t.check(changed_defaults, no_services);
        assert_eq!(only(&f).result, Outcome::Skipped, "{f:#?}");
        assert_eq!(
            only(&f).message,
            "Istio 1.22 changed meshConfig.defaultConfig.tracer; not judged: cannot read services: not dumped"
        );
        let unknown = Run::new()
            .target("1.99.0", TargetMode::InPlace)
            .check(changed_defaults, zipkin("1.31.0"));
        assert_eq!(only(&unknown).result, Outcome::Skipped);
        assert_eq!(
            only(&Run::new().check(changed_defaults, zipkin("1.21.0"))).result,
            Outcome::Ok,
            "no target"
        );
    }
}
