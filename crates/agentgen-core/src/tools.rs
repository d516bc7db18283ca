//! Function tools: the [`Tool`] trait, [`FunctionTool`] (an async function whose argument
//! schema comes from its argument type), and [`ToolSet`], which checks schemas when a tool is
//! registered, validates arguments before a call, and turns every failure into a tool result
//! the model can read.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::events::{EventSink, ToolResult};
use crate::message::ToolCall;
use crate::request::ToolSpec;

/// Why a tool could not be registered or called.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The tool's argument schema is not a valid JSON schema for an object.
    #[error("tool `{tool}` has an invalid argument schema: {message}")]
    InvalidSchema {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The name is not 1–64 characters of `[a-zA-Z0-9_-]`.
    #[error("tool name `{0}` must be 1-64 characters of letters, digits, `_` or `-`")]
    InvalidName(String),
    /// Two tools share a name.
    #[error("a tool named `{0}` is already registered")]
    Duplicate(String),
    /// The model called a tool that does not exist.
    #[error("unknown tool `{name}`; available tools: {}", .available.join(", "))]
    UnknownTool {
        /// The name it called.
        name: String,
        /// The names that exist.
        available: Vec<String>,
    },
    /// The arguments are not JSON or do not match the schema.
    #[error("invalid arguments for tool `{tool}`: {message}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The tool ran and failed.
    #[error("tool `{tool}` failed: {message}")]
    Execution {
        /// The tool.
        tool: String,
        /// Its error.
        message: String,
    },
    /// The call was cancelled.
    #[error("tool call cancelled")]
    Cancelled,
}

/// What a tool gets besides its arguments.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    /// The id of the call being answered.
    pub call_id: String,
    /// Cancelled when the run is.
    pub cancel: CancellationToken,
    /// Where a tool that runs agents reports their events: the run's sink made
    /// [`without_stop`](EventSink::without_stop), so no [`AgentEvent::Stop`](crate::events::AgentEvent::Stop)
    /// and no journal, since the nested run is one call of the outer run. Drops everything
    /// when the tool is called outside a run.
    pub sink: EventSink,
}

/// A function the model may call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls it by (`[a-zA-Z0-9_-]{1,64}`).
    fn name(&self) -> &str;
    /// What it does, for the model.
    fn description(&self) -> &str;
    /// The JSON schema of its arguments object.
    fn parameters(&self) -> Value;
    /// Runs it. Arguments have already been validated against [`parameters`](Self::parameters)
    /// when called through a [`ToolSet`]. A string result is passed to the model as is; any
    /// other value as JSON text.
    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError>;

    /// Whether running a call twice does no harm. A journaled run that stopped while a call
    /// was running re-runs it on resume only if this is `true`; otherwise the model is told
    /// the call was interrupted (default `false`).
    fn idempotent(&self) -> bool {
        false
    }

    /// The spec sent to the model.
    fn spec(&self) -> ToolSpec {
        ToolSpec::function(self.name(), self.description(), self.parameters())
    }
}

type ToolFn =
    dyn Fn(Value, ToolContext) -> BoxFuture<'static, Result<Value, ToolError>> + Send + Sync;

/// A tool made from an async function.
///
/// ```
/// use agentgen_core::tools::FunctionTool;
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Add { a: i64, b: i64 }
/// let tool = FunctionTool::new("add", "Adds two integers.", |x: Add| async move {
///     Ok::<_, std::convert::Infallible>(x.a + x.b)
/// });
/// ```
#[derive(Clone)]
pub struct FunctionTool {
    name: String,
    description: String,
    parameters: Value,
    idempotent: bool,
    func: Arc<ToolFn>,
}

impl fmt::Debug for FunctionTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionTool")
            .field("name", &self.name)
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

