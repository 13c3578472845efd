//! Which source fetches an identity's Entra token: managed identities from their endpoint
//! (`managed`), identity bindings from the cluster's authority (`binding`), the CI sources with
//! an assertion from their OIDC endpoint (`ci`) then through `azure_identity` (`entra`), every
//! other source through `azure_identity`. The one place that knows them all, above them, so none
//! of them calls another.

use super::answer::EntraToken;
use super::{Identity, TokenRequest, binding, ci, entra, managed};
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
        Identity::Arc {
            endpoint,
            client_id,
        } => managed::arc_token(endpoint, client_id.as_deref(), scope, name, http).await,
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
        // A fresh assertion for every Entra request: the endpoints' tokens live minutes.
        Identity::GitHubActions {
            tenant,
            client_id,
            request_url,
            request_token,
        } => {
            let endpoint = ci::Endpoint::GitHub {
                url: request_url,
                token: request_token,
            };
            let assertion = ci::assertion(&endpoint, http, name, deadline).await?;
            entra::get_token_with_assertion(request, tenant, client_id, assertion).await
        }
        Identity::AzurePipelines {
            tenant,
            client_id,
            service_connection,
            request_uri,
            access_token,
            ..
        } => {
            let endpoint = ci::Endpoint::Pipelines {
                uri: request_uri,
                token: access_token,
                service_connection,
            };
            let assertion = ci::assertion(&endpoint, http, name, deadline).await?;
            entra::get_token_with_assertion(request, tenant, client_id, assertion).await
        }
        _ => entra::get_token(request).await,
    }
}
