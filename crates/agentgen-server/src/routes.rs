//! The router: routes, authentication, browser defences, metrics, body limit and CORS.

use agentgen_core::openai::{ModelList, ModelObject};
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::attest::Attestation;
use crate::chat::{chat_completions, model_matches};
use crate::error::ApiError;
use crate::state::AppState;

/// The API as an axum router over this state.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/locality", get(locality))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(state.inner.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), crate::guard::check_request));
    if let Some(cors) = cors_layer(&state.inner.cors_origins) {
        // Outside the guard: a preflight (OPTIONS) from an allowed origin is answered here.
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(middleware::from_fn(crate::trace::trace_request))
        .with_state(state)
}

/// CORS for the configured origins (`*`: any), or none when no origin is configured.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    Some(CorsLayer::new().allow_origin(allow).allow_methods(Any).allow_headers(Any))
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("Method not allowed for {}", uri.path()),
    )
    .with_code("method_not_allowed")
}

/// Counts every answered request by route and status.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    state.metrics().record_request(&route, resp.status().as_u16());
    resp
}

/// Checks the API key on every route but `/health`.
async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.inner.api_key.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    match presented_key(req.headers()) {
        Some(key) if keys_match(key, expected) => next.run(req).await,
        Some(_) => ApiError::unauthorized("Incorrect API key provided.").into_response(),
        None => ApiError::unauthorized(
            "No API key provided: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`.",
        )
        .into_response(),
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim());
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Compares digests in constant time, so neither content nor length leaks through timing.
fn keys_match(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

fn model_object(state: &AppState, id: &str) -> ModelObject {
    ModelObject {
        id: id.to_owned(),
        object: "model".to_owned(),
        created: state.inner.started,
        owned_by: Some("agentgen".to_owned()),
        context_window: None,
        active: None,
        meta: None,
    }
}

async fn list_models(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let backend = state.ready_backend()?;
    let info = backend.info();
    let mut model = model_object(&state, &info.model);
    model.meta = info.capabilities.context_length.map(|ctx| json!({"n_ctx": ctx}));
    Ok(Json(ModelList { object: "list".to_owned(), data: vec![model] }))
}

async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let backend = state.ready_backend()?;
    if !model_matches(&state, backend.as_ref(), &id) {
        return Err(ApiError::model_not_found(&id));
    }
    Ok(Json(model_object(&state, &backend.info().model)))
}

async fn health(State(state): State<AppState>) -> Response {
    // Loading, failed to load, or a backend that says it is down: the same 503 a request gets.
    if let Err(e) = state.ready_backend() {
        return e.into_response();
    }
    let busy = state.metrics().busy_slots();
    Json(json!({
        "status": "ok",
        "slots_idle": state.inner.total_slots.saturating_sub(busy),
        "slots_processing": busy,
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics().render(state.inner.total_slots);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn locality(State(state): State<AppState>) -> Result<Json<Attestation>, ApiError> {
    let backend = state.ready_backend()?;
    let info = backend.info();
    let (model_path, digest) = match &state.inner.attestation {
        Some(attested) => {
            let mut rx = attested.rx.clone();
            let digest = rx
                .wait_for(Option::is_some)
                .await
                .map(|d| d.clone().unwrap_or_else(|| Err("the model is not hashed yet".into())))
                .unwrap_or_else(|_| Err("the model hash task stopped".into()));
            let path = std::path::absolute(&attested.source.model_path)
                .unwrap_or_else(|_| attested.source.model_path.clone());
            (Some(path.display().to_string()), Some(digest))
        }
        None => (None, None),
    };
    let (model_size, model_sha256, model_hash_error, model_mapped) = match digest {
        Some(Ok(d)) => (Some(d.digest.size), Some(d.digest.sha256), None, d.mapped),
        Some(Err(e)) => (None, None, Some(e), false),
        None => (None, None, None, false),
    };
    Ok(Json(Attestation {
        locality: info.locality.clone(),
        backend: info.name.clone(),
        model: info.model.clone(),
        model_path,
        model_size,
        model_sha256,
        model_hash_error,
        model_mapped,
        seal: state.seal().cloned(),
        pid: std::process::id(),
        hostname: crate::attest::hostname(),
        bind_addresses: state.inner.bind_addresses.get().cloned().unwrap_or_default(),
        remote_backend_configured: !info.locality.is_local(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer sk-1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("sk-1"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "sk-2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("sk-2"));
        assert!(keys_match("sk-2", "sk-2"));
        assert!(!keys_match("sk-2", "sk-22"));
    }
}
