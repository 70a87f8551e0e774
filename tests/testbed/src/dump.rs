//! Hand-made snapshot files for the CLI tests: a dump the tool wrote (`precheck
//! --dump-snapshot`, a fixture) turned into what a user's `kubectl get <kinds> -A -o json` gives
//! — no annotation saying which kinds were read, and only the kinds the user listed.

use serde_json::Value;

/// The `# kube-version:` header the tool writes, so a hand-made file needs no `--kube-version`.
const KUBE_VERSION: &str = "# kube-version: ";

/// `fixture` (a dump: `#` header lines, then a `v1 List` in YAML or JSON) as a hand-made dump:
/// the header's Kubernetes version kept, the list's annotations dropped, and every item `keep`
/// refuses left out.
pub fn hand_made(fixture: &str, keep: impl Fn(&Value) -> bool) -> String {
    edited(fixture, |list| {
        list["metadata"] = Value::Object(serde_json::Map::new());
        if let Some(items) = list["items"].as_array_mut() {
            items.retain(|i| keep(i));
        }
    })
}

/// `fixture` (a dump: `#` header lines, then a `v1 List` in YAML or JSON) with `edit` applied to
/// its list, written back as JSON after the header's Kubernetes version.
pub fn edited(fixture: &str, edit: impl FnOnce(&mut Value)) -> String {
    let version = fixture
        .lines()
        .find_map(|l| l.strip_prefix(KUBE_VERSION))
        .unwrap_or("v1.34.4");
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    let mut list: Value =
        serde_saphyr::from_str_with_options(fixture, options).expect("the fixture is a List");
    edit(&mut list);
    format!(
        "{KUBE_VERSION}{version}\n{}\n",
        serde_json::to_string_pretty(&list).expect("JSON")
    )
}

/// The kind of a dumped item.
pub fn kind(item: &Value) -> &str {
    item["kind"].as_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_declaration_and_the_refused_kinds() {
        let fixture = "# kube-version: v1.33.1\n# note\n{\"apiVersion\": \"v1\", \"kind\": \"List\", \"metadata\": {\"annotations\": {\"kubectl-mesh.dev/sources\": \"pods\"}}, \"items\": [{\"kind\": \"Pod\"}, {\"kind\": \"Namespace\"}]}\n";
        let out = hand_made(fixture, |i| kind(i) != "Pod");
        assert!(out.starts_with("# kube-version: v1.33.1\n{"), "{out}");
        let v: Value =
            serde_json::from_str(out.lines().skip(1).collect::<String>().as_str()).unwrap();
        assert_eq!(v["metadata"], serde_json::json!({}));
        assert_eq!(v["items"], serde_json::json!([{"kind": "Namespace"}]));
    }
}
