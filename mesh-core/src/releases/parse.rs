//! Reading release data: the YAML as written (plain strings, each entry with its line), then
//! every value parsed and the whole checked for consistency — minors without gaps, dates in
//! order, windows that make sense — so that a bad file is one error naming its line, never a
//! wrong verdict later.

use jiff::civil::Date;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    BundleMinimum, ChangedDefault, GatewayApi, Hazard, Month, NotIncluded, Origin, Release,
    Releases, RetiredHost, SCHEMA, ServedRule, Severity, SourceRef,
};

/// Why release data cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}, line {line}: {message}")]
pub struct ReleaseDataError {
    /// Where the data came from.
    pub origin: Origin,
    /// The line (1-based; the entry's first line for errors about a whole entry).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl crate::error::Classify for ReleaseDataError {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Usage
    }

    fn hints(&self) -> Vec<String> {
        let fix = match &self.origin {
            Origin::File(_) => {
                "fix the file (format: docs/release-data.md), or drop --release-data and KUBECTL_MESH_RELEASE_DATA to use the built-in data"
            }
            Origin::BuiltIn => "this build is broken: reinstall kubectl-mesh",
        };
        vec![fix.to_owned()]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    schema: Spanned<String>,
    checked: Spanned<String>,
    sources: Vec<Spanned<RawSource>>,
    #[serde(default)]
    not_included: Vec<Spanned<RawNotIncluded>>,
    #[serde(default)]
    retired_image_hosts: Vec<Spanned<RawHost>>,
    releases: Spanned<Vec<Spanned<RawRelease>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: String,
    url: String,
    about: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotIncluded {
    minor: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    prefix: String,
    replacement: String,
    last_minor: String,
    goes_away: String,
    #[serde(default)]
    last_brownout: Option<String>,
    source: String,
    #[serde(default)]
    #[allow(dead_code)]
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    minor: String,
    released: String,
    #[serde(default)]
    end_of_life: Option<String>,
    #[serde(default)]
    expected_end_of_life: Option<String>,
    kubernetes: RawKube,
    gateway_api: RawGateway,
    compatibility_profiles: Vec<String>,
    #[serde(default)]
    changed_defaults: Vec<Spanned<RawChanged>>,
    #[serde(default)]
    hazards: Vec<Spanned<RawHazard>>,
    #[serde(default)]
    #[allow(dead_code)]
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKube {
    supported: Vec<String>,
    istioctl_minimum: Vec<RawPatchMinimum>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatchMinimum {
    from_patch: u64,
    minimum: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    bundled: Vec<RawBundled>,
    served: Vec<RawServed>,
    minimum_bundle: Vec<RawMinimumBundle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundled {
    from_patch: u64,
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServed {
    version: String,
    kinds: Vec<String>,
    missing: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinimumBundle {
    crd: String,
    version: String,
    #[serde(default)]
    from_patch: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChanged {
    setting: String,
    summary: String,
    #[serde(default)]
    detect: Option<String>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHazard {
    id: String,
    control_plane: String,
    proxies: String,
    summary: String,
    fix: String,
    source: String,
}

/// Errors at one line: `at.fail(msg)`.
#[derive(Clone, Copy)]
struct At<'a> {
    origin: &'a Origin,
    line: u64,
}

impl At<'_> {
    fn fail<T>(self, message: impl Into<String>) -> Result<T, ReleaseDataError> {
        Err(ReleaseDataError {
            origin: self.origin.clone(),
            line: self.line.max(1),
            message: message.into(),
        })
    }

    fn date(self, field: &str, text: &str) -> Result<Date, ReleaseDataError> {
        match text.trim().parse::<Date>() {
            Ok(d) if text.trim().len() == 10 => Ok(d),
            _ => self.fail(format!("{field} `{text}` is not a date (YYYY-MM-DD)")),
        }
    }

    fn month(self, field: &str, text: &str) -> Result<Month, ReleaseDataError> {
        let parsed = text
            .trim()
            .split_once('-')
            .filter(|(y, m)| y.len() == 4 && m.len() == 2)
            .and_then(|(y, m)| Some((y.parse::<i16>().ok()?, m.parse::<i8>().ok()?)))
            .filter(|(_, m)| (1..=12).contains(m));
        match parsed {
            Some((year, month)) => Ok(Month { year, month }),
            None => self.fail(format!("{field} `{text}` is not a month (YYYY-MM)")),
        }
    }

    /// `"1.31"` → 31.
    fn minor(self, field: &str, text: &str) -> Result<u64, ReleaseDataError> {
        match text.trim().strip_prefix("1.").map(str::parse::<u64>) {
            Some(Ok(m)) => Ok(m),
            _ => self.fail(format!(
                "{field} `{text}` is not a minor version like \"1.31\""
            )),
        }
    }

    fn version(self, field: &str, text: &str) -> Result<semver::Version, ReleaseDataError> {
        match semver::Version::parse(text.trim().trim_start_matches('v')) {
            Ok(v) => Ok(v),
            Err(_) => self.fail(format!("{field} `{text}` is not a version like v1.5.0")),
        }
    }

    fn requirement(self, field: &str, text: &str) -> Result<semver::VersionReq, ReleaseDataError> {
        match semver::VersionReq::parse(text) {
            Ok(r) => Ok(r),
            Err(e) => self.fail(format!(
                "{field} `{text}` is not a version range like \">=1.30.0, <1.30.2\": {e}"
            )),
        }
    }

    fn url(self, field: &str, text: &str) -> Result<String, ReleaseDataError> {
        if text.starts_with("https://") && !text.contains(char::is_whitespace) {
            Ok(text.to_owned())
        } else {
            self.fail(format!("{field} `{text}` is not an https:// URL"))
        }
    }

    fn text(self, field: &str, text: &str) -> Result<String, ReleaseDataError> {
        if text.trim().is_empty() {
            self.fail(format!("{field} is empty"))
        } else {
            Ok(text.trim().to_owned())
        }
    }
}

fn at<'a, T>(origin: &'a Origin, s: &Spanned<T>) -> At<'a> {
    At {
        origin,
        line: s.referenced.line(),
    }
}

/// Parses and checks a release data file.
pub(super) fn parse(text: &str, origin: Origin) -> Result<Releases, ReleaseDataError> {
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, &origin))?;
    let o = &origin;
    if raw.schema.value != SCHEMA {
        return at(o, &raw.schema).fail(format!(
            "schema `{}` is not `{SCHEMA}`, the format this build reads",
            raw.schema.value
        ));
    }
    let checked = at(o, &raw.checked).date("checked", &raw.checked.value)?;
    let sources = raw
        .sources
        .iter()
        .map(|s| source(o, s))
        .collect::<Result<Vec<_>, _>>()?;
    let retired_hosts = raw
        .retired_image_hosts
        .iter()
        .map(|h| host(o, h))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.releases.value.is_empty() {
        return at(o, &raw.releases).fail("`releases` is empty: at least one minor is needed");
    }
    let mut releases: Vec<Release> = Vec::new();
    for r in &raw.releases.value {
        let next = release(o, r, checked)?;
        if let Some(prev) = releases.last() {
            follows(at(o, r), prev, &next)?;
        }
        releases.push(next);
    }
    let newest = releases.last().map_or(0, |r| r.minor);
    let not_included = raw
        .not_included
        .iter()
        .map(|n| not_included(o, n, newest))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Releases {
        origin,
        checked,
        sources,
        not_included,
        retired_hosts,
        releases,
    })
}

/// A parser error as one line at its line number.
fn yaml_error(e: &serde_saphyr::Error, origin: &Origin) -> ReleaseDataError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let bare = first.strip_prefix("error: ").unwrap_or(first);
    let line = e.location().map_or(1, |l| l.line());
    let prefix = e
        .location()
        .map(|l| format!("line {} column {}: ", l.line(), l.column()));
    let message = prefix
        .as_deref()
        .and_then(|p| bare.strip_prefix(p))
        .unwrap_or(bare);
    ReleaseDataError {
        origin: origin.clone(),
        line: line.max(1),
        message: format!("not valid release data: {message}"),
    }
}

