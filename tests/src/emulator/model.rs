//! Public value types of the emulator: identities, roles, faults and counters.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// An identity known to the emulated Entra directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Directory (tenant) id the identity lives in.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Object (principal) id, a fresh uuid; Entra tokens carry it as `oid`.
    pub object_id: String,
}

/// A client certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// The self-signed certificate, `-----BEGIN CERTIFICATE-----`.
    pub cert_pem: String,
    /// The RSA 2048 private key, PKCS#8 `-----BEGIN PRIVATE KEY-----`.
    pub key_pem: String,
}

/// Which Entra token audiences a registry's `/oauth2/exchange` takes.
///
/// Real ACR takes both unless ARM-audience authentication is disabled
/// (`az acr config authentication-as-arm update --status disabled`, or the Azure Policy
/// "Container registries should have ARM audience token authentication disabled"); then only
/// ACR-audience tokens work, and an ARM-audience token is refused with 401
/// `arm aad token disallowed` (documented: Azure SDK for Go, azcontainerregistry's
/// TROUBLESHOOTING.md). `ArmOnly` stands for a registry or identity that takes only ARM-audience
/// tokens (Azure/azure-cli #33698, issue 14); how ACR refuses an ACR-audience token there is not
/// documented, so its refusal text (`acr aad token disallowed`) is **invented** by symmetry, and
/// no test should rest on it. The documented way to get no ACR-audience token is Entra's
/// AADSTS500011 ([`crate::emulator::Emulator::remove_tenant_resource`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegistryAudiences {
    /// ACR's and ARM's (the default).
    #[default]
    Both,
    /// ACR's only: ARM-audience authentication disabled.
    AcrOnly,
    /// ARM's only; its refusal of an ACR-audience token is invented (see the type's doc).
    ArmOnly,
}

/// A role assignment on a registry, as in Azure RBAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Pull images (`pull`).
    AcrPull,
    /// Pull and push images (`pull`, `push`).
    AcrPush,
    /// Everything, including delete and catalog listing.
    Owner,
}

impl Role {
    /// The `permissions.actions` an ACR refresh token carries for this role.
    pub(crate) fn refresh_actions(self) -> &'static [&'static str] {
        match self {
            Role::AcrPull => &["read"],
            Role::AcrPush => &["read", "write"],
            // Guess: the list real Owner refresh tokens show in decoded samples.
            Role::Owner => &[
                "read",
                "write",
                "delete",
                "deleted/read",
                "deleted/restore/action",
            ],
        }
    }

    /// Whether the role allows a repository action of a token request scope.
    pub(crate) fn allows(self, action: &str) -> bool {
        match action {
            "pull" => true,
            "push" => self >= Role::AcrPush,
            "delete" | "*" => self == Role::Owner,
            _ => false,
        }
    }
}

/// The kinds of endpoint the emulator serves; used by counters and faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Entra,
    /// `GET /msi/token` (App Service managed identity).
    AppService,
    /// `GET /metadata/identity/oauth2/token` (IMDS managed identity).
    Imds,
    /// `GET /v2/…` on a registry host (the Bearer challenge).
    Challenge,
    /// `POST /oauth2/exchange` on a registry host.
    Exchange,
    /// `GET|POST /oauth2/token` on a registry host.
    AcrToken,
    /// `GET /actions/{job}/idtoken` (GitHub Actions OIDC tokens), keyed by job id.
    #[serde(rename = "github_oidc")]
    GitHubOidc,
    /// `POST /pipelines/{job}/oidctoken` (Azure Pipelines OIDC tokens), keyed by job id.
    PipelinesOidc,
    /// In a [`Fault`], matches every kind; no request is ever counted under it.
    Any,
}

impl EndpointKind {
    /// Whether a fault aimed at `self` applies to a request of kind `request`.
    pub(crate) fn matches(self, request: EndpointKind) -> bool {
        self == EndpointKind::Any || self == request
    }

    /// Whether this kind issues Entra-style tokens (client credentials or managed identity).
    pub(crate) fn is_entra(self) -> bool {
        matches!(
            self,
            EndpointKind::Entra | EndpointKind::AppService | EndpointKind::Imds
        )
    }
}

/// One injected failure: the next `times` requests of kind `endpoint` suffer `action`.
///
/// JSON form (for `POST /_emulator/faults`):
/// `{"endpoint":"exchange","times":2,"action":{"status":{"code":503,"retry_after":1}}}`,
/// `{"endpoint":"any","action":"drop_connection"}`, `{"endpoint":"imds","action":{"latency":1500}}`
/// (latency in milliseconds). `times` defaults to 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Which requests the fault applies to.
    pub endpoint: EndpointKind,
    /// How many of the next matching requests it applies to.
    #[serde(default = "one")]
    pub times: usize,
    /// What happens to them.
    pub action: FaultAction,
}

fn one() -> usize {
    1
}

impl Fault {
    /// A fault that applies once to the next request of kind `endpoint`.
    pub fn once(endpoint: EndpointKind, action: FaultAction) -> Self {
        Fault {
            endpoint,
            times: 1,
            action,
        }
    }

