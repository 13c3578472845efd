//! The identity chain: which Entra identity the broker acts as, chosen from settings without I/O.
//!
//! Order, unless `ACR_IDENTITY` names one source: service principal with secret, service principal
//! with certificate, workload identity (token file), federated token (`AZURE_FEDERATED_TOKEN`),
//! GitHub Actions OIDC, Azure Pipelines OIDC, managed identity (App Service endpoint, else IMDS on
//! an Azure VM), Azure CLI. A source whose settings are absent is skipped with a reason; when
//! every source is skipped, [`Error::NoIdentity`] lists them all. The order is the table `CHAIN`,
//! one entry a source (its documentation says why this order). Getting a token is
//! [`token::entra_token`], which sends each identity to its source: `entra` (Entra through
//! `azure_identity`), `ci` (a CI system's OIDC endpoint for the assertion, then `entra`), `managed`
//! (IMDS and App Service, called directly) or `binding` (AKS identity bindings); `answer` reads
//! the token endpoints' answers.

pub(crate) mod answer;
mod binding;
mod ci;
mod entra;
mod managed;
pub(crate) mod token;

pub use binding::{IB_SCOPE_AUDIENCE, KUBERNETES_CA_FILE, probe_identity_binding};

use crate::config::{Settings, SourceChoice};
use crate::error::{Error, Skipped};
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Azure's chassis asset tag, present on every Azure VM (and so on AKS nodes): its presence
/// tells, without network I/O, that IMDS can be there.
const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085";

/// An Entra identity the broker can get tokens for. Secrets inside are [`Secret`]s.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Identity {
    /// Service principal with a client secret.
    ClientSecret {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// The client secret.
        secret: Secret,
    },
    /// Service principal with a certificate (PEM file holding the certificate and its RSA key).
    ClientCertificate {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// Path of the PEM file.
        path: PathBuf,
    },
    /// Workload identity: a federated token read from a file (Kubernetes projected token).
    Workload {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// The token file.
        token_file: PathBuf,
    },
    /// A federated client assertion given directly (a pod's service-account token).
    Federated {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// The assertion (a JWT).
        assertion: Secret,
    },
    /// A federated token given directly in `AZURE_FEDERATED_TOKEN` (GitLab's `id_tokens`).
    FederatedToken {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// The token (a JWT).
        assertion: Secret,
    },
    /// GitHub Actions: the job's OIDC token, fetched fresh for each Entra request, is the client
    /// assertion.
    GitHubActions {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`: the job's token endpoint, different for every job
        /// run (not secret; part of the cache key).
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, the bearer token the endpoint requires.
        request_token: Secret,
    },
    /// Azure Pipelines: the service connection's OIDC token, fetched fresh for each Entra
    /// request from the job's endpoint, is the client assertion.
    AzurePipelines {
        /// Tenant id.
        tenant: String,
        /// Application (client) id.
        client_id: String,
        /// The service connection's id.
        service_connection: String,
        /// `SYSTEM_OIDCREQUESTURI`: the job's token endpoint (not secret).
        request_uri: String,
        /// `SYSTEM_ACCESSTOKEN`, the job's token the endpoint requires.
        access_token: Secret,
        /// `SYSTEM_PLANID|SYSTEM_JOBID` (empty when unset): with the URI, what tells two jobs
        /// apart in the cache key.
        job: String,
    },
    /// A pod's service-account token exchanged for an Entra token at the cluster's local token
    /// authority (AKS identity bindings), reached at `https://<sni_name>` on the API server's
    /// address, port 443, trusting only the cluster CA.
    IdentityBinding {
        /// The authority's TLS server name (`--ib-sni-name`).
        sni_name: String,
        /// The API server's address, an IP or a name resolved when a token is fetched
        /// (`--ib-apiserver-ip`).
        apiserver: String,
        /// The cluster CA bundle: the only roots trusted for the authority.
        ca_file: PathBuf,
        /// Tenant, when known (annotation, `--ib-default-tenant-id`, azure.json).
        tenant: Option<String>,
        /// Application (client) id the pod pulls as.
        client_id: String,
        /// The pod's service-account token.
        assertion: Secret,
    },
    /// Managed identity through the App Service style endpoint (`IDENTITY_ENDPOINT`).
    AppService {
        /// The endpoint URL (not secret; part of the cache key).
        endpoint: String,
        /// `IDENTITY_HEADER`, the secret the endpoint requires.
        header: Secret,
        /// Client id of a user-assigned identity (or its ARM resource id), or `None` for the
        /// system-assigned one.
        client_id: Option<String>,
    },
    /// The managed identity of an Azure Arc-enabled server, from the Arc agent's local endpoint
    /// (HIMDS): a challenge names a key file in the agent's token folder, whose content proves
    /// the caller may read it. System-assigned only: Arc has no user-assigned identities.
    Arc {
        /// `IDENTITY_ENDPOINT` (default `http://localhost:40342/metadata/identity/oauth2/token`;
        /// not secret; part of the cache key).
        endpoint: String,
        /// `AZURE_CLIENT_ID`, when set: refused when a token is fetched, since Arc cannot pick a
        /// user-assigned identity (kept so that the refusal says so rather than silently using
        /// the machine's).
        client_id: Option<String>,
    },
    /// Managed identity through the instance metadata service.
    Imds {
        /// Client id of a user-assigned identity, or its ARM resource id (a value containing
        /// `/subscriptions/`, sent as `msi_res_id`), or `None` for the system-assigned one.
        client_id: Option<String>,
    },
    /// The Azure CLI's logged-in account.
    AzureCli {
        /// Tenant to ask for, if set.
        tenant: Option<String>,
        /// The CLI's `azureProfile.json` (in `$AZURE_CONFIG_DIR`, else `~/.azure`): who is
        /// logged in, read for the cache key only.
        profile: Option<PathBuf>,
    },
}

