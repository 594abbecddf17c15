//! Update XML (in progress).
