//! The agent-team workload, run on agentgen's own runtime: a round-robin team of three
//! [`AssistantAgent`]s (planner, calculator with a `calculate` tool, reviewer) for a fixed number
//! of messages. Each agent keeps its own growing context, as the runtime does for every agent, so
//! a prefix cache can serve most of every prompt from the previous turn. A counting wrapper
//! around the backend sees every request the agents make.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentgen_core::{
    AgentEvent, AssistantAgent, BackendError, BackendInfo, ChatBackend, ChatMessage, ChatRequest,
    ChatResponse, FunctionTool, RoundRobinGroupChat, StreamItem, Team, Termination, ToolError,
};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};

/// One run of the team.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TeamRun {
    /// Wall time of the whole conversation.
    pub wall_s: f64,
    /// Chat requests sent (turns plus the answers after tool results).
    pub requests: u32,
    /// Tool calls the models asked for.
    pub tool_calls: u32,
    /// Prompt tokens over all requests: what an engine without a prefix cache evaluates.
    pub prompt_tokens: u64,
    /// Prompt tokens the backend served from its cache.
    pub cached_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

impl TeamRun {
    /// Prompt tokens actually evaluated.
    pub fn evaluated_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_sub(self.cached_tokens)
    }
}

/// A backend that counts the requests, usage and tool calls going through it.
struct Counting {
    inner: Arc<dyn ChatBackend>,
    run: Mutex<TeamRun>,
}

#[async_trait]
impl ChatBackend for Counting {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let resp = self.inner.complete(req).await?;
        if let Ok(mut run) = self.run.lock() {
            run.requests += 1;
            run.tool_calls += resp.tool_calls().len() as u32;
            run.prompt_tokens += u64::from(resp.usage.prompt_tokens);
            run.cached_tokens += u64::from(resp.usage.cached_tokens);
            run.completion_tokens += u64::from(resp.usage.completion_tokens);
        }
        Ok(resp)
    }

    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        self.inner.count_tokens(messages).await
    }
}

/// The calculator tool: evaluates `{"expression": "..."}`; a bad expression is an error the
/// model sees as the tool's result.
pub fn calculator_tool() -> FunctionTool {
    FunctionTool::from_json(
        "calculate",
        "Evaluate an arithmetic expression with + - * / and parentheses.",
        json!({
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (24 / 3) * 1.20"}},
            "required": ["expression"]
        }),
        |args: Value, _ctx| async move {
            let out = run_calculator(&args.to_string());
            match out.strip_prefix("error: ") {
                Some(msg) => {
                    Err(ToolError::Execution { tool: "calculate".into(), message: msg.into() })
                }
                None => Ok(Value::String(out)),
            }
        },
    )
}

/// Runs the team for `messages` agent messages; `tag` makes the task unique so no earlier run's
/// cache helps. `on_message` is called after every agent message.
pub async fn run_team(
    backend: Arc<dyn ChatBackend>,
    tag: &str,
    messages: usize,
    max_tokens: u32,
    on_message: &mut dyn FnMut(),
) -> Result<TeamRun, BackendError> {
    let task = format!(
        "[{tag}] A shop sells pencils at 3 for $1.20 and notebooks at $2.75 each. \
         Plan buying 24 pencils and 5 notebooks, compute the total cost and check it."
    );
    let counting = Arc::new(Counting { inner: backend, run: Mutex::new(TeamRun::default()) });
    let shared: Arc<dyn ChatBackend> = counting.clone();
    let defaults = ChatRequest::new(Vec::new()).with_temperature(0.0).with_max_tokens(max_tokens);
    let agent = |name: &str, system: &str| {
        AssistantAgent::new(name, shared.clone())
            .with_system_message(Some(system.to_owned()))
            .with_request_defaults(defaults.clone())
    };
    let planner = agent("planner", "You are the planner of a team of three. Break the task into short numbered steps and say who does what. Answer in under 60 words.");
    // At most one tool round per turn, then the agent answers in words.
    let calculator = agent("calculator", "You are the calculator agent. When a number must be computed, call the calculate tool, then state the result in one sentence.")
        .with_tool(calculator_tool())
        .map_err(|e| BackendError::Internal(format!("calculator tool: {e}")))?
        .with_max_tool_iterations(1)
        .with_reflect_on_tool_use(true);
    let reviewer = agent("reviewer", "You are the reviewer. Check the team's figures and reasoning in under 60 words; say APPROVE when everything is right.");
    let mut team =
        RoundRobinGroupChat::new(vec![Box::new(planner), Box::new(calculator), Box::new(reviewer)])
            .map_err(|e| BackendError::Internal(format!("team: {e}")))?
            // The task counts as a message.
            .with_termination(Termination::max_messages(messages + 1));

    let start = Instant::now();
    let mut said = 0;
    let mut stream = team.run_stream(task.into(), agentgen_core::CancellationToken::new());
    while let Some(item) = stream.next().await {
        match item.map_err(|e| BackendError::Internal(format!("team run: {e}")))? {
            StreamItem::Event(AgentEvent::Message(m)) if m.source != "user" => {
                said += 1;
                on_message();
            }
            StreamItem::Event(_) => {}
            StreamItem::Done(_) => break,
        }
    }
    drop(stream);
    for _ in said..messages {
        on_message();
    }
    let mut run = counting.run.lock().map(|r| *r).unwrap_or_default();
    run.wall_s = start.elapsed().as_secs_f64();
    Ok(run)
}

