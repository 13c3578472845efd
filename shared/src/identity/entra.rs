//! Getting an Entra access token for an [`Identity`], through the `azure_identity` credentials.
//!
//! Every credential shares the broker's HTTP client (CA bundle, proxy, timeouts, no redirects)
//! and a bounded retry policy, so one fetch fits the overall deadline. The certificate source signs
//! its own client assertion from a PEM file (certificate + RSA key), which avoids OpenSSL.

use super::answer::EntraToken;
use super::{Identity, TokenRequest};
use crate::error::{Error, one_line};
use crate::secret::Secret;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{
    ClientMethodOptions, ClientOptions, ExponentialRetryOptions, RetryOptions, Transport,
};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Asks Entra (or the CLI) for a token for `scope` through an `azure_identity` credential: the
/// service principal, workload, federated and Azure CLI sources.
pub(crate) async fn get_token(request: &TokenRequest<'_>) -> Result<EntraToken, Error> {
    ask(request, credential(request)).await
}

/// Asks Entra for a token with `assertion`, fetched beforehand by the caller (the CI sources),
/// as `client_id` in `tenant`.
pub(crate) async fn get_token_with_assertion(
    request: &TokenRequest<'_>,
    tenant: &str,
    client_id: &str,
    assertion: Secret,
) -> Result<EntraToken, Error> {
    let options = client_options(request.http, request.authority, request.deadline);
    let credential = assertion_credential(tenant, client_id, StaticAssertion(assertion), options);
    ask(request, credential).await
}

/// The token `credential` (or the detail of why there is none) gets for the request's scope.
async fn ask(
    request: &TokenRequest<'_>,
    credential: Result<Arc<dyn TokenCredential>, String>,
) -> Result<EntraToken, Error> {
    let fail = |detail: String| Error::Entra {
        source_name: request.identity.source_name(),
        detail: one_line(&detail),
    };
    let credential = credential.map_err(fail)?;
    let token = credential
        .get_token(&[request.scope], None)
        .await
        .map_err(|e| fail(describe_azure_error(&e)))?;
    Ok(EntraToken {
        token: Secret::new(token.token.secret().to_string()),
        expires_at: token.expires_on.unix_timestamp(),
    })
}

/// The `azure_identity` credential for the request's identity, on the broker's client, authority
/// and retry bounds. The error is the detail of an [`Error::Entra`].
fn credential(request: &TokenRequest<'_>) -> Result<Arc<dyn TokenCredential>, String> {
    let options = client_options(request.http, request.authority, request.deadline);
    let credential: Arc<dyn TokenCredential> = match request.identity {
        Identity::ClientSecret {
            tenant,
            client_id,
            secret,
        } => {
            let secret = azure_core::credentials::Secret::new(secret.expose().to_string());
            let options = ClientSecretCredentialOptions {
                client_options: options,
            };
            ClientSecretCredential::new(tenant, client_id.clone(), secret, Some(options))
                .map_err(sdk)?
        }
        Identity::ClientCertificate {
            tenant,
            client_id,
            path,
        } => {
            let assertion = CertificateAssertion::from_file(
                path,
                request.files_from_config,
                tenant,
                client_id,
                request.authority,
            )?;
            assertion_credential(tenant, client_id, assertion, options)?
        }
        Identity::Workload {
            tenant,
            client_id,
            token_file,
        } => workload_credential(
            tenant,
            client_id,
            token_file,
            request.files_from_config,
            options,
        )?,
        Identity::Federated {
            tenant,
            client_id,
            assertion,
        }
        | Identity::FederatedToken {
            tenant,
            client_id,
            assertion,
        } => assertion_credential(
            tenant,
            client_id,
            StaticAssertion(assertion.clone()),
            options,
        )?,
        Identity::AzureCli { tenant, .. } => {
            AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: tenant.clone(),
                ..Default::default()
            }))
            .map_err(sdk)?
        }
        // Not `azure_identity` credentials: `super::token` sends these to their own modules.
        Identity::AppService { .. }
        | Identity::Imds { .. }
        | Identity::Arc { .. }
        | Identity::IdentityBinding { .. }
        | Identity::GitHubActions { .. }
        | Identity::AzurePipelines { .. } => {
            return Err("this source is not asked through azure_identity".into());
        }
    };
    Ok(credential)
}

