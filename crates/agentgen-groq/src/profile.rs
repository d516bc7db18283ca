//! Provider profiles: what each OpenAI-compatible server accepts, stated as one value per
//! provider instead of `if provider == …` checks. [`ProviderProfile::prepare`] applies a
//! profile to a request before it is sent; [`ProviderProfile::check_extra`] checks the extra
//! body fields a config adds.
//!
//! | profile | `name` | stops | token limit field | strict schema | sampling honoured | key |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | groq | dropped | ≤ 4 | `max_completion_tokens` | gpt-oss only | none (dropped) | required |
//! | openai | kept | ≤ 4 | `max_completion_tokens` | every model | none (dropped) | required |
//! | llama-server | kept | any | `max_tokens` | every model | top_k, min_p, repeat_penalty | optional |
//! | ollama | kept | any | `max_tokens` | every model | none (dropped) | optional |
//! | vllm | kept | any | `max_tokens` | every model | top_k, min_p | optional |
//! | openai-compatible | kept | any | `max_tokens` | every model | all (sent as they are) | optional |

use agentgen_core::{BackendError, ChatMessage, ChatRequest, ResponseFormat, SamplingSetting};
use serde_json::{Map, Value};

use crate::config::ConfigError;

/// Which body field carries the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_tokens` (older OpenAI, llama-server, Ollama, vLLM).
    MaxTokens,
    /// `max_completion_tokens` (OpenAI and Groq today).
    MaxCompletionTokens,
}

/// Which models take `response_format: json_schema` with `strict: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictSchema {
    /// Every model.
    AllModels,
    /// Only models whose id starts with one of these prefixes; others get `strict` removed
    /// (the schema still guides the answer, as JSON mode).
    ModelsStartingWith(&'static [&'static str]),
}

/// What happens to a request field the provider does not honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhonoured {
    /// Removed before sending (logged at debug level).
    Drop,
    /// The request fails with [`BackendError::InvalidRequest`] naming the field.
    Refuse,
}

/// One provider's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderProfile {
    /// Short name, as in [`agentgen_core::BackendInfo::name`].
    pub name: &'static str,
    /// A key must be configured.
    pub key_required: bool,
    /// `messages[].name` is accepted (Groq answers 400 to it, so it is removed).
    pub allows_name: bool,
    /// Most stop sequences, when limited.
    pub max_stop: Option<usize>,
    /// The token limit's field.
    pub max_tokens_field: MaxTokensField,
    /// Strict JSON-schema output on which models.
    pub strict_schema: StrictSchema,
    /// A `json_schema` response can be streamed.
    pub json_schema_streams: bool,
    /// A `json_schema` response can be combined with tools.
    pub json_schema_with_tools: bool,
    /// Body fields the provider answers 400 to (refused in `extra_body` unless null or off).
    pub refused_fields: &'static [&'static str],
    /// Only `n` = 1 is accepted.
    pub n_must_be_one: bool,
    /// The [`agentgen_core::Sampling`] settings it honours.
    pub sampling: &'static [SamplingSetting],
    /// What happens to the others.
    pub unhonoured_sampling: Unhonoured,
    /// Provider-specific reasoning fields it takes in `extra_body`.
    pub reasoning_fields: &'static [&'static str],
    /// A named `tool_choice` is treated as `auto` (llama-server): the client checks that the
    /// named function was called and reports it when not.
    pub named_tool_choice_is_auto: bool,
}

/// Any other OpenAI-compatible server: the request is sent as it is. The other profiles
/// are written as what they change from this one.
pub const OPENAI_COMPATIBLE: ProviderProfile = ProviderProfile {
    name: "openai-compatible",
    key_required: false,
    allows_name: true,
    max_stop: None,
    max_tokens_field: MaxTokensField::MaxTokens,
    strict_schema: StrictSchema::AllModels,
    json_schema_streams: true,
    json_schema_with_tools: true,
    refused_fields: &[],
    n_must_be_one: false,
    sampling: &SamplingSetting::ALL,
    unhonoured_sampling: Unhonoured::Drop,
    reasoning_fields: &[],
    named_tool_choice_is_auto: false,
};

/// Groq: its documented request rules.
pub const GROQ: ProviderProfile = ProviderProfile {
    name: "groq",
    key_required: true,
    allows_name: false,
    max_stop: Some(4),
    max_tokens_field: MaxTokensField::MaxCompletionTokens,
    strict_schema: StrictSchema::ModelsStartingWith(&["openai/gpt-oss-"]),
    json_schema_streams: false,
    json_schema_with_tools: false,
    refused_fields: &["logprobs", "top_logprobs", "logit_bias"],
    n_must_be_one: true,
    sampling: &[],
    reasoning_fields: &["reasoning_effort", "reasoning_format", "include_reasoning"],
    ..OPENAI_COMPATIBLE
};

/// OpenAI's own API.
pub const OPENAI: ProviderProfile = ProviderProfile {
    name: "openai",
    key_required: true,
    max_stop: Some(4),
    max_tokens_field: MaxTokensField::MaxCompletionTokens,
    sampling: &[],
    reasoning_fields: &["reasoning_effort"],
    ..OPENAI_COMPATIBLE
};

