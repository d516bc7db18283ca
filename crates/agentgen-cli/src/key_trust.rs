//! Where a base URL and an API key came from, and whether the key may travel to that URL.
//!
//! A project's `agentgen.toml` is whatever directory the command runs in (a cloned repo): it
//! may set a base URL, but a key from a more trusted source (the user's own config file, the
//! environment, a flag) is never sent to a base URL only the project file gave. And a key
//! never travels over plain `http://` except to a loopback address.

use std::path::Path;

use serde::Serialize;

/// The layer a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Not set anywhere: the built-in default.
    #[default]
    Default,
    /// `./agentgen.toml` in the working directory.
    ProjectFile,
    /// The user's config file (or `--config FILE`).
    UserFile,
    /// The environment.
    Env,
    /// A command-line flag.
    Flag,
}

impl Origin {
    /// 0 for the project file, 1 for every source the user controls.
    pub fn trust(self) -> u8 {
        match self {
            Self::ProjectFile => 0,
            Self::Default | Self::UserFile | Self::Env | Self::Flag => 1,
        }
    }

    /// How the source is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Default => "the built-in default",
            Self::ProjectFile => "./agentgen.toml",
            Self::UserFile => "the user config file",
            Self::Env => "the environment",
            Self::Flag => "a command-line flag",
        }
    }
}

/// Where `base_url` and each API key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Origins {
    /// `base_url`.
    pub base_url: Origin,
    /// `groq.api_key`.
    pub groq_key: Origin,
    /// `openai.api_key`.
    pub openai_key: Origin,
    /// `telemetry.otlp_endpoint`.
    pub otlp_endpoint: Origin,
}

/// What the layers hold, highest precedence first per setting.
pub(crate) struct Layers<'a> {
    /// The user file (or `--config FILE`), if read.
    pub user_file: Option<&'a Path>,
    /// `./agentgen.toml`, if read.
    pub project_file: Option<&'a Path>,
    /// The environment.
    pub env: &'a std::collections::HashMap<String, String>,
    /// `--base-url` was given.
    pub base_url_flag: bool,
}

impl Layers<'_> {
    /// The origin of each secret-relevant setting, following the merge order: files (user,
    /// then project) < environment < flags.
    pub(crate) fn origins(&self) -> Origins {
        let env_set =
            |vars: &[&str]| vars.iter().any(|v| self.env.get(*v).is_some_and(|x| !x.is_empty()));
        let origin = |path: &[&str], vars: &[&str], flag: bool| {
            if flag {
                Origin::Flag
            } else if env_set(vars) {
                Origin::Env
            } else if self.project_file.is_some_and(|f| file_sets(f, path)) {
                Origin::ProjectFile
            } else if self.user_file.is_some_and(|f| file_sets(f, path)) {
                Origin::UserFile
            } else {
                Origin::Default
            }
        };
        Origins {
            base_url: origin(&["base_url"], &["AGENTGEN_BASE_URL"], self.base_url_flag),
            groq_key: origin(
                &["groq", "api_key"],
                &["GROQ_API_KEY", "AGENTGEN_GROQ__API_KEY"],
                false,
            ),
            openai_key: origin(
                &["openai", "api_key"],
                &["OPENAI_API_KEY", "AGENTGEN_OPENAI__API_KEY"],
                false,
            ),
            otlp_endpoint: origin(
                &["telemetry", "otlp_endpoint"],
                &["AGENTGEN_TELEMETRY__OTLP_ENDPOINT"],
                false,
            ),
        }
    }
}

/// Whether the TOML file sets a non-empty value at `path` (unreadable: no; the merge has read
/// it already).
fn file_sets(file: &Path, path: &[&str]) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else { return false };
    let Ok(table) = text.parse::<toml::Table>() else { return false };
    let mut value = table.get(path[0]);
    for key in &path[1..] {
        value = value.and_then(|v| v.get(*key));
    }
    value.is_some_and(|v| v.as_str().is_none_or(|s| !s.trim().is_empty()))
}

/// Why a key may not travel to a base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTrustError {
    /// The key comes from a more trusted source than the base URL.
    #[error(
        "refusing to send {key} (from {}) to base_url {url} set by {}: set base_url in your \
         own config, the environment or with --base-url",
        .key_origin.describe(), .url_origin.describe()
    )]
    UntrustedBaseUrl {
        /// Which key.
        key: &'static str,
        /// The base URL.
        url: String,
        /// Where the key came from.
        key_origin: Origin,
        /// Where the base URL came from.
        url_origin: Origin,
    },
    /// The base URL is plain http (or another scheme) to a host that is not loopback.
    #[error("refusing to send {key} to {url}: keys travel over https, or http to loopback only")]
    Insecure {
        /// Which key.
        key: &'static str,
        /// The base URL.
        url: String,
    },
}

/// Checks that a key from `key_origin` may be sent to `url` from `url_origin`.
pub fn check(
    key: &'static str,
    key_origin: Origin,
    url: &str,
    url_origin: Origin,
) -> Result<(), KeyTrustError> {
    if url_origin.trust() < key_origin.trust() {
        return Err(KeyTrustError::UntrustedBaseUrl {
            key,
            url: url.to_owned(),
            key_origin,
            url_origin,
        });
    }
    if !is_secure_transport(url) {
        return Err(KeyTrustError::Insecure { key, url: url.to_owned() });
    }
    Ok(())
}

/// `https://…`, or `http://` to `localhost` or a loopback address.
pub fn is_secure_transport(url: &str) -> bool {
    let url = url.trim();
    url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        || agentgen_models::is_loopback_http(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_carries_keys() {
        for ok in [
            "https://api.groq.com/openai/v1",
            "http://127.0.0.1:8080/v1",
            "http://127.1.2.3/v1",
            "http://localhost:11434/v1",
            "HTTP://[::1]:8080/v1",
        ] {
            assert!(is_secure_transport(ok), "{ok}");
        }
        for bad in [
            "http://evil.example/v1",
            "http://127.0.0.1.evil.example/v1",
            "http://localhost@evil.example/v1",
            "http://10.0.0.5:8080/v1",
            "ftp://127.0.0.1/",
            "127.0.0.1:8080",
        ] {
            assert!(!is_secure_transport(bad), "{bad}");
        }
    }

    #[test]
    fn a_key_never_goes_to_a_less_trusted_base_url() {
        let url = "https://evil.example/v1";
        for key_origin in [Origin::Env, Origin::UserFile, Origin::Flag] {
            let err = check("GROQ key", key_origin, url, Origin::ProjectFile).unwrap_err();
            assert!(matches!(err, KeyTrustError::UntrustedBaseUrl { .. }), "{err}");
        }
        assert!(check("k", Origin::ProjectFile, url, Origin::ProjectFile).is_ok());
        assert!(check("k", Origin::Env, url, Origin::UserFile).is_ok());
        assert!(check("k", Origin::ProjectFile, url, Origin::Flag).is_ok());
    }
}
