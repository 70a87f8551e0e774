//! Planners: pure functions from a snapshot and a request to what a command will do — shown,
//! dry-run checked, backed up, then carried out by the shell's change engine.

pub mod dataplane;
pub mod rollback;
pub mod tag;
pub mod uninstall;
pub mod upgrade;

use crate::{
    error::RevisionError,
    inventory::{DEFAULT_REVISION, Inventory},
};

fn known(inv: &Inventory) -> (Vec<String>, Vec<String>) {
    (
        inv.revisions().into_iter().collect(),
        inv.tags.iter().map(|t| t.name.clone()).collect(),
    )
}

/// Why `name` is not an installed revision: it is a tag, or nothing at all. The one place the
/// "unknown revision" error of every command comes from.
pub fn not_a_revision(inv: &Inventory, name: &str) -> RevisionError {
    if let Some(t) = inv.tag(name).filter(|_| !inv.revisions().contains(name)) {
        return RevisionError::IsTag {
            name: name.to_owned(),
            points_at: t.revision.clone(),
        };
    }
    let (known, tags) = known(inv);
    RevisionError::Unknown {
        revision: name.to_owned(),
        known,
        tags,
    }
}

/// `name` must be an installed revision (not a tag).
pub fn require_revision(inv: &Inventory, name: &str) -> Result<(), RevisionError> {
    crate::error::validate_revision(name)?;
    if inv.revisions().contains(name) {
        Ok(())
    } else {
        Err(not_a_revision(inv, name))
    }
}

/// A revision or a tag named on the command line, resolved to the revision it means and the
/// tag it goes through. A name that is both a tag and a revision means the tag, as the injector
/// webhooks resolve `istio.io/rev=<name>` (except `default`, which the `default` tag serves).
pub fn resolve_revision_or_tag(
    inv: &Inventory,
    name: &str,
) -> Result<(String, Option<String>), RevisionError> {
    crate::error::validate_revision(name)?;
    if let Some(t) = inv.tag(name) {
        return Ok((t.revision.clone(), Some(name.to_owned())));
    }
    if inv.revisions().contains(name) {
        return Ok((name.to_owned(), None));
    }
    if name == DEFAULT_REVISION
        && let Some(rev) = inv.default_revision()
    {
        return Ok((rev.to_owned(), None));
    }
    let (known, tags) = known(inv);
    Err(RevisionError::UnknownTarget {
        name: name.to_owned(),
        known,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Snap;

    #[test]
    fn one_lookup_for_revisions_and_tags() {
        let (_, inv) = Snap::new()
            .control_plane("default", "1.29.6")
            .control_plane("1-30-3", "1.30.3")
            .tag("prod", "1-30-3")
            .build();
        assert!(require_revision(&inv, "1-30-3").is_ok());
        assert_eq!(
            require_revision(&inv, "prod").unwrap_err(),
            RevisionError::IsTag {
                name: "prod".into(),
                points_at: "1-30-3".into()
            }
        );
        assert!(matches!(
            require_revision(&inv, "1-28-0"),
            Err(RevisionError::Unknown { .. })
        ));
        assert!(matches!(
            require_revision(&inv, "1.28"),
            Err(RevisionError::Invalid { .. })
        ));
        assert_eq!(
            resolve_revision_or_tag(&inv, "prod").unwrap(),
            ("1-30-3".to_owned(), Some("prod".to_owned()))
        );
        assert_eq!(
            resolve_revision_or_tag(&inv, "default").unwrap(),
            ("default".to_owned(), None)
        );
        assert!(matches!(
            resolve_revision_or_tag(&inv, "canary"),
            Err(RevisionError::UnknownTarget { .. })
        ));
    }
}
