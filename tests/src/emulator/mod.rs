//! An emulator of Microsoft Entra token endpoints, the managed identity endpoints and the Azure
//! Container Registry token service, for integration tests of the credential helpers.
//!
//! [`Emulator::start`] binds one HTTPS port on a background tokio runtime and serves:
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /{tenant}/oauth2/v2.0/token` | Entra client credentials: secret, certificate or federated assertion |
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration`, `GET /common/discovery/instance` | Entra's discovery documents, which MSAL-based clients (the Go SDK) read first |
//! | `GET /msi/token` | App Service managed identity (`IDENTITY_ENDPOINT` / `IDENTITY_HEADER`) |
//! | `GET /metadata/identity/oauth2/token` | IMDS (also on plain HTTP via [`Emulator::serve_imds_http`]) |
//! | `GET /v2/` | ACR Bearer challenge, by `Host`; with a backend ([`Emulator::set_upstream`]), every `/v2/…` request is proxied to it |
//! | `POST /oauth2/exchange` | Entra access token → ACR refresh token, by `Host` |
//! | `GET /actions/{job}/idtoken` | GitHub Actions OIDC token of a job ([`Emulator::add_github_job`]) |
//! | `POST /pipelines/{job}/oidctoken` | Azure Pipelines OIDC token of a job's service connection ([`Emulator::add_pipelines_job`]) |
//! | `GET\|POST /oauth2/token` | ACR refresh token (or admin user, [`Emulator::set_admin_user`]) → access token, by `Host` |
//! | `GET\|DELETE /_emulator/counters`, `POST\|DELETE /_emulator/faults` | control |
//! | every request of every listener | recorded in the journal ([`Emulator::journal`]): identity-choosing parameters, never a secret |
//! | `POST /` at `https://<sni-name>` | AKS identity bindings token authority, on a listener and CA of its own ([`Emulator::start_identity_binding_authority`]): service account token → Entra access token |
//!
//! Registry endpoints answer only for hosts added with [`Emulator::add_registry`] (matched as the
//! client sent `Host`, port included unless 443). A registry with a backend is a real registry
//! (Docker distribution with `auth: token`, see [`Emulator::token_signing_cert_pem`]) behind the
//! emulator's TLS and token service, as ACR's front end is. The server certificate is made per SNI name by a
//! test CA ([`Emulator::ca_pem_path`]; point `SSL_CERT_FILE` at it).
//!
//! ```no_run
//! use acr_tests::emulator::{Emulator, EmulatorConfig, Role};
//! let emu = Emulator::start(EmulatorConfig::default())?;
//! emu.add_registry("myreg.azurecr.io");
//! let sp = emu.add_secret_principal("tenant-1", "app-1", "s3cret");
//! emu.grant(&sp.client_id, "myreg.azurecr.io", Role::AcrPull);
//! // AZURE_AUTHORITY_HOST = emu.base_url(), SSL_CERT_FILE = emu.ca_pem_path(), then run a client.
//! assert_eq!(emu.counters().entra(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

mod acr;
mod arc;
mod binding;
mod crypto;
mod discovery;
mod entra;
mod host;
mod journal;
mod model;
mod oidc;
mod proxy;
mod server;
mod state;

#[cfg(test)]
mod tests;

pub use binding::{IDENTITY_BINDING_AUDIENCE, IdentityBindingAuthority};
pub use crypto::libtrust_key_id;

/// Where the Azure Arc agent keeps the key files its challenges name (Linux), as
/// [`Emulator::serve_arc_agent`] makes it.
pub const ARC_TOKENS_FOLDER: &str = "/var/opt/azcmagent/tokens";
pub use journal::Entry as JournalEntry;
pub use model::{
    CertPair, Counters, EndpointKind, Fault, FaultAction, Principal, RegistryAudiences, Role,
};
pub use oidc::{CiJob, CiKind};

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

use crypto::{Keys, io_err, secs};
use state::{Directory, Federated, Settings, Shared};

