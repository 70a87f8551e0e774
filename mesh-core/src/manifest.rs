//! Istio manifests (`istioctl manifest generate`, `helm template` output): multi-document YAML
//! parsed into objects with the line each starts at, and the target they describe — the Istio
//! version (the tag of its Istio images: pilot, proxyv2, install-cni, ztunnel) and revision.
//! A manifest of one component (istio-cni, ztunnel or gateways alone, as Istio's Helm guide
//! upgrades ambient one chart at a time) is a manifest like a whole one, without istiod. A
//! manifest mixing revisions or versions is refused.

use serde_json::Value;

use crate::{
    inventory::{DEFAULT_REVISION, REV_LABEL},
    version::{IstioVersion, image_release, image_version},
};

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    /// The object.
    pub value: Value,
    /// Line (1-based) where its document starts.
    pub line: usize,
    /// File it came from (empty for a single unnamed text).
    pub file: String,
}

impl ManifestObject {
    fn str_at(&self, pointer: &str) -> &str {
        self.value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// apiVersion.
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion")
    }

    /// kind.
    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    /// metadata.name.
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    /// metadata.namespace, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
}

/// A parsed manifest and the target it installs.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Objects in order.
    pub objects: Vec<ManifestObject>,
    /// The Istio version of its images (istiod's when it holds istiod), without the image
    /// variant (`1.31.1-distroless` is version `1.31.1`); `None` only for a component manifest
    /// without Istio images (a gateway's PodDisruptionBudget and autoscaler), which moves no
    /// version.
    pub version: Option<IstioVersion>,
    /// Revision: istiod's `istio.io/rev` label; in a component manifest its objects' label
    /// (ztunnel's istiod address when unlabelled); `default` when nothing names one.
    pub revision: String,
    /// Whether it holds istiod: a component manifest (istio-cni, ztunnel or gateways alone)
    /// does not, and is judged against the installed istiod of its revision.
    pub istiod: bool,
}

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A document is not YAML.
    #[error("{}: not valid YAML: {message}", at(file, *line))]
    Yaml {
        /// File.
        file: String,
        /// Line of the document.
        line: usize,
        /// Parser message.
        message: String,
    },
    /// An object lacks apiVersion, kind or name.
    #[error("{}: object without apiVersion, kind or metadata.name", at(file, *line))]
    Incomplete {
        /// File.
        file: String,
        /// Line of the document.
        line: usize,
    },
    /// Nothing in it.
    #[error("the manifest has no objects")]
    Empty,
    /// The same object twice.
    #[error("{}: {object} is also defined at {}", at(file, *line), at(first_file, *first_line))]
    Duplicate {
        /// The object.
        object: String,
        /// Where again.
        file: String,
        /// Line.
        line: usize,
        /// Where first.
        first_file: String,
        /// Line.
        first_line: usize,
    },
    /// No Istio image at all, and no object an Istio installer labelled.
    #[error(
        "no Istio image (pilot, proxyv2, install-cni or ztunnel) and no Istio component in the manifest, so it is not an Istio manifest"
    )]
    NoIstioImage,
    /// An Istio image has no version tag.
    #[error("{}: {what} image `{image}` has no Istio version tag", at(file, *line))]
    NoVersion {
        /// File.
        file: String,
        /// Line.
        line: usize,
        /// Whose image (`istiod`, `DaemonSet `ztunnel``).
        what: String,
        /// Image.
        image: String,
    },
    /// More than one revision.
    #[error("the manifest mixes revisions: {0}")]
    MixedRevisions(String),
    /// More than one version.
    #[error("the manifest mixes Istio versions: {0}")]
    MixedVersions(String),
}

/// `file:line`, or `line N` for an unnamed text.
fn at(file: &str, line: usize) -> String {
    if file.is_empty() {
        format!("line {line}")
    } else {
        format!("{file}:{line}")
    }
}

impl crate::error::Classify for ManifestError {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Usage
    }

    fn hints(&self) -> Vec<String> {
        vec!["generate it with `istioctl manifest generate` or `helm template`".to_owned()]
    }
}

/// A parser error at its line in the file (the parser counts lines from the start of the
/// document), without the parser's own `error: line L column C:` prefix.
fn yaml_error(e: &serde_saphyr::Error, file: &str, doc_line: usize) -> ManifestError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let bare = first.strip_prefix("error: ").unwrap_or(first);
    let (line, message) = match e.location() {
        Some(loc) if loc.line() > 0 => {
            let prefix = format!("line {} column {}: ", loc.line(), loc.column());
            let bare = bare.strip_prefix(&prefix).unwrap_or(bare);
            let within = usize::try_from(loc.line()).unwrap_or(1);
            (
                doc_line + within - 1,
                format!("column {}: {bare}", loc.column()),
            )
        }
        _ => (doc_line, bare.to_owned()),
    };
    ManifestError::Yaml {
        file: file.to_owned(),
        line,
        message,
    }
}

