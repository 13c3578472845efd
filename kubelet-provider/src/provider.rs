//! From a kubelet request to a response, through the broker, answering as the AKS plugin does.
//!
//! The oracle is the AKS plugin itself (cloud-provider-azure `cmd/acr-credential-provider`,
//! release v1.35.3): `tests/tests/e2e_aks_differential.rs` runs it beside this provider, row by
//! row, and `docs/COMPATIBILITY.md` lists every difference that remains, each with its reason.
//!
//! ```text
//! image ─► registry host ─► mirror? (source ─► ACR destination) ─► login server (else: no auth,
//!          cacheDuration 0s)
//!       ─► whose identity (pkg/credentialprovider/azure_credentials.go:95-119):
//!          mirrored images: the node's;
//!          with --ib-sni-name: the pod's, through the cluster's local authority (a token and a
//!            client id, from the annotation or --ib-default-client-id, are required);
//!          with a service-account token: the pod's (client-id annotation required; tenant
//!            from its annotation, else azure.json's);
//!          else the node's
//!       ─► a service-principal node (azure.json useManagedIdentityExtension: false) answers its
//!          aadClientId/aadClientSecret for every ACR domain, with no network (:216-261), unless
//!          --exchange-sp-secret asks for a derived token
//!       ─► else the broker's credential (cache, or Entra + exchange) under the image's host
//!       ─► plus "*.azurecr.*" with empty credentials: the kubelet's anonymous fallback
//!       ─► cacheDuration 5m0s (:43, :204-206), never past the broker's refresh point
//! ```
//!
//! **Per-pod identity.** A pod's service-account token becomes a federated client assertion for
//! the client id its service account names. Entra checks the token's issuer and subject against
//! the app's federated credentials, but a cache hit skips Entra; the broker therefore keys
//! federated identities on the assertion's `iss` and `sub` too, so a service account can never
//! reuse a token fetched with another one's assertion.

use crate::azure_json::{AzureJson, CustomCloud};
use crate::bindings::IdentityBindings;
use crate::mirror::{Mirror, Mirrors};
use crate::protocol::{
    AuthConfig, CredentialProviderRequest, CredentialProviderResponse, GoDuration,
};
use acr_broker::{Broker, Clock, Credential, Identity, LoginServer, Secret, Settings};
use std::sync::Arc;

/// The service-account annotation naming the Entra client id a pod pulls as.
pub const CLIENT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-client-id";
/// The service-account annotation naming that identity's tenant (optional).
pub const TENANT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-tenant-id";
/// The `auth` key with empty credentials that every ACR answer carries, as the AKS plugin's: the
/// kubelet tries it after the identity's credentials, so registries with anonymous pull enabled
/// still work when the identity has no role.
pub const ANONYMOUS_KEY: &str = "*.azurecr.*";
/// How long the kubelet may keep an answer with credentials: the AKS plugin's
/// `defaultCacheTTL` (cloud-provider-azure v1.35.3 pkg/credentialprovider/azure_credentials.go:43).
pub const CACHE_SECONDS: u64 = 5 * 60;
/// The registry domains a service-principal node's id and secret are answered for, as the AKS
/// plugin's `containerRegistryUrls` (azure_credentials.go:49).
pub const SERVICE_PRINCIPAL_KEYS: [&str; 4] = [
    "*.azurecr.io",
    "*.azurecr.cn",
    "*.azurecr.de",
    "*.azurecr.us",
];
/// Login servers of the retired Azure Germany cloud, which the AKS plugin still recognises
/// (`acrRE`, azure_credentials.go:51) and AgentBaker's `matchImages` still lists.
pub const GERMANY_LOGIN_SERVERS: &str = "*.azurecr.de";

/// Configuration beyond the broker's settings.
#[derive(Debug, Default)]
pub struct Options {
    /// The node's azure.json, when given: its identity replaces the broker's chain, its
    /// `tenantId` is the default tenant of pod identities, its `cloud` the default authority.
    pub azure_json: Option<AzureJson>,
    /// Registry mirrors.
    pub mirrors: Mirrors,
    /// Use the node identity when the AKS plugin would fail for want of a pod identity: a pod's
    /// token without the client-id annotation, or identity bindings without a token.
    pub fallback_to_node_identity: bool,
    /// A service-principal node exchanges its secret for an ACR token (answered under the
    /// registry's host) instead of answering the id and secret themselves.
    pub exchange_sp_secret: bool,
    /// AKS identity bindings (`--ib-*`), when on.
    pub identity_bindings: Option<IdentityBindings>,
}

