//! Data-plane planning (to be written).