/// An SDK error as the detail of an [`Error::Entra`].
fn sdk(e: azure_core::Error) -> String {
    e.to_string()
}

/// A client-assertion credential: a certificate's signed assertion or a federated token.
fn assertion_credential(
    tenant: &str,
    client_id: &str,
    assertion: impl ClientAssertion + 'static,
    options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>, String> {
    let options = ClientAssertionCredentialOptions {
        client_options: options,
    };
    let credential = ClientAssertionCredential::new(
        tenant.to_string(),
        client_id.to_string(),
        assertion,
        Some(options),
    )
    .map_err(sdk)?;
    Ok(credential)
}

/// Largest certificate (PEM) file read.
const MAX_CERTIFICATE: usize = 1024 * 1024;

/// The workload identity credential: the token read from `token_file` (here, not by
/// `azure_identity`, whose read is neither bounded nor safe from a FIFO) as the client assertion.
/// With `trusted` (named by a config file rule), the file is read as the config file is.
fn workload_credential(
    tenant: &str,
    client_id: &str,
    token_file: &Path,
    trusted: bool,
    options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>, String> {
    let what = "federated token file";
    let bytes = crate::files::read_named(token_file, super::MAX_TOKEN_FILE, what, trusted)?;
    let token = String::from_utf8(bytes)
        .map_err(|_| format!("{what} {} is not text", token_file.display()))?;
    let assertion = StaticAssertion(Secret::new(token.trim()));
    assertion_credential(tenant, client_id, assertion, options)
}

/// Pipeline options: our HTTP client as transport, the authority, bounded retries.
fn client_options(http: &reqwest::Client, authority: &str, deadline: Duration) -> ClientOptions {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = authority.to_string();
    let total = azure_core::time::Duration::seconds(deadline.as_secs() as i64);
    ClientOptions {
        transport: Some(Transport::new(Arc::new(BoundedTransport(http.clone())))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(300),
            max_retries: 3,
            max_total_elapsed: total,
            max_delay: azure_core::time::Duration::seconds(4),
        }),
        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
        ..Default::default()
    }
}

/// The broker's HTTP client as the `azure_identity` transport, reading every response body up to
/// [`crate::http::MAX_BODY`]: a hostile or broken endpoint cannot make the process grow without
/// bound. An oversized body is an error that is not retried.
#[derive(Debug)]
struct BoundedTransport(reqwest::Client);

#[async_trait::async_trait]
impl azure_core::http::HttpClient for BoundedTransport {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        use futures::StreamExt;
        let response = self.0.execute_request(request).await.map_err(|e| {
            // A certificate that does not verify will not on retry: report it as a kind the
            // retry policy leaves alone (it retries I/O and connection errors).
            if crate::http::is_certificate_failure(&e) {
                let text = describe_azure_error(&e);
                azure_core::Error::with_message(azure_core::error::ErrorKind::Other, text)
            } else {
                e
            }
        })?;
        let (status, headers, mut body) = response.deconstruct();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if bytes.len() + chunk.len() > crate::http::MAX_BODY {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::DataConversion,
                    format!("response body larger than {} bytes", crate::http::MAX_BODY),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(azure_core::http::AsyncRawResponse::from_bytes(
            status, headers, bytes,
        ))
    }
}

/// One line from an azure_core error: its message and the chain of causes.
fn describe_azure_error(e: &azure_core::Error) -> String {
    let mut msg = crate::http::error_chain(e);
    // Drop the SDK's boilerplate so the cause fits on one line.
    for noise in [
        "To troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot",
        "non-transport error occurred which will not be retried ",
        "failed to execute `reqwest` request: ",
        "#client-secret",
        "#client-assertion",
        "#workload",
        "#managed-identity",
        "#azure-cli",
    ] {
        msg = msg.replace(noise, "");
    }
    msg
}

/// A client assertion that is a fixed token (a pod's service-account token, a CI job's token).
struct StaticAssertion(Secret);

impl std::fmt::Debug for StaticAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticAssertion(REDACTED)")
    }
}

