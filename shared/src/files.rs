//! Private files: folders made 0700, files written 0600 (or a given mode) through a temp file and
//! a rename, reads that refuse symlinks and oversize files, and advisory locks with deadlines.
//!
//! Every file the project writes that holds a secret goes through here.

use crate::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const O_NOFOLLOW: i32 = 0o400000;

/// Checks an existing `dir`: it must be a real folder (not a symlink) owned by the current user.
/// `Ok(None)` when it does not exist.
pub fn check_private_dir(dir: &Path) -> Result<Option<fs::Metadata>, Error> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot inspect", dir, e)),
    };
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(Error::io(
            "refusing to use",
            dir,
            std::io::Error::other("not a real folder (a symlink or a file is in the way)"),
        ));
    }
    if meta.uid() != current_uid(dir)? {
        return Err(Error::io(
            "refusing to use",
            dir,
            std::io::Error::other("the folder belongs to another user"),
        ));
    }
    Ok(Some(meta))
}

/// Creates `dir` (and missing parents) with mode 0700, or checks an existing one with
/// [`check_private_dir`]; wider permissions on an existing one are narrowed to 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    match check_private_dir(dir)? {
        Some(meta) => {
            if meta.mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io("cannot restrict permissions of", dir, e))?;
            }
            Ok(())
        }
        None => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("cannot create", dir, e))?;
            // `recursive` applies the mode to every folder it makes, but the umask may narrow
            // it or the folder may have raced into existence: set it explicitly, then check.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("cannot restrict permissions of", dir, e))?;
            check_private_dir(dir).map(|_| ())
        }
    }
}

/// The effective uid of this process, found without `unsafe`.
fn current_uid(near: &Path) -> Result<u32, Error> {
    // /proc/self is owned by the process's effective uid.
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| Error::io("cannot determine the current user for", near, e))
}

/// Reads a regular file of at most `limit` bytes without following a symlink. `Ok(None)` when
/// the file does not exist.
pub fn read_private(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    let mut buf = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("cannot read", path, e))?;
    if buf.len() > limit {
        return Err(Error::io(
            "refusing to read",
            path,
            std::io::Error::other(format!("larger than {limit} bytes")),
        ));
    }
    Ok(Some(buf))
}

/// Writes `bytes` to `path` atomically: a new temp file in the same folder with `mode`, flushed
/// to disk, then renamed over `path`. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        // The umask may have narrowed `mode`; a copied mode must come out exact.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("cannot set permissions of", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        f.sync_all()
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes the temp files [`write_atomic`] left in `dir` when its process was killed between
/// creating and renaming them: those older than `age` (a live writer's exists for milliseconds).
/// Best effort; returns how many were removed.
pub fn remove_stale_temps(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp")
        })
        .filter(|e| {
            // Only regular files (never follow or remove a planted link's target).
            e.metadata().is_ok_and(|m| {
                m.file_type().is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|d| d > age)
            })
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Removes a file; a missing file is not an error. Returns whether a file was removed.
pub fn remove(path: &Path) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot remove", path, e)),
    }
}

/// An exclusive advisory lock on a file, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the exclusive lock on `path` (created 0600 if missing), waiting at most `wait`.
    pub fn acquire(path: &Path, wait: Duration) -> Result<FileLock, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::io("cannot open lock file", path, e))?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(FileLock {
                        _file: file,
                        path: path.to_path_buf(),
                    });
                }
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        return Err(Error::LockTimeout {
                            path: path.to_path_buf(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io("cannot lock", path, e)),
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn private_dir_is_0700_and_symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        ensure_private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(ensure_private_dir(&link).is_err());
    }

    #[test]
    fn reads_refuse_symlinks_and_oversize() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(read_private(&p, 10).unwrap().unwrap(), b"12345");
        assert!(read_private(&p, 4).is_err());
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_private(&link, 10).is_err());
        assert!(
            read_private(&d.path().join("missing"), 10)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn lock_waits_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = FileLock::acquire(&p, Duration::from_secs(1)).unwrap();
        let start = Instant::now();
        let e = FileLock::acquire(&p, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, Error::LockTimeout { .. }));
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop(held);
        FileLock::acquire(&p, Duration::from_millis(200)).unwrap();
    }
}
