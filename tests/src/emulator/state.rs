//! What the emulator knows and remembers: the directory of identities, role assignments,
//! settings, counters and pending faults, shared by every connection.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;

use super::crypto::{Keys, Thumbprints};
use super::host;
use super::lock;
use super::model::{
    Counters, EndpointKind, Fault, FaultAction, Principal, RegistryAudiences, Role,
};
use super::proxy::Upstream;

/// `Shared::clock_stopped_at` when the emulator's clock runs.
pub(crate) const CLOCK_RUNS: i64 = i64::MIN;

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) keys: Keys,
    pub(crate) dir: Mutex<Directory>,
    pub(crate) counters: Mutex<Counters>,
    pub(crate) faults: Mutex<Vec<Fault>>,
    pub(crate) settings: Mutex<Settings>,
    /// CI jobs whose OIDC tokens the emulator issues.
    pub(crate) ci: Mutex<super::oidc::Jobs>,
    /// Seconds the emulator's clock runs ahead of the machine's (negative: behind); see
    /// [`Shared::now`].
    pub(crate) clock_offset: AtomicI64,
    /// Where the emulator's clock stands still ([`super::Emulator::stop_clock_at`]), or
    /// [`CLOCK_RUNS`].
    pub(crate) clock_stopped_at: AtomicI64,
    /// Every request of every listener (see `journal`).
    pub(crate) journal: Arc<super::journal::Journal>,
}

/// Tunables that may change while running.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) entra_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) access_lifetime: Duration,
    pub(crate) acr_issuer: String,
    pub(crate) identity_header: String,
    pub(crate) managed_identity_tenant: String,
}

/// One app registration (service principal) with its credentials.
pub(crate) struct App {
    pub(crate) principal: Principal,
    pub(crate) secrets: Vec<String>,
    pub(crate) certs: Vec<(Thumbprints, DecodingKey)>,
    pub(crate) federated: Vec<Federated>,
}

/// A federated identity credential: trust tokens of `issuer` about `subject`.
pub(crate) struct Federated {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) audiences: Vec<String>,
}

/// Identities, registries and role assignments.
#[derive(Default)]
pub(crate) struct Directory {
    apps: HashMap<(String, String), App>,
    user_assigned: Vec<Principal>,
    system: Option<Principal>,
    registries: BTreeSet<String>,
    grants: HashMap<String, HashMap<String, Role>>,
    /// Backends that serve a registry's `/v2/` API, by normalized host.
    upstreams: HashMap<String, Upstream>,
    /// The admin user of a registry, by normalized host: (username, password).
    admins: HashMap<String, (String, String)>,
    /// The tenant that owns a registry, by normalized host; registries without one take tokens
    /// of any tenant.
    owners: HashMap<String, String>,
    /// The audiences a registry takes, by normalized host; absent: both.
    audiences: HashMap<String, RegistryAudiences>,
    /// Registries with anonymous pull enabled, by normalized host.
    anonymous_pull: BTreeSet<String>,
    /// The ARM resource id of a user-assigned identity, lowercase (ARM ids are
    /// case-insensitive) → its client id.
    resource_ids: HashMap<String, String>,
    /// (tenant, resource) pairs whose resource principal the tenant lacks: Entra refuses
    /// tokens for that resource in that tenant (AADSTS500011).
    missing_resources: BTreeSet<(String, String)>,
}

/// Why a managed identity request names no identity.
pub(crate) enum MiLookup {
    Found(Principal),
    NotFound,
    Ambiguous,
}

impl Directory {
    /// The app registration for (tenant, client id), created with a fresh object id if new.
    pub(crate) fn app_entry(&mut self, tenant: &str, client_id: &str) -> &mut App {
        self.apps
            .entry((tenant.to_ascii_lowercase(), client_id.to_ascii_lowercase()))
            .or_insert_with(|| App {
                principal: Principal {
                    tenant: tenant.to_owned(),
                    client_id: client_id.to_owned(),
                    object_id: uuid::Uuid::new_v4().to_string(),
                },
                secrets: Vec::new(),
                certs: Vec::new(),
                federated: Vec::new(),
            })
    }

