//! pull (work in progress)
