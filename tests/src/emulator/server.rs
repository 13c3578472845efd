//! Listeners, per-connection serving, routing and the `/_emulator/…` control endpoints.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::lock;
use super::model::{Counters, Fault};
use super::state::{ConnCtl, Shared};
use super::{acr, discovery, entra, host, journal, oidc};

/// Every route of the HTTPS port.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let router = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/common/discovery/instance", get(discovery::instance))
        .route("/msi/token", get(entra::app_service))
        .route("/metadata/identity/oauth2/token", get(entra::imds))
        .route("/v2", any(acr::v2))
        .route("/v2/", any(acr::v2))
        .route("/v2/{*rest}", any(acr::v2))
        .route("/oauth2/exchange", post(acr::exchange))
        .route("/oauth2/token", get(acr::token).post(acr::token))
        .route("/actions/{job}/idtoken", get(oidc::token))
        .route("/pipelines/{job}/oidctoken", post(oidc::token))
        .route(
            "/_emulator/counters",
            get(counters_get).delete(counters_reset),
        )
        .route("/_emulator/faults", post(faults_add).delete(faults_clear))
        .fallback(not_found);
    journal::journaled(router, &shared, "https").with_state(shared)
}

/// The routes of a plain HTTP IMDS listener.
pub(crate) fn imds_router(shared: Arc<Shared>) -> Router {
    let router = Router::new()
        .route("/metadata/identity/oauth2/token", get(entra::imds))
        .fallback(not_found);
    journal::journaled(router, &shared, "imds").with_state(shared)
}

/// Accept TLS connections forever.
pub(crate) async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            // A failed handshake is the client's business (e.g. an untrusted CA test).
            if let Ok(tls) = acceptor.accept(tcp).await {
                serve_connection(tls, router).await;
            }
        });
    }
}

/// Accept plain HTTP connections forever.
pub(crate) async fn serve_plain(listener: TcpListener, router: Router) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve_connection(tcp, router.clone()));
    }
}

/// Serve HTTP/1.1 on one connection until it ends or a fault asks to drop it.
async fn serve_connection<I>(io: I, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctl = ConnCtl::default();
    let kill = Arc::clone(&ctl.0);
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ctl.clone());
        let mut router = router.clone();
        tower_service::Service::call(&mut router, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        // Dropping the connection future closes the socket without an answer.
        () = kill.notified() => {}
    }
}

/// The request's host as the client addressed it (`Host`, else the URI authority), normalized.
pub(crate) fn request_host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .map(|h| host::normalize(&h))
        .unwrap_or_default()
}

/// `application/x-www-form-urlencoded` pairs (a body or a query), repeated keys kept.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(raw: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`, if present and not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `key`.
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.counters).record(None, "");
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

async fn counters_get(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot: Counters = lock(&shared.counters).clone();
    match serde_json::to_value(&snapshot) {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn counters_reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    *lock(&shared.counters) = Counters::default();
    StatusCode::NO_CONTENT
}

/// One fault or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultBody {
    One(Fault),
    Many(Vec<Fault>),
}

async fn faults_add(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultBody>(&body) {
        Ok(FaultBody::One(f)) => lock(&shared.faults).push(f),
        Ok(FaultBody::Many(fs)) => lock(&shared.faults).extend(fs),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid fault list: {e}\n"),
            )
                .into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn faults_clear(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.faults).clear();
    StatusCode::NO_CONTENT
}

/// Turn a handler's result into a response when both arms are responses.
pub(crate) fn either(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}