/// Why no credential could be given.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider's own configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The broker failed for the node identity.
    #[error(transparent)]
    Broker(#[from] acr_broker::Error),
    /// A pod token came without the client-id annotation.
    #[error(
        "{account} has no kubernetes.azure.com/acr-client-id annotation; annotate it with the client id of the Entra identity its pods pull as, or run the provider with --fallback-to-node-identity to use the node's identity"
    )]
    MissingAnnotation {
        /// The service account, e.g. `service account default/app`.
        account: String,
    },
    /// Identity bindings without a service-account token.
    #[error(
        "identity bindings are on (--ib-sni-name) but the kubelet sent no service-account token (a pod without a service account, such as a static pod); run the provider with --fallback-to-node-identity to pull such images with the node's identity"
    )]
    MissingBindingToken,
    /// No tenant for a pod identity.
    #[error(
        "no tenant for {account}: set the kubernetes.azure.com/acr-tenant-id annotation, tenantId in azure.json, or AZURE_TENANT_ID"
    )]
    NoTenant {
        /// The service account.
        account: String,
    },
    /// An annotation value that cannot be an Entra id.
    #[error("the {key} annotation {reason}")]
    BadAnnotation {
        /// The annotation.
        key: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Identity bindings: no client id for the pod.
    #[error(
        "{account} has no kubernetes.azure.com/acr-client-id annotation and the provider has no --ib-default-client-id; annotate the service account with the client id its pods pull as"
    )]
    NoBindingClientId {
        /// The service account.
        account: String,
    },
    /// The token is not a JWT with the claims Entra matches.
    #[error("the service-account token is not a JWT with iss and sub claims")]
    BadServiceAccountToken,
    /// The broker failed for a pod identity.
    #[error("{account} (client id {client_id}): {source}")]
    Pod {
        /// The service account.
        account: String,
        /// The annotated client id.
        client_id: String,
        /// The broker's error.
        source: Box<acr_broker::Error>,
    },
}

/// What the kubelet gets for one registry.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A token from the broker (ACR refresh token, or stored credentials).
    Token(Credential),
    /// A service-principal node's id and secret, as the AKS plugin answers for such nodes: ACR
    /// checks them itself, in the registry's own tenant (the cross-tenant setup).
    Basic {
        /// The service principal's client id.
        username: String,
        /// Its client secret.
        password: Secret,
    },
}

impl Answer {
    /// The username and password the kubelet passes to the runtime.
    pub fn auth(&self) -> AuthConfig {
        match self {
            Answer::Token(c) => AuthConfig {
                username: c.username.clone(),
                password: c.secret.clone(),
            },
            Answer::Basic { username, password } => AuthConfig {
                username: username.clone(),
                password: password.clone(),
            },
        }
    }

    /// How long the kubelet may keep the answer.
    pub fn cache_duration(&self, now: i64) -> GoDuration {
        match self {
            Answer::Token(c) => cache_duration(c, now),
            Answer::Basic { .. } => GoDuration(CACHE_SECONDS),
        }
    }
}

/// Whose credential a request gets.
enum Who {
    /// The node's identity.
    Node,
    /// A pod's identity.
    Pod(ServiceAccount, Identity),
}

/// Answers kubelet requests.
pub struct Provider {
    broker: Broker,
    clock: Arc<dyn Clock>,
    /// The node identity azure.json describes, or why it describes none (used only when a
    /// request needs it); `None` without azure.json: the broker's chain.
    node_identity: Option<Result<Identity, String>>,
    /// A service-principal node's id and secret, answered as they are; `None` for other nodes
    /// and with `--exchange-sp-secret`.
    service_principal: Option<(String, Secret)>,
    /// A custom cloud's registry suffix, answered with the service principal's id and secret.
    custom_suffix: Option<String>,
    /// Why identities that ask Entra cannot be used (a custom cloud's unusable authority).
    entra_unusable: Option<String>,
    pod_tenant: Option<String>,
    mirrors: Mirrors,
    fallback_to_node_identity: bool,
    identity_bindings: Option<IdentityBindings>,
}

