//! Tests of team-file parsing and checking.

use agentgen_core::SpeakerNames;

use super::*;

fn parse(text: &str) -> Result<TeamSpec, TeamFileError> {
    TeamSpec::parse(text, Path::new("team.toml"))
}

#[test]
fn the_builtin_team_is_a_writer_an_executor_and_a_reviewer() {
    let spec = TeamSpec::builtin();
    assert_eq!(spec.team.kind, TeamKind::RoundRobin);
    assert_eq!(spec.agent_names(), ["writer", "executor", "reviewer"]);
    assert_eq!(spec.agents[1].kind, AgentKind::CodeExecutor);
    assert_eq!(
        spec.stop.as_ref().map(ToString::to_string).as_deref(),
        Some("max_messages(10) | text_mention('APPROVE')")
    );
}

#[test]
fn a_wrong_type_names_line_and_field() {
    let err =
        parse("[team]\ntype = \"round_robin\"\n\n[[agents]]\nname = \"a\"\nsystem_message = 42\n")
            .unwrap_err();
    assert_eq!((err.line, err.column), (6, 18), "{err}");
    assert_eq!(err.field.as_deref(), Some("agents.system_message"), "{err}");
    assert!(err.to_string().starts_with("team.toml:6:18: field `agents.system_message`"), "{err}");
}

#[test]
fn a_misspelt_field_is_named() {
    let err =
        parse("[team]\ntype = \"round_robin\"\n[[agents]]\nnmae = \"a\"\nsystem_message = \"x\"\n")
            .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("nmae"), "{err}");
    assert_eq!(err.line, 4, "{err}");
}

#[test]
fn an_unknown_team_type_is_reported_at_its_line() {
    let err = parse("[team]\ntype = \"mesh\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n")
        .unwrap_err();
    assert_eq!(err.line, 2, "{err}");
    assert_eq!(err.field.as_deref(), Some("team.type"), "{err}");
    assert!(err.message.contains("mesh"), "{err}");
}

#[test]
fn unknown_tools_and_duplicate_names_are_caught() {
    let err = parse(
        "[team]\ntype = \"selector\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"add\", \"fly\"]\n",
    )
    .unwrap_err();
    assert_eq!(err.line, 6);
    assert_eq!(err.field.as_deref(), Some("agents[0].tools"));
    assert!(err.message.contains("fly"));

    let err = parse(
        "[team]\ntype = \"swarm\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n[[agents]]\nname = \"a\"\nsystem_message = \"y\"\n",
    )
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (7, Some("agents[1].name")));
}

#[test]
fn the_example_team_files_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("teams");
    let selector = TeamSpec::from_file(&dir.join("selector.toml")).unwrap();
    assert_eq!(selector.team.kind, TeamKind::Selector);
    let swarm = TeamSpec::from_file(&dir.join("swarm.toml")).unwrap();
    assert_eq!(swarm.team.kind, TeamKind::Swarm);
    assert_eq!(swarm.agents[0].handoffs[0].get_ref(), "counter");
}

