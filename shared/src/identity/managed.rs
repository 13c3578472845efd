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

use super::entra::{EntraToken, error_summary, token_from_answer};
use crate::error::{Error, one_line};
use crate::exchange::{Attempt, with_retries};
use crate::http::{error_chain, read_body};
use crate::secret::Secret;
use std::net::IpAddr;
use std::time::Duration;

/// IMDS's token endpoint.
const IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Which managed identity endpoint to ask.
pub(crate) enum Endpoint<'a> {
    /// The instance metadata service.
    Imds,
    /// The App Service / Functions / Container Apps endpoint and its secret header.
    AppService { url: &'a str, header: &'a Secret },
}

/// Whether `url` names a host on this machine (loopback, link-local or `localhost`): such
/// endpoints are reached directly, never through a proxy.
pub(crate) fn is_local(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || IpAddr::V6(ip).to_canonical().is_loopback() || {
                let first = ip.segments()[0];
                first & 0xffc0 == 0xfe80
            }
        }
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
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
    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    let (url, api_version, resource_id_param) = match &endpoint {
        Endpoint::Imds => (IMDS_URL, "2018-02-01", "msi_res_id"),
        Endpoint::AppService { url, .. } => (*url, "2019-08-01", "mi_res_id"),
    };
    let mut query = vec![("api-version", api_version), ("resource", resource)];
    if let Some(id) = id {
        if id.to_ascii_lowercase().contains("/subscriptions/") {
            query.push((resource_id_param, id));
        } else {
            query.push(("client_id", id));
        }
    }
    let full = url::Url::parse_with_params(url, &query)
        .map_err(|_| fail(format!("{url} is not a URL")))?;
    let attempt = || async {
        let mut request = http.get(full.clone());
        request = match &endpoint {
            Endpoint::Imds => request.header("Metadata", "true"),
            Endpoint::AppService { header, .. } => {
                request.header("X-IDENTITY-HEADER", header.expose())
            }
        };
        let response = request.send().await.map_err(|e| {
            let error = fail(format!("{url}: {}", error_chain(&e)));
            if e.is_connect() || e.is_timeout() {
                Attempt::Transient {
                    error,
                    retry_after: None,
                }
            } else {
                Attempt::Fatal(error)
            }
        })?;
        let status = response.status().as_u16();
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_body(response)
            .await
            .map_err(|e| Attempt::Fatal(fail(format!("{url}: {e}"))))?;
        if status == 200 {
            return Ok(body);
        }
        let error = fail(format!(
            "{url} answered HTTP {status}{}",
            error_summary(&body)
        ));
        // 404: IMDS is still starting, or the identity is being assigned; 410: the VM boots.
        if matches!(status, 404 | 410 | 429 | 500 | 502 | 503 | 504) {
            Err(Attempt::Transient {
                error,
                retry_after: wait,
            })
        } else {
            Err(Attempt::Fatal(error))
        }
    };
    let body = with_retries(attempt).await.map_err(Attempt::into_inner)?;
    token_from_answer(&body).map_err(|why| fail(format!("{url} answered {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoints() {
        for url in [
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://127.0.0.1:41741/msi/token",
            "https://localhost:443/msi/token",
            "http://[::1]:8081/msi/token",
            "http://[fe80::1]/msi/token",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "https://10.0.0.4/msi/token",
            "https://login.microsoftonline.com/",
            "https://localhost.evil.example/",
            "not a url",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }
}
