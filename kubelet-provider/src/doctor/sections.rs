//! The kubelet provider's own parts of a diagnosis, as data: each `Serialize` for `--json` and
//! `Display` for the text (one or two lines; a problem reads `<what>: ERROR <cause and fix>`).

use crate::provider::{CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION};
use acr_broker::doctor::{FrontEnd, Section};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// The provider's parts, in the order they are shown (and keyed in the JSON report). When the
/// settings are unusable only the azure.json is reported.
#[derive(Debug, Serialize)]
pub struct NodeParts {
    /// The azure.json given.
    pub azure_json: AzureJsonPart,
    /// The `--registry-mirror` mappings, when any are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<MirrorsPart>,
    /// The image asked about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImagePart>,
    /// What pods with a service-account token pull as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsPart>,
    /// Identity bindings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_bindings: Option<BindingsPart>,
    /// `cloud: AzureStackCloud`'s environment file, when one is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_cloud: Option<CustomCloudPart>,
    /// A service-principal node's answer, when it answers the principal's id and secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<ServicePrincipalPart>,
}

impl NodeParts {
    /// Only the azure.json (the settings are unusable).
    pub fn azure_json_only(azure_json: AzureJsonPart) -> NodeParts {
        NodeParts {
            azure_json,
            mirrors: None,
            image: None,
            pods: None,
            identity_bindings: None,
            custom_cloud: None,
            service_principal: None,
        }
    }
}

impl FrontEnd for NodeParts {
    fn sections(&self) -> Vec<&dyn Section> {
        let mut out: Vec<&dyn Section> = vec![&self.azure_json];
        let optional: [Option<&dyn Section>; 6] = [
            self.service_principal.as_ref().map(|s| s as &dyn Section),
            self.mirrors.as_ref().map(|s| s as &dyn Section),
            self.image.as_ref().map(|s| s as &dyn Section),
            self.pods.as_ref().map(|s| s as &dyn Section),
            self.identity_bindings.as_ref().map(|s| s as &dyn Section),
            self.custom_cloud.as_ref().map(|s| s as &dyn Section),
        ];
        out.extend(optional.into_iter().flatten());
        out
    }
}

/// The azure.json the provider was given (JSON: `null` when none).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AzureJsonPart {
    /// Read: the fields this provider uses (the secret's value hidden).
    Read {
        /// The file.
        path: String,
        /// The fields it sets, in the file's spelling.
        fields: Map<String, Value>,
        /// Its `cloud` when this provider does not know it (and `AZURE_AUTHORITY_HOST` is unset).
        unknown_cloud: Option<String>,
    },
    /// It cannot be read or used.
    Unreadable {
        /// The file.
        path: String,
        /// Why (never quoting the file).
        error: String,
    },
    /// No AZURE_JSON argument.
    NotGiven,
}

impl fmt::Display for AzureJsonPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureJsonPart::Read {
                path,
                fields,
                unknown_cloud,
            } => {
                let shown: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| match v.as_str() {
                        Some(text) => format!("{k}={text}"),
                        None => format!("{k}={v}"),
                    })
                    .collect();
                write!(f, "azure.json: {path} ({})", shown.join(", "))?;
                match unknown_cloud {
                    Some(cloud) => write!(
                        f,
                        "; cloud {cloud:?} is unknown, so the Entra authority is ACR_CLOUD's, else the public cloud's (set AZURE_AUTHORITY_HOST or ACR_CLOUD)"
                    ),
                    None => Ok(()),
                }
            }
            AzureJsonPart::Unreadable { error, .. } => write!(
                f,
                "azure.json: ERROR {error}; fix the file or the AZURE_JSON argument of the provider's CredentialProviderConfig entry"
            ),
            AzureJsonPart::NotGiven => f.write_str(
                "azure.json: none given (no AZURE_JSON argument); the node identity comes from the environment",
            ),
        }
    }
}

impl Section for AzureJsonPart {
    fn ok(&self) -> bool {
        !matches!(self, AzureJsonPart::Unreadable { .. })
    }
}

/// The `--registry-mirror` mappings.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MirrorsPart {
    /// A value cannot be read.
    Unreadable {
        /// Why.
        error: String,
    },
    /// Each mapping, with whether its destination is a login server.
    Checked(Vec<MirrorCheck>),
}

