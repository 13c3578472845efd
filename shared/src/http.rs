//! The one place that builds HTTP clients and reads response bodies.
//!
//! Clients use rustls with the platform's roots plus any bundle named by `SSL_CERT_FILE`, honour
//! the proxy variables of the broker's [`Env`] (never the process environment: the `Env` the
//! broker read is the only one any request uses), never follow redirects (a token must not be replayed to another
//! host), and time out. Bodies are read up to a limit, so a hostile or broken server cannot make
//! the process grow without bound.

use crate::config::Env;
use std::time::Duration;

/// Largest response body read from any token endpoint.
pub const MAX_BODY: usize = 256 * 1024;

/// Builds the HTTP client used for every request of one fetch: through the proxies `env` names.
pub fn client(env: &Env, timeout: Duration) -> Result<reqwest::Client, String> {
    build(env, timeout, true)
}

/// Like [`client`], but never through a proxy: for identity endpoints on this machine.
pub fn direct_client(env: &Env, timeout: Duration) -> Result<reqwest::Client, String> {
    build(env, timeout, false)
}

/// The proxies `env` names: `HTTPS_PROXY` (or `https_proxy`, else `ALL_PROXY`/`all_proxy`) for
/// https URLs, `HTTP_PROXY` (or `http_proxy`, else `ALL_PROXY`/`all_proxy`) for http ones, each
/// bypassed for `NO_PROXY` (`no_proxy`). Errors name the variable, never its value (it may hold
/// a password).
fn proxies(env: &Env) -> Result<Vec<reqwest::Proxy>, String> {
    let first = |names: &[&'static str]| {
        names
            .iter()
            .find_map(|n| env.get(n).map(|v| (*n, v.trim().to_string())))
    };
    let no_proxy =
        first(&["NO_PROXY", "no_proxy"]).and_then(|(_, list)| reqwest::NoProxy::from_string(&list));
    let mut out = Vec::new();
    if let Some((name, url)) = first(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
        let p = reqwest::Proxy::https(url.as_str())
            .map_err(|_| format!("{name} is not a proxy URL"))?;
        out.push(p.no_proxy(no_proxy.clone()));
    }
    if let Some((name, url)) = first(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]) {
        let p =
            reqwest::Proxy::http(url.as_str()).map_err(|_| format!("{name} is not a proxy URL"))?;
        out.push(p.no_proxy(no_proxy));
    }
    Ok(out)
}

fn build(env: &Env, timeout: Duration, proxied: bool) -> Result<reqwest::Client, String> {
    // No system proxies: only what `env` says.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("acr-broker/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = env.get("SSL_CERT_FILE") {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read SSL_CERT_FILE {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("SSL_CERT_FILE {path} is not a PEM bundle: {e}"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if proxied {
        for p in proxies(env)? {
            builder = builder.proxy(p);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than [`MAX_BODY`]: will not heal.
    TooLarge,
    /// The connection failed while reading (cut short, reset): may heal.
    Read(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => write!(f, "response body larger than {MAX_BODY} bytes"),
            BodyError::Read(e) => write!(f, "reading the response failed: {e}"),
        }
    }
}

/// Reads a response body, failing when it exceeds [`MAX_BODY`].
pub async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|l| l > MAX_BODY as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes on one line (reqwest hides the interesting part in the sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}
