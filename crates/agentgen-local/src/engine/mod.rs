//! The in-process inference engine: [`LocalBackend`] runs a GGUF model with llama.cpp on a
//! dedicated thread and serves agentgen's [`ChatBackend`] trait.
//!
//! One inference thread owns llama.cpp's model and context (they never cross threads);
//! async callers send it jobs through a channel and read events back through a tokio channel.
//! The thread batches concurrent requests together, reuses cached prompt prefixes across
//! requests, and stops a request within one token when its caller goes away.

mod chat;
mod exact;
mod job;
mod lookup;
mod sampling;
mod scheduler;
mod supervisor;
mod text;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use agentgen_core::{
    BackendError, BackendInfo, Capabilities, ChatBackend, ChatMessage, ChatRequest, ChatResponse,
    ChatStream, FinishReason, Locality, Timings, Usage,
};
use async_trait::async_trait;
use futures::{Stream, StreamExt};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use tokio::sync::{mpsc, oneshot, OnceCell};

pub use sampling::GenerateOptions;

use crate::error::LocalError;
use crate::format::{ChatFormat, FormatOptions, PromptSegment, DEFAULT_GRAMMAR_CACHE_BYTES};
use job::{Command, Event, Job, SharedStats};

/// Requests prepared at once on blocking threads (see [`LocalBackend`]'s `prepare`).
const PREPARE_CONCURRENCY: usize = 4;

/// The context size used when the config leaves it open: the model's trained context, capped
/// here so the KV cache stays a modest amount of memory.
pub const DEFAULT_MAX_CONTEXT: u32 = 8192;

/// The Jinja template used when a GGUF carries none (ChatML).
const FALLBACK_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// How to load and run a local model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// The most tokens (prompt and answer) one request may hold. `None`: the model's trained
    /// context, at most [`DEFAULT_MAX_CONTEXT`]. How much KV cache that takes depends on
    /// [`kv_layout`](Self::kv_layout).
    pub context_size: Option<u32>,
    /// CPU threads; `None`: the number of physical cores.
    pub threads: Option<usize>,
    /// Requests served at once (KV-cache sequences); more queue. Default 4.
    pub slots: usize,
    /// How the slots share the KV cache. Default [`KvLayout::PerSlot`].
    pub kv_layout: KvLayout,
    /// Most tokens evaluated in one batch. Default 512.
    pub batch_size: u32,
    /// Flash attention: `None` leaves it off where the engine's batching is exact (see
    /// [`LocalBackend::exact_batching`]; flash attention would break that on long contexts),
    /// else lets llama.cpp decide (on where the CPU backend supports it).
    pub flash_attention: Option<bool>,
    /// The model id reported in responses; `None`: the file name without `.gguf`.
    pub model_id: Option<String>,
    /// Most `stop` strings one request may give (each is searched for after every token).
    /// Default [`DEFAULT_MAX_STOP_STRINGS`].
    pub max_stop_strings: usize,
    /// Longest `stop` string, in bytes. Default [`DEFAULT_MAX_STOP_LEN`].
    pub max_stop_len: usize,
    /// Bytes of grammar text cached of the tool and response schemas already checked to
    /// compile. Default [`DEFAULT_GRAMMAR_CACHE_BYTES`].
    pub grammar_cache_bytes: usize,
    /// Lookup decoding: the most tokens drafted in one step from earlier text of the same
    /// request (prompt and answer so far), all checked in one batch, keeping only what the
    /// request's own sampler picks. `None` (the default): [`DEFAULT_LOOKUP_MAX_DRAFT`] where the
    /// engine's batching is exact ([`LocalBackend::exact_batching`]), so the answer is bit for
    /// bit plain decoding's, else off; `Some(0)` off; `Some(n)` on either way (where batching is
    /// not exact, a near tie can then pick another greedy token than plain decoding). A request
    /// can also opt out ([`GenerateOptions::lookup`]).
    pub lookup_max_draft: Option<usize>,
}

/// The draft limit lookup decoding runs with when [`LocalConfig::lookup_max_draft`] is `None`
/// and batching is exact.
pub const DEFAULT_LOOKUP_MAX_DRAFT: usize = 16;

/// Default [`LocalConfig::max_stop_strings`].
pub const DEFAULT_MAX_STOP_STRINGS: usize = 16;
/// Default [`LocalConfig::max_stop_len`].
pub const DEFAULT_MAX_STOP_LEN: usize = 256;