impl Provider {
    /// Checks the configuration (azure.json identity) and builds the broker; mirror mappings to
    /// a registry that is not a login server are left out with a warning.
    pub fn new(
        mut settings: Settings,
        mut options: Options,
        clock: Arc<dyn Clock>,
    ) -> Result<Provider, ProviderError> {
        let setup = node_setup(&mut settings, options.azure_json.as_ref());
        if let (Some(file), Some(cloud)) = (&options.azure_json, &setup.unknown_cloud) {
            log::warn!(
                "{}: cloud {cloud:?} is unknown, so the Entra authority is ACR_CLOUD's, else the public cloud's (set AZURE_AUTHORITY_HOST or ACR_CLOUD)",
                file.path.display()
            );
        }
        if let Some(Err(e)) = &setup.custom_cloud {
            return Err(ProviderError::Config(e.clone()));
        }
        let (custom_suffix, entra_unusable) = match &setup.custom_cloud {
            Some(Ok(cloud)) => (cloud.registry_suffix.clone(), cloud.authority_error.clone()),
            _ => (None, None),
        };
        let service_principal = options
            .azure_json
            .as_ref()
            .filter(|f| !f.use_managed_identity_extension && !options.exchange_sp_secret)
            .map(|f| {
                if f.aad_client_secret.is_none() {
                    log::warn!(
                        "{}: a service-principal node without aadClientSecret; answering an empty password, as the AKS plugin does",
                        f.path.display()
                    );
                }
                (
                    f.aad_client_id.clone().unwrap_or_default(),
                    f.aad_client_secret.clone().unwrap_or_else(|| Secret::new("")),
                )
            });
        let broker = Broker::with_clock(settings, Arc::clone(&clock));
        // A mapping to a registry that is not a login server gets no credentials (the AKS
        // plugin finds no ACR in the rewritten image): drop it with a warning, serve the rest.
        options.mirrors.retain(|m| match check_mirror(&broker, m) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("{e}; ignoring this mapping");
                false
            }
        });
        Ok(Provider {
            broker,
            clock,
            node_identity: setup.identity,
            service_principal,
            custom_suffix,
            entra_unusable,
            pod_tenant: setup.pod_tenant,
            mirrors: options.mirrors,
            fallback_to_node_identity: options.fallback_to_node_identity,
            identity_bindings: options.identity_bindings,
        })
    }

    /// The response to `request`. An image that is not on an ACR login server (nor on a mirror
    /// of one) gets a response with no credentials and `cacheDuration: 0s`: no token leaves the
    /// node for it.
    pub fn respond(
        &self,
        request: &CredentialProviderRequest,
    ) -> Result<CredentialProviderResponse, ProviderError> {
        let image = request.image.trim();
        let Some(host) = image_registry(image) else {
            return Ok(no_credentials(
                request,
                "it names no registry host (a Docker Hub image)",
            ));
        };
        let mirrored = self.mirrors.for_image_host(host);
        let target = mirrored.unwrap_or(host);
        let server = match self.broker.login_server(target) {
            Ok(server) => server,
            Err(e) => return Ok(no_credentials(request, &e.to_string())),
        };
        // Whose identity: decided (and its errors raised) before a service-principal node
        // answers, as the AKS plugin builds its credential first.
        let who = match mirrored {
            // Mirrored images always use the node identity, as the AKS plugin does: the mirror
            // is the cluster's bootstrap registry (network-isolated clusters), not the pod's.
            Some(destination) => {
                log::debug!("{host} is mirrored to {destination}; using the node identity");
                Who::Node
            }
            None => self.whose(request)?,
        };
        let mut response = CredentialProviderResponse::new(request.api_version);
        if let Some((username, password)) = &self.service_principal {
            let unmatched = mirrored.is_none().then_some(host);
            self.service_principal_keys(unmatched, username, password, &mut response);
            response.cache_duration = Some(GoDuration(CACHE_SECONDS));
            return Ok(with_anonymous(response));
        }
        let answer = match who {
            Who::Node => self.node_answer(&server)?,
            Who::Pod(account, identity) => {
                Answer::Token(self.pod_identity_credential(&server, &account, &identity)?)
            }
        };
        response.cache_duration = Some(answer.cache_duration(self.clock.now()));
        let auth = answer.auth();
        // The keys the AKS plugin answers: the registry as the image names it (or, for a
        // mirrored image, the destination and the source).
        response.auth.insert(target.to_string(), auth.clone());
        if mirrored.is_some() {
            response.auth.insert(host.to_string(), auth);
        }
        Ok(with_anonymous(response))
    }

    /// A service-principal node's answer: its id and secret for every ACR domain (and a custom
    /// cloud's), as the AKS plugin gives them; plus the image's own registry (`host`, not for
    /// mirrored images) when none of those patterns matches it (a geo-replica or a configured
    /// login server), so its pull works too.
    fn service_principal_keys(
        &self,
        host: Option<&str>,
        username: &str,
        password: &Secret,
        response: &mut CredentialProviderResponse,
    ) {
        let auth = AuthConfig {
            username: username.to_string(),
            password: password.clone(),
        };
        let mut keys: Vec<String> = SERVICE_PRINCIPAL_KEYS
            .iter()
            .map(|k| (*k).to_string())
            .collect();
        if let Some(suffix) = &self.custom_suffix
            && suffix.contains("azurecr.")
        {
            let key = format!("*.{suffix}");
            if !keys.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                keys.push(key);
            }
        }
        if let Some(host) = host
            && !keys.iter().any(|k| glob_matches(k, host))
        {
            log::debug!(
                "{host} is matched by none of the service principal's patterns; answering it too"
            );
            keys.push(host.to_string());
        }
        for key in keys {
            response.auth.insert(key, auth.clone());
        }
    }

    /// Whose identity answers a request that is not mirrored, as the AKS plugin decides
    /// (azure_credentials.go:95-119): identity bindings, else the pod's token, else the node's.
    fn whose(&self, request: &CredentialProviderRequest) -> Result<Who, ProviderError> {
        let token = service_account_token(request);
        if let Some(ib) = &self.identity_bindings {
            let Some(token) = token else {
                return if self.fallback_to_node_identity {
                    log::info!(
                        "identity bindings without a service-account token; using the node's identity"
                    );
                    Ok(Who::Node)
                } else {
                    Err(ProviderError::MissingBindingToken)
                };
            };
            let account =
                ServiceAccount::from_token(token).ok_or(ProviderError::BadServiceAccountToken)?;
            // An annotation that is present wins, even empty (which is an error), as upstream's
            // map lookup (identity_bindings_credentials.go:242-249).
            let client_id = match present_annotation(request, CLIENT_ID_ANNOTATION)? {
                Some(c) => Some(c.to_string()),
                None => ib.default_client_id.clone(),
            }
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ProviderError::NoBindingClientId {
                account: account.describe(),
            })?;
            let tenant = annotation(request, TENANT_ID_ANNOTATION)?
                .map(str::to_string)
                .or_else(|| ib.default_tenant_id.clone())
                .or_else(|| self.pod_tenant.clone());
            let identity = Identity::IdentityBinding {
                sni_name: ib.sni_name.clone(),
                apiserver: ib.apiserver.clone(),
                ca_file: ib.ca_file.clone(),
                tenant,
                client_id,
                assertion: token.clone(),
            };
            return Ok(Who::Pod(account, identity));
        }
        let Some(token) = token else {
            // No token: the node identity, whatever the annotations say (upstream reads them
            // only with a token).
            return Ok(Who::Node);
        };
        let account =
            ServiceAccount::from_token(token).ok_or(ProviderError::BadServiceAccountToken)?;
        let Some(client_id) = annotation(request, CLIENT_ID_ANNOTATION)? else {
            return if self.fallback_to_node_identity {
                log::info!("{} names no identity; using the node's", account.describe());
                Ok(Who::Node)
            } else {
                Err(ProviderError::MissingAnnotation {
                    account: account.describe(),
                })
            };
        };
        let tenant = match annotation(request, TENANT_ID_ANNOTATION)? {
            Some(t) => t.to_string(),
            None => self
                .pod_tenant
                .clone()
                .ok_or_else(|| ProviderError::NoTenant {
                    account: account.describe(),
                })?,
        };
        let identity = Identity::Federated {
            tenant,
            client_id: client_id.to_string(),
            assertion: token.clone(),
        };
        Ok(Who::Pod(account, identity))
    }

    /// The node identity's answer: its token, or, with `--exchange-sp-secret` on a
    /// service-principal node whose derived token cannot be had (the registry is in another
    /// tenant, Entra refuses), its id and secret, as the AKS plugin answers.
    fn node_answer(&self, server: &LoginServer) -> Result<Answer, ProviderError> {
        let identity = match &self.node_identity {
            Some(Ok(identity)) => Some(identity),
            Some(Err(e)) => return Err(ProviderError::Config(e.clone())),
            None => None,
        };
        if !matches!(identity, Some(Identity::Imds { .. })) {
            self.check_entra()?;
        }
        match (self.node_identity_credential(server, identity), identity) {
            (Ok(c), _) => Ok(Answer::Token(c)),
            (
                Err(e),
                Some(Identity::ClientSecret {
                    client_id, secret, ..
                }),
            ) => {
                log::warn!(
                    "{server}: no token for service principal {client_id} ({e}); answering with its id and secret, as the AKS plugin does, for the registry to check"
                );
                Ok(Answer::Basic {
                    username: client_id.clone(),
                    password: secret.clone(),
                })
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The broker's credential for a pod's identity; errors name the service account.
    fn pod_identity_credential(
        &self,
        server: &LoginServer,
        account: &ServiceAccount,
        identity: &Identity,
    ) -> Result<Credential, ProviderError> {
        if !matches!(identity, Identity::IdentityBinding { .. }) {
            self.check_entra()?;
        }
        self.broker
            .credential_for(server, identity)
            .map_err(|source| ProviderError::Pod {
                account: account.describe(),
                client_id: identity.client_id().unwrap_or_default().to_string(),
                source: Box::new(source),
            })
    }

    /// Fails when identities that ask Entra cannot be used on this node.
    fn check_entra(&self) -> Result<(), ProviderError> {
        match &self.entra_unusable {
            Some(e) => Err(ProviderError::Config(e.clone())),
            None => Ok(()),
        }
    }

    fn node_identity_credential(
        &self,
        server: &LoginServer,
        identity: Option<&Identity>,
    ) -> Result<Credential, ProviderError> {
        Ok(match identity {
            Some(identity) => self.broker.credential_for(server, identity)?,
            None => self.broker.credential(server)?,
        })
    }
}

/// `response` with the kubelet's anonymous fallback entry added.
fn with_anonymous(mut response: CredentialProviderResponse) -> CredentialProviderResponse {
    response.auth.insert(
        ANONYMOUS_KEY.to_string(),
        AuthConfig {
            username: String::new(),
            password: Secret::new(""),
        },
    );
    response
}

/// Whether the kubelet's glob `pattern` (`*` for exactly one label, no port) matches `host`.
fn glob_matches(pattern: &str, host: &str) -> bool {
    let (p, h): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), host.split('.').collect());
    p.len() == h.len()
        && p.iter()
            .zip(&h)
            .all(|(p, h)| *p == "*" || p.eq_ignore_ascii_case(h))
}

