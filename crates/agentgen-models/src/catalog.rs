//! The model catalog: which LLMs run locally on a CPU, which through an API, and what they need.
//!
//! The data lives in `catalog.toml`, compiled into the binary and parsed once by
//! [`Catalog::builtin`]. Every entry carries an honest one-paragraph verdict. File sizes and
//! sha256 sums marked exact (`file_size_bytes`, `sha256`) were checked against the files;
//! `approx_size_mb` figures are rounded public listings, good enough for "does it fit" and shown
//! with a `~`. API statuses other than Groq's are hedged in their notes: providers change their
//! lists often.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The catalog data compiled into the binary.
const BUILTIN_TOML: &str = include_str!("catalog.toml");

/// Id of the default local model.
pub const DEFAULT_MODEL_ID: &str = "qwen2.5-coder-0.5b-instruct";

/// Context length the `models` table assumes when it shows RAM needed.
pub const DEFAULT_CTX: u32 = 4096;

/// Fixed RAM on top of weights and KV cache: compute buffers, runtime, tokenizer (200 MiB).
pub const RUNTIME_OVERHEAD_BYTES: u64 = 200 * 1024 * 1024;

/// Why catalog data or a measurements file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The TOML did not parse into catalog entries.
    #[error("catalog TOML is malformed: {0}")]
    Parse(#[from] toml::de::Error),
    /// The TOML parsed but breaks a catalog rule (duplicate name, bad hash, …).
    #[error("catalog entry `{model}` is invalid: {problem}")]
    Invalid {
        /// The entry's id.
        model: String,
        /// What is wrong.
        problem: String,
    },
    /// A measurements file could not be read.
    #[error("cannot read measurements file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A measurements file is not the expected JSON.
    #[error("measurements file {path} is not valid bench JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// What kind of network a model is, which decides what it is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A decoder tuned to follow chat turns.
    Chat,
    /// A decoder trained only to continue text.
    Base,
    /// An encoder (BERT-like): embeddings and classification, no text generation.
    Encoder,
    /// An encoder-decoder (T5-like): text-to-text tasks.
    EncoderDecoder,
}

impl ModelKind {
    /// Short lowercase name, as in the catalog file.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Base => "base",
            ModelKind::Encoder => "encoder",
            ModelKind::EncoderDecoder => "encoder-decoder",
        }
    }
}

/// Where a quantised file can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A file in a Hugging Face model repository.
    Huggingface {
        /// `owner/name` of the repository.
        repo: String,
        /// File name inside the repository.
        file: String,
        /// The commit (or tag) to download from; `None`: `main`, which can change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
    },
    /// The file split into pip packages, one chunk per package, concatenated in order.
    PipChunks {
        /// Package names in chunk order.
        packages: Vec<String>,
        /// The version of every package.
        version: String,
        /// Path of the chunk inside the package's import directory; `{NN}` is the 1-based
        /// chunk number with two digits, `{N}` without padding (e.g. `data/part{NN}.bin`).
        member_pattern: String,
    },
}

impl Source {
    /// A short human description (`pip: pkg-part1…part6==0.9.0`, `huggingface: owner/repo`).
    pub fn describe(&self) -> String {
        match self {
            Source::Huggingface { repo, file, revision: None } => {
                format!("huggingface: {repo}/{file}")
            }
            Source::Huggingface { repo, file, revision: Some(rev) } => {
                format!("huggingface: {repo}/{file}@{rev}")
            }
            Source::PipChunks { packages, version, .. } => {
                match (packages.first(), packages.last()) {
                    (Some(first), Some(last)) if packages.len() > 1 => {
                        format!("pip: {first}…{last}=={version} ({} parts)", packages.len())
                    }
                    (Some(first), _) => format!("pip: {first}=={version}"),
                    _ => "pip: (no packages)".to_string(),
                }
            }
        }
    }
}