impl LocalConfig {
    /// Defaults for this model file.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            context_size: None,
            threads: None,
            slots: 4,
            kv_layout: KvLayout::default(),
            batch_size: 512,
            flash_attention: None,
            model_id: None,
            max_stop_strings: DEFAULT_MAX_STOP_STRINGS,
            max_stop_len: DEFAULT_MAX_STOP_LEN,
            grammar_cache_bytes: DEFAULT_GRAMMAR_CACHE_BYTES,
            lookup_max_draft: None,
        }
    }

    /// Checks a request's `stop` list against [`max_stop_strings`](Self::max_stop_strings)
    /// and [`max_stop_len`](Self::max_stop_len).
    pub fn check_stop(&self, stop: &[String]) -> Result<(), LocalError> {
        if stop.len() > self.max_stop_strings {
            return Err(LocalError::TooManyStops {
                limit: self.max_stop_strings,
                actual: stop.len(),
            });
        }
        match stop.iter().map(String::len).max() {
            Some(longest) if longest > self.max_stop_len => {
                Err(LocalError::StopTooLong { limit: self.max_stop_len, actual: longest })
            }
            _ => Ok(()),
        }
    }
}

/// How the slots share llama.cpp's KV cache. Named `per-slot` and `shared` in text
/// ([`KvLayout::as_str`], [`FromStr`](std::str::FromStr)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KvLayout {
    /// Every slot has its own `context_size` cells (a llama.cpp KV stream of its own): a
    /// request attends over its own tokens only, so what other slots keep cached for later
    /// costs it nothing. KV memory: `slots × context_size` tokens. Concurrent requests decode
    /// in one pass when their slots are neighbours; the scheduler picks slots to keep them so.
    #[default]
    PerSlot,
    /// One pool of `context_size` cells for all slots: a quarter of the memory at four slots,
    /// and idle slots' caches are evicted (least recently used first) when a request needs
    /// their room. Every decode attends over every cell in use by any slot, so conversations
    /// cached in other slots slow each token down (about 5 % on the default model after a
    /// few thousand cached tokens).
    Shared,
}

impl KvLayout {
    /// `per-slot` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            KvLayout::PerSlot => "per-slot",
            KvLayout::Shared => "shared",
        }
    }
}

impl std::str::FromStr for KvLayout {
    type Err = LocalError;

    /// `per-slot` or `shared`; anything else is [`LocalError::Config`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [KvLayout::PerSlot, KvLayout::Shared].into_iter().find(|l| l.as_str() == s).ok_or_else(
            || LocalError::Config(format!("unknown KV layout `{s}` (expected per-slot or shared)")),
        )
    }
}

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Prompt tokens evaluated by the model since load.
    pub prompt_tokens_evaluated: u64,
    /// Prompt tokens served from the KV cache instead.
    pub prompt_tokens_cached: u64,
    /// Tokens generated.
    pub tokens_generated: u64,
    /// Requests that ran to their end (stop, length), not counting cancelled or failed ones.
    pub requests_finished: u64,
    /// Tokens lookup decoding drafted and evaluated.
    pub draft_tokens: u64,
    /// Drafted tokens that equalled the model's own choice.
    pub draft_accepted: u64,
    /// Slots serving a request right now.
    pub busy_slots: usize,
    /// Requests waiting for a slot.
    pub queue_depth: usize,
}

impl EngineStats {
    /// Share of prompt tokens served from the cache, 0–1.
    pub fn cache_hit_ratio(&self) -> f64 {
        let total = self.prompt_tokens_evaluated + self.prompt_tokens_cached;
        if total == 0 {
            0.0
        } else {
            self.prompt_tokens_cached as f64 / total as f64
        }
    }
}

/// Text generated from a raw prompt by [`LocalBackend::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The text, stop sequence excluded.
    pub text: String,
    /// Why it ended: `Stop` (end of turn or stop sequence) or `Length`.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// How long it took.
    pub timings: Timings,
}

/// A GGUF model served in-process. Cheap to clone: clones share one engine, which stops
/// once every clone and every running request are gone.
#[derive(Clone)]
pub struct LocalBackend {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<supervisor::EngineLink>,
    /// Bounds the requests prepared at once (template render, schema checks) on blocking threads.
    preparing: tokio::sync::Semaphore,
    info: BackendInfo,
    config: LocalConfig,
    model_size: u64,
    n_ctx: u32,
    kv_cells: u32,
    exact_batching: bool,
    lookup_max_draft: usize,
    format: Arc<ChatFormat>,
    stats: Arc<SharedStats>,
    parser_factory: OnceCell<Arc<ParserFactory>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("model", &self.inner.info.model)
            .field("path", &self.inner.config.model_path)
            .field("context_size", &self.inner.n_ctx)
            .finish_non_exhaustive()
    }
}

