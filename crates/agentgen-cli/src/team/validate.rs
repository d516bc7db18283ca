//! The checks a team file passes after it parsed: names, kinds, tools, schemas, edges and the
//! termination expression, each failure located at the offending value.

use std::ops::Range;
use std::path::Path;

use agentgen_core::model_context::ContextPolicy;
use agentgen_core::team::MagenticOnePolicy;
use agentgen_core::tools::check_schema;
use toml::Spanned;

use super::expr::Cond;
use super::spec::{
    allowed_fields, Activation, AgentKind, TeamKind, TeamRef, TeamSpec, TerminationSpec,
    AGENT_TOOL_PREFIX,
};
use super::{line_col, TeamFileError, BUILTIN_TOOLS, MAX_NESTING};

/// Builds errors located in one file.
pub(super) struct At<'a> {
    text: &'a str,
    path: &'a Path,
}

impl At<'_> {
    pub(super) fn err(
        &self,
        span: Range<usize>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> TeamFileError {
        let (line, column) = line_col(self.text, span.start);
        TeamFileError { path: self.path.to_owned(), line, column, field, message: message.into() }
    }
}

/// Checks a parsed team file and fills in what is derived from it (schemas, nested teams, the
/// termination condition).
pub(super) fn check(
    spec: &mut TeamSpec,
    text: &str,
    path: &Path,
    depth: usize,
) -> Result<(), TeamFileError> {
    let at = At { text, path };
    if spec.agents.is_empty() {
        return Err(at.err(0..0, Some("agents".into()), "a team needs at least one agent"));
    }
    let names: Vec<String> = spec.agents.iter().map(|a| a.name.get_ref().clone()).collect();
    check_command_tools(spec, &at)?;
    for i in 0..spec.agents.len() {
        check_agent(spec, i, &names, &at, depth)?;
    }
    super::agent_tools::check(spec, &at)?;
    let members: Vec<String> =
        spec.agents.iter().filter(|a| a.member).map(|a| a.name.get_ref().clone()).collect();
    check_mcp_servers(spec, &at)?;
    if let Some(store) = &spec.session.store {
        if store.get_ref().trim().is_empty() {
            return Err(at.err(
                store.span(),
                Some("session.store".into()),
                "must name a file (or leave `store` out for the default store)",
            ));
        }
    }
    spec.stop = termination(spec, &names, &at)?;
    check_team_kind(spec, &members, &at)
}