/// Expand a pip chunk member pattern for the 1-based chunk `part`.
pub fn expand_member_pattern(pattern: &str, part: usize) -> String {
    pattern.replace("{NN}", &format!("{part:02}")).replace("{N}", &part.to_string())
}

/// One quantisation of a model as a single GGUF file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantisation {
    /// Quantisation name, e.g. `Q4_K_M`.
    pub name: String,
    /// The file name in the model cache.
    pub file: String,
    /// Exact file size in bytes, when checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<u64>,
    /// Rounded size in MB (10^6 bytes) from public listings, when the exact size is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approx_size_mb: Option<u64>,
    /// Lowercase hex sha256 of the file, when checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where to get it, tried in order.
    #[serde(default)]
    pub sources: Vec<Source>,
}

impl Quantisation {
    /// The most bytes a download may take: the exact size, or a quarter over the rounded
    /// public size, or 64 GiB when nothing is known.
    pub fn max_download_bytes(&self) -> u64 {
        match self.size_bytes() {
            Some((size, true)) => size,
            Some((approx, false)) => approx.saturating_add(approx / 4),
            None => 64 << 30,
        }
    }

    /// The file size in bytes and whether it is exact (`false`: from `approx_size_mb`).
    pub fn size_bytes(&self) -> Option<(u64, bool)> {
        match (self.file_size_bytes, self.approx_size_mb) {
            (Some(exact), _) => Some((exact, true)),
            (None, Some(mb)) => Some((mb * 1_000_000, false)),
            (None, None) => None,
        }
    }
}

/// How a provider serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiStatus {
    /// Anyone with an account can call it.
    Available,
    /// No longer served.
    Retired,
    /// Retired for self-serve tiers; only enterprise contracts keep it.
    EnterpriseOnly,
}

impl ApiStatus {
    /// Short lowercase name, as in the catalog file.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiStatus::Available => "available",
            ApiStatus::Retired => "retired",
            ApiStatus::EnterpriseOnly => "enterprise-only",
        }
    }
}

/// One provider's offer of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiOffer {
    /// Provider name: `groq`, `huggingface-inference`, `openai`, `together`, …
    pub provider: String,
    /// The model id to send to that provider.
    pub model_id: String,
    /// Whether it is served.
    pub status: ApiStatus,
    /// `YYYY-MM-DD` the provider retired it (for self-serve tiers), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_on: Option<String>,
    /// Caveats.
    #[serde(default)]
    pub note: String,
}

/// One model in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Unique id, lowercase (`qwen2.5-coder-0.5b-instruct`).
    pub id: String,
    /// Other names it is found by (case-insensitive).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Model family (`Llama 3.2`, `Qwen2.5-Coder`, …).
    pub family: String,
    /// Parameter count as people write it (`0.5B`, `21B (3.6B active)`).
    pub parameters: String,
    /// Licence of the weights.
    pub licence: String,
    /// What kind of network it is.
    pub kind: ModelKind,
    /// Whether it holds a chat conversation (has a chat template and was tuned for it).
    pub chat: bool,
    /// Whether it was trained for, and its template supports, function/tool calls.
    pub tools: bool,
    /// Whether llama.cpp is known to run its architecture on a CPU (`false`: it does not, or this
    /// catalog has not confirmed it; the verdict says which).
    pub llama_cpp_cpu: bool,
    /// Trained context length in tokens, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// KV-cache bytes per token of context at f16: 2 × layers × KV heads × head size × 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bytes_per_token: Option<u64>,
    /// An honest paragraph: what it is, whether to use it, and what to use instead.
    pub verdict: String,
    /// Single-file GGUF quantisations; the first is the default for `pull`.
    #[serde(default)]
    pub quantisations: Vec<Quantisation>,
    /// Hosted APIs that serve (or served) it.
    #[serde(default)]
    pub api: Vec<ApiOffer>,
}

