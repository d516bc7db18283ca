//! agentgen-local: in-process CPU inference on GGUF models through llama.cpp, behind agentgen's
//! `ChatBackend` trait — the engine only; the catalog, cache and pull are agentgen-models'.
//!
//! It never talks to a network service and has no HTTP client in its dependency tree.

#![forbid(unsafe_code)]

pub mod engine;
pub mod error;
pub mod format;

pub use engine::{
    EngineStats, GenerateOptions, Generation, GenerationEvent, KvLayout, LocalBackend, LocalConfig,
    DEFAULT_LOOKUP_MAX_DRAFT, DEFAULT_MAX_CONTEXT, DEFAULT_MAX_STOP_LEN, DEFAULT_MAX_STOP_STRINGS,
};
pub use error::LocalError;