fn check_agent(
    spec: &mut TeamSpec,
    i: usize,
    names: &[String],
    at: &At<'_>,
    depth: usize,
) -> Result<(), TeamFileError> {
    let agent = &spec.agents[i];
    let name = agent.name.get_ref();
    let span = agent.name.span();
    let field = |f: &str| Some(format!("agents[{i}].{f}"));
    if name.trim().is_empty() {
        return Err(at.err(span, field("name"), "must not be empty"));
    }
    if names[..i].contains(name) {
        return Err(at.err(span, field("name"), format!("two agents are named `{name}`")));
    }
    let allowed = allowed_fields(agent.kind);
    if let Some(bad) = agent.set_fields().into_iter().find(|f| !allowed.contains(f)) {
        let takes = if allowed.is_empty() { "nothing more".to_owned() } else { allowed.join(", ") };
        return Err(at.err(
            span,
            field("kind"),
            format!("`{bad}` is not for kind = \"{}\" (it takes: {takes})", agent.kind),
        ));
    }
    match agent.kind {
        AgentKind::Assistant if agent.system_message.is_none() => {
            return Err(at.err(
                span,
                field("system_message"),
                "an assistant needs a system_message",
            ));
        }
        AgentKind::SocietyOfMind if agent.team.is_none() => {
            return Err(at.err(span, field("team"), "a society_of_mind agent needs a team file"));
        }
        _ => {}
    }
    if agent.activation == Activation::Any && spec.team.kind != TeamKind::Graph {
        return Err(at.err(span, field("activation"), "activation is for graph teams"));
    }
    for tool in &agent.tools {
        let entry = tool.get_ref();
        if entry.starts_with(AGENT_TOOL_PREFIX) {
            // Checked with every agent in view (super::agent_tools).
        } else if let Some((server, _)) = entry.split_once('.') {
            if !spec.mcp_servers.iter().any(|m| m.name.get_ref() == server) {
                return Err(at.err(
                    tool.span(),
                    field("tools"),
                    format!("no [[mcp_servers]] entry is named `{server}`"),
                ));
            }
        } else if !BUILTIN_TOOLS.contains(&entry.as_str())
            && !spec.command_tools.iter().any(|c| c.name.get_ref() == entry)
        {
            return Err(at.err(
                tool.span(),
                field("tools"),
                format!(
                    "unknown tool `{entry}` (built-in tools: {}; or a [[command_tools]] name, or \
                     `server.*` for an MCP server)",
                    BUILTIN_TOOLS.join(", ")
                ),
            ));
        }
    }
    for source in &agent.sources {
        let s = source.get_ref();
        if s != "user" && !names.contains(s) {
            return Err(at.err(
                source.span(),
                field("sources"),
                format!("no agent is named `{s}` (and it is not `user`, the task)"),
            ));
        }
    }
    for target in &agent.handoffs {
        let t = target.get_ref();
        if t != "user" && !names.contains(t) {
            return Err(at.err(
                target.span(),
                field("handoffs"),
                format!("no agent is named `{t}` (and it is not `user`)"),
            ));
        }
    }
    let backends = agent.backend.iter().map(|b| (b, "backend".to_owned()));
    let fallbacks =
        agent.fallback.iter().enumerate().map(|(j, f)| (&f.backend, format!("fallback[{j}]")));
    for (backend, name) in backends.chain(fallbacks) {
        if backend.get_ref().parse::<crate::config::BackendKind>().is_err() {
            return Err(at.err(
                backend.span(),
                field(&name),
                format!(
                    "unknown backend `{}` (expected one of: local, groq, openai)",
                    backend.get_ref()
                ),
            ));
        }
    }
    for (j, f) in agent.fallback.iter().enumerate() {
        if let Some(url) = &f.base_url {
            if f.backend.get_ref() == "local" {
                return Err(at.err(
                    url.span(),
                    field(&format!("fallback[{j}].base_url")),
                    "base_url is for groq and openai backends",
                ));
            }
        }
    }
    if let Some(n) = &agent.max_tool_iterations {
        if *n.get_ref() == 0 {
            return Err(at.err(n.span(), field("max_tool_iterations"), "must be at least 1"));
        }
    }
    if let Some(context) = &agent.model_context {
        let empty = match *context.get_ref() {
            ContextPolicy::Buffered { n } => n == 0,
            ContextPolicy::HeadAndTail { head, tail } => head + tail == 0,
            ContextPolicy::TokenLimited { limit } => limit == 0,
            _ => false,
        };
        if empty {
            return Err(at.err(context.span(), field("model_context"), "would keep no message"));
        }
    }
    let output = match &agent.output_schema {
        Some(schema) => Some(json_schema(schema, at, field("output_schema"), false)?),
        None => None,
    };
    let inner = match &agent.team {
        Some(team) => match team.get_ref() {
            TeamRef::File(file) => {
                let file = Spanned::new(team.span(), file.clone());
                Some(Box::new(nested(&file, at, field("team"), depth)?))
            }
            TeamRef::Inline(inline) => {
                if depth + 1 > MAX_NESTING {
                    return Err(at.err(
                        team.span(),
                        field("team"),
                        format!("teams nest more than {MAX_NESTING} deep"),
                    ));
                }
                let mut inner = inline.clone();
                check(&mut inner, at.text, at.path, depth + 1)?;
                Some(inner)
            }
        },
        None => None,
    };
    let agent = &mut spec.agents[i];
    agent.output = output;
    agent.inner = inner;
    Ok(())
}

