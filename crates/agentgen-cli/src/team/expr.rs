//! Termination expressions: `max_messages(8) | text_mention('APPROVE') & source_match('critic')`.
//!
//! Grammar: `or := and ('|' and)*`, `and := atom ('&' atom)*`, `atom := '(' or ')' | name '('
//! args ')'`; `&` binds tighter than `|`. Arguments are integers or quoted strings (`'…'` or
//! `"…"`, `\` escapes the next character). The conditions:
//!
//! | expression | stops when |
//! |---|---|
//! | `max_messages(N)` | N messages were said, the task included |
//! | `text_mention('T')`, `text_mention('T', 'agent', …)` | a message (from one of the agents) contains T |
//! | `stop_message()` | an agent sends a stop message |
//! | `token_usage(N)` | the models used more than N tokens in all |
//! | `handoff('user')` | an agent hands over to that target |
//! | `timeout(SECONDS)` | that long has passed since the run started |
//! | `source_match('agent', …)` | one of these agents has spoken |
//! | `text_message()`, `text_message('agent')` | an agent (that one) answered in plain text |
//! | `function_call('tool')` | a tool of that name has run |

use std::fmt;
use std::time::Duration;

use agentgen_core::termination::Termination;

/// Deepest nesting of parentheses accepted.
const MAX_DEPTH: usize = 32;

/// A parsed termination condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// `max_messages(N)`.
    MaxMessages(usize),
    /// `text_mention('T', 'agent'…)`.
    TextMention {
        /// The text.
        text: String,
        /// Only messages from these agents (any when empty).
        sources: Vec<String>,
    },
    /// `stop_message()`.
    StopMessage,
    /// `token_usage(N)`.
    TokenUsage(u32),
    /// `handoff('target')`.
    Handoff(String),
    /// `timeout(SECONDS)`.
    Timeout(u64),
    /// `source_match('agent', …)`.
    SourceMatch(Vec<String>),
    /// `text_message()` / `text_message('agent')`.
    TextMessage(Option<String>),
    /// `function_call('tool')`.
    FunctionCall(String),
    /// `a | b`.
    Or(Box<Cond>, Box<Cond>),
    /// `a & b`.
    And(Box<Cond>, Box<Cond>),
}

