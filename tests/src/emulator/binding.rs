//! The local token authority of AKS identity bindings: the kubelet credential provider POSTs a
//! pod's service account token to `https://<sni-name>/` (connecting to the API server's address,
//! trusting only the cluster CA) and gets an Entra access token for the bound identity.
//!
//! The authority has its own CA and answers TLS only for its one name. The request is the OAuth
//! client credentials grant with a `jwt-bearer` client assertion; the assertion must be a service
//! account token of the emulated cluster with audience [`IDENTITY_BINDING_AUDIENCE`], and its
//! (`client_id`, `iss`, `sub`) must have been bound with [`IdentityBindingAuthority::bind`]. The
//! error codes and messages are the emulator's own: the real service's are not documented.

#![allow(
    clippy::result_large_err,
    reason = "handlers return an early response as the error; size does not matter here"
)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

use super::crypto::{self, Jwt, secs, unix_now};
use super::entra;
use super::lock;
use super::server::{self, Form, either, json};
use super::state::Shared;

/// The audience a service account token must carry for the identity bindings token authority.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The scopes the authority issues tokens for: ACR's and ARM's.
const SCOPES: &[&str] = &[
    "https://containerregistry.azure.net/.default",
    "https://management.azure.com/.default",
];

/// One binding: service account `subject` of `issuer` may get tokens for `client_id`.
struct Binding {
    client_id: String,
    issuer: String,
    subject: String,
}

/// What the handler shares with the [`IdentityBindingAuthority`] handle.
struct AuthorityState {
    shared: Arc<Shared>,
    bindings: Mutex<Vec<Binding>>,
    requests: AtomicUsize,
}

/// A running identity bindings token authority, made by
/// [`Emulator::start_identity_binding_authority`](super::Emulator::start_identity_binding_authority);
/// dropping it (or the emulator) stops its listener.
pub struct IdentityBindingAuthority {
    state: Arc<AuthorityState>,
    addr: SocketAddr,
    sni_name: String,
    ca_pem: String,
    ca_path: PathBuf,
    _ca_dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for IdentityBindingAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityBindingAuthority")
            .field("addr", &self.addr)
            .field("sni_name", &self.sni_name)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

/// Bind `addr`, make the authority's CA and certificate for `sni_name`, and serve on `runtime`.
pub(crate) fn start(
    shared: Arc<Shared>,
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    sni_name: &str,
) -> io::Result<IdentityBindingAuthority> {
    rustls_pki_types::DnsName::try_from(sni_name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{sni_name}' is not a DNS name a client can send by SNI"),
        )
    })?;
    let (resolver, ca_pem) =
        crypto::SingleNameResolver::new("AKS identity bindings emulator CA", sni_name)?;
    let tls = crypto::server_config(Arc::new(resolver))?;

    let ca_dir = tempfile::Builder::new()
        .prefix("acr-emulator-binding-")
        .tempdir()?;
    let ca_path = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca_pem)?;

    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let state = Arc::new(AuthorityState {
        shared,
        bindings: Mutex::new(Vec::new()),
        requests: AtomicUsize::new(0),
    });
    let router = Router::new().fallback(token);
    let router =
        super::journal::journaled(router, &state.shared, "binding").with_state(Arc::clone(&state));
    let task = runtime.spawn(server::serve_tls(
        listener,
        TlsAcceptor::from(Arc::new(tls)),
        router,
    ));
    Ok(IdentityBindingAuthority {
        state,
        addr: bound,
        sni_name: sni_name.to_ascii_lowercase(),
        ca_pem,
        ca_path,
        _ca_dir: ca_dir,
        task,
    })
}

