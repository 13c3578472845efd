//! The Docker credential helper for Azure Container Registry, as a library: the protocol's
//! types and strings, the actions, stored `docker login` credentials (in a file or the OS
//! keychain) and the Docker config editor, so they can be tested and fuzzed in-process. The
//! binary is a thin argument parser.

pub mod actions;
pub mod configure;
pub mod doctor;
pub mod keychain;
pub mod protocol;
pub mod store;