/// A syntax error: the byte offset in the expression and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Byte offset into the expression.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl Cond {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Cond, ExprError> {
        let mut p = Parser { tokens: tokenize(text)?, at: 0, end: text.len(), depth: 0 };
        let cond = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(cond),
            Some(t) => Err(ExprError {
                offset: t.offset,
                message: format!("expected `|`, `&` or the end, found {}", t.kind),
            }),
        }
    }

    /// `a | b`.
    pub fn or(self, other: Cond) -> Cond {
        Cond::Or(Box::new(self), Box::new(other))
    }

    /// The condition with every `max_messages` taken out (`None` when nothing is left): a
    /// side of `|` or `&` that was only `max_messages` goes, the other side stays.
    pub fn without_max_messages(self) -> Option<Cond> {
        match self {
            Cond::MaxMessages(_) => None,
            Cond::Or(a, b) => match (a.without_max_messages(), b.without_max_messages()) {
                (Some(a), Some(b)) => Some(Cond::Or(Box::new(a), Box::new(b))),
                (a, b) => a.or(b),
            },
            Cond::And(a, b) => match (a.without_max_messages(), b.without_max_messages()) {
                (Some(a), Some(b)) => Some(Cond::And(Box::new(a), Box::new(b))),
                (a, b) => a.or(b),
            },
            other => Some(other),
        }
    }

    /// Whether `max_messages` appears anywhere in it.
    pub fn mentions_max_messages(&self) -> bool {
        match self {
            Cond::MaxMessages(_) => true,
            Cond::Or(a, b) | Cond::And(a, b) => {
                a.mentions_max_messages() || b.mentions_max_messages()
            }
            _ => false,
        }
    }

    /// Every agent name it refers to (text_mention sources, source_match, text_message).
    pub fn agent_names(&self) -> Vec<&str> {
        match self {
            Cond::TextMention { sources, .. } | Cond::SourceMatch(sources) => {
                sources.iter().map(String::as_str).collect()
            }
            Cond::TextMessage(Some(s)) => vec![s.as_str()],
            Cond::Or(a, b) | Cond::And(a, b) => {
                let mut v = a.agent_names();
                v.extend(b.agent_names());
                v
            }
            _ => Vec::new(),
        }
    }

    /// The runtime condition.
    pub fn to_termination(&self) -> Termination {
        fn refs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        match self {
            Cond::MaxMessages(n) => Termination::max_messages(*n),
            Cond::TextMention { text, sources } if sources.is_empty() => {
                Termination::text_mention(text.clone())
            }
            Cond::TextMention { text, sources } => {
                Termination::text_mention_from(text.clone(), &refs(sources))
            }
            Cond::StopMessage => Termination::stop_message(),
            Cond::TokenUsage(n) => Termination::token_usage(Some(*n), None, None),
            Cond::Handoff(t) => Termination::handoff(t.clone()),
            Cond::Timeout(s) => Termination::timeout(Duration::from_secs(*s)),
            Cond::SourceMatch(s) => Termination::source_match(&refs(s)),
            Cond::TextMessage(s) => Termination::text_message(s.as_deref()),
            Cond::FunctionCall(n) => Termination::function_call(n.clone()),
            Cond::Or(a, b) => a.to_termination() | b.to_termination(),
            Cond::And(a, b) => a.to_termination() & b.to_termination(),
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        match self {
            Cond::MaxMessages(n) => write!(f, "max_messages({n})"),
            Cond::TextMention { text, sources } if sources.is_empty() => {
                write!(f, "text_mention({})", quote(text))
            }
            Cond::TextMention { text, sources } => {
                write!(f, "text_mention({}, {})", quote(text), list(sources))
            }
            Cond::StopMessage => f.write_str("stop_message()"),
            Cond::TokenUsage(n) => write!(f, "token_usage({n})"),
            Cond::Handoff(t) => write!(f, "handoff({})", quote(t)),
            Cond::Timeout(s) => write!(f, "timeout({s})"),
            Cond::SourceMatch(s) => write!(f, "source_match({})", list(s)),
            Cond::TextMessage(None) => f.write_str("text_message()"),
            Cond::TextMessage(Some(s)) => write!(f, "text_message({})", quote(s)),
            Cond::FunctionCall(n) => write!(f, "function_call({})", quote(n)),
            Cond::Or(a, b) => write!(f, "{a} | {b}"),
            Cond::And(a, b) => {
                let side = |c: &Cond| match c {
                    Cond::Or(..) => format!("({c})"),
                    _ => c.to_string(),
                };
                write!(f, "{} & {}", side(a), side(b))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Ident(String),
    Int(u64),
    Str(String),
    Punct(char),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Ident(s) => write!(f, "`{s}`"),
            Kind::Int(n) => write!(f, "`{n}`"),
            Kind::Str(s) => write!(f, "the string {}", quote(s)),
            Kind::Punct(c) => write!(f, "`{c}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    offset: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        let err = |message: String| ExprError { offset: at, message };
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(&(_, c)) =
                chars.peek().filter(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
            {
                s.push(c);
                chars.next();
            }
            out.push(Token { kind: Kind::Ident(s), offset: at });
        } else if c.is_ascii_digit() {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek().filter(|(_, c)| c.is_ascii_digit() || *c == '_')
            {
                if c != '_' {
                    s.push(c);
                }
                chars.next();
            }
            let n = s.parse().map_err(|_| err(format!("the number {s} is too large")))?;
            out.push(Token { kind: Kind::Int(n), offset: at });
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err(err("this string is not closed".into())),
                    Some((_, '\\')) => match chars.next() {
                        Some((_, e)) => s.push(e),
                        None => return Err(err("this string is not closed".into())),
                    },
                    Some((_, q)) if q == c => break,
                    Some((_, other)) => s.push(other),
                }
            }
            out.push(Token { kind: Kind::Str(s), offset: at });
        } else if "()|&,".contains(c) {
            chars.next();
            out.push(Token { kind: Kind::Punct(c), offset: at });
        } else {
            return Err(err(format!("unexpected `{c}`")));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek_punct(&self, c: char) -> bool {
        matches!(self.tokens.get(self.at), Some(Token { kind: Kind::Punct(p), .. }) if *p == c)
    }

    fn here(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.offset)
    }

    fn expect(&mut self, c: char) -> Result<(), ExprError> {
        if self.peek_punct(c) {
            self.at += 1;
            return Ok(());
        }
        let found = self.tokens.get(self.at).map_or("the end".to_owned(), |t| t.kind.to_string());
        Err(ExprError { offset: self.here(), message: format!("expected `{c}`, found {found}") })
    }

    fn or(&mut self) -> Result<Cond, ExprError> {
        let mut left = self.and()?;
        while self.peek_punct('|') {
            self.at += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, ExprError> {
        let mut left = self.atom()?;
        while self.peek_punct('&') {
            self.at += 1;
            left = Cond::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Cond, ExprError> {
        let offset = self.here();
        match self.tokens.get(self.at).map(|t| t.kind.clone()) {
            Some(Kind::Punct('(')) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(ExprError { offset, message: "nested too deeply".into() });
                }
                self.at += 1;
                let inner = self.or()?;
                self.expect(')')?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Kind::Ident(name)) => {
                self.at += 1;
                self.expect('(')?;
                let mut args = Vec::new();
                while !self.peek_punct(')') {
                    if !args.is_empty() {
                        self.expect(',')?;
                    }
                    let arg_at = self.here();
                    match self.tokens.get(self.at).map(|t| t.kind.clone()) {
                        Some(k @ (Kind::Int(_) | Kind::Str(_))) => args.push((k, arg_at)),
                        _ => {
                            return Err(ExprError {
                                offset: arg_at,
                                message: "expected a number or a quoted string".into(),
                            })
                        }
                    }
                    self.at += 1;
                }
                self.expect(')')?;
                condition(&name, args, offset)
            }
            other => Err(ExprError {
                offset,
                message: format!(
                    "expected a condition such as max_messages(8), found {}",
                    other.map_or("the end".to_owned(), |k| k.to_string())
                ),
            }),
        }
    }
}

/// Builds the condition `name(args)`.
fn condition(name: &str, args: Vec<(Kind, usize)>, offset: usize) -> Result<Cond, ExprError> {
    let err = |message: String| ExprError { offset, message };
    let int = |i: usize| match args.get(i) {
        Some((Kind::Int(n), _)) => Ok(*n),
        _ => Err(err(format!("{name}(…) takes a number"))),
    };
    let strings = || {
        args.iter()
            .map(|(k, at)| match k {
                Kind::Str(s) => Ok(s.clone()),
                _ => Err(ExprError { offset: *at, message: format!("{name}(…) takes strings") }),
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let count = |range: std::ops::RangeInclusive<usize>, what: &str| {
        if range.contains(&args.len()) {
            Ok(())
        } else {
            Err(err(format!("{name} takes {what}")))
        }
    };
    let non_empty = |s: Vec<String>| {
        if s.iter().any(|s| s.is_empty()) {
            Err(err(format!("{name}(…): a string must not be empty")))
        } else {
            Ok(s)
        }
    };
    Ok(match name {
        "max_messages" => {
            count(1..=1, "one number")?;
            match int(0)? {
                0 => return Err(err("max_messages must be at least 1".into())),
                n => Cond::MaxMessages(usize::try_from(n).map_err(|_| err("too large".into()))?),
            }
        }
        "text_mention" => {
            count(1..=usize::MAX, "the text, then optionally agent names")?;
            let mut s = non_empty(strings()?)?;
            let text = s.remove(0);
            Cond::TextMention { text, sources: s }
        }
        "stop_message" => {
            count(0..=0, "no arguments")?;
            Cond::StopMessage
        }
        "token_usage" => {
            count(1..=1, "one number")?;
            Cond::TokenUsage(u32::try_from(int(0)?).map_err(|_| err("too large".into()))?)
        }
        "handoff" => {
            count(1..=1, "one target name")?;
            Cond::Handoff(non_empty(strings()?)?.remove(0))
        }
        "timeout" => {
            count(1..=1, "a number of seconds")?;
            Cond::Timeout(int(0)?)
        }
        "source_match" => {
            count(1..=usize::MAX, "one or more agent names")?;
            Cond::SourceMatch(non_empty(strings()?)?)
        }
        "text_message" => {
            count(0..=1, "at most one agent name")?;
            Cond::TextMessage(non_empty(strings()?)?.pop())
        }
        "function_call" => {
            count(1..=1, "one tool name")?;
            Cond::FunctionCall(non_empty(strings()?)?.remove(0))
        }
        other => {
            return Err(err(format!(
                "unknown condition `{other}` (known: max_messages, text_mention, stop_message, \
                 token_usage, handoff, timeout, source_match, text_message, function_call)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_binds_tighter_than_or_and_prints_back() {
        let c = Cond::parse("max_messages(8) | text_mention('APPROVE') & source_match(\"critic\")")
            .unwrap();
        let Cond::Or(a, b) = &c else { panic!("{c:?}") };
        assert_eq!(**a, Cond::MaxMessages(8));
        assert!(matches!(**b, Cond::And(..)));
        assert_eq!(
            c.to_string(),
            "max_messages(8) | text_mention('APPROVE') & source_match('critic')"
        );
        let c =
            Cond::parse("(max_messages(3) | timeout(5)) & text_mention('it\\'s', 'a')").unwrap();
        assert_eq!(c.to_string(), "(max_messages(3) | timeout(5)) & text_mention('it\\'s', 'a')");
        assert_eq!(Cond::parse(&c.to_string()).unwrap(), c);
        assert!(c.mentions_max_messages());
        assert_eq!(c.agent_names(), ["a"]);
    }

    #[test]
    fn every_condition_parses() {
        for e in [
            "stop_message()",
            "token_usage(500)",
            "handoff('user')",
            "text_message()",
            "text_message('a')",
            "function_call('add')",
        ] {
            assert_eq!(Cond::parse(e).unwrap().to_string(), e);
        }
    }

    #[test]
    fn errors_point_at_the_offending_byte() {
        let at = |e: &str| Cond::parse(e).unwrap_err();
        assert_eq!(at("max_messages(8) | text_mentoin('x')").offset, 18);
        assert!(at("max_messages(8) | text_mentoin('x')").message.contains("unknown condition"));
        assert_eq!(at("max_messages(8) |").offset, 17);
        assert_eq!(at("max_messages('8')").offset, 0);
        assert_eq!(at("max_messages(0)").message, "max_messages must be at least 1");
        assert_eq!(at("max_messages(8) max_messages(9)").offset, 16);
        assert_eq!(at("text_mention('x)").offset, 13);
        assert_eq!(at("max_messages(8) ; rm").offset, 16);
        assert!(at(&"(".repeat(100)).message.contains("deeply"));
        assert!(at("max_messages(99999999999999999999999)").message.contains("too large"));
    }
}
