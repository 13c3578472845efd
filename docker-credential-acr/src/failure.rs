//! Why an action gave no answer: [`Failure`], whose `Display` is the one line the client reads.
//!
//! As in Cargo's credential protocol (`cargo_credential::Error`), "no credentials here" is its
//! own variant, [`Failure::NotFound`], which clients treat as "go on anonymously"; everything
//! else is an error to show. The protocol text of `NotFound` is rendered here and nowhere else.

use crate::configure::ConfigError;
use crate::protocol::NOT_FOUND;
use crate::store::StoreError;
use acr_broker::NotAcr;

/// A failed action. Its `Display` is the single line written for the user (stdout for the
/// protocol actions, which clients show; stderr for the others).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No credentials for this server: the client goes on anonymously. Rendered as the
    /// protocol's [`NOT_FOUND`] text, which clients compare stdout with.
    #[error("{}", NOT_FOUND)]
    NotFound,
    /// The command line named no action or an unknown one; the message ends with the usage.
    #[error("{0}")]
    Usage(String),
    /// Standard input could not be read, or is not a request this action takes; the message
    /// says what was expected.
    #[error("{0}")]
    Request(String),
    /// `store`: credentials have nowhere to go.
    #[error("cannot store credentials: neither HOME nor XDG_CONFIG_HOME is set")]
    NoCredentialsFolder,
    /// `configure-docker`: a registry given is not an ACR login server.
    #[error(
        "{registry:?} is {reason}; list Azure Container Registry login servers (add custom ones to ACR_LOGIN_SERVERS)"
    )]
    NotAcr {
        /// The registry as given.
        registry: String,
        /// Why it is not one.
        reason: NotAcr,
    },
    /// `configure-docker` with no registries.
    #[error(
        "no registries given; usage: docker-credential-acr configure-docker --registries myregistry.azurecr.io[,other.azurecr.io]"
    )]
    NoRegistries,
    /// `configure-docker`: no folder for Docker's config.
    #[error("cannot find Docker's config: set DOCKER_CONFIG or HOME")]
    NoDockerConfig,
    /// `configure-docker --containers`: no folder for the containers tools' auth.json.
    #[error(
        "cannot find the containers auth file: set REGISTRY_AUTH_FILE, XDG_CONFIG_HOME or HOME"
    )]
    NoContainersAuth,
    /// `token --scope`: the registry granted less than the scope asked for.
    #[error(transparent)]
    NotGranted(Box<NotGranted>),
    /// `configure-docker --helm`: no folder for Helm's registry config.
    #[error(
        "cannot find Helm's registry config: set HELM_REGISTRY_CONFIG, XDG_CONFIG_HOME or HOME"
    )]
    NoHelmConfig,
    /// Docker's config could not be edited.
    #[error(transparent)]
    DockerConfig(#[from] ConfigError),
    /// Stored credentials could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token broker failed: settings, identity, Entra, the registry or the cache.
    #[error(transparent)]
    Broker(#[from] acr_broker::Error),
    /// An answer could not be encoded as JSON.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// What `token --scope` asked for and the registry did not grant, and the roles that grant it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{registry} granted {granted} on repository {repository}, not {missing}; ask only for what you need, or get a role that grants it: {role} on the registry (on an ABAC-mode registry, \"{abac_role}\" on the repository)"
)]
pub struct NotGranted {
    /// The login server.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// The actions granted, comma-separated, or `nothing`.
    pub granted: String,
    /// The actions asked for and not granted, comma-separated.
    pub missing: String,
    /// The registry-wide role that grants them.
    pub role: &'static str,
    /// The repository role of an ABAC-mode registry that grants them.
    pub abac_role: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_the_protocol_text() {
        assert_eq!(
            Failure::NotFound.to_string(),
            "credentials not found in native keychain"
        );
    }
}
