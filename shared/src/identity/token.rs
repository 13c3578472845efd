//! Which source fetches an identity's Entra token: managed identities from their endpoint
//! (`managed`), identity bindings from the cluster's authority (`binding`), every other source
//! through `azure_identity` (`entra`). The one place that knows all three, above them, so none of
//! them calls another.

use super::answer::EntraToken;
use super::{Identity, TokenRequest, binding, entra, managed};
use crate::error::Error;

/// The Entra token `request` asks for, from the source that serves its identity.
pub(crate) async fn entra_token(request: &TokenRequest<'_>) -> Result<EntraToken, Error> {
    let TokenRequest {
        identity,
        scope,
        http,
        deadline,
        ..
    } = *request;
    let name = identity.source_name();
    match identity {
        // Called directly: the broker's choice of endpoint, from its Env, never through a proxy.
        Identity::AppService {
            endpoint,
            header,
            client_id,
        } => {
            let endpoint = managed::Endpoint::AppService {
                url: endpoint,
                header,
            };
            managed::get_token(endpoint, client_id.as_deref(), scope, name, http).await
        }
        Identity::Imds { client_id } => {
            let endpoint = managed::Endpoint::Imds;
            managed::get_token(endpoint, client_id.as_deref(), scope, name, http).await
        }
        Identity::IdentityBinding {
            sni_name,
            apiserver,
            ca_file,
            client_id,
            assertion,
            ..
        } => {
            let request = binding::Request {
                sni_name,
                apiserver,
                ca_file,
                client_id,
                assertion,
                scope,
            };
            binding::get_token(request, deadline).await
        }
        _ => entra::get_token(request).await,
    }
}