/// A JSON schema given as a TOML table or a JSON string, checked against the meta-schema
/// (and, for tool arguments, an object schema).
fn json_schema(
    value: &Spanned<toml::Value>,
    at: &At<'_>,
    field: Option<String>,
    object: bool,
) -> Result<serde_json::Value, TeamFileError> {
    let err = |m: String| at.err(value.span(), field.clone(), m);
    let schema = match value.get_ref() {
        toml::Value::String(s) => {
            serde_json::from_str(s).map_err(|e| err(format!("not JSON: {e}")))?
        }
        other @ toml::Value::Table(_) => {
            serde_json::to_value(other).map_err(|e| err(e.to_string()))?
        }
        _ => return Err(err("a JSON schema: a TOML table or a JSON string".into())),
    };
    if !schema.is_object() {
        return Err(err("a JSON schema must be an object".into()));
    }
    if object && schema.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err(err("the arguments schema must have type = \"object\"".into()));
    }
    check_schema(&schema).map_err(|e| err(format!("not a valid JSON schema: {e}")))?;
    Ok(schema)
}

/// The team file a society-of-mind agent names, relative to this file.
fn nested(
    file: &Spanned<String>,
    at: &At<'_>,
    field: Option<String>,
    depth: usize,
) -> Result<super::TeamSpec, TeamFileError> {
    if depth + 1 > MAX_NESTING {
        return Err(at.err(
            file.span(),
            field,
            format!("team files nest more than {MAX_NESTING} deep (does one include itself?)"),
        ));
    }
    let path = at.path.parent().unwrap_or(Path::new("")).join(file.get_ref());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| at.err(file.span(), field, format!("cannot read {}: {e}", path.display())))?;
    super::TeamSpec::parse_at(&text, &path, depth + 1)
}

fn check_command_tools(spec: &mut TeamSpec, at: &At<'_>) -> Result<(), TeamFileError> {
    for i in 0..spec.command_tools.len() {
        let tool = &spec.command_tools[i];
        let field = |f: &str| Some(format!("command_tools[{i}].{f}"));
        let name = tool.name.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(at.err(
                tool.name.span(),
                field("name"),
                "must be 1-64 characters of letters, digits, `_` or `-`",
            ));
        }
        if BUILTIN_TOOLS.contains(&name.as_str())
            || spec.command_tools[..i].iter().any(|c| c.name.get_ref() == name)
        {
            return Err(at.err(tool.name.span(), field("name"), format!("`{name}` is taken")));
        }
        let argv = tool.argv.get_ref();
        match argv.first() {
            None => return Err(at.err(tool.argv.span(), field("argv"), "needs a program")),
            Some(program) if program.contains('{') && program.contains('}') => {
                return Err(at.err(
                    tool.argv.span(),
                    field("argv"),
                    "the program (argv[0]) must be fixed, not a {placeholder}",
                ))
            }
            Some(_) => {}
        }
        if tool.timeout_s == Some(0) {
            return Err(at.err(tool.name.span(), field("timeout_s"), "must be at least 1"));
        }
        let schema = json_schema(&tool.parameters, at, field("parameters"), true)?;
        spec.command_tools[i].schema = schema;
    }
    Ok(())
}

fn check_mcp_servers(spec: &TeamSpec, at: &At<'_>) -> Result<(), TeamFileError> {
    for (i, server) in spec.mcp_servers.iter().enumerate() {
        let field = Some(format!("mcp_servers[{i}]"));
        if server.command.is_some() == server.url.is_some() {
            return Err(at.err(server.name.span(), field, "needs one of command or url"));
        }
        if let Err(e) = server.config().validate() {
            return Err(at.err(server.name.span(), field, e.to_string()));
        }
        if spec.mcp_servers[..i].iter().any(|m| m.name.get_ref() == server.name.get_ref()) {
            return Err(at.err(server.name.span(), field, "two MCP servers share this name"));
        }
    }
    Ok(())
}

