//! AutoGen component JSON (`team.dump_component()`), read into a team file: the team and
//! agent types agentgen shares with AutoGen are mapped; anything else is refused with its
//! place in the JSON. README's "AutoGen component JSON" lists the mapped and ignored fields.
//!
//! The JSON is turned into team-file TOML ([`to_toml`]) and then checked like any team file,
//! so a journaled run stores (and resumes from) that TOML.

use std::path::Path;

use serde_json::Value;
use toml::map::Map;
use toml::Value as T;

use super::TeamFileError;

/// Whether `text` read from `path` is AutoGen component JSON rather than TOML.
pub fn is_component_json(path: &Path, text: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{')
}

/// An error found in the converted TOML, moved to the JSON: at the first place the offending
/// line's value appears there (else the start), and said to come from the conversion.
pub fn relocate(mut e: TeamFileError, converted: &str, json: &str) -> TeamFileError {
    let value = converted
        .lines()
        .nth(e.line.saturating_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'' || c == '[' || c == ']'))
        .filter(|v| !v.is_empty());
    let offset = value.and_then(|v| json.find(v)).unwrap_or(0);
    (e.line, e.column) = super::line_col(json, offset);
    e.message = format!("{} (in the team converted from AutoGen JSON)", e.message);
    e
}

/// A conversion error, located at the first occurrence of `needle` in the JSON.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, needle: &str, field: &str, message: impl Into<String>) -> TeamFileError {
        let offset = (!needle.is_empty()).then(|| self.text.find(needle)).flatten().unwrap_or(0);
        let (line, column) = super::line_col(self.text, offset);
        TeamFileError {
            path: self.path.to_owned(),
            line,
            column,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// The last part of a component's `provider` (`autogen_agentchat.teams.Swarm` → `Swarm`).
fn kind_of(c: &Value) -> &str {
    c.get("provider").and_then(Value::as_str).map_or("", |p| p.rsplit('.').next().unwrap_or(p))
}

fn config(c: &Value) -> &Value {
    c.get("config").unwrap_or(&Value::Null)
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The team-file TOML of an AutoGen team component.
pub fn to_toml(text: &str, path: &Path) -> Result<String, TeamFileError> {
    let cx = Ctx { text, path };
    let root: Value = serde_json::from_str(text).map_err(|e| TeamFileError {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        field: None,
        message: format!("not JSON: {e}"),
    })?;
    let kind = kind_of(&root);
    let team_type = match kind {
        "RoundRobinGroupChat" => "round_robin",
        "SelectorGroupChat" => "selector",
        "Swarm" => "swarm",
        "MagenticOneGroupChat" => "magentic_one",
        "" => return Err(cx.err("", "provider", "not an AutoGen component: no \"provider\"")),
        other => {
            return Err(cx.err(
                other,
                "provider",
                format!(
                    "AutoGen team type `{other}` is not supported (supported: \
                     RoundRobinGroupChat, SelectorGroupChat, Swarm, MagenticOneGroupChat)"
                ),
            ))
        }
    };
    let c = config(&root);
    let mut doc = Map::new();
    let mut team = Map::new();
    team.insert("type".into(), T::String(team_type.into()));
    if team_type == "selector" {
        if let Some(p) = string(c, "selector_prompt") {
            team.insert("selector_prompt".into(), T::String(p));
        }
        if let Some(b) = c.get("allow_repeated_speaker").and_then(Value::as_bool) {
            team.insert("allow_repeated_speaker".into(), T::Boolean(b));
        }
    }
    if team_type == "magentic_one" {
        for key in ["max_turns", "max_stalls"] {
            if let Some(n) = c.get(key).and_then(Value::as_u64) {
                team.insert(key.into(), T::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
            }
        }
        if let Some((backend, model)) = c.get("model_client").and_then(model_client) {
            team.insert("orchestrator_backend".into(), T::String(backend.into()));
            team.insert("orchestrator_model".into(), T::String(model));
        }
        if let Some(p) = string(c, "final_answer_prompt") {
            team.insert("final_answer_prompt".into(), T::String(final_answer_prompt(&p, &cx)?));
        }
    }
    let mut stop = match c.get("termination_condition").filter(|t| !t.is_null()) {
        Some(t) => Some(termination(t, &cx)?),
        None => None,
    };
    // A turn is one message; the task is one more. (A MagenticOne team's `max_turns` is the
    // orchestrator's own limit, above.)
    if let Some(turns) =
        c.get("max_turns").and_then(Value::as_u64).filter(|_| team_type != "magentic_one")
    {
        let cap = format!("max_messages({})", turns.saturating_add(1));
        stop = Some(match stop {
            Some(s) => format!("{s} | {cap}"),
            None => cap,
        });
    }
    if let Some(stop) = stop {
        doc.insert("termination".into(), T::String(stop));
    }
    doc.insert("team".into(), T::Table(team));

    let participants = c
        .get("participants")
        .and_then(Value::as_array)
        .ok_or_else(|| cx.err("participants", "config.participants", "no participants"))?;
    let mut agents = Vec::new();
    let mut servers = Vec::new();
    for (i, p) in participants.iter().enumerate() {
        agents.push(T::Table(agent(p, i, &cx, &mut servers)?));
    }
    if !servers.is_empty() {
        doc.insert("mcp_servers".into(), T::Array(servers));
    }
    doc.insert("agents".into(), T::Array(agents));
    toml::to_string(&T::Table(doc))
        .map_err(|e| cx.err("", "", format!("cannot write the converted team: {e}")))
}

/// AutoGen's `final_answer_prompt`, a Python `str.format` template filled with `task` only, as
/// ours: `{task}` stays, `{{` and `}}` become braces. Any other field, a lone brace, or text
/// that would read as one of our placeholders is refused, naming it.
fn final_answer_prompt(template: &str, cx: &Ctx<'_>) -> Result<String, TeamFileError> {
    let refuse = |what: String| cx.err("final_answer_prompt", "config.final_answer_prompt", what);
    let mut out = String::with_capacity(template.len());
    let mut fields = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => field.push(c),
                        None => return Err(refuse(format!("the `{{{field}` is never closed"))),
                    }
                }
                if field != "task" {
                    return Err(refuse(format!(
                        "the AutoGen placeholder `{{{field}}}` cannot be filled (only `{{task}}` is)"
                    )));
                }
                fields += 1;
                out.push_str("{task}");
            }
            '}' => return Err(refuse("a single `}` is not a valid AutoGen template".into())),
            c => out.push(c),
        }
    }
    let placeholders: Vec<&str> =
        agentgen_core::team::prompt_template::placeholders(&out).collect();
    if let Some(literal) = placeholders.iter().find(|p| **p != "task") {
        return Err(refuse(format!(
            "the text `{{{literal}}}` would be read as a placeholder; it cannot be kept"
        )));
    }
    if placeholders.len() != fields {
        return Err(refuse("the text `{task}` would be read as a placeholder".into()));
    }
    Ok(out)
}

