//! Chat templates, tool-call parsing and output constraints (work in progress).
