//! `agentgen serve`: the configured backend behind an OpenAI-compatible HTTP API. It binds
//! first (answering 503 on `/health` while the model loads), prints the address on stdout, then
//! loads the model and serves until Ctrl-C or SIGTERM. With `--sealed` (implied by
//! `--local-only`) the process seals itself once the model is loaded, before serving anything:
//! from then on it cannot open or connect a socket.

use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::error::{CliError, CliResult};

/// Runs `agentgen serve`.
#[cfg(feature = "server")]
pub async fn run(args: &ServeArgs, settings: &Settings) -> CliResult {
    use agentgen_server::{
        check_local_only, shutdown_signal, ModelAttestationSource, ServeConfig, ServeError, Server,
    };

    use crate::backends::{self, BackendChoice};
    use crate::config::BackendKind;

    let choice = BackendChoice::from_settings(settings);
    let locality = match choice.kind {
        BackendKind::Local => agentgen_core::Locality::Local,
        _ => agentgen_core::Locality::Remote {
            endpoint: settings.base_url.clone().unwrap_or_else(|| choice.kind.to_string()),
        },
    };
    check_local_only(settings.server.local_only, &choice.kind.to_string(), &locality)
        .map_err(|e| CliError::Config(e.to_string()))?;
    backends::preflight(settings, &choice)?;
    let attestation = match choice.kind {
        BackendKind::Local => {
            let model = backends::model::resolve(choice.model.as_deref())?;
            Some(ModelAttestationSource::file(model.path()))
        }
        _ => None,
    };
    let config = ServeConfig {
        host: settings.server.host.clone(),
        port: settings.server.port,
        api_key: settings.server.api_key.as_ref().map(|k| k.expose().to_owned()),
        local_only: settings.server.local_only,
        sealed: args.sealed || settings.server.local_only,
        cors_origins: args.cors_origins.clone(),
        allowed_hosts: args.allowed_hosts.clone(),
        ..ServeConfig::default()
    };
    let config = with_limits(config, &settings.server)?;
    let sealed = config.sealed;
    let server = Server::bind(config, attestation).await.map_err(|e| match e {
        ServeError::NonLoopbackWithoutKey { .. }
        | ServeError::EmptyApiKey
        | ServeError::InvalidConfig { .. }
        | ServeError::RemoteBackendRefused { .. } => {
            CliError::Config(format!("{e} (--api-key KEY)"))
        }
        ServeError::Seal(_) => CliError::Config(format!(
            "{e}; this server cannot be sealed here, so it does not start (drop --sealed and \
             --local-only to serve unsealed)"
        )),
        other => CliError::Failed(other.to_string()),
    })?;
    let addr = server.local_addr().map_err(|e| CliError::Failed(e.to_string()))?;
    say(format_args!(
        "agentgen serving on http://{addr}/v1 (loading the model; /health answers 503 until ready)"
    ));

    let state = server.state().clone();
    let no_pull = args.backend.no_pull;
    let load = async {
        match backends::build(settings, &choice, no_pull).await {
            Ok(backend) => {
                let model = backend.info().model.clone();
                if sealed && crate::telemetry::exporting() {
                    // The exporter's open connection would outlive the seal: end it first.
                    let _ = tokio::task::spawn_blocking(crate::telemetry::shutdown).await;
                    eprintln!(
                        "OpenTelemetry export stopped: a sealed server reaches no other machine"
                    );
                }
                if let Err(e) = state.install_backend(backend) {
                    return match e {
                        ServeError::Seal(_) => CliError::Failed(e.to_string()),
                        e => CliError::Config(e.to_string()),
                    };
                }
                if let Some(seal) = state.seal() {
                    say(format_args!(
                        "sealed ({}, {} us): this process can no longer open or connect sockets",
                        seal.mechanism.as_str(),
                        seal.install_micros
                    ));
                } else if sealed {
                    return CliError::Failed("--sealed: the server is not sealed".into());
                }
                say(format_args!("ready: model {model} on http://{addr}/v1"));
                std::future::pending::<CliError>().await
            }
            Err(e) => e,
        }
    };
    tokio::select! {
        result = server.run(shutdown_signal()) => {
            result.map_err(|e| CliError::Failed(e.to_string()))?;
            eprintln!("server stopped");
            Ok(())
        }
        err = load => Err(err),
    }
}

/// The server config with the `[server]` limits that are set.
#[cfg(feature = "server")]
fn with_limits(
    mut config: agentgen_server::ServeConfig,
    limits: &crate::config::ServerSettings,
) -> Result<agentgen_server::ServeConfig, CliError> {
    use std::time::Duration;
    let seconds = |name: &str, value: Option<f64>, into: &mut Duration| -> Result<(), CliError> {
        if let Some(s) = value {
            *into = Duration::try_from_secs_f64(s).map_err(|_| {
                CliError::Config(format!("[server] {name} = {s}: not a number of seconds"))
            })?;
        }
        Ok(())
    };
    seconds("header_timeout_s", limits.header_timeout_s, &mut config.header_timeout)?;
    seconds("body_timeout_s", limits.body_timeout_s, &mut config.body_timeout)?;
    seconds("idle_timeout_s", limits.idle_timeout_s, &mut config.idle_timeout)?;
    seconds("queue_timeout_s", limits.queue_timeout_s, &mut config.queue_timeout)?;
    seconds(
        "write_stall_timeout_s",
        limits.write_stall_timeout_s,
        &mut config.write_stall_timeout,
    )?;
    config.max_connections = limits.max_connections.unwrap_or(config.max_connections);
    config.max_queue = limits.max_queue.unwrap_or(config.max_queue);
    config.body_limit_bytes = limits.body_limit_bytes.unwrap_or(config.body_limit_bytes);
    config.validate().map_err(|e| CliError::Config(format!("[server]: {e}")))?;
    Ok(config)
}

/// A status line on stdout; a closed stdout must not stop the server.
#[cfg(feature = "server")]
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Runs `agentgen serve`.
#[cfg(not(feature = "server"))]
pub async fn run(_args: &ServeArgs, _settings: &Settings) -> CliResult {
    Err(CliError::FeatureMissing { feature: "server", what: "feature, which `serve` needs" })
}