    pub(crate) fn app(&self, tenant: &str, client_id: &str) -> Option<&App> {
        self.apps
            .get(&(tenant.to_ascii_lowercase(), client_id.to_ascii_lowercase()))
    }

    /// Whether any identity lives in `tenant`.
    pub(crate) fn tenant_known(&self, tenant: &str, mi_tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(mi_tenant)
            || self
                .apps
                .keys()
                .any(|(t, _)| t.eq_ignore_ascii_case(tenant))
    }

    /// A service principal with this client id and secret, in any tenant (ACR basic auth).
    pub(crate) fn secret_principal(&self, client_id: &str, secret: &str) -> Option<Principal> {
        self.apps
            .values()
            .find(|a| {
                a.principal.client_id.eq_ignore_ascii_case(client_id)
                    && a.secrets.iter().any(|s| s == secret)
            })
            .map(|a| a.principal.clone())
    }

    /// Add a managed identity; `None` is the system-assigned one (replacing none if present).
    pub(crate) fn add_managed(&mut self, tenant: &str, client_id: Option<&str>) -> Principal {
        match client_id {
            None => self
                .system
                .get_or_insert_with(|| Principal {
                    tenant: tenant.to_owned(),
                    client_id: uuid::Uuid::new_v4().to_string(),
                    object_id: uuid::Uuid::new_v4().to_string(),
                })
                .clone(),
            Some(id) => {
                if let Some(found) = self
                    .user_assigned
                    .iter()
                    .find(|p| p.client_id.eq_ignore_ascii_case(id))
                {
                    return found.clone();
                }
                let p = Principal {
                    tenant: tenant.to_owned(),
                    client_id: id.to_owned(),
                    object_id: uuid::Uuid::new_v4().to_string(),
                };
                self.user_assigned.push(p.clone());
                p
            }
        }
    }

    /// Record the ARM resource id of a user-assigned identity (a later call for the same
    /// resource id wins).
    pub(crate) fn set_resource_id(&mut self, client_id: &str, resource_id: &str) {
        self.resource_ids
            .insert(resource_id.to_ascii_lowercase(), client_id.to_owned());
    }