#[async_trait::async_trait]
impl ClientAssertion for StaticAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.expose().to_string())
    }
}

/// Signs RS256 client assertions with a certificate's key, identified by its SHA-1 thumbprint.
struct CertificateAssertion {
    key: jsonwebtoken::EncodingKey,
    x5t: String,
    client_id: String,
    audience: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("x5t", &self.x5t)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    /// The assertion for `client_id` in `tenant`, from the PEM file at `path` (read as the config
    /// file is when `trusted`: a rule of it names the file), for the token endpoint at
    /// `authority`.
    fn from_file(
        path: &Path,
        trusted: bool,
        tenant: &str,
        client_id: &str,
        authority: &str,
    ) -> Result<Self, String> {
        let pem = crate::files::read_named(path, MAX_CERTIFICATE, "certificate", trusted)?;
        let endpoint = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        );
        CertificateAssertion::from_pem(&pem, client_id, endpoint)
            .map_err(|e| format!("certificate {}: {e}", path.display()))
    }

    fn from_pem(pem: &[u8], client_id: &str, audience: String) -> Result<Self, String> {
        use base64::Engine;
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or("no CERTIFICATE block; the file must be PEM with the certificate and its private key (convert a .pfx with `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`)")?
            .map_err(|e| format!("bad certificate PEM: {e}"))?;
        let text = std::str::from_utf8(pem).map_err(|_| "not a PEM text file".to_string())?;
        let key_pem = pem_block(text, "PRIVATE KEY")
            .or_else(|| pem_block(text, "RSA PRIVATE KEY"))
            .ok_or("no PRIVATE KEY block; the file must hold the certificate and its unencrypted RSA private key")?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes())
            .map_err(|e| format!("private key is not a usable RSA key: {e}"))?;
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref());
        Ok(CertificateAssertion {
            key,
            x5t: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
            client_id: client_id.to_string(),
            audience,
        })
    }
}

/// The text of the first PEM block labelled `label`, with its BEGIN and END lines.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(self.x5t.clone());
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("cannot sign the client assertion: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::fifo::FifoWriter;

    /// The error of `result`, which must be one.
    fn error<T>(result: Result<T, String>) -> String {
        match result {
            Ok(_) => panic!("read, not refused"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_certificate_and_the_token_file_are_read_bounded_and_never_wait_on_a_fifo() {
        let d = tempfile::tempdir().unwrap();
        let cert = |path: &Path| {
            CertificateAssertion::from_file(path, false, "t", "c", "https://login.example")
                .map(|_| ())
        };
        let fifo = d.path().join("cert.pem");
        let _writer = FifoWriter::new(&fifo, "-----BEGIN CERTIFICATE-----\n");
        let e = error(cert(&fifo));
        assert!(e.contains("not a regular file"), "{e}");
        let big = d.path().join("big.pem");
        std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
        let e = error(cert(&big));
        assert!(e.contains("larger than"), "{e}");
        // The workload identity's token file, which azure_identity would read on its own.
        let token = d.path().join("token");
        let _writer = FifoWriter::new(&token, "e30.e30.sig");
        let e = error(workload_credential(
            "t",
            "c",
            &token,
            false,
            ClientOptions::default(),
        ));
        assert!(e.contains("not a regular file"), "{e}");
        let e = error(workload_credential(
            "t",
            "c",
            &big,
            false,
            ClientOptions::default(),
        ));
        assert!(e.contains("larger than"), "{e}");
    }
}