fn source(o: &Origin, s: &Spanned<RawSource>) -> Result<SourceRef, ReleaseDataError> {
    let a = at(o, s);
    Ok(SourceRef {
        id: a.text("sources.id", &s.value.id)?,
        url: a.url("sources.url", &s.value.url)?,
        about: a.text("sources.about", &s.value.about)?,
    })
}

fn host(o: &Origin, h: &Spanned<RawHost>) -> Result<RetiredHost, ReleaseDataError> {
    let a = at(o, h);
    let v = &h.value;
    if !v.prefix.ends_with('/') || v.prefix.len() < 3 {
        return a.fail(format!(
            "retired_image_hosts.prefix `{}` must be a registry path ending in `/` (e.g. gcr.io/istio-release/)",
            v.prefix
        ));
    }
    Ok(RetiredHost {
        prefix: v.prefix.clone(),
        replacement: a.text("retired_image_hosts.replacement", &v.replacement)?,
        last_minor: a.minor("retired_image_hosts.last_minor", &v.last_minor)?,
        goes_away: a.month("retired_image_hosts.goes_away", &v.goes_away)?,
        last_brownout: v
            .last_brownout
            .as_deref()
            .map(|d| a.date("retired_image_hosts.last_brownout", d))
            .transpose()?,
        source: a.url("retired_image_hosts.source", &v.source)?,
    })
}

