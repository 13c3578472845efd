//! The token cache shared by every process of one user (or the kubelet's plugin runs).
//!
//! One folder holds, per (login server, identity), a refresh-token entry `reg-<hash>.json`,
//! and per (identity, scope) an Entra token entry `entra-<hash>.json`, each 0600 and replaced
//! atomically. File names are hashes of non-secret fingerprints. Readers take no lock: a rename is
//! atomic, so they see a whole old entry or a whole new one. Writers serialise on `<name>.lock`
//! and re-read before fetching, so N cold processes make one fetch. Anything unreadable, of
//! another version, or for another key is a miss, never an error.
//!
//! The folder is created 0700 when missing; an existing one is used as it is, unless it is not
//! the user's own real folder or group or others can write to it (then it is refused, and
//! tokens are fetched but not cached, with a warning saying how to fix it).
//!
//! # Tidying
//!
//! The folder would only grow (the kubelet provider makes an entry per service account and
//! registry, and every entry a lock file), so each write, on the cold path only, tidies it in
//! one listing of the folder, touching only regular files of the user named as this module names
//! them (`reg-`/`entra-` + 40 hex digits + `.json`, their `.lock`, their temp files):
//! - temp files of entries older than a minute (left by writers killed between create and
//!   rename), on every write;
//! - at most once per 10 minutes (the mtime of the marker file `.pruned`, touched when a pass
//!   starts so concurrent writers skip it), entries whose token expired more than an hour ago,
//!   entries that cannot be read as one and are older than a day (never one written in the last
//!   hour, whatever it says), and lock files whose entry is gone, that are older than a minute
//!   and that no process holds (each is locked, non-blocking, before it is removed; one opened
//!   but not yet locked by another process at that moment costs at worst a second fetch, as
//!   locks only save fetches).
//!
//! A write removes at most 64 files; a pass that reaches that bound removes the marker so that
//! the next write goes on.