/// What the node's azure.json makes of the settings, exactly as a request applies it.
#[derive(Debug, Default)]
pub struct NodeSetup {
    /// The node identity azure.json describes, or why it describes none (one line naming the
    /// file); `None` without azure.json: the broker's chain picks the node identity.
    pub identity: Option<Result<Identity, String>>,
    /// The default tenant of pod identities: azure.json's `tenantId`, else `AZURE_TENANT_ID`.
    pub pod_tenant: Option<String>,
    /// azure.json's `cloud` when it names none this provider knows and `AZURE_AUTHORITY_HOST` is
    /// unset (the authority is then `ACR_CLOUD`'s, else the public cloud's).
    pub unknown_cloud: Option<String>,
    /// `cloud: AzureStackCloud`: the environment file `AZURE_ENVIRONMENT_FILEPATH` names, or why
    /// it cannot be used; `None` for other clouds and when the variable is unset.
    pub custom_cloud: Option<Result<CustomCloud, String>>,
}

/// Applies azure.json to `settings`: its `cloud` sets the Entra authority unless
/// `AZURE_AUTHORITY_HOST` does, and its identity and `tenantId` become the node's.
pub fn node_setup(settings: &mut Settings, azure_json: Option<&AzureJson>) -> NodeSetup {
    let mut setup = NodeSetup::default();
    // The AKS plugin still serves the retired Azure Germany cloud's registries.
    settings
        .extra_login_servers
        .push(GERMANY_LOGIN_SERVERS.to_string());
    if let Some(file) = azure_json {
        setup.custom_cloud = file
            .custom_cloud(settings.env.get("AZURE_ENVIRONMENT_FILEPATH"))
            .transpose();
        if let Some(Ok(cloud)) = &setup.custom_cloud {
            if let Some(suffix) = &cloud.registry_suffix {
                settings.extra_login_servers.push(format!("*.{suffix}"));
            }
            if settings.authority_host.is_none() {
                settings.authority_host = cloud.authority_host.clone();
            }
        } else if file.is_stack_cloud() && settings.authority_host.is_none() {
            // As the AKS plugin: without an environment file, the public cloud's endpoints.
            log::warn!(
                "{}: cloud AzureStackCloud without AZURE_ENVIRONMENT_FILEPATH; using the public cloud's endpoints",
                file.path.display()
            );
        } else if settings.authority_host.is_none() {
            match file.authority_host() {
                Ok(host) => settings.authority_host = host.map(str::to_string),
                Err(cloud) => setup.unknown_cloud = Some(cloud),
            }
        }
        setup.identity = Some(
            file.identity()
                .map_err(|e| format!("{}: {e}", file.path.display())),
        );
        setup.pod_tenant = file.tenant_id.clone();
    }
    if setup.pod_tenant.is_none() {
        setup.pod_tenant = settings.env.get("AZURE_TENANT_ID").map(str::to_string);
    }
    setup
}

