//! The registry side: the `/v2/` Bearer challenge, `/oauth2/exchange` (Entra access token → ACR
//! refresh token) and `/oauth2/token` (refresh token → access token), routed by `Host`.
//!
//! Shapes follow Azure/acr `docs/AAD-OAuth.md` and Docker distribution's token specification.
//! Error codes and messages of refused exchanges are not documented; the ones here are guesses in
//! the documented `{"errors":[{"code","message"}]}` shape.

#![allow(
    clippy::result_large_err,
    reason = "handlers return an early response as the error; size does not matter here"
)]

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::Arc;

use super::crypto::{Jwt, secs};
use super::lock;
use super::model::{EndpointKind, RegistryAudiences, Role};
use super::proxy;
use super::server::{Form, either, json, request_host};
use super::state::{ConnCtl, Shared};

/// Issuer of ACR refresh tokens.
const REFRESH_ISSUER: &str = "Azure Container Registry";
/// The Docker username that marks an ACR refresh token as password.
pub(crate) const REFRESH_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";
/// Entra audiences `/oauth2/exchange` accepts: the ACR audience and ARM's.
const EXCHANGE_AUDIENCES: &[&str] = &[
    "https://containerregistry.azure.net",
    "https://containerregistry.azure.net/",
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];
/// The ARM audiences among [`EXCHANGE_AUDIENCES`].
const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];

/// `{"errors":[{"code","message","detail"}]}` with status `status`.
fn acr_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &json!({"errors": [{"code": code, "message": message, "detail": null}]}),
    )
}

/// The 401 an unauthenticated client gets, with the `Www-Authenticate` challenge.
fn challenge_response(host: &str, scope: Option<&str>, error: Option<&str>) -> Response {
    let mut response = acr_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    );
    let mut value = format!("Bearer realm=\"https://{host}/oauth2/token\",service=\"{host}\"");
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    headers.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// 404 for a host that is not a registered registry.
fn unknown_registry(host: &str) -> Response {
    acr_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("registry '{host}' is not known to this emulator"),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Any `/v2/…` request on a registry host. With a backend ([`Upstream`]) the request is proxied
/// to it; without one, `GET|HEAD` get the 401 challenge, or 200 `{}` on `/v2/` with a valid access
/// token (the emulator stores no images), and other methods 405.
pub(crate) async fn v2(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    request: Request<Body>,
) -> Response {
    let host = request_host(request.headers(), request.uri());
    if let Some(faulted) = shared.enter(EndpointKind::Challenge, &host, &conn).await {
        return faulted;
    }
    let (known, upstream) = {
        let dir = lock(&shared.dir);
        (dir.registry_known(&host), dir.upstream(&host))
    };
    if !known {
        return unknown_registry(&host);
    }
    if let Some(upstream) = upstream {
        return proxy::forward(request, &upstream, &host).await;
    }
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return acr_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this emulated registry stores no images; give it a backend to push",
        );
    }
    challenge(&shared, &host, request.headers(), request.uri())
}

/// The `GET|HEAD` answer of a registry without a backend: the challenge, or 200 on `/v2/`.
fn challenge(shared: &Shared, host: &str, headers: &HeaderMap, uri: &Uri) -> Response {
    let repo = repository_of_path(uri.path());
    let scope = repo.map(|name| format!("repository:{name}:pull"));
    let Some(token) = bearer(headers) else {
        return challenge_response(host, scope.as_deref(), None);
    };
    let Some(claims) = verify_access_token(shared, token, host) else {
        return challenge_response(host, scope.as_deref(), Some("invalid_token"));
    };
    match repo {
        None => {
            let mut response = json(StatusCode::OK, &json!({}));
            response.headers_mut().insert(
                "docker-distribution-api-version",
                HeaderValue::from_static("registry/2.0"),
            );
            response
        }
        Some(name) => {
            let allowed = claims
                .get("access")
                .and_then(Value::as_array)
                .is_some_and(|entries| {
                    entries.iter().any(|e| {
                        e.get("name").and_then(Value::as_str) == Some(name)
                            && e.get("actions")
                                .and_then(Value::as_array)
                                .is_some_and(|a| a.iter().any(|x| x == "pull" || x == "*"))
                    })
                });
            if allowed {
                // The emulator stores no images.
                acr_error(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    &format!("repository name not known to registry: {name}"),
                )
            } else {
                challenge_response(host, scope.as_deref(), Some("insufficient_scope"))
            }
        }
    }
}

