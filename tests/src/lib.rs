//! Test support for the ACR credential helpers.
//!
//! [`emulator`] runs an in-process HTTPS emulator of the Microsoft Entra token endpoints, the
//! managed identity endpoints (App Service and IMDS) and the Azure Container Registry token
//! service, so tests can drive real clients against it.
#![deny(missing_docs)]

pub mod emulator;
