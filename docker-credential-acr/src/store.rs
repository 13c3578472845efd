//! Credentials given to `docker login` (admin user, repository-scoped tokens, identity tokens),
//! kept in one 0600 JSON file under `$XDG_CONFIG_HOME/docker-credential-acr/` (default
//! `~/.config/...`; `ACR_CREDENTIALS_FILE` moves it). Keys are normalised hosts, so `get` finds
//! them whatever form the client sends.

use crate::protocol::Credentials;
use acr_broker::{Env, Error, files};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VERSION: u32 = 1;
const MAX_FILE: usize = 4 * 1024 * 1024;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StoreFile {
    version: u32,
    credentials: BTreeMap<String, Credentials>,
}

/// The stored-credentials file.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store at its configured place, or `None` when no home folder is known.
    pub fn from_env(env: &Env) -> Option<Store> {
        let path = env
            .get("ACR_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                env.get("XDG_CONFIG_HOME")
                    .map(|x| PathBuf::from(x).join("docker-credential-acr/credentials.json"))
            })
            .or_else(|| {
                env.get("HOME").map(|h| {
                    PathBuf::from(h).join(".config/docker-credential-acr/credentials.json")
                })
            })?;
        Some(Store { path })
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

    /// The stored credentials for a server URL, if any.
    pub fn get(&self, server_url: &str) -> Result<Option<Credentials>, Error> {
        // Reading a missing file is the common case: one failed open.
        Ok(self.load()?.credentials.remove(&Store::key(server_url)))
    }

    /// Every stored credential.
    pub fn all(&self) -> Result<Vec<Credentials>, Error> {
        Ok(self.load()?.credentials.into_values().collect())
    }

    /// Adds or replaces the credentials for their server.
    pub fn put(&self, credentials: Credentials) -> Result<(), Error> {
        self.update(|f| {
            f.credentials
                .insert(Store::key(&credentials.server_url), credentials);
            true
        })
        .map(|_| ())
    }

    /// Removes the credentials of a server; returns whether there were any.
    pub fn remove(&self, server_url: &str) -> Result<bool, Error> {
        self.update(|f| f.credentials.remove(&Store::key(server_url)).is_some())
    }

    /// Read-modify-write under the file's lock; writes only when `change` says it changed.
    fn update(&self, change: impl FnOnce(&mut StoreFile) -> bool) -> Result<bool, Error> {
        if let Some(dir) = self.path.parent() {
            files::ensure_private_dir(dir)?;
        }
        let mut lock = self.path.as_os_str().to_owned();
        lock.push(".lock");
        let _guard = files::FileLock::acquire(Path::new(&lock), Duration::from_secs(10))?;
        let mut f = self.load()?;
        if !change(&mut f) {
            return Ok(false);
        }
        f.version = VERSION;
        let bytes = serde_json::to_vec_pretty(&f)
            .map_err(|e| Error::io("cannot encode", &self.path, std::io::Error::other(e)))?;
        files::write_atomic(&self.path, &bytes, 0o600)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acr_broker::Secret;

    #[test]
    fn round_trip_by_any_form_of_the_host() {
        let d = tempfile::tempdir().unwrap();
        let s = Store {
            path: d.path().join("c/credentials.json"),
        };
        s.put(Credentials {
            server_url: "https://MyReg.azurecr.io/v2/".into(),
            username: "admin".into(),
            secret: Secret::new("pw"),
        })
        .unwrap();
        let got = s.get("myreg.azurecr.io").unwrap().unwrap();
        assert_eq!(got.username, "admin");
        assert_eq!(got.secret.expose(), "pw");
        assert!(s.remove("myreg.azurecr.io:443").unwrap());
        assert!(!s.remove("myreg.azurecr.io").unwrap());
        assert!(s.get("myreg.azurecr.io").unwrap().is_none());
    }
}