impl CatalogEntry {
    /// Whether `name` is this entry's id or one of its aliases, ignoring case.
    pub fn matches(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// The quantisation called `name` (case-insensitive), or the default (first) one for `None`.
    pub fn quant(&self, name: Option<&str>) -> Option<&Quantisation> {
        match name {
            None => self.quantisations.first(),
            Some(n) => self.quantisations.iter().find(|q| q.name.eq_ignore_ascii_case(n)),
        }
    }

    /// Whether any quantisation has a source to pull from.
    pub fn has_local_source(&self) -> bool {
        self.quantisations.iter().any(|q| !q.sources.is_empty())
    }

    /// Whether some provider serves it to anyone today.
    pub fn api_available(&self) -> bool {
        self.api.iter().any(|a| a.status == ApiStatus::Available)
    }

    /// RAM needed to run `quant` at `ctx` tokens of context; see [`ram_needed`].
    pub fn ram_needed(&self, quant: &Quantisation, ctx: u32) -> Option<u64> {
        ram_needed(quant, self.kv_bytes_per_token, ctx)
    }

    /// The first quantisation (in catalog order) that llama.cpp can run on CPU within
    /// `free_ram_bytes` at `ctx`, if any.
    pub fn best_fit(&self, free_ram_bytes: u64, ctx: u32) -> Option<&Quantisation> {
        if !self.llama_cpp_cpu {
            return None;
        }
        self.quantisations
            .iter()
            .find(|q| self.ram_needed(q, ctx).is_some_and(|need| need <= free_ram_bytes))
    }
}

/// RAM needed to run a GGUF: file size + KV cache for `ctx` tokens + [`RUNTIME_OVERHEAD_BYTES`].
/// `None` when the file size is unknown. Without `kv_bytes_per_token` (encoders) the KV term is 0.
pub fn ram_needed(quant: &Quantisation, kv_bytes_per_token: Option<u64>, ctx: u32) -> Option<u64> {
    let (file, _) = quant.size_bytes()?;
    let kv = kv_bytes_per_token.unwrap_or(0).saturating_mul(u64::from(ctx));
    Some(file.saturating_add(kv).saturating_add(RUNTIME_OVERHEAD_BYTES))
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The entries, in file order.
    #[serde(rename = "model")]
    pub models: Vec<CatalogEntry>,
}

impl Catalog {
    /// The catalog compiled into this binary, parsed on first use.
    ///
    /// # Panics
    /// If the built-in data is malformed: that is a bug in this crate, which its tests catch.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::from_toml_str(BUILTIN_TOML)
                .unwrap_or_else(|e| panic!("the built-in model catalog is invalid: {e}"))
        })
    }

    /// Parse and check catalog TOML (`[[model]]` tables).
    pub fn from_toml_str(text: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog = toml::from_str(text)?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// The entry whose id or alias is `name`, ignoring case.
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        let name = name.trim();
        self.models.iter().find(|m| m.matches(name))
    }

    /// Entries with a quantisation that llama.cpp runs on CPU within `free_ram_bytes` at `ctx`.
    pub fn fits(&self, free_ram_bytes: u64, ctx: u32) -> Vec<&CatalogEntry> {
        self.models.iter().filter(|m| m.best_fit(free_ram_bytes, ctx).is_some()).collect()
    }

    /// Entries that run both ways: a local source llama.cpp runs on CPU, and an available API.
    pub fn local_and_api(&self) -> Vec<&CatalogEntry> {
        self.models
            .iter()
            .filter(|m| m.llama_cpp_cpu && m.has_local_source() && m.api_available())
            .collect()
    }

    fn validate(&self) -> Result<(), CatalogError> {
        let mut names = HashSet::new();
        for m in &self.models {
            let bad = |problem: String| CatalogError::Invalid { model: m.id.clone(), problem };
            if m.id.trim().is_empty() || m.id != m.id.to_lowercase() {
                return Err(bad("id must be non-empty and lowercase".into()));
            }
            for name in std::iter::once(&m.id).chain(&m.aliases) {
                if !names.insert(name.to_lowercase()) {
                    return Err(bad(format!("name `{name}` is used by another entry")));
                }
            }
            for (field, value) in [
                ("family", &m.family),
                ("parameters", &m.parameters),
                ("licence", &m.licence),
                ("verdict", &m.verdict),
            ] {
                if value.trim().is_empty() {
                    return Err(bad(format!("`{field}` is empty")));
                }
            }
            if matches!(m.kind, ModelKind::Encoder) && (m.chat || m.tools) {
                return Err(bad("an encoder cannot chat or call tools".into()));
            }
            for q in &m.quantisations {
                validate_quant(q).map_err(bad)?;
            }
            for a in &m.api {
                if a.provider.trim().is_empty() || a.model_id.trim().is_empty() {
                    return Err(bad("api offer without provider or model_id".into()));
                }
                if let Some(date) = &a.retired_on {
                    if !is_iso_date(date) {
                        return Err(bad(format!("retired_on `{date}` is not YYYY-MM-DD")));
                    }
                }
            }
        }
        Ok(())
    }
}