impl FunctionTool {
    /// A tool from an async function of one argument struct; its schema is derived from `A`.
    pub fn new<A, T, E, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        f: F,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        T: Serialize + Send + 'static,
        E: fmt::Display + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let name = name.into();
        let tool_name = name.clone();
        let f = Arc::new(f);
        let func =
            move |args: Value, _ctx: ToolContext| -> BoxFuture<'static, Result<Value, ToolError>> {
                let f = Arc::clone(&f);
                let tool = tool_name.clone();
                Box::pin(async move {
                    let parsed: A = serde_json::from_value(args).map_err(|e| {
                        ToolError::InvalidArguments { tool: tool.clone(), message: e.to_string() }
                    })?;
                    let out = f(parsed).await.map_err(|e| ToolError::Execution {
                        tool: tool.clone(),
                        message: e.to_string(),
                    })?;
                    serde_json::to_value(out)
                        .map_err(|e| ToolError::Execution { tool, message: format!("result: {e}") })
                })
            };
        Self {
            name,
            description: description.into(),
            parameters: schema_for::<A>(),
            idempotent: false,
            func: Arc::new(func),
        }
    }

    /// A tool with a hand-written argument schema, called with the raw JSON arguments.
    pub fn from_json<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        f: F,
    ) -> Self
    where
        F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        let func =
            move |args: Value, ctx: ToolContext| -> BoxFuture<'static, Result<Value, ToolError>> {
                Box::pin(f(args, ctx))
            };
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
            idempotent: false,
            func: Arc::new(func),
        }
    }

    /// Declares whether the tool may run twice on the same call (see [`Tool::idempotent`]).
    pub fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
}

#[async_trait]
impl Tool for FunctionTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    fn idempotent(&self) -> bool {
        self.idempotent
    }
    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        (self.func)(args, ctx.clone()).await
    }
}

/// The JSON schema of `T`, with sub-schemas inlined and without `$schema`/`title`, as tool
/// parameters and `json_schema` response formats want it.
pub fn schema_for<T: JsonSchema>() -> Value {
    let root = schemars::gen::SchemaSettings::draft07()
        .with(|s| {
            s.inline_subschemas = true;
            s.option_add_null_type = true;
        })
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = serde_json::to_value(root).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
        if map.get("definitions").is_some_and(|d| d.as_object().is_some_and(|o| o.is_empty())) {
            map.remove("definitions");
        }
    }
    value
}

/// `text` cut to at most `max_bytes` bytes, at the last character boundary that fits (so a
/// multi-byte character is dropped whole, never split).
pub fn cut_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A tool's output as the model gets it: `text` unchanged when it fits in `max_bytes`, else
/// cut there (see [`cut_at_char_boundary`]) and followed by the note
/// `[output cut: KEPT of TOTAL bytes shown]` on a line of its own (the note comes on top of
/// the `max_bytes`).
pub fn bounded_output(text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let kept = cut_at_char_boundary(&text, max_bytes);
    format!("{kept}\n[output cut: {} of {} bytes shown]", kept.len(), text.len())
}

/// Checks that `schema` is a valid JSON schema (against the meta-schema).
pub fn check_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

struct Registered {
    tool: Arc<dyn Tool>,
    validator: jsonschema::Validator,
}

/// The tools of one agent, by name, each with its compiled argument validator.
#[derive(Default)]
pub struct ToolSet {
    order: Vec<String>,
    tools: HashMap<String, Registered>,
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSet").field("tools", &self.order).finish()
    }
}

