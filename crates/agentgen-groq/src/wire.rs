//! The request body sent, after the provider profile's rules, and the completion, chunk and
//! model-list bodies read back, all through core's typed wire format
//! ([`agentgen_core::openai`]).

use agentgen_core::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ModelList,
};
use agentgen_core::{BackendError, ChatChunk, ChatRequest, ChatResponse};
use serde_json::{Map, Value};

use crate::profile::ProviderProfile;

/// Most stop sequences Groq takes.
pub const GROQ_MAX_STOP: usize = 4;

/// One model an endpoint offers (core's wire type).
pub type ModelInfo = agentgen_core::openai::ModelObject;

/// The JSON body of a chat-completion request, after the provider's rules.
pub fn request_body(
    profile: &ProviderProfile,
    default_model: &str,
    req: &ChatRequest,
    stream: bool,
    extra: &Map<String, Value>,
) -> Result<Value, BackendError> {
    let mut req = req.clone();
    if req.model.as_deref().is_none_or(str::is_empty) {
        req.model = Some(default_model.to_owned());
    }
    let model = req.model.clone().unwrap_or_default();
    profile.prepare(&mut req, &model, stream)?;
    let mut body = match serde_json::to_value(ChatCompletionRequest::new(req, stream)) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => return Err(BackendError::Internal("request did not serialise".into())),
    };
    profile.rename_fields(&mut body);
    for (k, v) in extra {
        body.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(body))
}

/// Reads a whole completion body.
pub fn parse_completion(body: &[u8]) -> Result<ChatResponse, BackendError> {
    serde_json::from_slice::<ChatCompletion>(body)
        .map_err(|e| BackendError::Protocol(format!("completion body is not valid: {e}")))?
        .into_response()
}

/// Reads one streamed `data:` payload. An `error` in it becomes the error.
pub fn parse_chunk(data: &str) -> Result<ChatChunk, BackendError> {
    ChatCompletionChunk::parse(data)?.into_chunk()
}

/// Reads `GET /models`: `{"data": [{"id": …}, …]}` (a bare array is accepted too).
pub fn parse_models(body: &[u8]) -> Result<Vec<ModelInfo>, BackendError> {
    ModelList::parse(body)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
