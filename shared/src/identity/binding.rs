//! AKS identity bindings: a pod's service-account token exchanged for an Entra access token at
//! the cluster's local token authority.
//!
//! The authority is served by the cluster at `https://<sni-name>`; nodes reach it by connecting to
//! the API server's address on port 443 with TLS server name `<sni-name>`, trusting only the
//! cluster CA. The request is an OAuth client-credentials grant whose client assertion is the
//! service-account token (audience `api://AKSIdentityBinding`); the answer is
//! `{"access_token", "expires_in"}`. It never goes through a proxy: the API server is on the
//! node's own network, and a proxy would see the pod's token.

use super::answer::{EntraToken, error_summary, token_from_answer};
use crate::error::{Error, one_line};
use crate::http::{error_chain, is_certificate_failure, read_body};
use crate::secret::Secret;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// Where AKS nodes keep the cluster CA, the default trust root for the local authority (on
/// Windows nodes AgentBaker writes it to `c:\k\ca.crt`: `staging/cse/windows/kubeletfunc.ps1`).
pub const KUBERNETES_CA_FILE: &str = if cfg!(windows) {
    "C:\\k\\ca.crt"
} else {
    "/etc/kubernetes/certs/ca.crt"
};
/// The service-account token audience AKS configures for identity bindings.
pub const IB_SCOPE_AUDIENCE: &str = "api://AKSIdentityBinding";

const SOURCE: &str = "identity bindings";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the request needs, borrowed from [`super::Identity::IdentityBinding`].
pub(crate) struct Request<'a> {
    pub sni_name: &'a str,
    pub apiserver: &'a str,
    pub ca_file: &'a Path,
    pub client_id: &'a str,
    pub assertion: &'a Secret,
    pub scope: &'a str,
}

/// Asks the local authority for an access token for `scope`.
pub(crate) async fn get_token(req: Request<'_>, deadline: Duration) -> Result<EntraToken, Error> {
    let fail = |detail: String| Error::Entra {
        source_name: SOURCE,
        detail: one_line(&detail),
    };
    let (client, ip) = authority_client(req.sni_name, req.apiserver, req.ca_file, deadline)
        .await
        .map_err(&fail)?;
    let url = format!("https://{}/", req.sni_name);
    let where_ = format!("the local authority {url} (at {ip}:443)");
    let response = client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_id", req.client_id),
            ("scope", req.scope),
            ("client_assertion", req.assertion.expose()),
        ])
        .send()
        .await
        .map_err(|e| {
            let chain = error_chain(&e);
            let hint = if is_certificate_failure(&e) {
                format!(
                    "; check that {} is the cluster CA and --ib-sni-name names the authority",
                    req.ca_file.display()
                )
            } else {
                String::new()
            };
            fail(format!("{where_}: {chain}{hint}"))
        })?;
    let status = response.status();
    let body = read_body(response)
        .await
        .map_err(|e| fail(format!("{where_}: {e}")))?;
    if !status.is_success() {
        return Err(fail(format!(
            "{where_} refused client id {} with HTTP {}{}",
            req.client_id,
            status.as_u16(),
            error_summary(&body)
        )));
    }
    token_from_answer(&body)
        .map_err(|why| fail(format!("{where_} answered HTTP {} {why}", status.as_u16())))
}

/// A client that reaches `https://<sni_name>` at `apiserver`:443, trusting only `ca_file`, never
/// through a proxy; and the address it connects to.
async fn authority_client(
    sni_name: &str,
    apiserver: &str,
    ca_file: &Path,
    deadline: Duration,
) -> Result<(reqwest::Client, IpAddr), String> {
    let ip = resolve(apiserver)
        .await
        .map_err(|e| format!("--ib-apiserver-ip {apiserver}: {e}"))?;
    let pem = crate::http::read_ca_bundle(ca_file, "the cluster CA")?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            format!(
                "the cluster CA {} holds no PEM certificate",
                ca_file.display()
            )
        })?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only(certs)
        .resolve(sni_name, SocketAddr::new(ip, 443))
        .connect_timeout(Duration::from_secs(10).min(deadline))
        .timeout(deadline)
        .user_agent(concat!("acr-broker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok((client, ip))
}

/// Checks that the local authority at `https://<sni_name>` answers over TLS verified with
/// `ca_file`, reached at `apiserver`:443, by sending a request with no token (it sends no
/// secret). `Ok` holds the HTTP status (a refusal is expected); `Err` says why no answer came.
pub fn probe_identity_binding(
    sni_name: &str,
    apiserver: &str,
    ca_file: &Path,
    timeout: Duration,
) -> Result<u16, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let (client, ip) = authority_client(sni_name, apiserver, ca_file, timeout).await?;
        let response = client
            .post(format!("https://{sni_name}/"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| format!("https://{sni_name}/ at {ip}:443: {}", error_chain(&e)))?;
        Ok(response.status().as_u16())
    })
}

/// The API server's address: an IP as given, else the first address the name resolves to.
async fn resolve(apiserver: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = apiserver.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::net::lookup_host((apiserver, 443))
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| "resolves to no address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_ca_is_never_read_from_a_fifo() {
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca.crt");
        let _writer = crate::files::fifo::FifoWriter::new(&ca, "");
        let e = probe_identity_binding("sni.example", "127.0.0.1", &ca, Duration::from_secs(5))
            .unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
