//! CI systems' OIDC token endpoints, whose tokens the emulated Entra accepts as federated client
//! assertions: GitHub Actions (`GET /actions/{job}/idtoken`) and Azure Pipelines
//! (`POST /pipelines/{job}/oidctoken`).
//!
//! Based on GitHub's documentation of its OIDC protocol ("About security hardening with OpenID
//! Connect", and `@actions/core`'s `getIDToken`): the runner gives a job
//! `ACTIONS_ID_TOKEN_REQUEST_URL` (already holding `?api-version=...`) and
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN`; `GET <url>&audience=<aud>` with `Authorization: Bearer
//! <token>` answers `{"count": n, "value": "<jwt>"}`, a token of issuer
//! `https://token.actions.githubusercontent.com` about `repo:<org>/<repo>:ref:<ref>`, living
//! minutes; without `audience` its audience is the repository owner's URL. And on Azure DevOps'
//! OIDC token API as `azure_identity`'s `AzurePipelinesCredential` calls it: `POST
//! <SYSTEM_OIDCREQUESTURI>?api-version=7.1&serviceConnectionId=<id>` with `Authorization: Bearer
//! <System.AccessToken>`, answered `{"oidcToken": "<jwt>"}`, a token of issuer
//! `https://vstoken.dev.azure.com/<organization id>` about `sc://<org>/<project>/<connection>`,
//! audience `api://AzureADTokenExchange`; error answers carry `x-vss-e2eid` and `x-msedge-ref`.
//!
//! Here the issuers are the emulator's own (`<base url>/actions` and `<base url>/pipelines`, see
//! [`CiJob::issuer`]) and tokens are signed by the emulated cluster's key, which the emulated
//! Entra trusts for any issuer a federated credential names. What the real services answer to
//! a wrong bearer token or an unknown service connection is not documented: 401 and 404 with a
//! `message` are guesses (comments say so).

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::crypto::secs;
use super::lock;
use super::model::EndpointKind;
use super::server::{Form, json};
use super::state::{ConnCtl, Shared};

/// The audience a federated credential accepts by default.
const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Which CI system a job belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CiKind {
    /// GitHub Actions.
    GitHub,
    /// Azure Pipelines.
    AzurePipelines,
}

/// A CI job the emulator issues OIDC tokens for: what its runner puts in the environment.
#[derive(Clone, Debug)]
pub struct CiJob {
    /// The CI system.
    pub kind: CiKind,
    /// The job's id, the key its requests are counted under.
    pub id: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` (with `?api-version=2.0`) or `SYSTEM_OIDCREQUESTURI`.
    pub request_url: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` or `SYSTEM_ACCESSTOKEN` (a secret).
    pub request_token: String,
    /// The service connection id (Azure Pipelines; empty for GitHub).
    pub service_connection: String,
    /// `iss` of the job's tokens: name it in [`Emulator::add_federated_principal`](super::Emulator::add_federated_principal).
    pub issuer: String,
    /// `sub` of the job's tokens.
    pub subject: String,
}

/// What the emulator remembers of a job.
pub(crate) struct Job {
    pub(crate) public: CiJob,
    pub(crate) lifetime: Duration,
}

/// The jobs, by id.
#[derive(Default)]
pub(crate) struct Jobs(pub(crate) HashMap<String, Job>);

impl Jobs {
    /// Every request token, for [`Emulator::secrets`](super::Emulator::secrets).
    pub(crate) fn secrets(&self) -> Vec<String> {
        self.0
            .values()
            .map(|j| j.public.request_token.clone())
            .collect()
    }
}

/// A new job of `kind` at the emulator whose base URL is `base`, issuing tokens about `subject`
/// that live `lifetime`.
pub(crate) fn new_job(
    base: &str,
    kind: CiKind,
    service_connection: &str,
    subject: &str,
    lifetime: Duration,
) -> Job {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (request_url, issuer) = match kind {
        CiKind::GitHub => (
            format!("{base}/actions/{id}/idtoken?api-version=2.0"),
            format!("{base}/actions"),
        ),
        CiKind::AzurePipelines => (
            format!("{base}/pipelines/{id}/oidctoken"),
            format!("{base}/pipelines"),
        ),
    };
    Job {
        public: CiJob {
            kind,
            id,
            request_url,
            request_token: format!("ci-request-token-{}", uuid::Uuid::new_v4().simple()),
            service_connection: service_connection.to_owned(),
            issuer,
            subject: subject.to_owned(),
        },
        lifetime,
    }
}