impl ToolSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool after checking its name and schema.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), ToolError> {
        let name = tool.name().to_owned();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(ToolError::InvalidName(name));
        }
        if self.tools.contains_key(&name) {
            return Err(ToolError::Duplicate(name));
        }
        let schema = tool.parameters();
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ToolError::InvalidSchema {
                tool: name,
                message: "the arguments schema must have \"type\": \"object\"".into(),
            });
        }
        let validator = check_schema(&schema)
            .map_err(|message| ToolError::InvalidSchema { tool: name.clone(), message })?;
        self.order.push(name.clone());
        self.tools.insert(name, Registered { tool, validator });
        Ok(())
    }

    /// The names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.order.clone()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether a tool of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// Whether the tool called `name` declares itself idempotent (unknown tools are not).
    pub fn is_idempotent(&self, name: &str) -> bool {
        self.tools.get(name).is_some_and(|r| r.tool.idempotent())
    }

    /// The specs, in registration order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.order.iter().map(|n| self.tools[n].tool.spec()).collect()
    }

    /// Parses and validates the arguments of a call, then runs it (outside any run: events
    /// of agents the tool runs are dropped).
    pub async fn call(
        &self,
        call: &ToolCall,
        cancel: &CancellationToken,
    ) -> Result<Value, ToolError> {
        self.call_with(call, cancel, &EventSink::none()).await
    }

    /// Parses and validates the arguments of a call, then runs it; a tool that runs agents
    /// reports their events to `sink` (without its stop events and journal, see
    /// [`ToolContext::sink`]).
    pub async fn call_with(
        &self,
        call: &ToolCall,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> Result<Value, ToolError> {
        let name = &call.function.name;
        let Some(reg) = self.tools.get(name) else {
            return Err(ToolError::UnknownTool { name: name.clone(), available: self.names() });
        };
        let args = parse_arguments(name, &call.function.arguments)?;
        let problems: Vec<String> = reg
            .validator
            .iter_errors(&args)
            .map(|e| format!("{e} (at `{}`)", e.instance_path))
            .collect();
        if !problems.is_empty() {
            return Err(ToolError::InvalidArguments {
                tool: name.clone(),
                message: problems.join("; "),
            });
        }
        let ctx = ToolContext {
            call_id: call.id.clone(),
            cancel: cancel.clone(),
            sink: sink.without_stop(),
        };
        tokio::select! {
            res = reg.tool.call(args, &ctx) => res,
            _ = cancel.cancelled() => Err(ToolError::Cancelled),
        }
    }

    /// Runs a call and turns any failure into an `Error: …` result the model can read
    /// (outside any run, see [`execute_with`](Self::execute_with)).
    pub async fn execute(&self, call: &ToolCall, cancel: &CancellationToken) -> ToolResult {
        self.execute_with(call, cancel, &EventSink::none()).await
    }

    /// Runs a call of the run reporting to `sink` (see [`call_with`](Self::call_with)) and
    /// turns any failure into an `Error: …` result the model can read. The call runs in an
    /// `execute_tool {name}` span ([`crate::telemetry`]).
    pub async fn execute_with(
        &self,
        call: &ToolCall,
        cancel: &CancellationToken,
        sink: &EventSink,
    ) -> ToolResult {
        let span = crate::telemetry::tool_span(call);
        let called = self.call_with(call, cancel, sink).instrument(span.clone()).await;
        let (content, is_error) = match called {
            Ok(Value::String(s)) => (s, false),
            Ok(v) => (v.to_string(), false),
            Err(e) => (format!("Error: {e}"), true),
        };
        let result = ToolResult {
            call_id: call.id.clone(),
            name: call.function.name.clone(),
            content,
            is_error,
        };
        crate::telemetry::record_tool_result(&span, &result);
        result
    }
}