impl LocalBackend {
    /// Loads the model and starts its inference thread; blocks until the model is loaded.
    ///
    /// Errors: [`LocalError::ModelMissing`] when the file is absent, [`LocalError::NotGguf`]
    /// when it is not a GGUF, [`LocalError::Load`] when llama.cpp rejects it,
    /// [`LocalError::Context`] when the KV cache cannot be allocated.
    pub fn load(config: LocalConfig) -> Result<Self, LocalError> {
        if config.slots == 0 {
            return Err(LocalError::Config("slots must be at least 1".into()));
        }
        if config.batch_size == 0 {
            return Err(LocalError::Config("batch_size must be at least 1".into()));
        }
        worker::check_model_file(&config.model_path)?;
        let model_size = std::fs::metadata(&config.model_path).map(|m| m.len()).unwrap_or(0);
        let threads = config.threads.unwrap_or_else(num_cpus::get_physical);
        let stats = Arc::new(SharedStats::default());
        let (commands, info, thread) = worker::spawn(config.clone(), threads, Arc::clone(&stats))?;
        let engine = Arc::new(supervisor::EngineLink::new(commands));
        let restart =
            supervisor::Restart { config: config.clone(), threads, stats: Arc::clone(&stats) };
        supervisor::watch(Arc::downgrade(&engine), thread, restart);
        let template = info.chat_template.as_deref().unwrap_or_else(|| {
            tracing::warn!("the model has no chat template; using ChatML");
            FALLBACK_TEMPLATE
        });
        let format = ChatFormat::from_template(template, &info.bos_token, &info.eos_token)
            .and_then(|f| f.with_special_tokens(&info.special_tokens))
            .map_err(|e| LocalError::Template(e.to_string()))?;
        let options = FormatOptions {
            grammar_cache_bytes: config.grammar_cache_bytes,
            ..FormatOptions::default()
        };
        let format = format.with_options(options);
        let model = config.model_id.clone().unwrap_or_else(|| default_model_id(&config.model_path));
        let backend_info = BackendInfo {
            name: "local".into(),
            model,
            locality: Locality::Local,
            capabilities: Capabilities {
                tools: true,
                constrained_tool_calls: true,
                json_output: true,
                streaming: true,
                context_length: Some(info.n_ctx as usize),
                sampling: agentgen_core::SamplingSetting::ALL.to_vec(),
            },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                preparing: tokio::sync::Semaphore::new(PREPARE_CONCURRENCY),
                info: backend_info,
                config,
                model_size,
                n_ctx: info.n_ctx,
                kv_cells: info.kv_cells,
                exact_batching: info.exact_batching,
                lookup_max_draft: info.lookup_max_draft,
                format: Arc::new(format),
                stats,
                parser_factory: OnceCell::new(),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The GGUF file.
    pub fn model_path(&self) -> &Path {
        &self.inner.config.model_path
    }

    /// The GGUF file's size in bytes.
    pub fn model_size(&self) -> u64 {
        self.inner.model_size
    }

    /// The longest prompt plus answer one request can have, in tokens.
    pub fn context_size(&self) -> u32 {
        self.inner.n_ctx
    }

    /// The KV cache's size in tokens, all slots together: `slots × context_size` with
    /// [`KvLayout::PerSlot`], `context_size` with [`KvLayout::Shared`].
    pub fn kv_cache_tokens(&self) -> u64 {
        u64::from(self.inner.kv_cells)
    }

    /// Whether this engine computes a token's logits bit for bit the same alone and inside a
    /// batch of any size: measured at load on the model itself (without flash attention) and
    /// `false` when flash attention was asked for. Where it holds, a request's answer does not
    /// depend on what else runs beside it, and lookup decoding gives plain decoding's answer.
    /// llama.cpp's default CPU build does not hold it: its batch kernels (llamafile's tinyBLAS,
    /// repacked weights, tiled K-quants) sum in another order than its one-token ones.
    pub fn exact_batching(&self) -> bool {
        self.inner.exact_batching
    }

    /// The draft limit lookup decoding runs with (0: off), as resolved at load from
    /// [`LocalConfig::lookup_max_draft`].
    pub fn lookup_max_draft(&self) -> usize {
        self.inner.lookup_max_draft
    }

    /// The configuration the engine was loaded with.
    pub fn config(&self) -> &LocalConfig {
        &self.inner.config
    }

    /// The model's chat format (template rendering, tool-call parsing, constraints).
    pub fn chat_format(&self) -> &ChatFormat {
        &self.inner.format
    }

    /// The engine's counters now.
    pub fn stats(&self) -> EngineStats {
        let s = &self.inner.stats;
        EngineStats {
            prompt_tokens_evaluated: s.prompt_tokens_evaluated.load(Ordering::Relaxed),
            prompt_tokens_cached: s.prompt_tokens_cached.load(Ordering::Relaxed),
            tokens_generated: s.tokens_generated.load(Ordering::Relaxed),
            requests_finished: s.requests_finished.load(Ordering::Relaxed),
            draft_tokens: s.draft_tokens.load(Ordering::Relaxed),
            draft_accepted: s.draft_accepted.load(Ordering::Relaxed),
            busy_slots: s.busy_slots.load(Ordering::Relaxed),
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
        }
    }

    /// Token ids of each prompt segment, tokenized as the engine does (template text with
    /// control tokens, message text as plain text).
    pub async fn tokenize(
        &self,
        segments: Vec<PromptSegment>,
    ) -> Result<Vec<Vec<i32>>, BackendError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Tokenize { segments, reply })?;
        rx.await.map_err(|_| LocalError::EngineGone.into())
    }