impl Identity {
    /// Chooses the identity from settings. Reads no network; at most checks whether `az` is on
    /// `PATH` and reads the machine's chassis asset tag.
    pub fn from_settings(settings: &Settings) -> Result<Identity, Error> {
        Identity::select(settings).0
    }

    /// Like [`Identity::from_settings`], and also every source looked at before the chosen one
    /// with the reason it was skipped (for `doctor`).
    pub fn select(settings: &Settings) -> (Result<Identity, Error>, Vec<Skipped>) {
        let mut tried = Vec::new();
        let chosen = Identity::select_into(settings, &mut tried);
        (chosen, tried)
    }

    fn select_into(settings: &Settings, tried: &mut Vec<Skipped>) -> Result<Identity, Error> {
        let forced = settings.forced_source;
        for source in CHAIN {
            if forced.is_some_and(|f| !source.choices.contains(&f)) {
                continue;
            }
            match (source.pick)(settings, forced) {
                Ok(identity) => return Ok(identity),
                Err(reason) => tried.push(skip(source.name, reason)),
            }
        }
        match forced {
            // Only the forced source was looked at: say what it lacked.
            Some(_) => Err(Error::InvalidConfig(format!(
                "ACR_IDENTITY names a source that is not configured: {}",
                tried
                    .iter()
                    .map(|s| format!("{}: {}", s.source, s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
            None => Err(Error::NoIdentity {
                tried: tried.clone(),
            }),
        }
    }

    /// Whether tokens come from an endpoint on this machine (IMDS, or an App Service endpoint on
    /// a loopback or link-local address): requests to it never go through a proxy.
    pub fn endpoint_is_local(&self) -> bool {
        match self {
            Identity::Imds { .. } => true,
            Identity::AppService { endpoint, .. } | Identity::Arc { endpoint, .. } => {
                crate::http::is_local(endpoint)
            }
            _ => false,
        }
    }

    /// The source's name for messages, e.g. `service principal (secret)`.
    pub fn source_name(&self) -> &'static str {
        match self {
            Identity::ClientSecret { .. } => SOURCE_SECRET,
            Identity::ClientCertificate { .. } => SOURCE_CERT,
            Identity::Workload { .. } => SOURCE_WORKLOAD,
            Identity::Federated { .. } => "federated service-account token",
            Identity::FederatedToken { .. } => SOURCE_FEDERATED_TOKEN,
            Identity::GitHubActions { .. } => SOURCE_GITHUB,
            Identity::AzurePipelines { .. } => SOURCE_PIPELINES,
            Identity::IdentityBinding { .. } => "identity bindings",
            Identity::AppService { .. } => SOURCE_APP_SERVICE,
            Identity::Imds { .. } => SOURCE_IMDS,
            Identity::Arc { .. } => SOURCE_ARC,
            Identity::AzureCli { .. } => SOURCE_CLI,
        }
    }

    /// A description for messages: the source and its client id; never a secret.
    pub fn describe(&self) -> String {
        match self.client_id() {
            Some(c) => format!("{} {c}", self.source_name()),
            None => self.source_name().to_string(),
        }
    }

    /// The client id, when the identity has one.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Identity::ClientSecret { client_id, .. }
            | Identity::ClientCertificate { client_id, .. }
            | Identity::Workload { client_id, .. }
            | Identity::Federated { client_id, .. }
            | Identity::FederatedToken { client_id, .. }
            | Identity::GitHubActions { client_id, .. }
            | Identity::AzurePipelines { client_id, .. }
            | Identity::IdentityBinding { client_id, .. } => Some(client_id),
            Identity::AppService { client_id, .. }
            | Identity::Imds { client_id }
            | Identity::Arc { client_id, .. } => client_id.as_deref(),
            Identity::AzureCli { .. } => None,
        }
    }

    /// The tenant, when configuration names it.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Identity::ClientSecret { tenant, .. }
            | Identity::ClientCertificate { tenant, .. }
            | Identity::Workload { tenant, .. }
            | Identity::Federated { tenant, .. }
            | Identity::FederatedToken { tenant, .. }
            | Identity::GitHubActions { tenant, .. }
            | Identity::AzurePipelines { tenant, .. } => Some(tenant),
            Identity::AzureCli { tenant, .. } | Identity::IdentityBinding { tenant, .. } => {
                tenant.as_deref()
            }
            Identity::AppService { .. } | Identity::Imds { .. } | Identity::Arc { .. } => None,
        }
    }