    /// A fault that applies to the next `times` requests of kind `endpoint`.
    pub fn times(endpoint: EndpointKind, times: usize, action: FaultAction) -> Self {
        Fault {
            endpoint,
            times,
            action,
        }
    }
}

/// What a [`Fault`] does to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Wait this long, then answer normally.
    Latency(#[serde(with = "millis")] Duration),
    /// Answer with this status; `body` defaults to an error body shaped like the endpoint's own.
    Status {
        /// HTTP status code.
        code: u16,
        /// Value of a `Retry-After` header, in seconds.
        #[serde(default)]
        retry_after: Option<u32>,
        /// Response body (sent as `application/json`).
        #[serde(default)]
        body: Option<String>,
    },
    /// Answer 200 with a body that is not valid JSON.
    MalformedBody,
    /// Answer 200, announce a longer body than sent, then close the connection.
    TruncatedBody,
    /// Close the connection without answering.
    DropConnection,
    /// Answer `307 Temporary Redirect` to this URL (clients that carry tokens must not follow).
    Redirect(String),
    /// Answer 200 with a body of this many bytes of JSON-looking padding (size limits).
    OversizedBody(usize),
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A snapshot of request counts, taken by [`Emulator::counters`](super::Emulator::counters).
///
/// Every request that reaches an endpoint handler is counted, whether it succeeds, fails or is
/// faulted. Keys: `"{tenant}/{client_id}"` for Entra, the managed identity's client id (or
/// `"system"`) for App Service and IMDS, the registry host for the registry endpoints, the job
/// id ([`CiJob::id`](super::CiJob::id)) for the CI OIDC endpoints. Requests to `/_emulator/…` are not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every counted request, including unknown paths.
    pub total: usize,
    /// Requests per endpoint kind.
    pub by_kind: BTreeMap<EndpointKind, usize>,
    /// Requests per endpoint kind and key.
    pub by_key: BTreeMap<EndpointKind, BTreeMap<String, usize>>,
}

impl Counters {
    /// Every request of any kind.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Requests of one kind.
    pub fn kind(&self, kind: EndpointKind) -> usize {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// Requests of one kind with one key.
    pub fn kind_for(&self, kind: EndpointKind, key: &str) -> usize {
        self.by_key
            .get(&kind)
            .and_then(|m| m.get(&key.to_ascii_lowercase()))
            .copied()
            .unwrap_or(0)
    }

    /// All Entra-style token requests: client credentials, App Service and IMDS.
    pub fn entra(&self) -> usize {
        self.kind(EndpointKind::Entra) + self.app_service() + self.imds()
    }

    /// Entra-style token requests made for one client id (any tenant, managed identities too).
    pub fn entra_for(&self, client_id: &str) -> usize {
        let client_id = client_id.to_ascii_lowercase();
        self.by_key
            .iter()
            .filter(|(kind, _)| kind.is_entra())
            .flat_map(|(kind, keys)| keys.iter().map(move |(key, n)| (*kind, key, *n)))
            .filter(|(kind, key, _)| match kind {
                EndpointKind::Entra => key.rsplit('/').next() == Some(client_id.as_str()),
                _ => **key == client_id,
            })
            .map(|(_, _, n)| n)
            .sum()
    }

    /// App Service managed identity requests.
    pub fn app_service(&self) -> usize {
        self.kind(EndpointKind::AppService)
    }

    /// IMDS requests, on any listener.
    pub fn imds(&self) -> usize {
        self.kind(EndpointKind::Imds)
    }

    /// Registry `/v2/` requests (challenges and authenticated pings).
    pub fn challenge(&self) -> usize {
        self.kind(EndpointKind::Challenge)
    }

    /// Registry `/v2/` requests to one registry host.
    pub fn challenge_for(&self, registry: &str) -> usize {
        self.kind_for(EndpointKind::Challenge, &super::host::normalize(registry))
    }

    /// `/oauth2/exchange` requests.
    pub fn exchange(&self) -> usize {
        self.kind(EndpointKind::Exchange)
    }

    /// `/oauth2/exchange` requests to one registry host.
    pub fn exchange_for(&self, registry: &str) -> usize {
        self.kind_for(EndpointKind::Exchange, &super::host::normalize(registry))
    }

    /// GitHub Actions OIDC token requests.
    pub fn github_oidc(&self) -> usize {
        self.kind(EndpointKind::GitHubOidc)
    }

    /// Azure Pipelines OIDC token requests.
    pub fn pipelines_oidc(&self) -> usize {
        self.kind(EndpointKind::PipelinesOidc)
    }

    /// `/oauth2/token` requests.
    pub fn acr_token(&self) -> usize {
        self.kind(EndpointKind::AcrToken)
    }

    /// `/oauth2/token` requests to one registry host.
    pub fn acr_token_for(&self, registry: &str) -> usize {
        self.kind_for(EndpointKind::AcrToken, &super::host::normalize(registry))
    }

    /// Count one request.
    pub(crate) fn record(&mut self, kind: Option<EndpointKind>, key: &str) {
        self.total += 1;
        if let Some(kind) = kind {
            *self.by_kind.entry(kind).or_default() += 1;
            *self
                .by_key
                .entry(kind)
                .or_default()
                .entry(key.to_ascii_lowercase())
                .or_default() += 1;
        }
    }
}
