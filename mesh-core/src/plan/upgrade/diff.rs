//! Field-level summary of what an upgrade changes in an object (to be written).
