//! What the provider last said about its rate limits (`x-ratelimit-*` headers), and the
//! pacing decision built on it.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::duration::parse_go_duration;

/// The rate-limit state from the most recent response's `x-ratelimit-*` headers.
///
/// Groq sends the request limit per day and the token limit per minute. Fields stay `None`
/// when a server does not send the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    /// `x-ratelimit-limit-requests`.
    pub limit_requests: Option<u64>,
    /// `x-ratelimit-limit-tokens`.
    pub limit_tokens: Option<u64>,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: Option<u64>,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining_tokens: Option<u64>,
    /// When the request allowance refills (`x-ratelimit-reset-requests` after the response).
    pub reset_requests_at: Option<Instant>,
    /// When the token allowance refills (`x-ratelimit-reset-tokens` after the response).
    pub reset_tokens_at: Option<Instant>,
    /// When these headers were read.
    pub observed_at: Option<Instant>,
}

impl RateLimits {
    /// Whether any rate-limit header has been seen.
    pub fn is_known(&self) -> bool {
        self.observed_at.is_some()
    }

    /// Reads the headers of one response; `None` when it carried no rate-limit header.
    pub fn from_headers(headers: &HeaderMap, now: Instant) -> Option<Self> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let num = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        let reset = |name: &str| {
            text(name).and_then(|v| match parse_go_duration(v) {
                Ok(d) => now.checked_add(d),
                Err(e) => {
                    tracing::debug!(header = name, error = %e, "ignoring unreadable rate-limit reset");
                    None
                }
            })
        };
        let limits = Self {
            limit_requests: num("x-ratelimit-limit-requests"),
            limit_tokens: num("x-ratelimit-limit-tokens"),
            remaining_requests: num("x-ratelimit-remaining-requests"),
            remaining_tokens: num("x-ratelimit-remaining-tokens"),
            reset_requests_at: reset("x-ratelimit-reset-requests"),
            reset_tokens_at: reset("x-ratelimit-reset-tokens"),
            observed_at: Some(now),
        };
        let any = limits.limit_requests.is_some()
            || limits.limit_tokens.is_some()
            || limits.remaining_requests.is_some()
            || limits.remaining_tokens.is_some()
            || limits.reset_requests_at.is_some()
            || limits.reset_tokens_at.is_some();
        any.then_some(limits)
    }

    /// How long to wait before a request needing about `tokens` tokens fits the remaining
    /// allowance; `None` when it fits now (or nothing is known). An allowance whose reset
    /// time has passed counts as refilled.
    pub fn wait_before(&self, tokens: u64, now: Instant) -> Option<Duration> {
        let pending = |remaining: Option<u64>, need: u64, reset: Option<Instant>| {
            let reset = reset?;
            (remaining? < need && reset > now).then(|| reset - now)
        };
        let requests = pending(self.remaining_requests, 1, self.reset_requests_at);
        let tokens = pending(self.remaining_tokens, tokens.max(1), self.reset_tokens_at);
        requests.max(tokens)
    }

    /// The wait a 429 implies when no `retry-after` came: until the exhausted allowance
    /// refills, else the sooner of the two resets.
    pub fn reset_wait(&self, now: Instant) -> Option<Duration> {
        let until = |at: Option<Instant>| at.map(|at| at.saturating_duration_since(now));
        let exhausted = [
            (self.remaining_requests == Some(0)).then(|| until(self.reset_requests_at)).flatten(),
            (self.remaining_tokens == Some(0)).then(|| until(self.reset_tokens_at)).flatten(),
        ];
        exhausted.into_iter().flatten().max().or_else(|| {
            [until(self.reset_requests_at), until(self.reset_tokens_at)].into_iter().flatten().min()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn groq_headers(remaining_requests: &'static str, remaining_tokens: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-requests", HeaderValue::from_static("14400"));
        h.insert("x-ratelimit-limit-tokens", HeaderValue::from_static("18000"));
        h.insert("x-ratelimit-remaining-requests", HeaderValue::from_static(remaining_requests));
        h.insert("x-ratelimit-remaining-tokens", HeaderValue::from_static(remaining_tokens));
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("2m59.56s"));
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("7.66s"));
        h
    }

    #[test]
    fn headers_are_read() {
        let now = Instant::now();
        let rl = RateLimits::from_headers(&groq_headers("14370", "17997"), now).unwrap();
        assert_eq!(rl.limit_requests, Some(14400));
        assert_eq!(rl.remaining_tokens, Some(17997));
        assert_eq!(rl.reset_requests_at, Some(now + Duration::from_millis(179_560)));
        assert_eq!(rl.reset_tokens_at, Some(now + Duration::from_millis(7_660)));
        assert!(RateLimits::from_headers(&HeaderMap::new(), now).is_none());
    }

    #[test]
    fn pacing_waits_only_for_an_exhausted_allowance() {
        let now = Instant::now();
        let rl = RateLimits::from_headers(&groq_headers("10", "500"), now).unwrap();
        assert_eq!(rl.wait_before(100, now), None);
        assert_eq!(rl.wait_before(501, now), Some(Duration::from_millis(7_660)));
        let rl = RateLimits::from_headers(&groq_headers("0", "500"), now).unwrap();
        assert_eq!(rl.wait_before(1, now), Some(Duration::from_millis(179_560)));
        // After the reset instant the allowance counts as refilled.
        assert_eq!(rl.wait_before(1, now + Duration::from_secs(200)), None);
    }

    #[test]
    fn reset_wait_prefers_the_exhausted_allowance() {
        let now = Instant::now();
        let rl = RateLimits::from_headers(&groq_headers("0", "500"), now).unwrap();
        assert_eq!(rl.reset_wait(now), Some(Duration::from_millis(179_560)));
        let rl = RateLimits::from_headers(&groq_headers("5", "500"), now).unwrap();
        assert_eq!(rl.reset_wait(now), Some(Duration::from_millis(7_660)));
    }
}
