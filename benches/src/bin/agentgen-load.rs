//! `agentgen-load`: the hostile load run (`benches::load`) against `agentgen serve` in this
//! process on the real model. Prints the figures, writes `load.json` next to the bench results,
//! and exits non-zero when the server did not recover (slots or queue left busy, no answer
//! after the run, a 5xx other than 503, memory growth). `cargo xtask bench` runs it after the
//! benchmark: 10 s with `--quick` (CI), 60 s otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentgen_local::{LocalBackend, LocalConfig};
use agentgen_server::{ServeConfig, Server};
use clap::Parser;

/// Many hostile and normal clients at once against the HTTP server on the real model.
#[derive(Debug, Parser)]
#[command(name = "agentgen-load")]
struct Args {
    /// 10 seconds instead of 60.
    #[arg(long)]
    quick: bool,
    /// Seconds the clients keep sending (overrides --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// The engine's slots, also the server's concurrent generations.
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// The GGUF to run (default: $AGENTGEN_TEST_MODEL, else the default model in the cache).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Output folder (default: <workspace>/target/bench).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agentgen-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let model = match args.model {
        Some(p) => p,
        None => agentgen_models::cache::test_model_path()?,
    };
    let mut config = LocalConfig::new(&model);
    config.slots = args.slots.max(1);
    config.context_size = Some(2048);
    let backend = tokio::task::spawn_blocking(move || LocalBackend::load(config)).await??;
    // Under overload a request waits 10 s at most, then gets 503 + Retry-After: clients are
    // told to come back instead of hanging.
    let config = ServeConfig {
        max_concurrent: args.slots.max(1),
        queue_timeout: Duration::from_secs(10),
        ..ServeConfig::new("127.0.0.1", 0)
    };
    let server = Server::bind(config, None).await?;
    let base = format!("http://{}", server.local_addr()?);
    server.state().install_backend(Arc::new(backend))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let seconds = args.seconds.unwrap_or(if args.quick { 10 } else { 60 });
    eprintln!("agentgen-load: {} clients for {seconds} s against {base}", args.clients);
    let report = benches::load::run(&base, args.clients, Duration::from_secs(seconds)).await;
    let _ = stop.send(());
    serving.await??;
    println!("{}", report.render());
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("bench")
    });
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("load.json"), serde_json::to_string_pretty(&report)?)?;
    let problems = report.problems();
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("agentgen-load: FAIL: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
