//! The token cache shared by every process of one user (or the kubelet's plugin runs).
//!
//! One folder (0700) holds, per (login server, identity), a refresh-token entry `reg-<hash>.json`,
//! and per (identity, scope) an Entra token entry `entra-<hash>.json`, each 0600 and replaced
//! atomically. File names are hashes of non-secret fingerprints. Readers take no lock: a rename is
//! atomic, so they see a whole old entry or a whole new one. Writers serialise on `<name>.lock`
//! and re-read before fetching, so N cold processes make one fetch. Anything unreadable, of
//! another version, or for another key is a miss, never an error.

use crate::error::Error;
use crate::files::{self, FileLock};
use crate::secret::Secret;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Format version of entry files; entries of another version are misses.
pub const CACHE_VERSION: u32 = 1;
/// Largest entry file read.
const MAX_ENTRY: usize = 64 * 1024;
/// Temp files older than this were left by killed writers (a live one's lasts milliseconds).
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// A cached ACR refresh token for one (login server, identity).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshEntry {
    /// Format version.
    pub v: u32,
    /// The login server it is for.
    pub login_server: String,
    /// Non-secret description of the identity, for `list` and `doctor`.
    pub identity: String,
    /// The ACR refresh token.
    pub refresh_token: Secret,
    /// When the broker got it (Unix seconds).
    pub obtained_at: i64,
    /// Its `exp` (Unix seconds).
    pub expires_at: i64,
    /// Its lifetime as issued (`exp - iat`), seconds.
    pub lifetime: i64,
}

/// Seconds before `exp` at which a token is no longer handed out: it must stay valid for the
/// client's whole pull.
pub const EXPIRY_MARGIN: i64 = 60;

impl RefreshEntry {
    /// When to start refreshing: when about a third of the lifetime remains.
    pub fn refresh_at(&self) -> i64 {
        self.expires_at
            .saturating_sub(self.lifetime.clamp(0, crate::token::MAX_LIFETIME) / 3)
    }

    /// Whether the token may still be handed out at `now`.
    pub fn usable_at(&self, now: i64) -> bool {
        // An entry that claims more life than any token has (planted, or from a broken clock) is
        // not used.
        now < self.expires_at.saturating_sub(EXPIRY_MARGIN)
            && self.expires_at.saturating_sub(now) <= crate::token::MAX_LIFETIME
    }
}

/// A cached Entra access token for one (identity, scope).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntraEntry {
    /// Format version.
    pub v: u32,
    /// The access token.
    pub token: Secret,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
}

/// Seconds before expiry at which a cached Entra token is no longer used.
pub const ENTRA_MARGIN: i64 = 300;

/// The cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir`; nothing is touched until used.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the refresh entry for `key`.
    pub fn refresh_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("reg-{key}.json"))
    }

    /// Path of the Entra entry for `key`.
    pub fn entra_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("entra-{key}.json"))
    }

    /// Whether the folder may be read: it exists, is not a symlink and is the user's own. A
    /// planted folder is not trusted even for reading (it could hand out someone else's token).
    pub fn readable(&self) -> bool {
        match files::check_private_dir(&self.dir) {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                log::warn!("not reading the cache: {e}");
                false
            }
        }
    }

    /// Reads an entry; anything but a well-formed entry of this version is `None`.
    pub fn read<T: DeserializeOwned + Versioned>(&self, path: &Path) -> Option<T> {
        let bytes = match files::read_private(path, MAX_ENTRY) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                log::debug!("cache miss: {e}");
                return None;
            }
        };
        match serde_json::from_slice::<T>(&bytes) {
            Ok(t) if t.version() == CACHE_VERSION => Some(t),
            Ok(_) => {
                log::debug!("cache miss: {} has another format version", path.display());
                None
            }
            Err(e) => {
                log::debug!("cache miss: {} is not a valid entry: {e}", path.display());
                None
            }
        }
    }

    /// Makes sure the folder exists and is private.
    pub fn prepare(&self) -> Result<(), Error> {
        files::ensure_private_dir(&self.dir)
    }

    /// Writes an entry atomically, 0600, then sweeps temp files that killed writers left behind
    /// (older than a minute: writes happen on the cold path only, so the hot path never lists
    /// the folder).
    pub fn write<T: Serialize>(&self, path: &Path, entry: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(entry)
            .map_err(|e| Error::io("cannot encode", path, std::io::Error::other(e)))?;
        files::write_atomic(path, &bytes, 0o600)?;
        let swept = files::remove_stale_temps(&self.dir, STALE_TEMP_AGE);
        if swept > 0 {
            log::debug!("removed {swept} temp file(s) left by killed writers");
        }
        Ok(())
    }

    /// Takes the writer lock that guards `entry_path`.
    pub fn lock(&self, entry_path: &Path, wait: Duration) -> Result<FileLock, Error> {
        let mut lock = entry_path.as_os_str().to_owned();
        lock.push(".lock");
        FileLock::acquire(Path::new(&lock), wait)
    }

    /// Every refresh entry in the folder, with its path.
    pub fn refresh_entries(&self) -> Vec<(PathBuf, RefreshEntry)> {
        if !self.readable() {
            return Vec::new();
        }
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<_> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("reg-") && n.ends_with(".json"))
            })
            .filter_map(|p| self.read::<RefreshEntry>(&p).map(|e| (p, e)))
            .collect();
        out.sort_by(|a, b| a.1.login_server.cmp(&b.1.login_server));
        out
    }
}