/// The default system message of AutoGen's `AssistantAgent`.
const AUTOGEN_SYSTEM_MESSAGE: &str = "You are a helpful AI assistant. Solve tasks using your \
tools. Reply with TERMINATE when the task has been completed.";

fn agent(
    p: &Value,
    i: usize,
    cx: &Ctx<'_>,
    servers: &mut Vec<T>,
) -> Result<Map<String, T>, TeamFileError> {
    let field = format!("config.participants[{i}]");
    let kind = kind_of(p);
    let c = config(p);
    let name = string(c, "name").ok_or_else(|| {
        cx.err(kind, &format!("{field}.config.name"), "a participant needs a name")
    })?;
    let mut a = Map::new();
    a.insert("name".into(), T::String(name.clone()));
    if let Some(d) = string(c, "description") {
        a.insert("description".into(), T::String(d));
    }
    match kind {
        "AssistantAgent" => {}
        "UserProxyAgent" => {
            a.insert("kind".into(), T::String("user_proxy".into()));
            return Ok(a);
        }
        "CodeExecutorAgent" => {
            a.insert("kind".into(), T::String("code_executor".into()));
            return Ok(a);
        }
        other => {
            return Err(cx.err(
                &format!("\"{other}\""),
                &format!("{field}.provider"),
                format!(
                    "AutoGen agent type `{other}` is not supported (supported: AssistantAgent, \
                     UserProxyAgent, CodeExecutorAgent)"
                ),
            ))
        }
    }
    let system = match c.get("system_message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => String::new(),
        _ => AUTOGEN_SYSTEM_MESSAGE.to_owned(),
    };
    a.insert("system_message".into(), T::String(system));
    if let Some((backend, model)) = c.get("model_client").and_then(model_client) {
        a.insert("backend".into(), T::String(backend.into()));
        a.insert("model".into(), T::String(model));
    }
    if let Some(r) = c.get("reflect_on_tool_use").and_then(Value::as_bool) {
        a.insert("reflect_on_tool_use".into(), T::Boolean(r));
    }
    if let Some(n) = c.get("max_tool_iterations").and_then(Value::as_i64).filter(|n| *n > 1) {
        a.insert("max_tool_iterations".into(), T::Integer(n));
    }
    if let Some(ctx) = c.get("model_context") {
        if let Some(t) = model_context(ctx) {
            a.insert("model_context".into(), T::Table(t));
        }
    }
    let handoffs: Vec<T> = c
        .get("handoffs")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .filter_map(|h| h.as_str().map(str::to_owned).or_else(|| string(h, "target")))
                .map(T::String)
                .collect()
        })
        .unwrap_or_default();
    if !handoffs.is_empty() {
        a.insert("handoffs".into(), T::Array(handoffs));
    }
    let mut tools = Vec::new();
    let workbenches: Vec<&Value> = match c.get("workbench") {
        Some(Value::Array(w)) => w.iter().collect(),
        Some(w @ Value::Object(_)) => vec![w],
        _ => Vec::new(),
    };
    let has_tools =
        |v: &Value| v.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    let function_tools = || {
        cx.err(
            &format!("\"{name}\""),
            &format!("{field}.config.workbench"),
            "Python function tools cannot be loaded; give the agent MCP servers (McpWorkbench) \
             or use a team file with [[command_tools]]",
        )
    };
    if has_tools(c) {
        return Err(function_tools());
    }
    for w in workbenches {
        let wc = config(w);
        match kind_of(w) {
            "McpWorkbench" => {
                let server = format!("{name}_mcp{}", servers.len() + 1);
                servers.push(mcp_server(&server, wc.get("server_params"), cx, &field)?);
                tools.push(T::String(format!("{server}.*")));
            }
            _ if has_tools(wc) => return Err(function_tools()),
            _ => {}
        }
    }
    if !tools.is_empty() {
        a.insert("tools".into(), T::Array(tools));
    }
    Ok(a)
}

