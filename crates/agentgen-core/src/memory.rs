//! Memory: facts an agent consults before answering. [`ListMemory`] keeps them in a list and
//! returns all of them, in the order they were added.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::AgentError;
use crate::message::ChatMessage;

/// One remembered item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryContent {
    /// The text.
    pub content: String,
    /// Anything else worth keeping with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl MemoryContent {
    /// A text item.
    pub fn text(content: impl Into<String>) -> Self {
        Self { content: content.into(), metadata: None }
    }
}

/// A store an agent queries before each model call; what it returns goes into the prompt as a
/// system message.
#[async_trait]
pub trait Memory: Send + Sync + std::fmt::Debug {
    /// Adds an item.
    async fn add(&self, content: MemoryContent) -> Result<(), AgentError>;
    /// Items relevant to this conversation.
    async fn query(&self, context: &[ChatMessage]) -> Result<Vec<MemoryContent>, AgentError>;
    /// Forgets everything.
    async fn clear(&self) -> Result<(), AgentError>;
    /// The contents as JSON.
    async fn save_state(&self) -> Result<Value, AgentError>;
    /// Restores contents saved by [`save_state`](Self::save_state).
    async fn load_state(&self, state: Value) -> Result<(), AgentError>;
}

/// A memory that returns everything it holds, oldest first.
#[derive(Debug, Default)]
pub struct ListMemory {
    items: Mutex<Vec<MemoryContent>>,
}

impl ListMemory {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A memory holding these items.
    pub fn with_items(items: Vec<MemoryContent>) -> Self {
        Self { items: Mutex::new(items) }
    }

    /// A copy of the items.
    pub fn items(&self) -> Vec<MemoryContent> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MemoryContent>> {
        self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Memory for ListMemory {
    async fn add(&self, content: MemoryContent) -> Result<(), AgentError> {
        self.lock().push(content);
        Ok(())
    }
    async fn query(&self, _context: &[ChatMessage]) -> Result<Vec<MemoryContent>, AgentError> {
        Ok(self.items())
    }
    async fn clear(&self) -> Result<(), AgentError> {
        self.lock().clear();
        Ok(())
    }
    async fn save_state(&self) -> Result<Value, AgentError> {
        Ok(serde_json::json!({ "items": self.items() }))
    }
    async fn load_state(&self, state: Value) -> Result<(), AgentError> {
        #[derive(Deserialize)]
        struct Saved {
            items: Vec<MemoryContent>,
        }
        let saved: Saved = crate::agent::parse_state("ListMemory", state)?;
        *self.lock() = saved.items;
        Ok(())
    }
}

/// The system message that carries memory contents into a prompt.
pub fn memory_system_message(contents: &[MemoryContent]) -> ChatMessage {
    let mut text = String::from("Relevant memory content (in chronological order):\n");
    for (i, c) in contents.iter().enumerate() {
        text.push_str(&format!("{}. {}\n", i + 1, c.content));
    }
    ChatMessage::system(text)
}