fn not_included(
    o: &Origin,
    n: &Spanned<RawNotIncluded>,
    newest: u64,
) -> Result<NotIncluded, ReleaseDataError> {
    let a = at(o, n);
    let minor = a.minor("not_included.minor", &n.value.minor)?;
    if minor <= newest {
        return a.fail(format!(
            "not_included names 1.{minor}, but `releases` has an entry up to 1.{newest}"
        ));
    }
    Ok(NotIncluded {
        minor,
        reason: a.text("not_included.reason", &n.value.reason)?,
    })
}

/// Each minor follows the previous one: no gap, no repeat, released later.
fn follows(a: At<'_>, prev: &Release, next: &Release) -> Result<(), ReleaseDataError> {
    if next.minor != prev.minor + 1 {
        return a.fail(format!(
            "release 1.{} follows 1.{}: entries must be consecutive minors, oldest first, without gaps",
            next.minor, prev.minor
        ));
    }
    if next.released <= prev.released {
        return a.fail(format!(
            "release 1.{} is released {}, not after 1.{} ({})",
            next.minor, next.released, prev.minor, prev.released
        ));
    }
    Ok(())
}

fn release(
    o: &Origin,
    r: &Spanned<RawRelease>,
    checked: Date,
) -> Result<Release, ReleaseDataError> {
    let a = at(o, r);
    let v = &r.value;
    let minor = a.minor("minor", &v.minor)?;
    let name = format!("release 1.{minor}");
    let released = a.date(&format!("{name}: released"), &v.released)?;
    if released > checked {
        return a.fail(format!(
            "{name}: released {released} is after the data was checked ({checked})"
        ));
    }
    let end_of_life = v
        .end_of_life
        .as_deref()
        .map(|d| a.date(&format!("{name}: end_of_life"), d))
        .transpose()?;
    let expected_end_of_life = v
        .expected_end_of_life
        .as_deref()
        .map(|d| a.month(&format!("{name}: expected_end_of_life"), d))
        .transpose()?;
    match (end_of_life, expected_end_of_life) {
        (Some(_), Some(_)) => {
            return a.fail(format!(
                "{name}: give end_of_life (announced) or expected_end_of_life, not both"
            ));
        }
        (Some(eol), None) if eol <= released => {
            return a.fail(format!(
                "{name}: end_of_life {eol} is not after released {released}"
            ));
        }
        (None, Some(m)) if m.last_day() <= released => {
            return a.fail(format!(
                "{name}: expected_end_of_life {m} is not after released {released}"
            ));
        }
        _ => {}
    }
    let (kube_min, kube_max, istioctl_minimum) = kubernetes(a, &name, &v.kubernetes)?;
    Ok(Release {
        minor,
        released,
        end_of_life,
        expected_end_of_life,
        kube_min,
        kube_max,
        istioctl_minimum,
        gateway_api: gateway_api(a, &name, &v.gateway_api)?,
        compatibility_profiles: profiles(a, &name, minor, &v.compatibility_profiles)?,
        changed_defaults: v
            .changed_defaults
            .iter()
            .map(|c| changed(o, &name, c))
            .collect::<Result<_, _>>()?,
        hazards: v
            .hazards
            .iter()
            .map(|h| hazard(o, &name, h))
            .collect::<Result<_, _>>()?,
    })
}

type KubeWindow = (u64, u64, Vec<(u64, u64)>);

fn kubernetes(a: At<'_>, name: &str, k: &RawKube) -> Result<KubeWindow, ReleaseDataError> {
    let field = format!("{name}: kubernetes.supported");
    let [min, max] = k.supported.as_slice() else {
        return a.fail(format!(
            "{field} must be [oldest, newest], e.g. [\"1.32\", \"1.36\"]"
        ));
    };
    let (min, max) = (a.minor(&field, min)?, a.minor(&field, max)?);
    if min > max {
        return a.fail(format!("{field}: 1.{min} is newer than 1.{max}"));
    }
    let field = format!("{name}: kubernetes.istioctl_minimum");
    let mut minimums: Vec<(u64, u64)> = Vec::new();
    for m in &k.istioctl_minimum {
        let minimum = a.minor(&field, &m.minimum)?;
        if minimum > min {
            return a.fail(format!(
                "{field}: 1.{minimum} (from patch {}) is above the supported window's oldest, 1.{min}",
                m.from_patch
            ));
        }
        ascending_patch(a, &field, minimums.last().map(|l| l.0), m.from_patch)?;
        minimums.push((m.from_patch, minimum));
    }
    Ok((min, max, minimums))
}

