//! The code executor runs real subprocesses in its sandbox: python and bash blocks, exit codes,
//! a timeout, an output cap and an approval policy.

use std::time::Duration;

use agentgen_core::agent::{ApprovalPolicy, ChatAgent, CodeBlock, CodeExecutorAgent};
use agentgen_core::events::AgentMessage;
use agentgen_core::CancellationToken;

fn executor() -> CodeExecutorAgent {
    CodeExecutorAgent::new("exec", ApprovalPolicy::RunWithoutAsking)
}

async fn run(agent: &mut CodeExecutorAgent, text: &str) -> String {
    let msgs = vec![AgentMessage::text("coder", text)];
    agent.on_messages(&msgs, CancellationToken::new()).await.unwrap().message.content
}

#[tokio::test]
async fn python_and_bash_blocks_share_the_run_s_work_dir() {
    let mut agent = executor();
    let out = run(
        &mut agent,
        "Here:\n```python\nprint(2 + 3)\nopen('made.txt', 'w').write('hi')\n```\n```bash\necho from bash; cat made.txt; exit 3\n```",
    )
    .await;
    assert_eq!(out, "exit code: 0\n5\n\n\nexit code: 3\nfrom bash\nhi");
    let work = agent.work_dir().expect("a run made a directory").to_owned();
    assert!(work.join("made.txt").exists());
    agent.reset().await;
    assert!(!work.exists(), "reset removes the run's directory");
    let out = run(&mut agent, "```sh\ncat made.txt\n```").await;
    assert!(out.starts_with("exit code: 1\n"), "a new run starts in a fresh directory: {out}");
    assert_ne!(agent.work_dir(), Some(work.as_path()));
}

#[tokio::test]
async fn errors_are_reported_with_stderr() {
    let mut agent = executor();
    let out = run(&mut agent, "```python\nraise ValueError('boom')\n```").await;
    assert!(out.starts_with("exit code: 1\n") && out.contains("ValueError: boom"), "{out}");
}

#[tokio::test]
async fn a_block_that_runs_too_long_is_killed() {
    let mut agent = executor().with_timeout(Duration::from_millis(300));
    let block =
        CodeBlock { language: "bash".into(), code: "echo started\nsleep 30\necho never".into() };
    let outcome = agent.execute(&block, &CancellationToken::new()).await.unwrap();
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, None);
    assert_eq!(outcome.output, "started\n");
}

#[tokio::test]
async fn output_beyond_the_cap_is_cut_and_said_so() {
    let mut agent = executor().with_output_cap(1000);
    let block = CodeBlock { language: "python".into(), code: "print('x' * 100000)".into() };
    let outcome = agent.execute(&block, &CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    assert!(outcome.truncated);
    assert_eq!(outcome.output.len(), 1000);
    assert_eq!(outcome.total_bytes, 100_001);
    assert!(outcome
        .report()
        .ends_with("[output truncated: showing the first 1000 of 100001 bytes]"));
}

#[tokio::test]
async fn the_approval_hook_can_refuse() {
    let mut agent = CodeExecutorAgent::new(
        "exec",
        ApprovalPolicy::ask(|block: CodeBlock| async move { !block.code.contains("rm ") }),
    );
    let out = run(&mut agent, "```bash\ntouch refused.txt; rm -f nothing\n```").await;
    assert_eq!(out, "Code execution was not approved.");
    assert_eq!(agent.work_dir(), None, "nothing ran, so no directory was made");
    let out = run(&mut agent, "```sh\necho fine\n```").await;
    assert_eq!(out, "exit code: 0\nfine\n");
}

#[tokio::test]
async fn no_runnable_block_is_said_plainly() {
    let mut agent = executor();
    let out = run(&mut agent, "just words\n```rust\nfn main() {}\n```").await;
    assert!(out.starts_with("No code blocks found") && out.contains("skipped: rust"), "{out}");
}

#[tokio::test]
async fn with_sources_only_the_named_agents_blocks_run() {
    let mut agent = executor().with_sources(["writer"]);
    let msgs = vec![
        AgentMessage::text("user", "Complete this:\n```python\nraise SystemExit(7)\n```"),
        AgentMessage::text("writer", "```python\nprint('from the writer')\n```"),
        AgentMessage::text("reviewer", "Try:\n```bash\nexit 9\n```"),
    ];
    let out = agent.on_messages(&msgs, CancellationToken::new()).await.unwrap().message.content;
    assert_eq!(out, "exit code: 0\nfrom the writer\n");
    let only_others = vec![AgentMessage::text("user", "```python\nprint(1)\n```")];
    let out =
        agent.on_messages(&only_others, CancellationToken::new()).await.unwrap().message.content;
    assert!(out.starts_with("No code blocks found"), "{out}");
}

#[tokio::test]
async fn with_doctests_the_docstring_examples_check_the_code() {
    let wrong = "```python\ndef is_palindrome(s):\n    \"\"\"\n    >>> is_palindrome('Aba')\n    True\n    \"\"\"\n    return s == s[::-1]\n```";
    let right = wrong.replace("s == s[::-1]", "s.lower() == s.lower()[::-1]");
    let mut off = executor();
    assert_eq!(run(&mut off, wrong).await, "exit code: 0\n");
    let mut on = executor().with_doctests(true);
    let out = run(&mut on, wrong).await;
    assert!(out.starts_with("exit code: 1"), "{out}");
    assert!(
        out.contains("Failed example") && out.contains("Expected:") && out.contains("False"),
        "{out}"
    );
    assert_eq!(run(&mut on, &right).await, "exit code: 0\n");
}
