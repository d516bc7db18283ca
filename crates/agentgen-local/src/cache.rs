//! cache (work in progress)
