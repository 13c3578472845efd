//! The node's configuration, as the provider's flags and the kubelet's environment make it: the
//! broker's settings (with `--cache-dir` and the default cache folder), the azure.json it was
//! given, the registry mirrors and the identity-binding flags.
//!
//! A request ([`crate::cli`]) and `--doctor` ([`crate::doctor`]) both start from
//! [`NodeConfig::from_flags`], so the report checks exactly what a request would use. Each part is
//! kept as read or with why it cannot be used: a request stops at the first unusable part
//! ([`NodeConfig::into_options`]) but for mirror entries, which it skips with a warning; the
//! report shows them all.

use crate::azure_json::{AzureJson, AzureJsonError};
use crate::bindings::{BindingFlags, IdentityBindings};
use crate::mirror::{MirrorError, Mirrors};
use crate::provider::Options;
use acr_broker::{Env, Settings};
use std::path::PathBuf;

/// Where tokens are cached unless `--cache-dir` or `ACR_CACHE_DIR` says otherwise: beside the
/// kubelet's own state (on AKS Windows nodes its root is `c:\var\lib\kubelet`, where AgentBaker
/// also puts the provider: `--image-credential-provider-bin-dir=c:\var\lib\kubelet\credential-provider`).
pub const DEFAULT_CACHE_DIR: &str = if cfg!(windows) {
    "C:\\var\\lib\\kubelet\\acr-credential-provider"
} else {
    "/var/lib/kubelet/acr-credential-provider"
};

/// The flags that configure the node, as the kubelet passes them from the provider's
/// `CredentialProviderConfig` entry.
#[derive(Debug, Clone, Default)]
pub struct NodeFlags {
    /// The AZURE_JSON argument.
    pub azure_json: Option<PathBuf>,
    /// Every `--registry-mirror` value.
    pub registry_mirror: Vec<String>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--fallback-to-node-identity`.
    pub fallback_to_node_identity: bool,
    /// `--exchange-sp-secret`.
    pub exchange_sp_secret: bool,
    /// The `--ib-*` flags.
    pub identity_bindings: BindingFlags,
}

/// Why the node's configuration cannot serve a request; each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The environment's settings are unusable.
    #[error(transparent)]
    Settings(#[from] acr_broker::Error),
    /// The azure.json cannot be read or parsed.
    #[error(transparent)]
    AzureJson(#[from] AzureJsonError),
    /// The `--ib-*` flags do not go together.
    #[error("{0}")]
    IdentityBindings(String),
}

/// Each part of the node's configuration, as read or with why it cannot be used.
#[derive(Debug)]
pub struct NodeConfig {
    /// The broker's settings, `--cache-dir` applied.
    pub settings: Result<Settings, acr_broker::Error>,
    /// The AZURE_JSON argument and the file read from it; `None` when none was given.
    pub azure_json: Option<(PathBuf, Result<AzureJson, AzureJsonError>)>,
    /// The `--registry-mirror` mappings that can be read, and why each other entry cannot.
    pub mirrors: (Mirrors, Vec<MirrorError>),
    /// The identity-binding settings; `Ok(None)` when off. The error is one line naming a flag.
    pub identity_bindings: Result<Option<IdentityBindings>, String>,
    /// `--fallback-to-node-identity`.
    pub fallback_to_node_identity: bool,
    /// `--exchange-sp-secret`.
    pub exchange_sp_secret: bool,
}

impl NodeConfig {
    /// Reads every part from `flags` and `env` (the kubelet's environment for the provider).
    pub fn from_flags(flags: &NodeFlags, mut env: Env) -> NodeConfig {
        if let Some(dir) = &flags.cache_dir {
            env.set("ACR_CACHE_DIR", dir.to_string_lossy());
        }
        NodeConfig {
            settings: Settings::from_env(env, Some(PathBuf::from(DEFAULT_CACHE_DIR))),
            azure_json: flags
                .azure_json
                .as_ref()
                .map(|path| (path.clone(), AzureJson::load(path))),
            mirrors: Mirrors::parse_each(&flags.registry_mirror),
            identity_bindings: flags.identity_bindings.check(),
            fallback_to_node_identity: flags.fallback_to_node_identity,
            exchange_sp_secret: flags.exchange_sp_secret,
        }
    }

    /// The settings and options a [`crate::provider::Provider`] is built from; the first part
    /// that cannot be used is the error (settings, azure.json, identity bindings). A
    /// `--registry-mirror` entry that cannot be read is left out with a warning, as the AKS
    /// plugin skips it: the other images still pull.
    pub fn into_options(self) -> Result<(Settings, Options), NodeError> {
        let settings = self.settings?;
        let azure_json = self.azure_json.map(|(_, file)| file).transpose()?;
        let (mirrors, unreadable) = self.mirrors;
        for e in unreadable {
            log::warn!("{e}; ignoring it (run with --doctor to check the flags)");
        }
        let identity_bindings = self
            .identity_bindings
            .map_err(NodeError::IdentityBindings)?;
        let options = Options {
            azure_json,
            mirrors,
            fallback_to_node_identity: self.fallback_to_node_identity,
            exchange_sp_secret: self.exchange_sp_secret,
            identity_bindings,
        };
        Ok((settings, options))
    }
}
