//! One classification of errors for every command: what the user did wrong (usage, exit 2),
//! what a guardrail refused (blocked, exit 1), and what could not be completed (failed, exit 3).
//!
//! Every error type of the core implements [`Classify`]; the shell's error type converts from
//! exactly those types (no blanket conversion), so no error reaches an exit code unclassified.

/// How an error maps to the exit code (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Bad input (exit 2).
    Usage,
    /// Refused by a guardrail (exit 1).
    Blocked,
    /// Could not complete: the cluster could not be read or changed (exit 3).
    Failed,
}

/// An error that knows its class and what the user can do about it.
pub trait Classify: std::error::Error + Send + Sync + 'static {
    /// The exit-code class.
    fn class(&self) -> Class;
    /// What to do about it, one line each (may be empty).
    fn hints(&self) -> Vec<String>;
}

/// Why a revision (or tag) named on the command line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionError {
    /// Not a DNS-1123 label.
    #[error("`{name}` is not a valid revision name")]
    Invalid {
        /// The name given.
        name: String,
    },
    /// No control plane of that revision exists.
    #[error("revision `{revision}` does not exist")]
    Unknown {
        /// The revision given.
        revision: String,
        /// Revisions that exist.
        known: Vec<String>,
        /// Tags that exist.
        tags: Vec<String>,
    },
    /// A tag was named where only a revision will do.
    #[error("`{name}` is a tag, not a revision")]
    IsTag {
        /// The name given.
        name: String,
        /// The revision the tag points at.
        points_at: String,
    },
    /// Neither a revision nor a tag of that name exists.
    #[error("no revision or tag is named `{name}`")]
    UnknownTarget {
        /// The name given.
        name: String,
        /// Revisions that exist.
        known: Vec<String>,
        /// Tags that exist.
        tags: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl Classify for RevisionError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hints(&self) -> Vec<String> {
        vec![match self {
            Self::Invalid { .. } => "revisions are lowercase letters, digits and `-`, like `1-30-3` or `default`; see `kubectl mesh precheck`".to_owned(),
            Self::Unknown { known, .. } if known.is_empty() => {
                "no Istio control plane was found in this cluster; see `kubectl mesh precheck`".to_owned()
            }
            Self::Unknown { known, tags, .. } => format!(
                "revisions in this cluster: {}; tags: {}; see `kubectl mesh tag list`",
                list(known),
                list(tags)
            ),
            Self::IsTag { name, points_at } => format!(
                "tag `{name}` points at revision `{points_at}`: pass `--revision {points_at}`, or move the tag with `kubectl mesh tag set`"
            ),
            Self::UnknownTarget { known, tags, .. } => format!(
                "revisions in this cluster: {}; tags: {}; see `kubectl mesh tag list`",
                list(known),
                list(tags)
            ),
        }]
    }
}

/// Checks a revision name: a DNS-1123 label (istioctl's rule).
pub fn validate_revision(name: &str) -> Result<(), RevisionError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(RevisionError::Invalid {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_errors_are_usage_errors_with_the_known_names() {
        let e = RevisionError::Unknown {
            revision: "x".into(),
            known: vec!["default".into(), "1-30-3".into()],
            tags: vec!["prod".into()],
        };
        assert_eq!(e.class(), Class::Usage);
        assert_eq!(
            e.hints(),
            ["revisions in this cluster: default, 1-30-3; tags: prod; see `kubectl mesh tag list`"]
        );
        assert!(validate_revision("1-30-3").is_ok());
        for bad in ["1.30.3", "", "-a", "A", &"a".repeat(64)] {
            assert!(validate_revision(bad).is_err(), "{bad}");
        }
    }
}
