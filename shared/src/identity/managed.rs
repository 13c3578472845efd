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
//! An Azure Arc-enabled server's agent (HIMDS) serves the same kind of endpoint on loopback
//! (`IDENTITY_ENDPOINT`, api-version 2020-06-01), but answers a first request with 401 and
//! `WWW-Authenticate: Basic realm=<key file>`; the key file is read only where the agent keeps
//! them (`/var/opt/azcmagent/tokens/*.key`, at most 4096 bytes, as the Azure SDKs check, and
//! owned by root or the agent: [`crate::files::read_agent_key`]) and its content sent back as
//! `Authorization: Basic <content>`. Reading the file is the proof that the caller may use the
//! machine's identity (root or the `himds` group). See
//! <https://learn.microsoft.com/en-us/azure/azure-arc/servers/managed-identity-authentication>.
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

/// Where the Arc agent keeps the key files its challenges name (Linux).
pub(crate) const ARC_TOKENS_FOLDER: &str = "/var/opt/azcmagent/tokens";
/// The largest key file read (the Azure SDKs' limit).
const ARC_KEY_LIMIT: usize = 4096;
/// The Arc agent's api-version.
const ARC_API_VERSION: &str = "2020-06-01";

/// A token for `scope` from the Azure Arc agent at `endpoint`: the challenge, the key file it
/// names, the request again with the key. `client_id` (a user-assigned identity) is refused:
/// Arc has only the machine's system-assigned identity.
pub(crate) async fn arc_token(
    endpoint: &str,
    client_id: Option<&str>,
    scope: &str,
    source_name: &'static str,
    http: &reqwest::Client,
) -> Result<EntraToken, Error> {
    let fail = |detail: String| Error::Entra {
        source_name,
        detail: one_line(&detail),
    };
    if let Some(id) = client_id {
        return Err(fail(format!(
            "Azure Arc has only the machine's system-assigned identity, but AZURE_CLIENT_ID={id} asks for a user-assigned one; unset AZURE_CLIENT_ID"
        )));
    }
    // The key proves access to a file on this machine: it never leaves it.
    if !crate::http::is_local(endpoint) {
        return Err(fail(format!(
            "IDENTITY_ENDPOINT {endpoint:?} is not on this machine, where the Azure Arc agent listens (http://localhost:40342); refusing to send it the agent's key"
        )));
    }
    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    let url = url::Url::parse_with_params(
        endpoint,
        &[("api-version", ARC_API_VERSION), ("resource", resource)],
    )
    .map_err(|_| fail(format!("IDENTITY_ENDPOINT {endpoint:?} is not a URL")))?;
    let body = with_retries(|| arc_ask(http, endpoint, &url, &fail))
        .await
        .map_err(Attempt::into_inner)?;
    token_from_answer(&body).map_err(|why| fail(format!("{endpoint} answered {why}")))
}

/// The challenge and the answer to it: the body of the 200 answer.
async fn arc_ask(
    http: &reqwest::Client,
    endpoint: &str,
    url: &url::Url,
    fail: &impl Fn(String) -> Error,
) -> Result<Vec<u8>, Attempt> {
    let send_failed = |e: reqwest::Error| {
        let error = fail(format!("{endpoint}: {}", error_chain(&e)));
        Attempt::healing_if(e.is_connect() || e.is_timeout(), error)
    };
    let first = http
        .get(url.clone())
        .header("Metadata", "true")
        .send()
        .await
        .map_err(send_failed)?;
    let status = first.status().as_u16();
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status != 401 {
        // No challenge: whatever it is (a retryable 5xx, an error), the answer says so.
        return arc_answer(
            first,
            endpoint,
            fail,
            "without the Azure Arc agent's challenge",
        )
        .await;
    }
    let path = challenge
        .as_deref()
        .and_then(arc_key_path)
        .ok_or_else(|| {
            Attempt::Fatal(fail(format!(
                "{endpoint} answered 401 without a `Basic realm=<key file>` challenge; is this the Azure Arc agent?"
            )))
        })?;
    let key = arc_key(&path).map_err(|why| Attempt::Fatal(fail(why)))?;
    let second = http
        .get(url.clone())
        .header("Metadata", "true")
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Basic {}", key.expose()),
        )
        .send()
        .await
        .map_err(send_failed)?;
    arc_answer(second, endpoint, fail, "to the key of its challenge").await
}