/// Runs the calculator on the tool call's JSON arguments; errors come back as text for the model.
pub fn run_calculator(arguments: &str) -> String {
    let expr = serde_json::from_str::<serde_json::Value>(arguments)
        .ok()
        .and_then(|v| v["expression"].as_str().map(str::to_owned));
    match expr {
        None => "error: arguments must be {\"expression\": \"...\"}".into(),
        Some(e) => match eval(&e) {
            Ok(v) => format!("{}", (v * 1e6).round() / 1e6),
            Err(msg) => format!("error: {msg}"),
        },
    }
}

/// Evaluates `+ - * /`, unary minus, parentheses and decimal numbers (a `$` is ignored).
pub fn eval(expr: &str) -> Result<f64, String> {
    let chars: Vec<char> =
        expr.chars().filter(|c| !c.is_whitespace() && *c != '$' && *c != ',').collect();
    let mut pos = 0;
    let v = sum(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(format!("unexpected `{}`", chars[pos]));
    }
    Ok(v)
}

fn sum(c: &[char], pos: &mut usize) -> Result<f64, String> {
    let mut v = product(c, pos)?;
    while let Some(&op) = c.get(*pos).filter(|ch| **ch == '+' || **ch == '-') {
        *pos += 1;
        let rhs = product(c, pos)?;
        v = if op == '+' { v + rhs } else { v - rhs };
    }
    Ok(v)
}

fn product(c: &[char], pos: &mut usize) -> Result<f64, String> {
    let mut v = atom(c, pos)?;
    while let Some(&op) = c.get(*pos).filter(|ch| matches!(**ch, '*' | '/' | 'x' | '×')) {
        *pos += 1;
        let rhs = atom(c, pos)?;
        if op == '/' {
            if rhs == 0.0 {
                return Err("division by zero".into());
            }
            v /= rhs;
        } else {
            v *= rhs;
        }
    }
    Ok(v)
}

fn atom(c: &[char], pos: &mut usize) -> Result<f64, String> {
    match c.get(*pos) {
        Some('-') => {
            *pos += 1;
            Ok(-atom(c, pos)?)
        }
        Some('(') => {
            *pos += 1;
            let v = sum(c, pos)?;
            if c.get(*pos) != Some(&')') {
                return Err("missing `)`".into());
            }
            *pos += 1;
            Ok(v)
        }
        Some(ch) if ch.is_ascii_digit() || *ch == '.' => {
            let start = *pos;
            while c.get(*pos).is_some_and(|ch| ch.is_ascii_digit() || *ch == '.') {
                *pos += 1;
            }
            let s: String = c[start..*pos].iter().collect();
            s.parse().map_err(|_| format!("bad number `{s}`"))
        }
        Some(ch) => Err(format!("unexpected `{ch}`")),
        None => Err("expression ends too early".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(eval("(24 / 3) * 1.20 + 5 * 2.75").unwrap(), 23.35);
        assert_eq!(eval("-2 + 3 * (4 - 1)").unwrap(), 7.0);
        assert_eq!(eval("$1,200 / 4").unwrap(), 300.0);
        assert!(eval("1 / 0").unwrap_err().contains("zero"));
        assert!(eval("2 +").is_err());
        assert!(eval("(1 + 2").unwrap_err().contains(")"));
        assert!(eval("2 ^ 3").is_err());
    }

    #[test]
    fn calculator_tool_answers_in_text() {
        assert_eq!(run_calculator(r#"{"expression": "8 * 1.2"}"#), "9.6");
        assert!(run_calculator(r#"{"expr": "1"}"#).starts_with("error"));
        assert!(run_calculator("not json").starts_with("error"));
        assert!(run_calculator(r#"{"expression": "1/0"}"#).contains("division by zero"));
    }

    #[test]
    fn evaluated_is_prompt_minus_cached() {
        let run = TeamRun { prompt_tokens: 1000, cached_tokens: 700, ..TeamRun::default() };
        assert_eq!(run.evaluated_tokens(), 300);
    }
}