/// `OpenAIChatCompletionClient` → (backend, model): Groq's URL → groq; OpenAI's (or none) →
/// openai; any other URL (a local or custom server) → the configured backend.
fn model_client(m: &Value) -> Option<(&'static str, String)> {
    if kind_of(m) != "OpenAIChatCompletionClient" {
        return None;
    }
    let c = config(m);
    let model = string(c, "model")?;
    match string(c, "base_url") {
        Some(url) if url.contains("api.groq.com") => Some(("groq", model)),
        Some(url) if url.contains("api.openai.com") => Some(("openai", model)),
        None => Some(("openai", model)),
        Some(_) => None,
    }
}

fn model_context(ctx: &Value) -> Option<Map<String, T>> {
    let c = config(ctx);
    let int = |k: &str| c.get(k).and_then(Value::as_i64).map(T::Integer);
    let mut t = Map::new();
    match kind_of(ctx) {
        "BufferedChatCompletionContext" => {
            t.insert("kind".into(), T::String("buffered".into()));
            t.insert("n".into(), int("buffer_size")?);
        }
        "HeadAndTailChatCompletionContext" => {
            t.insert("kind".into(), T::String("head_and_tail".into()));
            t.insert("head".into(), int("head_size")?);
            t.insert("tail".into(), int("tail_size")?);
        }
        "TokenLimitedChatCompletionContext" => {
            t.insert("kind".into(), T::String("token_limited".into()));
            t.insert("limit".into(), int("token_limit")?);
        }
        _ => return None,
    }
    Some(t)
}

