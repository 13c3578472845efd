//! `--doctor`: why the kubelet's pulls would or would not authenticate on this node.
//!
//! Run with the arguments of the kubelet's `CredentialProviderConfig` entry, it builds the
//! settings, azure.json identity, mirrors and cache folder exactly as a request would, then runs
//! [`acr_broker::doctor`]'s checks with the node identity. Beyond the shared report it shows the
//! azure.json it read (path and fields, never the secret), how a mirror maps the image's host, and
//! what pod identities would use. It reads nothing on stdin.

mod sections;

pub use sections::{
    ActiveBindings, AzureJsonPart, BindingsPart, CustomCloudPart, ImagePart, MirrorCheck,
    MirrorsPart, NodeParts, PodsPart, ServicePrincipalPart,
};

use crate::azure_json::{AzureJson, AzureJsonError, CustomCloud};
use crate::bindings::IdentityBindings;
use crate::mirror::{MirrorError, Mirrors};
use crate::node::{NodeConfig, NodeFlags};
use crate::provider::{SERVICE_PRINCIPAL_KEYS, check_mirror, image_registry, node_setup};
use acr_broker::doctor::{self, Checks, ChosenIdentity, Diagnosis};
use acr_broker::{Broker, Env};
use std::path::Path;

/// Advice for an unusable cache folder: a node without a cache asks Entra and the registry for
/// every pull the kubelet has not cached itself.
const CACHE_ADVICE: &str = "tokens would not be cached, so every pull would ask Entra and the registry; fix the folder or choose another with --cache-dir";

/// Appended to the error for an image host that is not an ACR login server.
const NOT_ACR_HINT: &str = "the provider answers with no credentials for it and the kubelet pulls anonymously; add it to ACR_LOGIN_SERVERS if it is an ACR under another name, or map it to one with --registry-mirror";

/// The provider's arguments, as the kubelet would pass them, and what to check.
#[derive(Debug, Default)]
pub struct DoctorArgs {
    /// The flags that configure the node.
    pub node: NodeFlags,
    /// An image reference or registry host to check the challenge and a token with.
    pub target: Option<String>,
}

/// Runs the checks with `env` (the kubelet's environment for the provider) and `args`.
pub fn doctor(env: Env, args: &DoctorArgs) -> Diagnosis<NodeParts> {
    let config = doctor::settings_listing(&env);
    let NodeConfig {
        settings,
        azure_json,
        mirrors,
        identity_bindings,
        fallback_to_node_identity,
        exchange_sp_secret,
    } = NodeConfig::from_flags(&args.node, env);
    let azure_json = azure_json
        .as_ref()
        .map(|(path, file)| (path.as_path(), file));
    let mut settings = match settings {
        Ok(s) => s,
        Err(e) => {
            let front = NodeParts::azure_json_only(azure_json_part(azure_json, None));
            return Diagnosis::unusable(config, front, e.to_string());
        }
    };
    let file = azure_json.and_then(|(_, file)| file.as_ref().ok());
    let setup = node_setup(&mut settings, file);
    let azure_json_part = azure_json_part(azure_json, setup.unknown_cloud.as_deref());
    let identity = match (azure_json, setup.identity) {
        (Some((path, Err(e))), _) => Some(ChosenIdentity {
            identity: Err(format!(
                "none, the node identity comes from azure.json: {e}"
            )),
            origin: path.display().to_string(),
        }),
        (Some((path, _)), Some(identity)) => Some(ChosenIdentity {
            identity,
            origin: path.display().to_string(),
        }),
        _ => None,
    };
    let broker = Broker::new(settings);
    let (mirrors, mirrors_part) = mirrors_part(&broker, mirrors);
    let target = args
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let (mut registry, image) = match target.map(|t| image_part(t, &mirrors)) {
        Some((registry, image)) => (registry, Some(image)),
        None => (None, None),
    };
    // A service-principal node answers the principal's id and secret and makes no request, so
    // there is no challenge or token to check (as a request: see provider.rs).
    let service_principal = file
        .filter(|f| !f.use_managed_identity_extension && !exchange_sp_secret)
        .map(|f| {
            let mut keys: Vec<String> = SERVICE_PRINCIPAL_KEYS
                .iter()
                .map(|k| (*k).to_string())
                .collect();
            if let Some(Ok(cloud)) = &setup.custom_cloud
                && let Some(suffix) = &cloud.registry_suffix
            {
                keys.push(format!("*.{suffix}"));
            }
            ServicePrincipalPart {
                client_id: f.aad_client_id.clone().unwrap_or_default(),
                secret_set: f.aad_client_secret.is_some(),
                keys,
            }
        });
    if service_principal.is_some() {
        registry = None;
    }
    let front = NodeParts {
        azure_json: azure_json_part,
        mirrors: mirrors_part,
        image,
        pods: Some(PodsPart {
            default_tenant: setup.pod_tenant.clone(),
            fallback_to_node_identity,
        }),
        identity_bindings: Some(bindings_part(
            identity_bindings,
            setup.pod_tenant.as_deref(),
            broker.settings().timeout,
        )),
        custom_cloud: setup.custom_cloud.map(custom_cloud_part),
        service_principal,
    };
    doctor::check(
        &broker,
        Checks {
            config,
            identity,
            registry,
            not_acr_hint: NOT_ACR_HINT.into(),
            cache_required: Some(CACHE_ADVICE.into()),
        },
        front,
    )
}

