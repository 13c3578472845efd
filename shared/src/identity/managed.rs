//! Managed identity tokens from the two documented endpoints, called directly.
//!
//! `azure_identity`'s managed identity credential chooses its endpoint from the process
//! environment (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`, ...) whatever the broker chose, and its client
//! reads the environment's proxies. Here the broker's choice is the request: IMDS at
//! `http://169.254.169.254/metadata/identity/oauth2/token` (`Metadata: true`, api-version
//! 2018-02-01) or the App Service endpoint from the broker's `Env` (`X-IDENTITY-HEADER`,
//! api-version 2019-08-01). Both are local to the machine (link-local or loopback), so requests
//! to them never go through a proxy: the header is a secret, and a proxy could answer with a token
//! of its own.
//!
//! IMDS answers 410 while the VM boots and 429/5xx under load: those are retried with backoff
//! (and `Retry-After`) within the fetch's deadline, as IMDS's guidance asks.

use super::answer::{EntraToken, error_summary, token_from_answer};
use crate::error::{Error, one_line};
use crate::http::error_chain;
use crate::retry::{Attempt, answer_of, with_retries};
use crate::secret::Secret;

/// IMDS's token endpoint.
const IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Which managed identity endpoint to ask.
pub(crate) enum Endpoint<'a> {
    /// The instance metadata service.
    Imds,
    /// The App Service / Functions / Container Apps endpoint and its secret header.
    AppService { url: &'a str, header: &'a Secret },
}

impl Endpoint<'_> {
    /// The endpoint's URL (without a query), its api-version, and the query parameter that
    /// names a user-assigned identity by ARM resource id.
    fn protocol(&self) -> (&str, &'static str, &'static str) {
        match self {
            Endpoint::Imds => (IMDS_URL, "2018-02-01", "msi_res_id"),
            Endpoint::AppService { url, .. } => (url, "2019-08-01", "mi_res_id"),
        }
    }

    /// The request URL for `scope` as `id`: a client id, or an ARM resource id (a value
    /// containing `/subscriptions/`).
    fn url(&self, id: Option<&str>, scope: &str) -> Result<url::Url, String> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let (url, api_version, resource_id_param) = self.protocol();
        let mut query = vec![("api-version", api_version), ("resource", resource)];
        if let Some(id) = id {
            if id.to_ascii_lowercase().contains("/subscriptions/") {
                query.push((resource_id_param, id));
            } else {
                query.push(("client_id", id));
            }
        }
        url::Url::parse_with_params(url, &query).map_err(|_| format!("{url} is not a URL"))
    }

    /// A GET of `url` with the header the endpoint requires.
    fn request(&self, http: &reqwest::Client, url: &url::Url) -> reqwest::RequestBuilder {
        let request = http.get(url.clone());
        match self {
            Endpoint::Imds => request.header("Metadata", "true"),
            Endpoint::AppService { header, .. } => {
                request.header("X-IDENTITY-HEADER", header.expose())
            }
        }
    }
}

/// A token for `scope` from the managed identity `endpoint`; `id` picks a user-assigned identity
/// by client id, or by ARM resource id (a value containing `/subscriptions/`).
pub(crate) async fn get_token(
    endpoint: Endpoint<'_>,
    id: Option<&str>,
    scope: &str,
    source_name: &'static str,
    http: &reqwest::Client,
) -> Result<EntraToken, Error> {
    let fail = |detail: String| Error::Entra {
        source_name,
        detail: one_line(&detail),
    };
    let full = endpoint.url(id, scope).map_err(fail)?;
    let body = with_retries(|| ask(&endpoint, http, &full, &fail))
        .await
        .map_err(Attempt::into_inner)?;
    let url = endpoint.protocol().0;
    token_from_answer(&body).map_err(|why| fail(format!("{url} answered {why}")))
}

/// One request to the endpoint: the body of a 200 answer, else what the failure means. `fail`
/// makes the error of a detail.
async fn ask(
    endpoint: &Endpoint<'_>,
    http: &reqwest::Client,
    full: &url::Url,
    fail: &impl Fn(String) -> Error,
) -> Result<Vec<u8>, Attempt> {
    let url = endpoint.protocol().0;
    let response = endpoint.request(http, full).send().await.map_err(|e| {
        let error = fail(format!("{url}: {}", error_chain(&e)));
        let heals = (e.is_connect() || e.is_timeout()) && !crate::http::is_certificate_failure(&e);
        Attempt::healing_if(heals, error)
    })?;
    // 404: IMDS is still starting, or the identity is being assigned; 410: the VM boots.
    answer_of(
        response,
        &[404, 410, 429, 500, 502, 503, 504],
        |e| fail(format!("{url}: {e}")),
        |status, _, body| {
            fail(format!(
                "{url} answered HTTP {status}{}",
                error_summary(body)
            ))
        },
    )
    .await
}