fn mcp_server(
    name: &str,
    params: Option<&Value>,
    cx: &Ctx<'_>,
    field: &str,
) -> Result<T, TeamFileError> {
    let mut s = Map::new();
    s.insert("name".into(), T::String(name.into()));
    let params = params.unwrap_or(&Value::Null);
    if let Some(command) = string(params, "command") {
        let mut argv = vec![T::String(command)];
        if let Some(args) = params.get("args").and_then(Value::as_array) {
            argv.extend(args.iter().filter_map(Value::as_str).map(|a| T::String(a.into())));
        }
        s.insert("command".into(), T::Array(argv));
    } else if let Some(url) = string(params, "url") {
        s.insert("url".into(), T::String(url));
    } else {
        return Err(cx.err(
            "McpWorkbench",
            &format!("{field}.config.workbench"),
            "an McpWorkbench needs server_params with a command or a url",
        ));
    }
    Ok(T::Table(s))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A termination component as a termination expression.
fn termination(t: &Value, cx: &Ctx<'_>) -> Result<String, TeamFileError> {
    let c = config(t);
    let kind = kind_of(t);
    let field = "config.termination_condition";
    let need = |v: Option<String>| {
        v.ok_or_else(|| cx.err(kind, field, format!("{kind} without its setting")))
    };
    let strings = |key: &str| -> Vec<String> {
        c.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(quote).collect())
            .unwrap_or_default()
    };
    let num = |key: &str| c.get(key).and_then(Value::as_u64).map(|n| n.to_string());
    Ok(match kind {
        "MaxMessageTermination" => format!("max_messages({})", need(num("max_messages"))?),
        "TextMentionTermination" => {
            let mut args = vec![quote(&need(string(c, "text"))?)];
            args.extend(strings("sources"));
            format!("text_mention({})", args.join(", "))
        }
        "StopMessageTermination" => "stop_message()".into(),
        "HandoffTermination" => format!("handoff({})", quote(&need(string(c, "target"))?)),
        "TimeoutTermination" => {
            let secs = c.get("timeout_seconds").and_then(Value::as_f64).map(|s| s.ceil() as u64);
            format!("timeout({})", need(secs.map(|s| s.to_string()))?)
        }
        "SourceMatchTermination" => format!("source_match({})", strings("sources").join(", ")),
        "TextMessageTermination" => match string(c, "source") {
            Some(s) => format!("text_message({})", quote(&s)),
            None => "text_message()".into(),
        },
        "FunctionCallTermination" => {
            format!("function_call({})", quote(&need(string(c, "function_name"))?))
        }
        "TokenUsageTermination" => format!("token_usage({})", need(num("max_total_token"))?),
        "OrTerminationCondition" | "AndTerminationCondition" => {
            let op = if kind.starts_with("Or") { " | " } else { " & " };
            let parts = c
                .get("conditions")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| cx.err(kind, field, format!("{kind} without conditions")))?;
            let parts = parts
                .iter()
                .map(|p| termination(p, cx).map(|s| format!("({s})")))
                .collect::<Result<Vec<_>, _>>()?;
            parts.join(op)
        }
        other => {
            return Err(cx.err(
                other,
                field,
                format!("AutoGen termination `{other}` is not supported"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::{AgentKind, TeamKind, TeamSpec};

    fn fixture(name: &str) -> (String, std::path::PathBuf) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/autogen").join(name);
        (std::fs::read_to_string(&path).unwrap(), path)
    }

    #[test]
    fn a_dumped_round_robin_team_maps_to_a_team_file() {
        let (text, path) = fixture("round_robin.json");
        assert!(is_component_json(&path, &text));
        let toml = to_toml(&text, &path).unwrap();
        let spec = TeamSpec::parse(&toml, &path).unwrap();
        assert_eq!(spec.team.kind, TeamKind::RoundRobin);
        let names: Vec<&str> = spec.agents.iter().map(|a| a.name.get_ref().as_str()).collect();
        assert_eq!(names, ["writer", "critic"]);
        let writer = &spec.agents[0];
        assert_eq!(writer.kind, AgentKind::Assistant);
        assert_eq!(
            writer.system_message.as_deref(),
            Some("You are the writer. Answer in one short line.")
        );
        assert_eq!(writer.description.as_deref(), Some("Writes a one-line answer."));
        assert!(writer.backend.is_none(), "a local base_url runs on the configured backend");
        assert_eq!(spec.stop.unwrap().to_string(), "max_messages(3) | text_mention('APPROVE')");
    }

    #[test]
    fn a_dumped_selector_team_keeps_its_prompt_and_and_termination() {
        let (text, path) = fixture("selector.json");
        let spec = TeamSpec::parse(&to_toml(&text, &path).unwrap(), &path).unwrap();
        assert_eq!(spec.team.kind, TeamKind::Selector);
        assert!(spec.team.allow_repeated_speaker);
        assert_eq!(
            spec.team.selector_prompt.unwrap().into_inner(),
            "Pick one of {participants}.\n{roles}\n{history}"
        );
        assert_eq!(spec.stop.unwrap().to_string(), "max_messages(4) & text_mention('APPROVE')");
    }

    #[test]
    fn a_dumped_magentic_one_team_keeps_its_limits() {
        let (text, path) = fixture("magentic_one.json");
        let spec = TeamSpec::parse(&to_toml(&text, &path).unwrap(), &path).unwrap();
        assert_eq!(spec.team.kind, TeamKind::MagenticOne);
        assert_eq!(spec.team.max_turns.map(|n| n.into_inner()), Some(6));
        assert_eq!(spec.team.max_stalls.map(|n| n.into_inner()), Some(2));
        // A local base_url: the orchestrator runs on the configured backend.
        assert!(spec.team.orchestrator_backend.is_none());
        let names: Vec<&str> = spec.agents.iter().map(|a| a.name.get_ref().as_str()).collect();
        assert_eq!(names, ["researcher", "writer"]);
        assert!(spec.stop.is_none());
        // AutoGen's default final answer prompt, with its `{task}`.
        let json: Value = serde_json::from_str(&text).unwrap();
        let prompt = spec.team.final_answer_prompt.unwrap().into_inner();
        assert_eq!(prompt, json["config"]["final_answer_prompt"].as_str().unwrap());
        assert!(prompt.contains("following task:\n{task}\n"), "{prompt}");
    }

    #[test]
    fn a_final_answer_prompt_maps_its_braces_and_refuses_unknown_fields() {
        let (text, path) = fixture("magentic_one.json");
        let with = |prompt: &str| {
            let mut json: Value = serde_json::from_str(&text).unwrap();
            json["config"]["final_answer_prompt"] = Value::String(prompt.into());
            serde_json::to_string_pretty(&json).unwrap()
        };
        let spec =
            TeamSpec::parse(&to_toml(&with("{task}: {{\"answer\": 1}}"), &path).unwrap(), &path)
                .unwrap();
        assert_eq!(spec.team.final_answer_prompt.unwrap().into_inner(), "{task}: {\"answer\": 1}");
        let json = with("Answer {task} for {user}.");
        let err = to_toml(&json, &path).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("config.final_answer_prompt"), "{err}");
        assert!(err.message.contains("`{user}`"), "{err}");
        let key = json.lines().position(|l| l.contains("final_answer_prompt")).unwrap();
        assert_eq!(err.line, key + 1, "{err}");
        for bad in ["{task!r}", "{}", "a } b", "{task", "{{plan}}", "{{task}}"] {
            let err = to_toml(&with(bad), &path).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("config.final_answer_prompt"), "{bad}: {err}");
        }
    }

    #[test]
    fn groq_clients_and_contexts_map_and_unknown_types_are_located() {
        let (text, path) = fixture("round_robin.json");
        let groq = text
            .replacen("http://127.0.0.1:8080/v1", "https://api.groq.com/openai/v1", 1)
            .replacen("UnboundedChatCompletionContext\",", "BufferedChatCompletionContext\",", 1)
            .replacen("\"config\": {}", "\"config\": {\"buffer_size\": 5}", 1);
        let spec = TeamSpec::parse(&to_toml(&groq, &path).unwrap(), &path).unwrap();
        let writer = &spec.agents[0];
        assert_eq!(writer.backend.as_ref().unwrap().get_ref(), "groq");
        assert_eq!(writer.model.as_deref(), Some("qwen2.5-coder-0.5b-instruct"));
        assert_eq!(
            writer.model_context.as_ref().map(|c| *c.get_ref()),
            Some(agentgen_core::ContextPolicy::Buffered { n: 5 })
        );
        assert!(spec.agents[1].backend.is_none());

        let other = text.replacen("teams.RoundRobinGroupChat", "teams.SomeOtherGroupChat", 1);
        let err = to_toml(&other, &path).unwrap_err();
        assert_eq!((err.line, err.column), (2, 40), "{err}");
        assert!(err.message.contains("SomeOtherGroupChat"), "{err}");
        let bad =
            text.replacen("conditions.TextMentionTermination", "conditions.ExternalTermination", 1);
        let err = to_toml(&bad, &path).unwrap_err();
        assert!(err.message.contains("ExternalTermination"), "{err}");
        // Two participants with one name: found after the conversion, placed in the JSON.
        let twins = text.replacen("\"name\": \"critic\"", "\"name\": \"writer\"", 1);
        let converted = to_toml(&twins, &path).unwrap();
        let err = TeamSpec::parse(&converted, &path).unwrap_err();
        let err = relocate(err, &converted, &twins);
        assert!(err.message.contains("two agents are named `writer`"), "{err}");
        assert!(err.message.ends_with("(in the team converted from AutoGen JSON)"), "{err}");
        assert_eq!(err.line, twins.lines().position(|l| l.contains("\"writer\"")).unwrap() + 1);
        let err = to_toml("{\"provider\": ", &path).unwrap_err();
        assert!(err.message.starts_with("not JSON"), "{err}");
    }
}
