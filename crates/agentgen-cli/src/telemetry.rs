//! Logs and traces. Logs go to stderr (`RUST_LOG`, `-v`, `-q`). Traces — the GenAI spans of
//! `agentgen_core::telemetry` and the server's request spans — are exported over OTLP/HTTP
//! (protobuf) only when an endpoint is set: `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's
//! base URL; `/v1/traces` is appended) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL).
//! Without one no exporter, no OpenTelemetry layer and no export thread exist, and the spans
//! are filtered out where they are created.
//!
//! `OTEL_SERVICE_NAME` names the service (default `agentgen`); `OTEL_RESOURCE_ATTRIBUTES` and
//! `OTEL_EXPORTER_OTLP_HEADERS` work as everywhere else. Message contents, tool arguments and
//! tool results are exported only with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
//! W3C `traceparent` is the propagation format (the server reads it, the Groq client sends it).

//!
//! Export needs the `otel` feature (on by default); a build without it warns when an endpoint
//! is set and exports nothing.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::TelemetrySettings;
use crate::key_trust::Origin;

/// The service name when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "agentgen";

/// The OTLP settings found in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub struct OtlpSettings {
    /// The traces URL from `[telemetry] otlp_endpoint`; `None`: the exporter reads the
    /// `OTEL_EXPORTER_OTLP_*` variables.
    pub traces_url: Option<String>,
    /// The service name.
    pub service_name: String,
    /// Whether message contents go into spans.
    pub capture_content: bool,
}

impl OtlpSettings {
    /// `Ok(Some)` when an OTLP endpoint is set: in `env` (a lookup like [`std::env::var`]),
    /// else in `[telemetry]`. `Err` says why a configured endpoint is not used: one only
    /// `./agentgen.toml` sets (a cloned project must not send a run's traces elsewhere).
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        config: &TelemetrySettings,
        origin: Origin,
    ) -> Result<Option<Self>, String> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let from_env = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let traces_url = match (from_env, config.otlp_endpoint.as_deref().map(str::trim)) {
            (Some(_), _) => None,
            (None, None | Some("")) => return Ok(None),
            (None, Some(_)) if origin == Origin::ProjectFile => {
                return Err("[telemetry] otlp_endpoint in ./agentgen.toml is ignored: set it in                             your own config file or OTEL_EXPORTER_OTLP_ENDPOINT"
                    .into())
            }
            (None, Some(base)) => Some(format!("{}/v1/traces", base.trim_end_matches('/'))),
        };
        let capture = match set("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") {
            Some(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"),
            None => config.capture_content,
        };
        let service_name = set("OTEL_SERVICE_NAME")
            .or_else(|| config.service_name.clone().filter(|n| !n.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
        Ok(Some(Self { traces_url, service_name, capture_content: capture }))
    }
}

/// Installs the global subscriber: logs to stderr at `RUST_LOG` when set, else warn (info with
/// -v, debug -vv, trace -vvv, error with -q); plus the OTLP exporter when the environment or
/// `[telemetry]` (with where it came from) sets an endpoint. An exporter that cannot be built
/// is reported on stderr and left out.
pub fn init(verbose: u8, quiet: bool, config: Option<(&TelemetrySettings, Origin)>) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(level),
    };
    let ansi = std::io::stderr().is_terminal();
    let (config, origin) = match config {
        Some((config, origin)) => (config.clone(), origin),
        None => (TelemetrySettings::default(), Origin::Default),
    };
    let resolved = OtlpSettings::resolve(|k| std::env::var(k).ok(), &config, origin);
    let (resolved, failure) = match resolved {
        Ok(found) => (found, None),
        Err(why) => (None, Some(why)),
    };
    let failure = match resolved {
        #[cfg(feature = "otel")]
        Some(settings) => {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            use tracing_subscriber::Layer;
            // Each layer filters for itself: the logs keep their level, the exporter takes
            // agentgen's spans whatever the log level.
            let logs = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_target(verbose >= 2)
                .with_filter(filter);
            let registry = tracing_subscriber::registry().with(logs);
            match otlp::layer(&settings) {
                Ok(otel) => {
                    registry.with(otel).init();
                    failure
                }
                Err(e) => {
                    registry.init();
                    Some(format!("OpenTelemetry export is off: {e}"))
                }
            }
        }
        found => {
            // No exporter: one global filter, so spans and events below the log level are
            // never even built.
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_target(verbose >= 2)
                .init();
            match found {
                Some(_) => Some(
                    "OpenTelemetry export is off: this agentgen is built without the `otel` \
                     feature"
                        .to_owned(),
                ),
                None => failure,
            }
        }
    };
    if let Some(why) = failure {
        tracing::warn!("{why}");
    }
}

/// Flushes and stops the exporter, if one runs: every finished span is sent first (within the
/// export timeout). Later spans go nowhere.
pub fn shutdown() {
    #[cfg(feature = "otel")]
    otlp::shutdown();
}

/// Whether spans are being exported.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub fn exporting() -> bool {
    #[cfg(feature = "otel")]
    return otlp::exporting();
    #[cfg(not(feature = "otel"))]
    false
}

/// The exporter: an OpenTelemetry layer over an OTLP/HTTP batch exporter.
#[cfg(feature = "otel")]
mod otlp {
    use std::sync::{Mutex, PoisonError};
    use std::time::Duration;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::Layer;

