//! Uninstall planning (one revision, or purge).