/// The repository of `/v2/<name>/(manifests|blobs|tags)/…`.
fn repository_of_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|marker| rest.find(marker).map(|i| &rest[..i]))
        .min_by_key(|name| name.len())
        .filter(|name| !name.is_empty())
}

/// The claims of a valid access token for `host`.
fn verify_access_token(shared: &Shared, token: &str, host: &str) -> Option<Value> {
    let jwt = Jwt::parse(token)?;
    let issuer = shared.settings().acr_issuer;
    (jwt.verify(&shared.keys.acr.decoding)
        && jwt.claim("iss") == Some(issuer.as_str())
        && jwt.audience_in(&[host])
        && jwt.time_claim("exp").is_some_and(|e| e > shared.now()))
    .then_some(jwt.claims)
}

/// `POST /oauth2/exchange`: an Entra access token for an ACR refresh token.
pub(crate) async fn exchange(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let host = request_host(&headers, &uri);
    if let Some(faulted) = shared.enter(EndpointKind::Exchange, &host, &conn).await {
        return faulted;
    }
    either(exchange_inner(&shared, &host, &Form::parse(&body)))
}

fn exchange_inner(shared: &Shared, host: &str, form: &Form) -> Result<Response, Response> {
    if !lock(&shared.dir).registry_known(host) {
        return Err(unknown_registry(host));
    }
    // Azure/acr docs/AAD-OAuth.md, "Calling POST /oauth2/exchange": `access_token`, or the
    // deprecated `access_token_refresh_token` (an access token and an Entra refresh token; the
    // AKS plugin sends the access token as both, cloud-provider-azure v1.35.3
    // pkg/credentialprovider/azure_acr_helper.go:150-156) or `refresh_token` (an Entra refresh
    // token alone, which the emulator cannot redeem).
    match form.get("grant_type") {
        Some("access_token") => {}
        Some("access_token_refresh_token") if form.get("refresh_token").is_some() => {}
        Some("access_token_refresh_token") => {
            return Err(acr_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "refresh_token is required with grant_type 'access_token_refresh_token'",
            ));
        }
        other => {
            return Err(acr_error(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                &format!(
                    "grant_type '{}' is not supported; use 'access_token'",
                    other.unwrap_or("")
                ),
            ));
        }
    }
    let service = form.get("service").map(super::host::normalize);
    if service.as_deref() != Some(host) {
        return Err(acr_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!(
                "service '{}' does not name this registry '{host}'",
                form.get("service").unwrap_or("")
            ),
        ));
    }
    let Some(token) = form.get("access_token") else {
        return Err(acr_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "access_token is required",
        ));
    };
    let unauthorized = |m: &str| acr_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m);
    let Some(jwt) = Jwt::parse(token) else {
        return Err(unauthorized("the access token is not a JWT"));
    };
    if !jwt.verify(&shared.keys.entra.decoding) {
        return Err(unauthorized(
            "the access token's signature is not valid or its issuer is not trusted",
        ));
    }
    if jwt.time_claim("exp").is_none_or(|e| e <= shared.now()) {
        return Err(unauthorized("the access token has expired"));
    }
    if !jwt.audience_in(EXCHANGE_AUDIENCES) {
        return Err(unauthorized(&format!(
            "the access token's audience '{}' is not accepted; request a token for https://containerregistry.azure.net/.default",
            jwt.audience_text()
        )));
    }
    // Real ACR with ARM-audience authentication disabled answers an ARM-audience token with
    // 401 {"errors":[{"code":"UNAUTHORIZED","message":"arm aad token disallowed"}]} (Azure SDK for
    // Go, sdk/containers/azcontainerregistry/TROUBLESHOOTING.md, "ARM access token is disabled").
    // No refusal of an ACR-audience token is documented: the same shape, by symmetry, stands in
    // (invented; tests of ACR-audience refusals use Entra's documented AADSTS500011 instead).
    let arm = jwt.audience_in(ARM_AUDIENCES);
    let refused = match lock(&shared.dir).audiences(host) {
        RegistryAudiences::Both => None,
        RegistryAudiences::AcrOnly => arm.then_some("arm aad token disallowed"),
        RegistryAudiences::ArmOnly => (!arm).then_some("acr aad token disallowed"),
    };
    if let Some(message) = refused {
        return Err(unauthorized(message));
    }
    // `tenant` is optional and not checked: its exact effect on the real service is not
    // documented, and the token's own `tid` is what identifies the tenant.
    let oid = jwt.claim("oid").unwrap_or("").to_owned();
    let tid = jwt.claim("tid").unwrap_or("").to_owned();
    let owner = lock(&shared.dir).owner(host).map(str::to_owned);
    if let Some(owner) = owner.filter(|o| !o.eq_ignore_ascii_case(&tid)) {
        // A registry takes Entra tokens of its own tenant only; the message is a guess.
        return Err(unauthorized(&format!(
            "the access token's tenant '{tid}' is not the tenant '{owner}' of registry '{host}'"
        )));
    }
    let appid = jwt.claim("appid").map(str::to_owned);
    let role = lock(&shared.dir).role(host, &oid, appid.as_deref());
    let Some(role) = role else {
        return Err(unauthorized(&format!(
            "principal '{oid}' (application '{}') has no role assignment on registry '{host}'; assign AcrPull or AcrPush to it",
            appid.as_deref().unwrap_or("")
        )));
    };
    let settings = shared.settings();
    let now = shared.now();
    let claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": oid,
        "nbf": now,
        "exp": now + secs(settings.refresh_lifetime),
        "iat": now,
        "iss": REFRESH_ISSUER,
        "aud": host,
        "version": "1.0",
        "rid": uuid::Uuid::new_v4().simple().to_string(),
        "grant_type": "refresh_token",
        "appid": appid,
        "tenant": tid,
        "permissions": {"actions": role.refresh_actions(), "notActions": null},
        "roles": [],
    });
    let refresh = shared.keys.acr.sign(&claims, None).map_err(|e| {
        acr_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            &e.to_string(),
        )
    })?;
    Ok(json(StatusCode::OK, &json!({"refresh_token": refresh})))
}

