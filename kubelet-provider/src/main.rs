//! `acr-credential-provider`: the kubelet image credential provider for Azure Container Registry.
//!
//! The kubelet runs it with the arguments of its `CredentialProviderConfig` entry and one
//! `CredentialProviderRequest` on stdin; it answers one `CredentialProviderResponse` on stdout,
//! with an ACR refresh token from the shared broker cache. Logs and errors go to stderr only.

fn main() -> std::process::ExitCode {
    acr_credential_provider::cli::run()
}
