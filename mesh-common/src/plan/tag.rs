//! Revision tag planning (set, remove, generate).
