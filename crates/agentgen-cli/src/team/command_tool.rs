//! Command tools: a program from the team file, run in the code executor's sandbox with its
//! arguments filled in from the model's validated call.
//!
//! Every `{name}` in an argv element, where `name` is a property of the tool's schema, is
//! replaced by that argument (a string as it is, anything else as JSON text). An element stays
//! one element whatever the argument holds, and no shell ever sees it, so `; rm -rf ~` or
//! `$(…)` reach the program as literal text. An element that is exactly `{name}` is left out
//! when the argument is absent. Other braces are left alone.

use std::ffi::OsString;
use std::time::Duration;

use agentgen_core::sandbox::{Sandbox, SandboxError, SandboxPolicy};
use agentgen_core::tools::{Tool, ToolContext, ToolError};
use async_trait::async_trait;
use serde_json::Value;

use super::spec::CommandToolSpec;

/// Seconds a call may run unless the team file says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of output kept unless the team file says otherwise.
const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// A `[[command_tools]]` entry as a tool.
#[derive(Debug, Clone)]
pub struct CommandTool {
    name: String,
    description: String,
    argv: Vec<String>,
    parameters: Value,
    timeout: Duration,
    output_cap: usize,
    policy: SandboxPolicy,
}

impl CommandTool {
    /// The tool a checked team-file entry describes.
    pub fn new(spec: &CommandToolSpec) -> Self {
        let mut policy = SandboxPolicy::default();
        if spec.allow_network {
            policy = policy.allow_network();
        }
        Self {
            name: spec.name.get_ref().clone(),
            description: spec.description.clone(),
            argv: spec.argv.get_ref().clone(),
            parameters: spec.schema.clone(),
            timeout: spec.timeout_s.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            output_cap: spec.output_cap.unwrap_or(DEFAULT_OUTPUT_CAP),
            policy,
        }
    }

    /// The argv for these (validated) arguments.
    pub fn argv_for(&self, args: &Value) -> Vec<String> {
        let props: Vec<&str> = self
            .parameters
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut out = Vec::with_capacity(self.argv.len());
        for (i, element) in self.argv.iter().enumerate() {
            // The program itself is never filled in.
            if i == 0 {
                out.push(element.clone());
                continue;
            }
            if let Some(name) = element.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
                if props.contains(&name) {
                    if let Some(v) = args.get(name) {
                        out.push(text(v));
                    }
                    continue;
                }
            }
            out.push(fill(element, &props, |name| args.get(name).map(text).unwrap_or_default()));
        }
        out
    }
}

/// `element` with every `{prop}` replaced in one left-to-right pass (a value is never
/// scanned again).
fn fill(element: &str, props: &[&str], value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(element.len());
    let mut rest = element;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| &after[..close]).filter(|n| props.contains(n)) {
            Some(name) => {
                out.push_str(&value(name));
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[async_trait]
impl Tool for CommandTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let failed = |message: String| ToolError::Execution { tool: self.name.clone(), message };
        let argv = self.argv_for(&args);
        let (program, rest) = argv.split_first().ok_or_else(|| failed("no program".into()))?;
        let rest: Vec<OsString> = rest.iter().map(OsString::from).collect();
        let sandbox = Sandbox::new(self.policy.clone()).await.map_err(|e| failed(e.to_string()))?;
        let run = sandbox.run(program, &rest, self.timeout, self.output_cap, &ctx.cancel).await;
        let run = match run {
            Ok(run) => run,
            Err(SandboxError::Cancelled) => return Err(ToolError::Cancelled),
            Err(e) => return Err(failed(e.to_string())),
        };
        let mut output = run.output;
        if run.total_bytes > self.output_cap {
            output.push_str(&format!(
                "\n[output cut at {} of {} bytes]",
                self.output_cap, run.total_bytes
            ));
        }
        if run.timed_out {
            return Err(failed(format!(
                "timed out after {} s; output so far:\n{output}",
                self.timeout.as_secs()
            )));
        }
        match run.exit_code {
            Some(0) => Ok(Value::String(output)),
            Some(code) => Err(failed(format!("exit code {code}:\n{output}"))),
            None => Err(failed(format!(
                "killed by signal {}:\n{output}",
                run.signal.map_or("?".to_owned(), |s| s.to_string())
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::team::TeamSpec;

    fn tool(argv: &str, extra: &str) -> CommandTool {
        let text = format!(
            "[team]\ntype = \"round_robin\"\n[[command_tools]]\nname = \"t\"\ndescription = \"d\"\n\
             argv = {argv}\nparameters = {{ type = \"object\", properties = {{ x = {{ type = \
             \"string\" }}, n = {{ type = \"integer\" }} }}, required = [\"x\"] }}\n{extra}\
             [[agents]]\nname = \"a\"\nsystem_message = \"s\"\ntools = [\"t\"]\n"
        );
        let spec = TeamSpec::parse(&text, Path::new("t.toml")).unwrap();
        CommandTool::new(&spec.command_tools[0])
    }

    #[test]
    fn placeholders_fill_whole_elements_and_never_split() {
        let t = tool(r#"["prog", "{x}", "--n={n}", "{n}", "{y}", "f\"{x}\" {}"]"#, "");
        let hostile = "a b; rm -rf ~ $(touch pwned) `id` {n}";
        assert_eq!(
            t.argv_for(&serde_json::json!({"x": hostile, "n": 3})),
            ["prog", hostile, "--n=3", "3", "{y}", &format!("f\"{hostile}\" {{}}")]
        );
        assert_eq!(
            t.argv_for(&serde_json::json!({"x": "v"})),
            ["prog", "v", "--n=", "{y}", "f\"v\" {}"]
        );
    }

    #[tokio::test]
    async fn injection_stays_literal_and_a_timeout_is_an_error_result() {
        let t = tool(
            r#"["python3", "-c", "import sys; print(repr(sys.argv[1:]))", "{x}"]"#,
            "timeout_s = 5\n",
        );
        let hostile = "; rm -rf . $(echo pwned) `echo hi` && echo owned";
        let out = t.call(serde_json::json!({"x": hostile}), &ToolContext::default()).await.unwrap();
        assert_eq!(out, Value::String(format!("['{hostile}']\n")));

        let slow =
            tool(r#"["python3", "-c", "import time; time.sleep(30)", "{x}"]"#, "timeout_s = 1\n");
        let started = std::time::Instant::now();
        let err =
            slow.call(serde_json::json!({"x": "y"}), &ToolContext::default()).await.unwrap_err();
        assert!(err.to_string().contains("timed out after 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let fails = tool(r#"["python3", "-c", "import sys; print('no'); sys.exit(3)", "{x}"]"#, "");
        let err =
            fails.call(serde_json::json!({"x": "y"}), &ToolContext::default()).await.unwrap_err();
        assert!(err.to_string().contains("exit code 3:\nno"), "{err}");
    }
}