/// The body of the Arc agent's 200 `response`; another status fails with `context` (what the
/// request was) in its message, and is retried when it may heal (429, 5xx).
async fn arc_answer(
    response: reqwest::Response,
    endpoint: &str,
    fail: &impl Fn(String) -> Error,
    context: &str,
) -> Result<Vec<u8>, Attempt> {
    answer_of(
        response,
        &[429, 500, 502, 503, 504],
        |e| fail(format!("{endpoint}: {e}")),
        |status, _, body| {
            fail(format!(
                "{endpoint} answered HTTP {status} {context}{}",
                error_summary(body)
            ))
        },
    )
    .await
}

/// The key file a `Basic realm=<path>` challenge names (quoted or not).
fn arc_key_path(header: &str) -> Option<std::path::PathBuf> {
    let (scheme, rest) = header.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let (name, value) = rest.trim().split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("realm") {
        return None;
    }
    let value = value.trim().trim_matches('"');
    (!value.is_empty()).then(|| std::path::PathBuf::from(value))
}

/// The content of the key file `path` names, after the Azure SDKs' checks: in the agent's token
/// folder (exactly, no `..`), named `*.key`, at most 4096 bytes; and ours: owned by root or the
/// agent, not writable by others, no symlink.
fn arc_key(path: &std::path::Path) -> Result<Secret, String> {
    let shown = path.display();
    let in_folder = path.parent() == Some(std::path::Path::new(ARC_TOKENS_FOLDER))
        && path
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir));
    if !in_folder {
        return Err(format!(
            "the Azure Arc agent's challenge names {shown}, which is not in {ARC_TOKENS_FOLDER}; refusing to read it"
        ));
    }
    if path.extension().is_none_or(|e| e != "key") {
        return Err(format!(
            "the Azure Arc agent's challenge names {shown}, which is not a .key file; refusing to read it"
        ));
    }
    let bytes = match crate::files::read_agent_key(path, ARC_KEY_LIMIT) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(format!(
                "the Azure Arc agent's key file {shown} does not exist"
            ));
        }
        Err(e) => {
            return Err(format!(
                "{e} (reading the Azure Arc agent's key needs root or the himds group)"
            ));
        }
    };
    let key = String::from_utf8(bytes)
        .map_err(|_| format!("the Azure Arc agent's key file {shown} is not text"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("the Azure Arc agent's key file {shown} is empty"));
    }
    Ok(Secret::new(key.to_string()))
}

#[cfg(test)]
mod arc_tests {
    use super::*;

    #[test]
    fn challenges_name_a_key_file() {
        let p = |h: &str| arc_key_path(h).map(|p| p.display().to_string());
        assert_eq!(
            p("Basic realm=/var/opt/azcmagent/tokens/a.key").as_deref(),
            Some("/var/opt/azcmagent/tokens/a.key")
        );
        assert_eq!(
            p("basic realm=\"/var/opt/azcmagent/tokens/a.key\"").as_deref(),
            Some("/var/opt/azcmagent/tokens/a.key")
        );
        for bad in [
            "Bearer realm=/x.key",
            "Basic",
            "Basic realm=",
            "Basic other=/x.key",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_files_elsewhere_or_of_another_kind_are_not_read() {
        for (path, says) in [
            ("/etc/shadow", "not in /var/opt/azcmagent/tokens"),
            ("/var/opt/azcmagent/tokens/../../../etc/a.key", "not in"),
            ("/var/opt/azcmagent/tokens/sub/a.key", "not in"),
            ("/var/opt/azcmagent/tokens/a.txt", "not a .key file"),
        ] {
            let e = arc_key(std::path::Path::new(path)).unwrap_err();
            assert!(e.contains(says), "{path}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}