fn validate_quant(q: &Quantisation) -> Result<(), String> {
    if q.name.trim().is_empty() || q.file.trim().is_empty() {
        return Err("quantisation without name or file".into());
    }
    if q.file.contains(['/', '\\']) || q.file.starts_with('.') {
        return Err(format!("file name `{}` must be a plain, non-hidden name", q.file));
    }
    if let Some(sha) = &q.sha256 {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!("{}: sha256 must be 64 lowercase hex digits", q.name));
        }
    }
    for s in &q.sources {
        match s {
            Source::PipChunks { packages, version, member_pattern } => {
                if packages.is_empty() || version.trim().is_empty() {
                    return Err(format!("{}: pip_chunks needs packages and a version", q.name));
                }
                if packages.len() > 1 && !member_pattern.contains("{N") {
                    return Err(format!(
                        "{}: member_pattern `{member_pattern}` has no {{NN}} or {{N}}",
                        q.name
                    ));
                }
                if q.file_size_bytes.is_none() || q.sha256.is_none() {
                    return Err(format!(
                        "{}: a pip_chunks source needs file_size_bytes and sha256 to check the assembly",
                        q.name
                    ));
                }
            }
            Source::Huggingface { repo, file, .. } => {
                if !repo.contains('/') || file.trim().is_empty() {
                    return Err(format!(
                        "{}: huggingface source needs owner/repo and file",
                        q.name
                    ));
                }
            }
        }
    }
    Ok(())
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// The default local model's entry.
pub fn default_model() -> &'static CatalogEntry {
    Catalog::builtin().get(DEFAULT_MODEL_ID).unwrap_or_else(|| {
        panic!("the built-in catalog lacks the default model {DEFAULT_MODEL_ID}")
    })
}

/// Throughput `agentgen bench` measured for one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Generated tokens per second.
    pub decode_tokens_per_s: f64,
    /// Prompt tokens processed per second.
    pub prompt_tokens_per_s: f64,
}

/// Bench results by catalog id: `{"models": {"<id>": {"decode_tokens_per_s": …, …}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// Results keyed by catalog id.
    pub models: BTreeMap<String, Measured>,
}

impl Measurements {
    /// The measurement for an entry, looked up by its id and then its aliases.
    pub fn for_entry(&self, entry: &CatalogEntry) -> Option<&Measured> {
        self.models
            .get(&entry.id)
            .or_else(|| self.models.iter().find(|(name, _)| entry.matches(name)).map(|(_, m)| m))
    }
}

