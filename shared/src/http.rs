//! The one place that builds HTTP clients and reads response bodies.
//!
//! Clients use rustls with the platform's roots plus any bundle named by `SSL_CERT_FILE`, honour
//! `HTTPS_PROXY`/`NO_PROXY`, never follow redirects (a token must not be replayed to another
//! host), and time out. Bodies are read up to a limit, so a hostile or broken server cannot make
//! the process grow without bound.

use crate::config::Env;
use std::time::Duration;

/// Largest response body read from any token endpoint.
pub const MAX_BODY: usize = 256 * 1024;

/// Builds the HTTP client used for every request of one fetch.
pub fn client(env: &Env, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
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
