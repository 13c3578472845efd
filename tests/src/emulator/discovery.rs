//! Entra's discovery documents, which MSAL-based clients (the Azure SDKs for Go, Python, .NET,
//! Java and JavaScript) read before their first token request: instance discovery
//! (`GET /common/discovery/instance`) and the tenant's OpenID Connect metadata
//! (`GET /{tenant}/v2.0/.well-known/openid-configuration`).
//!
//! The shapes are those of Microsoft identity platform's documents ("OpenID Connect on the
//! Microsoft identity platform", "Fetch the OpenID configuration document"); every endpoint they
//! name is on the host the client asked, so a client that follows them stays on the emulator.
//! `azure_identity` (Rust) reads neither: it posts to the token endpoint directly.

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use super::server::{Form, json, request_host};

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (also without `/v2.0`, as v1 clients
/// ask). `common`, `organizations` and `consumers` get Entra's `{tenantid}` placeholder in the
/// issuer, as the real document does.
pub(crate) async fn openid_configuration(
    Path(tenant): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let host = request_host(&headers, &uri);
    let base = format!("https://{host}/{tenant}");
    let issuer_tenant = match tenant.as_str() {
        "common" | "organizations" | "consumers" => "{tenantid}",
        t => t,
    };
    json(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("https://{host}/{issuer_tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid", "name", "preferred_username"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": host,
        }),
    )
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`: the authority's
/// tenant discovery endpoint and its aliases (here only the host asked: the emulator serves
/// every name it is reached by).
pub(crate) async fn instance(headers: HeaderMap, uri: Uri, RawQuery(query): RawQuery) -> Response {
    let host = request_host(&headers, &uri);
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    // The tenant is the first path segment of the authorization endpoint asked about.
    let tenant = form
        .get("authorization_endpoint")
        .and_then(|e| url::Url::parse(e).ok())
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next().map(str::to_owned))
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "common".to_owned());
    json(
        StatusCode::OK,
        &json!({
            "tenant_discovery_endpoint": format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{
                "preferred_network": host,
                "preferred_cache": host,
                "aliases": [host],
            }],
        }),
    )
}
