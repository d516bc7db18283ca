//! What a caller asks a backend for: [`ChatRequest`] and its parts, in the OpenAI wire shape.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::message::ChatMessage;

/// One chat-completion request. Serialises to (and deserialises from) the OpenAI/Groq body,
/// without the transport fields (`stream`, `stream_options`), which each transport adds itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model id; `None` means the backend's own model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Function tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one turn (default: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Plain text, any JSON object, or JSON valid against a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature; 0 is greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Sampling settings beyond OpenAI's (`top_k`, `min_p`, `repeat_penalty`,
    /// `lookup_decoding`: top-level fields on the wire). Each backend says which it honours in
    /// [`Capabilities::sampling`](crate::Capabilities::sampling).
    #[serde(flatten)]
    pub sampling: Sampling,
    /// Seed for reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Most tokens to generate. `max_completion_tokens` on the wire is read here too.
    #[serde(default, alias = "max_completion_tokens", skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop sequences: generation ends before any of them, which are never emitted.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// A request with these messages and every option left to the backend.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self { messages, ..Self::default() }
    }

    /// Adds tools.
    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Sets the tool choice.
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the most tokens to generate.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the response format.
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// The tool choice in force: explicit, else `auto` with tools and `none` without.
    pub fn effective_tool_choice(&self) -> ToolChoice {
        match &self.tool_choice {
            Some(choice) => choice.clone(),
            None if self.tools.is_empty() => ToolChoice::None,
            None => ToolChoice::Auto,
        }
    }
}

/// Sampling settings that are not OpenAI fields. Local engines honour all of them; remote
/// providers some or none (see each provider profile), and a provider drops or refuses the
/// ones it does not honour as one field, [`ChatRequest::sampling`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Min-p sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    /// Repetition penalty, 1.0 = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    /// Whether a local engine may speed this request up with lookup (n-gram) drafts, when the
    /// engine has them on (`false` opts out). It never changes what is sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_decoding: Option<bool>,
}

/// One of the [`Sampling`] settings, by its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplingSetting {
    /// `top_k`.
    TopK,
    /// `min_p`.
    MinP,
    /// `repeat_penalty`.
    RepeatPenalty,
    /// `lookup_decoding`.
    LookupDecoding,
}

impl SamplingSetting {
    /// Every setting.
    pub const ALL: [Self; 4] = [Self::TopK, Self::MinP, Self::RepeatPenalty, Self::LookupDecoding];

    /// The field's name on the wire.
    pub fn field(self) -> &'static str {
        match self {
            Self::TopK => "top_k",
            Self::MinP => "min_p",
            Self::RepeatPenalty => "repeat_penalty",
            Self::LookupDecoding => "lookup_decoding",
        }
    }
}

impl std::fmt::Display for SamplingSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field())
    }
}

impl Sampling {
    /// Whether `setting` has a value.
    pub fn is_set(&self, setting: SamplingSetting) -> bool {
        match setting {
            SamplingSetting::TopK => self.top_k.is_some(),
            SamplingSetting::MinP => self.min_p.is_some(),
            SamplingSetting::RepeatPenalty => self.repeat_penalty.is_some(),
            SamplingSetting::LookupDecoding => self.lookup_decoding.is_some(),
        }
    }

    /// The settings that have a value.
    pub fn set(&self) -> impl Iterator<Item = SamplingSetting> + '_ {
        SamplingSetting::ALL.into_iter().filter(|s| self.is_set(*s))
    }

    /// The set settings not in `honoured`.
    pub fn unsupported(&self, honoured: &[SamplingSetting]) -> Vec<SamplingSetting> {
        self.set().filter(|s| !honoured.contains(s)).collect()
    }

    /// Clears every setting not in `honoured`; returns the ones cleared.
    pub fn retain(&mut self, honoured: &[SamplingSetting]) -> Vec<SamplingSetting> {
        let dropped = self.unsupported(honoured);
        for setting in &dropped {
            match setting {
                SamplingSetting::TopK => self.top_k = None,
                SamplingSetting::MinP => self.min_p = None,
                SamplingSetting::RepeatPenalty => self.repeat_penalty = None,
                SamplingSetting::LookupDecoding => self.lookup_decoding = None,
            }
        }
        dropped
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// A function tool the model may call: `{"type":"function","function":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Always `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Name, description and argument schema.
    pub function: FunctionSpec,
}

fn function_kind() -> String {
    "function".to_owned()
}

