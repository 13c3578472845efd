//! The request journal: every request any listener of the emulator received, with the
//! parameters that choose an identity and never a secret.
//!
//! The differential tests run two credential providers against one emulator and compare what
//! each asked for: which managed identity (`client_id`, `msi_res_id`, `object_id`), which app in
//! which tenant (`client_id` and the path's tenant), which scope or resource, which grant. A
//! token a request carries (the Entra token of an exchange, a client assertion) is described by
//! its non-secret claims (`appid`, `tid`, `aud`, `iss`, `sub`), never kept.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::crypto::Jwt;
use super::lock;
use super::server::{Form, request_host};

/// Form and query fields kept as they are: they choose an identity, a scope or a grant.
const KEPT: &[&str] = &[
    "api-version",
    "client_assertion_type",
    "client_id",
    "grant_type",
    "mi_res_id",
    "msi_res_id",
    "object_id",
    "principal_id",
    "resource",
    "scope",
    "service",
    "tenant",
];

/// Fields that carry a token: only its non-secret claims are kept, under `<field>.<claim>`.
const TOKENS: &[&str] = &["access_token", "client_assertion", "refresh_token"];

/// Claims kept of a token a request carries.
const CLAIMS: &[&str] = &["appid", "aud", "iss", "sub", "tid"];

/// Bodies larger than this are not read for the journal (no client sends one).
const BODY_LIMIT: usize = 1 << 20;

/// One request as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Which listener: `https` (the emulator's port), `imds` (plain HTTP IMDS) or `binding`
    /// (an identity bindings authority).
    pub listener: &'static str,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The host the client addressed, normalized (`Host`, else the URI's authority).
    pub host: String,
    /// The path, without the query.
    pub path: String,
    /// The kept fields of the query and of a form body, and the claims of the tokens they carry
    /// (`access_token.appid`, ...); a repeated field's values joined by a space.
    pub params: BTreeMap<String, String>,
    /// Whether the request carried an `Authorization` header (its value is not kept).
    pub authorization: bool,
}

/// The journal every listener appends to.
#[derive(Default)]
pub(crate) struct Journal(Mutex<Vec<Entry>>);

impl Journal {
    pub(crate) fn entries(&self) -> Vec<Entry> {
        lock(&self.0).clone()
    }

    pub(crate) fn clear(&self) {
        lock(&self.0).clear();
    }

    fn push(&self, entry: Entry) {
        lock(&self.0).push(entry);
    }
}

/// What a listener's middleware needs: the journal and its own name.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub(crate) journal: Arc<Journal>,
    pub(crate) listener: &'static str,
}

/// Middleware: records the request, then passes it on with its body intact.
pub(crate) async fn record(State(rec): State<Recorder>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let mut params = BTreeMap::new();
    let query = parts.uri.query().unwrap_or("");
    keep(&Form::parse(query.as_bytes()), &mut params);
    let form = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        keep(&Form::parse(&bytes), &mut params);
    }
    rec.journal.push(Entry {
        listener: rec.listener,
        method: parts.method.to_string(),
        host: request_host(&parts.headers, &parts.uri),
        path: parts.uri.path().to_owned(),
        params,
        authorization: parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn keep(form: &Form, params: &mut BTreeMap<String, String>) {
    for key in KEPT {
        let values = form.all(key);
        if !values.is_empty() {
            params.insert((*key).to_owned(), values.join(" "));
        }
    }
    for field in TOKENS {
        let Some(jwt) = form.get(field).and_then(Jwt::parse) else {
            if form.get(field).is_some() {
                params.insert(format!("{field}.opaque"), "true".to_owned());
            }
            continue;
        };
        for claim in CLAIMS {
            let value = match *claim {
                "aud" => Some(jwt.audience_text()),
                other => jwt.claim(other).map(str::to_owned),
            };
            if let Some(v) = value {
                params.insert(format!("{field}.{claim}"), v);
            }
        }
    }
}

/// `router` with the journal's middleware for one listener of `shared`: every request it routes
/// is recorded first, whatever the route or the outcome.
pub(crate) fn journaled<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    shared: &super::state::Shared,
    listener: &'static str,
) -> axum::Router<S> {
    let recorder = Recorder {
        journal: Arc::clone(&shared.journal),
        listener,
    };
    router.layer(axum::middleware::from_fn_with_state(recorder, record))
}
