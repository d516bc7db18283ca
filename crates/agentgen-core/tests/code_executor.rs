//! The code executor runs real subprocesses: python and bash blocks, exit codes, a timeout,
//! an output cap and an approval hook.

use std::time::Duration;

use agentgen_core::agent::{ChatAgent, CodeBlock, CodeExecutorAgent};
use agentgen_core::events::AgentMessage;
use agentgen_core::CancellationToken;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("agentgen-exec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn run(agent: &mut CodeExecutorAgent, text: &str) -> String {
    let msgs = vec![AgentMessage::text("coder", text)];
    agent.on_messages(&msgs, CancellationToken::new()).await.unwrap().message.content
}

#[tokio::test]
async fn python_and_bash_blocks_run_in_the_work_dir() {
    let work = dir("basic");
    let mut agent = CodeExecutorAgent::new("exec", &work);
    let out = run(
        &mut agent,
        "Here:\n```python\nprint(2 + 3)\nopen('made.txt', 'w').write('hi')\n```\n```bash\necho from bash; cat made.txt; exit 3\n```",
    )
    .await;
    assert_eq!(out, "exit code: 0\n5\n\n\nexit code: 3\nfrom bash\nhi");
    assert!(work.join("made.txt").exists());
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn errors_are_reported_with_stderr() {
    let work = dir("err");
    let mut agent = CodeExecutorAgent::new("exec", &work);
    let out = run(&mut agent, "```python\nraise ValueError('boom')\n```").await;
    assert!(out.starts_with("exit code: 1\n") && out.contains("ValueError: boom"), "{out}");
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn a_block_that_runs_too_long_is_killed() {
    let work = dir("timeout");
    let mut agent = CodeExecutorAgent::new("exec", &work).with_timeout(Duration::from_millis(300));
    let block =
        CodeBlock { language: "bash".into(), code: "echo started\nsleep 30\necho never".into() };
    let outcome = agent.execute(&block, &CancellationToken::new()).await.unwrap();
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, None);
    assert_eq!(outcome.output, "started\n");
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn output_beyond_the_cap_is_cut_and_said_so() {
    let work = dir("cap");
    let mut agent = CodeExecutorAgent::new("exec", &work).with_output_cap(1000);
    let block = CodeBlock { language: "python".into(), code: "print('x' * 100000)".into() };
    let outcome = agent.execute(&block, &CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    assert!(outcome.truncated);
    assert_eq!(outcome.output.len(), 1000);
    assert_eq!(outcome.total_bytes, 100_001);
    assert!(outcome
        .report()
        .ends_with("[output truncated: showing the first 1000 of 100001 bytes]"));
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn the_approval_hook_can_refuse() {
    let work = dir("approve");
    let mut agent = CodeExecutorAgent::new("exec", &work)
        .with_approval(|block: CodeBlock| async move { !block.code.contains("rm ") });
    let out = run(&mut agent, "```bash\ntouch refused.txt; rm -f nothing\n```").await;
    assert_eq!(out, "Code execution was not approved.");
    assert!(!work.join("refused.txt").exists());
    let out = run(&mut agent, "```sh\necho fine\n```").await;
    assert_eq!(out, "exit code: 0\nfine\n");
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn no_runnable_block_is_said_plainly() {
    let mut agent = CodeExecutorAgent::new("exec", dir("none"));
    let out = run(&mut agent, "just words\n```rust\nfn main() {}\n```").await;
    assert!(out.starts_with("No code blocks found") && out.contains("skipped: rust"), "{out}");
}
