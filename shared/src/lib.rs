//! The token broker behind `docker-credential-acr` and `acr-credential-provider`.
//!
//! Given what a registry client sends, the broker decides whether it is an Azure Container
//! Registry login server ([`LoginServer`]), picks an Entra identity ([`Identity`]), and returns an
//! ACR refresh token ([`Credential`]) from a cache shared by concurrent processes, fetching one
//! (Entra token, then `/oauth2/exchange`) only when the cache has none fresh.
//!
//! ```no_run
//! use acr_broker::{Broker, Env, Settings};
//! let broker = Broker::new(Settings::from_env(Env::process(), None)?);
//! let server = broker.login_server("https://myregistry.azurecr.io/v2/").expect("an ACR host");
//! let credential = broker.credential(&server)?;
//! assert_eq!(credential.username, acr_broker::ACR_USERNAME);
//! # Ok::<(), acr_broker::Error>(())
//! ```
//!
//! A cache hit reads one small file: no async runtime, HTTP client, child process or network.
#![deny(missing_docs)]

pub mod audience;
mod broker;
pub mod cache;
mod clock;
mod config;
pub mod doctor;
mod error;
mod exchange;
mod fetch;
pub mod files;
mod http;
mod identity;
pub mod logging;
mod platform;
mod registry;
mod retry;
pub mod rules;
mod secret;
pub mod token;
pub mod validity;

pub use broker::{ACR_USERNAME, AccessToken, Broker, Credential};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ACR_SCOPE, ARM_SCOPE, Env, Settings, SourceChoice, login_server_entry};
pub use error::{Error, Skipped};
pub use exchange::{Challenge, parse_challenge};
pub use identity::{IB_SCOPE_AUDIENCE, Identity, KUBERNETES_CA_FILE, probe_identity_binding};
pub use registry::{Cloud, LoginServer, NotAcr, normalize_host};
pub use secret::Secret;