#[test]
fn mcp_servers_and_their_tool_selectors_are_checked() {
    let head = "[team]\ntype = \"round_robin\"\nspeaker_names = \"off\"\n";
    let spec = parse(&format!(
        "{head}[[mcp_servers]]\nname = \"geo\"\ncommand = [\"python3\", \"geo.py\"]\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"geo.*\", \"add\"]\n\
         tool_choice = \"required\"\n"
    ))
    .unwrap();
    assert_eq!(spec.team.speaker_names, SpeakerNames::Off);
    assert_eq!(spec.agents[0].tool_choice, ToolChoiceSpec::Required);
    assert_eq!(spec.mcp_servers[0].config().name, "geo");
    let err = parse(&format!(
        "{head}[[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"maps.*\"]\n"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (7, Some("agents[0].tools")), "{err}");
    let err = parse(&format!(
        "{head}[[mcp_servers]]\nname = \"geo\"\ncommand = [\"x\"]\nurl = \"http://h/mcp\"\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n"
    ))
    .unwrap_err();
    assert!(err.message.contains("one of command or url"), "{err}");
    let err = parse(&format!(
        "{head}[[mcp_servers]]\nname = \"g.o\"\nurl = \"http://h/mcp\"\n\
         [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (5, Some("mcp_servers[0]")), "{err}");
}

#[test]
fn a_session_section_names_the_store_and_its_durability() {
    let agents = "[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n";
    let spec = TeamSpec::parse(
        &format!(
            "[team]\ntype = \"round_robin\"\n[session]\nstore = \"runs/s.sqlite\"\n\
             durability = \"process_crash\"\n{agents}"
        ),
        Path::new("teams/t.toml"),
    )
    .unwrap();
    assert_eq!(spec.session.durability, DurabilitySpec::ProcessCrash);
    let store = spec.session_store(Path::new("teams/t.toml")).unwrap();
    assert_eq!(store, Path::new("teams/runs/s.sqlite"));
    let plain = parse(&format!("[team]\ntype = \"round_robin\"\n{agents}")).unwrap();
    assert_eq!(plain.session.durability, DurabilitySpec::PowerLoss);
    assert_eq!(plain.session_store(Path::new("t.toml")), None);

    let err = parse(&format!(
        "[team]\ntype = \"round_robin\"\n[session]\ndurability = \"sometimes\"\n{agents}"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (4, Some("session.durability")), "{err}");
    assert!(err.message.contains("power_loss"), "{err}");
    let err = parse(&format!("[team]\ntype = \"round_robin\"\n[session]\nstore = \" \"\n{agents}"))
        .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (4, Some("session.store")), "{err}");
    let err = parse(&format!("[team]\ntype = \"round_robin\"\n[session]\npath = \"x\"\n{agents}"))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("path"), "{err}");
}

#[test]
fn syntax_errors_carry_a_position() {
    let err = parse("[team\ntype = 1\n").unwrap_err();
    assert_eq!(err.line, 1, "{err}");
}

#[test]
fn a_code_executor_has_no_model_and_an_assistant_needs_instructions() {
    let spec = parse(
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n\
         [[agents]]\nname = \"run\"\nkind = \"code_executor\"\nallow_network = true\n",
    )
    .unwrap();
    assert_eq!(spec.agents[1].kind, AgentKind::CodeExecutor);
    assert!(spec.agents[1].allow_network);
    assert_eq!(spec.agents[0].kind, AgentKind::Assistant);

    let err = parse(
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"run\"\nkind = \"code_executor\"\n\
         tools = [\"add\"]\n",
    )
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agents[0].kind"), "{err}");
    let err = parse("[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"a\"\n").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agents[0].system_message"), "{err}");
}

const AGENT_A: &str = "[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n";

#[test]
fn a_termination_expression_is_parsed_and_its_errors_point_into_the_string() {
    let spec = parse(&format!(
        "termination = \"max_messages(8) | text_mention('OK') & source_match('a')\"\n\
         [team]\ntype = \"round_robin\"\n{AGENT_A}"
    ))
    .unwrap();
    assert_eq!(
        spec.stop.unwrap().to_string(),
        "max_messages(8) | text_mention('OK') & source_match('a')"
    );
    let err = parse(&format!(
        "termination = \"max_messages(8) | text_mentoin('OK')\"\n[team]\ntype = \"round_robin\"\n{AGENT_A}"
    ))
    .unwrap_err();
    // Column 15 is the opening quote; the bad name starts 18 bytes into the expression.
    assert_eq!((err.line, err.column), (1, 15 + 1 + 18), "{err}");
    assert_eq!(err.field.as_deref(), Some("termination"));
    assert!(err.message.contains("unknown condition `text_mentoin`"), "{err}");
    let err = parse(&format!(
        "termination = \"source_match('ghost')\"\n[team]\ntype = \"round_robin\"\n{AGENT_A}"
    ))
    .unwrap_err();
    assert!(err.message.contains("ghost"), "{err}");
    // The table form takes an expression too, OR-ed with its other keys.
    let spec = parse(&format!(
        "[team]\ntype = \"round_robin\"\n[termination]\nmax_messages = 4\nwhen = \"handoff('user') & timeout(60)\"\n{AGENT_A}"
    ))
    .unwrap();
    assert_eq!(spec.stop.unwrap().to_string(), "max_messages(4) | handoff('user') & timeout(60)");
    let err = parse(&format!(
        "[team]\ntype = \"round_robin\"\n[termination]\nwhen = \"timeout('x')\"\n{AGENT_A}"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (4, Some("termination.when")), "{err}");
}

const GRAPH: &str = "[team]\ntype = \"graph\"\n\
    [[agents]]\nname = \"a\"\nsystem_message = \"x\"\n\
    [[agents]]\nname = \"b\"\nsystem_message = \"x\"\n\
    [[agents]]\nname = \"c\"\nsystem_message = \"x\"\nactivation = \"any\"\n";

#[test]
fn graph_edges_are_checked_and_located() {
    let spec = parse(&format!(
        "{GRAPH}[[edges]]\nfrom = \"a\"\nto = \"b\"\n[[edges]]\nfrom = \"b\"\nto = \"c\"\n\
         condition = \"APPROVE\"\n[[edges]]\nfrom = \"c\"\nto = \"b\"\ncondition = \"REVISE\"\n"
    ))
    .unwrap();
    assert_eq!(spec.edges.len(), 3);
    let shown = show(&spec);
    assert!(shown.contains("  b -> c when the message contains \"APPROVE\""), "{shown}");
    assert!(shown.contains("c (assistant) backend: configured; activation: any"), "{shown}");

    let err = parse(&format!("{GRAPH}[[edges]]\nfrom = \"a\"\nto = \"z\"\n")).unwrap_err();
    assert_eq!((err.line, err.column, err.field.as_deref()), (15, 6, Some("edges[0].to")), "{err}");
    let ring = "[[edges]]\nfrom = \"a\"\nto = \"b\"\n[[edges]]\nfrom = \"b\"\nto = \"c\"\n\
                [[edges]]\nfrom = \"c\"\nto = \"a\"\ncondition = \"AGAIN\"\n";
    let err = parse(&format!("{GRAPH}{ring}")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("team.entry"), "every node has a parent: {err}");
    let with_entry = GRAPH.replace("type = \"graph\"\n", "type = \"graph\"\nentry = \"a\"\n");
    assert!(parse(&format!("{with_entry}{ring}")).is_ok());
    let err = parse(&format!(
        "entry = 1\n{GRAPH}[[edges]]\nfrom = \"a\"\nto = \"b\"\n[[edges]]\nfrom = \"b\"\nto = \"c\"\n\
         [[edges]]\nfrom = \"c\"\nto = \"b\"\n"
    ));
    assert!(err.is_err(), "entry is a [team] key");
    let err = parse(&format!(
        "{GRAPH}[[edges]]\nfrom = \"a\"\nto = \"b\"\n[[edges]]\nfrom = \"b\"\nto = \"c\"\n\
         [[edges]]\nfrom = \"c\"\nto = \"b\"\n"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (20, Some("edges[2]")), "{err}");
    assert!(err.message.contains("cycle"), "{err}");
    let err = parse(&format!(
        "[team]\ntype = \"round_robin\"\n{AGENT_A}[[edges]]\nfrom = \"a\"\nto = \"a\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("edges"), "{err}");
}

#[test]
fn each_agent_kind_takes_only_its_own_fields() {
    let head = "[team]\ntype = \"swarm\"\n";
    let spec = parse(&format!(
        "{head}[[agents]]\nname = \"a\"\nsystem_message = \"x\"\nhandoffs = [\"user\", \"me\"]\n\
         reflect_on_tool_use = true\nmax_tool_iterations = 3\nmemory = [\"fact\"]\n\
         model_context = {{ kind = \"buffered\", n = 4 }}\n\
         output_schema = {{ type = \"object\", properties = {{ n = {{ type = \"integer\" }} }} }}\n\
         [[agents]]\nname = \"me\"\nkind = \"user_proxy\"\n"
    ))
    .unwrap();
    assert_eq!(spec.agents[1].kind, AgentKind::UserProxy);
    assert!(spec.agents[0].output.is_some());
    let err = parse(&format!(
        "{head}[[agents]]\nname = \"me\"\nkind = \"user_proxy\"\nsystem_message = \"x\"\n"
    ))
    .unwrap_err();
    assert!(err.message.contains("`system_message` is not for kind = \"user_proxy\""), "{err}");
    let err = parse(&format!(
        "{head}[[agents]]\nname = \"a\"\nsystem_message = \"x\"\nmax_tool_iterations = 0\n"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (6, Some("agents[0].max_tool_iterations")));
    let err = parse(&format!(
        "{head}[[agents]]\nname = \"a\"\nsystem_message = \"x\"\noutput_schema = {{ type = 5 }}\n"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (6, Some("agents[0].output_schema")), "{err}");
    let err = parse(&format!(
        "{head}[[agents]]\nname = \"a\"\nsystem_message = \"x\"\nmodel_context = {{ kind = \"buffered\", n = 0 }}\n"
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agents[0].model_context"), "{err}");
    let err = parse(&format!("{head}[[agents]]\nname = \"s\"\nkind = \"society_of_mind\"\n"))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("agents[0].team"), "{err}");
}

#[test]
fn a_society_of_mind_agent_loads_its_team_file_and_stops_self_inclusion() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inner.toml"),
        format!("termination = \"max_messages(3)\"\n[team]\ntype = \"round_robin\"\n{AGENT_A}"),
    )
    .unwrap();
    let outer = dir.path().join("outer.toml");
    std::fs::write(
        &outer,
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"som\"\nkind = \"society_of_mind\"\n\
         team = \"inner.toml\"\n",
    )
    .unwrap();
    let spec = TeamSpec::from_file(&outer).unwrap();
    let inner = spec.agents[0].inner.as_ref().unwrap();
    assert_eq!(inner.agents[0].name.get_ref(), "a");
    assert!(show(&spec).contains("inner team (inner.toml)"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[team]\ntype = \"round_robin\"\n[[agents]]\nname = 7\n").unwrap();
    std::fs::write(
        &outer,
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"som\"\nkind = \"society_of_mind\"\n\
         team = \"bad.toml\"\n",
    )
    .unwrap();
    let err = TeamSpec::from_file(&outer).unwrap_err();
    assert_eq!((err.path.as_path(), err.line), (bad.as_path(), 4), "the inner file's place: {err}");

    std::fs::write(
        &outer,
        "[team]\ntype = \"round_robin\"\n[[agents]]\nname = \"som\"\nkind = \"society_of_mind\"\n\
         team = \"outer.toml\"\n",
    )
    .unwrap();
    let err = TeamSpec::from_file(&outer).unwrap_err();
    assert!(err.message.contains("nest more than"), "{err}");
}

#[test]
fn command_tools_are_checked_at_load() {
    let tool = |argv: &str, params: &str| {
        parse(&format!(
            "[team]\ntype = \"round_robin\"\n[[command_tools]]\nname = \"shout\"\n\
             description = \"d\"\nargv = {argv}\nparameters = {params}\n\
             [[agents]]\nname = \"a\"\nsystem_message = \"x\"\ntools = [\"shout\"]\n"
        ))
    };
    let props = "{ type = \"object\", properties = { x = { type = \"string\" } } }";
    let spec = tool("[\"echo\", \"{x}\"]", props).unwrap();
    assert_eq!(spec.command_tools[0].schema["properties"]["x"]["type"], "string");
    let spec = tool("[\"echo\", \"{x}\"]", "'{\"type\": \"object\"}'").unwrap();
    assert_eq!(spec.command_tools[0].schema["type"], "object");
    let err = tool("[\"echo\"]", "{ type = \"object\", properties = 3 }").unwrap_err();
    assert_eq!((err.line, err.column), (7, 14), "{err}");
    assert_eq!(err.field.as_deref(), Some("command_tools[0].parameters"), "{err}");
    assert!(err.message.contains("not a valid JSON schema"), "{err}");
    let err = tool("[\"echo\"]", "'{not json'").unwrap_err();
    assert!(err.message.contains("not JSON"), "{err}");
    let err = tool("[\"echo\"]", "{ type = \"string\" }").unwrap_err();
    assert!(err.message.contains("type = \"object\""), "{err}");
    let err = tool("[\"{x}\"]", props).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("command_tools[0].argv"), "{err}");
    let err = tool("[]", props).unwrap_err();
    assert!(err.message.contains("needs a program"), "{err}");
}

#[test]
fn selector_options_are_checked() {
    let agents = "[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n[[agents]]\nname = \"b\"\nsystem_message = \"x\"\n";
    let spec = parse(&format!(
        "[team]\ntype = \"selector\"\nselector_prompt = \"pick from {{participants}}\"\n\
         [team.candidates]\na = [\"b\"]\n{agents}"
    ))
    .unwrap();
    assert!(show(&spec).contains("after a: the selector chooses among b"));
    let err =
        parse(&format!("[team]\ntype = \"selector\"\n[team.candidates]\na = [\"z\"]\n{agents}"))
            .unwrap_err();
    assert!(err.message.contains("`z`"), "{err}");
    let err = parse(&format!("[team]\ntype = \"round_robin\"\nselector_prompt = \"p\"\n{agents}"))
        .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (3, Some("team.selector_prompt")), "{err}");
}

#[test]
fn every_starter_passes_the_check() {
    for kind in TeamKind::ALL {
        let text = starter(kind);
        let spec = TeamSpec::parse(&text, Path::new("new.toml"))
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{text}"));
        assert_eq!(spec.team.kind, kind);
        assert!(spec.stop.is_some(), "{kind}");
        assert!(text.lines().filter(|l| l.trim_start().starts_with('#')).count() >= 4, "{kind}");
    }
    let graph = TeamSpec::parse(&starter(TeamKind::Graph), Path::new("g.toml")).unwrap();
    let shown = show(&graph);
    assert!(
        shown.contains("planner -> writer_a") && shown.contains("writer_b -> editor"),
        "{shown}"
    );
}

#[test]
fn magentic_one_options_are_checked() {
    let agents = "[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n[[agents]]\nname = \"b\"\nsystem_message = \"x\"\n";
    let spec = parse(&format!(
        "[team]\ntype = \"magentic_one\"\nmax_turns = 4\nmax_stalls = 2\nfirst_speaker = \"b\"\n\
         orchestrator_backend = \"local\"\norchestrator_model = \"m\"\n{agents}"
    ))
    .unwrap();
    assert_eq!(spec.team.kind, TeamKind::MagenticOne);
    let shown = show(&spec);
    assert!(shown.contains("max_turns 4, max_stalls 2, first speaker b"), "{shown}");
    let err = parse(&format!("[team]\ntype = \"magentic_one\"\nfirst_speaker = \"z\"\n{agents}"))
        .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (3, Some("team.first_speaker")), "{err}");
    assert!(err.message.contains("`z`"), "{err}");
    let err =
        parse(&format!("[team]\ntype = \"magentic_one\"\nmax_stalls = 0\n{agents}")).unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (3, Some("team.max_stalls")), "{err}");
    let err = parse(&format!(
        "[team]\ntype = \"magentic_one\"\norchestrator_backend = \"nope\"\n{agents}"
    ))
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("team.orchestrator_backend"), "{err}");
    let err =
        parse(&format!("[team]\ntype = \"round_robin\"\n\norchestrator_model = \"m\"\n{agents}"))
            .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (4, Some("team.orchestrator_model")), "{err}");
}

#[test]
fn a_final_answer_prompt_is_checked_and_only_for_magentic_one() {
    let agents = "[[agents]]\nname = \"a\"\nsystem_message = \"x\"\n";
    let spec = parse(&format!(
        "[team]\ntype = \"magentic_one\"\nfinal_answer_prompt = \"Answer {{task}} from {{facts}}\"\n{agents}"
    ))
    .unwrap();
    let prompt = spec.team.final_answer_prompt.as_ref().unwrap().get_ref();
    assert_eq!(prompt, "Answer {task} from {facts}");
    assert!(show(&spec).contains("final answer prompt: 26 characters"), "{}", show(&spec));
    let err = parse(&format!(
        "[team]\ntype = \"magentic_one\"\n\nfinal_answer_prompt = \"Answer {{task}} for {{user}}\"\n{agents}"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (4, Some("team.final_answer_prompt")), "{err}");
    assert!(err.message.contains("`{user}`"), "{err}");
    let err =
        parse(&format!("[team]\ntype = \"magentic_one\"\nfinal_answer_prompt = \" \"\n{agents}"))
            .unwrap_err();
    assert!(err.message.contains("is empty"), "{err}");
    let err = parse(&format!(
        "[team]\ntype = \"round_robin\"\nfinal_answer_prompt = \"Answer {{task}}\"\n{agents}"
    ))
    .unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (3, Some("team.final_answer_prompt")), "{err}");
    assert!(err.message.contains("only magentic_one teams"), "{err}");
}
