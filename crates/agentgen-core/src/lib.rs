//! agentgen-core: the vocabulary of agentgen — chat messages, requests and responses in the
//! OpenAI wire shape, the object-safe [`ChatBackend`] trait every model provider implements,
//! and the agent runtime built on it (tools, agents, teams, termination, events, state).
//!
//! It must never depend on an HTTP stack (reqwest, hyper, axum) or on llama.cpp: backends
//! live in their own crates and plug in through [`ChatBackend`].

pub mod backend;
pub mod error;
pub mod message;
pub mod request;
pub mod response;

pub use backend::{BackendInfo, Capabilities, ChatBackend, ChatStream, Locality};
pub use error::BackendError;
pub use message::{ChatMessage, FunctionCall, ToolCall};
pub use request::{ChatRequest, FunctionSpec, JsonSchemaFormat, ResponseFormat, ToolChoice, ToolSpec};
pub use response::{
    ChatChunk, ChatResponse, FinishReason, StreamAccumulator, Timings, ToolCallDelta, Usage,
};