/// `GET|POST /oauth2/token`: a refresh token (form, or Basic password) for an access token.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let host = request_host(&headers, &uri);
    if let Some(faulted) = shared.enter(EndpointKind::AcrToken, &host, &conn).await {
        return faulted;
    }
    let form = if method == Method::POST {
        Form::parse(&body)
    } else {
        Form::parse(uri.query().unwrap_or("").as_bytes())
    };
    either(token_inner(&shared, &host, &method, &headers, &form))
}

/// Who a token request is for: object id and application id.
struct Caller {
    object_id: String,
    app_id: Option<String>,
    tenant: String,
    /// The registry's admin user, who may do everything without a role assignment.
    admin: bool,
}

fn token_inner(
    shared: &Shared,
    host: &str,
    method: &Method,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, Response> {
    if !lock(&shared.dir).registry_known(host) {
        return Err(unknown_registry(host));
    }
    let unauthorized = |m: &str| acr_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m);
    let service = form.get("service").map(super::host::normalize);
    if service.as_deref() != Some(host) {
        return Err(acr_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!(
                "service '{}' does not name this registry '{host}'",
                form.get("service").unwrap_or("")
            ),
        ));
    }
    let caller = if *method == Method::POST {
        match form.get("grant_type") {
            Some("refresh_token") => {}
            other => {
                return Err(acr_error(
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED",
                    &format!(
                        "grant_type '{}' is not supported; use 'refresh_token'",
                        other.unwrap_or("")
                    ),
                ));
            }
        }
        let Some(refresh) = form.get("refresh_token") else {
            return Err(acr_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "refresh_token is required",
            ));
        };
        verify_refresh_token(shared, refresh, host).map_err(|m| unauthorized(&m))?
    } else {
        let Some((user, password)) = basic(headers) else {
            if headers.contains_key(header::AUTHORIZATION)
                || !lock(&shared.dir).anonymous_pull(host)
            {
                return Err(challenge_response(host, None, None));
            }
            // Anonymous pull: no credentials at all, pull only.
            return sign_access(
                shared,
                host,
                &Caller {
                    object_id: String::new(),
                    app_id: None,
                    tenant: String::new(),
                    admin: false,
                },
                Some(Role::AcrPull),
                form,
            );
        };
        let admin = lock(&shared.dir).is_admin(host, &user, &password);
        if admin {
            Caller {
                object_id: user,
                app_id: None,
                tenant: String::new(),
                admin: true,
            }
        } else if user == REFRESH_TOKEN_USER {
            verify_refresh_token(shared, &password, host).map_err(|m| unauthorized(&m))?
        } else {
            // ACR also takes a service principal's client id and secret as Basic credentials.
            let found = lock(&shared.dir).secret_principal(&user, &password);
            let Some(p) = found else {
                return Err(unauthorized("invalid username or password"));
            };
            Caller {
                object_id: p.object_id,
                app_id: Some(p.client_id),
                tenant: p.tenant,
                admin: false,
            }
        }
    };

    let role = if caller.admin {
        Some(Role::Owner)
    } else {
        lock(&shared.dir).role(host, &caller.object_id, caller.app_id.as_deref())
    };
    sign_access(shared, host, &caller, role, form)
}

