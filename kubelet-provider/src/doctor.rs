//! `--doctor`: why the kubelet's pulls would or would not authenticate on this node.
//!
//! Run with the arguments of the kubelet's `CredentialProviderConfig` entry, it builds the
//! settings, azure.json identity, mirrors and cache folder exactly as a request would, then runs
//! [`acr_broker::doctor`]'s checks with the node identity. Beyond the shared report it shows the
//! azure.json it read (path and fields, never the secret), how a mirror maps the image's host, and
//! what pod identities would use. It reads nothing on stdin.

use crate::azure_json::{AzureJson, AzureJsonError};
use crate::bindings::IdentityBindings;
use crate::mirror::{MirrorError, Mirrors};
use crate::node::{NodeConfig, NodeFlags};
use crate::provider::{
    CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, check_mirror, image_registry, node_setup,
};
use acr_broker::doctor::{self, Checks, ChosenIdentity, Report, Section};
use acr_broker::{Broker, Env};
use serde_json::{Map, Value, json};
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
pub fn doctor(env: Env, args: &DoctorArgs) -> Report {
    let config = doctor::settings_listing(&env);
    let NodeConfig {
        settings,
        azure_json,
        mirrors,
        identity_bindings,
        fallback_to_node_identity,
    } = NodeConfig::from_flags(&args.node, env);
    let azure_json = azure_json
        .as_ref()
        .map(|(path, file)| (path.as_path(), file));
    let mut settings = match settings {
        Ok(s) => s,
        Err(e) => {
            let sections = vec![azure_json_section(azure_json, None)];
            return Report::config_error(config, sections, &e.to_string());
        }
    };
    let file = azure_json.and_then(|(_, file)| file.as_ref().ok());
    let setup = node_setup(&mut settings, file);
    let mut sections = vec![azure_json_section(
        azure_json,
        setup.unknown_cloud.as_deref(),
    )];
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
    let (mirrors, section) = mirrors_section(&broker, mirrors);
    sections.extend(section);
    let mut registry = None;
    if let Some(target) = args
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (host, section) = image_section(target, &mirrors);
        registry = host;
        sections.push(section);
    }
    sections.push(pods_section(
        setup.pod_tenant.as_deref(),
        fallback_to_node_identity,
    ));
    sections.push(bindings_section(
        identity_bindings,
        setup.pod_tenant.as_deref(),
        broker.settings().timeout,
    ));
    if let Some(section) = custom_cloud_section(setup.custom_cloud.as_ref()) {
        sections.push(section);
    }
    doctor::check(
        &broker,
        Checks {
            config,
            sections,
            identity,
            registry,
            not_acr_hint: NOT_ACR_HINT.into(),
            cache_required: Some(CACHE_ADVICE.into()),
        },
    )
}

/// The azure.json the provider was given: its path and the fields it read, or why it cannot be
/// read; `null` when none was given.
fn azure_json_section(
    azure_json: Option<(&Path, &Result<AzureJson, AzureJsonError>)>,
    unknown_cloud: Option<&str>,
) -> Section {
    let (value, line, ok) = match azure_json {
        Some((path, Ok(file))) => {
            let fields: Map<String, Value> = file
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let shown: Vec<String> = fields
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(text) => format!("{k}={text}"),
                    None => format!("{k}={v}"),
                })
                .collect();
            let mut line = format!("azure.json: {} ({})", path.display(), shown.join(", "));
            if let Some(cloud) = unknown_cloud {
                line.push_str(&format!(
                    "; cloud {cloud:?} is unknown, so the Entra authority follows the registry's domain"
                ));
            }
            let value = json!({
                "path": path.display().to_string(),
                "fields": fields,
                "unknown_cloud": unknown_cloud,
            });
            (value, line, true)
        }
        Some((path, Err(e))) => (
            json!({"path": path.display().to_string(), "error": e.to_string()}),
            format!(
                "azure.json: ERROR {e}; fix the file or the AZURE_JSON argument of the provider's CredentialProviderConfig entry"
            ),
            false,
        ),
        None => (
            Value::Null,
            "azure.json: none given (no AZURE_JSON argument); the node identity comes from the environment".into(),
            true,
        ),
    };
    Section {
        key: "azure_json",
        value,
        lines: vec![line],
        ok,
    }
}

/// The `--registry-mirror` mappings, each with whether its destination is a login server.
fn mirrors_section(
    broker: &Broker,
    mirrors: Result<Mirrors, MirrorError>,
) -> (Mirrors, Option<Section>) {
    let mirrors = match mirrors {
        Ok(m) => m,
        Err(e) => {
            let section = Section {
                key: "mirrors",
                value: json!({"error": e.to_string()}),
                lines: vec![format!("mirrors: ERROR {e}")],
                ok: false,
            };
            return (Mirrors::default(), Some(section));
        }
    };
    let mut ok = true;
    let mut lines = Vec::new();
    let mut list = Vec::new();
    for m in mirrors.iter() {
        let mut entry = json!({"source": m.source, "destination": m.destination});
        match check_mirror(broker, m) {
            Ok(()) => lines.push(format!(
                "mirror: images on {} are pulled with the credentials of {}",
                m.source, m.destination
            )),
            Err(e) => {
                ok = false;
                lines.push(format!("mirror {}: ERROR {e}", m.source));
                entry["error"] = json!(e);
            }
        }
        list.push(entry);
    }
    let section = (!list.is_empty()).then(|| Section {
        key: "mirrors",
        value: json!(list),
        lines,
        ok,
    });
    (mirrors, section)
}