/// Checks that a mirror's destination is a login server the broker serves; the error is one
/// line saying how to fix it.
pub fn check_mirror(broker: &Broker, mirror: &Mirror) -> Result<(), String> {
    match broker.login_server(&mirror.destination) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "--registry-mirror destination {} is not an Azure Container Registry login server ({}); add it to ACR_LOGIN_SERVERS if it is one under a custom domain",
            mirror.destination, e.reason
        )),
    }
}

/// How long the kubelet may keep `credential`: the AKS plugin's five minutes, and never past the
/// point where the broker would refresh it (nor closer to its expiry than the broker's hand-out
/// margin); `0s` when that point has passed.
pub fn cache_duration(credential: &Credential, now: i64) -> GoDuration {
    let until_refresh = u64::try_from(credential.keep_until().saturating_sub(now)).unwrap_or(0);
    GoDuration(until_refresh.min(CACHE_SECONDS))
}

/// The registry part of an image reference, as written: the first path component when it looks
/// like a host (has a `.` or a `:`, or is `localhost`), as Docker decides. `None` for Docker Hub
/// short names such as `nginx` or `library/nginx`.
pub fn image_registry(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// The request's service-account token, unless absent or blank.
fn service_account_token(request: &CredentialProviderRequest) -> Option<&Secret> {
    request
        .service_account_token
        .as_ref()
        .filter(|t| !t.expose().trim().is_empty())
}

/// The answer for an image this provider has no credentials for: no `auth`, and `0s` so the
/// kubelet does not keep it (as the AKS plugin, azure_credentials.go:194-201).
fn no_credentials(request: &CredentialProviderRequest, reason: &str) -> CredentialProviderResponse {
    let image: String = request.image.trim().chars().take(200).collect();
    log::warn!("no credentials for {image}: {reason}");
    let mut response = CredentialProviderResponse::new(request.api_version);
    response.cache_duration = Some(GoDuration(0));
    response
}

/// An annotation's value: `None` when absent or empty, an error when it cannot be an Entra id
/// (a GUID or, for tenants, a domain name).
fn annotation<'a>(
    request: &'a CredentialProviderRequest,
    key: &'static str,
) -> Result<Option<&'a str>, ProviderError> {
    Ok(present_annotation(request, key)?.filter(|v| !v.is_empty()))
}

