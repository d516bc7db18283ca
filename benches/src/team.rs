//! The agent-team workload: three agents take turns for a fixed number of messages; one of them
//! has a calculator tool. Each agent keeps its own growing context (its system prompt, the task,
//! what the others said, its own answers and tool exchanges), as agent runtimes do, so a prefix
//! cache can serve most of every prompt from the previous turn.

use std::time::Instant;

use agentgen_core::{BackendError, ChatBackend, ChatMessage, ChatRequest, ToolChoice, ToolSpec};
use serde_json::json;

/// One run of the team.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TeamRun {
    /// Wall time of the whole conversation.
    pub wall_s: f64,
    /// Chat requests sent (turns plus the answers after tool results).
    pub requests: u32,
    /// Tool calls executed.
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

struct Agent {
    name: &'static str,
    tools: Vec<ToolSpec>,
    context: Vec<ChatMessage>,
    /// How many transcript messages this agent has already seen.
    seen: usize,
}

/// The calculator tool's spec.
pub fn calculator_tool() -> ToolSpec {
    ToolSpec::function(
        "calculate",
        "Evaluate an arithmetic expression with + - * / and parentheses.",
        json!({
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (24 / 3) * 1.20"}},
            "required": ["expression"]
        }),
    )
}

/// Runs the team for `messages` messages; `tag` makes the task unique so no earlier run's cache
/// helps.
pub async fn run_team(
    backend: &dyn ChatBackend,
    tag: &str,
    messages: usize,
    max_tokens: u32,
    on_message: &mut dyn FnMut(),
) -> Result<TeamRun, BackendError> {
    let task = format!(
        "[{tag}] A shop sells pencils at 3 for $1.20 and notebooks at $2.75 each. \
         Plan buying 24 pencils and 5 notebooks, compute the total cost and check it."
    );
    let roles: [(&'static str, &str, bool); 3] = [
        ("planner", "You are the planner of a team of three. Break the task into short numbered steps and say who does what. Answer in under 60 words.", false),
        ("calculator", "You are the calculator agent. When a number must be computed, call the calculate tool, then state the result in one sentence.", true),
        ("reviewer", "You are the reviewer. Check the team's figures and reasoning in under 60 words; say APPROVE when everything is right.", false),
    ];
    let mut agents: Vec<Agent> = roles
        .iter()
        .map(|(name, system, tools)| Agent {
            name,
            tools: if *tools { vec![calculator_tool()] } else { Vec::new() },
            context: vec![ChatMessage::system(*system), ChatMessage::user(task.clone())],
            seen: 0,
        })
        .collect();
    let mut transcript: Vec<(&'static str, String)> = Vec::new();
    let mut run = TeamRun::default();
    let start = Instant::now();
    for turn in 0..messages {
        let agent = &mut agents[turn % 3];
        for (speaker, text) in &transcript[agent.seen..] {
            agent.context.push(ChatMessage::user(format!("{speaker}: {text}")));
        }
        agent.seen = transcript.len();
        let mut text = String::new();
        // At most one tool round per turn, then the agent must answer in words.
        for round in 0..2 {
            let mut req = ChatRequest::new(agent.context.clone())
                .with_temperature(0.0)
                .with_max_tokens(max_tokens);
            if !agent.tools.is_empty() {
                let choice = if round == 0 { ToolChoice::Auto } else { ToolChoice::None };
                req = req.with_tools(agent.tools.clone()).with_tool_choice(choice);
            }
            let resp = backend.complete(req).await?;
            tracing::debug!(
                agent = agent.name,
                turn,
                round,
                prompt = resp.usage.prompt_tokens,
                cached = resp.usage.cached_tokens,
                completion = resp.usage.completion_tokens,
                calls = resp.tool_calls().len(),
                "team request done"
            );
            run.requests += 1;
            run.prompt_tokens += u64::from(resp.usage.prompt_tokens);
            run.cached_tokens += u64::from(resp.usage.cached_tokens);
            run.completion_tokens += u64::from(resp.usage.completion_tokens);
            let calls = resp.tool_calls().to_vec();
            agent.context.push(resp.message.clone());
            if calls.is_empty() || round == 1 {
                text = resp.text().unwrap_or_default().trim().to_owned();
                break;
            }
            for call in &calls {
                run.tool_calls += 1;
                agent.context.push(ChatMessage::tool(
                    call.id.clone(),
                    run_calculator(&call.function.arguments),
                ));
            }
        }
        if text.is_empty() {
            text = "(no comment)".into();
        }
        transcript.push((agent.name, text));
        on_message();
    }
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
