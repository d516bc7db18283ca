//! Prompt templates with `{name}` placeholders, checked before a team uses them: a placeholder
//! the team never fills would reach the model as is.

/// Why a prompt template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptTemplateError {
    /// The template is empty or only whitespace.
    #[error("the {prompt} is empty")]
    Empty {
        /// Which prompt (`final answer prompt`).
        prompt: &'static str,
    },
    /// The template uses a placeholder that is never filled.
    #[error(
        "the {prompt} uses the placeholder `{{{placeholder}}}`, which is never filled \
         (placeholders: {})",
        .allowed.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
    )]
    UnknownPlaceholder {
        /// Which prompt.
        prompt: &'static str,
        /// The placeholder's name, without braces.
        placeholder: String,
        /// The names that are filled.
        allowed: &'static [&'static str],
    },
}

/// The placeholder names in `template`, in order: every `{name}` where `name` is a letter or
/// `_` followed by letters, digits or `_`. Other braces (`{"a": 1}`, `{}`) are text.
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.match_indices('{').filter_map(move |(start, _)| {
        let rest = &template[start + 1..];
        let name = &rest[..rest.find('}')?];
        let mut chars = name.chars();
        let first = chars.next()?;
        let is_name = (first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_name.then_some(name)
    })
}

/// Checks that `template` is not empty and uses only the placeholders in `allowed`; `prompt`
/// names it in the error.
pub fn check_template(
    prompt: &'static str,
    template: &str,
    allowed: &'static [&'static str],
) -> Result<(), PromptTemplateError> {
    if template.trim().is_empty() {
        return Err(PromptTemplateError::Empty { prompt });
    }
    match placeholders(template).find(|p| !allowed.contains(p)) {
        Some(unknown) => Err(PromptTemplateError::UnknownPlaceholder {
            prompt,
            placeholder: unknown.to_owned(),
            allowed,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_names_in_braces_and_other_braces_are_text() {
        let found: Vec<&str> =
            placeholders("{task} {{plan}} {\"a\": 1} {} {2x} {_x1} {é} {open").collect();
        assert_eq!(found, ["task", "plan", "_x1"]);
    }

    #[test]
    fn templates_must_be_non_empty_and_use_known_placeholders() {
        const ALLOWED: &[&str] = &["task", "plan"];
        assert_eq!(check_template("p", "Do {task} by {plan}. {\"json\": true}", ALLOWED), Ok(()));
        assert_eq!(
            check_template("p", " \n", ALLOWED),
            Err(PromptTemplateError::Empty { prompt: "p" })
        );
        let err = check_template("final answer prompt", "{task} for {user}", ALLOWED).unwrap_err();
        assert_eq!(
            err,
            PromptTemplateError::UnknownPlaceholder {
                prompt: "final answer prompt",
                placeholder: "user".into(),
                allowed: ALLOWED,
            }
        );
        assert_eq!(
            err.to_string(),
            "the final answer prompt uses the placeholder `{user}`, which is never filled \
             (placeholders: {task}, {plan})"
        );
    }
}