/// Splits multi-document YAML on `---` lines, keeping each document's first line number.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push((i + 2, String::new()));
        } else if let Some((_, doc)) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

/// Images of every container in a workload object (or none).
fn images(v: &Value) -> Vec<&str> {
    let spec = v.pointer("/spec/template/spec");
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec?.get(k)?.as_array())
        .flatten()
        .filter_map(|c| c.get("image")?.as_str())
        .collect()
}

impl Manifest {
    /// (apiVersion, kind, namespace) of every object: what the access reviews ask about.
    pub fn object_kinds(&self) -> Vec<(String, String, Option<String>)> {
        self.objects
            .iter()
            .map(|o| {
                (
                    o.api_version().to_owned(),
                    o.kind().to_owned(),
                    o.namespace().map(str::to_owned),
                )
            })
            .collect()
    }

    /// Every container image the manifest's workloads pull, sorted, once each.
    pub fn images(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .objects
            .iter()
            .flat_map(|o| images(&o.value))
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Parses a manifest and finds its target.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        Self::parse_files(&[(String::new(), text.to_owned())])
    }

    /// Parses several files (name, text) as one manifest; errors name the file and line.
    pub fn parse_files(files: &[(String, String)]) -> Result<Self, ManifestError> {
        let mut objects = Vec::new();
        for (file, text) in files {
            for (line, doc) in documents(text) {
                let value: Value =
                    serde_saphyr::from_str(&doc).map_err(|e| yaml_error(&e, file, line))?;
                flatten(value, file, line, &mut objects)?;
            }
        }
        if objects.is_empty() {
            return Err(ManifestError::Empty);
        }
        duplicates(&objects)?;
        let (version, revision, istiod) = target(&objects)?;
        Ok(Self {
            objects,
            version,
            revision,
            istiod,
        })
    }
}

fn duplicates(objects: &[ManifestObject]) -> Result<(), ManifestError> {
    let mut seen = std::collections::BTreeMap::new();
    for o in objects {
        let group = o.api_version().rsplit_once('/').map_or("", |(g, _)| g);
        let key = (group, o.kind(), o.namespace().unwrap_or_default(), o.name());
        if let Some(first) = seen.insert(key, o) {
            return Err(ManifestError::Duplicate {
                object: format!("{} `{}`", o.kind(), o.name()),
                file: o.file.clone(),
                line: o.line,
                first_file: first.file.clone(),
                first_line: first.line,
            });
        }
    }
    Ok(())
}

fn flatten(
    value: Value,
    file: &str,
    line: usize,
    out: &mut Vec<ManifestObject>,
) -> Result<(), ManifestError> {
    let incomplete = || ManifestError::Incomplete {
        file: file.to_owned(),
        line,
    };
    match value {
        Value::Null => Ok(()),
        Value::Object(mut map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            for item in map
                .remove("items")
                .and_then(|i| i.as_array().cloned())
                .unwrap_or_default()
            {
                flatten(item, file, line, out)?;
            }
            Ok(())
        }
        v @ Value::Object(_) => {
            let o = ManifestObject {
                value: v,
                line,
                file: file.to_owned(),
            };
            if o.api_version().is_empty() || o.kind().is_empty() || o.name().is_empty() {
                return Err(incomplete());
            }
            out.push(o);
            Ok(())
        }
        _ => Err(incomplete()),
    }
}

fn is_istiod(o: &ManifestObject) -> bool {
    o.kind() == "Deployment"
        && o.value
            .pointer("/metadata/labels/app")
            .and_then(Value::as_str)
            == Some("istiod")
}

fn rev_label(o: &ManifestObject) -> Option<&str> {
    o.value
        .pointer(&format!(
            "/metadata/labels/{}",
            REV_LABEL.replace('/', "~1")
        ))
        .and_then(Value::as_str)
}

/// The revision of ztunnel's istiod address (`istiod-1-30-3.istio-system.svc:15012` →
/// `1-30-3`, `istiod.istio-system.svc:15012` → `default`), when its DaemonSet names one.
fn ztunnel_revision(o: &ManifestObject) -> Option<String> {
    if o.kind() != "DaemonSet" {
        return None;
    }
    let env = o
        .value
        .pointer("/spec/template/spec/containers")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("env")?.as_array())
        .flatten();
    let address = env
        .filter(|e| matches!(e["name"].as_str(), Some("XDS_ADDRESS" | "CA_ADDRESS")))
        .find_map(|e| e["value"].as_str())?;
    let host = address.split(['.', ':']).next()?;
    match host.strip_prefix("istiod") {
        Some("") => Some(DEFAULT_REVISION.to_owned()),
        Some(rev) => rev.strip_prefix('-').map(str::to_owned),
        None => None,
    }
}

