//! The built-in tools a team file may give its agents: `add`, `multiply`, `current_time`,
//! `word_count`.

use std::convert::Infallible;
use std::sync::Arc;

use agentgen_core::clock::UtcDateTime;
use agentgen_core::tools::{FunctionTool, Tool};
use schemars::JsonSchema;
use serde::Deserialize;

/// Arguments of `add` and `multiply`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TwoNumbers {
    /// The first number.
    pub a: f64,
    /// The second number.
    pub b: f64,
}

/// Arguments of `current_time` (none).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// Arguments of `word_count`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Text {
    /// The text whose words are counted.
    pub text: String,
}

/// A number as an integer when it is one (`4`, not `4.0`).
fn number(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Value::from(x)
    }
}

/// The tool called `name`, if it is built in.
pub fn builtin(name: &str) -> Option<Arc<dyn Tool>> {
    let tool = match name {
        "add" => {
            FunctionTool::new("add", "Adds two numbers a and b.", |x: TwoNumbers| async move {
                Ok::<_, Infallible>(number(x.a + x.b))
            })
        }
        "multiply" => FunctionTool::new(
            "multiply",
            "Multiplies two numbers a and b.",
            |x: TwoNumbers| async move { Ok::<_, Infallible>(number(x.a * x.b)) },
        ),
        "current_time" => FunctionTool::new(
            "current_time",
            "The current date and time in UTC (ISO 8601).",
            |_: NoArgs| async move { Ok::<_, Infallible>(utc_now()) },
        ),
        "word_count" => {
            FunctionTool::new("word_count", "Counts the words in a text.", |x: Text| async move {
                Ok::<_, Infallible>(x.text.split_whitespace().count())
            })
        }
        _ => return None,
    };
    Some(Arc::new(tool))
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    UtcDateTime::now().iso8601()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgen_core::tools::ToolContext;
    use serde_json::json;

    #[tokio::test]
    async fn every_listed_tool_exists_and_runs() {
        for name in crate::team::BUILTIN_TOOLS {
            assert!(builtin(name).is_some(), "{name}");
        }
        assert!(builtin("fly").is_none());
        let ctx = ToolContext::default();
        let add = builtin("add").unwrap();
        assert_eq!(add.call(json!({"a": 2, "b": 3}), &ctx).await.unwrap(), json!(5));
        let mul = builtin("multiply").unwrap();
        assert_eq!(mul.call(json!({"a": 1.5, "b": 3}), &ctx).await.unwrap(), json!(4.5));
        let wc = builtin("word_count").unwrap();
        assert_eq!(wc.call(json!({"text": "one two  three"}), &ctx).await.unwrap(), json!(3));
    }

    #[test]
    fn utc_formatting_is_right() {
        assert_eq!(UtcDateTime::from_unix(951_782_400).iso8601(), "2000-02-29T00:00:00Z");
        assert_eq!(UtcDateTime::from_unix(1_700_000_000).iso8601(), "2023-11-14T22:13:20Z");
    }
}
