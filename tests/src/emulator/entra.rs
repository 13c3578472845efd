//! Entra token endpoints: client credentials (`/{tenant}/oauth2/v2.0/token`) and the two managed
//! identity endpoints (App Service `/msi/token`, IMDS `/metadata/identity/oauth2/token`).
//!
//! Request and response shapes follow what `azure_identity` 1.0 sends and parses, and Microsoft's
//! documentation of the services. AADSTS codes are the real ones for each failure where known;
//! where the documentation does not say which code or status a failure gets, a comment says so.

#![allow(
    clippy::result_large_err,
    reason = "handlers return an early response as the error; size does not matter here"
)]

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use super::crypto::{Jwt, secs, unix_now};
use super::lock;
use super::model::{EndpointKind, Principal};
use super::server::{Form, either, json, request_host};
use super::state::{ConnCtl, MiLookup, Shared};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience a federated credential accepts by default (public cloud).
pub(crate) const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Resources (application id URIs) the emulated directory knows. Compared without a trailing `/`.
const KNOWN_RESOURCES: &[&str] = &[
    "https://containerregistry.azure.net",
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://management.chinacloudapi.cn",
    "https://management.core.chinacloudapi.cn",
    "https://management.usgovcloudapi.net",
    "https://management.core.usgovcloudapi.net",
    "https://vault.azure.net",
    "https://storage.azure.com",
    "https://graph.microsoft.com",
];

/// Entra's timestamp format in error bodies: `2025-04-04 21:10:04Z`.
pub(crate) fn timestamp() -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An Entra error: `{"error", "error_description": "AADSTSnnn: …", "error_codes": [nnn], …}`.
struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

fn fail(
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: impl Into<String>,
) -> EntraError {
    EntraError {
        status,
        error,
        code,
        message: message.into(),
    }
}

impl EntraError {
    fn response(&self) -> Response {
        let trace_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let timestamp = timestamp();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        json(self.status, &body)
    }
}

/// The claims of an Entra v1 access token for an application identity, issued now by the
/// machine's clock (the identity bindings authority's tokens); the emulator's own endpoints use
/// [`access_token_claims_at`] with its clock.
pub(crate) fn access_token_claims(
    principal: &Principal,
    audience: &str,
    lifetime: Duration,
    appidacr: &str,
) -> Value {
    access_token_claims_at(unix_now(), principal, audience, lifetime, appidacr)
}

/// The claims of an Entra v1 access token for an application identity, issued at `now`.
pub(crate) fn access_token_claims_at(
    now: i64,
    principal: &Principal,
    audience: &str,
    lifetime: Duration,
    appidacr: &str,
) -> Value {
    let issuer = format!("https://sts.windows.net/{}/", principal.tenant);
    json!({
        "aud": audience,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + secs(lifetime),
        "appid": principal.client_id,
        "appidacr": appidacr,
        "azp": principal.client_id,
        "azpacr": appidacr,
        "idp": issuer,
        "idtyp": "app",
        "oid": principal.object_id,
        "sub": principal.object_id,
        "tid": principal.tenant,
        "uti": uuid::Uuid::new_v4().simple().to_string(),
        "ver": "1.0",
    })
}

/// The resource a `<resource>/.default` scope names, checked against the known resources.
fn resource_of_scope(scope: Option<&str>) -> Result<String, EntraError> {
    let Some(scope) = scope else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    };
    // The OpenID Connect scopes MSAL adds to every request (`openid offline_access profile`)
    // are reserved: Entra accepts them beside a `/.default` scope and ignores them in the client
    // credentials flow (MSAL for Go sends them; azure_identity does not).
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !matches!(*s, "openid" | "offline_access" | "profile" | "email"))
        .collect();
    let [single] = scopes.as_slice() else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        ));
    };
    let Some(resource) = single.strip_suffix("/.default") else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    known_resource(resource)
}