/// llama.cpp's llama-server (and `agentgen serve`, which honours the same fields).
pub const LLAMA_SERVER: ProviderProfile = ProviderProfile {
    name: "llama-server",
    // llama-server has its own speculative settings, not `lookup_decoding`.
    sampling: &[SamplingSetting::TopK, SamplingSetting::MinP, SamplingSetting::RepeatPenalty],
    n_must_be_one: true,
    reasoning_fields: &["reasoning_format"],
    named_tool_choice_is_auto: true,
    ..OPENAI_COMPATIBLE
};

/// Ollama's OpenAI-compatible routes.
pub const OLLAMA: ProviderProfile = ProviderProfile {
    name: "ollama",
    n_must_be_one: true,
    sampling: &[],
    reasoning_fields: &["reasoning_effort"],
    ..OPENAI_COMPATIBLE
};

/// vLLM's OpenAI-compatible server.
pub const VLLM: ProviderProfile = ProviderProfile {
    name: "vllm",
    sampling: &[SamplingSetting::TopK, SamplingSetting::MinP],
    ..OPENAI_COMPATIBLE
};

/// Every profile, by name.
pub const PROFILES: [&ProviderProfile; 6] =
    [&GROQ, &OPENAI, &LLAMA_SERVER, &OLLAMA, &VLLM, &OPENAI_COMPATIBLE];

/// Fields the client owns, which `extra_body` may not set.
const RESERVED: [&str; 4] = ["model", "messages", "stream", "stream_options"];

impl ProviderProfile {
    /// The profile named `name` (as in [`PROFILES`]).
    pub fn named(name: &str) -> Option<&'static ProviderProfile> {
        PROFILES.into_iter().find(|p| p.name == name)
    }

    /// Whether `model` takes strict JSON-schema output.
    pub fn strict_schema_for(&self, model: &str) -> bool {
        match self.strict_schema {
            StrictSchema::AllModels => true,
            StrictSchema::ModelsStartingWith(prefixes) => {
                prefixes.iter().any(|p| model.starts_with(p))
            }
        }
    }

    /// Checks a config's extra body fields against the rules.
    pub fn check_extra(&self, extra: &Map<String, Value>) -> Result<(), ConfigError> {
        for (field, value) in extra {
            let bad =
                |message: String| Err(ConfigError::InvalidExtra { field: field.clone(), message });
            if RESERVED.contains(&field.as_str()) {
                return bad("the client sets this field itself".into());
            }
            let off = value.is_null() || value == &Value::Bool(false);
            if self.refused_fields.contains(&field.as_str()) && !off {
                return bad(format!("{} does not support it", self.name));
            }
            if self.n_must_be_one && field == "n" && value != &Value::from(1) {
                return bad(format!("{} only accepts n = 1", self.name));
            }
        }
        Ok(())
    }

    /// Applies the rules to a request about to be sent (`model` is the id it will carry):
    /// refuses what the provider would answer 400 to, drops what it does not honour.
    pub fn prepare(
        &self,
        req: &mut ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<(), BackendError> {
        if let Some(max) = self.max_stop.filter(|max| req.stop.len() > *max) {
            return Err(BackendError::invalid_param(
                format!("{} takes at most {max} stop sequences, got {}", self.name, req.stop.len()),
                "stop",
            ));
        }
        if let Some(ResponseFormat::JsonSchema { json_schema }) = &mut req.response_format {
            if stream && !self.json_schema_streams {
                return Err(BackendError::invalid_param(
                    format!(
                        "{} cannot stream a json_schema response; use complete() or json_object",
                        self.name
                    ),
                    "response_format",
                ));
            }
            if !req.tools.is_empty() && !self.json_schema_with_tools {
                return Err(BackendError::invalid_param(
                    format!("{} cannot combine a json_schema response with tools", self.name),
                    "response_format",
                ));
            }
            if json_schema.strict == Some(true) && !self.strict_schema_for(model) {
                tracing::debug!(
                    provider = self.name,
                    model,
                    "strict json_schema not taken: sent without strict"
                );
                json_schema.strict = None;
            }
        }
        let unhonoured = req.sampling.unsupported(self.sampling);
        if let Some(first) = unhonoured.first() {
            match self.unhonoured_sampling {
                Unhonoured::Refuse => {
                    return Err(BackendError::invalid_param(
                        format!("{} does not honour `{first}`", self.name),
                        first.field(),
                    ))
                }
                Unhonoured::Drop => {
                    tracing::debug!(provider = self.name, dropped = ?unhonoured, "sampling settings not sent");
                    req.sampling.retain(self.sampling);
                }
            }
        }
        if !self.allows_name {
            req.messages = std::mem::take(&mut req.messages)
                .into_iter()
                .map(ChatMessage::without_name)
                .collect();
        }
        Ok(())
    }

    /// Moves the token limit to the field this provider reads.
    pub fn rename_fields(&self, body: &mut Map<String, Value>) {
        if self.max_tokens_field == MaxTokensField::MaxCompletionTokens {
            if let Some(max) = body.remove("max_tokens") {
                body.insert("max_completion_tokens".into(), max);
            }
        }
    }
}
