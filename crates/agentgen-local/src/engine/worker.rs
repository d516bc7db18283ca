//! The inference thread: it loads the model, owns llama.cpp's backend handle, model and
//! context, and serves commands sent through a channel until every sender is gone and no
//! generation is left.

use std::num::NonZeroU32;
use std::path::Path;

use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};

use super::job::{special_token_texts, tokenize_segment, Command, LoadInfo, SharedStats};
use super::scheduler::Scheduler;
use super::{KvLayout, LocalConfig};
use crate::error::LocalError;

/// llama.cpp's process-wide backend: it may be initialised once per process, so every
/// engine shares it. Its logs go to `tracing` (target `llama-cpp-2`), never to stderr.
fn llama_backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            send_logs_to_tracing(LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Context(format!("llama.cpp backend: {e}")))
}

/// Starts the inference thread and waits until the model is loaded.
pub(crate) fn spawn(
    config: LocalConfig,
    threads: usize,
    stats: Arc<SharedStats>,
) -> Result<(Sender<Command>, LoadInfo, JoinHandle<()>), LocalError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("agentgen-llama".into())
        .spawn(move || run(&config, threads, &rx, &ready_tx, &stats))
        .map_err(|e| LocalError::Context(format!("cannot start the inference thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(info)) => Ok((tx, info, handle)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(LocalError::EngineGone),
    }
}

fn run(
    config: &LocalConfig,
    threads: usize,
    rx: &Receiver<Command>,
    ready: &SyncSender<Result<LoadInfo, LocalError>>,
    stats: &Arc<SharedStats>,
) {
    let loaded = llama_backend().and_then(|backend| {
        let model = load_model(backend, &config.model_path)?;
        Ok((backend, model))
    });
    let (backend, model) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let per_request =
        config.context_size.unwrap_or_else(|| model.n_ctx_train().min(super::DEFAULT_MAX_CONTEXT));
    let per_slot = config.kv_layout == KvLayout::PerSlot;
    // llama.cpp's context size is the whole KV cache; split, it gives each sequence an equal part.
    let n_ctx = if per_slot {
        u32::try_from(config.slots).ok().and_then(|s| per_request.checked_mul(s))
    } else {
        Some(per_request)
    };
    let Some(n_ctx_nz) = n_ctx.and_then(NonZeroU32::new) else {
        let _ = ready.send(Err(LocalError::Config(format!(
            "context_size must be at least 1, and slots × context_size must fit in 32 bits \
             (context_size {per_request}, slots {})",
            config.slots
        ))));
        return;
    };
    let threads = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
    // Flash attention splits one token's attention over a long context across threads, unlike a
    // batch's: where the kernels are otherwise exact, leave it off unless asked for.
    let invariant =
        super::exact::batch_invariant(backend, &model, config.model_path.clone(), threads);
    let flash_attention = match config.flash_attention {
        None if invariant => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        None => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        Some(true) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        Some(false) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    };
    let exact_batching = invariant && config.flash_attention != Some(true);
    // Drafts need their rejected tail dropped from the cache, which a recurrent model's state
    // cannot do.
    let lookup_max_draft = if model.is_recurrent() || model.is_hybrid() {
        0
    } else {
        config.lookup_max_draft.unwrap_or(if exact_batching {
            super::DEFAULT_LOOKUP_MAX_DRAFT
        } else {
            0
        })
    };
    let params = LlamaContextParams::default()
        .with_flash_attention_policy(flash_attention)
        .with_n_ctx(Some(n_ctx_nz))
        .with_n_batch(config.batch_size)
        .with_n_ubatch(config.batch_size)
        .with_n_seq_max(config.slots as u32)
        // Split: one KV stream per slot, attention spans only the slot's own cells. Unified: one
        // buffer, and the scheduler accounts for the cells every slot holds.
        .with_kv_unified(!per_slot)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(LocalError::Context(format!(
                "{e} (KV cache of {n_ctx_nz} tokens, {} layout)",
                config.kv_layout.as_str()
            ))));
            return;
        }
    };
    let vocab = model.vocab();
    let piece = |t: LlamaToken| {
        if t.0 < 0 {
            String::new()
        } else {
            String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
        }
    };
    // llama.cpp rounds each sequence's part up to a multiple of 256.
    let n_ctx = if per_slot { ctx.n_ctx() / config.slots as u32 } else { ctx.n_ctx() };
    let info = LoadInfo {
        n_ctx,
        kv_cells: ctx.n_ctx(),
        chat_template: model.meta_val_str("tokenizer.chat_template").ok(),
        bos_token: piece(vocab.bos()),
        eos_token: piece(vocab.eos()),
        special_tokens: special_token_texts(&model),
        exact_batching,
        lookup_max_draft,
    };
    tracing::info!(
        path = %config.model_path.display(),
        n_ctx = info.n_ctx,
        slots = config.slots,
        kv_layout = ?config.kv_layout,
        threads,
        exact_batching,
        lookup_max_draft,
        "local model loaded"
    );
    let mut scheduler =
        Scheduler::new(&model, ctx, config, lookup_max_draft, n_ctx as usize, Arc::clone(stats));
    if ready.send(Ok(info)).is_err() {
        return;
    }
    serve(&mut scheduler, &model, rx);
    tracing::debug!("inference thread stopping");
}