/// An annotation's value when it is present, even empty; an error when it cannot be an Entra id.
fn present_annotation<'a>(
    request: &'a CredentialProviderRequest,
    key: &'static str,
) -> Result<Option<&'a str>, ProviderError> {
    let Some(value) = request
        .service_account_annotations
        .get(key)
        .map(|v| v.trim())
    else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(Some(value));
    }
    let ok = value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return Err(ProviderError::BadAnnotation {
            key,
            reason: "may hold only letters, digits, '-', '.' and '_' (a GUID or domain name)",
        });
    }
    Ok(Some(value))
}

/// The claims of a service-account token that Entra's federated credentials match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceAccount {
    subject: String,
}

impl ServiceAccount {
    /// Reads `sub` (and checks `iss` is there) without checking the signature: the token comes
    /// from the kubelet, which got it from the API server, and Entra checks it on every fetch.
    fn from_token(token: &Secret) -> Option<ServiceAccount> {
        let claims = acr_broker::token::read_claims(token.expose())?;
        claims.iss.filter(|i| !i.is_empty())?;
        let subject = claims.sub.filter(|s| !s.is_empty())?;
        Some(ServiceAccount { subject })
    }

    /// `service account <namespace>/<name>` for Kubernetes subjects, else `subject <sub>`.
    fn describe(&self) -> String {
        match self
            .subject
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, name)) => format!("service account {ns}/{name}"),
            None => format!(
                "subject {}",
                self.subject.chars().take(200).collect::<String>()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ApiVersion, REQUEST_KIND};
    use acr_broker::{Env, ManualClock};
    use std::collections::BTreeMap;

    fn credential(expires_at: i64, refresh_at: i64) -> Credential {
        Credential {
            login_server: "myregistry.azurecr.io".into(),
            username: acr_broker::ACR_USERNAME.into(),
            secret: Secret::new("rt"),
            expires_at,
            refresh_at,
            lifetime: 3 * 3600,
            audience: None,
        }
    }

    #[test]
    fn cache_duration_is_five_minutes_up_to_the_refresh_point() {
        // A 3 h token issued now (refreshed in 2 h): the AKS plugin's five minutes.
        let now = 1_000_000;
        assert_eq!(
            cache_duration(&credential(now + 3 * 3600, now + 2 * 3600), now).to_string(),
            "5m0s"
        );
        // Due for refresh in 119 s: the kubelet keeps it no longer.
        assert_eq!(
            cache_duration(&credential(now + 3600, now + 119), now).to_string(),
            "1m59s"
        );
    }

    #[test]
    fn cache_duration_never_exceeds_the_token_nor_goes_negative() {
        let now = 1_000_000;
        for (expires, refresh) in [
            (now + 3600, now + 3600),   // no refresh margin at all
            (now + 3600, now + 7200),   // nonsense refresh point after expiry
            (now + 30, now + 10),       // nearly expired
            (now - 10, now - 100),      // expired
            (now + 3 * 3600, now - 5),  // past the refresh point (stale but usable)
            (i64::MIN + 100, i64::MIN), // absurd
            (i64::MAX, i64::MAX),       // absurd
        ] {
            let d = cache_duration(&credential(expires, refresh), now).0;
            let life = u64::try_from(expires.saturating_sub(now)).unwrap_or(0);
            assert!(
                d <= life.saturating_sub(acr_broker::cache::EXPIRY_MARGIN as u64) || d == 0,
                "{expires} {refresh}: {d}"
            );
            assert!(d < life.max(1), "{expires} {refresh}: {d}");
        }
        assert_eq!(
            cache_duration(&credential(now - 10, now - 100), now),
            GoDuration(0)
        );
    }

    #[test]
    fn image_registries() {
        for (image, want) in [
            (
                "myregistry.azurecr.io/app:1.0",
                Some("myregistry.azurecr.io"),
            ),
            (
                "myregistry.azurecr.io/team/app@sha256:abc",
                Some("myregistry.azurecr.io"),
            ),
            ("localhost:5000/app", Some("localhost:5000")),
            ("localhost/app", Some("localhost")),
            (
                "MyRegistry.azurecr.io:443/app",
                Some("MyRegistry.azurecr.io:443"),
            ),
            ("nginx", None),
            ("nginx:1.27", None),
            ("library/nginx", None),
        ] {
            assert_eq!(image_registry(image), want, "{image}");
        }
    }

    fn jwt(claims: &str) -> Secret {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Secret::new(format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(claims)))
    }

    #[test]
    fn service_account_claims() {
        let s = ServiceAccount::from_token(&jwt(
            r#"{"iss":"https://oidc.example/","sub":"system:serviceaccount:shop:web","aud":["api://AzureADTokenExchange"]}"#,
        ))
        .unwrap();
        assert_eq!(s.describe(), "service account shop/web");
        assert!(
            ServiceAccount::from_token(&jwt(r#"{"sub":"system:serviceaccount:shop:web"}"#))
                .is_none(),
            "no issuer"
        );
        assert!(ServiceAccount::from_token(&jwt(r#"{"iss":"x"}"#)).is_none());
        assert!(ServiceAccount::from_token(&Secret::new("opaque")).is_none());
        assert!(ServiceAccount::from_token(&Secret::new("a.b.c.d")).is_none());
    }

    fn request(
        image: &str,
        token: Option<Secret>,
        annotations: &[(&str, &str)],
    ) -> CredentialProviderRequest {
        CredentialProviderRequest {
            api_version: ApiVersion::V1,
            kind: REQUEST_KIND.into(),
            image: image.into(),
            service_account_token: token,
            service_account_annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn provider(options: Options) -> Result<Provider, ProviderError> {
        let settings = Settings::from_env(
            Env::from_pairs([
                ("PATH", "/nonexistent"),
                ("ACR_CACHE_DIR", "/nonexistent/cache"),
            ]),
            None,
        )
        .unwrap();
        Provider::new(settings, options, Arc::new(ManualClock::new(1_000_000)))
    }

    #[test]
    fn non_acr_images_get_an_empty_answer_without_any_identity() {
        let p = provider(Options::default()).unwrap();
        for image in [
            "nginx",
            "docker.io/library/nginx:1",
            "quay.io/x/y",
            "localhost:5000/x",
        ] {
            let r = p.respond(&request(image, None, &[])).unwrap();
            assert!(r.auth.is_empty(), "{image}");
            // "0s", as the AKS plugin: the kubelet must not keep the empty answer.
            assert_eq!(r.cache_duration, Some(GoDuration(0)), "{image}");
        }
    }

    #[test]
    fn pod_identity_errors_come_before_any_network() {
        let p = provider(Options::default()).unwrap();
        let token =
            jwt(r#"{"iss":"https://oidc.example/","sub":"system:serviceaccount:shop:web"}"#);
        let client = (CLIENT_ID_ANNOTATION, "c");
        // The token, the annotations, and what the error must say.
        type Case<'a> = (Option<Secret>, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 4] = [
            (
                Some(token.clone()),
                &[],
                &[
                    "service account shop/web has no kubernetes.azure.com/acr-client-id",
                    "--fallback-to-node-identity",
                ],
            ),
            (
                Some(token.clone()),
                &[client],
                &["no tenant for service account shop/web"],
            ),
            (
                Some(token),
                &[client, (TENANT_ID_ANNOTATION, "../evil")],
                &["kubernetes.azure.com/acr-tenant-id annotation may hold only"],
            ),
            (
                Some(Secret::new("not-a-jwt")),
                &[client, (TENANT_ID_ANNOTATION, "t")],
                &["not a JWT"],
            ),
        ];
        for (token, annotations, wants) in cases {
            let e = p
                .respond(&request("myregistry.azurecr.io/app", token, annotations))
                .unwrap_err()
                .to_string();
            for want in wants {
                assert!(e.contains(want), "{want:?} in {e}");
            }
        }
    }

    #[test]
    fn mirrors_to_registries_that_are_not_login_servers_are_left_out() {
        let mirrors =
            Mirrors::parse(&["mcr.microsoft.com:quay.io,docker.io:myregistry.azurecr.io".into()])
                .unwrap();
        let p = provider(Options {
            mirrors,
            ..Options::default()
        })
        .unwrap();
        assert_eq!(p.mirrors.for_image_host("mcr.microsoft.com"), None);
        assert_eq!(
            p.mirrors.for_image_host("docker.io"),
            Some("myregistry.azurecr.io")
        );
        let e = check_mirror(
            &p.broker,
            &Mirrors::parse(&["mcr.microsoft.com:quay.io".into()])
                .unwrap()
                .iter()
                .next()
                .unwrap()
                .clone(),
        )
        .unwrap_err();
        assert!(e.contains("--registry-mirror destination quay.io is not an Azure Container Registry login server"), "{e}");
    }

    #[test]
    fn azure_json_cloud_sets_the_authority_unless_the_environment_does() {
        let file = AzureJson::parse(
            br#"{"cloud":"AzureChinaCloud","useManagedIdentityExtension":true,"tenantId":"t"}"#,
            std::path::Path::new("azure.json"),
        )
        .unwrap();
        let p = provider(Options {
            azure_json: Some(file.clone()),
            ..Options::default()
        })
        .unwrap();
        assert_eq!(p.broker.authority(), "https://login.chinacloudapi.cn");
        assert_eq!(p.pod_tenant.as_deref(), Some("t"));
        assert!(matches!(
            p.node_identity,
            Some(Ok(Identity::Imds { client_id: None }))
        ));

        let settings = Settings::from_env(
            Env::from_pairs([("AZURE_AUTHORITY_HOST", "https://login.example")]),
            None,
        )
        .unwrap();
        let p = Provider::new(
            settings,
            Options {
                azure_json: Some(file),
                ..Options::default()
            },
            Arc::new(ManualClock::new(0)),
        )
        .unwrap();
        assert_eq!(p.broker.authority(), "https://login.example");
    }

    #[test]
    fn incomplete_service_principal_answers_an_empty_password_as_upstream() {
        let file = AzureJson::parse(
            br#"{"aadClientId":"c"}"#,
            std::path::Path::new("/etc/azure.json"),
        )
        .unwrap();
        let p = provider(Options {
            azure_json: Some(file.clone()),
            ..Options::default()
        })
        .unwrap();
        let r = p
            .respond(&request("myregistry.azurecr.io/app", None, &[]))
            .unwrap();
        let keys: Vec<&str> = r.auth.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "*.azurecr.*",
                "*.azurecr.cn",
                "*.azurecr.de",
                "*.azurecr.io",
                "*.azurecr.us"
            ]
        );
        assert_eq!(r.auth["*.azurecr.io"].username, "c");
        assert_eq!(r.auth["*.azurecr.io"].password.expose(), "");
        assert_eq!(r.cache_duration, Some(GoDuration(CACHE_SECONDS)));
        // Asked for a derived token, it needs the whole service principal.
        let p = provider(Options {
            azure_json: Some(file),
            exchange_sp_secret: true,
            ..Options::default()
        })
        .unwrap();
        let e = p
            .respond(&request("myregistry.azurecr.io/app", None, &[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/azure.json: neither useManagedIdentityExtension"),
            "{e}"
        );
    }

    #[test]
    fn kubelet_globs() {
        for (pattern, host, want) in [
            ("*.azurecr.io", "myregistry.azurecr.io", true),
            ("*.azurecr.io", "MyRegistry.AzureCR.io", true),
            (
                "*.azurecr.io",
                "myregistry.westeurope.geo.azurecr.io",
                false,
            ),
            ("*.azurecr.io", "azurecr.io", false),
            ("*.azurecr.io", "myregistry.azurecr.io:443", false),
            (
                "*.azurecr.contoso.example",
                "r.azurecr.contoso.example",
                true,
            ),
        ] {
            assert_eq!(glob_matches(pattern, host), want, "{pattern} {host}");
        }
    }
}