/// `GET /actions/{job}/idtoken?api-version=...&audience=...` and
/// `POST /pipelines/{job}/oidctoken?api-version=7.1&serviceConnectionId=...`: the CI system is
/// the path's first segment.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnCtl>,
    Path(job): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let (kind, endpoint) = if uri.path().starts_with("/actions/") {
        (CiKind::GitHub, EndpointKind::GitHubOidc)
    } else {
        (CiKind::AzurePipelines, EndpointKind::PipelinesOidc)
    };
    if let Some(faulted) = shared.enter(endpoint, &job, &conn).await {
        return faulted;
    }
    let query = Form::parse(query.unwrap_or_default().as_bytes());
    let Some((job, lifetime)) = find(&shared, &job, kind, &headers) else {
        return refusal(kind);
    };
    match kind {
        CiKind::GitHub => github(&shared, &job, lifetime, &query),
        CiKind::AzurePipelines => pipelines(&shared, &job, lifetime, &query),
    }
}

/// GitHub's answer: `{"count", "value"}`.
fn github(shared: &Shared, job: &CiJob, lifetime: Duration, query: &Form) -> Response {
    // Without `audience`, GitHub's default: the URL of the repository owner.
    let owner = job
        .subject
        .strip_prefix("repo:")
        .and_then(|s| s.split('/').next())
        .unwrap_or("owner");
    let default_audience = format!("https://github.com/{owner}");
    let audience = query.get("audience").unwrap_or(&default_audience);
    let now = shared.now();
    let token = shared.keys.cluster.sign_infallible(&json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": job.subject,
        "aud": audience,
        "ref": "refs/heads/main",
        "repository": job.subject.strip_prefix("repo:").and_then(|s| s.split(':').next()),
        "run_id": job.id,
        "event_name": "push",
        "iss": job.issuer,
        "nbf": now,
        "iat": now,
        "exp": now + secs(lifetime),
    }));
    json(StatusCode::OK, &json!({"count": 1, "value": token}))
}

/// Azure DevOps' answer: `{"oidcToken"}` for the job's service connection.
fn pipelines(shared: &Shared, job: &CiJob, lifetime: Duration, query: &Form) -> Response {
    if query.get("api-version").is_none() {
        // Azure DevOps REST APIs refuse a request without an api-version with 400.
        return devops_error(
            StatusCode::BAD_REQUEST,
            "No api-version was supplied for the request.",
        );
    }
    if query.get("serviceConnectionId") != Some(job.service_connection.as_str()) {
        // Guessed status: the answer to an unknown service connection is not documented.
        return devops_error(
            StatusCode::NOT_FOUND,
            "The service connection does not exist or has not been authorized for use.",
        );
    }
    let now = shared.now();
    let token = shared.keys.cluster.sign_infallible(&json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": job.subject,
        "aud": TOKEN_EXCHANGE_AUDIENCE,
        "iss": job.issuer,
        "nbf": now,
        "iat": now,
        "exp": now + secs(lifetime),
    }));
    json(StatusCode::OK, &json!({"oidcToken": token}))
}

/// The job `id` of `kind` whose request token `headers` carry as a Bearer token, and its tokens'
/// lifetime.
fn find(shared: &Shared, id: &str, kind: CiKind, headers: &HeaderMap) -> Option<(CiJob, Duration)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let jobs = lock(&shared.ci);
    jobs.0
        .get(id)
        .filter(|job| job.public.kind == kind && bearer == Some(&job.public.request_token))
        .map(|job| (job.public.clone(), job.lifetime))
}

/// The answer to a request without the job's token. Guessed: the services' answer to a wrong or
/// missing token is undocumented; 401.
fn refusal(kind: CiKind) -> Response {
    match kind {
        CiKind::AzurePipelines => devops_error(
            StatusCode::UNAUTHORIZED,
            "TF400813: The user '' is not authorized to access this resource.",
        ),
        CiKind::GitHub => json(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Bad credentials"}),
        ),
    }
}

/// An Azure DevOps error answer, with the diagnostic headers its clients report.
fn devops_error(status: StatusCode, message: &str) -> Response {
    let mut response = json(
        status,
        &json!({"message": message, "typeKey": "VssServiceException"}),
    );
    for name in ["x-vss-e2eid", "x-msedge-ref"] {
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}