/// The termination condition of either form, with agent names checked.
fn termination(
    spec: &TeamSpec,
    names: &[String],
    at: &At<'_>,
) -> Result<Option<Cond>, TeamFileError> {
    let Some(t) = &spec.termination else { return Ok(None) };
    let expression = |e: &Spanned<String>, field: &str| {
        Cond::parse(e.get_ref()).map_err(|err| {
            // Point into the string: past its opening quote(s), exact unless escapes precede.
            let raw = &at.text[e.span()];
            let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
            let offset = (e.span().start + quote + err.offset).min(e.span().end);
            at.err(offset..offset, Some(field.to_owned()), err.message)
        })
    };
    let cond = match t.get_ref() {
        TerminationSpec::Expression(e) => {
            let e = Spanned::new(t.span(), e.clone());
            Some(expression(&e, "termination")?)
        }
        TerminationSpec::Table(table) => {
            let mut parts = Vec::new();
            if let Some(max) = &table.max_messages {
                if *max.get_ref() == 0 {
                    return Err(at.err(
                        max.span(),
                        Some("termination.max_messages".into()),
                        "must be at least 1",
                    ));
                }
                parts.push(Cond::MaxMessages(*max.get_ref()));
            }
            if let Some(text) = &table.text_mention {
                if text.get_ref().is_empty() {
                    return Err(at.err(
                        text.span(),
                        Some("termination.text_mention".into()),
                        "must not be empty",
                    ));
                }
                parts.push(Cond::TextMention { text: text.get_ref().clone(), sources: vec![] });
            }
            if let Some(when) = &table.when {
                parts.push(expression(when, "termination.when")?);
            }
            parts.into_iter().reduce(Cond::or)
        }
    };
    if let Some(unknown) =
        cond.iter().flat_map(Cond::agent_names).find(|n| !names.iter().any(|x| x.as_str() == *n))
    {
        return Err(at.err(
            t.span(),
            Some("termination".into()),
            format!("no agent is named `{unknown}`"),
        ));
    }
    Ok(cond)
}

/// What only MagenticOne teams take: turn and stall limits, first speaker, final answer
/// prompt, orchestrator model.
fn check_magentic_one(spec: &TeamSpec, names: &[String], at: &At<'_>) -> Result<(), TeamFileError> {
    let t = &spec.team;
    let spans = [
        ("team.max_turns", t.max_turns.as_ref().map(Spanned::span)),
        ("team.max_stalls", t.max_stalls.as_ref().map(Spanned::span)),
        ("team.first_speaker", t.first_speaker.as_ref().map(Spanned::span)),
        ("team.final_answer_prompt", t.final_answer_prompt.as_ref().map(Spanned::span)),
        ("team.orchestrator_backend", t.orchestrator_backend.as_ref().map(Spanned::span)),
        ("team.orchestrator_model", t.orchestrator_model.as_ref().map(Spanned::span)),
    ];
    if t.kind != TeamKind::MagenticOne {
        if let Some((field, Some(span))) = spans.into_iter().find(|(_, s)| s.is_some()) {
            return Err(at.err(
                span,
                Some(field.to_owned()),
                format!("only {} teams take `{field}`", TeamKind::MagenticOne),
            ));
        }
        return Ok(());
    }
    for (field, n) in [("team.max_turns", &t.max_turns), ("team.max_stalls", &t.max_stalls)] {
        if let Some(n) = n.as_ref().filter(|n| *n.get_ref() == 0) {
            return Err(at.err(n.span(), Some(field.to_owned()), "must be at least 1"));
        }
    }
    if let Some(f) = t.first_speaker.as_ref().filter(|f| !names.contains(f.get_ref())) {
        return Err(at.err(
            f.span(),
            Some("team.first_speaker".into()),
            format!("no agent is named `{}`", f.get_ref()),
        ));
    }
    if let Some(p) = &t.final_answer_prompt {
        if let Err(e) = MagenticOnePolicy::check_final_answer_prompt(p.get_ref()) {
            return Err(at.err(p.span(), Some("team.final_answer_prompt".into()), e.to_string()));
        }
    }
    if let Some(b) = &t.orchestrator_backend {
        if b.get_ref().parse::<crate::config::BackendKind>().is_err() {
            return Err(at.err(
                b.span(),
                Some("team.orchestrator_backend".into()),
                format!("unknown backend `{}` (expected one of: local, groq, openai)", b.get_ref()),
            ));
        }
    }
    Ok(())
}