    /// Generates from an already rendered prompt, optionally under an llguidance grammar.
    pub async fn generate(
        &self,
        prompt: Vec<PromptSegment>,
        options: GenerateOptions,
        grammar: Option<TopLevelGrammar>,
    ) -> Result<Generation, BackendError> {
        let mut events = self.submit(prompt, options, grammar).await?;
        let mut text = String::new();
        loop {
            match events.recv().await {
                Some(Event::Text(t)) => text.push_str(&t),
                Some(Event::Done(f)) => {
                    return Ok(Generation {
                        text,
                        finish_reason: f.finish_reason,
                        usage: f.usage,
                        timings: f.timings,
                    })
                }
                Some(Event::Error(e)) => return Err(e),
                None => return Err(LocalError::EngineGone.into()),
            }
        }
    }

    /// Like [`generate`](Self::generate), as a stream of text pieces ending with the
    /// finished [`Generation`] (whose `text` is the whole text).
    pub async fn generate_stream(
        &self,
        prompt: Vec<PromptSegment>,
        options: GenerateOptions,
        grammar: Option<TopLevelGrammar>,
    ) -> Result<
        impl Stream<Item = Result<GenerationEvent, BackendError>> + Send + 'static,
        BackendError,
    > {
        let events = self.submit(prompt, options, grammar).await?;
        Ok(futures::stream::unfold(
            (events, String::new(), false),
            |(mut events, mut text, done)| async move {
                if done {
                    return None;
                }
                let item = match events.recv().await {
                    Some(Event::Text(t)) => {
                        text.push_str(&t);
                        Ok(GenerationEvent::Text(t))
                    }
                    Some(Event::Done(f)) => {
                        let text = std::mem::take(&mut text);
                        let g = Generation {
                            text,
                            finish_reason: f.finish_reason,
                            usage: f.usage,
                            timings: f.timings,
                        };
                        return Some((Ok(GenerationEvent::Done(g)), (events, String::new(), true)));
                    }
                    Some(Event::Error(e)) => return Some((Err(e), (events, text, true))),
                    None => {
                        return Some((Err(LocalError::EngineGone.into()), (events, text, true)))
                    }
                };
                Some((item, (events, text, false)))
            },
        ))
    }

    /// Queues a job and returns its event channel.
    async fn submit(
        &self,
        prompt: Vec<PromptSegment>,
        options: GenerateOptions,
        grammar: Option<TopLevelGrammar>,
    ) -> Result<mpsc::UnboundedReceiver<Event>, BackendError> {
        let arrived = Instant::now();
        options.validate()?;
        self.inner.config.check_stop(&options.stop)?;
        let matcher = match grammar {
            Some(g) => Some(self.matcher(g).await?),
            None => None,
        };
        let (events, rx) = mpsc::unbounded_channel();
        self.send(Command::Generate(Box::new(Job { prompt, options, matcher, events, arrived })))?;
        Ok(rx)
    }

    fn send(&self, cmd: Command) -> Result<(), BackendError> {
        self.inner.engine.send(cmd).map_err(|_| LocalError::EngineGone.into())
    }

    /// Times the inference thread was restarted after a crash since load.
    pub fn engine_restarts(&self) -> u64 {
        self.inner.engine.restarts()
    }

