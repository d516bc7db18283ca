//! `agentgen team check` prints a checked team ([`show`]); `agentgen team new` prints a
//! commented starter file for each team type ([`starter`]).

use std::fmt::Write;

use super::spec::{Activation, AgentKind, TeamKind, TeamSpec};

/// A checked team, as `team check` prints it: type, termination, agents with their tools,
/// graph edges, MCP servers and command tools.
pub fn show(spec: &TeamSpec) -> String {
    let mut out = String::new();
    show_into(spec, "", &mut out);
    out
}

fn show_into(spec: &TeamSpec, indent: &str, out: &mut String) {
    let t = &spec.team;
    let _ = writeln!(out, "{indent}team: {} (speaker names: {:?})", t.kind, t.speaker_names);
    let stop = spec
        .stop
        .as_ref()
        .map_or("none in the file (the configured max_messages applies)".to_owned(), |c| {
            c.to_string()
        });
    let _ = writeln!(out, "{indent}termination: {stop}");
    if let Some(p) = &t.selector_prompt {
        let _ =
            writeln!(out, "{indent}selector prompt: {} characters", p.get_ref().chars().count());
    }
    if let Some(c) = &t.candidates {
        for (after, list) in c.get_ref() {
            let _ = writeln!(
                out,
                "{indent}after {after}: the selector chooses among {}",
                list.join(", ")
            );
        }
    }
    if t.kind == TeamKind::MagenticOne {
        let n = |v: &Option<toml::Spanned<usize>>, d: usize| v.as_ref().map_or(d, |n| *n.get_ref());
        let _ = writeln!(
            out,
            "{indent}orchestrator: backend {}, model {}; max_turns {}, max_stalls {}, first speaker {}",
            t.orchestrator_backend.as_ref().map_or("configured", |b| b.get_ref().as_str()),
            t.orchestrator_model.as_ref().map_or("configured", |m| m.get_ref().as_str()),
            n(&t.max_turns, 20),
            n(&t.max_stalls, 3),
            t.first_speaker.as_ref().map_or("chosen by the orchestrator", |f| f.get_ref().as_str()),
        );
        if let Some(p) = &t.final_answer_prompt {
            let chars = p.get_ref().chars().count();
            let _ = writeln!(out, "{indent}final answer prompt: {chars} characters");
        }
    }
    let _ = writeln!(out, "{indent}agents:");
    for a in &spec.agents {
        let mut line = format!("{indent}  {} ({})", a.name.get_ref(), a.kind);
        let mut add = |k: &str, v: String| {
            let _ = write!(line, " {k}: {v};");
        };
        if !a.tools.is_empty() {
            add(
                "tools",
                a.tools.iter().map(|t| t.get_ref().as_str()).collect::<Vec<_>>().join(", "),
            );
        }
        if !a.handoffs.is_empty() {
            add(
                "handoffs",
                a.handoffs.iter().map(|t| t.get_ref().as_str()).collect::<Vec<_>>().join(", "),
            );
        }
        if a.has_model() {
            let backend = a.backend.as_ref().map_or("configured", |b| b.get_ref().as_str());
            add(
                "backend",
                format!(
                    "{backend}{}",
                    a.model.as_ref().map(|m| format!(" {m}")).unwrap_or_default()
                ),
            );
        }
        if !a.fallback.is_empty() {
            let chain: Vec<String> = a
                .fallback
                .iter()
                .map(|f| {
                    let model = f.model.as_ref().map(|m| format!(" {m}")).unwrap_or_default();
                    format!("{}{model}", f.backend.get_ref())
                })
                .collect();
            add("fallback", chain.join(" -> "));
        }
        if !a.member {
            add("member", "no (only called as a tool)".into());
        }
        if let Some(r) = a.reflect_on_tool_use {
            add("reflect_on_tool_use", r.to_string());
        }
        if let Some(n) = &a.max_tool_iterations {
            add("max_tool_iterations", n.get_ref().to_string());
        }
        if a.output.is_some() {
            add("output", "structured (JSON schema)".into());
        }
        if let Some(c) = &a.model_context {
            add("model_context", format!("{:?}", c.get_ref()));
        }
        if !a.memory.is_empty() {
            add("memory", format!("{} items", a.memory.len()));
        }
        if a.kind == AgentKind::CodeExecutor {
            add("network", if a.allow_network { "allowed" } else { "none" }.into());
            if !a.sources.is_empty() {
                let from: Vec<&str> = a.sources.iter().map(|s| s.get_ref().as_str()).collect();
                add("runs code from", from.join(", "));
            }
            if a.doctests {
                add("doctests", "run".into());
            }
        }
        if a.activation == Activation::Any {
            add("activation", "any".into());
        }
        let _ = writeln!(out, "{}", line.trim_end_matches(';'));
        if let Some(inner) = &a.inner {
            let _ = writeln!(
                out,
                "{indent}    inner team ({}):",
                a.team.as_ref().map_or("", |t| t.get_ref().label())
            );
            show_into(inner, &format!("{indent}      "), out);
        }
    }
    if t.kind == TeamKind::Graph {
        let _ = writeln!(out, "{indent}edges:");
        for e in &spec.edges {
            let when = e
                .condition
                .as_ref()
                .map(|c| format!(" when the message contains {:?}", c.get_ref()))
                .unwrap_or_default();
            let _ = writeln!(out, "{indent}  {} -> {}{when}", e.from.get_ref(), e.to.get_ref());
        }
        if let Some(entry) = &t.entry {
            let _ = writeln!(out, "{indent}entry: {}", entry.get_ref());
        }
    }
    for m in &spec.mcp_servers {
        let how = match (&m.command, &m.url) {
            (Some(c), _) => format!("stdio: {}", c.join(" ")),
            (None, Some(u)) => format!("http: {u}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "{indent}mcp server {}: {how}", m.name.get_ref());
    }
    for c in &spec.command_tools {
        let _ = writeln!(
            out,
            "{indent}command tool {}: {}",
            c.name.get_ref(),
            c.argv.get_ref().join(" ")
        );
    }
}

const HEAD: &str = r#"# An agentgen team file. Check it with `agentgen team check FILE`, run it with
# `agentgen run --team FILE "your task"`. Every key is listed in the README ("Team files").
"#;

/// The termination line; top-level keys come before the first `[table]`.
fn termination(expr: &str) -> String {
    format!(
        r#"
# When the run stops: conditions joined with | (or) and & (and); & binds tighter.
# Also: stop_message(), token_usage(N), handoff('user'), timeout(SECONDS),
# source_match('agent'), text_message(), function_call('tool').
termination = "{expr}"
"#
    )
}

/// A commented starter file for `kind` that passes `team check`.
pub fn starter(kind: TeamKind) -> String {
    let (stop, body) = match kind {
        TeamKind::RoundRobin => (
            "max_messages(8) | text_mention('APPROVE')",
            r#"
[team]
type = "round_robin"          # agents speak in turn
speaker_names = "prefix"      # others' messages reach each model as "name: text"

[[agents]]
name = "writer"
description = "Writes and revises the answer."
system_message = "You are the writer. Answer the task concisely; apply the reviewer's changes."
tools = ["word_count"]        # built-in: add, multiply, current_time, word_count
# max_tool_iterations = 2     # model calls one turn's tool loop may make
# reflect_on_tool_use = true  # answer once more from the tool results
# model_context = { kind = "buffered", n = 8 }   # the model sees only the last 8 messages

[[agents]]
name = "reviewer"
description = "Approves the answer or asks for changes."
system_message = "You are the reviewer. Reply APPROVE if the answer is right, else list one change."
"#,
        ),
        TeamKind::Selector => (
            "max_messages(8) | text_mention('APPROVE')",
            r#"
[team]
type = "selector"             # a model picks who speaks next
allow_repeated_speaker = false
# selector_prompt = "Pick the next role from {participants}.\n{roles}\n{history}"

[team.candidates]             # optional: after `planner`, only these may be picked
planner = ["researcher", "writer"]

[[agents]]
name = "planner"
description = "Breaks the task into steps."
system_message = "You are the planner. List at most three short steps."

[[agents]]
name = "researcher"
description = "Finds facts and numbers with tools."
system_message = "You are the researcher. Use your tools for every number."
tools = ["add", "multiply"]

[[agents]]
name = "writer"
description = "Writes the final answer and says APPROVE."
system_message = "You are the writer. Write the final answer in three sentences, then say APPROVE."
"#,
        ),
        TeamKind::MagenticOne => (
            "max_messages(40)",
            r#"
[team]
type = "magentic_one"         # an orchestrator model plans, then names and instructs each speaker
max_turns = 8                 # agent turns before the orchestrator gives its final answer
max_stalls = 2                # turns without progress before it re-plans
first_speaker = "researcher"  # the first turn after the plan goes to this agent
# final_answer_prompt = "Answer the task from the conversation:\n{task}"   # also {team}, {names}, {facts}, {plan}
# orchestrator_backend = "local"   # default: the configured backend and model
# orchestrator_model = "..."

[[agents]]
name = "researcher"
description = "Looks facts up."
system_message = "You are the researcher. Answer with the facts the task needs."

[[agents]]
name = "writer"
description = "Writes the final text from the researcher's facts."
system_message = "You are the writer. Write a short answer from the facts in the conversation."
"#,
        ),
        TeamKind::Swarm => (
            // A handoff to `user` ends the run and gives the floor back to the person.
            "max_messages(8) | handoff('user')",
            r#"
[team]
type = "swarm"                # agents pass the conversation on with transfer_to_<name> tools

[[agents]]
name = "triage"
description = "Decides who handles the request."
system_message = "You are triage. Hand counting to the counter; hand unclear requests to the user."
handoffs = ["counter", "user"]  # `user` ends the run: the person answers with the next task

[[agents]]
name = "counter"
description = "Counts words with a tool."
system_message = "You are the counter. Use word_count, answer, then hand back to triage."
tools = ["word_count"]
handoffs = ["triage"]
"#,
        ),
        TeamKind::Graph => (
            // The run also ends when no node is ready.
            "max_messages(10)",
            r#"
[team]
type = "graph"                # agents are nodes; edges say who speaks after whom
# entry = "planner"           # default: every node without incoming edges

[[agents]]
name = "planner"
system_message = "You are the planner. Split the task into a part A and a part B."

[[agents]]
name = "writer_a"
system_message = "You write part A of the plan, in two sentences."

[[agents]]
name = "writer_b"
system_message = "You write part B of the plan, in two sentences."

[[agents]]
name = "editor"
system_message = "You merge parts A and B into one answer."
# activation = "any"          # run when any incoming edge fires, not all

# Fan-out: writer_a and writer_b run concurrently once the planner is done.
[[edges]]
from = "planner"
to = "writer_a"

[[edges]]
from = "planner"
to = "writer_b"

# Fan-in: the editor waits for both.
[[edges]]
from = "writer_a"
to = "editor"

[[edges]]
from = "writer_b"
to = "editor"
# condition = "DONE"          # follow an edge only when the message contains this text
"#,
        ),
    };
    format!("{HEAD}{}{body}", termination(stop))
}
