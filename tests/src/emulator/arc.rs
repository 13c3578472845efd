//! An Azure Arc-enabled server's managed identity endpoint (the agent's HIMDS), on its own plain
//! HTTP listener (`127.0.0.1:40342` in a test network namespace), as documented in
//! <https://learn.microsoft.com/en-us/azure/azure-arc/servers/managed-identity-authentication>:
//! `GET /metadata/identity/oauth2/token?api-version=2020-06-01&resource=…` with `Metadata: true`
//! is answered 401 with `WWW-Authenticate: Basic realm=<path of a .key file>`, the agent having
//! written a new secret into that file in its token folder (readable by root and the `himds`
//! group); the same request with `Authorization: Basic <the file's content>` gets the token, in
//! IMDS's format. Arc has only the system-assigned identity: a request naming another is refused
//! (the refusal's wording is a guess).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::lock;
use super::model::EndpointKind;
use super::server::{Form, json};
use super::state::{ConnCtl, Shared};

/// The agent: the emulator's state, its token folder, and the keys it has handed out.
struct Agent {
    shared: Arc<Shared>,
    folder: PathBuf,
}

/// The routes of the agent's listener.
pub(crate) fn router(shared: Arc<Shared>, folder: PathBuf) -> axum::Router {
    let agent = Arc::new(Agent {
        shared: Arc::clone(&shared),
        folder,
    });
    let router = axum::Router::new()
        .route("/metadata/identity/oauth2/token", get(token))
        .fallback(|| async { StatusCode::NOT_FOUND });
    super::journal::journaled(router, &shared, "arc").with_state(agent)
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    json(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

async fn token(
    State(agent): State<Arc<Agent>>,
    Extension(conn): Extension<ConnCtl>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = Form::parse(query.unwrap_or_default().as_bytes());
    if let Some(faulted) = agent.shared.enter(EndpointKind::Arc, "system", &conn).await {
        return faulted;
    }
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    if !metadata.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if ["client_id", "object_id", "msi_res_id", "mi_res_id"]
        .iter()
        .any(|k| query.get(k).is_some())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "User-assigned managed identities are not supported on Azure Arc-enabled servers",
        );
    }
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::trim);
    match offered {
        Some(key) if lock(&agent.shared.arc_keys).iter().any(|k| k == key) => {
            super::entra::arc_answer(&agent.shared, &headers, &query)
        }
        _ => challenge(&agent),
    }
}

/// A new key in a new file of the token folder, and the 401 that names it.
fn challenge(agent: &Agent) -> Response {
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let path = agent.folder.join(format!("{}.key", uuid::Uuid::new_v4()));
    let written = std::fs::write(&path, &key)
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)));
    if let Err(e) = written {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unknown_error",
            &format!("cannot write {}: {e}", path.display()),
        );
    }
    lock(&agent.shared.arc_keys).push(key);
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Use the key in the file named by the WWW-Authenticate header",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm={}", path.display())) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}
