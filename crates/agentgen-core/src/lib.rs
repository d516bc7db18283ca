//! agentgen-core: the vocabulary of agentgen — chat messages, requests and responses, the
//! typed OpenAI wire format both clients and the server use ([`openai`]), the object-safe
//! [`ChatBackend`] trait every model provider implements, and the agent runtime built on it
//! (tools, agents, teams, termination, events, state, and the [`sandbox`] model-written code
//! runs in).
//!
//! It must never depend on an HTTP stack (reqwest, hyper, axum) or on llama.cpp: backends
//! live in their own crates and plug in through [`ChatBackend`].

// `unsafe` lives only at the FFI edge of the code sandbox (`sandbox::unix`, `sandbox::landlock`).
#![deny(unsafe_code)]

pub mod backend;
pub mod clock;
pub mod error;
pub mod fallback;
pub mod message;
pub mod openai;
pub mod request;
pub mod response;

pub mod agent;
pub mod events;
pub mod fuzz_input;
pub mod journal;
pub mod memory;
pub mod model_context;
pub mod sandbox;
pub mod team;
pub mod telemetry;
pub mod termination;
pub mod testing;
pub mod tools;

pub use backend::{BackendHealth, BackendInfo, Capabilities, ChatBackend, ChatStream, Locality};
pub use error::BackendError;
pub use fallback::FallbackBackend;
pub use message::{ChatMessage, FunctionCall, ToolCall};
pub use request::{
    ChatRequest, FunctionSpec, JsonSchemaFormat, ResponseFormat, Sampling, SamplingSetting,
    ToolChoice, ToolSpec,
};
pub use response::{
    ChatChunk, ChatResponse, FinishReason, StreamAccumulator, Timings, ToolCallDelta, Usage,
};

pub use agent::{
    AgentError, AssistantAgent, ChatAgent, CodeExecutorAgent, Handoff, Response,
    SocietyOfMindAgent, UserProxyAgent,
};
pub use events::{
    AgentEvent, AgentMessage, EventSink, MessageKind, StreamItem, Task, TaskResult, ToolResult,
};
pub use journal::{Journal, JournalError, JournalRecord, Recovered, RunStore};
pub use memory::{ListMemory, Memory, MemoryContent};
pub use model_context::{ContextPolicy, ModelContext, SpeakerNames};
pub use team::{
    DiGraphBuilder, EdgeCondition, GraphFlow, RoundRobinGroupChat, SelectorGroupChat, Swarm, Team,
};
pub use termination::{ExternalHandle, Termination, TerminationCondition};
pub use tokio_util::sync::CancellationToken;
pub use tools::{FunctionTool, Tool, ToolError, ToolSet};
