//! The Docker credential helper for Azure Container Registry, as a library: the protocol's
//! types and strings, the actions and their typed [`failure::Failure`], stored `docker login`
//! credentials (their secrets in the file or the OS keychain, behind [`secrets::SecretStore`])
//! the Docker config editor and the `token` command, so they can be tested and fuzzed in-process. The binary is a
//! thin argument parser.

pub mod actions;
pub mod configure;
pub mod doctor;
pub mod failure;
pub mod keychain;
pub mod protocol;
pub mod secrets;
pub mod store;
pub mod token;
