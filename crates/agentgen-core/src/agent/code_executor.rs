//! [`CodeExecutorAgent`]: runs the fenced ```python / ```bash / ```sh blocks found in the
//! messages it receives, each in a sandboxed subprocess (see [`crate::sandbox`]), with a
//! timeout, an output cap and an approval policy the caller must choose, and answers with exit
//! codes and output.
//!
//! In a journaled run each block is journaled like a call of a tool that is not idempotent
//! (named [`CODE_BLOCK_CALL`]): its start before it runs, its report after. On resume a block
//! whose report is journaled is not run again, and one that was started without a report
//! answers [`INTERRUPTED`] instead of running twice. A refusal is journaled too, so the
//! person is not asked again.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{parse_state, to_state, AgentError, ChatAgent, Response};
use crate::events::{AgentMessage, EventSink, ToolResult};
use crate::journal::{Journal, ToolReplay, INTERRUPTED};
use crate::message::ToolCall;
use crate::sandbox::{Sandbox, SandboxError, SandboxPolicy};

/// The tool name a code block's run is journaled under.
pub const CODE_BLOCK_CALL: &str = "code_block";

/// A fenced code block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeBlock {
    /// The fence's language tag, lower-cased (`python`, `bash`, `sh`…).
    pub language: String,
    /// The code.
    pub code: String,
}

/// How running one block went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeOutcome {
    /// The block's language.
    pub language: String,
    /// The exit code; `None` when it did not run to an exit (timeout, not approved, no
    /// interpreter, killed by a signal).
    pub exit_code: Option<i32>,
    /// Standard output and error, interleaved as they arrived, cut at the output cap.
    pub output: String,
    /// Whether output was cut.
    pub truncated: bool,
    /// Bytes of output the block produced in all (more than `output` holds when cut).
    pub total_bytes: usize,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Whether the approval hook refused it.
    pub rejected: bool,
}

impl CodeOutcome {
    /// The text the agent says about this outcome.
    pub fn report(&self) -> String {
        let mut s = if self.rejected {
            "Code execution was not approved.".to_owned()
        } else if self.timed_out {
            format!("timed out; output so far:\n{}", self.output)
        } else {
            match self.exit_code {
                Some(code) => format!("exit code: {code}\n{}", self.output),
                None => format!("exit code: none (killed or did not start)\n{}", self.output),
            }
        };
        if self.truncated {
            s.push_str(&format!(
                "\n[output truncated: showing the first {} of {} bytes]",
                self.output.len(),
                self.total_bytes
            ));
        }
        s
    }
}

/// Decides whether a block may run.
pub type ApprovalFn = Arc<dyn Fn(CodeBlock) -> BoxFuture<'static, bool> + Send + Sync>;

/// Whether blocks run without a person's say-so. There is no default: whoever builds a
/// [`CodeExecutorAgent`] chooses one.
#[derive(Clone)]
pub enum ApprovalPolicy {
    /// Every block runs (in the sandbox) without asking: for callers that approved in advance
    /// (`--yes`) or trust the sandbox alone.
    RunWithoutAsking,
    /// Each block runs only if this function says yes.
    Ask(ApprovalFn),
}

impl ApprovalPolicy {
    /// Asks `approve` before each block.
    pub fn ask<F, Fut>(approve: F) -> Self
    where
        F: Fn(CodeBlock) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        Self::Ask(Arc::new(move |b| Box::pin(approve(b))))
    }
}

impl fmt::Debug for ApprovalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RunWithoutAsking => "RunWithoutAsking",
            Self::Ask(_) => "Ask(..)",
        })
    }
}

/// Runs code blocks from the conversation, each in a [`Sandbox`]: by default without network,
/// writing only in a fresh directory of its own, with resource limits, the caller's keys out of
/// its environment, and every process it started killed when the block ends. Blocks of one run
/// share that directory; [`reset`](ChatAgent::reset) starts a new one.
pub struct CodeExecutorAgent {
    name: String,
    description: String,
    policy: SandboxPolicy,
    sandbox: Option<Sandbox>,
    timeout: Duration,
    output_cap: usize,
    approval: ApprovalPolicy,
    sources: Option<Vec<String>>,
    doctests: bool,
    counter: u64,
    turns: u64,
}

impl fmt::Debug for CodeExecutorAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeExecutorAgent")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("work_dir", &self.work_dir())
            .field("timeout", &self.timeout)
            .field("output_cap", &self.output_cap)
            .field("approval", &self.approval)
            .field("sources", &self.sources)
            .field("doctests", &self.doctests)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct ExecutorState {
    counter: u64,
    /// Turns answered (names the journaled block calls); absent in older saved states.
    #[serde(default)]
    turns: u64,
}