fn load_model(backend: &LlamaBackend, path: &Path) -> Result<LlamaModel, LocalError> {
    check_model_file(path)?;
    // A model without GPU layers: this build is CPU-only.
    let params = LlamaModelParams::default();
    LlamaModel::load_from_file(backend, path, &params).map_err(|e| LocalError::Load {
        path: path.to_path_buf(),
        reason: format!("llama.cpp rejected the file ({e}); it may be truncated or of an unsupported architecture"),
    })
}

/// The file must exist and start with the GGUF magic before llama.cpp sees it.
pub(crate) fn check_model_file(path: &Path) -> Result<(), LocalError> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LocalError::ModelMissing { path: path.to_path_buf() })
        }
        Err(e) => return Err(LocalError::Load { path: path.to_path_buf(), reason: e.to_string() }),
    };
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(LocalError::NotGguf {
            path: path.to_path_buf(),
            reason: "it is a directory".into(),
        });
    }
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(LocalError::NotGguf {
            path: path.to_path_buf(),
            reason: format!("it starts with {magic:02x?} instead of the GGUF magic"),
        }),
        Err(_) => Err(LocalError::NotGguf {
            path: path.to_path_buf(),
            reason: "it is shorter than a GGUF header".into(),
        }),
    }
}

/// The command loop: block for work when idle, otherwise take what arrived and run one
/// batched step.
fn serve(scheduler: &mut Scheduler<'_>, model: &LlamaModel, rx: &Receiver<Command>) {
    let mut senders_gone = false;
    loop {
        if scheduler.is_idle() {
            if senders_gone {
                return;
            }
            match rx.recv() {
                Ok(cmd) => handle(scheduler, model, cmd),
                Err(_) => return,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => handle(scheduler, model, cmd),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    senders_gone = true;
                    break;
                }
            }
        }
        scheduler.admit();
        scheduler.step();
    }
}

fn handle(scheduler: &mut Scheduler<'_>, model: &LlamaModel, cmd: Command) {
    match cmd {
        Command::Generate(job) => scheduler.enqueue(job),
        Command::Tokenize { segments, reply } => {
            let tokens = segments
                .iter()
                .map(|s| tokenize_segment(model, s).into_iter().map(|t| t.0).collect())
                .collect();
            let _ = reply.send(tokens);
        }
        Command::TokEnv { reply } => {
            let started = Instant::now();
            let env = llama_cpp_2::sampling::LlamaSampler::llguidance_tok_env(model);
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "built the llguidance token env"
            );
            let _ = reply.send(env);
        }
        #[cfg(feature = "fault-injection")]
        Command::Panic => panic!("a fault injected by a test"),
    }
}
