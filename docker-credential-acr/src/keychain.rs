//! The OS keychain, through the `keyring` crate: on Linux (what is built and tested), the Secret
//! Service of the desktop session (GNOME Keyring, KWallet).
//!
//! Items are named by service `docker-credential-acr` and the registry's normalised host as the
//! user, so `secret-tool lookup service docker-credential-acr username myregistry.azurecr.io`
//! finds one. Only `store`, `erase` and a `get` of a host whose stored credentials live here
//! touch the keychain; the cache-hit path never does.
//!
//! Two [`SecretStore`]s: [`Keychain`] (`ACR_CREDENTIAL_STORE=keychain`) and [`KeychainOrFile`]
//! (`auto`, the default).

use crate::secrets::{Backend, SecretError, SecretStore};
use acr_broker::Secret;
use std::path::PathBuf;

/// The keychain service name of every item this helper writes.
pub const SERVICE: &str = "docker-credential-acr";

impl From<keyring::Error> for SecretError {
    fn from(e: keyring::Error) -> Self {
        use keyring::Error as E;
        // Some variants carry the stored bytes: never format those.
        SecretError::new(match e {
            E::BadEncoding(_) | E::BadDataFormat(..) => {
                "the stored secret is not valid text".into()
            }
            // The store's own start-up error says why (no session bus, no Secret Service…).
            E::NoDefaultStore => match keyring::Entry::store_status() {
                Err(cause) => format!("no OS keychain answers ({cause})"),
                Ok(()) => "no OS keychain answers".into(),
            },
            other => other.to_string(),
        })
    }
}

/// The OS keychain: `keep` fails when none answers (`ACR_CREDENTIAL_STORE=keychain`). Nothing
/// is opened until an item is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Keychain;

fn entry(key: &str) -> Result<keyring::Entry, SecretError> {
    Ok(keyring::Entry::new(SERVICE, key)?)
}

impl SecretStore for Keychain {
    fn backend(&self) -> Backend {
        Backend::Keychain
    }

    fn keep(&self, key: &str, secret: &Secret) -> Result<bool, SecretError> {
        entry(key)?.set_password(secret.expose())?;
        Ok(true)
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, SecretError> {
        match entry(key)?.get_password() {
            Ok(p) => Ok(Some(Secret::new(p))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, key: &str) -> Result<bool, SecretError> {
        match entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The OS keychain when it answers, else the credentials file, with a note saying so
/// (`ACR_CREDENTIAL_STORE=auto`, the default).
#[derive(Debug)]
pub struct KeychainOrFile {
    /// The credentials file, named in the note.
    file: PathBuf,
    /// Whether a keychain is expected to answer (a session bus is configured, or not Linux): a
    /// fallback to the file is then worth a warning rather than a note.
    keychain_expected: bool,
}

impl KeychainOrFile {
    /// The keychain, falling back to `file`.
    pub fn new(file: PathBuf, keychain_expected: bool) -> KeychainOrFile {
        KeychainOrFile {
            file,
            keychain_expected,
        }
    }
}

impl SecretStore for KeychainOrFile {
    fn backend(&self) -> Backend {
        Backend::Auto
    }

    fn keep(&self, key: &str, secret: &Secret) -> Result<bool, SecretError> {
        match Keychain.keep(key, secret) {
            Ok(kept) => Ok(kept),
            Err(e) => {
                let note = format!(
                    "{key}: keeping the secret in {} (0600): {e}",
                    self.file.display()
                );
                if self.keychain_expected {
                    log::warn!("{note}");
                } else {
                    log::info!("{note}");
                }
                Ok(false)
            }
        }
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, SecretError> {
        Keychain.get(key)
    }

    fn delete(&self, key: &str) -> Result<bool, SecretError> {
        Keychain.delete(key)
    }
}