    /// A stable, non-secret fingerprint: source kind, tenant, client id and authority (and, for
    /// federated identities, the assertion's issuer and subject; for the CI sources, the job's
    /// token endpoint; for the Azure CLI, the logged-in account). Cache keys are hashes of it, so
    /// two identities never share an entry and no secret is in a key. Reads no network: it is
    /// computed on the cache-hit path.
    pub fn fingerprint(&self, authority: &str) -> String {
        let kind = match self {
            Identity::ClientSecret { .. } => "secret",
            Identity::ClientCertificate { .. } => "certificate",
            // A workload token and a pod's service-account token for the same app registration
            // get the same Entra identity, so they may share cached tokens.
            Identity::Workload { .. }
            | Identity::Federated { .. }
            | Identity::FederatedToken { .. } => "federated",
            Identity::GitHubActions { .. } => "github-actions",
            Identity::AzurePipelines { .. } => "azure-pipelines",
            Identity::IdentityBinding { .. } => "identity-binding",
            Identity::AppService { .. } => "app-service",
            Identity::Imds { .. } => "imds",
            Identity::Arc { .. } => "arc",
            Identity::AzureCli { .. } => "cli",
        };
        // Federated identities: Entra checks the assertion's issuer and subject against the app's
        // federated credentials, but a cache hit skips Entra. Keying on them too means one
        // service account can never be served a token fetched with another one's assertion.
        let extra = match self {
            Identity::AppService { endpoint, .. } | Identity::Arc { endpoint, .. } => {
                endpoint.clone()
            }
            Identity::ClientCertificate { path, .. } => path.to_string_lossy().into_owned(),
            Identity::Federated { assertion, .. } | Identity::FederatedToken { assertion, .. } => {
                assertion_subject(assertion.expose())
            }
            // The assertion's issuer and subject are only known once fetched, which a cache hit
            // must not do. The endpoint is the job's own (its URL holds the plan and job ids), so
            // no two jobs, whatever their subjects, ever share an entry.
            Identity::GitHubActions { request_url, .. } => request_url.clone(),
            Identity::AzurePipelines {
                service_connection,
                request_uri,
                job,
                ..
            } => format!("{service_connection}|{request_uri}|{job}"),
            // The authority decides from the token's issuer and subject, and it is reached by
            // name and address: all of them tell two identities apart.
            Identity::IdentityBinding {
                sni_name,
                apiserver,
                assertion,
                ..
            } => format!(
                "{sni_name}|{apiserver}|{}",
                assertion_subject(assertion.expose())
            ),
            Identity::Workload { token_file, .. } => workload_subject(token_file),
            // After `az login` as someone else, the previous account's tokens must not be served.
            Identity::AzureCli {
                profile: Some(p), ..
            } => cli_account(p),
            _ => String::new(),
        };
        format!(
            "v1|{kind}|{}|{}|{}|{extra}",
            self.tenant().unwrap_or_default(),
            self.client_id().unwrap_or_default(),
            authority.trim_end_matches('/').to_ascii_lowercase()
        )
    }
}

/// What asking a source for an Entra token needs: who asks, for which scope, at which
/// authority, through which client, and within how long.
#[derive(Clone, Copy)]
pub(crate) struct TokenRequest<'a> {
    pub identity: &'a Identity,
    /// The identity's files are named by a config file rule (see `Settings::files_from_config`).
    pub files_from_config: bool,
    pub scope: &'a str,
    pub authority: &'a str,
    pub http: &'a reqwest::Client,
    pub deadline: Duration,
}

const SOURCE_SECRET: &str = "service principal (secret)";
const SOURCE_CERT: &str = "service principal (certificate)";
const SOURCE_WORKLOAD: &str = "workload identity";
const SOURCE_FEDERATED_TOKEN: &str = "federated token (AZURE_FEDERATED_TOKEN)";
const SOURCE_GITHUB: &str = "GitHub Actions OIDC";
const SOURCE_PIPELINES: &str = "Azure Pipelines OIDC";
const SOURCE_APP_SERVICE: &str = "managed identity (App Service endpoint)";
const SOURCE_IMDS: &str = "managed identity (IMDS)";
const SOURCE_ARC: &str = "managed identity (Azure Arc)";
const SOURCE_CLI: &str = "Azure CLI";

/// One source of the identity chain: its name, the `ACR_IDENTITY` values that select it, and how
/// it reads the settings: the identity, or why it does not apply (one line, for `doctor` and the
/// error that lists every source). Adding a source is one entry in [`CHAIN`].
struct Source {
    name: &'static str,
    choices: &'static [SourceChoice],
    pick: fn(&Settings, Option<SourceChoice>) -> Result<Identity, String>,
}

/// The chain, in order; the first source that applies wins (or the one `ACR_IDENTITY` forces).
///
/// Settings a person wrote come first: a secret, a certificate, a token file or a token in
/// `AZURE_FEDERATED_TOKEN` are there only because someone chose them. The CI sources come next:
/// their variables are the CI system's (GitHub sets `ACTIONS_ID_TOKEN_REQUEST_URL` in every job
/// with `permissions: id-token: write`; Azure Pipelines `SYSTEM_OIDCREQUESTURI` in every job), and
/// they apply only with the app's tenant and client id (and, for Pipelines, a service connection
/// and `SYSTEM_ACCESSTOKEN`) also set, which says the job means to sign in with them. They come
/// before managed identity, which IMDS applies to on any Azure VM without a setting: a
/// self-hosted runner on an Azure VM that asks for a job token uses the job's identity, not the
/// machine's (`ACR_IDENTITY=imds` chooses the machine's). The Azure CLI, a person's login, is
/// last.
const CHAIN: &[Source] = &[
    Source {
        name: SOURCE_SECRET,
        choices: &[SourceChoice::Secret],
        pick: client_secret,
    },
    Source {
        name: SOURCE_CERT,
        choices: &[SourceChoice::Certificate],
        pick: client_certificate,
    },
    Source {
        name: SOURCE_WORKLOAD,
        choices: &[SourceChoice::Workload],
        pick: workload,
    },
    Source {
        name: SOURCE_FEDERATED_TOKEN,
        choices: &[SourceChoice::FederatedToken],
        pick: federated_token,
    },
    Source {
        name: SOURCE_GITHUB,
        choices: &[SourceChoice::GitHub],
        pick: github_actions,
    },
    Source {
        name: SOURCE_PIPELINES,
        choices: &[SourceChoice::AzurePipelines],
        pick: azure_pipelines,
    },
    Source {
        name: SOURCE_APP_SERVICE,
        choices: &[SourceChoice::Managed, SourceChoice::AppService],
        pick: app_service,
    },
    Source {
        name: SOURCE_ARC,
        choices: &[SourceChoice::Managed, SourceChoice::Arc],
        pick: arc,
    },
    Source {
        name: SOURCE_IMDS,
        choices: &[SourceChoice::Managed, SourceChoice::Imds],
        pick: imds,
    },
    Source {
        name: SOURCE_CLI,
        choices: &[SourceChoice::Cli],
        pick: azure_cli,
    },
];

