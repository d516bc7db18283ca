//! [`CodeExecutorAgent`]: runs the fenced ```python / ```bash / ```sh blocks found in the
//! messages it receives, each in a subprocess in a working directory, with a timeout, an
//! output cap and an optional approval hook, and answers with exit codes and output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{parse_state, to_state, AgentError, ChatAgent, Response};
use crate::events::{AgentMessage, EventSink};

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

/// Runs code blocks from the conversation.
pub struct CodeExecutorAgent {
    name: String,
    description: String,
    work_dir: PathBuf,
    timeout: Duration,
    output_cap: usize,
    approval: Option<ApprovalFn>,
    counter: u64,
}

impl fmt::Debug for CodeExecutorAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeExecutorAgent")
            .field("name", &self.name)
            .field("work_dir", &self.work_dir)
            .field("timeout", &self.timeout)
            .field("output_cap", &self.output_cap)
            .field("approval", &self.approval.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct ExecutorState {
    counter: u64,
}

impl CodeExecutorAgent {
    /// An executor running code in `work_dir` (created when missing), with a 60 s timeout and
    /// a 16 KiB output cap per block.
    pub fn new(name: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            description: "A computer terminal that runs python and bash code blocks and reports their output.".into(),
            work_dir: work_dir.into(),
            timeout: Duration::from_secs(60),
            output_cap: 16 * 1024,
            approval: None,
            counter: 0,
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
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

    /// Asks `approve` before running each block.
    pub fn with_approval<F, Fut>(mut self, approve: F) -> Self
    where
        F: Fn(CodeBlock) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        self.approval = Some(Arc::new(move |b| Box::pin(approve(b))));
        self
    }

    /// Runs one block (after approval) and reports how it went.
    pub async fn execute(
        &mut self,
        block: &CodeBlock,
        cancel: &CancellationToken,
    ) -> Result<CodeOutcome, AgentError> {
        let mut outcome = CodeOutcome {
            language: block.language.clone(),
            exit_code: None,
            output: String::new(),
            truncated: false,
            total_bytes: 0,
            timed_out: false,
            rejected: false,
        };
        if let Some(approve) = &self.approval {
            if !approve(block.clone()).await {
                outcome.rejected = true;
                return Ok(outcome);
            }
        }
        let (program, ext) = interpreter(&block.language).ok_or_else(|| {
            AgentError::CodeExecution(format!("unsupported language `{}`", block.language))
        })?;
        tokio::fs::create_dir_all(&self.work_dir).await.map_err(|e| {
            AgentError::CodeExecution(format!("cannot create {}: {e}", self.work_dir.display()))
        })?;
        self.counter += 1;
        let file = self.work_dir.join(format!(
            "agentgen_block_{}_{}.{ext}",
            std::process::id(),
            self.counter
        ));
        tokio::fs::write(&file, &block.code).await.map_err(|e| {
            AgentError::CodeExecution(format!("cannot write {}: {e}", file.display()))
        })?;
        let (res, total) =
            run_file(program, &file, &self.work_dir, self.timeout, self.output_cap, cancel).await;
        let _ = tokio::fs::remove_file(&file).await;
        match res {
            RunEnd::Exited(code, output) => {
                outcome.exit_code = code;
                outcome.output = output;
            }
            RunEnd::TimedOut(output) => {
                outcome.timed_out = true;
                outcome.output = output;
            }
            RunEnd::NotStarted(e) => outcome.output = format!("could not start `{program}`: {e}"),
            RunEnd::Cancelled => return Err(AgentError::Cancelled),
        }
        outcome.truncated = total > self.output_cap;
        outcome.total_bytes = total;
        Ok(outcome)
    }
}

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

enum RunEnd {
    Exited(Option<i32>, String),
    TimedOut(String),
    NotStarted(String),
    Cancelled,
}

async fn run_file(
    program: &str,
    file: &Path,
    dir: &Path,
    timeout: Duration,
    cap: usize,
    cancel: &CancellationToken,
) -> (RunEnd, usize) {
    let mut child = match Command::new(program)
        .arg(file)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return (RunEnd::NotStarted(e.to_string()), 0),
    };
    let buf = Arc::new(Mutex::new((Vec::<u8>::new(), 0usize)));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    enum Wait {
        Done(Option<i32>),
        Timeout,
        Cancelled,
    }
    let wait = {
        let run = async {
            tokio::join!(drain(stdout, &buf, cap), drain(stderr, &buf, cap));
            child.wait().await.ok().and_then(|s| s.code())
        };
        tokio::select! {
            res = tokio::time::timeout(timeout, run) => res.map_or(Wait::Timeout, Wait::Done),
            _ = cancel.cancelled() => Wait::Cancelled,
        }
    };
    if !matches!(wait, Wait::Done(_)) {
        let _ = child.kill().await;
    }
    let (bytes, total) = {
        let guard = buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard.0.clone(), guard.1)
    };
    let output = String::from_utf8_lossy(&bytes).into_owned();
    let end = match wait {
        Wait::Done(code) => RunEnd::Exited(code, output),
        Wait::Timeout => RunEnd::TimedOut(output),
        Wait::Cancelled => RunEnd::Cancelled,
    };
    (end, total)
}

/// Reads a pipe to its end, keeping at most `cap` bytes in all and counting the rest.
async fn drain<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    buf: &Mutex<(Vec<u8>, usize)>,
    cap: usize,
) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut guard = buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = cap.saturating_sub(guard.0.len());
                guard.0.extend_from_slice(&chunk[..n.min(room)]);
                guard.1 += n;
            }
        }
    }
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
        _sink: &EventSink,
    ) -> Result<Response, AgentError> {
        let blocks: Vec<CodeBlock> =
            messages.iter().flat_map(|m| extract_code_blocks(&m.content)).collect();
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
        for block in &runnable {
            reports.push(self.execute(block, &cancel).await?.report());
        }
        Ok(Response::new(AgentMessage::text(self.name.clone(), reports.join("\n\n"))))
    }

    async fn reset(&mut self) {}

    async fn save_state(&self) -> Result<Value, AgentError> {
        to_state(&ExecutorState { counter: self.counter })
    }

    async fn load_state(&mut self, state: Value) -> Result<(), AgentError> {
        let state: ExecutorState = parse_state(&self.name, state)?;
        self.counter = state.counter;
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
