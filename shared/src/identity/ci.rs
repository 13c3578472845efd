//! Client assertions fetched from a CI system's OIDC endpoint, fresh for each Entra request, so a
//! job of any length always presents an unexpired one (the endpoints issue tokens that live
//! minutes).
//!
//! - GitHub Actions: `GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=api://AzureADTokenExchange`
//!   with `Authorization: Bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`, answered `{"value": "<jwt>"}`
//!   (GitHub's documented OIDC protocol, what `@actions/core`'s `getIDToken` does).
//! - Azure Pipelines: `POST <SYSTEM_OIDCREQUESTURI>?api-version=7.1&serviceConnectionId=<id>`
//!   with `Authorization: Bearer <SYSTEM_ACCESSTOKEN>`, `X-TFS-FedAuthRedirect: Suppress` and an
//!   empty body, answered `{"oidcToken": "<jwt>"}` (as `azure_identity`'s
//!   `AzurePipelinesCredential` does; its errors name the `x-vss-e2eid` and `x-msedge-ref`
//!   headers, which Azure DevOps support asks for).
//!
//! Requests go through the fetch's client (the proxies the settings name, no redirects, so the
//! bearer token never follows one); connection failures, timeouts, 408, 429 and 5xx are retried
//! as for the other token endpoints. Errors are one line naming the endpoint's host and what to
//! check; the request token and the assertion are never in them.

use super::answer::error_summary;
use crate::error::{Error, one_line};
use crate::http::error_chain;
use crate::retry::{Attempt, answer_of, with_retries};
use crate::secret::Secret;
use std::time::Duration;

/// The audience Entra's federated credentials expect by default (public cloud).
const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The Azure DevOps REST API version `AzurePipelinesCredential` asks the OIDC endpoint with.
const PIPELINES_API_VERSION: &str = "7.1";

/// A CI system's OIDC token endpoint and the bearer token it requires.
pub(crate) enum Endpoint<'a> {
    /// GitHub Actions: the job's `ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`.
    GitHub { url: &'a str, token: &'a Secret },
    /// Azure Pipelines: `SYSTEM_OIDCREQUESTURI`, `SYSTEM_ACCESSTOKEN` and the service
    /// connection whose federated credential the token is for.
    Pipelines {
        uri: &'a str,
        token: &'a Secret,
        service_connection: &'a str,
    },
}

