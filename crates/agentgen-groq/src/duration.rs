//! Parsing the waits that providers put in headers and messages: Go-style durations
//! (`2m59.56s`, `7.66s`, `1h2m`, `450ms`) and `retry-after` / `retry-after-ms`.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// A Go-style duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a duration like 2m59.56s, 7.66s, 1h2m or 450ms: {reason}")]
pub struct DurationError {
    /// What was read.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a Go-style duration: a sequence of decimal numbers, each with a unit out of `h`,
/// `m`, `s`, `ms`, `us` (or `µs`) and `ns`, e.g. `2m59.56s`. A bare number is read as
/// seconds, as some OpenAI-compatible servers send it that way. Negative values are errors.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_owned(), reason };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| err("out of range"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total).ok_or_else(|| err("out of range"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (0.0..1e12).contains(&secs).then(|| Duration::from_secs_f64(secs))
}

/// The wait a response asks for: `retry-after-ms` (milliseconds) first, then `retry-after`
/// (seconds, possibly fractional). HTTP-date forms are not used by these providers and are
/// ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return secs_to_duration(ms / 1000.0);
    }
    get("retry-after").and_then(|v| v.parse::<f64>().ok()).and_then(secs_to_duration)
}

/// The wait named in a rate-limit message such as Groq's
/// `… Please try again in 5.289s. …`.
pub fn wait_in_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("try again in ")? + "try again in ".len();
    let tail = &message[at..];
    let end = tail
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ'))
        .unwrap_or(tail.len());
    parse_go_duration(tail[..end].trim_end_matches('.')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn go_durations_from_groq_headers() {
        assert_eq!(parse_go_duration("2m59.56s").unwrap(), ms(179_560));
        assert_eq!(parse_go_duration("7.66s").unwrap(), ms(7_660));
        assert_eq!(parse_go_duration("1h2m").unwrap(), Duration::from_secs(3_720));
        assert_eq!(parse_go_duration("450ms").unwrap(), ms(450));
        assert_eq!(parse_go_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("1h0m0.5s").unwrap(), ms(3_600_500));
        assert_eq!(parse_go_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_go_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_go_duration(" 1.5 ").unwrap(), ms(1_500));
    }

    #[test]
    fn bad_durations_are_errors() {
        for bad in ["", "s", "5x", "-3s", "1.2.3s", "5m3", "m5", "abc"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse_go_duration("5x").unwrap_err().reason, "unknown unit");
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(ms(2_000)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(ms(150)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(ms(2_000)));
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn waits_in_groq_messages() {
        let msg =
            "Rate limit reached for model `llama-3.1-8b-instant` on tokens per minute (TPM): \
                   Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s. Visit …";
        assert_eq!(wait_in_message(msg), Some(ms(5_289)));
        assert_eq!(wait_in_message("Please try again in 1m2.5s."), Some(ms(62_500)));
        assert_eq!(wait_in_message("no hint here"), None);
    }
}