impl CodeExecutorAgent {
    /// An executor under the default (strict) [`SandboxPolicy`], with a 60 s timeout and a
    /// 16 KiB output cap per block, approving blocks as `approval` says.
    pub fn new(name: impl Into<String>, approval: ApprovalPolicy) -> Self {
        Self {
            name: name.into(),
            description: "A computer terminal that runs python and bash code blocks and reports their output.".into(),
            policy: SandboxPolicy::default(),
            sandbox: None,
            timeout: Duration::from_secs(60),
            output_cap: 16 * 1024,
            approval,
            sources: None,
            doctests: false,
            counter: 0,
            turns: 0,
        }
    }

    /// Runs only the blocks of messages from these agents (AutoGen's `sources`): a task or a
    /// reviewer that quotes code is not run. Default: every message it receives.
    pub fn with_sources<I, S>(mut self, sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sources = Some(sources.into_iter().map(Into::into).collect());
        self
    }

    /// Also runs the examples in a Python block's docstrings (`>>> f(2)` then `4`) after the
    /// block, as `doctest` does, and fails the block (exit code 1, with each failed example's
    /// expected and actual output) when one differs. A writer that copies the task's
    /// docstring is then checked against the task's own examples, whether or not it wrote
    /// tests. Whitespace differences are ignored. Off by default.
    pub fn with_doctests(mut self, on: bool) -> Self {
        self.doctests = on;
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets what the code may do (the next run's sandbox uses it).
    pub fn with_sandbox(mut self, policy: SandboxPolicy) -> Self {
        self.policy = policy;
        self.sandbox = None;
        self
    }

    /// Sets the time a block may run before it is killed.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many bytes of output per block are kept.
    pub fn with_output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes;
        self
    }

    /// The current run's working directory, once a block has run.
    pub fn work_dir(&self) -> Option<&Path> {
        self.sandbox.as_ref().map(Sandbox::dir)
    }

    /// Runs one block (after approval) and reports how it went. Fails when the sandbox policy
    /// cannot be enforced here ([`AgentError::Sandbox`]).
    pub async fn execute(
        &mut self,
        block: &CodeBlock,
        cancel: &CancellationToken,
    ) -> Result<CodeOutcome, AgentError> {
        if !self.approves(block).await {
            return Ok(CodeOutcome { rejected: true, ..CodeOutcome::new(block) });
        }
        self.run_approved(block, cancel).await
    }

    /// Whether the approval policy lets `block` run.
    async fn approves(&self, block: &CodeBlock) -> bool {
        match &self.approval {
            ApprovalPolicy::RunWithoutAsking => true,
            ApprovalPolicy::Ask(approve) => approve(block.clone()).await,
        }
    }

    async fn run_approved(
        &mut self,
        block: &CodeBlock,
        cancel: &CancellationToken,
    ) -> Result<CodeOutcome, AgentError> {
        let mut outcome = CodeOutcome::new(block);
        let (program, ext) = interpreter(&block.language).ok_or_else(|| {
            AgentError::CodeExecution(format!("unsupported language `{}`", block.language))
        })?;
        let sandbox = match &mut self.sandbox {
            Some(sandbox) => sandbox,
            empty => empty.insert(Sandbox::new(self.policy.clone()).await?),
        };
        self.counter += 1;
        let code = if self.doctests && ext == "py" && block.code.contains(">>>") {
            format!("{}{DOCTEST_TRAILER}", block.code)
        } else {
            block.code.clone()
        };
        let file =
            sandbox.write_file(&format!("block_{}.{ext}", self.counter), code.as_bytes()).await?;
        let run = sandbox
            .run(program, &[file.clone().into_os_string()], self.timeout, self.output_cap, cancel)
            .await;
        let _ = tokio::fs::remove_file(&file).await;
        match run {
            Ok(run) => {
                outcome.exit_code = run.exit_code;
                outcome.timed_out = run.timed_out;
                outcome.output = run.output;
                outcome.total_bytes = run.total_bytes;
                outcome.truncated = run.total_bytes > self.output_cap;
            }
            Err(SandboxError::Spawn { program, message }) => {
                outcome.output = format!("could not start `{program}`: {message}");
            }
            Err(SandboxError::Cancelled) => return Err(AgentError::Cancelled),
            Err(e) => return Err(e.into()),
        }
        Ok(outcome)
    }

    /// Block `index` of this turn in a journaled run: its journaled report, [`INTERRUPTED`]
    /// when it was started before a stop and has none, else asked for, journaled as started,
    /// run, and its report journaled.
    async fn execute_journaled(
        &mut self,
        journal: &Journal,
        index: usize,
        block: &CodeBlock,
        cancel: &CancellationToken,
    ) -> Result<String, AgentError> {
        let args = serde_json::to_string(block).map_err(|e| AgentError::State(e.to_string()))?;
        let id = format!("{}-{}-{}", self.name, self.turns, index + 1);
        let call = ToolCall::new(id.clone(), CODE_BLOCK_CALL, args);
        let result = |content: String| ToolResult {
            call_id: id.clone(),
            name: CODE_BLOCK_CALL.to_owned(),
            content,
            is_error: false,
        };
        let outcome = match journal.tool_replay(&id) {
            ToolReplay::Done(done) => return Ok(done.content),
            ToolReplay::Interrupted => {
                ToolResult { is_error: true, ..result(INTERRUPTED.to_owned()) }
            }
            ToolReplay::Fresh if self.approves(block).await => {
                journal.tool_started(&self.name, &call)?;
                result(self.run_approved(block, cancel).await?.report())
            }
            ToolReplay::Fresh => {
                result(CodeOutcome { rejected: true, ..CodeOutcome::new(block) }.report())
            }
        };
        journal.tool_finished(&self.name, &outcome)?;
        Ok(outcome.content)
    }
}

impl CodeOutcome {
    /// Not run (yet).
    fn new(block: &CodeBlock) -> Self {
        Self {
            language: block.language.clone(),
            exit_code: None,
            output: String::new(),
            truncated: false,
            total_bytes: 0,
            timed_out: false,
            rejected: false,
        }
    }
}

/// Appended to a Python block with docstring examples when doctests are on: runs them after
/// the block (its line numbers stay the writer's) and exits 1 when one fails.
const DOCTEST_TRAILER: &str = "
if __name__ == \"__main__\":
    import doctest as _agentgen_doctest
    _agentgen_flags = _agentgen_doctest.NORMALIZE_WHITESPACE | _agentgen_doctest.ELLIPSIS
    if _agentgen_doctest.testmod(optionflags=_agentgen_flags).failed:
        raise SystemExit(1)
";

/// The interpreter and file extension for a fence language.
fn interpreter(language: &str) -> Option<(&'static str, &'static str)> {
    match language {
        "python" | "py" | "python3" => Some(("python3", "py")),
        "bash" | "shell" => Some(("bash", "sh")),
        "sh" => Some(("sh", "sh")),
        _ => None,
    }
}

/// The fenced blocks of `text`, in order.
pub fn extract_code_blocks(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(tag) = line.trim_start().strip_prefix("```") else { continue };
        let language = tag.trim().to_lowercase();
        let mut code = Vec::new();
        for inner in lines.by_ref() {
            if inner.trim() == "```" {
                break;
            }
            code.push(inner);
        }
        blocks.push(CodeBlock { language, code: code.join("\n") + "\n" });
    }
    blocks
}

