//! Where the secrets of stored credentials are kept: the [`SecretStore`] trait, the backend
//! names of `ACR_CREDENTIAL_STORE`, and the in-file storage.
//!
//! The credentials file ([`crate::store`]) always lists the servers; a secret sits in that file,
//! or in a secret store that keeps it by key (the normalised host). [`crate::store::Store`]
//! holds one store, chosen once: the OS keychain ([`crate::keychain::Keychain`]), the keychain
//! with a fallback to the file ([`crate::keychain::KeychainOrFile`], `auto`), or [`InFile`].
//! Tests and fuzzing pass [`InFile::alone`], which never reaches any keychain.

use acr_broker::{Env, Secret};
use std::fmt;

/// Where `store` keeps the secrets it is given (`ACR_CREDENTIAL_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The OS keychain when one answers, else the file: the default.
    Auto,
    /// The OS keychain only: `store` fails when none answers.
    Keychain,
    /// The 0600 file only.
    File,
}

impl Backend {
    /// The backend named by `ACR_CREDENTIAL_STORE` (unset: [`Backend::Auto`]).
    pub fn from_env(env: &Env) -> Result<Backend, UnknownBackend> {
        match env.get("ACR_CREDENTIAL_STORE").map(str::trim) {
            None | Some("" | "auto") => Ok(Backend::Auto),
            Some("keychain" | "keyring") => Ok(Backend::Keychain),
            Some("file") => Ok(Backend::File),
            Some(other) => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// `ACR_CREDENTIAL_STORE` names no backend.
#[derive(Debug, thiserror::Error)]
#[error("ACR_CREDENTIAL_STORE={0:?} is not one of auto, keychain, file")]
pub struct UnknownBackend(String);

/// A secret store did not do what was asked; the message is safe to show (it never holds a
/// secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

impl SecretError {
    /// The error with this message, which must hold no secret.
    pub(crate) fn new(message: String) -> SecretError {
        SecretError(message)
    }
}

/// A place for the secrets of stored credentials, by key (a normalised host).
///
/// A secret the store does not keep itself stays in the credentials file: [`SecretStore::keep`]
/// says which, and the file records it.
pub trait SecretStore: fmt::Debug {
    /// The backend this store is, as `doctor` names it.
    fn backend(&self) -> Backend;
    /// Keeps `secret` as the item of `key`, replacing any earlier one. Returns whether the store
    /// kept it; `false` means the credentials file must.
    fn keep(&self, key: &str, secret: &Secret) -> Result<bool, SecretError>;
    /// The secret this store keeps for `key`, or `None` when it has none.
    fn get(&self, key: &str) -> Result<Option<Secret>, SecretError>;
    /// Removes the item of `key`; returns whether there was one.
    fn delete(&self, key: &str) -> Result<bool, SecretError>;
}

/// The in-file storage: every new secret stays in the credentials file. Secrets stored earlier
/// in another store (the keychain, before `ACR_CREDENTIAL_STORE=file`) are still read and
/// removed there.
#[derive(Debug)]
pub struct InFile {
    earlier: Option<Box<dyn SecretStore>>,
}

impl InFile {
    /// The file, reading and removing older secrets in `earlier`.
    pub fn with_earlier(earlier: Box<dyn SecretStore>) -> InFile {
        InFile {
            earlier: Some(earlier),
        }
    }

    /// The file and nothing else: no keychain is ever asked (tests, fuzzing).
    pub fn alone() -> InFile {
        InFile { earlier: None }
    }
}

impl SecretStore for InFile {
    fn backend(&self) -> Backend {
        Backend::File
    }

    fn keep(&self, _key: &str, _secret: &Secret) -> Result<bool, SecretError> {
        Ok(false)
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, SecretError> {
        match &self.earlier {
            Some(earlier) => earlier.get(key),
            None => Ok(None),
        }
    }

    fn delete(&self, key: &str) -> Result<bool, SecretError> {
        match &self.earlier {
            Some(earlier) => earlier.delete(key),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_setting_is_checked() {
        let env = |v: &str| Env::from_pairs([("ACR_CREDENTIAL_STORE", v)]);
        assert_eq!(Backend::from_env(&env("file")).unwrap(), Backend::File);
        assert_eq!(
            Backend::from_env(&env("keychain")).unwrap(),
            Backend::Keychain
        );
        assert_eq!(Backend::from_env(&env(" auto ")).unwrap(), Backend::Auto);
        assert_eq!(
            Backend::from_env(&Env::from_pairs::<&str, &str>([])).unwrap(),
            Backend::Auto
        );
        let e = Backend::from_env(&env("vault")).unwrap_err().to_string();
        assert_eq!(
            e,
            "ACR_CREDENTIAL_STORE=\"vault\" is not one of auto, keychain, file"
        );
    }

    #[test]
    fn the_file_alone_keeps_nothing_itself_and_asks_no_one() {
        let f = InFile::alone();
        assert_eq!(f.backend(), Backend::File);
        assert!(!f.keep("h.example", &Secret::new("s")).unwrap());
        assert!(f.get("h.example").unwrap().is_none());
        assert!(!f.delete("h.example").unwrap());
    }
}
