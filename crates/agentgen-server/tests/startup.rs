//! Refusals at start: `--local-only` with a remote backend, a non-loopback bind without a key.

mod common;

use std::sync::Arc;

use agentgen_core::Locality;
use agentgen_server::{serve, AppState, ServeConfig, ServeError, Server};
use common::Scripted;

fn remote() -> Arc<Scripted> {
    Arc::new(Scripted::new(Locality::Remote {
        endpoint: "https://api.example.test/openai/v1".into(),
    }))
}

#[tokio::test]
async fn local_only_refuses_a_remote_backend() {
    let config = ServeConfig { port: 0, local_only: true, ..ServeConfig::default() };
    let err = serve(config.clone(), remote(), None, std::future::pending()).await.unwrap_err();
    match err {
        ServeError::RemoteBackendRefused { backend, endpoint } => {
            assert_eq!(backend, "scripted");
            assert!(endpoint.contains("api.example.test"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The same through the two-step start.
    let state = AppState::loading(&config, None);
    assert!(matches!(
        state.install_backend(remote()),
        Err(ServeError::RemoteBackendRefused { .. })
    ));
    assert!(state.backend().is_none());
    // And a local backend is fine.
    state.install_backend(Arc::new(Scripted::local())).unwrap();
    assert!(matches!(
        state.install_backend(Arc::new(Scripted::local())),
        Err(ServeError::BackendAlreadySet)
    ));
}

#[tokio::test]
async fn without_local_only_a_remote_backend_is_served_and_attested_remote() {
    let srv = common::TestServer::local(remote()).await;
    let att: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/v1/locality", srv.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(att["locality"]["kind"], "remote");
    assert_eq!(att["remote_backend_configured"], true);
    let report = agentgen_server::verify_local(&srv.url).await;
    assert!(!report.pass);
    assert!(report.reasons.iter().any(|r| r.starts_with("locality")), "{:?}", report.reasons);
    assert!(report.reasons.iter().any(|r| r.starts_with("remote_backend")), "{:?}", report.reasons);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn a_non_loopback_bind_needs_an_api_key() {
    let config = ServeConfig { host: "0.0.0.0".into(), port: 0, ..ServeConfig::default() };
    let err = Server::bind(config.clone(), None).await.unwrap_err();
    assert!(matches!(err, ServeError::NonLoopbackWithoutKey { .. }), "{err:?}");
    let with_key = ServeConfig { api_key: Some("sk-1".into()), ..config.clone() };
    let server = Server::bind(with_key, None).await.unwrap();
    assert!(server.local_addr().unwrap().ip().is_unspecified());
    let empty_key = ServeConfig { api_key: Some("  ".into()), ..config };
    assert!(matches!(Server::bind(empty_key, None).await.unwrap_err(), ServeError::EmptyApiKey));
}

#[tokio::test]
async fn loopback_binds_without_a_key() {
    for host in ["127.0.0.1", "localhost"] {
        let config = ServeConfig { host: host.into(), port: 0, ..ServeConfig::default() };
        let server = Server::bind(config, None).await.unwrap();
        assert!(server.local_addr().unwrap().ip().is_loopback());
    }
}
