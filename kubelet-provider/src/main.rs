//! `acr-credential-provider`: the kubelet image credential provider for Azure Container Registry.
//!
//! The kubelet runs it with the arguments of its `CredentialProviderConfig` entry and one
//! `CredentialProviderRequest` on stdin; it answers one `CredentialProviderResponse` on stdout,
//! with an ACR refresh token from the shared broker cache. Logs and errors go to stderr only.

mod azure_json;
mod cli;
mod mirror;
mod protocol;
mod provider;

fn main() -> std::process::ExitCode {
    cli::run()
}
