//! The OS keychain, through the `keyring` crate: macOS Keychain, Windows Credential Manager, or
//! the Secret Service (GNOME Keyring, KWallet) on Linux and BSD desktops.
//!
//! Items are named by service `docker-credential-acr` and the registry's normalised host as the
//! user, so `secret-tool lookup service docker-credential-acr username myregistry.azurecr.io`
//! finds one. Only `store`, `erase` and a `get` of a host whose stored credentials live here
//! touch the keychain; the cache-hit path never does.

use acr_broker::Secret;

/// The keychain service name of every item this helper writes.
pub const SERVICE: &str = "docker-credential-acr";

/// The keychain did not do what was asked; the message is safe to show (it never holds a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeychainError(String);

impl From<keyring::Error> for KeychainError {
    fn from(e: keyring::Error) -> Self {
        use keyring::Error as E;
        // Some variants carry the stored bytes: never format those.
        KeychainError(match e {
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

fn entry(key: &str) -> Result<keyring::Entry, KeychainError> {
    Ok(keyring::Entry::new(SERVICE, key)?)
}

/// Keeps `secret` as the item of `key`, replacing any earlier one.
pub fn set(key: &str, secret: &Secret) -> Result<(), KeychainError> {
    Ok(entry(key)?.set_password(secret.expose())?)
}

/// The secret of `key`, or `None` when the keychain has no such item.
pub fn get(key: &str) -> Result<Option<Secret>, KeychainError> {
    match entry(key)?.get_password() {
        Ok(p) => Ok(Some(Secret::new(p))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the item of `key`; returns whether there was one.
pub fn delete(key: &str) -> Result<bool, KeychainError> {
    match entry(key)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
