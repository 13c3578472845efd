//! From a kubelet request to a response, through the broker.
//!
//! ```text
//! image ─► registry host ─► mirror? (source ─► ACR destination) ─► login server (else: no auth)
//!       ─► identity: mirrored images: the node's, always (as the AKS plugin);
//!          with --ib-sni-name and a service-account token: the pod's, through the cluster's
//!          local token authority (identity bindings);
//!          else the pod's (service-account token + client-id annotation), else the node's
//!          (azure.json, else the broker's chain)
//!       ─► broker credential (cache, or Entra + exchange) ─► auth + cacheDuration
//!          (a service-principal node whose derived token fails: its id and secret, as AKS does)
//!       ─► plus "*.azurecr.*" with empty credentials: the kubelet's anonymous fallback
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
/// How long the kubelet may keep a service principal's id and secret (the fallback answer): short,
/// so a transient failure of the derived token does not pin the long-lived secret for long.
pub const BASIC_CACHE_SECONDS: u64 = 10 * 60;

/// Configuration beyond the broker's settings.
#[derive(Debug, Default)]
pub struct Options {
    /// The node's azure.json, when given: its identity replaces the broker's chain, its
    /// `tenantId` is the default tenant of pod identities, its `cloud` the default authority.
    pub azure_json: Option<AzureJson>,
    /// Registry mirrors.
    pub mirrors: Mirrors,
    /// Use the node identity when a pod's token comes without a client-id annotation.
    pub fallback_to_node_identity: bool,
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
    /// The annotation came without a token.
    #[error(
        "the service account names client id {client_id} (kubernetes.azure.com/acr-client-id) but the kubelet sent no service-account token; set tokenAttributes in the provider's CredentialProviderConfig"
    )]
    MissingToken {
        /// The annotated client id.
        client_id: String,
    },
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
            Answer::Basic { .. } => GoDuration(BASIC_CACHE_SECONDS),
        }
    }
}

