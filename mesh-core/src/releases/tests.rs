use super::*;

fn v(s: &str) -> IstioVersion {
    IstioVersion::parse(s).unwrap()
}

fn k(minor: u64) -> KubeVersion {
    KubeVersion::parse(&format!("v1.{minor}.0")).unwrap()
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

/// The built-in file with `old` replaced by `new` (exactly once).
fn edited(old: &str, new: &str) -> String {
    assert_eq!(BUILTIN.matches(old).count(), 1, "`{old}` must occur once");
    BUILTIN.replacen(old, new, 1)
}

fn error_of(text: &str) -> ReleaseDataError {
    Releases::parse(text, Origin::File("r.yaml".into())).unwrap_err()
}

/// `text` without its `not_included` section (so a test can add the next minor).
fn without_not_included(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top = !line.is_empty() && !line.starts_with([' ', '#']);
        if top {
            skipping = line.starts_with("not_included:");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The line of the first occurrence of `needle` in the built-in file.
fn line_of(needle: &str) -> u64 {
    let at = BUILTIN.find(needle).unwrap();
    BUILTIN[..at].lines().count() as u64 + u64::from(BUILTIN[..at].ends_with('\n'))
}

#[test]
fn the_builtin_file_covers_every_minor_from_1_20_without_gaps() {
    let data = Releases::parse(BUILTIN, Origin::BuiltIn).unwrap();
    assert_eq!(data.oldest().minor, 20);
    assert!(data.newest().minor >= 31, "knows 1.31 at least");
    let minors: Vec<u64> = data.releases.iter().map(|r| r.minor).collect();
    let expected: Vec<u64> = (20..=data.newest().minor).collect();
    assert_eq!(minors, expected);
    assert!(data.checked >= data.newest().released);
    assert!(!data.sources.is_empty());
    assert_eq!(*Releases::builtin(), data);
}

#[test]
fn the_builtin_file_is_internally_consistent() {
    let data = Releases::builtin();
    for pair in data.releases.windows(2) {
        assert!(pair[0].released < pair[1].released, "{}", pair[1].name());
    }
    for r in &data.releases {
        let name = r.name();
        assert!(r.released <= data.checked, "{name}");
        if let Some(eol) = r.end_of_life {
            assert!(eol > r.released, "{name}");
            assert!(r.expected_end_of_life.is_none(), "{name}");
        }
        assert!(r.kube_min <= r.kube_max, "{name}");
        assert!(!r.istioctl_minimum.is_empty(), "{name}");
        assert_eq!(r.istioctl_minimum[0].0, 0, "{name}");
        for (_, min) in &r.istioctl_minimum {
            assert!(
                *min <= r.kube_min,
                "{name}: istioctl minimum above the docs'"
            );
        }
        assert!(r.bundled_gateway_api(0).is_some(), "{name}");
        assert!(
            r.compatibility_profiles.iter().all(|p| *p < r.minor),
            "{name}"
        );
        for h in &r.hazards {
            assert!(h.source.starts_with("https://"), "{name}: {}", h.id);
        }
    }
    // Support ends in order: a minor never outlives the next one.
    let eols: Vec<Date> = data.releases.iter().filter_map(|r| r.end_of_life).collect();
    assert!(eols.windows(2).all(|w| w[0] < w[1]), "{eols:?}");
    assert!(!data.retired_hosts.is_empty());
}

#[test]
fn figures_istioctl_enforces_per_patch() {
    let data = Releases::builtin();
    assert_eq!(
        data.kube_support(&v("1.25.0"), &k(28)),
        KubeSupport::BelowSupported { minimum: 29 }
    );
    assert_eq!(
        data.kube_support(&v("1.25.1"), &k(28)),
        KubeSupport::BelowMinimum { minimum: 29 }
    );
    assert_eq!(
        data.kube_support(&v("1.28.1"), &k(29)),
        KubeSupport::BelowSupported { minimum: 30 }
    );
    assert_eq!(
        data.kube_support(&v("1.28.2"), &k(29)),
        KubeSupport::BelowMinimum { minimum: 30 }
    );
    assert_eq!(
        data.kube_support(&v("1.30.3"), &k(34)),
        KubeSupport::Supported
    );
    assert_eq!(
        data.kube_support(&v("1.30.3"), &k(37)),
        KubeSupport::AboveSupported { maximum: 36 }
    );
    assert_eq!(
        data.kube_support(&v("1.31.1"), &k(31)),
        KubeSupport::BelowMinimum { minimum: 32 }
    );
    assert_eq!(
        data.kube_support(&v("1.31.1"), &k(36)),
        KubeSupport::Supported
    );
    assert_eq!(
        data.kube_support(&v("1.19.0"), &k(28)),
        KubeSupport::Unknown
    );
    assert_eq!(data.kube_support(&v("2.0.0"), &k(34)), KubeSupport::Unknown);
}

#[test]
fn gateway_api_minimums_follow_the_patch() {
    let data = Releases::builtin();
    let r29 = data.release(&v("1.29.0")).unwrap();
    let tls = "tlsroutes.gateway.networking.k8s.io";
    assert_eq!(r29.minimum_bundle(tls, 1), None);
    assert_eq!(r29.minimum_bundle(tls, 2), Some(&Version::new(1, 4, 0)));
    assert_eq!(r29.minimum_bundle(tls, 6), Some(&Version::new(1, 4, 1)));
    let r31 = data.release(&v("1.31.0")).unwrap();
    assert_eq!(
        r31.minimum_bundle("tcproutes.gateway.networking.k8s.io", 0),
        Some(&Version::new(1, 6, 0))
    );
    assert_eq!(r31.bundled_gateway_api(1), Some("v1.6.0"));
    assert!(r31.ships_profile(30) && !r31.ships_profile(24));
}

#[test]
fn unknown_minors_name_the_file_to_update() {
    let data = Releases::builtin();
    let newest = data.newest().name();
    let (msg, hint) = data.unknown(&v("1.99.0"));
    assert_eq!(
        msg,
        format!("the built-in release data knows Istio 1.20 to {newest}")
    );
    assert!(hint.contains("--release-data FILE"), "{hint}");
    let next = data.newest().minor + 1;
    let noted = without_not_included(BUILTIN).replace(
        "\nreleases:\n",
        &format!("\nnot_included:\n  - minor: \"1.{next}\"\n    reason: Not out yet.\nreleases:\n"),
    );
    let file = Releases::parse(&noted, Origin::File("new.yaml".into())).unwrap();
    let (msg, hint) = file.unknown(&v(&format!("1.{next}.1")));
    assert_eq!(
        msg,
        format!("release data `new.yaml` knows Istio 1.20 to {newest}; Not out yet")
    );
    assert!(
        hint.starts_with(&format!("add Istio 1.{next} to `new.yaml`")),
        "{hint}"
    );
    assert_eq!(
        data.summary(),
        format!(
            "Istio 1.20 to {newest} (built-in data, checked {})",
            data.checked
        )
    );
}

#[test]
fn a_new_minor_is_one_more_entry() {
    let data = Releases::builtin();
    let (last, next) = (data.newest().minor, data.newest().minor + 1);
    assert!(
        data.newest().released < data.checked,
        "room for a release before `checked`"
    );
    let entry = format!(
        r#"
  - minor: "1.{next}"
    released: {}
    kubernetes:
      supported: ["1.40", "1.44"]
      istioctl_minimum:
        - {{ from_patch: 0, minimum: "1.40" }}
    gateway_api:
      bundled:
        - {{ from_patch: 0, version: v1.6.0 }}
      served: []
      minimum_bundle: []
    compatibility_profiles: ["1.{last}"]
"#,
        data.checked
    );
    let text = format!("{}{entry}", without_not_included(BUILTIN));
    let more = Releases::parse(&text, Origin::File("new.yaml".into())).unwrap();
    assert_eq!(more.newest().minor, next);
    assert_eq!(
        more.kube_support(&v(&format!("1.{next}.0")), &k(39)),
        KubeSupport::BelowMinimum { minimum: 40 }
    );
}

#[test]
fn bad_files_are_one_error_at_their_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "  - minor: \"1.25\"\n",
            "  - minor: \"1.twenty-five\"\n",
            "  - minor: \"1.twenty-five\"\n",
            "not a minor version like \"1.31\"",
        ),
        (
            "    end_of_life: 2025-09-30\n",
            "    end_of_life: 2024-09-30\n",
            "  - minor: \"1.25\"\n",
            "end_of_life 2024-09-30 is not after released 2025-03-03",
        ),
        (
            "      supported: [\"1.29\", \"1.32\"]\n",
            "      supported: [\"1.32\", \"1.29\"]\n",
            "  - minor: \"1.25\"\n",
            "1.32 is newer than 1.29",
        ),
        (
            "    released: 2026-02-16\n",
            "    released: 2026-02-30\n",
            "  - minor: \"1.29\"\n",
            "is not a date",
        ),
        (
            "    released: 2025-03-03\n",
            "    relased: 2025-03-03\n",
            "    relased: 2025-03-03\n",
            "unknown field `relased`",
        ),
        (
            "schema: kubectl-mesh.dev/istio-releases/v1\n",
            "schema: kubectl-mesh.dev/istio-releases/v2\n",
            "schema: kubectl-mesh.dev/istio-releases/v2\n",
            "is not `kubectl-mesh.dev/istio-releases/v1`",
        ),
        (
            "        proxies: \"<1.29.2\"\n        summary: >-\n          istiod 1.30.0",
            "        proxies: \"1.29.x.y\"\n        summary: >-\n          istiod 1.30.0",
            "      - id: proxies-before-1.29.2\n        control_plane: \">=1.30.0",
            "is not a version range",
        ),
    ];
    for (old, new, at, want) in cases {
        let text = edited(old, new);
        let Err(e) = Releases::parse(&text, Origin::File("r.yaml".into())) else {
            panic!("{new:?} must be refused");
        };
        let line_in = |t: &str| {
            let i = t.find(at).unwrap_or_else(|| panic!("`{at}` not found"));
            t[..i].lines().count() as u64 + u64::from(t[..i].ends_with('\n'))
        };
        assert!(e.message.contains(want), "{new:?}: {e}");
        assert_eq!(e.line, line_in(&text), "{new:?}: {e}");
        assert!(
            e.to_string().starts_with("release data `r.yaml`, line "),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn unquoted_minors_read_as_written() {
    let text = edited("  - minor: \"1.30\"\n", "  - minor: 1.30\n");
    let data = Releases::parse(&text, Origin::BuiltIn).unwrap();
    assert!(data.release(&v("1.30.3")).is_some());
}

#[test]
fn gaps_repeats_and_broken_yaml_are_refused() {
    let gap = edited("  - minor: \"1.24\"\n", "  - minor: \"1.42\"\n");
    let e = error_of(&gap);
    assert!(e.message.contains("1.42 follows 1.23"), "{e}");
    assert_eq!(e.line, line_of("  - minor: \"1.24\"\n"));
    let e = error_of("schema: [unclosed\n");
    assert_eq!(e.line, 1, "{e}");
    assert!(e.message.starts_with("not valid release data"), "{e}");
    let e = error_of("");
    assert!(e.message.starts_with("not valid release data"), "{e}");
    let newest = Releases::builtin().newest().minor;
    let none = without_not_included(BUILTIN).replace(
        "\nreleases:\n",
        &format!("\nnot_included:\n  - minor: \"1.{newest}\"\n    reason: x\nreleases:\n"),
    );
    let e = error_of(&none);
    assert!(
        e.message
            .contains(&format!("not_included names 1.{newest}")),
        "{e}"
    );
}

#[test]
fn retired_hosts_match_image_prefixes() {
    let data = Releases::builtin();
    let h = data
        .retired_host("gcr.io/istio-release/pilot:1.29.6")
        .unwrap();
    assert_eq!(h.replacement, "docker.io/istio");
    assert_eq!(h.goes_away.to_string(), "December 2026");
    assert_eq!(h.goes_away.last_day(), date("2026-12-31"));
    assert!(
        data.retired_host("registry.istio.io/release/proxyv2:1.30.3")
            .is_some()
    );
    assert!(data.retired_host("docker.io/istio/pilot:1.30.3").is_none());
    assert!(
        data.retired_host("mirror.gcr.io/istio-release/pilot:1")
            .is_none()
    );
}
