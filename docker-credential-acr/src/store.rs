//! Credentials given to `docker login` (admin user, repository-scoped tokens, identity tokens).
//!
//! One 0600 JSON file under `$XDG_CONFIG_HOME/docker-credential-acr/` (default `~/.config/...`;
//! `ACR_CREDENTIALS_FILE` moves it) lists every stored server and username. Each secret lives
//! either in that file or in the OS keychain, as the [`SecretStore`] the [`Store`] holds chose
//! when it was stored; [`Store::from_env`] picks that store once from `ACR_CREDENTIAL_STORE`:
//! `auto` (the default) uses the keychain when one answers and the file otherwise, `keychain`
//! insists on it, `file` keeps new secrets in the file ([`crate::secrets`]). Keys are normalised
//! hosts, so `get` finds them whatever form the client sends, and a `get` for a host with nothing
//! stored costs one failed open, whichever backend is configured.

use crate::keychain::{Keychain, KeychainOrFile};
use crate::protocol::Credentials;
pub use crate::secrets::Backend;
use crate::secrets::{InFile, SecretError, SecretStore, UnknownBackend};
use acr_broker::{Env, Error, Secret, files};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VERSION: u32 = 1;
const MAX_FILE: usize = 4 * 1024 * 1024;

/// Why stored credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The credentials file (or its folder or lock) failed.
    #[error(transparent)]
    File(#[from] Error),
    /// The OS keychain failed.
    #[error(
        "cannot {action} the credentials of {server} in the OS keychain: {source}; start or unlock the keychain, or set ACR_CREDENTIAL_STORE=file to keep secrets in a 0600 file"
    )]
    Keychain {
        /// What was being done: read, store or remove.
        action: &'static str,
        /// The registry.
        server: String,
        /// The keychain's reason.
        source: SecretError,
    },
    /// `ACR_CREDENTIAL_STORE` names no backend.
    #[error(transparent)]
    BadSetting(#[from] UnknownBackend),
}

/// One stored server as the file records it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stored {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    /// The secret when the file keeps it; absent when the OS keychain does.
    #[serde(rename = "Secret", default, skip_serializing_if = "Option::is_none")]
    secret: Option<Secret>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StoreFile {
    version: u32,
    credentials: BTreeMap<String, Stored>,
}

/// A stored server, without its secret: what `list` and `doctor` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The registry as `docker login` named it.
    pub server_url: String,
    /// The username given to `docker login`.
    pub username: String,
    /// Whether the secret is in the OS keychain (else in the file).
    pub in_keychain: bool,
}

/// The stored credentials: the file, and the secret store that keeps the secrets it does not.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    secrets: Box<dyn SecretStore>,
}