#[async_trait]
impl ChatAgent for CodeExecutorAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn on_messages_with(
        &mut self,
        messages: &[AgentMessage],
        cancel: CancellationToken,
        sink: &EventSink,
    ) -> Result<Response, AgentError> {
        self.turns += 1;
        let blocks: Vec<CodeBlock> = messages
            .iter()
            .filter(|m| self.sources.as_ref().is_none_or(|s| s.contains(&m.source)))
            .flat_map(|m| extract_code_blocks(&m.content))
            .collect();
        let (runnable, skipped): (Vec<_>, Vec<_>) =
            blocks.into_iter().partition(|b| interpreter(&b.language).is_some());
        if runnable.is_empty() {
            let mut text = "No code blocks found in the thread. Please provide at least one markdown-encoded code block (```python or ```bash) to execute.".to_owned();
            if !skipped.is_empty() {
                let langs: Vec<&str> = skipped.iter().map(|b| b.language.as_str()).collect();
                text.push_str(&format!(
                    " Unsupported languages were skipped: {}.",
                    langs.join(", ")
                ));
            }
            return Ok(Response::new(AgentMessage::text(self.name.clone(), text)));
        }
        let mut reports = Vec::new();
        for (i, block) in runnable.iter().enumerate() {
            reports.push(match sink.journal() {
                Some(journal) => self.execute_journaled(journal, i, block, &cancel).await?,
                None => self.execute(block, &cancel).await?.report(),
            });
        }
        Ok(Response::new(AgentMessage::text(self.name.clone(), reports.join("\n\n"))))
    }

    async fn reset(&mut self) {
        self.sandbox = None;
    }

    async fn save_state(&self) -> Result<Value, AgentError> {
        to_state(&ExecutorState { counter: self.counter, turns: self.turns })
    }

    async fn load_state(&mut self, state: Value) -> Result<(), AgentError> {
        let state: ExecutorState = parse_state(&self.name, state)?;
        self.counter = state.counter;
        self.turns = state.turns;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_found_with_their_language() {
        let text =
            "Run this:\n```python\nprint(1)\n```\nand\n```Bash\necho hi\n```\n```\nplain\n```";
        let blocks = extract_code_blocks(text);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0], CodeBlock { language: "python".into(), code: "print(1)\n".into() });
        assert_eq!(blocks[1].language, "bash");
        assert_eq!(blocks[2].language, "");
    }
}