/// One mapping.
#[derive(Debug, Serialize)]
pub struct MirrorCheck {
    /// The registry images name.
    pub source: String,
    /// The login server whose credentials they get.
    pub destination: String,
    /// The repository path the destination serves them under, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why the destination cannot be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl fmt::Display for MirrorsPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = match self {
            MirrorsPart::Unreadable { error } => return write!(f, "mirrors: ERROR {error}"),
            MirrorsPart::Checked(list) => list,
        };
        let lines: Vec<String> = list
            .iter()
            .map(|m| match &m.error {
                None => format!(
                    "mirror: images on {} are pulled with the credentials of {}{}",
                    m.source,
                    m.destination,
                    m.path
                        .as_deref()
                        .map(|p| format!(" (served under {}/{p})", m.destination))
                        .unwrap_or_default()
                ),
                Some(e) => format!("mirror {}: ERROR {e}", m.source),
            })
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

impl Section for MirrorsPart {
    fn ok(&self) -> bool {
        match self {
            MirrorsPart::Unreadable { .. } => false,
            MirrorsPart::Checked(list) => list.iter().all(|m| m.error.is_none()),
        }
    }
}

/// The image (or registry) asked about.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ImagePart {
    /// A Docker Hub image: no registry host, so no credentials.
    NoHost {
        /// The image as given.
        input: String,
        /// Why it gets no credentials.
        error: &'static str,
    },
    /// Its registry host and, through a mirror, the login server whose credentials it gets.
    Host {
        /// The image as given.
        input: String,
        /// The registry as written in it.
        registry_host: String,
        /// The mirror's destination, if mirrored.
        mirrored_to: Option<String>,
    },
}

impl fmt::Display for ImagePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImagePart::NoHost { input, error } => write!(f, "image {input}: ERROR {error}"),
            ImagePart::Host {
                input,
                registry_host,
                mirrored_to: Some(dst),
            } => write!(
                f,
                "image: {input}: registry {registry_host}, mirrored to {dst} (--registry-mirror): pulled with the credentials of {dst}"
            ),
            ImagePart::Host {
                input,
                registry_host,
                mirrored_to: None,
            } => write!(f, "image: {input}: registry {registry_host}"),
        }
    }
}

impl Section for ImagePart {
    fn ok(&self) -> bool {
        matches!(self, ImagePart::Host { .. })
    }
}

/// What pods with a service-account token (tokenAttributes) would pull as.
#[derive(Debug, Serialize)]
pub struct PodsPart {
    /// The default tenant of pod identities.
    pub default_tenant: Option<String>,
    /// `--fallback-to-node-identity`.
    pub fallback_to_node_identity: bool,
}

impl fmt::Display for PodsPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenant = match &self.default_tenant {
            Some(t) => format!("default tenant {t}"),
            None => format!("no default tenant, so each also needs {TENANT_ID_ANNOTATION}"),
        };
        let unannotated = if self.fallback_to_node_identity {
            "use the node identity (--fallback-to-node-identity)"
        } else {
            "are refused (no --fallback-to-node-identity)"
        };
        write!(
            f,
            "pods: service accounts annotated {CLIENT_ID_ANNOTATION} pull as that identity ({tenant}); tokens without it {unannotated}"
        )
    }
}

impl Section for PodsPart {
    fn ok(&self) -> bool {
        true
    }
}

/// Identity bindings: the settings and whether the local authority answers.
#[derive(Debug)]
pub enum BindingsPart {
    /// Off (no `--ib-sni-name`).
    Off,
    /// The `--ib-*` flags do not go together: why.
    Invalid(String),
    /// On.
    On(ActiveBindings),
}

/// Identity bindings that are on.
#[derive(Debug, Serialize)]
pub struct ActiveBindings {
    /// `--ib-sni-name`.
    pub sni_name: String,
    /// `--ib-apiserver-ip`.
    pub apiserver: String,
    /// The cluster CA bundle.
    pub ca_file: String,
    /// `--ib-default-client-id`.
    pub default_client_id: Option<String>,
    /// The tenant for unannotated service accounts.
    pub default_tenant_id: Option<String>,
    /// The local authority's answer to a request without a token (HTTP status), or why it
    /// cannot be reached over TLS verified with the cluster CA.
    #[serde(serialize_with = "authority_json")]
    pub authority: Result<u16, String>,
}

/// The JSON of [`BindingsPart`]: `enabled`, then the error or the settings.
#[derive(Serialize)]
struct BindingsLayout<'a> {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(flatten)]
    on: Option<&'a ActiveBindings>,
}