    /// The identity with this client id: a managed identity, else the app registration if
    /// exactly one tenant has one with that id. `Err` says why there is none.
    pub(crate) fn principal_by_client_id(&self, client_id: &str) -> Result<Principal, String> {
        if let Some(mi) = self
            .system
            .iter()
            .chain(self.user_assigned.iter())
            .find(|p| p.client_id.eq_ignore_ascii_case(client_id))
        {
            return Ok(mi.clone());
        }
        let apps: Vec<&Principal> = self
            .apps
            .values()
            .map(|a| &a.principal)
            .filter(|p| p.client_id.eq_ignore_ascii_case(client_id))
            .collect();
        match apps.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "no application or managed identity with client id '{client_id}' is known"
            )),
            _ => Err(format!(
                "application '{client_id}' is registered in {} tenants; the tenant to issue a token in is ambiguous",
                apps.len()
            )),
        }
    }

    /// Resolve the identity a managed identity request names. With no id, IMDS uses the
    /// system-assigned identity, else the only user-assigned one (`single_default`).
    pub(crate) fn managed(
        &self,
        client_id: Option<&str>,
        object_id: Option<&str>,
        resource_id: Option<&str>,
        single_default: bool,
    ) -> MiLookup {
        let all = || self.system.iter().chain(self.user_assigned.iter());
        let found = if let Some(id) = client_id {
            all().find(|p| p.client_id.eq_ignore_ascii_case(id))
        } else if let Some(id) = object_id {
            all().find(|p| p.object_id.eq_ignore_ascii_case(id))
        } else if let Some(id) = resource_id {
            let client_id = self.resource_ids.get(&id.to_ascii_lowercase());
            client_id.and_then(|c| {
                self.user_assigned
                    .iter()
                    .find(|p| p.client_id.eq_ignore_ascii_case(c))
            })
        } else if let Some(system) = &self.system {
            Some(system)
        } else if single_default && self.user_assigned.len() > 1 {
            return MiLookup::Ambiguous;
        } else if single_default {
            self.user_assigned.first()
        } else {
            None
        };
        found.map_or(MiLookup::NotFound, |p| MiLookup::Found(p.clone()))
    }

    /// The client id of the identity with this object id.
    fn client_id_of(&self, object_id: &str) -> Option<&str> {
        self.apps
            .values()
            .map(|a| &a.principal)
            .chain(self.system.iter())
            .chain(self.user_assigned.iter())
            .find(|p| p.object_id.eq_ignore_ascii_case(object_id))
            .map(|p| p.client_id.as_str())
    }

    /// Every identity: app registrations, then managed identities.
    pub(crate) fn principals(&self) -> Vec<Principal> {
        let mut apps: Vec<Principal> = self.apps.values().map(|a| a.principal.clone()).collect();
        apps.sort_by(|a, b| (&a.tenant, &a.client_id).cmp(&(&b.tenant, &b.client_id)));
        apps.into_iter()
            .chain(self.system.iter().cloned())
            .chain(self.user_assigned.iter().cloned())
            .collect()
    }

    pub(crate) fn add_registry(&mut self, name: &str) {
        self.registries.insert(host::normalize(name));
    }

    pub(crate) fn registry_known(&self, host: &str) -> bool {
        self.registries.contains(&host::normalize(host))
    }

    pub(crate) fn registries(&self) -> Vec<String> {
        self.registries.iter().cloned().collect()
    }

    /// Serve a registry's `/v2/` API from a backend (the registry is added if new).
    pub(crate) fn set_upstream(&mut self, registry: &str, upstream: Upstream) {
        self.add_registry(registry);
        self.upstreams.insert(host::normalize(registry), upstream);
    }

    /// The backend of a registry, if it has one.
    pub(crate) fn upstream(&self, registry: &str) -> Option<Upstream> {
        self.upstreams.get(&host::normalize(registry)).cloned()
    }

    /// Every registry with a backend, and the backend's origin.
    pub(crate) fn upstreams(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .upstreams
            .iter()
            .map(|(r, u)| (r.clone(), u.origin().to_owned()))
            .collect();
        all.sort();
        all
    }

    /// Every client secret and admin password known to the directory.
    pub(crate) fn secrets(&self) -> Vec<String> {
        self.apps
            .values()
            .flat_map(|a| a.secrets.iter().cloned())
            .chain(self.admins.values().map(|(_, p)| p.clone()))
            .collect()
    }

    /// Enable a registry's admin user (replacing an earlier one).
    pub(crate) fn set_admin(&mut self, registry: &str, username: &str, password: &str) {
        self.admins.insert(
            host::normalize(registry),
            (username.to_owned(), password.to_owned()),
        );
    }

    /// Set the Entra token audiences a registry takes.
    pub(crate) fn set_audiences(&mut self, registry: &str, audiences: RegistryAudiences) {
        self.audiences.insert(host::normalize(registry), audiences);
    }

    /// The Entra token audiences a registry takes.
    pub(crate) fn audiences(&self, registry: &str) -> RegistryAudiences {
        self.audiences
            .get(&host::normalize(registry))
            .copied()
            .unwrap_or_default()
    }

    /// Enable or disable a registry's anonymous pull.
    pub(crate) fn set_anonymous_pull(&mut self, registry: &str, enabled: bool) {
        let host = host::normalize(registry);
        if enabled {
            self.anonymous_pull.insert(host);
        } else {
            self.anonymous_pull.remove(&host);
        }
    }

    /// Whether a registry has anonymous pull enabled.
    pub(crate) fn anonymous_pull(&self, registry: &str) -> bool {
        self.anonymous_pull.contains(&host::normalize(registry))
    }

    /// Make `tenant` the owner of a registry (replacing an earlier owner).
    /// The tenant lacks `resource`'s service principal from now on.
    pub(crate) fn remove_resource(&mut self, tenant: &str, resource: &str) {
        self.missing_resources.insert((
            tenant.to_ascii_lowercase(),
            resource.trim_end_matches('/').to_ascii_lowercase(),
        ));
    }

    /// Gives the tenant `resource`'s service principal back.
    pub(crate) fn restore_resource(&mut self, tenant: &str, resource: &str) {
        self.missing_resources.remove(&(
            tenant.to_ascii_lowercase(),
            resource.trim_end_matches('/').to_ascii_lowercase(),
        ));
    }

    /// Whether the tenant lacks `resource`'s service principal.
    pub(crate) fn lacks_resource(&self, tenant: &str, resource: &str) -> bool {
        self.missing_resources.contains(&(
            tenant.to_ascii_lowercase(),
            resource.trim_end_matches('/').to_ascii_lowercase(),
        ))
    }

    pub(crate) fn set_owner(&mut self, registry: &str, tenant: &str) {
        self.owners
            .insert(host::normalize(registry), tenant.to_owned());
    }

    /// The tenant that owns a registry, if one was set.
    pub(crate) fn owner(&self, registry: &str) -> Option<&str> {
        self.owners
            .get(&host::normalize(registry))
            .map(String::as_str)
    }

    /// Whether these are the admin user's credentials on `registry`.
    pub(crate) fn is_admin(&self, registry: &str, username: &str, password: &str) -> bool {
        self.admins
            .get(&host::normalize(registry))
            .is_some_and(|(u, p)| u == username && p == password)
    }

    /// Assign `role` to an object id or client id on a registry; the strongest role wins.
    pub(crate) fn grant(&mut self, id: &str, registry: &str, role: Role) {
        let slot = self
            .grants
            .entry(host::normalize(registry))
            .or_default()
            .entry(id.to_ascii_lowercase())
            .or_insert(role);
        *slot = (*slot).max(role);
    }

    /// Remove every role of an object id or client id on a registry.
    pub(crate) fn revoke(&mut self, id: &str, registry: &str) {
        if let Some(g) = self.grants.get_mut(&host::normalize(registry)) {
            g.remove(&id.to_ascii_lowercase());
        }
    }

    /// The strongest role of an identity (by object id, or its client id) on a registry.
    pub(crate) fn role(
        &self,
        registry: &str,
        object_id: &str,
        app_id: Option<&str>,
    ) -> Option<Role> {
        let grants = self.grants.get(&host::normalize(registry))?;
        let app_id = app_id.or_else(|| self.client_id_of(object_id));
        [Some(object_id), app_id]
            .into_iter()
            .flatten()
            .filter_map(|id| grants.get(&id.to_ascii_lowercase()).copied())
            .max()
    }
}