/// Per-patch lists start at patch 0 and go up.
fn ascending_patch(
    a: At<'_>,
    field: &str,
    prev: Option<u64>,
    next: u64,
) -> Result<(), ReleaseDataError> {
    match prev {
        None if next != 0 => a.fail(format!("{field}: the first entry must be from_patch 0")),
        Some(p) if next <= p => a.fail(format!(
            "{field}: from_patch {next} does not follow {p} (patches go up)"
        )),
        _ => Ok(()),
    }
}

fn gateway_api(a: At<'_>, name: &str, g: &RawGateway) -> Result<GatewayApi, ReleaseDataError> {
    let field = format!("{name}: gateway_api.bundled");
    let mut bundled: Vec<(u64, String)> = Vec::new();
    for b in &g.bundled {
        a.version(&field, &b.version)?;
        ascending_patch(a, &field, bundled.last().map(|l| l.0), b.from_patch)?;
        bundled.push((b.from_patch, b.version.clone()));
    }
    if bundled.is_empty() {
        return a.fail(format!("{field} is empty"));
    }
    let served = g
        .served
        .iter()
        .map(|s| served(a, name, s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut minimum_bundle: Vec<BundleMinimum> = Vec::new();
    for m in &g.minimum_bundle {
        let field = format!("{name}: gateway_api.minimum_bundle");
        if !m.crd.ends_with(".gateway.networking.k8s.io") {
            return a.fail(format!(
                "{field}: `{}` is not a Gateway API CRD name (<plural>.gateway.networking.k8s.io)",
                m.crd
            ));
        }
        let prev = minimum_bundle
            .iter()
            .rev()
            .find(|p| p.crd == m.crd)
            .map(|p| p.from_patch);
        if prev.is_some_and(|p| m.from_patch <= p) {
            return a.fail(format!(
                "{field}: {} from_patch {} does not follow its previous entry",
                m.crd, m.from_patch
            ));
        }
        minimum_bundle.push(BundleMinimum {
            crd: m.crd.clone(),
            version: a.version(&field, &m.version)?,
            from_patch: m.from_patch,
        });
    }
    Ok(GatewayApi {
        bundled,
        served,
        minimum_bundle,
    })
}

fn served(a: At<'_>, name: &str, s: &RawServed) -> Result<ServedRule, ReleaseDataError> {
    let field = format!("{name}: gateway_api.served");
    let missing = match s.missing.as_str() {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        other => {
            return a.fail(format!(
                "{field}: missing `{other}` must be `error` or `warning`"
            ));
        }
    };
    if s.kinds.is_empty() || s.kinds.iter().any(|k| k.trim().is_empty()) {
        return a.fail(format!("{field}: kinds must list Gateway API kinds"));
    }
    Ok(ServedRule {
        version: a.text(&field, &s.version)?,
        kinds: s.kinds.clone(),
        missing,
        code: a.text(&field, &s.code)?,
    })
}

fn profiles(a: At<'_>, name: &str, minor: u64, p: &[String]) -> Result<Vec<u64>, ReleaseDataError> {
    let field = format!("{name}: compatibility_profiles");
    let mut out: Vec<u64> = Vec::new();
    for text in p {
        let m = a.minor(&field, text)?;
        if m >= minor || out.last().is_some_and(|l| *l >= m) {
            return a.fail(format!(
                "{field}: 1.{m} must be older than 1.{minor} and listed oldest first"
            ));
        }
        out.push(m);
    }
    Ok(out)
}

fn changed(
    o: &Origin,
    name: &str,
    c: &Spanned<RawChanged>,
) -> Result<ChangedDefault, ReleaseDataError> {
    let a = at(o, c);
    let v = &c.value;
    Ok(ChangedDefault {
        setting: a.text(&format!("{name}: changed_defaults.setting"), &v.setting)?,
        summary: a.text(&format!("{name}: changed_defaults.summary"), &v.summary)?,
        detect: v
            .detect
            .as_deref()
            .map(|d| a.text(&format!("{name}: changed_defaults.detect"), d))
            .transpose()?,
        source: a.url(&format!("{name}: changed_defaults.source"), &v.source)?,
    })
}

fn hazard(o: &Origin, name: &str, h: &Spanned<RawHazard>) -> Result<Hazard, ReleaseDataError> {
    let a = at(o, h);
    let v = &h.value;
    let field = |f: &str| format!("{name}: hazards.{f}");
    Ok(Hazard {
        id: a.text(&field("id"), &v.id)?,
        control_plane: a.requirement(&field("control_plane"), &v.control_plane)?,
        proxies: a.requirement(&field("proxies"), &v.proxies)?,
        summary: a.text(&field("summary"), &v.summary)?,
        fix: a.text(&field("fix"), &v.fix)?,
        source: a.url(&field("source"), &v.source)?,
    })
}