/// Arguments as JSON; a JSON string that itself holds a JSON object (a common small-model
/// slip) is unwrapped.
fn parse_arguments(tool: &str, raw: &str) -> Result<Value, ToolError> {
    let invalid = |e: serde_json::Error| ToolError::InvalidArguments {
        tool: tool.to_owned(),
        message: format!("arguments are not valid JSON ({e}): {raw}"),
    };
    if raw.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let value: Value = serde_json::from_str(raw).map_err(invalid)?;
    if let Value::String(inner) = &value {
        if let Ok(obj @ Value::Object(_)) = serde_json::from_str::<Value>(inner) {
            return Ok(obj);
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, JsonSchema)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn add_tool() -> Arc<dyn Tool> {
        Arc::new(FunctionTool::new(
            "add",
            "Adds.",
            |x: Add| async move { Ok::<_, String>(x.a + x.b) },
        ))
    }

    #[tokio::test]
    async fn validated_call_runs_and_bad_args_become_error_text() {
        let mut set = ToolSet::new();
        set.register(add_tool()).unwrap();
        let cancel = CancellationToken::new();
        let ok = set.execute(&ToolCall::new("1", "add", r#"{"a":2,"b":3}"#), &cancel).await;
        assert_eq!((ok.content.as_str(), ok.is_error), ("5", false));
        let bad = set.execute(&ToolCall::new("2", "add", r#"{"a":"two","b":3}"#), &cancel).await;
        assert!(
            bad.is_error && bad.content.starts_with("Error: invalid arguments"),
            "{}",
            bad.content
        );
        let missing = set.execute(&ToolCall::new("3", "add", r#"{"a":2}"#), &cancel).await;
        assert!(missing.is_error && missing.content.contains("\"b\""), "{}", missing.content);
        let not_json = set.execute(&ToolCall::new("4", "add", "{a:1"), &cancel).await;
        assert!(not_json.content.contains("not valid JSON"), "{}", not_json.content);
        let unknown = set.execute(&ToolCall::new("5", "mul", "{}"), &cancel).await;
        assert_eq!(unknown.content, "Error: unknown tool `mul`; available tools: add");
        let wrapped =
            set.execute(&ToolCall::new("6", "add", r#""{\"a\":1,\"b\":1}""#), &cancel).await;
        assert_eq!(wrapped.content, "2");
    }

    #[tokio::test]
    async fn a_tool_reports_to_the_run_sink_without_stop_or_journal() {
        use crate::events::AgentEvent;
        use crate::journal::{Journal, MemoryStore};
        let probe =
            FunctionTool::from_json("probe", "d", json!({"type": "object"}), |_, ctx| async move {
                ctx.sink.emit(AgentEvent::Stop { reason: "inner run ended".into() });
                ctx.sink.emit(AgentEvent::TokenChunk { source: "inner".into(), text: "hi".into() });
                Ok(json!(ctx.sink.journal().is_none()))
            });
        let mut set = ToolSet::new();
        set.register(Arc::new(probe)).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let journal = Journal::create(Arc::new(MemoryStore::new()), "s", Value::Null).unwrap();
        let sink = EventSink::channel(tx).with_journal(journal);
        let call = ToolCall::new("1", "probe", "{}");
        let cancel = CancellationToken::new();
        assert_eq!(set.execute_with(&call, &cancel, &sink).await.content, "true");
        let got: Vec<AgentEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let chunk = AgentEvent::TokenChunk { source: "inner".into(), text: "hi".into() };
        assert_eq!(got, vec![chunk]);
        // Outside a run the tool still runs; its events go nowhere.
        assert_eq!(set.execute(&call, &cancel).await.content, "true");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn registration_checks_schema_name_and_duplicates() {
        let mut set = ToolSet::new();
        set.register(add_tool()).unwrap();
        assert_eq!(set.register(add_tool()).unwrap_err(), ToolError::Duplicate("add".into()));
        let bad = FunctionTool::from_json(
            "bad",
            "d",
            json!({"type": "object", "properties": {"x": {"type": 7}}}),
            |_, _| async { Ok(Value::Null) },
        );
        assert!(matches!(set.register(Arc::new(bad)), Err(ToolError::InvalidSchema { .. })));
        let not_obj = FunctionTool::from_json("s", "d", json!({"type": "string"}), |_, _| async {
            Ok(Value::Null)
        });
        assert!(matches!(set.register(Arc::new(not_obj)), Err(ToolError::InvalidSchema { .. })));
        let named =
            FunctionTool::from_json("has space", "d", json!({"type": "object"}), |_, _| async {
                Ok(Value::Null)
            });
        assert!(matches!(set.register(Arc::new(named)), Err(ToolError::InvalidName(_))));
    }

    #[test]
    fn cuts_keep_char_boundaries() {
        assert_eq!(cut_at_char_boundary("héllo", 2), "h");
        assert_eq!(cut_at_char_boundary("héllo", 3), "hé");
        assert_eq!(cut_at_char_boundary("héllo", 0), "");
        assert_eq!(cut_at_char_boundary("abc", 10), "abc");
        assert_eq!(cut_at_char_boundary("abc", 3), "abc");
    }

    #[test]
    fn bounded_output_notes_what_it_cut() {
        assert_eq!(bounded_output("short".into(), 5), "short");
        assert_eq!(bounded_output("éééééééééé".into(), 5), "éé\n[output cut: 4 of 20 bytes shown]");
    }

    #[test]
    fn derived_schema_is_plain_object() {
        let schema = schema_for::<Add>();
        assert_eq!(schema["type"], "object");
        assert!(schema.get("$schema").is_none());
        assert_eq!(schema["required"], json!(["a", "b"]));
    }
}
