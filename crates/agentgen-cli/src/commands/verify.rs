//! `agentgen verify-local URL`: checks from outside, with the kernel's records, that a server's
//! model runs on this machine and that the serving process is sealed off the network. The
//! server's API key, when it needs one, comes from the configuration (`server.api_key`,
//! `AGENTGEN_SERVER__API_KEY`). `--recompute` computes the challenge's answer here from the
//! verified GGUF and compares. Exit 0 only when every check passes.

use crate::cli::VerifyArgs;
use crate::config::Settings;
use crate::error::{CliError, CliResult};

/// Runs `agentgen verify-local`.
#[cfg(feature = "server")]
pub async fn run(args: &VerifyArgs, settings: &Settings) -> CliResult {
    use agentgen_server::verify::Outcome;
    use agentgen_server::{verify_local_with, VerifyOptions};

    let opts = VerifyOptions {
        api_key: settings.server.api_key.as_ref().map(|k| k.expose().to_owned()),
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        recompute: args.recompute.then(|| recompute(settings)),
        ..VerifyOptions::default()
    };
    let report = verify_local_with(&args.url, &opts).await;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for c in &report.checks {
            let mark = match c.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
            };
            outln!("{mark}  {:<18} {}", c.name, c.detail);
        }
        outln!(
            "{} ({} checks, {} ms)",
            if report.pass {
                "PASS: the server runs its model on this machine, sealed off the network"
            } else {
                "FAIL: the server is not shown to run its model on this machine, sealed"
            },
            report.checks.len(),
            report.elapsed_ms
        );
    }
    if report.pass {
        Ok(())
    } else {
        Err(CliError::NotLocal(report.reasons.join("; ")))
    }
}

/// Loads the verified GGUF in this process, with the engine settings `serve` uses (threads,
/// context, slots, KV layout: the same arithmetic), and answers the challenge greedily.
#[cfg(feature = "server")]
fn recompute(settings: &Settings) -> agentgen_server::Recompute {
    use agentgen_core::{ChatBackend, ChatMessage, ChatRequest};
    use agentgen_local::{LocalBackend, LocalConfig};
    use agentgen_server::{ChallengeAnswer, Recompute, RecomputeJob};

    use crate::config::KvLayoutSetting;
    let local = settings.local.clone();
    Recompute::new(move |job: RecomputeJob| {
        let local = local.clone();
        Box::pin(async move {
            let mut config = LocalConfig::new(&job.model_path);
            config.threads = local.threads;
            config.context_size = local.context_length;
            if let Some(slots) = local.slots {
                config.slots = slots;
            }
            if let Some(layout) = local.kv_layout {
                config.kv_layout = match layout {
                    KvLayoutSetting::PerSlot => agentgen_local::KvLayout::PerSlot,
                    KvLayoutSetting::Shared => agentgen_local::KvLayout::Shared,
                };
            }
            let backend = tokio::task::spawn_blocking(move || LocalBackend::load(config))
                .await
                .map_err(|e| format!("loading the model: {e}"))?
                .map_err(|e| format!("loading the model: {e}"))?;
            let request = ChatRequest::new(vec![ChatMessage::user(job.prompt)])
                .with_temperature(0.0)
                .with_max_tokens(job.max_tokens);
            let response = backend.complete(request).await.map_err(|e| e.to_string())?;
            Ok(ChallengeAnswer {
                text: response.message.text().unwrap_or_default().to_owned(),
                completion_tokens: response.usage.completion_tokens,
            })
        })
    })
}

/// Runs `agentgen verify-local`.
#[cfg(not(feature = "server"))]
pub async fn run(_args: &VerifyArgs, _settings: &Settings) -> CliResult {
    Err(CliError::FeatureMissing { feature: "server", what: "feature, which `verify-local` needs" })
}