/// The image (or registry) asked about: its registry host and, through a mirror, the login
/// server whose credentials it gets. Returns that login server input, if any.
fn image_section(target: &str, mirrors: &Mirrors) -> (Option<String>, Section) {
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
        let error = "it names no registry host (a Docker Hub image): the provider answers with no credentials and the kubelet pulls anonymously";
        let section = Section {
            key: "image",
            value: json!({"input": target, "error": error}),
            lines: vec![format!("image {target}: ERROR {error}")],
            ok: false,
        };
        return (None, section);
    };
    let mirrored = mirrors.for_image_host(host);
    let line = match mirrored {
        Some(dst) => format!(
            "image: {target}: registry {host}, mirrored to {dst} (--registry-mirror): pulled with the credentials of {dst}"
        ),
        None => format!("image: {target}: registry {host}"),
    };
    let section = Section {
        key: "image",
        value: json!({"input": target, "registry_host": host, "mirrored_to": mirrored}),
        lines: vec![line],
        ok: true,
    };
    (Some(mirrored.unwrap_or(host).to_string()), section)
}

/// Identity bindings: the settings and whether the local authority answers over TLS with the
/// cluster CA (a request without a token: no secret is sent).
fn bindings_section(
    identity_bindings: Result<Option<IdentityBindings>, String>,
    pod_tenant: Option<&str>,
    timeout: std::time::Duration,
) -> Section {
    let ib = match identity_bindings {
        Ok(None) => {
            return Section {
                key: "identity_bindings",
                value: json!({"enabled": false}),
                lines: vec!["identity bindings: off (no --ib-sni-name)".into()],
                ok: true,
            };
        }
        Ok(Some(ib)) => ib,
        Err(e) => {
            return Section {
                key: "identity_bindings",
                value: json!({"enabled": true, "error": e}),
                lines: vec![format!("identity bindings: ERROR {e}")],
                ok: false,
            };
        }
    };
    let tenant = ib.default_tenant_id.as_deref().or(pod_tenant);
    let mut lines = vec![format!(
        "identity bindings: pods pull through https://{} at {}:443 (cluster CA {}); client id from {CLIENT_ID_ANNOTATION}, else {}; tenant from {TENANT_ID_ANNOTATION}, else {}",
        ib.sni_name,
        ib.apiserver,
        ib.ca_file.display(),
        ib.default_client_id.as_deref().map_or(
            "none: unannotated service accounts are refused".to_string(),
            |c| format!("--ib-default-client-id {c}")
        ),
        tenant.unwrap_or("none"),
    )];
    let probe =
        acr_broker::probe_identity_binding(&ib.sni_name, &ib.apiserver, &ib.ca_file, timeout);
    let ok = probe.is_ok();
    lines.push(match &probe {
        Ok(status) => format!(
            "identity bindings: the local authority answered over verified TLS (HTTP {status} to a request without a token)"
        ),
        Err(e) => format!(
            "identity bindings: ERROR the local authority cannot be reached: {e}; check --ib-apiserver-ip, --ib-sni-name and the cluster CA (--ib-ca-file)"
        ),
    });
    Section {
        key: "identity_bindings",
        value: json!({
            "enabled": true,
            "sni_name": ib.sni_name,
            "apiserver": ib.apiserver,
            "ca_file": ib.ca_file.display().to_string(),
            "default_client_id": ib.default_client_id,
            "default_tenant_id": tenant,
            "authority": match &probe {
                Ok(status) => json!({"reachable": true, "status": status}),
                Err(e) => json!({"reachable": false, "error": e}),
            },
        }),
        lines,
        ok,
    }
}

/// `cloud: AzureStackCloud`: the environment file and what it set.
fn custom_cloud_section(
    cloud: Option<&Result<crate::azure_json::CustomCloud, String>>,
) -> Option<Section> {
    Some(match cloud? {
        Ok(c) => Section {
            key: "custom_cloud",
            value: json!({
                "environment_file": c.path.display().to_string(),
                "authority": c.authority_host,
                "registry_suffix": c.registry_suffix,
            }),
            lines: vec![format!(
                "custom cloud: {} (AZURE_ENVIRONMENT_FILEPATH): authority {}, registries *.{}",
                c.path.display(),
                c.authority_host.as_deref().unwrap_or("(not set)"),
                c.registry_suffix.as_deref().unwrap_or("(not set)"),
            )],
            ok: true,
        },
        Err(e) => Section {
            key: "custom_cloud",
            value: json!({"error": e}),
            lines: vec![format!("custom cloud: ERROR {e}")],
            ok: false,
        },
    })
}

/// What pods with a service-account token (tokenAttributes) would pull as.
fn pods_section(tenant: Option<&str>, fallback: bool) -> Section {
    let tenant_text = match tenant {
        Some(t) => format!("default tenant {t}"),
        None => format!("no default tenant, so each also needs {TENANT_ID_ANNOTATION}"),
    };
    let unannotated = if fallback {
        "use the node identity (--fallback-to-node-identity)"
    } else {
        "are refused (no --fallback-to-node-identity)"
    };
    Section {
        key: "pods",
        value: json!({"default_tenant": tenant, "fallback_to_node_identity": fallback}),
        lines: vec![format!(
            "pods: service accounts annotated {CLIENT_ID_ANNOTATION} pull as that identity ({tenant_text}); tokens without it {unannotated}"
        )],
        ok: true,
    }
}