    /// Makes the inference thread panic, as a bug in it would: for tests of the supervisor.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_engine_panic(&self) -> Result<(), BackendError> {
        self.send(Command::Panic)
    }

    /// Makes the next constrained token pick in this process panic inside the output
    /// constraint, as a bug in llguidance would: for tests that such a panic fails only that
    /// request.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_constraint_panic(&self) {
        sampling::fault::PANIC_IN_CONSTRAINT.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Renders and checks a request on a blocking thread (template rendering and schema
    /// compilation can take a while on a crafted request), at most
    /// [`PREPARE_CONCURRENCY`] at once.
    async fn prepare(
        &self,
        req: ChatRequest,
    ) -> Result<(ChatRequest, chat::Prepared), BackendError> {
        let _permit = self
            .inner
            .preparing
            .acquire()
            .await
            .map_err(|_| BackendError::from(LocalError::EngineGone))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            chat::prepare(&inner.format, &inner.config, &req).map(|prepared| (req, prepared))
        })
        .await
        .map_err(|e| BackendError::Internal(format!("preparing the request: {e}")))?
    }

    /// A matcher for this grammar, built against the model's vocabulary.
    async fn matcher(&self, grammar: TopLevelGrammar) -> Result<Matcher, BackendError> {
        let factory = self
            .inner
            .parser_factory
            .get_or_try_init(|| async {
                let (reply, rx) = oneshot::channel();
                self.send(Command::TokEnv { reply })?;
                let env = rx.await.map_err(|_| BackendError::from(LocalError::EngineGone))?;
                let factory = tokio::task::spawn_blocking(move || {
                    let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
                    factory.quiet();
                    Ok::<_, String>(Arc::new(factory))
                })
                .await
                .map_err(|e| BackendError::Internal(format!("building the grammar engine: {e}")))?
                .map_err(|e| BackendError::Internal(format!("building the grammar engine: {e}")))?;
                Ok::<_, BackendError>(factory)
            })
            .await?
            .clone();
        let matcher =
            tokio::task::spawn_blocking(move || Matcher::new(factory.create_parser(grammar)))
                .await
                .map_err(|e| {
                    BackendError::Internal(format!("compiling the output constraint: {e}"))
                })?;
        match matcher.get_error() {
            Some(e) => Err(BackendError::invalid_param(
                format!("the output constraint cannot be compiled: {e}"),
                "response_format",
            )),
            None => Ok(matcher),
        }
    }

    fn next_id(&self) -> String {
        format!("chatcmpl-local-{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// One item of [`LocalBackend::generate_stream`].
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// More text.
    Text(String),
    /// The end, with the whole text, usage and timings.
    Done(Generation),
}

fn default_model_id(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
        .unwrap_or_else(|| "local".into())
}

#[async_trait]
impl ChatBackend for LocalBackend {
    fn info(&self) -> &BackendInfo {
        &self.inner.info
    }

    fn health(&self) -> agentgen_core::BackendHealth {
        self.inner.engine.health()
    }

    async fn complete(&self, req: ChatRequest) -> Result<ChatResponse, BackendError> {
        let (req, prepared) = self.prepare(req).await?;
        let generation = self
            .generate(prepared.prompt.clone(), prepared.options.clone(), prepared.grammar.clone())
            .await?;
        chat::response(
            &self.inner.format,
            &req,
            &prepared,
            generation,
            self.next_id(),
            &self.inner.info.model,
        )
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, BackendError> {
        let (req, prepared) = self.prepare(req).await?;
        let events = self
            .submit(prepared.prompt.clone(), prepared.options.clone(), prepared.grammar.clone())
            .await?;
        let state = chat::StreamState::new(
            Arc::clone(&self.inner.format),
            req,
            prepared,
            events,
            self.next_id(),
            self.inner.info.model.clone(),
        );
        Ok(chat::into_stream(state).boxed())
    }

    async fn count_tokens(&self, messages: &[ChatMessage]) -> Result<Option<usize>, BackendError> {
        let segments = self.inner.format.render(&ChatRequest::new(messages.to_vec()))?;
        let tokens = self.tokenize(segments).await?;
        Ok(Some(tokens.iter().map(Vec::len).sum()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_layouts_read_back_from_their_names() {
        for layout in [KvLayout::PerSlot, KvLayout::Shared] {
            assert_eq!(layout.as_str().parse::<KvLayout>().unwrap(), layout);
        }
        let err = "sideways".parse::<KvLayout>().unwrap_err();
        assert!(matches!(err, LocalError::Config(ref m) if m.contains("sideways")), "{err}");
    }
}