/// Per-connection control: lets a fault close the connection a request arrived on.
#[derive(Clone, Default)]
pub(crate) struct ConnCtl(pub(crate) Arc<Notify>);

impl ConnCtl {
    /// Ask the connection task to drop the connection.
    pub(crate) fn kill(&self) {
        self.0.notify_one();
    }
}

impl Shared {
    /// The emulator's time, seconds since the Unix epoch: the machine's clock plus the offset
    /// a test set ([`super::Emulator::set_clock_offset`]), or where a test stopped it
    /// ([`super::Emulator::stop_clock_at`]). Every token the emulator issues is dated by it and
    /// every token it checks is judged by it, so a test moves the emulator's time instead of
    /// sleeping.
    pub(crate) fn now(&self) -> i64 {
        match self.clock_stopped_at.load(Ordering::SeqCst) {
            CLOCK_RUNS => {
                super::crypto::unix_now().saturating_add(self.clock_offset.load(Ordering::SeqCst))
            }
            stopped => stopped,
        }
    }

    /// Count a request and apply the first pending fault that matches it, if any. `Some` is the
    /// response to send instead of the normal one.
    pub(crate) async fn enter(
        &self,
        kind: EndpointKind,
        key: &str,
        conn: &ConnCtl,
    ) -> Option<Response> {
        lock(&self.counters).record(Some(kind), key);
        let action = {
            let mut faults = lock(&self.faults);
            let index = faults
                .iter()
                .position(|f| f.times > 0 && f.endpoint.matches(kind))?;
            let action = faults[index].action.clone();
            faults[index].times -= 1;
            if faults[index].times == 0 {
                faults.remove(index);
            }
            action
        };
        apply_fault(action, kind, conn).await
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }
}