/// The azure.json the provider was given: its path and the fields it read, or why it cannot be
/// read.
fn azure_json_part(
    azure_json: Option<(&Path, &Result<AzureJson, AzureJsonError>)>,
    unknown_cloud: Option<&str>,
) -> AzureJsonPart {
    match azure_json {
        Some((path, Ok(file))) => AzureJsonPart::Read {
            path: path.display().to_string(),
            fields: file
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            unknown_cloud: unknown_cloud.map(str::to_string),
        },
        Some((path, Err(e))) => AzureJsonPart::Unreadable {
            path: path.display().to_string(),
            error: e.to_string(),
        },
        None => AzureJsonPart::NotGiven,
    }
}

/// The `--registry-mirror` mappings, each with whether its destination is a login server; no
/// part when none are given.
fn mirrors_part(
    broker: &Broker,
    (mirrors, unreadable): (Mirrors, Vec<MirrorError>),
) -> (Mirrors, Option<MirrorsPart>) {
    if let Some(e) = unreadable.into_iter().next() {
        let part = MirrorsPart::Unreadable {
            error: format!("{e} (requests skip it and warn)"),
        };
        return (Mirrors::default(), Some(part));
    }
    let list: Vec<MirrorCheck> = mirrors
        .iter()
        .map(|m| MirrorCheck {
            source: m.source.clone(),
            destination: m.destination.clone(),
            path: m.path.clone(),
            error: check_mirror(broker, m).err(),
        })
        .collect();
    let part = (!list.is_empty()).then_some(MirrorsPart::Checked(list));
    (mirrors, part)
}

/// The image (or registry) asked about: its registry host and, through a mirror, the login
/// server whose credentials it gets. Returns that login server input, if any.
fn image_part(target: &str, mirrors: &Mirrors) -> (Option<String>, ImagePart) {
    let reference = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))
        .unwrap_or(target);
    let host = if reference.contains('/') {
        image_registry(reference)
    } else {
        Some(reference)
    };
    let Some(host) = host else {
        let part = ImagePart::NoHost {
            input: target.to_string(),
            error: "it names no registry host (a Docker Hub image): the provider answers with no credentials and the kubelet pulls anonymously",
        };
        return (None, part);
    };
    let mirrored = mirrors.for_image_host(host);
    let part = ImagePart::Host {
        input: target.to_string(),
        registry_host: host.to_string(),
        mirrored_to: mirrored.map(str::to_string),
    };
    (Some(mirrored.unwrap_or(host).to_string()), part)
}

/// Identity bindings: the settings and whether the local authority answers over TLS with the
/// cluster CA (a request without a token: no secret is sent).
fn bindings_part(
    identity_bindings: Result<Option<IdentityBindings>, String>,
    pod_tenant: Option<&str>,
    timeout: std::time::Duration,
) -> BindingsPart {
    let ib = match identity_bindings {
        Ok(None) => return BindingsPart::Off,
        Ok(Some(ib)) => ib,
        Err(e) => return BindingsPart::Invalid(e),
    };
    let authority =
        acr_broker::probe_identity_binding(&ib.sni_name, &ib.apiserver, &ib.ca_file, timeout);
    BindingsPart::On(ActiveBindings {
        default_tenant_id: ib
            .default_tenant_id
            .or_else(|| pod_tenant.map(str::to_string)),
        ca_file: ib.ca_file.display().to_string(),
        sni_name: ib.sni_name,
        apiserver: ib.apiserver,
        default_client_id: ib.default_client_id,
        authority,
    })
}

/// `cloud: AzureStackCloud`: the environment file and what it set.
fn custom_cloud_part(cloud: Result<CustomCloud, String>) -> CustomCloudPart {
    match cloud {
        Ok(c) => CustomCloudPart::Read {
            environment_file: c.path.display().to_string(),
            authority: c
                .authority_host
                .or_else(|| c.authority_error.map(|e| format!("unusable ({e})"))),
            registry_suffix: c.registry_suffix,
        },
        Err(error) => CustomCloudPart::Failed { error },
    }
}