/// Answers kubelet requests.
pub struct Provider {
    broker: Broker,
    clock: Arc<dyn Clock>,
    node_identity: Option<Identity>,
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
        let node_identity = setup.identity.transpose().map_err(ProviderError::Config)?;
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
            node_identity,
            pod_tenant: setup.pod_tenant,
            mirrors: options.mirrors,
            fallback_to_node_identity: options.fallback_to_node_identity,
            identity_bindings: options.identity_bindings,
        })
    }

    /// The response to `request`. An image that is not on an ACR login server (nor on a mirror
    /// of one) gets a response with no credentials: no token leaves the node for it.
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
        let server = match self.broker.login_server(mirrored.unwrap_or(host)) {
            Ok(server) => server,
            Err(e) => return Ok(no_credentials(request, &e.to_string())),
        };
        // Mirrored images always use the node identity, as the AKS plugin does: the mirror is
        // the cluster's bootstrap registry (network-isolated clusters), not the pod's.
        let answer = match mirrored {
            Some(destination) => {
                log::debug!("{host} is mirrored to {destination}; using the node identity");
                self.node_answer(&server)?
            }
            None => self.answer(&server, request)?,
        };
        let mut response = CredentialProviderResponse::new(request.api_version);
        response.cache_duration = Some(answer.cache_duration(self.clock.now()));
        let auth = answer.auth();
        // The key the kubelet matches against the image (as written, port included), and the
        // login server itself when it differs (a mirror's destination, a normalised host).
        response.auth.insert(host.to_string(), auth.clone());
        response.auth.insert(server.host().to_string(), auth);
        response.auth.insert(
            ANONYMOUS_KEY.to_string(),
            AuthConfig {
                username: String::new(),
                password: Secret::new(""),
            },
        );
        Ok(response)
    }

    /// The answer for an image that is not mirrored: identity bindings, the pod's identity or
    /// the node's.
    fn answer(
        &self,
        server: &LoginServer,
        request: &CredentialProviderRequest,
    ) -> Result<Answer, ProviderError> {
        if let Some(ib) = &self.identity_bindings {
            // Without a token (static pods: requireServiceAccount is false), the node's identity.
            return match service_account_token(request) {
                Some(token) => self
                    .binding_credential(server, request, token, ib)
                    .map(Answer::Token),
                None => self.node_answer(server),
            };
        }
        let token = service_account_token(request);
        match (token, annotation(request, CLIENT_ID_ANNOTATION)?) {
            (Some(token), Some(client_id)) => self
                .pod_credential(server, request, token, client_id)
                .map(Answer::Token),
            (Some(token), None) => {
                let account = ServiceAccount::from_token(token)
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "the pod's service account".to_string());
                if self.fallback_to_node_identity {
                    log::info!("{account} names no identity; using the node's");
                    self.node_identity_credential(server).map(Answer::Token)
                } else {
                    Err(ProviderError::MissingAnnotation { account })
                }
            }
            (None, Some(client_id)) => Err(ProviderError::MissingToken {
                client_id: client_id.to_string(),
            }),
            (None, None) => self.node_answer(server),
        }
    }

    /// The node identity's answer: its token, or for a service-principal node whose derived
    /// token cannot be had (the registry is in another tenant, Entra refuses), its id and secret,
    /// as the AKS plugin answers.
    fn node_answer(&self, server: &LoginServer) -> Result<Answer, ProviderError> {
        match (self.node_identity_credential(server), &self.node_identity) {
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

    /// Identity bindings: the pod's token exchanged at the cluster's local authority.
    fn binding_credential(
        &self,
        server: &LoginServer,
        request: &CredentialProviderRequest,
        token: &Secret,
        ib: &IdentityBindings,
    ) -> Result<Credential, ProviderError> {
        let account =
            ServiceAccount::from_token(token).ok_or(ProviderError::BadServiceAccountToken)?;
        let client_id =
            match annotation(request, CLIENT_ID_ANNOTATION)? {
                Some(c) => c.to_string(),
                None => ib.default_client_id.clone().ok_or_else(|| {
                    ProviderError::NoBindingClientId {
                        account: account.describe(),
                    }
                })?,
            };
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
        self.pod_identity_credential(server, &account, &identity)
    }

    /// The broker's credential for a pod's identity; errors name the service account.
    fn pod_identity_credential(
        &self,
        server: &LoginServer,
        account: &ServiceAccount,
        identity: &Identity,
    ) -> Result<Credential, ProviderError> {
        self.broker
            .credential_for(server, identity)
            .map_err(|source| ProviderError::Pod {
                account: account.describe(),
                client_id: identity.client_id().unwrap_or_default().to_string(),
                source: Box::new(source),
            })
    }

    fn node_identity_credential(&self, server: &LoginServer) -> Result<Credential, ProviderError> {
        Ok(match &self.node_identity {
            Some(identity) => self.broker.credential_for(server, identity)?,
            None => self.broker.credential(server)?,
        })
    }

    fn pod_credential(
        &self,
        server: &LoginServer,
        request: &CredentialProviderRequest,
        token: &Secret,
        client_id: &str,
    ) -> Result<Credential, ProviderError> {
        let account =
            ServiceAccount::from_token(token).ok_or(ProviderError::BadServiceAccountToken)?;
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
        self.pod_identity_credential(server, &account, &identity)
    }
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

/// How long the kubelet may keep `credential`: until the broker would refresh it, and never
/// closer to its expiry than the broker's hand-out margin; `0s` when that time has passed.
pub fn cache_duration(credential: &Credential, now: i64) -> GoDuration {
    GoDuration(u64::try_from(credential.keep_until().saturating_sub(now)).unwrap_or(0))
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

fn no_credentials(request: &CredentialProviderRequest, reason: &str) -> CredentialProviderResponse {
    let image: String = request.image.trim().chars().take(200).collect();
    log::warn!("no credentials for {image}: {reason}");
    CredentialProviderResponse::new(request.api_version)
}

/// An annotation's value: `None` when absent or empty, an error when it cannot be an Entra id
/// (a GUID or, for tenants, a domain name).
fn annotation<'a>(
    request: &'a CredentialProviderRequest,
    key: &'static str,
) -> Result<Option<&'a str>, ProviderError> {
    let Some(value) = request
        .service_account_annotations
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
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
    fn cache_duration_runs_to_the_refresh_point() {
        // A 3 h token issued now: refreshed when a third remains, so 2 h.
        let now = 1_000_000;
        assert_eq!(
            cache_duration(&credential(now + 3 * 3600, now + 2 * 3600), now).to_string(),
            "2h0m0s"
        );
        // Fetched 61 s ago: 1h58m59s left before the refresh point.
        assert_eq!(
            cache_duration(&credential(now + 3 * 3600 - 61, now + 2 * 3600 - 61), now).to_string(),
            "1h58m59s"
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
            assert_eq!(r.cache_duration, None);
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
        let cases: [Case; 5] = [
            (
                Some(token.clone()),
                &[],
                &[
                    "service account shop/web has no kubernetes.azure.com/acr-client-id",
                    "--fallback-to-node-identity",
                ],
            ),
            (None, &[client], &["sent no service-account token"]),
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
            Some(Identity::Imds { client_id: None })
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
    fn incomplete_azure_json_is_a_configuration_error() {
        let file = AzureJson::parse(
            br#"{"aadClientId":"c"}"#,
            std::path::Path::new("/etc/azure.json"),
        )
        .unwrap();
        let e = provider(Options {
            azure_json: Some(file),
            ..Options::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("/etc/azure.json: neither useManagedIdentityExtension"),
            "{e}"
        );
    }
}