impl ToolSpec {
    /// A function tool with a JSON-schema for its arguments.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            kind: function_kind(),
            function: FunctionSpec {
                name: name.into(),
                description: Some(description.into()),
                parameters,
                strict: None,
            },
        }
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.function.name
    }
}

/// The function half of a [`ToolSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// Name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments object.
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
    /// Strict schema adherence (OpenAI/Groq field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Whether the model must, may or must not call a tool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// Never call a tool.
    None,
    /// The model decides.
    #[default]
    Auto,
    /// At least one tool call is required.
    Required,
    /// This function must be called.
    Function(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => s.serialize_str("none"),
            Self::Auto => s.serialize_str("auto"),
            Self::Required => s.serialize_str("required"),
            Self::Function(name) => {
                serde_json::json!({"type": "function", "function": {"name": name}}).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        struct Named {
            function: NamedFunction,
        }
        #[derive(Deserialize)]
        struct NamedFunction {
            name: String,
        }
        let value = Value::deserialize(d)?;
        match &value {
            Value::String(s) => match s.as_str() {
                "none" => Ok(Self::None),
                "auto" => Ok(Self::Auto),
                "required" | "any" => Ok(Self::Required),
                other => Err(D::Error::custom(format!(
                    "tool_choice `{other}` is not one of none, auto, required"
                ))),
            },
            Value::Object(_) => serde_json::from_value::<Named>(value)
                .map(|n| Self::Function(n.function.name))
                .map_err(|e| D::Error::custom(format!("tool_choice object: {e}"))),
            _ => Err(D::Error::custom("tool_choice must be a string or an object")),
        }
    }
}

/// The shape the answer must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid against a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

impl ResponseFormat {
    /// A `json_schema` format.
    pub fn json_schema(name: impl Into<String>, schema: Value) -> Self {
        Self::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: name.into(),
                description: None,
                schema,
                strict: Some(true),
            },
        }
    }
}

/// The body of a `json_schema` response format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema.
    #[serde(default = "empty_object_schema")]
    pub schema: Value,
    /// Strict adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_body_round_trips() {
        let body = json!({
            "model": "llama-3.1-8b-instant",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "add", "description": "adds",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "add"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": true}},
            "temperature": 0.0,
            "seed": 7,
            "max_tokens": 32,
            "stop": ["END", "STOP"]
        });
        let req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.tool_choice, Some(ToolChoice::Function("add".into())));
        assert_eq!(req.stop, vec!["END", "STOP"]);
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn max_completion_tokens_and_single_stop_are_read() {
        let req: ChatRequest = serde_json::from_value(json!({
            "messages": [], "max_completion_tokens": 9, "stop": "x", "tool_choice": "required"
        }))
        .unwrap();
        assert_eq!(req.max_tokens, Some(9));
        assert_eq!(req.stop, vec!["x"]);
        assert_eq!(req.tool_choice, Some(ToolChoice::Required));
    }

    #[test]
    fn unknown_tool_choice_is_an_error() {
        let err = serde_json::from_value::<ChatRequest>(
            json!({"messages": [], "tool_choice": "sometimes"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sometimes"));
    }

    #[test]
    fn effective_tool_choice_defaults_by_tools() {
        let mut req = ChatRequest::new(vec![]);
        assert_eq!(req.effective_tool_choice(), ToolChoice::None);
        req.tools.push(ToolSpec::function("f", "d", json!({"type": "object"})));
        assert_eq!(req.effective_tool_choice(), ToolChoice::Auto);
    }

    #[test]
    fn sampling_settings_are_top_level_fields_and_retained_by_what_is_honoured() {
        let body = json!({"messages": [], "top_k": 4, "repeat_penalty": 1.5});
        let mut req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.sampling.top_k, Some(4));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
        let set: Vec<_> = req.sampling.set().collect();
        assert_eq!(set, [SamplingSetting::TopK, SamplingSetting::RepeatPenalty]);
        let dropped = req.sampling.retain(&[SamplingSetting::TopK]);
        assert_eq!(dropped, [SamplingSetting::RepeatPenalty]);
        assert_eq!(serde_json::to_value(&req).unwrap(), json!({"messages": [], "top_k": 4}));
    }

    #[test]
    fn response_formats_use_the_type_tag() {
        assert_eq!(
            serde_json::to_value(ResponseFormat::JsonObject).unwrap(),
            json!({"type": "json_object"})
        );
        let f: ResponseFormat = serde_json::from_value(json!({"type": "text"})).unwrap();
        assert_eq!(f, ResponseFormat::Text);
    }
}