/// The revision: istiod's (the same on each istiod), else what the objects' labels say.
fn revision(
    objects: &[ManifestObject],
    istiods: &[&ManifestObject],
) -> Result<String, ManifestError> {
    let mut revs: Vec<String> = if istiods.is_empty() {
        objects
            .iter()
            .filter_map(|o| {
                rev_label(o)
                    .map(str::to_owned)
                    .or_else(|| ztunnel_revision(o))
            })
            .collect()
    } else {
        istiods
            .iter()
            .map(|o| rev_label(o).unwrap_or(DEFAULT_REVISION).to_owned())
            .collect()
    };
    revs.sort();
    revs.dedup();
    if revs.len() > 1 {
        return Err(ManifestError::MixedRevisions(revs.join(", ")));
    }
    Ok(revs.pop().unwrap_or_else(|| DEFAULT_REVISION.to_owned()))
}

/// The object whose image gives the version: istiod, else the first with an Istio image.
fn version_source(objects: &[ManifestObject]) -> Option<(&ManifestObject, &str)> {
    fn first_istio(o: &ManifestObject) -> Option<&str> {
        images(&o.value).into_iter().find(|i| is_istio_image(i))
    }
    objects
        .iter()
        .find(|o| is_istiod(o))
        .map(|o| (o, images(&o.value).first().copied().unwrap_or_default()))
        .or_else(|| objects.iter().find_map(|o| first_istio(o).map(|i| (o, i))))
}

type Found = (Option<IstioVersion>, String, bool);

fn target(objects: &[ManifestObject]) -> Result<Found, ManifestError> {
    let istiods: Vec<&ManifestObject> = objects.iter().filter(|o| is_istiod(o)).collect();
    let revision = revision(objects, &istiods)?;
    let Some((source, image)) = version_source(objects) else {
        if objects.iter().any(|o| component_label(o).is_some()) {
            return Ok((None, revision, false));
        }
        return Err(ManifestError::NoIstioImage);
    };
    let version = image_release(image).ok_or_else(|| ManifestError::NoVersion {
        file: source.file.clone(),
        line: source.line,
        what: if is_istiod(source) {
            "istiod".to_owned()
        } else {
            format!("{} `{}`", source.kind(), source.name())
        },
        image: image.to_owned(),
    })?;
    let mut mixed: Vec<String> = objects
        .iter()
        .flat_map(|o| images(&o.value))
        .filter(|i| is_istio_image(i))
        .filter_map(|i| {
            image_version(i)
                .filter(|v| v.cmp(&version).is_ne())
                .map(|v| format!("{i} ({v})"))
        })
        .collect();
    mixed.dedup();
    if !mixed.is_empty() {
        let whose = if istiods.is_empty() {
            "its first Istio image"
        } else {
            "istiod"
        };
        return Err(ManifestError::MixedVersions(format!(
            "{whose} is {version}, but {}",
            mixed.join(", ")
        )));
    }
    Ok((Some(version), revision, !istiods.is_empty()))
}

/// The installer component an object's labels name (`operator.istio.io/component`).
fn component_label(o: &ManifestObject) -> Option<&str> {
    o.value
        .pointer("/metadata/labels/operator.istio.io~1component")
        .and_then(Value::as_str)
}