/// `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`, which the service-principal and workload sources
/// need besides `needs`; the reason names what is missing.
fn tenant_and_client(settings: &Settings, needs: &str) -> Result<(String, String), String> {
    let tenant = settings.env.get("AZURE_TENANT_ID");
    let client = settings.env.get("AZURE_CLIENT_ID");
    match (tenant, client) {
        (Some(t), Some(c)) => Ok((t.to_string(), c.to_string())),
        _ => {
            let missing: Vec<&str> = [
                (tenant.is_none(), "AZURE_TENANT_ID"),
                (client.is_none(), "AZURE_CLIENT_ID"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect();
            let verb = if missing.len() > 1 { "are" } else { "is" };
            Err(format!(
                "{needs} is set but {} {verb} not",
                missing.join(" and ")
            ))
        }
    }
}

fn client_secret(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    let secret = settings
        .secret("AZURE_CLIENT_SECRET")
        .ok_or("AZURE_CLIENT_SECRET is not set")?;
    let (tenant, client_id) = tenant_and_client(settings, "AZURE_CLIENT_SECRET")?;
    Ok(Identity::ClientSecret {
        tenant,
        client_id,
        secret,
    })
}

fn client_certificate(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    app_with_file(
        settings,
        "AZURE_CLIENT_CERTIFICATE_PATH",
        |tenant, client_id, path| Identity::ClientCertificate {
            tenant,
            client_id,
            path,
        },
    )
}

fn workload(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    app_with_file(
        settings,
        "AZURE_FEDERATED_TOKEN_FILE",
        |tenant, client_id, token_file| Identity::Workload {
            tenant,
            client_id,
            token_file,
        },
    )
}

/// The identity `make` builds from the tenant, the client id and the file the variable `file`
/// names: what the certificate and workload sources read.
fn app_with_file(
    settings: &Settings,
    file: &str,
    make: fn(String, String, PathBuf) -> Identity,
) -> Result<Identity, String> {
    let path = settings
        .env
        .get(file)
        .ok_or_else(|| format!("{file} is not set"))?;
    let (tenant, client_id) = tenant_and_client(settings, file)?;
    Ok(make(tenant, client_id, PathBuf::from(path)))
}

fn federated_token(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    let assertion = settings
        .secret("AZURE_FEDERATED_TOKEN")
        .ok_or("AZURE_FEDERATED_TOKEN is not set")?;
    let (tenant, client_id) = tenant_and_client(settings, "AZURE_FEDERATED_TOKEN")?;
    Ok(Identity::FederatedToken {
        tenant,
        client_id,
        assertion,
    })
}

fn github_actions(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    const URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
    let request_url = settings
        .env
        .get(URL)
        .ok_or("ACTIONS_ID_TOKEN_REQUEST_URL is not set (a GitHub Actions job sets it with `permissions: id-token: write`)")?;
    let request_token = settings
        .secret("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .ok_or("ACTIONS_ID_TOKEN_REQUEST_URL is set but ACTIONS_ID_TOKEN_REQUEST_TOKEN is not")?;
    let (tenant, client_id) = tenant_and_client(settings, URL)?;
    Ok(Identity::GitHubActions {
        tenant,
        client_id,
        request_url: request_url.to_string(),
        request_token,
    })
}

/// Azure Pipelines, with the names the AzureCLI@2 task (and `azure_identity`'s users) give the
/// service connection's tenant, client and id; `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` also do.
fn azure_pipelines(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    let env = &settings.env;
    let request_uri = env
        .get("SYSTEM_OIDCREQUESTURI")
        .ok_or("SYSTEM_OIDCREQUESTURI is not set (not an Azure Pipelines job)")?;
    let tenant = env
        .get("AZURESUBSCRIPTION_TENANT_ID")
        .or_else(|| env.get("AZURE_TENANT_ID"));
    let client = env
        .get("AZURESUBSCRIPTION_CLIENT_ID")
        .or_else(|| env.get("AZURE_CLIENT_ID"));
    let connection = env.get("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID");
    let access_token = settings.secret("SYSTEM_ACCESSTOKEN");
    let missing: Vec<&str> = [
        (
            connection.is_none(),
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
        ),
        (access_token.is_none(), "SYSTEM_ACCESSTOKEN"),
        (
            tenant.is_none(),
            "AZURESUBSCRIPTION_TENANT_ID (or AZURE_TENANT_ID)",
        ),
        (
            client.is_none(),
            "AZURESUBSCRIPTION_CLIENT_ID (or AZURE_CLIENT_ID)",
        ),
    ]
    .into_iter()
    .filter_map(|(absent, name)| absent.then_some(name))
    .collect();
    match (tenant, client, connection, access_token) {
        (Some(tenant), Some(client), Some(connection), Some(access_token)) => {
            let job = [env.get("SYSTEM_PLANID"), env.get("SYSTEM_JOBID")]
                .map(Option::unwrap_or_default)
                .join("|");
            Ok(Identity::AzurePipelines {
                tenant: tenant.to_string(),
                client_id: client.to_string(),
                service_connection: connection.to_string(),
                request_uri: request_uri.to_string(),
                access_token,
                job,
            })
        }
        _ => Err(format!(
            "SYSTEM_OIDCREQUESTURI is set but {} {} not (run in an AzureCLI@2 task, or map them into the step's env)",
            missing.join(", "),
            if missing.len() > 1 { "are" } else { "is" }
        )),
    }
}

fn app_service(settings: &Settings, _: Option<SourceChoice>) -> Result<Identity, String> {
    match (
        settings.env.get("IDENTITY_ENDPOINT"),
        settings.secret("IDENTITY_HEADER"),
    ) {
        (Some(endpoint), Some(header)) => Ok(Identity::AppService {
            endpoint: endpoint.to_string(),
            header,
            client_id: settings.env.get("AZURE_CLIENT_ID").map(str::to_string),
        }),
        _ => Err("IDENTITY_ENDPOINT and IDENTITY_HEADER are not both set".into()),
    }
}

/// The Arc agent's endpoint on this machine, when its variables are not in the environment (a
/// service started without them): what the Azure SDKs use.
pub(crate) const ARC_DEFAULT_ENDPOINT: &str =
    "http://localhost:40342/metadata/identity/oauth2/token";

/// Azure Arc: the agent sets `IDENTITY_ENDPOINT` and `IMDS_ENDPOINT` (and no `IDENTITY_HEADER`,
/// which is App Service's), or `ACR_IDENTITY=arc` forces it with the agent's default endpoint.
fn arc(settings: &Settings, forced: Option<SourceChoice>) -> Result<Identity, String> {
    let env = &settings.env;
    let client_id = env.get("AZURE_CLIENT_ID").map(str::to_string);
    match (env.get("IDENTITY_ENDPOINT"), env.get("IMDS_ENDPOINT")) {
        (Some(endpoint), Some(_)) => Ok(Identity::Arc {
            endpoint: endpoint.to_string(),
            client_id,
        }),
        (endpoint, _) if forced == Some(SourceChoice::Arc) => Ok(Identity::Arc {
            endpoint: endpoint.unwrap_or(ARC_DEFAULT_ENDPOINT).to_string(),
            client_id,
        }),
        _ => Err(
            "IDENTITY_ENDPOINT and IMDS_ENDPOINT are not both set (the Azure Arc agent sets them; ACR_IDENTITY=arc uses its default endpoint)"
                .into(),
        ),
    }
}

/// IMDS has no settings: chosen on an Azure VM (its asset tag, a file read), or when forced.
fn imds(settings: &Settings, forced: Option<SourceChoice>) -> Result<Identity, String> {
    let forced_here = matches!(forced, Some(SourceChoice::Managed | SourceChoice::Imds));
    if forced_here || settings.asset_tag_file.as_deref().is_some_and(on_azure_vm) {
        Ok(Identity::Imds {
            client_id: settings.env.get("AZURE_CLIENT_ID").map(str::to_string),
        })
    } else {
        Err("not an Azure VM (set ACR_IDENTITY=imds to use IMDS anyway)".into())
    }
}

fn azure_cli(settings: &Settings, forced: Option<SourceChoice>) -> Result<Identity, String> {
    let env = &settings.env;
    if forced != Some(SourceChoice::Cli) && !on_path("az", env.get("PATH")) {
        return Err("`az` is not on PATH".into());
    }
    let profile = env
        .get("AZURE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            env.get(crate::platform::HOME)
                .map(|h| Path::new(h).join(".azure"))
        })
        .map(|d| d.join("azureProfile.json"));
    Ok(Identity::AzureCli {
        tenant: env.get("AZURE_TENANT_ID").map(str::to_string),
        profile,
    })
}

/// `user|type|tenant` of the Azure CLI's default account in `azureProfile.json`, or empty when
/// the file is missing or unreadable (then `az` itself reports that nobody is logged in).
fn cli_account(profile: &Path) -> String {
    #[derive(serde::Deserialize)]
    struct Profile {
        #[serde(default)]
        subscriptions: Vec<Subscription>,
    }
    #[derive(serde::Deserialize)]
    struct Subscription {
        #[serde(rename = "isDefault", default)]
        is_default: bool,
        #[serde(rename = "tenantId", default)]
        tenant_id: String,
        #[serde(default)]
        user: User,
    }
    #[derive(serde::Deserialize, Default)]
    struct User {
        #[serde(default)]
        name: String,
        #[serde(rename = "type", default)]
        kind: String,
    }
    // Bounded and non-blocking: a FIFO or a device there is no profile.
    let Ok(Some(bytes)) = crate::files::read_following(profile, 4 * 1024 * 1024) else {
        return String::new();
    };
    // The CLI writes the file with a UTF-8 byte-order mark.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    serde_json::from_slice::<Profile>(bytes)
        .ok()
        .and_then(|p| p.subscriptions.into_iter().find(|s| s.is_default))
        .map(|s| format!("{}|{}|{}", s.user.name, s.user.kind, s.tenant_id))
        .unwrap_or_default()
}

/// Largest federated token file read (for a cache key, and as the assertion).
pub(crate) const MAX_TOKEN_FILE: usize = 64 * 1024;

/// `iss|sub` of the workload identity's token file, for its cache key.
///
/// The file is read following symlinks: it is not in a folder of ours, and Kubernetes projects
/// it as `token -> ..data/token`, `..data -> ..<timestamp>`, swapping `..data` on rotation. When
/// it cannot be read, the value is unique to this call, so the key matches no entry (and Entra,
/// reading the same file, says what is wrong with it): a subject that cannot be known never
/// shares an entry with another one.
fn workload_subject(token_file: &Path) -> String {
    match crate::files::read_following(token_file, MAX_TOKEN_FILE) {
        Ok(Some(bytes)) => assertion_subject(&String::from_utf8_lossy(&bytes)),
        Ok(None) | Err(_) => format!("unreadable|{}", uuid::Uuid::new_v4().simple()),
    }
}

/// `iss|sub` of a federated assertion (a JWT), or empty when it has none.
fn assertion_subject(jwt: &str) -> String {
    crate::token::read_claims(jwt)
        .map(|c| {
            format!(
                "{}|{}",
                c.iss.unwrap_or_default(),
                c.sub.unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

fn skip(source: &'static str, reason: String) -> Skipped {
    Skipped { source, reason }
}

/// Whether the DMI chassis asset tag at `tag_path` is Azure's. Read bounded and non-blocking
/// (`ACR_DMI_ASSET_TAG_FILE` may name anything): a FIFO or a device there is no tag.
fn on_azure_vm(tag_path: &Path) -> bool {
    matches!(
        crate::files::read_following(tag_path, 4096),
        Ok(Some(tag)) if tag.trim_ascii() == AZURE_ASSET_TAG.as_bytes()
    )
}

/// Whether a folder of `path` (a `PATH` value) holds `program` as the platform runs it (on
/// Windows, `az` is `az.cmd`).
fn on_path(program: &str, path: Option<&str>) -> bool {
    path.unwrap_or_default()
        .split(crate::platform::PATH_SEPARATOR)
        .filter(|d| !d.is_empty())
        .any(|d| crate::platform::program_in(Path::new(d), program))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn pick(pairs: &[(&str, &str)]) -> Result<Identity, Error> {
        // Not the machine's own facts: no `az`, no asset tag (pairs may override both).
        let mut env: Vec<(&str, &str)> = vec![
            ("PATH", "/nonexistent"),
            ("ACR_DMI_ASSET_TAG_FILE", "/nonexistent/asset_tag"),
        ];
        env.extend_from_slice(pairs);
        let s = Settings::from_env(Env::from_pairs(env), None)?;
        Identity::from_settings(&s)
    }

    #[test]
    fn imds_is_chosen_on_an_azure_vm_and_only_there() {
        let dir = tempfile::tempdir().unwrap();
        let azure = dir.path().join("azure_tag");
        std::fs::write(&azure, "7783-7084-3265-9085\n").unwrap();
        let other = dir.path().join("other_tag");
        std::fs::write(&other, "No Asset Tag\n").unwrap();
        let azure = azure.to_str().unwrap();
        assert!(matches!(
            pick(&[("ACR_DMI_ASSET_TAG_FILE", azure)]),
            Ok(Identity::Imds { client_id: None })
        ));
        assert!(matches!(
            pick(&[("ACR_DMI_ASSET_TAG_FILE", azure), ("AZURE_CLIENT_ID", "uai")]),
            Ok(Identity::Imds { client_id: Some(ref c) }) if c == "uai"
        ));
        // Earlier sources still win on an Azure VM.
        assert!(matches!(
            pick(&[
                ("ACR_DMI_ASSET_TAG_FILE", azure),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s"),
            ]),
            Ok(Identity::ClientSecret { .. })
        ));
        for tag in [other.to_str().unwrap(), "/nonexistent/asset_tag"] {
            let e = pick(&[("ACR_DMI_ASSET_TAG_FILE", tag)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("not an Azure VM"), "{e}");
        }
    }

    #[test]
    fn order_is_secret_certificate_workload_managed() {
        let all = [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/cert.pem"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/token"),
            ("IDENTITY_ENDPOINT", "https://x/msi"),
            ("IDENTITY_HEADER", "h"),
        ];
        assert!(matches!(pick(&all).unwrap(), Identity::ClientSecret { .. }));
        assert!(matches!(
            pick(
                &all[..2]
                    .iter()
                    .chain(&all[3..])
                    .copied()
                    .collect::<Vec<_>>()
            )
            .unwrap(),
            Identity::ClientCertificate { .. }
        ));
        assert!(matches!(
            pick(
                &all[..2]
                    .iter()
                    .chain(&all[4..])
                    .copied()
                    .collect::<Vec<_>>()
            )
            .unwrap(),
            Identity::Workload { .. }
        ));
        match pick(
            &all[1..2]
                .iter()
                .chain(&all[5..])
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap()
        {
            Identity::AppService { client_id, .. } => assert_eq!(client_id.as_deref(), Some("c")),
            other => panic!("{other:?}"),
        }
    }

    /// What a GitHub Actions job with `id-token: write` has.
    const GITHUB: [(&str, &str); 2] = [
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "https://pipelines.actions.example/x/idtoken?api-version=2.0",
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-9"),
    ];
    /// What an Azure Pipelines step in an AzureCLI@2 task with `SYSTEM_ACCESSTOKEN` mapped has.
    const PIPELINES: [(&str, &str); 6] = [
        (
            "SYSTEM_OIDCREQUESTURI",
            "https://dev.azure.example/o/p/oidctoken",
        ),
        ("SYSTEM_ACCESSTOKEN", "at"),
        ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc"),
        ("AZURESUBSCRIPTION_TENANT_ID", "pt"),
        ("AZURESUBSCRIPTION_CLIENT_ID", "pc"),
        ("SYSTEM_JOBID", "j1"),
    ];

    #[test]
    fn arc_is_chosen_by_the_agents_variables_before_imds_and_after_app_service() {
        let dir = tempfile::tempdir().unwrap();
        let tag = dir.path().join("tag");
        std::fs::write(&tag, AZURE_ASSET_TAG).unwrap();
        let arc = [
            ("ACR_DMI_ASSET_TAG_FILE", tag.to_str().unwrap()),
            (
                "IDENTITY_ENDPOINT",
                "http://localhost:40342/metadata/identity/oauth2/token",
            ),
            ("IMDS_ENDPOINT", "http://localhost:40342"),
        ];
        match pick(&arc).unwrap() {
            Identity::Arc {
                endpoint,
                client_id,
            } => {
                assert_eq!(endpoint, arc[1].1);
                assert_eq!(client_id, None);
            }
            other => panic!("{other:?}"),
        }
        // App Service's endpoint comes with its header: App Service, not Arc.
        let app = [arc[1], arc[2], ("IDENTITY_HEADER", "h")];
        assert!(matches!(pick(&app).unwrap(), Identity::AppService { .. }));
        // Only one of the two: not Arc (the VM's IMDS).
        assert!(matches!(pick(&arc[..2]).unwrap(), Identity::Imds { .. }));
        // Forced, with no variable: the agent's default endpoint.
        match pick(&[("ACR_IDENTITY", "arc")]).unwrap() {
            Identity::Arc { endpoint, .. } => assert_eq!(endpoint, ARC_DEFAULT_ENDPOINT),
            other => panic!("{other:?}"),
        }
        let id = pick(&arc).unwrap();
        assert!(id.endpoint_is_local());
        assert_ne!(
            id.fingerprint("a"),
            Identity::Imds { client_id: None }.fingerprint("a")
        );
    }

    #[test]
    fn chain_order_puts_ci_sources_after_explicit_settings_and_before_managed_identity() {
        assert_eq!(
            CHAIN.iter().map(|s| s.name).collect::<Vec<_>>(),
            [
                SOURCE_SECRET,
                SOURCE_CERT,
                SOURCE_WORKLOAD,
                SOURCE_FEDERATED_TOKEN,
                SOURCE_GITHUB,
                SOURCE_PIPELINES,
                SOURCE_APP_SERVICE,
                SOURCE_ARC,
                SOURCE_IMDS,
                SOURCE_CLI,
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let tag = dir.path().join("tag");
        std::fs::write(&tag, AZURE_ASSET_TAG).unwrap();
        let vm = [
            ("ACR_DMI_ASSET_TAG_FILE", tag.to_str().unwrap()),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("IDENTITY_ENDPOINT", "https://x/msi"),
            ("IDENTITY_HEADER", "h"),
        ];
        let with = |extra: &[(&str, &str)]| {
            pick(&vm.iter().chain(extra).copied().collect::<Vec<_>>()).unwrap()
        };
        // A self-hosted runner on an Azure VM (App Service variables too): the job's identity.
        match with(&GITHUB) {
            Identity::GitHubActions {
                tenant,
                client_id,
                request_url,
                ..
            } => assert_eq!(
                (&*tenant, &*client_id, &*request_url),
                ("t", "c", GITHUB[0].1)
            ),
            other => panic!("{other:?}"),
        }
        match with(&PIPELINES) {
            Identity::AzurePipelines {
                tenant,
                client_id,
                service_connection,
                job,
                ..
            } => assert_eq!(
                (&*tenant, &*client_id, &*service_connection, &*job),
                ("pt", "pc", "sc", "|j1")
            ),
            other => panic!("{other:?}"),
        }
        // A token a person put in the environment wins over the job's endpoint.
        let token = [("AZURE_FEDERATED_TOKEN", "a.b.c")];
        let both: Vec<_> = GITHUB.iter().chain(&token).copied().collect();
        assert!(matches!(with(&both), Identity::FederatedToken { .. }));
        // ... and a secret over everything.
        let secret: Vec<_> = both
            .iter()
            .chain(&[("AZURE_CLIENT_SECRET", "s")])
            .copied()
            .collect();
        assert!(matches!(with(&secret), Identity::ClientSecret { .. }));
        // The machine's identity when forced.
        let forced: Vec<_> = GITHUB
            .iter()
            .chain(&[("ACR_IDENTITY", "imds")])
            .copied()
            .collect();
        assert!(matches!(with(&forced), Identity::Imds { .. }));
        // A job token without the app's ids is not meant for this: IMDS on the VM.
        let bare = [("ACR_DMI_ASSET_TAG_FILE", tag.to_str().unwrap())];
        let e: Vec<_> = bare.iter().chain(&GITHUB).copied().collect();
        assert!(matches!(pick(&e).unwrap(), Identity::Imds { .. }));
    }

    #[test]
    fn ci_sources_say_what_they_lack_and_can_be_forced() {
        let e = pick(&GITHUB).unwrap_err().to_string();
        assert!(
            e.contains(
                "GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not"
            ),
            "{e}"
        );
        assert!(
            !e.contains("request-token-9"),
            "never the request token: {e}"
        );
        let e = pick(&PIPELINES[..1]).unwrap_err().to_string();
        assert!(
            e.contains("Azure Pipelines OIDC: SYSTEM_OIDCREQUESTURI is set but AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, SYSTEM_ACCESSTOKEN, AZURESUBSCRIPTION_TENANT_ID (or AZURE_TENANT_ID), AZURESUBSCRIPTION_CLIENT_ID (or AZURE_CLIENT_ID) are not"),
            "{e}"
        );
        // AZURE_TENANT_ID / AZURE_CLIENT_ID stand in for the task's names.
        let generic: Vec<_> = PIPELINES[..3]
            .iter()
            .chain(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")])
            .copied()
            .collect();
        assert!(matches!(
            pick(&generic).unwrap(),
            Identity::AzurePipelines { ref tenant, .. } if tenant == "t"
        ));
        let e = pick(&[("ACR_IDENTITY", "federated-token")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("AZURE_FEDERATED_TOKEN is not set"), "{e}");
        let e = pick(&[("ACR_IDENTITY", "github")]).unwrap_err().to_string();
        assert!(e.contains("ACTIONS_ID_TOKEN_REQUEST_URL is not set"), "{e}");
        let e = pick(&[("ACR_IDENTITY", "azure-pipelines")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SYSTEM_OIDCREQUESTURI is not set"), "{e}");
    }

    #[test]
    fn ci_fingerprints_tell_jobs_apart_and_hold_no_secret() {
        let github = |url: &str| Identity::GitHubActions {
            tenant: "t".into(),
            client_id: "c".into(),
            request_url: url.into(),
            request_token: Secret::new("request-token-1"),
        };
        let a = github("https://x/plans/1/jobs/1/idtoken").fingerprint("https://login");
        assert_ne!(
            a,
            github("https://x/plans/1/jobs/2/idtoken").fingerprint("https://login")
        );
        assert!(!a.contains("request-token-1"));
        let pipelines = |job: &str| Identity::AzurePipelines {
            tenant: "t".into(),
            client_id: "c".into(),
            service_connection: "sc".into(),
            request_uri: "https://x/oidctoken".into(),
            access_token: Secret::new("access-token-1"),
            job: job.into(),
        };
        let p = pipelines("p|1").fingerprint("https://login");
        assert_ne!(p, pipelines("p|2").fingerprint("https://login"));
        assert!(!p.contains("access-token-1"));
        assert!(!format!("{:?}", pipelines("p|1")).contains("access-token-1"));
        assert!(!format!("{:?}", github("u")).contains("request-token-1"));
    }

    #[test]
    fn forced_source_wins_and_names_what_it_lacks() {
        let id = pick(&[("ACR_IDENTITY", "imds"), ("AZURE_CLIENT_ID", "uai")]).unwrap();
        assert!(matches!(id, Identity::Imds { client_id: Some(ref c) } if c == "uai"));
        let e = pick(&[("ACR_IDENTITY", "secret"), ("AZURE_CLIENT_ID", "c")]).unwrap_err();
        assert!(
            e.to_string().contains("AZURE_CLIENT_SECRET is not set"),
            "{e}"
        );
        assert!(matches!(
            pick(&[("ACR_IDENTITY", "cli")]).unwrap(),
            Identity::AzureCli { .. }
        ));
    }

    #[test]
    fn nothing_configured_lists_every_source() {
        let e = pick(&[]).unwrap_err().to_string();
        for s in [
            SOURCE_SECRET,
            SOURCE_CERT,
            SOURCE_WORKLOAD,
            SOURCE_APP_SERVICE,
            SOURCE_CLI,
        ] {
            assert!(e.contains(s), "{s} missing from {e}");
        }
        assert!(e.contains("`az` is not on PATH"));
    }

    #[test]
    fn partial_service_principal_says_what_is_missing() {
        let e = pick(&[("AZURE_CLIENT_SECRET", "s")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not"
            ),
            "{e}"
        );
        assert!(!e.contains("=s"));
    }

    #[test]
    fn cli_found_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let az = dir.path().join("az");
        std::fs::write(&az, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Settings::from_env(
            Env::from_pairs([("PATH", dir.path().to_str().unwrap())]),
            None,
        )
        .unwrap();
        assert!(matches!(
            Identity::from_settings(&s).unwrap(),
            Identity::AzureCli { tenant: None, .. }
        ));
    }

    #[test]
    fn federated_fingerprints_include_the_assertion_subject() {
        use base64::Engine;
        let jwt = |sub: &str| {
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.sig",
                e.encode("{}"),
                e.encode(format!(r#"{{"iss":"https://k8s/","sub":"{sub}"}}"#))
            )
        };
        let id = |sub: &str| Identity::Federated {
            tenant: "t".into(),
            client_id: "c".into(),
            assertion: Secret::new(jwt(sub)),
        };
        let a = id("system:serviceaccount:ns:a").fingerprint("https://login");
        assert_ne!(
            a,
            id("system:serviceaccount:ns:b").fingerprint("https://login")
        );
        assert_eq!(
            a,
            id("system:serviceaccount:ns:a").fingerprint("https://login")
        );
        assert!(a.contains("system:serviceaccount:ns:a"));
        assert!(
            !a.contains(&jwt("system:serviceaccount:ns:a")),
            "never the token itself"
        );
    }

    #[test]
    fn cli_fingerprints_follow_the_logged_in_account() {
        let d = tempfile::tempdir().unwrap();
        let profile = d.path().join("azureProfile.json");
        let id = Identity::AzureCli {
            tenant: None,
            profile: Some(profile.clone()),
        };
        let write = |user: &str, tenant: &str| {
            let doc = format!(
                "\u{feff}{{\"subscriptions\":[{{\"isDefault\":false,\"tenantId\":\"t0\",\"user\":{{\"name\":\"x\",\"type\":\"user\"}}}},{{\"isDefault\":true,\"tenantId\":\"{tenant}\",\"user\":{{\"name\":\"{user}\",\"type\":\"user\"}}}}]}}"
            );
            std::fs::write(&profile, doc).unwrap();
            id.fingerprint("https://login")
        };
        let missing = id.fingerprint("https://login");
        let alice = write("alice", "t1");
        assert!(alice.ends_with("|alice|user|t1"), "{alice}");
        assert_ne!(alice, missing);
        assert_ne!(alice, write("bob", "t1"));
        assert_ne!(alice, write("alice", "t2"));
        assert_eq!(alice, write("alice", "t1"));
        std::fs::write(&profile, "not json").unwrap();
        assert_eq!(id.fingerprint("https://login"), missing);
    }

    #[test]
    fn the_profile_and_the_asset_tag_are_never_read_from_a_fifo() {
        use crate::files::fifo::FifoWriter;
        let d = tempfile::tempdir().unwrap();
        let profile = d.path().join("azureProfile.json");
        let _writer = FifoWriter::new(
            &profile,
            r#"{"subscriptions":[{"isDefault":true,"tenantId":"t1","user":{"name":"alice","type":"user"}}]}"#,
        );
        assert_eq!(cli_account(&profile), "", "a FIFO is not a profile");
        let tag = d.path().join("chassis_asset_tag");
        let _writer = FifoWriter::new(&tag, AZURE_ASSET_TAG);
        assert!(!on_azure_vm(&tag), "a FIFO is not the machine's asset tag");
        // Bounded: a huge file is not read whole.
        let big = d.path().join("big");
        std::fs::write(
            &big,
            format!("{AZURE_ASSET_TAG}{}", " ".repeat(1024 * 1024)),
        )
        .unwrap();
        assert!(!on_azure_vm(&big));
    }

    #[test]
    fn fingerprints_differ_by_identity_and_hold_no_secret() {
        let a = Identity::ClientSecret {
            tenant: "t".into(),
            client_id: "a".into(),
            secret: Secret::new("s1"),
        };
        let b = Identity::ClientSecret {
            tenant: "t".into(),
            client_id: "b".into(),
            secret: Secret::new("s1"),
        };
        let fa = a.fingerprint("https://login.microsoftonline.com");
        assert_ne!(fa, b.fingerprint("https://login.microsoftonline.com"));
        assert_ne!(fa, a.fingerprint("https://login.chinacloudapi.cn"));
        assert!(!fa.contains("s1"));
        assert!(!format!("{a:?}").contains("s1"));
    }
}
