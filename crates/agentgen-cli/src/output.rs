//! How a run looks on stdout: each agent's tokens under its name as they stream, tool calls and
//! results, the stop reason, then a one-line summary — or, with `--json`, one JSON object per
//! event and a final `summary` object.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use agentgen_core::events::{AgentEvent, TaskResult};
use serde_json::json;

/// Like `println!`, but a closed stdout (`agentgen models | head`) ends the output quietly
/// instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout, ignoring a closed pipe; the backing of [`outln!`].
pub fn write_stdout(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// Writes events as they come.
#[derive(Debug)]
pub struct Printer<W: Write> {
    out: W,
    json: bool,
    /// The agent whose tokens are being printed, if any.
    streaming: Option<String>,
    /// Whether anything was printed on the current line.
    mid_line: bool,
    /// Tokens of agents that stream while another one is printed (a graph's concurrent
    /// branches), shown once the printed one is done.
    held: Vec<(String, String)>,
}

impl<W: Write> Printer<W> {
    /// A printer for text (`json == false`) or JSON lines.
    pub fn new(out: W, json: bool) -> Self {
        Self { out, json, streaming: None, mid_line: false, held: Vec::new() }
    }

    /// The writer back.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn header(&mut self, source: &str) -> io::Result<()> {
        self.end_line()?;
        writeln!(self.out, "\n── {source} ──")
    }

    fn end_line(&mut self) -> io::Result<()> {
        if self.mid_line {
            writeln!(self.out)?;
            self.mid_line = false;
        }
        Ok(())
    }

    fn write_tokens(&mut self, text: &str) -> io::Result<()> {
        write!(self.out, "{text}")?;
        if !text.is_empty() {
            self.mid_line = !text.ends_with('\n');
        }
        Ok(())
    }

    /// Prints one event.
    pub fn event(&mut self, event: &AgentEvent) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, event)?;
            writeln!(self.out)?;
            return self.out.flush();
        }
        match event {
            AgentEvent::TokenChunk { source, text } => match &self.streaming {
                Some(current) if current != source => {
                    match self.held.iter_mut().find(|(s, _)| s == source) {
                        Some((_, held)) => held.push_str(text),
                        None => self.held.push((source.clone(), text.clone())),
                    }
                }
                Some(_) => self.write_tokens(text)?,
                None => {
                    self.header(source)?;
                    self.streaming = Some(source.clone());
                    self.write_tokens(text)?;
                }
            },
            AgentEvent::Message(m) => {
                // An agent whose tokens were streamed has already been shown; one whose tokens
                // were held is shown whole now.
                self.held.retain(|(s, _)| *s != m.source);
                if self.streaming.as_deref() != Some(m.source.as_str()) {
                    self.header(&m.source)?;
                    write!(self.out, "{}", m.content)?;
                    self.mid_line = !m.content.ends_with('\n');
                    self.end_line()?;
                } else {
                    self.end_line()?;
                    self.streaming = None;
                    // The next held agent, if any, goes on streaming from here.
                    if !self.held.is_empty() {
                        let (source, text) = self.held.remove(0);
                        self.header(&source)?;
                        self.streaming = Some(source);
                        self.write_tokens(&text)?;
                    }
                }
            }
            AgentEvent::ToolCallRequest { calls, .. } => {
                self.end_line()?;
                self.streaming = None;
                for c in calls {
                    writeln!(self.out, "  → {}({})", c.function.name, c.function.arguments)?;
                }
            }
            AgentEvent::ToolCallResult { results, .. } => {
                self.end_line()?;
                for r in results {
                    let mark = if r.is_error { "✗" } else { "←" };
                    writeln!(self.out, "  {mark} {}: {}", r.name, r.content)?;
                }
            }
            AgentEvent::Handoff { source, target } => {
                self.end_line()?;
                writeln!(self.out, "  ⇢ {source} hands off to {target}")?;
            }
            AgentEvent::SpeakerSelected { speaker, fallback } => {
                tracing::info!(speaker, fallback, "next speaker");
            }
            AgentEvent::MemoryQuery { source, contents } => {
                tracing::info!(source, n = contents.len(), "memory consulted");
            }
            AgentEvent::Stop { reason } => {
                self.end_line()?;
                self.streaming = None;
                writeln!(self.out, "\n── stopped: {reason} ──")?;
            }
            #[allow(unreachable_patterns)]
            other => tracing::debug!(?other, "event"),
        }
        self.out.flush()
    }

    /// Prints the one-line summary of a finished run.
    pub fn summary(&mut self, result: &TaskResult, elapsed: Duration) -> io::Result<()> {
        let secs = elapsed.as_secs_f64();
        if self.json {
            let line = json!({
                "event": "summary",
                "messages": result.messages.len(),
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "total_tokens": result.usage.total_tokens,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "stop_reason": result.stop_reason,
            });
            writeln!(self.out, "{line}")?;
        } else {
            self.end_line()?;
            writeln!(
                self.out,
                "\n{} messages, {} tokens ({} prompt + {} completion), {:.1} s",
                result.messages.len(),
                result.usage.total_tokens,
                result.usage.prompt_tokens,
                result.usage.completion_tokens,
                secs,
            )?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgen_core::events::AgentMessage;
    use agentgen_core::Usage;

    fn text(p: Printer<Vec<u8>>) -> String {
        String::from_utf8(p.into_inner()).unwrap()
    }

    #[test]
    fn streamed_tokens_appear_once_under_the_speaker() {
        let mut p = Printer::new(Vec::new(), false);
        p.event(&AgentEvent::Message(AgentMessage::text("user", "task"))).unwrap();
        for t in ["Hel", "lo"] {
            p.event(&AgentEvent::TokenChunk { source: "writer".into(), text: t.into() }).unwrap();
        }
        p.event(&AgentEvent::Message(AgentMessage::text("writer", "Hello"))).unwrap();
        p.event(&AgentEvent::Message(AgentMessage::text("reviewer", "APPROVE"))).unwrap();
        let out = text(p);
        assert_eq!(out.matches("Hello").count(), 1, "{out}");
        assert!(out.contains("── writer ──\nHello\n"), "{out}");
        assert!(out.contains("── reviewer ──\nAPPROVE"), "{out}");
        assert!(out.contains("── user ──\ntask"), "{out}");
    }

    #[test]
    fn concurrent_streams_are_shown_one_after_the_other() {
        let mut p = Printer::new(Vec::new(), false);
        let chunk = |source: &str, text: &str| AgentEvent::TokenChunk {
            source: source.into(),
            text: text.into(),
        };
        for e in [chunk("a", "A1 "), chunk("b", "B1 "), chunk("a", "A2"), chunk("b", "B2")] {
            p.event(&e).unwrap();
        }
        p.event(&AgentEvent::Message(AgentMessage::text("a", "A1 A2"))).unwrap();
        p.event(&chunk("b", " B3")).unwrap();
        p.event(&AgentEvent::Message(AgentMessage::text("b", "B1 B2 B3"))).unwrap();
        assert_eq!(text(p), "\n── a ──\nA1 A2\n\n── b ──\nB1 B2 B3\n");
    }

    #[test]
    fn json_mode_writes_one_object_per_line_and_a_summary() {
        let mut p = Printer::new(Vec::new(), true);
        p.event(&AgentEvent::TokenChunk { source: "w".into(), text: "x".into() }).unwrap();
        let result = TaskResult {
            messages: vec![AgentMessage::text("user", "t")],
            stop_reason: Some("max".into()),
            usage: Usage::new(3, 4, 0),
        };
        p.summary(&result, Duration::from_millis(1500)).unwrap();
        let out = text(p);
        let lines: Vec<serde_json::Value> =
            out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["event"], "token_chunk");
        assert_eq!(lines[1]["event"], "summary");
        assert_eq!(lines[1]["total_tokens"], 7);
        assert_eq!(lines[1]["seconds"], 1.5);
    }
}