fn is_istio_image(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or_default();
    ["pilot:", "proxyv2:", "ztunnel:", "install-cni:"]
        .iter()
        .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(rev: Option<&str>, image: &str) -> String {
        let name = rev.map_or("istiod".to_owned(), |r| format!("istiod-{r}"));
        let rev = rev
            .map(|r| format!("\n    istio.io/rev: {r}"))
            .unwrap_or_default();
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: istio-system\n  labels:\n    app: istiod{rev}\nspec:\n  template:\n    spec:\n      containers:\n      - name: discovery\n        image: {image}\n"
        )
    }

    #[test]
    fn finds_version_and_revision() {
        let text = format!(
            "# generated\n---\n{}---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: istiod}}\n",
            deploy(Some("1-30-3"), "docker.io/istio/pilot:1.30.3")
        );
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.version.unwrap().to_string(), "1.30.3");
        assert_eq!(m.revision, "1-30-3");
        assert!(m.istiod);
        assert_eq!(m.objects.len(), 2);
        assert_eq!(m.objects[0].line, 3);
        assert_eq!(m.objects[1].line, 18);
        let plain =
            Manifest::parse(&deploy(None, "docker.io/istio/pilot:1.29.6-distroless")).unwrap();
        assert_eq!(plain.revision, "default");
        // The image variant names an image, not a version.
        assert_eq!(plain.version.unwrap().to_string(), "1.29.6");
    }

    fn fixture(name: &str) -> Manifest {
        let path = format!("{}/fixtures/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
        Manifest::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn component_manifests_take_the_version_of_any_istio_image() {
        for (file, version, revision) in [
            ("component-istio-cni-1.31.1.yaml", Some("1.31.1"), "default"),
            ("component-ztunnel-1.31.1.yaml", Some("1.31.1"), "default"),
            ("component-gateways-1.31.1.yaml", Some("1.31.1"), "default"),
            ("golden-istio-cni.yaml", Some("1.31.1"), "default"),
            ("golden-ztunnel.yaml", Some("1.31.1"), "default"),
            ("golden-gateway_hpa_pdb.yaml", None, "default"),
        ] {
            let m = fixture(file);
            assert_eq!(
                m.version.as_ref().map(ToString::to_string).as_deref(),
                version,
                "{file}"
            );
            assert_eq!(m.revision, revision, "{file}");
            assert!(!m.istiod, "{file}");
        }
        // ztunnel names its istiod's revision only in its address.
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/manifests/golden-ztunnel.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replace("istiod.istio-system.svc", "istiod-1-31-1.istio-system.svc");
        assert_eq!(Manifest::parse(&text).unwrap().revision, "1-31-1");
        // A whole manifest is still istiod's.
        let whole = fixture("ambient-1.30.3.yaml");
        assert!(whole.istiod);
        assert_eq!(whole.version.unwrap().to_string(), "1.30.3");
    }

    #[test]
    fn real_istioctl_manifests_parse() {
        let m = Manifest::parse(include_str!("../fixtures/manifests/default-1.29.6.yaml")).unwrap();
        assert_eq!(
            (m.version.unwrap().to_string(), m.revision.as_str()),
            ("1.29.6".into(), "default")
        );
        assert_eq!(m.objects.len(), 39);
        let c = Manifest::parse(include_str!("../fixtures/manifests/canary-1-30-3.yaml")).unwrap();
        assert_eq!(
            (c.version.unwrap().to_string(), c.revision.as_str()),
            ("1.30.3".into(), "1-30-3")
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let bad = format!("{}---\nkind: [oops\n", deploy(None, "x/pilot:1.30.3"));
        assert!(
            Manifest::parse(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("line 15: not valid YAML")
        );
        assert!(matches!(
            Manifest::parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
            Err(ManifestError::NoIstioImage)
        ));
        let untagged = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: ztunnel}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: istio-proxy, image: x/ztunnel:latest}\n";
        assert_eq!(
            Manifest::parse(untagged).unwrap_err().to_string(),
            "line 1: DaemonSet `ztunnel` image `x/ztunnel:latest` has no Istio version tag"
        );
        let mixed = format!(
            "{}---\n{}",
            deploy(Some("a"), "x/pilot:1.30.3"),
            deploy(Some("b"), "x/pilot:1.30.3")
        );
        assert!(matches!(
            Manifest::parse(&mixed),
            Err(ManifestError::MixedRevisions(_))
        ));
        let gw = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gw}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: istio-proxy, image: docker.io/istio/proxyv2:1.29.6}\n";
        let versions = format!("{}---\n{gw}", deploy(None, "docker.io/istio/pilot:1.30.3"));
        assert!(matches!(
            Manifest::parse(&versions),
            Err(ManifestError::MixedVersions(_))
        ));
        assert!(matches!(
            Manifest::parse(&deploy(None, "x/pilot:latest")),
            Err(ManifestError::NoVersion { .. })
        ));
        assert!(matches!(
            Manifest::parse("---\n# nothing\n"),
            Err(ManifestError::Empty)
        ));
        let twice = format!(
            "{}---\n{}",
            deploy(None, "x/pilot:1.30.3"),
            deploy(None, "x/pilot:1.30.3")
        );
        let files = [("a.yaml".to_owned(), twice)];
        let e = Manifest::parse_files(&files).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.yaml:15: Deployment `istiod` is also defined at a.yaml:1"
        );
        // The line of the error in the file, not in its document; the parser's prefix once.
        let deep = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: [oops\n",
            deploy(None, "x/pilot:1.30.3")
        );
        let e = Manifest::parse(&deep).unwrap_err().to_string();
        assert!(e.starts_with("line 18: not valid YAML: column "), "{e}");
        assert!(!e.contains("error:"), "{e}");
        let bad = [("m.yaml".to_owned(), "kind: [\n".to_owned())];
        assert!(
            Manifest::parse_files(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("m.yaml:1: not valid YAML")
        );
    }
}