/// Entries that carry a format version.
pub trait Versioned {
    /// The entry's format version.
    fn version(&self) -> u32;
}

impl Versioned for RefreshEntry {
    fn version(&self) -> u32 {
        self.v
    }
}

impl Versioned for EntraEntry {
    fn version(&self) -> u32 {
        self.v
    }
}

/// A cache key: the first 40 hex digits of SHA-256 over the parts, separated by newlines.
pub fn key(parts: &[&str]) -> String {
    let joined = parts.join("\n");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, joined.as_bytes());
    digest.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(login: &str) -> RefreshEntry {
        RefreshEntry {
            v: CACHE_VERSION,
            login_server: login.into(),
            identity: "id".into(),
            refresh_token: Secret::new("rt"),
            obtained_at: 1000,
            expires_at: 1000 + 3 * 3600,
            lifetime: 3 * 3600,
        }
    }

    #[test]
    fn refresh_starts_when_a_third_remains() {
        let e = entry("a");
        assert_eq!(e.refresh_at(), 1000 + 2 * 3600);
        assert!(e.usable_at(1000 + 3 * 3600 - 61));
        assert!(!e.usable_at(1000 + 3 * 3600 - 60));
    }

    #[test]
    fn garbage_truncated_empty_and_other_versions_are_misses() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path());
        let p = c.refresh_path("k");
        c.write(&p, &entry("a")).unwrap();
        assert!(c.read::<RefreshEntry>(&p).is_some());
        let good = std::fs::read(&p).unwrap();
        for bad in [&b""[..], b"garbage", &good[..good.len() / 2]] {
            std::fs::write(&p, bad).unwrap();
            assert!(c.read::<RefreshEntry>(&p).is_none());
        }
        let mut other = entry("a");
        other.v = 99;
        c.write(&p, &other).unwrap();
        assert!(c.read::<RefreshEntry>(&p).is_none());
    }

    #[test]
    fn writes_sweep_temp_files_that_killed_writers_left() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path());
        let old_tmp = d.path().join(".reg-x.json.123.abc.tmp");
        let fresh_tmp = d.path().join(".reg-y.json.456.def.tmp");
        let old_other = d.path().join("not-ours.tmp");
        for p in [&old_tmp, &fresh_tmp, &old_other] {
            std::fs::write(p, b"{").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(600);
        for p in [&old_tmp, &old_other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        c.write(&c.refresh_path("k"), &entry("a")).unwrap();
        assert!(!old_tmp.exists(), "a stale temp file survived a write");
        assert!(fresh_tmp.exists(), "a live writer's temp file was removed");
        assert!(
            old_other.exists(),
            "a file not named like our temps was removed"
        );
        assert!(c.read::<RefreshEntry>(&c.refresh_path("k")).is_some());
    }

    #[test]
    fn entries_are_listed_and_files_are_private() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path().join("cache"));
        c.prepare().unwrap();
        c.write(&c.refresh_path("b"), &entry("b.azurecr.io"))
            .unwrap();
        c.write(&c.refresh_path("a"), &entry("a.azurecr.io"))
            .unwrap();
        let list: Vec<_> = c
            .refresh_entries()
            .into_iter()
            .map(|(_, e)| e.login_server)
            .collect();
        assert_eq!(list, vec!["a.azurecr.io", "b.azurecr.io"]);
        assert_eq!(
            std::fs::metadata(c.refresh_path("a")).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::metadata(c.dir()).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(key(&["a", "b"]), key(&["a", "b"]));
        assert_ne!(key(&["a", "b"]), key(&["b", "a"]));
        assert_eq!(key(&["a"]).len(), 40);
    }
}