/// Check a resource (managed identity `resource=` or a scope's prefix) is known.
fn known_resource(resource: &str) -> Result<String, EntraError> {
    let trimmed = resource.trim_end_matches('/');
    if KNOWN_RESOURCES
        .iter()
        .any(|k| k.eq_ignore_ascii_case(trimmed))
    {
        Ok(resource.to_owned())
    } else {
        Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        ))
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`, grant type `client_credentials`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let key = format!("{tenant}/{}", form.get("client_id").unwrap_or(""));
    if let Some(faulted) = shared.enter(EndpointKind::Entra, &key, &conn).await {
        return faulted;
    }
    let host = request_host(&headers, &uri);
    match client_credentials(&shared, &tenant, &host, &form) {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => e.response(),
    }
}

fn client_credentials(
    shared: &Shared,
    tenant: &str,
    host: &str,
    form: &Form,
) -> Result<Value, EntraError> {
    let settings = shared.settings();
    match form.get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
        None => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ));
        }
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };

    let (principal, appidacr) = {
        let dir = lock(&shared.dir);
        if !dir.tenant_known(tenant, &settings.managed_identity_tenant) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
                ),
            ));
        }
        let Some(app) = dir.app(tenant, client_id) else {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            ));
        };
        if let Some(secret) = form.get("client_secret") {
            if !app.secrets.iter().any(|s| s == secret) {
                return Err(fail(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                ));
            }
            (app.principal.clone(), "1")
        } else if let Some(assertion) = form.get("client_assertion") {
            if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
                // Guessed code: Entra's exact answer to a wrong assertion type is undocumented.
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    format!(
                        "The request body must contain the following parameter: 'client_assertion_type' with value '{ASSERTION_TYPE}'."
                    ),
                ));
            }
            check_assertion(
                app,
                assertion,
                tenant,
                host,
                &shared.keys.cluster.decoding,
                shared.now(),
            )?;
            (app.principal.clone(), "2")
        } else {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            ));
        }
    };

    let resource = resource_of_scope(form.get("scope"))?;
    if lock(&shared.dir).lacks_resource(tenant, &resource) {
        // What Entra answers when the tenant has no service principal for the resource (e.g.
        // ACR's first-party app not provisioned there): AADSTS500011, as quoted in
        // Azure/azure-cli#30445; an Azure Local identity provider says AADSTS50001 for ACR's
        // audience (Azure/azure-cli#33674).
        let resource = resource.trim_end_matches("/.default");
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        ));
    }
    let claims = access_token_claims_at(
        shared.now(),
        &principal,
        &resource,
        settings.entra_lifetime,
        appidacr,
    );
    let token = shared
        .keys
        .entra
        .sign(&claims, Some(&shared.keys.entra.kid))
        .map_err(|e| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                e.to_string(),
            )
        })?;
    let lifetime = secs(settings.entra_lifetime);
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

/// Verify a client assertion: a certificate-signed JWT (named by `x5t`) or a federated token
/// (a service account token the emulated cluster signed).
fn check_assertion(
    app: &super::state::App,
    assertion: &str,
    tenant: &str,
    host: &str,
    cluster_key: &jsonwebtoken::DecodingKey,
    now: i64,
) -> Result<(), EntraError> {
    let client_id = app.principal.client_id.as_str();
    let Some(jwt) = Jwt::parse(assertion) else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let x5t = jwt.header_field("x5t");
    let x5t_s256 = jwt.header_field("x5t#S256");
    let thumbprint = x5t.or(x5t_s256).unwrap_or("");
    let key_not_found = || {
        fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        )
    };
    let bad_signature = || {
        fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint}']"
            ),
        )
    };

    if (x5t.is_some() || x5t_s256.is_some()) && !app.certs.is_empty() {
        let Some((_, key)) = app.certs.iter().find(|(t, _)| t.matches(x5t, x5t_s256)) else {
            return Err(key_not_found());
        };
        if !jwt.verify(key) {
            return Err(bad_signature());
        }
        if jwt.claim("iss") != Some(client_id) || jwt.claim("sub") != Some(client_id) {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
            ));
        }
        let v2 = format!("https://{host}/{tenant}/oauth2/v2.0/token");
        let v1 = format!("https://{host}/{tenant}/oauth2/token");
        let accepted = [
            v2.as_str(),
            &format!("{v2}/"),
            v1.as_str(),
            &format!("{v1}/"),
        ];
        let aud_ok = match jwt.claims.get("aud") {
            Some(Value::String(aud)) => accepted.iter().any(|a| a.eq_ignore_ascii_case(aud)),
            _ => false,
        };
        if !aud_ok {
            // Guessed code: Entra documents no specific AADSTS code for a wrong assertion audience.
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50013,
                format!(
                    "Assertion audience claim does not match the required value. Presented audience: '{}'. Expected: '{v2}'.",
                    jwt.audience_text()
                ),
            ));
        }
        return check_time(&jwt, now);
    }

    if app.federated.is_empty() {
        return Err(key_not_found());
    }
    if !jwt.verify(cluster_key) {
        return Err(bad_signature());
    }
    check_time(&jwt, now)?;
    let issuer = jwt.claim("iss").unwrap_or("");
    let subject = jwt.claim("sub").unwrap_or("");
    let by_issuer: Vec<_> = app
        .federated
        .iter()
        .filter(|f| f.issuer == issuer)
        .collect();
    if by_issuer.is_empty() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{issuer}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
            ),
        ));
    }
    let by_subject: Vec<_> = by_issuer
        .into_iter()
        .filter(|f| f.subject == subject)
        .collect();
    if by_subject.is_empty() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject '{subject}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
            ),
        ));
    }
    let audience_ok = by_subject.iter().any(|f| {
        let accepted: Vec<&str> = f.audiences.iter().map(String::as_str).collect();
        jwt.audience_in(&accepted)
    });
    if !audience_ok {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                jwt.audience_text()
            ),
        ));
    }
    Ok(())
}

/// `exp` after `now` and `nbf` not far ahead (5 minutes of clock skew, as Entra allows).
fn check_time(jwt: &Jwt, now: i64) -> Result<(), EntraError> {
    let exp = jwt.time_claim("exp");
    let nbf = jwt.time_claim("nbf");
    let valid = exp.is_some_and(|e| e > now) && nbf.is_none_or(|n| n <= now + 300);
    if valid {
        return Ok(());
    }
    Err(fail(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700024,
        format!(
            "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {}, expiry time of assertion {}.",
            nbf.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            exp.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        ),
    ))
}

/// The identity a managed identity request names, and the key it is counted under.
fn mi_lookup(shared: &Shared, query: &Form, single_default: bool) -> (MiLookup, String) {
    let client_id = query.get("client_id");
    let object_id = query.get("object_id").or_else(|| query.get("principal_id"));
    let resource_id = query.get("msi_res_id").or_else(|| query.get("mi_res_id"));
    let found = lock(&shared.dir).managed(client_id, object_id, resource_id, single_default);
    let key = match &found {
        MiLookup::Found(p) => p.client_id.clone(),
        _ => client_id
            .or(object_id)
            .or(resource_id)
            .unwrap_or("system")
            .to_owned(),
    };
    (found, key)
}

/// Sign a managed identity token and build the fields both MI endpoints share.
fn mi_token(
    shared: &Shared,
    principal: &Principal,
    resource: &str,
) -> Result<(String, i64), String> {
    let lifetime = shared.settings().entra_lifetime;
    let now = shared.now();
    let claims = access_token_claims_at(now, principal, resource, lifetime, "2");
    let token = shared
        .keys
        .entra
        .sign(&claims, Some(&shared.keys.entra.kid))
        .map_err(|e| e.to_string())?;
    Ok((token, now + secs(lifetime)))
}

/// `GET /msi/token` (App Service, api-version 2019-08-01, `X-IDENTITY-HEADER`).
pub(crate) async fn app_service(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = Form::parse(query.unwrap_or_default().as_bytes());
    let (found, key) = mi_lookup(&shared, &query, false);
    if let Some(faulted) = shared.enter(EndpointKind::AppService, &key, &conn).await {
        return faulted;
    }
    either(app_service_inner(&shared, &headers, &query, found))
}

fn app_service_error(status: StatusCode, message: &str) -> Response {
    // The App Service error shape; messages are guessed where Microsoft does not document them.
    json(
        status,
        &json!({
            "statusCode": status.as_u16(),
            "message": message,
            "correlationId": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

fn app_service_inner(
    shared: &Shared,
    headers: &HeaderMap,
    query: &Form,
    found: MiLookup,
) -> Result<Response, Response> {
    let expected = shared.settings().identity_header;
    match headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
    {
        None => {
            return Err(app_service_error(
                StatusCode::BAD_REQUEST,
                "The X-IDENTITY-HEADER header is missing.",
            ));
        }
        Some(v) if v != expected => {
            return Err(app_service_error(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER header is not valid.",
            ));
        }
        Some(_) => {}
    }
    if query.get("api-version") != Some("2019-08-01") {
        return Err(app_service_error(
            StatusCode::BAD_REQUEST,
            "The api-version is missing or not supported; use 2019-08-01.",
        ));
    }
    let Some(resource) = query.get("resource") else {
        return Err(app_service_error(
            StatusCode::BAD_REQUEST,
            "The resource parameter is missing.",
        ));
    };
    let MiLookup::Found(principal) = found else {
        return Err(app_service_error(
            StatusCode::BAD_REQUEST,
            "No managed identity found for specified ClientId/ResourceId/PrincipalId.",
        ));
    };
    let resource = known_resource(resource).map_err(|e| {
        app_service_error(
            StatusCode::BAD_REQUEST,
            &format!("AADSTS{}: {}", e.code, e.message),
        )
    })?;
    let (token, expires_on) = mi_token(shared, &principal, &resource)
        .map_err(|e| app_service_error(StatusCode::INTERNAL_SERVER_ERROR, &e))?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        }),
    ))
}

fn imds_error(error: &str, description: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

/// `GET /metadata/identity/oauth2/token` (IMDS; `Metadata: true` required).
pub(crate) async fn imds(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = Form::parse(query.unwrap_or_default().as_bytes());
    let (found, key) = mi_lookup(&shared, &query, true);
    if let Some(faulted) = shared.enter(EndpointKind::Imds, &key, &conn).await {
        return faulted;
    }
    either(imds_inner(&shared, &headers, &query, found))
}

fn imds_inner(
    shared: &Shared,
    headers: &HeaderMap,
    query: &Form,
    found: MiLookup,
) -> Result<Response, Response> {
    // IMDS refuses anything that looks proxied (SSRF protection).
    if headers.contains_key("x-forwarded-for") {
        return Err(imds_error(
            "invalid_request",
            "Request must not contain the X-Forwarded-For header",
        ));
    }
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    if !metadata.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(imds_error(
            "invalid_request",
            "Required metadata header not specified",
        ));
    }
    let version_ok = query
        .get("api-version")
        .is_some_and(|v| v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    if !version_ok {
        return Err(json(
            StatusCode::BAD_REQUEST,
            &json!({
                "error": "Bad request. api-version was not specified in the request, or is invalid. For more information refer to aka.ms/azureimds",
                "newest-versions": ["2023-07-01", "2021-02-01", "2019-08-01", "2018-02-01"],
            }),
        ));
    }
    let Some(resource) = query.get("resource") else {
        return Err(imds_error(
            "invalid_request",
            "Required audience parameter not specified",
        ));
    };
    let principal = match found {
        MiLookup::Found(p) => p,
        MiLookup::NotFound => return Err(imds_error("invalid_request", "Identity not found")),
        MiLookup::Ambiguous => {
            return Err(imds_error(
                "invalid_request",
                "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request",
            ));
        }
    };
    let resource = known_resource(resource).map_err(|e| {
        imds_error(
            "invalid_resource",
            &format!("AADSTS{}: {}", e.code, e.message),
        )
    })?;
    let (token, expires_on) =
        mi_token(shared, &principal, &resource).map_err(|e| imds_error("unknown_error", &e))?;
    let now = shared.now();
    let expires_in = (expires_on - now).to_string();
    Ok(json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "client_id": principal.client_id,
            "expires_in": expires_in,
            "expires_on": expires_on.to_string(),
            "ext_expires_in": expires_in,
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    ))
}
