//! Serves a GGUF model with the in-process engine on an OpenAI-compatible API.
//!
//! `cargo run -p agentgen-server --example serve_local -- [--model PATH] [--host H] [--port P] [--api-key K]`
//!
//! Without `--model` it serves the test model from the model cache. The server answers
//! `/health` with 503 while the model loads; it prints its URL on stdout once listening.

use std::sync::Arc;

use agentgen_local::{LocalBackend, LocalConfig};
use agentgen_server::{shutdown_signal, ModelAttestationSource, ServeConfig, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter("info")
        .init();
    let mut config = ServeConfig::default();
    let mut model = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => model = Some(std::path::PathBuf::from(value()?)),
            "--host" => config.host = value()?,
            "--port" => config.port = value()?.parse()?,
            "--api-key" => config.api_key = Some(value()?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let model = match model {
        Some(m) => m,
        None => agentgen_models::cache::test_model_path()?,
    };
    let local = LocalConfig::new(&model);
    config.max_concurrent = local.slots;
    let server = Server::bind(config, Some(ModelAttestationSource::file(&model))).await?;
    println!("http://{}", server.local_addr()?);
    let state = server.state().clone();
    let running = tokio::spawn(server.run(shutdown_signal()));
    match tokio::task::spawn_blocking(move || LocalBackend::load(local)).await? {
        Ok(backend) => state.install_backend(Arc::new(backend))?,
        Err(e) => {
            tracing::error!("cannot load {}: {e}", model.display());
            state.fail_loading(e.to_string());
        }
    }
    running.await??;
    Ok(())
}
