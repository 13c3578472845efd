//! The kubelet image credential provider for Azure Container Registry, as a library: the
//! protocol types, azure.json, registry mirrors, the node's configuration from the flags
//! ([`node::NodeConfig`]) and the request-to-response logic, so they can be
//! tested and fuzzed in-process, and the `--doctor` report. The `acr-credential-provider` binary is
//! [`cli::run`].

pub mod azure_json;
pub mod bindings;
pub mod cli;
pub mod doctor;
pub mod mirror;
pub mod node;
pub mod protocol;
pub mod provider;