    use super::OtlpSettings;

    /// How long one export may take.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The most bytes of a collector's answer that are read.
    const MAX_ANSWER_BYTES: usize = 64 * 1024;

    /// The tracer provider while exporting; taken by [`shutdown`].
    static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

    /// See [`super::shutdown`].
    pub fn shutdown() {
        let provider = PROVIDER.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(provider) = provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!("OpenTelemetry export did not finish: {e}");
            }
        }
    }

    /// See [`super::exporting`].
    pub fn exporting() -> bool {
        PROVIDER.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// The OpenTelemetry layer: the spans of agentgen's crates at info level and above, batched
    /// and exported on a thread of their own.
    pub fn layer<S>(settings: &OtlpSettings) -> Result<impl Layer<S>, String>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let client = ExportClient::new().map_err(|e| format!("no HTTP client: {e}"))?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(client);
        if let Some(url) = &settings.traces_url {
            exporter = exporter.with_endpoint(url.clone());
        }
        let exporter = exporter.build().map_err(|e| e.to_string())?;
        let resource = Resource::builder().with_service_name(settings.service_name.clone()).build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("agentgen");
        *PROVIDER.lock().unwrap_or_else(PoisonError::into_inner) = Some(provider);
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        agentgen_core::telemetry::set_capture_content(settings.capture_content);
        // A target matches by prefix: `agentgen` is every agentgen crate (and this binary), whose
        // info events become events of the span they happen in. Other crates' spans stay out.
        let spans = Targets::new().with_target("agentgen", LevelFilter::INFO);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(spans);
        Ok(layer)
    }

    /// The exporter's HTTP client: the workspace's reqwest (rustls, so `https://` collectors
    /// work) on a one-thread runtime of its own, since the batch exporter sends from a plain
    /// thread. Answers are read up to [`MAX_ANSWER_BYTES`].
    #[derive(Debug)]
    struct ExportClient {
        client: reqwest::Client,
        runtime: Option<tokio::runtime::Runtime>,
    }

    impl ExportClient {
        fn new() -> std::io::Result<Self> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-export")
                .enable_all()
                .build()?;
            let client = reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(std::io::Error::other)?;
            Ok(Self { client, runtime: Some(runtime) })
        }
    }

    impl Drop for ExportClient {
        fn drop(&mut self) {
            // Dropped wherever the exporter ends, perhaps inside another runtime: never block.
            if let Some(rt) = self.runtime.take() {
                rt.shutdown_background();
            }
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for ExportClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let runtime = self.runtime.as_ref().ok_or("the export client is shut down")?;
            let (parts, body) = request.into_parts();
            let client = self.client.clone();
            let request = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .build()?;
            let answer = runtime
                .spawn(async move {
                    // Sent from inside the runtime: reqwest's timers need one.
                    let mut resp = client.execute(request).await?;
                    let status = resp.status();
                    let mut body = Vec::new();
                    while let Some(chunk) = resp.chunk().await? {
                        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    Ok::<_, reqwest::Error>((status, body))
                })
                .await?;
            let (status, body) = answer?;
            let mut out = Response::new(Bytes::from(body));
            *out.status_mut() = status;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn resolve(
        pairs: &[(&str, &str)],
        config: &TelemetrySettings,
        origin: Origin,
    ) -> Result<Option<OtlpSettings>, String> {
        OtlpSettings::resolve(env(pairs), config, origin)
    }

    fn on(url: Option<&str>, service: &str, capture: bool) -> Result<Option<OtlpSettings>, String> {
        Ok(Some(OtlpSettings {
            traces_url: url.map(str::to_owned),
            service_name: service.into(),
            capture_content: capture,
        }))
    }

    #[test]
    fn an_endpoint_turns_export_on_and_nothing_else_does() {
        let none = TelemetrySettings::default();
        let user = Origin::UserFile;
        assert_eq!(resolve(&[], &none, user), Ok(None));
        assert_eq!(resolve(&[("OTEL_SERVICE_NAME", "x")], &none, user), Ok(None));
        assert_eq!(resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")], &none, user), Ok(None));
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        assert_eq!(resolve(&base, &none, user), on(None, "agentgen", false));
        let traces = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"),
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),
        ];
        assert_eq!(resolve(&traces, &none, user), on(None, "svc", true));
        let disabled = [base[0], ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(resolve(&disabled, &none, user), Ok(None));
    }

    #[test]
    fn the_config_file_endpoint_counts_unless_a_project_file_set_it() {
        let config = TelemetrySettings {
            otlp_endpoint: Some("http://collector:4318/".into()),
            service_name: Some("mine".into()),
            capture_content: true,
        };
        let url = Some("http://collector:4318/v1/traces");
        assert_eq!(resolve(&[], &config, Origin::UserFile), on(url, "mine", true));
        assert_eq!(resolve(&[], &config, Origin::Env), on(url, "mine", true));
        assert!(resolve(&[], &config, Origin::ProjectFile).is_err());
        // The environment wins: its endpoint (read by the exporter), name and capture.
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false"),
        ];
        assert_eq!(resolve(&env, &config, Origin::ProjectFile), on(None, "svc", false));
    }
}
