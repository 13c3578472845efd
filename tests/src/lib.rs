//! Test support for the ACR credential helpers.
//!
//! [`emulator`] runs an in-process HTTPS emulator of the Microsoft Entra token endpoints, the
//! managed identity endpoints (App Service and IMDS) and the Azure Container Registry token
//! service, so tests can drive real clients against it. [`sandbox`] gives a test an emulator, a
//! private HOME and the environment that points a helper binary at both. [`e2e`] puts the
//! emulator in front of real registries under real ACR names, for real clients.
//! [`secret_service`] runs a private D-Bus session with GNOME Keyring for keychain tests.
//! [`az`] is the one stand-in for the Azure CLI that every test puts on its `PATH`.
//! [`kubelet`] builds and runs the kubelet's own credential-provider code (a Go harness) as a
//! client of `acr-credential-provider`. [`suite`] checks that each crate's one integration-test
//! binary includes every test file.
#![deny(missing_docs)]

pub mod az;
pub mod e2e;
pub mod emulator;
pub mod kubelet;
pub mod sandbox;
pub mod secret_service;
pub mod suite;

/// The tenant of every test identity (sandbox, end-to-end worlds, emulator and broker tests).
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
