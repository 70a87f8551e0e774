//! Upgrade planning: a manifest of the target version against the cluster — in-place upgrade
//! or downgrade, canary, or fresh install — as a plan of changes with a field-level summary.

pub mod diff;