/// An access token for `caller` with the requested scopes `role` allows.
fn sign_access(
    shared: &Shared,
    host: &str,
    caller: &Caller,
    role: Option<Role>,
    form: &Form,
) -> Result<Response, Response> {
    let access = granted_access(role, &form.all("scope"));
    let settings = shared.settings();
    let now = shared.now();
    let claims = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": caller.object_id,
        "nbf": now,
        "exp": now + secs(settings.access_lifetime),
        "iat": now,
        "iss": settings.acr_issuer,
        "aud": host,
        "version": "1.0",
        "grant_type": "refresh_token",
        "tenant": caller.tenant,
        "access": access,
        "roles": [],
    });
    let token = shared.keys.acr.sign(&claims, None).map_err(|e| {
        acr_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            &e.to_string(),
        )
    })?;
    Ok(json(StatusCode::OK, &json!({"access_token": token})))
}

fn verify_refresh_token(shared: &Shared, token: &str, host: &str) -> Result<Caller, String> {
    let jwt = Jwt::parse(token).ok_or("the refresh token is not a JWT")?;
    if !jwt.verify(&shared.keys.acr.decoding)
        || jwt.claim("iss") != Some(REFRESH_ISSUER)
        || jwt.claim("grant_type") != Some("refresh_token")
    {
        return Err("the refresh token is not valid".to_owned());
    }
    if !jwt.audience_in(&[host]) {
        return Err(format!(
            "the refresh token was issued for '{}', not '{host}'",
            jwt.audience_text()
        ));
    }
    if jwt.time_claim("exp").is_none_or(|e| e <= shared.now()) {
        return Err("the refresh token has expired".to_owned());
    }
    Ok(Caller {
        object_id: jwt.claim("sub").unwrap_or("").to_owned(),
        app_id: jwt.claim("appid").map(str::to_owned),
        tenant: jwt.claim("tenant").unwrap_or("").to_owned(),
        admin: false,
    })
}

/// The `access` claim: each requested scope with the actions `role` allows; scopes left with no
/// action are dropped. A scope value may hold several space-separated scopes.
fn granted_access(role: Option<Role>, scopes: &[&str]) -> Vec<Value> {
    let Some(role) = role else {
        return Vec::new();
    };
    scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let granted: Vec<&str> = if kind.starts_with("repository") {
                actions.split(',').filter(|a| role.allows(a)).collect()
            } else if kind == "registry" && name == "catalog" && role == Role::Owner {
                // Guess: catalog listing needs more than AcrPull/AcrPush.
                vec!["*"]
            } else {
                Vec::new()
            };
            (!granted.is_empty()).then(|| json!({"type": kind, "name": name, "actions": granted}))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_filtered_by_role() {
        let scopes = [
            "repository:app:pull,push",
            "repository:base:pull registry:catalog:*",
        ];
        assert_eq!(granted_access(None, &scopes), Vec::<Value>::new());
        assert_eq!(
            granted_access(Some(Role::AcrPull), &scopes),
            vec![
                json!({"type": "repository", "name": "app", "actions": ["pull"]}),
                json!({"type": "repository", "name": "base", "actions": ["pull"]}),
            ]
        );
        assert_eq!(
            granted_access(Some(Role::AcrPush), &scopes[..1]),
            vec![json!({"type": "repository", "name": "app", "actions": ["pull", "push"]})]
        );
        assert_eq!(granted_access(Some(Role::Owner), &scopes).len(), 3);
    }

    #[test]
    fn repository_paths() {
        assert_eq!(repository_of_path("/v2/"), None);
        assert_eq!(
            repository_of_path("/v2/team/app/manifests/latest"),
            Some("team/app")
        );
        assert_eq!(repository_of_path("/v2/app/blobs/sha256:00"), Some("app"));
    }
}