use crate::audience::Audience;
use crate::error::Error;
use crate::files::{self, FileLock};
use crate::platform;
use crate::secret::Secret;
use crate::validity::MinValidity;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Format version of entry files; entries of another version are misses.
pub const CACHE_VERSION: u32 = 1;
/// Largest entry file read.
const MAX_ENTRY: usize = 64 * 1024;
/// Temp files older than this were left by killed writers (a live one's lasts milliseconds).
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);
/// How a refused folder's message says to choose another one.
const ELSEWHERE: &str = "choose another folder with ACR_CACHE_DIR / --cache-dir";
/// Files one write removes at most.
const MAX_REMOVALS: usize = 64;
/// Entries are looked at for expiry at most this often (the marker's age).
const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);
/// The marker file whose mtime is when entries were last looked at.
const PRUNE_MARKER: &str = ".pruned";
/// An entry whose token expired longer ago than this (seconds) is removed.
const EXPIRED_FOR: i64 = 3600;
/// No entry written more recently than this is removed, whatever it says.
const ENTRY_MIN_AGE: Duration = Duration::from_secs(3600);
/// An entry that cannot be read as one is removed when older than this.
const UNREADABLE_AGE: Duration = Duration::from_secs(24 * 3600);
/// A lock file whose entry is gone is removed when older than this (and not held).
const STALE_LOCK_AGE: Duration = Duration::from_secs(60);

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
    /// The audience of the Entra token the registry took for it: the next refresh asks for this
    /// one first. Absent in entries of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
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

    /// When to start refreshing under `min`: when a third of the lifetime remains, or when less
    /// than the minimum (as a token of this lifetime can be held to) would remain, if sooner.
    /// Plain arithmetic on the entry's fields: the cache-hit path reads nothing more for it.
    pub fn refresh_at_for(&self, min: MinValidity) -> i64 {
        self.refresh_at()
            .min(self.expires_at.saturating_sub(min.effective(self.lifetime)))
    }

    /// Whether the token has at least the minimum left at `now` (as a token of this lifetime can
    /// be held to).
    pub fn meets(&self, min: MinValidity, now: i64) -> bool {
        self.expires_at.saturating_sub(now) >= min.effective(self.lifetime)
    }

    /// Whether the token may still be handed out at `now`.
    pub fn usable_at(&self, now: i64) -> bool {
        // An entry that claims more life than any token has (planted, or from a broken clock) is
        // not used.
        now < self.expires_at.saturating_sub(EXPIRY_MARGIN)
            && crate::token::within_max_lifetime(self.expires_at, now)
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

    /// Whether the folder may be read: it exists, is not a symlink, is the user's own and nobody
    /// else can write to it. A planted folder, or one where others can plant entries, is not
    /// trusted even for reading (it could hand out someone else's token).
    ///
    /// A refusal is logged at debug level only: a miss goes on to fetch, and [`Cache::prepare`]'s
    /// error, the same one, is then the one warning the user sees.
    pub fn readable(&self) -> bool {
        self.check_readable(log::Level::Debug)
    }

    /// [`Cache::readable`], logging a refusal at `level`.
    fn check_readable(&self, level: log::Level) -> bool {
        match files::check_dir(&self.dir, ELSEWHERE) {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                log::log!(level, "not reading the cache: {e}");
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

    /// Makes sure the folder exists (created 0700 when missing) and may be used; an existing
    /// folder is never changed (see [`crate::files::ensure_private_dir`]).
    pub fn prepare(&self) -> Result<(), Error> {
        files::ensure_dir(&self.dir, ELSEWHERE)
    }

    /// Writes an entry atomically, 0600, then tidies the folder (see the module's doc; writes
    /// happen on the cold path only, so the hot path never lists the folder).
    pub fn write<T: Serialize>(&self, path: &Path, entry: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(entry)
            .map_err(|e| Error::io("cannot encode", path, std::io::Error::other(e)))?;
        files::write_atomic(path, &bytes, 0o600)?;
        let t = self.tidy(path);
        if t != Tidied::default() {
            log::debug!(
                "cache tidied: {} temp file(s) of killed writers, {} expired or unreadable entries, {} unused lock file(s) removed",
                t.temps,
                t.entries,
                t.locks
            );
        }
        Ok(())
    }

    /// Removes what the module's doc says, except `written`. Best effort: whatever cannot be
    /// looked at or removed is left.
    fn tidy(&self, written: &Path) -> Tidied {
        let mut done = Tidied::default();
        // Only in the folder this cache may use: the user's own, that nobody else can write.
        if !matches!(files::check_dir(&self.dir, ELSEWHERE), Ok(Some(_))) {
            return done;
        }
        let (Ok(uid), Ok(listing)) = (platform::current_user(), fs::read_dir(&self.dir)) else {
            return done;
        };
        let now = SystemTime::now();
        let prune = self.prune_due(now);
        let mut budget = MAX_REMOVALS;
        let mut locks = Vec::new();
        for item in listing.filter_map(Result::ok) {
            if budget == 0 {
                break;
            }
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let kind = if files::temp_target(name).is_some_and(is_entry_name) {
                Kind::Temp
            } else if prune && is_entry_name(name) {
                Kind::Entry
            } else if prune && name.strip_suffix(".lock").is_some_and(is_entry_name) {
                Kind::Lock
            } else {
                continue;
            };
            let path = item.path();
            // `DirEntry::metadata` does not follow a symlink: links are never touched.
            let Ok(meta) = item.metadata() else {
                continue;
            };
            if path == written
                || !meta.file_type().is_file()
                || platform::owner(&path, &meta).ok().as_ref() != Some(&uid)
            {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            let removed = match kind {
                Kind::Temp => age > STALE_TEMP_AGE && remove(&path, &mut done.temps),
                Kind::Entry => {
                    expired(&path, age, now) && remove_unused_entry(&path, &mut done.entries)
                }
                Kind::Lock => {
                    locks.push((path, age));
                    false
                }
            };
            if removed {
                budget -= 1;
            }
        }
        // Locks last, so those of entries removed above go in the same pass.
        for (path, age) in locks {
            if budget == 0 {
                break;
            }
            if age > STALE_LOCK_AGE && remove_unused_lock(&path) {
                done.locks += 1;
                budget -= 1;
            }
        }
        if prune && budget == 0 {
            // More may be left: let the next write go on.
            let _ = fs::remove_file(self.dir.join(PRUNE_MARKER));
        }
        done
    }

    /// Whether entries are due to be looked at; if so, claims the pass by touching the marker.
    fn prune_due(&self, now: SystemTime) -> bool {
        let marker = self.dir.join(PRUNE_MARKER);
        if let Ok(meta) = fs::symlink_metadata(&marker) {
            let recent = meta
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age < PRUNE_EVERY);
            if recent {
                return false;
            }
        }
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(false);
        platform::create_mode(&mut options, 0o600);
        if let Ok(f) = platform::no_follow(&mut options).open(&marker) {
            let _ = f.set_modified(now);
        }
        true
    }

    /// Takes the writer lock that guards `entry_path`.
    pub fn lock(&self, entry_path: &Path, wait: Duration) -> Result<FileLock, Error> {
        let mut lock = entry_path.as_os_str().to_owned();
        lock.push(".lock");
        FileLock::acquire(Path::new(&lock), wait)
    }

    /// Every refresh entry in the folder, with its path.
    pub fn refresh_entries(&self) -> Vec<(PathBuf, RefreshEntry)> {
        // Nothing else says why a listing is empty: warn.
        if !self.check_readable(log::Level::Warn) {
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

/// What one tidying removed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tidied {
    temps: usize,
    entries: usize,
    locks: usize,
}

/// What a file of the folder is, by its name.
enum Kind {
    Temp,
    Entry,
    Lock,
}

/// Whether `name` is an entry's file name: `reg-` or `entra-`, a key, `.json`.
fn is_entry_name(name: &str) -> bool {
    let Some(key) = name
        .strip_suffix(".json")
        .and_then(|n| n.strip_prefix("reg-").or_else(|| n.strip_prefix("entra-")))
    else {
        return false;
    };
    key.len() == 40 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether the entry at `path`, `age` old, may go: its token expired over an hour ago, or it
/// cannot be read as an entry and is over a day old. Never one younger than an hour.
fn expired(path: &Path, age: Duration, now: SystemTime) -> bool {
    #[derive(Deserialize)]
    struct Expiry {
        expires_at: i64,
    }
    if age < ENTRY_MIN_AGE {
        return false;
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    match files::read_private(path, MAX_ENTRY) {
        Ok(Some(bytes)) => match serde_json::from_slice::<Expiry>(&bytes) {
            Ok(e) => e.expires_at < now.saturating_sub(EXPIRED_FOR),
            Err(_) => age > UNREADABLE_AGE,
        },
        Ok(None) => false,
        Err(_) => age > UNREADABLE_AGE,
    }
}

/// Removes `path`, counting it in `count`.
fn remove(path: &Path, count: &mut usize) -> bool {
    let ok = fs::remove_file(path).is_ok();
    if ok {
        *count += 1;
    }
    ok
}

/// Removes the entry at `path` unless a process holds its lock (it may be writing a fresh entry
/// there right now), counting it in `count`. Writers take the lock before they write, so an
/// entry without a lock file is not being written.
fn remove_unused_entry(path: &Path, count: &mut usize) -> bool {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let _held = match platform::no_follow(OpenOptions::new().read(true)).open(&lock) {
        Ok(file) => match file.try_lock() {
            Ok(()) => Some(file),
            Err(_) => return false,
        },
        Err(_) => None,
    };
    remove(path, count)
}

/// Removes the lock file at `path` when its entry is gone and no process holds it: it is locked
/// (without waiting) first, and removed while held.
fn remove_unused_lock(path: &Path) -> bool {
    let entry = path.with_extension("");
    let entry_exists = || fs::symlink_metadata(&entry).is_ok();
    if entry_exists() {
        return false;
    }
    let Ok(file) = platform::no_follow(OpenOptions::new().read(true)).open(path) else {
        return false;
    };
    if file.try_lock().is_err() || entry_exists() {
        return false;
    }
    fs::remove_file(path).is_ok()
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let joined = parts.join("\n");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, joined.as_bytes());
    // Every hit computes one: digits from a table, not one `format!` per byte.
    let mut key = String::with_capacity(40);
    for b in &digest.as_ref()[..20] {
        key.push(char::from(HEX[usize::from(b >> 4)]));
        key.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    key
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
            audience: None,
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

    /// Sets `p`'s mtime `ago` in the past.
    fn age(p: &Path, ago: Duration) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    /// A temp file name as a writer of `target` killed before its rename leaves.
    fn temp_of(target: &str) -> String {
        format!(".{target}.4242.0123456789abcdef0123456789abcdef.tmp")
    }

    fn private_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), platform::permissions(0o700)).unwrap();
        d
    }

    #[test]
    fn writes_sweep_temp_files_that_killed_writers_left() {
        let d = private_dir();
        let c = Cache::new(d.path());
        let old_tmp = d.path().join(temp_of(&format!("reg-{}.json", key(&["x"]))));
        let fresh_tmp = d
            .path()
            .join(temp_of(&format!("entra-{}.json", key(&["y"]))));
        let old_other = d.path().join("not-ours.tmp");
        for p in [&old_tmp, &fresh_tmp, &old_other] {
            std::fs::write(p, b"{").unwrap();
        }
        for p in [&old_tmp, &old_other] {
            age(p, Duration::from_secs(600));
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
    fn the_sweep_removes_only_our_own_temp_names_in_a_folder_of_ours() {
        let d = private_dir();
        let c = Cache::new(d.path());
        let entry_name = format!("reg-{}.json", key(&["x"]));
        let ours = d.path().join(temp_of(&entry_name));
        let others = [
            ".backup.tmp".to_string(),
            ".bashrc.swp.tmp".to_string(),
            temp_of("credentials.json"),
            format!(".{entry_name}.1.abc.tmp"),
        ];
        for n in others
            .iter()
            .map(String::as_str)
            .chain([temp_of(&entry_name).as_str()])
        {
            let p = d.path().join(n);
            std::fs::write(&p, b"mine").unwrap();
            age(&p, Duration::from_secs(3600));
        }
        // A link named like our temps: neither it nor its target is touched.
        let target = d.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = d
            .path()
            .join(temp_of(&format!("entra-{}.json", key(&["l"]))));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        c.write(&c.refresh_path(&key(&["k"])), &entry("a")).unwrap();
        assert!(!ours.exists());
        for n in &others {
            assert!(d.path().join(n).exists(), "{n} was removed");
        }
        assert!(std::fs::symlink_metadata(&link).is_ok() && target.exists());

        // In a folder that others can write, nothing is swept (nor read as an entry).
        std::fs::write(&ours, b"{").unwrap();
        age(&ours, Duration::from_secs(3600));
        std::fs::set_permissions(d.path(), platform::permissions(0o1777)).unwrap();
        c.write(&c.refresh_path(&key(&["k"])), &entry("a")).unwrap();
        assert!(ours.exists(), "swept in a folder that is not ours alone");
        assert!(!c.readable());
    }

    #[test]
    fn a_folder_others_can_write_is_refused_and_kept_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, platform::permissions(0o1777)).unwrap();
        let c = Cache::new(&dir);
        let e = c.prepare().unwrap_err().to_string();
        assert!(
            e.contains(&format!("chmod go-w {}", dir.display()))
                && e.contains("ACR_CACHE_DIR / --cache-dir")
                && !e.contains('\n'),
            "{e}"
        );
        assert!(!c.readable());
        assert_eq!(
            platform::permission_bits(&std::fs::metadata(&dir).unwrap()),
            0o1777
        );
    }

    fn unix_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn writes_remove_expired_entries_and_unused_locks_at_most_64_at_a_time() {
        let d = private_dir();
        let c = Cache::new(d.path());
        let now = unix_now();
        let long_ago = Duration::from_secs(5 * 3600);
        let mut expired_paths = Vec::new();
        for i in 0..100 {
            let p = c.refresh_path(&key(&["expired", &i.to_string()]));
            let mut e = entry("gone.azurecr.io");
            e.expires_at = now - 2 * 3600;
            std::fs::write(&p, serde_json::to_vec(&e).unwrap()).unwrap();
            age(&p, long_ago);
            expired_paths.push(p);
        }
        // Kept: a live entry, one expired minutes ago, one written just now whatever it says,
        // a held lock and a fresh one without entries, an Entra entry still valid.
        let live = c.refresh_path(&key(&["live"]));
        let mut e = entry("live.azurecr.io");
        e.expires_at = now + 3600;
        std::fs::write(&live, serde_json::to_vec(&e).unwrap()).unwrap();
        age(&live, long_ago);
        let recent = c.refresh_path(&key(&["recent"]));
        e.expires_at = now - 600;
        std::fs::write(&recent, serde_json::to_vec(&e).unwrap()).unwrap();
        age(&recent, long_ago);
        let new = c.refresh_path(&key(&["new"]));
        e.expires_at = 1000;
        std::fs::write(&new, serde_json::to_vec(&e).unwrap()).unwrap();
        let entra = c.entra_path(&key(&["entra"]));
        let token = EntraEntry {
            v: CACHE_VERSION,
            token: Secret::new("t"),
            expires_at: now + 600,
        };
        std::fs::write(&entra, serde_json::to_vec(&token).unwrap()).unwrap();
        age(&entra, long_ago);
        let held = c
            .lock(&c.refresh_path(&key(&["held"])), Duration::from_secs(1))
            .unwrap();
        age(held.path(), long_ago);
        // An expired entry being refreshed right now (its lock held): left to its writer.
        let busy = c.refresh_path(&key(&["busy"]));
        let mut e = entry("busy.azurecr.io");
        e.expires_at = now - 2 * 3600;
        std::fs::write(&busy, serde_json::to_vec(&e).unwrap()).unwrap();
        age(&busy, long_ago);
        let busy_lock = c.lock(&busy, Duration::from_secs(1)).unwrap();
        let fresh_lock = d.path().join(format!("reg-{}.json.lock", key(&["fresh"])));
        std::fs::write(&fresh_lock, b"").unwrap();

        let remaining = || expired_paths.iter().filter(|p| p.exists()).count();
        c.write(&c.refresh_path(&key(&["w1"])), &entry("a"))
            .unwrap();
        assert_eq!(remaining(), 100 - MAX_REMOVALS, "bounded per write");
        c.write(&c.refresh_path(&key(&["w2"])), &entry("a"))
            .unwrap();
        assert_eq!(remaining(), 0, "the next write went on");
        for p in [&live, &recent, &new, &entra, &fresh_lock, &busy] {
            assert!(p.exists(), "{p:?} was removed");
        }
        assert!(held.path().exists(), "a held lock was removed");
        // The held lock, once released and old, goes (its entry never existed).
        let lock_path = held.path().to_path_buf();
        drop(held);
        std::fs::remove_file(d.path().join(PRUNE_MARKER)).unwrap();
        c.write(&c.refresh_path(&key(&["w3"])), &entry("a"))
            .unwrap();
        assert!(!lock_path.exists());
        // The marker then spares the next writes the reading of every entry.
        let again = c.refresh_path(&key(&["again"]));
        let mut e = entry("gone.azurecr.io");
        e.expires_at = now - 2 * 3600;
        std::fs::write(&again, serde_json::to_vec(&e).unwrap()).unwrap();
        age(&again, long_ago);
        c.write(&c.refresh_path(&key(&["w4"])), &entry("a"))
            .unwrap();
        assert!(again.exists(), "looked at again within 10 minutes");
        age(
            &d.path().join(PRUNE_MARKER),
            PRUNE_EVERY + Duration::from_secs(1),
        );
        c.write(&c.refresh_path(&key(&["w5"])), &entry("a"))
            .unwrap();
        assert!(!again.exists());
        assert!(busy.exists(), "still being refreshed");
        // Once its writer is gone, the expired entry goes, then its lock.
        drop(busy_lock);
        std::fs::remove_file(d.path().join(PRUNE_MARKER)).unwrap();
        c.write(&c.refresh_path(&key(&["w6"])), &entry("a"))
            .unwrap();
        assert!(!busy.exists());
    }

    #[test]
    fn unreadable_entries_go_after_a_day_and_only_entry_names_are_looked_at() {
        let d = private_dir();
        let c = Cache::new(d.path());
        let old = c.refresh_path(&key(&["old"]));
        let young = c.entra_path(&key(&["young"]));
        let not_a_key = d.path().join("reg-mine.json");
        for p in [&old, &young, &not_a_key] {
            std::fs::write(p, b"garbage").unwrap();
        }
        age(&old, Duration::from_secs(25 * 3600));
        age(&not_a_key, Duration::from_secs(25 * 3600));
        age(&young, Duration::from_secs(23 * 3600));
        c.write(&c.refresh_path(&key(&["w"])), &entry("a")).unwrap();
        assert!(!old.exists());
        assert!(young.exists() && not_a_key.exists());
    }

    #[test]
    fn entries_are_listed_and_files_are_private() {
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
        let mode = |p: &Path| platform::permission_bits(&std::fs::metadata(p).unwrap());
        assert_eq!(mode(&c.refresh_path("a")), 0o600);
        assert_eq!(mode(c.dir()), 0o700);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(key(&["a", "b"]), key(&["a", "b"]));
        assert_ne!(key(&["a", "b"]), key(&["b", "a"]));
        assert_eq!(key(&["a"]).len(), 40);
        // The names of existing cache files: the first 40 hex digits of SHA-256("a\nb").
        assert_eq!(key(&["a", "b"]), "7e18f737311b2dc3b2f269dd78396b0351f14fb6");
    }
}