/// Lock a mutex, ignoring poisoning: a panicked handler leaves no half-updated state behind
/// that matters to a test emulator.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A service principal with a client secret, for [`EmulatorConfig::secret_principals`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretPrincipalSpec {
    /// Tenant id.
    pub tenant: String,
    /// Client (application) id.
    pub client_id: String,
    /// The client secret.
    pub secret: String,
}

/// A role assignment, for [`EmulatorConfig::grants`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantSpec {
    /// Object id or client id of the identity.
    pub principal: String,
    /// Registry login server, e.g. `myreg.azurecr.io`.
    pub registry: String,
    /// The role.
    pub role: Role,
}

/// How to start an [`Emulator`]; every field has a default, and the struct is also the JSON
/// configuration file of the `acr-emulator` binary.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulatorConfig {
    /// Address of the HTTPS listener; default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Registry login servers known from the start.
    pub registries: Vec<String>,
    /// Faults pending from the start.
    pub faults: Vec<Fault>,
    /// Lifetime of Entra access tokens; default 1 hour.
    #[serde(with = "seconds")]
    pub entra_lifetime: Duration,
    /// Lifetime of ACR refresh tokens; default 3 hours.
    #[serde(with = "seconds")]
    pub refresh_lifetime: Duration,
    /// Lifetime of ACR access tokens; default 1 hour (the real value is not documented).
    #[serde(with = "seconds")]
    pub access_lifetime: Duration,
    /// `iss` of ACR access tokens (the registry's `auth.token.issuer`).
    pub acr_issuer: String,
    /// The tenant managed identities belong to: that of their subscription, as a real managed
    /// identity is a service principal of its subscription's tenant. Default [`crate::TENANT`],
    /// the tenant of the tests' nodes and app registrations.
    pub managed_identity_tenant: String,
    /// The App Service `IDENTITY_HEADER` secret; default a fresh uuid.
    pub identity_header: Option<String>,
    /// Service principals with secrets to create at start.
    pub secret_principals: Vec<SecretPrincipalSpec>,
    /// Managed identities to create at start: `null` is the system-assigned one, a string a
    /// user-assigned client id.
    pub managed_identities: Vec<Option<String>>,
    /// Role assignments to make at start (principals by client id).
    pub grants: Vec<GrantSpec>,
    /// Registries whose `/v2/` API a backend serves: login server → `http://host:port` (see
    /// [`Emulator::set_upstream`]).
    pub upstreams: BTreeMap<String, String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            registries: Vec::new(),
            faults: Vec::new(),
            entra_lifetime: Duration::from_secs(3600),
            refresh_lifetime: Duration::from_secs(3 * 3600),
            access_lifetime: Duration::from_secs(3600),
            acr_issuer: "Azure Container Registry".to_owned(),
            managed_identity_tenant: crate::TENANT.to_owned(),
            identity_header: None,
            secret_principals: Vec::new(),
            managed_identities: Vec::new(),
            grants: Vec::new(),
            upstreams: BTreeMap::new(),
        }
    }
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A running emulator; dropping it stops every listener.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_path: PathBuf,
    _ca_dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Generate keys, bind the HTTPS listener and serve on a background runtime.
    pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let keys = Keys::generate(&config.registries)?;
        let tls = crypto::server_config(Arc::clone(&keys.tls))?;
        let settings = Settings {
            entra_lifetime: config.entra_lifetime,
            refresh_lifetime: config.refresh_lifetime,
            access_lifetime: config.access_lifetime,
            acr_issuer: config.acr_issuer.clone(),
            identity_header: config
                .identity_header
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            managed_identity_tenant: config.managed_identity_tenant.clone(),
        };
        let shared = Arc::new(Shared {
            keys,
            dir: Mutex::new(Directory::default()),
            counters: Mutex::default(),
            faults: Mutex::new(config.faults.clone()),
            settings: Mutex::new(settings),
            ci: Mutex::default(),
            clock_offset: AtomicI64::new(0),
            clock_stopped_at: AtomicI64::new(state::CLOCK_RUNS),
            journal: Arc::default(),
            arc_keys: Mutex::default(),
        });

        let ca_dir = tempfile::Builder::new().prefix("acr-emulator-").tempdir()?;
        let ca_path = ca_dir.path().join("ca.pem");
        std::fs::write(&ca_path, &shared.keys.ca_pem)?;

        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("acr-emulator")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(server::serve_tls(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            server::router(Arc::clone(&shared)),
        ));

        let emulator = Emulator {
            shared,
            addr,
            ca_path,
            _ca_dir: ca_dir,
            runtime: Some(runtime),
        };
        for registry in &config.registries {
            emulator.add_registry(registry);
        }
        for sp in &config.secret_principals {
            emulator.add_secret_principal(&sp.tenant, &sp.client_id, &sp.secret);
        }
        for mi in &config.managed_identities {
            emulator.add_managed_identity(mi.as_deref());
        }
        for g in &config.grants {
            emulator.grant(&g.principal, &g.registry, g.role);
        }
        for (registry, url) in &config.upstreams {
            emulator.set_upstream(registry, url)?;
        }
        Ok(emulator)
    }

    /// The HTTPS port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the HTTPS listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://localhost:{port}`: the authority host for Entra clients.
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.port())
    }

    /// Path of a PEM file holding the CA that signs the server certificates.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.shared.keys.ca_pem.clone()
    }

    /// A self-signed certificate over the ACR token signing key, PEM: the `rootcertbundle` of a
    /// Docker distribution registry that should accept the emulator's access tokens.
    pub fn token_signing_cert_pem(&self) -> String {
        self.shared.keys.acr_cert_pem.clone()
    }

    /// The `kid` of ACR tokens: the libtrust key id of the token signing key.
    pub fn token_signing_key_id(&self) -> String {
        self.shared.keys.acr.kid.clone()
    }

    /// The `iss` of ACR access tokens.
    pub fn acr_issuer(&self) -> String {
        self.shared.settings().acr_issuer
    }

    /// Set the `iss` of ACR access tokens issued from now on (a registry's `auth.token.issuer`).
    pub fn set_acr_issuer(&self, issuer: &str) {
        lock(&self.shared.settings).acr_issuer = issuer.to_owned();
    }

    /// Every secret the emulator knows or has handed out: client secrets, admin passwords, the
    /// App Service identity header, and every token it signed (Entra, ACR refresh and access,
    /// service-account tokens). Tests check that none of them appears in a program's output.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = lock(&self.shared.dir).secrets();
        out.extend(lock(&self.shared.ci).secrets());
        out.push(self.shared.settings().identity_header);
        out.extend(lock(&self.shared.arc_keys).iter().cloned());
        for key in [
            &self.shared.keys.entra,
            &self.shared.keys.acr,
            &self.shared.keys.cluster,
        ] {
            out.extend(lock(&key.minted).iter().cloned());
        }
        out.retain(|s| s.len() >= 8);
        out
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Set every counter back to zero.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// Every request received so far by any listener (the HTTPS port, IMDS, identity bindings
    /// authorities), oldest first, with its identity-choosing parameters and no secret.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal.entries()
    }

    /// Empty the journal.
    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// Serve the registry endpoints for `name`, the login server as clients see it
    /// (`myreg.azurecr.io`, `localhost:43121`).
    pub fn add_registry(&self, name: &str) {
        lock(&self.shared.dir).add_registry(name);
    }

    /// Put a real registry behind `registry` (added if new): every `/v2/…` request for it is
    /// forwarded to `url`, a plain-HTTP origin such as `http://127.0.0.1:5000`, and the answer
    /// streamed back, headers included (`Www-Authenticate`, `Docker-Content-Digest`, ...);
    /// `Location`s pointing at the backend are rewritten to `https://<registry>`. The emulator keeps
    /// serving `/oauth2/exchange` and `/oauth2/token` for it, so the backend should be a Docker
    /// distribution registry whose `auth.token` has realm `https://<registry>/oauth2/token`,
    /// service `<registry>`, issuer [`Emulator::acr_issuer`] and rootcertbundle
    /// [`Emulator::token_signing_cert_pem`]. Backend requests count as
    /// [`EndpointKind::Challenge`] and take its faults.
    ///
    /// Fails if `url` is not `http://host[:port]`.
    pub fn set_upstream(&self, registry: &str, url: &str) -> io::Result<()> {
        let upstream = proxy::Upstream::parse(url)?;
        lock(&self.shared.dir).set_upstream(registry, upstream);
        Ok(())
    }

    /// Registries with a backend and the backend's origin, sorted.
    pub fn upstreams(&self) -> Vec<(String, String)> {
        lock(&self.shared.dir).upstreams()
    }

    /// Let only Entra tokens of `tenant` into a registry: from now on `POST /oauth2/exchange`
    /// for it refuses (401) an access token whose `tid` is another tenant (compared
    /// case-insensitively). Basic client id and secret at `/oauth2/token` still work, as for a
    /// multi-tenant app whose service principal in the registry's tenant holds a role.
    pub fn set_registry_tenant(&self, registry: &str, tenant: &str) {
        lock(&self.shared.dir).set_owner(registry, tenant);
    }

    /// Turns a registry's anonymous pull (ACR's `anonymousPullEnabled`) on or off. When on, the
    /// token service gives a client that sends no credentials at all (`GET /oauth2/token` without
    /// `Authorization`, Docker's anonymous flow) an access token for the requested repositories'
    /// `pull` action only. A client that does authenticate is judged by its role as before, so an
    /// identity without a role still gets no access: ACR's documentation (Learn, "Make your
    /// container registry content publicly available", azure/container-registry/anonymous-pull-access)
    /// says anonymous pull opens all content for read to unauthenticated clients, offers them only
    /// data-plane operations, and that a client that authenticated before must clear its
    /// credentials before an anonymous pull.
    pub fn set_anonymous_pull(&self, registry: &str, enabled: bool) {
        lock(&self.shared.dir).set_anonymous_pull(registry, enabled);
    }

    /// Which Entra token audiences a registry's `/oauth2/exchange` takes (default: both). A token
    /// of another audience is refused with 401 as real ACR refuses an ARM-audience token when
    /// ARM-audience authentication is disabled (see [`RegistryAudiences`]).
    pub fn set_registry_audiences(&self, registry: &str, audiences: RegistryAudiences) {
        lock(&self.shared.dir).set_audiences(registry, audiences);
    }

    /// From now on `tenant` has no service principal for `resource` (e.g.
    /// `https://containerregistry.azure.net`): Entra refuses client-credential tokens for it in
    /// that tenant with AADSTS500011, as for a tenant where ACR's first-party app is missing.
    pub fn remove_tenant_resource(&self, tenant: &str, resource: &str) {
        lock(&self.shared.dir).remove_resource(tenant, resource);
    }

    /// Undo [`Emulator::remove_tenant_resource`]: `tenant` has the service principal for
    /// `resource` again (an administrator consented to the app), and Entra issues its tokens.
    pub fn restore_tenant_resource(&self, tenant: &str, resource: &str) {
        lock(&self.shared.dir).restore_resource(tenant, resource);
    }

    /// Enable the admin user of a registry (on ACR the username is the registry's name): Basic
    /// `GET /oauth2/token` with these credentials gets every action asked for, with no role
    /// assignment, as with `docker login -u <name> -p <password>`.
    pub fn set_admin_user(&self, registry: &str, username: &str, password: &str) {
        lock(&self.shared.dir).set_admin(registry, username, password);
    }

    /// The registries served, normalized (lowercase, no `:443`).
    pub fn registries(&self) -> Vec<String> {
        lock(&self.shared.dir).registries()
    }

    /// Every identity the emulated directory holds: app registrations, then managed identities.
    pub fn principals(&self) -> Vec<Principal> {
        lock(&self.shared.dir).principals()
    }

    /// Give an identity (object id or client id) a role on a registry.
    pub fn grant(&self, principal_object_id_or_client_id: &str, registry: &str, role: Role) {
        lock(&self.shared.dir).grant(principal_object_id_or_client_id, registry, role);
    }

    /// Assign a repository role (ABAC): `AcrPull` stands for "Container Registry Repository
    /// Reader", `AcrPush` for "… Writer", `Owner` for "… Contributor". Counts only on a registry
    /// in ABAC mode ([`Emulator::set_abac_mode`]), where the `access` claim of `/oauth2/token`
    /// is filtered by these per repository.
    pub fn grant_repository(
        &self,
        principal_object_id_or_client_id: &str,
        registry: &str,
        repository: &str,
        role: Role,
    ) {
        lock(&self.shared.dir).grant_repository(
            principal_object_id_or_client_id,
            registry,
            repository,
            role,
        );
    }

    /// Put a registry in ABAC mode (`roleAssignmentMode: AbacRepositoryPermissions`): registry
    /// roles AcrPull and AcrPush no longer give repository access, repository roles do (see
    /// <https://learn.microsoft.com/en-us/azure/container-registry/container-registry-rbac-abac-repository-permissions>).
    pub fn set_abac_mode(&self, registry: &str, on: bool) {
        lock(&self.shared.dir).set_abac(registry, on);
    }

    /// Remove an identity's roles (granted to that object id or client id) on a registry, as
    /// when a role assignment is deleted: tokens already issued stay valid until they expire.
    pub fn revoke(&self, principal_object_id_or_client_id: &str, registry: &str) {
        lock(&self.shared.dir).revoke(principal_object_id_or_client_id, registry);
    }

    /// Register a service principal (or add a secret to an existing one).
    pub fn add_secret_principal(&self, tenant: &str, client_id: &str, secret: &str) -> Principal {
        let mut dir = lock(&self.shared.dir);
        let app = dir.app_entry(tenant, client_id);
        app.secrets.push(secret.to_owned());
        app.principal.clone()
    }

    /// Register a service principal with a fresh RSA 2048 certificate; clients sign RS256
    /// assertions with the key and name the certificate by `x5t` (its SHA-1 thumbprint).
    pub fn add_certificate_principal(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> io::Result<(Principal, CertPair)> {
        let cert = crypto::client_certificate(client_id)?;
        let mut dir = lock(&self.shared.dir);
        let app = dir.app_entry(tenant, client_id);
        app.certs.push((cert.thumbprints, cert.decoding));
        Ok((
            app.principal.clone(),
            CertPair {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            },
        ))
    }

    /// Register an application with a federated credential trusting service account tokens of
    /// `issuer` about `subject` (audience `api://AzureADTokenExchange`).
    pub fn add_federated_principal(
        &self,
        tenant: &str,
        client_id: &str,
        issuer: &str,
        subject: &str,
    ) -> Principal {
        let mut dir = lock(&self.shared.dir);
        let app = dir.app_entry(tenant, client_id);
        app.federated.push(Federated {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audiences: vec![entra::TOKEN_EXCHANGE_AUDIENCE.to_owned()],
        });
        app.principal.clone()
    }

    /// A Kubernetes service account token signed by the emulated cluster's key, which the
    /// emulated Entra trusts for any issuer named by a federated credential.
    pub fn mint_service_account_token(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        lifetime: Duration,
    ) -> String {
        let now = self.shared.now();
        let (namespace, name) = subject
            .strip_prefix("system:serviceaccount:")
            .and_then(|s| s.split_once(':'))
            .unwrap_or(("default", "default"));
        self.shared.keys.cluster.sign_infallible(&json!({
            "aud": [audience],
            "exp": now + secs(lifetime),
            "iat": now,
            "iss": issuer,
            "nbf": now,
            "sub": subject,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": uuid::Uuid::new_v4().to_string()},
            },
        }))
    }

    /// A GitHub Actions job with `permissions: id-token: write`: its OIDC endpoint issues tokens
    /// about `subject` (e.g. `repo:org/repo:ref:refs/heads/main`) that live `lifetime`, signed as
    /// the emulated Entra trusts for federated credentials naming [`CiJob::issuer`].
    pub fn add_github_job(&self, subject: &str, lifetime: Duration) -> CiJob {
        self.add_ci_job(CiKind::GitHub, "", subject, lifetime)
    }

    /// An Azure Pipelines job that may use the service connection `service_connection`: its
    /// OIDC endpoint issues tokens about `subject` (e.g. `sc://org/project/connection`) that live
    /// `lifetime`.
    pub fn add_pipelines_job(
        &self,
        service_connection: &str,
        subject: &str,
        lifetime: Duration,
    ) -> CiJob {
        self.add_ci_job(
            CiKind::AzurePipelines,
            service_connection,
            subject,
            lifetime,
        )
    }

    fn add_ci_job(
        &self,
        kind: CiKind,
        service_connection: &str,
        subject: &str,
        lifetime: Duration,
    ) -> CiJob {
        let job = oidc::new_job(
            &self.base_url(),
            kind,
            service_connection,
            subject,
            lifetime,
        );
        let public = job.public.clone();
        lock(&self.shared.ci).0.insert(public.id.clone(), job);
        public
    }

    /// Add a managed identity: `None` is the system-assigned one, `Some` a user-assigned one by
    /// client id. Adding the same again returns the existing identity.
    pub fn add_managed_identity(&self, client_id: Option<&str>) -> Principal {
        let tenant = self.shared.settings().managed_identity_tenant;
        lock(&self.shared.dir).add_managed(&tenant, client_id)
    }

    /// Add (or find) the user-assigned identity with this client id and record its ARM resource
    /// id (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`),
    /// by which IMDS (`msi_res_id`) and App Service (`mi_res_id`) then find it, ignoring case.
    pub fn add_managed_identity_with_resource_id(
        &self,
        client_id: &str,
        resource_id: &str,
    ) -> Principal {
        let tenant = self.shared.settings().managed_identity_tenant;
        let mut dir = lock(&self.shared.dir);
        let principal = dir.add_managed(&tenant, Some(client_id));
        dir.set_resource_id(&principal.client_id, resource_id);
        principal
    }

    /// `(IDENTITY_ENDPOINT, IDENTITY_HEADER)` for App Service managed identity clients.
    pub fn app_service_endpoint(&self) -> (String, String) {
        (
            format!("{}/msi/token", self.base_url()),
            self.shared.settings().identity_header,
        )
    }

    /// An Entra access token for `principal` with audience `audience`, as
    /// `az account get-access-token` would print.
    pub fn mint_entra_token(
        &self,
        principal: &Principal,
        audience: &str,
        lifetime: Duration,
    ) -> String {
        let claims =
            entra::access_token_claims_at(self.shared.now(), principal, audience, lifetime, "0");
        self.shared.keys.entra.sign_infallible(&claims)
    }

    /// Queue a fault; faults apply in the order queued.
    pub fn set_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Drop every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Runs the emulator's clock `seconds` ahead of the machine's (behind when negative), from
    /// now on, instead of a test sleeping: every token it issues (Entra, managed identity, ACR,
    /// CI OIDC, service account) is dated by that clock, and every token it checks (client
    /// assertions, Entra tokens at the exchange, ACR refresh and access tokens) is judged by it.
    /// Ahead, tokens it issued earlier have expired for it; behind, the tokens it issues look
    /// `-seconds` old to clients, which judge them by the machine's clock. The identity bindings
    /// authority ([`Emulator::start_identity_binding_authority`]) keeps the machine's clock.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.shared.clock_offset.store(seconds, Ordering::SeqCst);
        self.shared
            .clock_stopped_at
            .store(state::CLOCK_RUNS, Ordering::SeqCst);
    }

    /// Stops the emulator's clock at `unix_seconds` until a test moves it again (this, or
    /// [`Emulator::set_clock_offset`], which starts it again): every token it issues is dated,
    /// and every token it checks judged, at exactly that second, however long the requests
    /// take: for a test that drives a client's clock through simulated time (the broker's
    /// `ManualClock`) and wants the emulator's to agree to the second.
    pub fn stop_clock_at(&self, unix_seconds: i64) {
        self.shared
            .clock_stopped_at
            .store(unix_seconds, Ordering::SeqCst);
    }

    /// Lifetimes of Entra access tokens and ACR refresh tokens issued from now on.
    pub fn set_lifetimes(&self, entra: Duration, refresh: Duration) {
        let mut settings = lock(&self.shared.settings);
        settings.entra_lifetime = entra;
        settings.refresh_lifetime = refresh;
    }

    /// Also serve IMDS over plain HTTP on `addr` (e.g. `169.254.169.254:80` in a test network
    /// namespace, or `127.0.0.1:0`); returns the bound address.
    pub fn serve_imds_http(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.serve_plain_on(addr, server::imds_router(Arc::clone(&self.shared)))
    }

    /// Serves `router` over plain HTTP on `addr`, on the emulator's runtime; returns the bound
    /// address.
    fn serve_plain_on(&self, addr: SocketAddr, router: axum::Router) -> io::Result<SocketAddr> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| io_err("the emulator is shut down"))?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(server::serve_plain(listener, router));
        Ok(bound)
    }

    /// Also serve an Azure Arc agent's managed identity endpoint (HIMDS) over plain HTTP on
    /// `addr` (`127.0.0.1:40342` in a test network namespace): a request without the key is
    /// answered 401 with `WWW-Authenticate: Basic realm=<key file>`, the key file (a new random
    /// key, mode 0640) written into `tokens_folder` first; a request with
    /// `Authorization: Basic <key>` gets a token of the system-assigned managed identity
    /// ([`Emulator::add_managed_identity`] with no client id). Returns the bound address.
    pub fn serve_arc_http(&self, addr: SocketAddr, tokens_folder: &Path) -> io::Result<SocketAddr> {
        self.serve_plain_on(
            addr,
            arc::router(Arc::clone(&self.shared), tokens_folder.to_path_buf()),
        )
    }

    /// The Azure Arc agent as a machine has it, for a test inside its own network and mount
    /// namespace (`sandbox::in_private_netns`): a tmpfs over `/var/opt`, the agent's token folder
    /// [`ARC_TOKENS_FOLDER`] in it (root's, mode 0770 as the agent keeps it), and
    /// [`Emulator::serve_arc_http`] on the agent's address, `127.0.0.1:40342`.
    pub fn serve_arc_agent(&self) -> io::Result<SocketAddr> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs", "/var/opt"])
            .output()?;
        if !out.status.success() {
            return Err(io_err(format!(
                "mount a tmpfs over /var/opt: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::create_dir_all(ARC_TOKENS_FOLDER)?;
        std::fs::set_permissions(ARC_TOKENS_FOLDER, std::fs::Permissions::from_mode(0o770))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], 40342));
        self.serve_arc_http(addr, Path::new(ARC_TOKENS_FOLDER))
    }

    /// Start an AKS identity bindings token authority on `addr` (e.g. `192.0.2.20:443` in a test
    /// network namespace, or `127.0.0.1:0`) that serves TLS only to clients asking for
    /// `sni_name` (a DNS name), with a certificate from its own CA, not the emulator's.
    ///
    /// It exchanges a service account token signed as by
    /// [`Emulator::mint_service_account_token`] (audience [`IDENTITY_BINDING_AUDIENCE`]) for an
    /// Entra access token of an identity the emulator knows, once bound with
    /// [`IdentityBindingAuthority::bind`]. Fails if `sni_name` is not a DNS name or `addr`
    /// cannot be bound.
    pub fn start_identity_binding_authority(
        &self,
        addr: SocketAddr,
        sni_name: &str,
    ) -> io::Result<IdentityBindingAuthority> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| io_err("the emulator is shut down"))?;
        binding::start(Arc::clone(&self.shared), runtime, addr, sni_name)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Does not block, so an emulator may be dropped inside an async test too.
            runtime.shutdown_background();
        }
    }
}