async fn apply_fault(action: FaultAction, kind: EndpointKind, conn: &ConnCtl) -> Option<Response> {
    match action {
        FaultAction::Latency(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        FaultAction::Status {
            code,
            retry_after,
            body,
        } => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body = body.unwrap_or_else(|| default_fault_body(kind, status).to_string());
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            if let Some(secs) = retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Some(response)
        }
        FaultAction::MalformedBody => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                "{\"access_token\": \"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.",
            )
                .into_response(),
        ),
        FaultAction::TruncatedBody => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                Body::new(Truncated::new(
                    b"{\"access_token\":\"eyJ0eXAiOiJKV1Qi",
                    1024,
                )),
            )
                .into_response(),
        ),
        FaultAction::Redirect(location) => {
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Some(response)
        }
        FaultAction::OversizedBody(size) => {
            let mut body = String::with_capacity(size + 32);
            body.push_str("{\"refresh_token\":\"");
            body.extend(std::iter::repeat_n('a', size));
            body.push_str("\"}");
            Some(
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                    body,
                )
                    .into_response(),
            )
        }
        FaultAction::DropConnection => {
            conn.kill();
            // The connection task drops this request with the connection.
            std::future::pending::<()>().await;
            None
        }
    }
}

/// An error body shaped like the endpoint's own errors.
fn default_fault_body(kind: EndpointKind, status: StatusCode) -> Value {
    let reason = status.canonical_reason().unwrap_or("error");
    match kind {
        EndpointKind::Entra | EndpointKind::Any => json!({
            "error": "temporarily_unavailable",
            "error_description": format!("AADSTS90033: A transient error has occurred. Please try again. ({reason})"),
            "error_codes": [90033],
            "timestamp": super::entra::timestamp(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        }),
        EndpointKind::AppService => json!({"statusCode": status.as_u16(), "message": reason}),
        EndpointKind::Imds => json!({"error": "unknown_error", "error_description": reason}),
        EndpointKind::GitHubOidc | EndpointKind::PipelinesOidc => json!({"message": reason}),
        EndpointKind::Challenge | EndpointKind::Exchange | EndpointKind::AcrToken => json!({
            "errors": [{"code": "UNAVAILABLE", "message": reason, "detail": null}]
        }),
    }
}

/// A body that announces `announced` bytes, sends `first`, waits a moment (so hyper flushes what
/// it has), then fails, which makes hyper close the connection mid-body.
struct Truncated {
    first: Option<Bytes>,
    announced: u64,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl Truncated {
    fn new(first: &'static [u8], announced: u64) -> Self {
        Truncated {
            first: Some(Bytes::from_static(first)),
            announced,
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(100))),
        }
    }
}

impl http_body::Body for Truncated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if let Some(bytes) = self.first.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other(
                "body truncated by an injected fault",
            )))),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.announced)
    }
}