impl IdentityBindingAuthority {
    /// The address the authority's listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The authority's own CA certificate (not the emulator's), PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Path of a PEM file holding [`IdentityBindingAuthority::ca_pem`], in a temporary
    /// directory removed when the authority is dropped.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// HTTP requests received, whatever their method or outcome; failed TLS handshakes are not
    /// requests.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Let service account `subject` of `issuer` (the `sub` and `iss` of its token) get tokens
    /// for the identity with client id `client_id`.
    pub fn bind(&self, client_id: &str, issuer: &str, subject: &str) {
        lock(&self.state.bindings).push(Binding {
            client_id: client_id.to_owned(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        });
    }
}

impl Drop for IdentityBindingAuthority {
    fn drop(&mut self) {
        // Stops accepting; connections already open end with the emulator's runtime.
        self.task.abort();
    }
}

/// `{"error", "error_description"}` with status `status`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// Every request (counted and journaled whatever its path); only a form `POST` to `/` gets a
/// token: the AKS plugin posts to `"https://" + sniName` (cloud-provider-azure v1.35.3
/// pkg/credentialprovider/identity_bindings_credentials.go:261, posted at :170-186), which is the
/// path `/`.
async fn token(
    State(state): State<Arc<AuthorityState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if uri.path() != "/" {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            &format!("no token endpoint at {}; POST to /", uri.path()),
        );
    }
    either(token_inner(&state, &method, &headers, &body))
}

fn token_inner(
    state: &AuthorityState,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let bad_request = |m: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", m);
    if method != Method::POST {
        return Err(oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            &format!("method {method} is not allowed; POST the token request"),
        ));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(bad_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let form = Form::parse(body);
    match form.get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type '{other}' is not supported; use 'client_credentials'"),
            ));
        }
        None => return Err(bad_request("grant_type is required")),
    }
    if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(bad_request(&format!(
            "client_assertion_type must be '{ASSERTION_TYPE}'"
        )));
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(bad_request("client_id is required"));
    };
    let scope = form.get("scope").unwrap_or("");
    let Some(resource) = SCOPES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(scope))
        .and_then(|s| s.strip_suffix("/.default"))
    else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!(
                "scope '{scope}' is not supported; use one of: {}",
                SCOPES.join(", ")
            ),
        ));
    };
    let Some(assertion) = form.get("client_assertion") else {
        return Err(bad_request("client_assertion is required"));
    };

    // From here on, messages name claims but never quote the assertion itself.
    let invalid_client = |m: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", m);
    let Some(jwt) = Jwt::parse(assertion) else {
        return Err(invalid_client("the client assertion is not a JWT"));
    };
    if !jwt.verify(&state.shared.keys.cluster.decoding) {
        return Err(invalid_client(
            "the client assertion's signature is not valid or its issuer is not trusted",
        ));
    }
    let now = unix_now();
    let exp = jwt.time_claim("exp");
    if exp.is_none_or(|e| e <= now) {
        return Err(invalid_client("the client assertion has expired"));
    }
    if jwt.time_claim("nbf").is_some_and(|n| n > now + 300) {
        return Err(invalid_client("the client assertion is not valid yet"));
    }
    if !jwt.audience_in(&[IDENTITY_BINDING_AUDIENCE]) {
        return Err(invalid_client(&format!(
            "the client assertion's audience '{}' is not '{IDENTITY_BINDING_AUDIENCE}'",
            jwt.audience_text()
        )));
    }
    let issuer = jwt.claim("iss").unwrap_or("");
    let subject = jwt.claim("sub").unwrap_or("");
    let bound = lock(&state.bindings).iter().any(|b| {
        b.client_id.eq_ignore_ascii_case(client_id) && b.issuer == issuer && b.subject == subject
    });
    if !bound {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            &format!(
                "service account '{subject}' of issuer '{issuer}' is not bound to identity '{client_id}'"
            ),
        ));
    }
    let principal = lock(&state.shared.dir)
        .principal_by_client_id(client_id)
        .map_err(|m| oauth_error(StatusCode::BAD_REQUEST, "invalid_client", &m))?;
    // The AKS plugin sends no tenant (the form of identity_bindings_credentials.go:162-167): the
    // binding names the identity. A client that does send one must name the identity's own.
    if let Some(tenant) = form.get("tenant")
        && !tenant.eq_ignore_ascii_case(&principal.tenant)
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("tenant '{tenant}' is not the tenant of identity '{client_id}'",),
        ));
    }

    let lifetime = state.shared.settings().entra_lifetime;
    let claims = entra::access_token_claims(&principal, resource, lifetime, "2");
    let keys = &state.shared.keys;
    let token = keys
        .entra
        .sign(&claims, Some(&keys.entra.kid))
        .map_err(|e| {
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &e.to_string(),
            )
        })?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "expires_in": secs(lifetime),
            "token_type": "Bearer",
        }),
    ))
}