impl Endpoint<'_> {
    /// The variable that names the endpoint, for messages.
    fn variable(&self) -> &'static str {
        match self {
            Endpoint::GitHub { .. } => "ACTIONS_ID_TOKEN_REQUEST_URL",
            Endpoint::Pipelines { .. } => "SYSTEM_OIDCREQUESTURI",
        }
    }

    /// What to check when the endpoint refuses or fails.
    fn advice(&self) -> &'static str {
        match self {
            Endpoint::GitHub { .. } => {
                "check that the workflow or job has `permissions: id-token: write` and that ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are this job's"
            }
            Endpoint::Pipelines { .. } => {
                "check the service connection id (AZURESUBSCRIPTION_SERVICE_CONNECTION_ID) and that the step maps SYSTEM_ACCESSTOKEN: $(System.AccessToken) into its environment"
            }
        }
    }

    /// The answer's field that holds the token.
    fn field(&self) -> &'static str {
        match self {
            Endpoint::GitHub { .. } => "value",
            Endpoint::Pipelines { .. } => "oidcToken",
        }
    }

    /// The request URL, built with a URL parser: the configured one keeps its query
    /// (`?api-version=...` on GitHub) and gets the parameters appended.
    fn url(&self) -> Result<url::Url, String> {
        let (raw, extra): (&str, Vec<(&str, &str)>) = match self {
            Endpoint::GitHub { url, .. } => (url, vec![("audience", TOKEN_EXCHANGE_AUDIENCE)]),
            Endpoint::Pipelines {
                uri,
                service_connection,
                ..
            } => (
                uri,
                vec![
                    ("api-version", PIPELINES_API_VERSION),
                    ("serviceConnectionId", service_connection),
                ],
            ),
        };
        let variable = self.variable();
        let mut url = url::Url::parse(raw.trim())
            .map_err(|_| format!("{variable} is not a URL ({})", self.advice()))?;
        if url.scheme() != "https" || url.host_str().is_none() {
            return Err(format!(
                "{variable} must be an https:// URL: it carries a bearer token"
            ));
        }
        url.query_pairs_mut().extend_pairs(extra);
        Ok(url)
    }

    /// The request, with the bearer token and the headers the endpoint expects.
    fn request(&self, http: &reqwest::Client, url: &url::Url) -> reqwest::RequestBuilder {
        match self {
            Endpoint::GitHub { token, .. } => http
                .get(url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json"),
            Endpoint::Pipelines { token, .. } => http
                .post(url.clone())
                .bearer_auth(token.expose())
                .header("X-TFS-FedAuthRedirect", "Suppress")
                .body(""),
        }
    }

    /// The diagnostic headers of an Azure DevOps error answer, as `AzurePipelinesCredential`
    /// reports them; nothing for GitHub.
    fn error_headers(&self, headers: &reqwest::header::HeaderMap) -> String {
        if matches!(self, Endpoint::GitHub { .. }) {
            return String::new();
        }
        ["x-vss-e2eid", "x-msedge-ref"]
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                let value: String = value.chars().take(100).collect();
                Some(format!(" {name}: {value}"))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A fresh assertion from `endpoint`, within three quarters of `deadline` (Entra needs the rest).
/// `source_name` names the identity source in errors.
pub(crate) async fn assertion(
    endpoint: &Endpoint<'_>,
    http: &reqwest::Client,
    source_name: &'static str,
    deadline: Duration,
) -> Result<Secret, Error> {
    let fail = |detail: String| Error::Entra {
        source_name,
        detail: one_line(&detail),
    };
    let url = endpoint.url().map_err(fail)?;
    let host = url.host_str().unwrap_or_default().to_string();
    let what = format!("the OIDC token endpoint {host}");
    let within = deadline * 3 / 4;
    // When time runs out between retries, the last failure says more than the deadline does.
    let last = std::sync::Mutex::new(None::<String>);
    let attempt = || async {
        let result = ask(endpoint, http, &url, &what, &fail).await;
        if let Err(Attempt::Transient {
            error: Error::Entra { detail, .. },
            ..
        }) = &result
            && let Ok(mut last) = last.lock()
        {
            *last = Some(detail.clone());
        }
        result
    };
    let body = tokio::time::timeout(within, with_retries(attempt))
        .await
        .map_err(|_| {
            let seconds = format!("{:.0}", within.as_secs_f32());
            match last.lock().ok().and_then(|mut l| l.take()) {
                Some(detail) => fail(format!("{detail} (gave up after {seconds} s)")),
                None => fail(format!(
                    "{what} did not answer within {seconds} s; {}",
                    endpoint.advice()
                )),
            }
        })?
        .map_err(Attempt::into_inner)?;
    read_answer(&body, endpoint.field())
        .map_err(|why| fail(format!("{what} answered {why}; {}", endpoint.advice())))
}

/// One request: the body of a 200 answer, else what the failure means.
async fn ask(
    endpoint: &Endpoint<'_>,
    http: &reqwest::Client,
    url: &url::Url,
    what: &str,
    fail: &impl Fn(String) -> Error,
) -> Result<Vec<u8>, Attempt> {
    let advice = endpoint.advice();
    let response = endpoint.request(http, url).send().await.map_err(|e| {
        // Asking again has no side effect: a cut connection is retried too.
        let heals = crate::http::send_may_heal(&e);
        // Without the URL: one line, and the host is named already.
        let error = fail(format!(
            "{what} did not answer: {}; {advice}",
            error_chain(&e.without_url())
        ));
        Attempt::healing_if(heals, error)
    })?;
    answer_of(
        response,
        &[408, 429, 500, 502, 503, 504],
        |e| fail(format!("{what}: {e}")),
        |status, headers, body| {
            fail(format!(
                "{what} answered HTTP {status}{}{}; {advice}",
                error_summary(body),
                endpoint.error_headers(headers)
            ))
        },
    )
    .await
}

/// The JWT in `field` of a JSON answer; the error completes "answered ...", never quoting it.
fn read_answer(body: &[u8], field: &str) -> Result<Secret, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "something that is not JSON".to_string())?;
    let token = value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("JSON without a `{field}`"))?;
    if crate::token::read_claims(token).is_none() {
        return Err(format!("a `{field}` that is not a JWT"));
    }
    Ok(Secret::new(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_query_and_get_the_parameters_appended() {
        let token = Secret::new("request-token");
        let github = Endpoint::GitHub {
            url: "https://pipelines.actions.example/abc/idtoken?api-version=2.0",
            token: &token,
        };
        assert_eq!(
            github.url().unwrap().as_str(),
            "https://pipelines.actions.example/abc/idtoken?api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange"
        );
        let pipelines = Endpoint::Pipelines {
            uri: "https://dev.azure.example/org/p/_apis/distributedtask/hubs/build/plans/1/jobs/2/oidctoken",
            token: &token,
            service_connection: "sc 1",
        };
        assert!(
            pipelines
                .url()
                .unwrap()
                .as_str()
                .ends_with("/oidctoken?api-version=7.1&serviceConnectionId=sc+1")
        );
        for bad in ["not a url", "http://plain.example/x?a=1"] {
            let e = Endpoint::GitHub {
                url: bad,
                token: &token,
            }
            .url()
            .unwrap_err();
            assert!(e.contains("ACTIONS_ID_TOKEN_REQUEST_URL"), "{e}");
        }
    }

    #[test]
    fn answers_must_hold_a_jwt_in_the_field() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        let ok = format!(r#"{{"count":1,"value":"{jwt}"}}"#);
        assert_eq!(read_answer(ok.as_bytes(), "value").unwrap().expose(), jwt);
        for (body, why) in [
            ("<html>", "not JSON"),
            (r#"{"oidcToken":"x"}"#, "without a `value`"),
            (r#"{"value":""}"#, "without a `value`"),
            (r#"{"value":"opaque-not-a-jwt"}"#, "not a JWT"),
        ] {
            let e = read_answer(body.as_bytes(), "value").unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
            assert!(!e.contains("opaque"), "never quoted: {e}");
        }
    }
}