impl Store {
    /// The store at its configured place, its secrets where `ACR_CREDENTIAL_STORE` says, or
    /// `None` when no home folder is known. Nothing is opened yet.
    pub fn from_env(env: &Env) -> Result<Option<Store>, StoreError> {
        let backend = Backend::from_env(env)?;
        let path = env
            .get("ACR_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                env.config_home()
                    .map(|d| d.join("docker-credential-acr/credentials.json"))
            });
        // A Secret Service is expected where a session bus is configured.
        let keychain_expected = env.get("DBUS_SESSION_BUS_ADDRESS").is_some();
        Ok(path.map(|path| {
            let secrets: Box<dyn SecretStore> = match backend {
                Backend::Auto => Box::new(KeychainOrFile::new(path.clone(), keychain_expected)),
                Backend::Keychain => Box::new(Keychain),
                Backend::File => Box::new(InFile::with_earlier(Box::new(Keychain))),
            };
            Store::new(path, secrets)
        }))
    }

    /// The store of the credentials file at `path`, keeping secrets in `secrets`.
    pub fn new(path: PathBuf, secrets: Box<dyn SecretStore>) -> Store {
        Store { path, secrets }
    }

    /// The store of the credentials file at `path` that keeps every secret in it and never asks
    /// a keychain ([`InFile::alone`]): what tests and fuzzing use.
    pub fn in_file(path: PathBuf) -> Store {
        Store::new(path, Box::new(InFile::alone()))
    }

    /// The file that lists the stored servers.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backend new secrets go to.
    pub fn backend(&self) -> Backend {
        self.secrets.backend()
    }

    /// The key of a server URL: its normalised host, or the trimmed lowercase input when it is
    /// not a host name (such keys are only ever matched exactly).
    pub fn key(server_url: &str) -> String {
        acr_broker::normalize_host(server_url)
            .unwrap_or_else(|_| server_url.trim().to_ascii_lowercase())
    }

    fn load(&self) -> Result<StoreFile, Error> {
        match files::read_private(&self.path, MAX_FILE)? {
            None => Ok(StoreFile {
                version: VERSION,
                ..Default::default()
            }),
            Some(bytes) => {
                let f: StoreFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::io(
                        "cannot parse",
                        &self.path,
                        std::io::Error::other(format!("{e}; fix or remove the file")),
                    )
                })?;
                if f.version != VERSION {
                    return Err(Error::io(
                        "cannot use",
                        &self.path,
                        std::io::Error::other(format!("unknown version {}", f.version)),
                    ));
                }
                Ok(f)
            }
        }
    }

    /// The stored credentials for a server URL, if any. A keychain item that has gone missing
    /// (removed with the keychain's own tools) counts as nothing stored.
    pub fn get(&self, server_url: &str) -> Result<Option<Credentials>, StoreError> {
        // Reading a missing file is the common case: one failed open.
        let key = Store::key(server_url);
        let Some(stored) = self.load()?.credentials.remove(&key) else {
            return Ok(None);
        };
        let secret = match stored.secret {
            Some(secret) => secret,
            None => match self
                .secrets
                .get(&key)
                .map_err(|e| keychain_error("read", &key, e))?
            {
                Some(secret) => secret,
                None => {
                    log::warn!(
                        "{key}: the OS keychain no longer holds the credentials stored for it; run docker login again"
                    );
                    return Ok(None);
                }
            },
        };
        Ok(Some(Credentials {
            server_url: stored.server_url,
            username: stored.username,
            secret,
        }))
    }

    /// Every stored server, without secrets (the keychain is not asked).
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        Ok(self
            .load()?
            .credentials
            .into_values()
            .map(|s| Listed {
                server_url: s.server_url,
                username: s.username,
                in_keychain: s.secret.is_none(),
            })
            .collect())
    }

    /// Adds or replaces the credentials for their server, the secret going where the backend
    /// says. Returns whether it went to the keychain.
    pub fn put(&self, credentials: Credentials) -> Result<bool, StoreError> {
        let key = Store::key(&credentials.server_url);
        self.update(|f| {
            let in_keychain = self
                .secrets
                .keep(&key, &credentials.secret)
                .map_err(|e| keychain_error("store", &key, e))?;
            let Credentials {
                server_url,
                username,
                secret,
            } = credentials;
            let stored = Stored {
                server_url,
                username,
                secret: (!in_keychain).then_some(secret),
            };
            let old = f.credentials.insert(key.clone(), stored);
            if !in_keychain && old.is_some_and(|o| o.secret.is_none()) {
                // The new secret is in the file: the keychain's older one must not outlive it.
                if let Err(e) = self.secrets.delete(&key) {
                    log::warn!("{key}: cannot remove the older secret from the OS keychain: {e}");
                }
            }
            Ok((in_keychain, true))
        })
    }

    /// Removes the credentials of a server, from the keychain too; returns whether there were
    /// any. When the keychain cannot remove its item, the entry stays so `erase` can be retried.
    pub fn remove(&self, server_url: &str) -> Result<bool, StoreError> {
        let key = Store::key(server_url);
        self.update(|f| {
            let Some(old) = f.credentials.remove(&key) else {
                return Ok((false, false));
            };
            if old.secret.is_none() {
                self.secrets
                    .delete(&key)
                    .map_err(|e| keychain_error("remove", &key, e))?;
            }
            Ok((true, true))
        })
    }

    /// Read-modify-write under the file's lock. `change` returns its result and whether it
    /// changed the file, which is then written.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut StoreFile) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(dir) = self.path.parent() {
            files::ensure_private_dir(dir)?;
        }
        let mut lock = self.path.as_os_str().to_owned();
        lock.push(".lock");
        let _guard = files::FileLock::acquire(Path::new(&lock), Duration::from_secs(10))?;
        let mut f = self.load()?;
        let (result, changed) = change(&mut f)?;
        if changed {
            f.version = VERSION;
            let bytes = serde_json::to_vec_pretty(&f)
                .map_err(|e| Error::io("cannot encode", &self.path, std::io::Error::other(e)))?;
            files::write_atomic(&self.path, &bytes, 0o600)?;
        }
        Ok(result)
    }
}

fn keychain_error(action: &'static str, server: &str, source: SecretError) -> StoreError {
    StoreError::Keychain {
        action,
        server: server.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_store(d: &tempfile::TempDir) -> Store {
        Store::in_file(d.path().join("c/credentials.json"))
    }

    #[test]
    fn round_trip_by_any_form_of_the_host() {
        let d = tempfile::tempdir().unwrap();
        let s = file_store(&d);
        assert!(
            !s.put(Credentials {
                server_url: "https://MyReg.azurecr.io/v2/".into(),
                username: "admin".into(),
                secret: Secret::new("pw"),
            })
            .unwrap()
        );
        let got = s.get("myreg.azurecr.io").unwrap().unwrap();
        assert_eq!(got.username, "admin");
        assert_eq!(got.secret.expose(), "pw");
        let listed = s.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].in_keychain);
        assert!(s.remove("myreg.azurecr.io:443").unwrap());
        assert!(!s.remove("myreg.azurecr.io").unwrap());
        assert!(s.get("myreg.azurecr.io").unwrap().is_none());
    }

    #[test]
    fn removing_nothing_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let s = file_store(&d);
        assert!(!s.remove("myreg.azurecr.io").unwrap());
        assert!(!s.path().exists());
    }
}