/// What only some team types take: selector prompt and candidates, graph entry and edges.
fn check_team_kind(spec: &TeamSpec, names: &[String], at: &At<'_>) -> Result<(), TeamFileError> {
    let kind = spec.team.kind;
    let only = |span: Range<usize>, field: &str, for_kind: TeamKind| {
        at.err(span, Some(field.to_owned()), format!("only {for_kind} teams take `{field}`"))
    };
    if kind != TeamKind::Selector {
        if let Some(p) = &spec.team.selector_prompt {
            return Err(only(p.span(), "team.selector_prompt", TeamKind::Selector));
        }
        if let Some(c) = &spec.team.candidates {
            return Err(only(c.span(), "team.candidates", TeamKind::Selector));
        }
    }
    if let Some(c) = &spec.team.candidates {
        for (after, list) in c.get_ref() {
            if let Some(n) = std::iter::once(after).chain(list).find(|n| !names.contains(n)) {
                return Err(at.err(
                    c.span(),
                    Some("team.candidates".into()),
                    format!("no agent is named `{n}`"),
                ));
            }
            if list.is_empty() {
                return Err(at.err(
                    c.span(),
                    Some("team.candidates".into()),
                    format!("the candidates after `{after}` are empty"),
                ));
            }
        }
    }
    check_magentic_one(spec, names, at)?;
    if kind != TeamKind::Graph {
        if let Some(e) = &spec.team.entry {
            return Err(only(e.span(), "team.entry", TeamKind::Graph));
        }
        if let Some(e) = spec.edges.first() {
            return Err(only(e.from.span(), "edges", TeamKind::Graph));
        }
        return Ok(());
    }
    let index = |s: &Spanned<String>, field: String| {
        names.iter().position(|n| n == s.get_ref()).ok_or_else(|| {
            at.err(s.span(), Some(field), format!("no agent is named `{}`", s.get_ref()))
        })
    };
    let mut edges = Vec::new();
    for (i, e) in spec.edges.iter().enumerate() {
        let from = index(&e.from, format!("edges[{i}].from"))?;
        let to = index(&e.to, format!("edges[{i}].to"))?;
        if let Some(c) = e.condition.as_ref().filter(|c| c.get_ref().is_empty()) {
            return Err(at.err(
                c.span(),
                Some(format!("edges[{i}].condition")),
                "must not be empty",
            ));
        }
        edges.push((from, to, e.condition.is_none(), i));
    }
    match &spec.team.entry {
        Some(e) => {
            index(e, "team.entry".into())?;
        }
        None if (0..names.len()).all(|n| edges.iter().any(|e| e.1 == n)) => {
            return Err(at.err(
                0..0,
                Some("team.entry".into()),
                "every node has incoming edges: name the first with `entry`",
            ));
        }
        None => {}
    }
    // A cycle of unconditional edges would run forever.
    let mut state = vec![0u8; names.len()];
    fn visit(i: usize, edges: &[(usize, usize, bool, usize)], state: &mut [u8]) -> Option<usize> {
        state[i] = 1;
        for e in edges.iter().filter(|e| e.0 == i && e.2) {
            match state[e.1] {
                1 => return Some(e.3),
                0 => {
                    if let Some(found) = visit(e.1, edges, state) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        state[i] = 2;
        None
    }
    for n in 0..names.len() {
        if state[n] == 0 {
            if let Some(edge) = visit(n, &edges, &mut state) {
                let e = &spec.edges[edge];
                return Err(at.err(
                    e.from.span(),
                    Some(format!("edges[{edge}]")),
                    "this edge closes a cycle with no condition on it: give one edge of the loop \
                     a condition",
                ));
            }
        }
    }
    Ok(())
}