impl Serialize for BindingsPart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (error, on) = match self {
            BindingsPart::Off => (None, None),
            BindingsPart::Invalid(e) => (Some(e.as_str()), None),
            BindingsPart::On(on) => (None, Some(on)),
        };
        BindingsLayout {
            enabled: !matches!(self, BindingsPart::Off),
            error,
            on,
        }
        .serialize(s)
    }
}

/// The authority probe as `{"reachable": true, "status": N}` or `{"reachable": false, "error":
/// "..."}`.
fn authority_json<S: Serializer>(probe: &Result<u16, String>, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("reachable", &probe.is_ok())?;
    match probe {
        Ok(status) => m.serialize_entry("status", status)?,
        Err(e) => m.serialize_entry("error", e)?,
    }
    m.end()
}

impl fmt::Display for BindingsPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindingsPart::Off => f.write_str("identity bindings: off (no --ib-sni-name)"),
            BindingsPart::Invalid(e) => write!(f, "identity bindings: ERROR {e}"),
            BindingsPart::On(on) => on.fmt(f),
        }
    }
}

impl fmt::Display for ActiveBindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "identity bindings: pods pull through https://{} at {}:443 (cluster CA {}); client id from {CLIENT_ID_ANNOTATION}, else {}; tenant from {TENANT_ID_ANNOTATION}, else {}",
            self.sni_name,
            self.apiserver,
            self.ca_file,
            self.default_client_id.as_deref().map_or(
                "none: unannotated service accounts are refused".to_string(),
                |c| format!("--ib-default-client-id {c}")
            ),
            self.default_tenant_id.as_deref().unwrap_or("none"),
        )?;
        match &self.authority {
            Ok(status) => write!(
                f,
                "\nidentity bindings: the local authority answered over verified TLS (HTTP {status} to a request without a token)"
            ),
            Err(e) => write!(
                f,
                "\nidentity bindings: ERROR the local authority cannot be reached: {e}; check --ib-apiserver-ip, --ib-sni-name and the cluster CA (--ib-ca-file)"
            ),
        }
    }
}

impl Section for BindingsPart {
    fn ok(&self) -> bool {
        match self {
            BindingsPart::Off => true,
            BindingsPart::Invalid(_) => false,
            BindingsPart::On(on) => on.authority.is_ok(),
        }
    }
}

/// `cloud: AzureStackCloud`: the environment file and what it set.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum CustomCloudPart {
    /// Read.
    Read {
        /// The file `AZURE_ENVIRONMENT_FILEPATH` names.
        environment_file: String,
        /// Its Entra authority.
        authority: Option<String>,
        /// Its registries' domain.
        registry_suffix: Option<String>,
    },
    /// It cannot be read or used: why.
    Failed {
        /// Why.
        error: String,
    },
}

impl fmt::Display for CustomCloudPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomCloudPart::Read {
                environment_file,
                authority,
                registry_suffix,
            } => write!(
                f,
                "custom cloud: {environment_file} (AZURE_ENVIRONMENT_FILEPATH): authority {}, registries *.{}",
                authority.as_deref().unwrap_or("(not set)"),
                registry_suffix.as_deref().unwrap_or("(not set)"),
            ),
            CustomCloudPart::Failed { error } => write!(f, "custom cloud: ERROR {error}"),
        }
    }
}

impl Section for CustomCloudPart {
    fn ok(&self) -> bool {
        matches!(self, CustomCloudPart::Read { .. })
    }
}

/// A service-principal node (azure.json `useManagedIdentityExtension: false`) without
/// `--exchange-sp-secret`: every request is answered, with no network, by the principal's id and
/// secret, as the AKS plugin answers.
#[derive(Debug, Serialize)]
pub struct ServicePrincipalPart {
    /// The principal's client id (`aadClientId`), the answered username.
    pub client_id: String,
    /// Whether azure.json holds `aadClientSecret` (its value is never shown).
    pub secret_set: bool,
    /// The `auth` keys answered.
    pub keys: Vec<String>,
}

impl fmt::Display for ServicePrincipalPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node answer: service principal {}'s id and secret for {} (no request; the registry checks them; --exchange-sp-secret answers a derived token instead){}",
            if self.client_id.is_empty() {
                "(no aadClientId)"
            } else {
                &self.client_id
            },
            self.keys.join(", "),
            if self.secret_set {
                ""
            } else {
                "; ERROR azure.json has no aadClientSecret, so the password is empty"
            },
        )
    }
}

impl Section for ServicePrincipalPart {
    fn ok(&self) -> bool {
        self.secret_set && !self.client_id.is_empty()
    }
}