/// Read a bench results file. Extra fields in it are ignored.
pub fn load_measurements(path: &Path) -> Result<Measurements, CatalogError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| CatalogError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|source| CatalogError::Json { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"
[[model]]
id = "m"
aliases = ["Em"]
family = "F"
parameters = "1B"
licence = "MIT"
kind = "chat"
chat = true
tools = false
llama_cpp_cpu = true
kv_bytes_per_token = 1000
verdict = "fine"
[[model.quantisations]]
name = "Q4_K_M"
file = "m.gguf"
approx_size_mb = 100
"#;

    #[test]
    fn builtin_parses_and_has_default() {
        let d = default_model();
        assert_eq!(d.id, DEFAULT_MODEL_ID);
        assert_eq!(d.quant(None).unwrap().file, crate::cache::DEFAULT_MODEL_FILE);
    }

    #[test]
    fn ram_needed_adds_kv_and_overhead() {
        let c = Catalog::from_toml_str(MINI).unwrap();
        let m = c.get("em").unwrap();
        let q = m.quant(Some("q4_k_m")).unwrap();
        assert_eq!(q.size_bytes(), Some((100_000_000, false)));
        assert_eq!(m.ram_needed(q, 10), Some(100_000_000 + 10_000 + RUNTIME_OVERHEAD_BYTES));
        assert!(m.best_fit(100_000_000 + 10_000 + RUNTIME_OVERHEAD_BYTES, 10).is_some());
        assert!(m.best_fit(100_000_000 + 10_000 + RUNTIME_OVERHEAD_BYTES, 11).is_none());
    }

    #[test]
    fn duplicate_alias_is_rejected() {
        let twice = format!("{MINI}\n{}", MINI.replace("id = \"m\"", "id = \"n\""));
        let err = Catalog::from_toml_str(&twice).unwrap_err();
        assert!(matches!(err, CatalogError::Invalid { ref model, .. } if model == "n"), "{err}");
    }

    #[test]
    fn unknown_field_and_bad_kind_are_parse_errors() {
        let extra = MINI.replace("verdict = \"fine\"", "verdict = \"fine\"\ncolour = 1");
        assert!(matches!(Catalog::from_toml_str(&extra), Err(CatalogError::Parse(_))));
        let kind = MINI.replace("kind = \"chat\"", "kind = \"oracle\"");
        assert!(matches!(Catalog::from_toml_str(&kind), Err(CatalogError::Parse(_))));
    }

    #[test]
    fn encoder_that_chats_is_rejected() {
        let enc = MINI.replace("kind = \"chat\"", "kind = \"encoder\"");
        assert!(matches!(Catalog::from_toml_str(&enc), Err(CatalogError::Invalid { .. })));
    }

    #[test]
    fn bad_sha_is_rejected() {
        let bad = MINI.replace("approx_size_mb = 100", "approx_size_mb = 100\nsha256 = \"ABC\"");
        assert!(matches!(Catalog::from_toml_str(&bad), Err(CatalogError::Invalid { .. })));
    }

    #[test]
    fn member_pattern_expands() {
        assert_eq!(expand_member_pattern("data/part{NN}.bin", 3), "data/part03.bin");
        assert_eq!(expand_member_pattern("data/part{NN}.bin", 12), "data/part12.bin");
        assert_eq!(expand_member_pattern("c{N}.bin", 7), "c7.bin");
    }

    #[test]
    fn measurements_load_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.json");
        std::fs::write(
            &path,
            r#"{"models":{"em":{"decode_tokens_per_s":12.5,"prompt_tokens_per_s":90.0}},"host":"x"}"#,
        )
        .unwrap();
        let ms = load_measurements(&path).unwrap();
        let c = Catalog::from_toml_str(MINI).unwrap();
        let m = ms.for_entry(c.get("m").unwrap()).unwrap();
        assert_eq!(m.decode_tokens_per_s, 12.5);
        std::fs::write(&path, "{").unwrap();
        let err = load_measurements(&path).unwrap_err();
        assert!(matches!(err, CatalogError::Json { .. }));
        assert!(err.to_string().contains("bench.json"));
        let err = load_measurements(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(err, CatalogError::Io { .. }));
    }
}
