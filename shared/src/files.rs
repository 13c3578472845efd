//! Private files: folders made 0700 (on Windows, an ACL granting their owner alone), files written
//! 0600 (or a given mode) through a temp file and a rename, reads that refuse symlinks (reparse
//! points) and oversize files, and advisory locks with deadlines.
//!
//! Every file the project writes that holds a secret goes through here. A folder that already
//! exists is never changed: it is used when it is a real folder of the current user that group
//! and others cannot write, and refused otherwise. Only the folder this module creates itself is
//! made 0700; missing parents are made with the umask's mode, as any program makes folders.
//! Platform-specific calls are in the crate's `platform` module.

use crate::error::Error;
use crate::platform;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a refused folder's message offers besides fixing the folder, by default.
const ELSEWHERE: &str = "choose another folder";

/// Checks an existing `dir`: it must be a real folder (not a symlink) owned by the current user,
/// that neither group nor others can write (they could plant or swap files in it). `Ok(None)`
/// when it does not exist.
pub fn check_private_dir(dir: &Path) -> Result<Option<fs::Metadata>, Error> {
    check_dir(dir, ELSEWHERE)
}

/// [`check_private_dir`], whose refusal of a folder others can write ends with `elsewhere` (how
/// to choose another folder).
pub(crate) fn check_dir(dir: &Path, elsewhere: &str) -> Result<Option<fs::Metadata>, Error> {
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
    let owner = platform::owner(dir, &meta).map_err(|e| Error::io("cannot inspect", dir, e))?;
    if owner != current_user(dir)? {
        return Err(Error::io(
            "refusing to use",
            dir,
            std::io::Error::other("the folder belongs to another user"),
        ));
    }
    if let Some(how) =
        platform::others_may_write(dir, &meta).map_err(|e| Error::io("cannot inspect", dir, e))?
    {
        return Err(Error::io(
            "refusing to use",
            dir,
            std::io::Error::other(format!(
                "{} can write to the folder ({how}); fix it with `{}`, or {elsewhere}",
                platform::OTHERS,
                platform::fix_others_write(dir)
            )),
        ));
    }
    Ok(Some(meta))
}

/// Makes sure `dir` exists and passes [`check_private_dir`]. A missing `dir` is created 0700
/// (whatever the umask), its missing parents with the umask's mode; an existing one is checked
/// and never changed (its mode is its owner's choice: a 1777 folder keeps its sticky bit and is
/// refused, a 0755 one is used as it is, its files being 0600).
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    ensure_dir(dir, ELSEWHERE)
}

/// [`ensure_private_dir`], whose refusal of a folder others can write ends with `elsewhere`.
pub(crate) fn ensure_dir(dir: &Path, elsewhere: &str) -> Result<(), Error> {
    if check_dir(dir, elsewhere)?.is_some() {
        return Ok(());
    }
    let created = match platform::create_private_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Missing parents (`$HOME/.cache`, `/var/lib/kubelet`) are not ours to make private.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
            }
            match platform::create_private_dir(dir) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(Error::io("cannot create", dir, e)),
            }
        }
        // It raced into existence: checked below like any existing folder.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io("cannot create", dir, e)),
    };
    if created {
        // The umask may have narrowed 0700 (umask 0277 makes it 0500); on Windows it has the ACL
        // it inherited. This folder is the one just made: made private through a handle to it,
        // never through a swapped path.
        platform::restrict_dir(dir).map_err(|e| Error::io("cannot set permissions of", dir, e))?;
    }
    check_dir(dir, elsewhere).map(|_| ())
}

/// The permission bits of the file at `path`, following links, to keep when rewriting it with
/// [`write_atomic`] (on Windows, which has no mode: `0o644`, or `0o444` when read-only).
pub fn mode(path: &Path) -> std::io::Result<u32> {
    fs::metadata(path).map(|m| platform::permission_bits(&m))
}

/// The user this process runs as.
fn current_user(near: &Path) -> Result<platform::User, Error> {
    platform::current_user()
        .map_err(|e| Error::io("cannot determine the current user for", near, e))
}

/// Reads a regular file of at most `limit` bytes without following a symlink. Opened without
/// blocking, so a FIFO in its place cannot hang the process; anything but a regular file is
/// refused. `Ok(None)` when the file does not exist.
pub fn read_private(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    read_regular(
        platform::no_follow_non_blocking(OpenOptions::new().read(true)),
        path,
        limit,
        |_, _| Ok(()),
    )
}

/// Reads a regular file of at most `limit` bytes, following symlinks: for a file outside the
/// project's folders that others lay out with links, such as a Kubernetes projected
/// service-account token (`token -> ..data/token`, `..data -> ..2024_01_01_00_00_00.123456789`,
/// `..data` swapped on rotation). Opened without blocking, so a FIFO in its place cannot hang the
/// process; anything but a regular file is refused. `Ok(None)` when the file does not exist.
pub fn read_following(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    read_regular(
        platform::non_blocking(OpenOptions::new().read(true)),
        path,
        limit,
        |_, _| Ok(()),
    )
}

/// [`read_following`] for a file a setting names (`what`, for messages: a certificate, a token
/// file, a CA bundle), which must be there: its bytes, or one line saying why not. Bounded and
/// non-blocking: a FIFO or a device in its place is refused at once, a huge file not read whole.
/// With `trusted` (a file the config file names), read as [`read_trusted`] reads.
pub fn read_named(path: &Path, limit: usize, what: &str, trusted: bool) -> Result<Vec<u8>, String> {
    let read = if trusted {
        read_trusted
    } else {
        read_following
    };
    match read(path, limit) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(format!("{what} {} does not exist", path.display())),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Reads a key file the Azure Arc agent names in its challenge: a regular file (no symlink
/// followed, a FIFO refused) of at most `limit` bytes, owned by root or by its folder's owner (the
/// agent), which others may not write, in a folder others may not write. Its content is a
/// secret proving the caller may read the agent's token folder. `Ok(None)`: it does not exist.
pub fn read_agent_key(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    let folder = path.parent().unwrap_or(Path::new("/"));
    let folder_meta =
        fs::symlink_metadata(folder).map_err(|e| Error::io("cannot read", folder, e))?;
    if !folder_meta.is_dir() || platform::permission_bits(&folder_meta) & 0o002 != 0 {
        return Err(Error::io(
            "refusing to read",
            path,
            std::io::Error::other(
                "its folder is not a folder that only its owner and group may write",
            ),
        ));
    }
    let agent =
        platform::owner(folder, &folder_meta).map_err(|e| Error::io("cannot read", folder, e))?;
    read_regular(
        platform::no_follow_non_blocking(OpenOptions::new().read(true)),
        path,
        limit,
        |_file, meta| {
            let owner = platform::owner(path, meta)?;
            if !platform::is_administrator(&owner) && owner != agent {
                return Err(std::io::Error::other(format!(
                    "it belongs to {}, neither the administrator nor its folder's owner",
                    platform::describe(&owner)
                )));
            }
            if platform::permission_bits(meta) & 0o002 != 0 {
                return Err(std::io::Error::other("others may write it"));
            }
            Ok(())
        },
    )
}

/// [`read_following`] for a file that decides what the user's credentials do (the config file,
/// and the certificate or token file a rule of it names): refused when another user (but root)
/// owns it or group or others may write it, and the same for every folder on its real path (a
/// folder others may write only with its sticky bit, as `/tmp`, where nobody can replace what
/// they do not own): a planted, shared or swappable file could send tokens elsewhere.
pub fn read_trusted(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, Error> {
    read_regular(
        platform::non_blocking(OpenOptions::new().read(true)),
        path,
        limit,
        |file, meta| {
            // Asked only once the file exists: a missing one costs its failed `open` alone.
            let me = platform::current_user()?;
            let owner = platform::owner(path, meta)?;
            if owner != me && !platform::is_administrator(&owner) {
                return Err(std::io::Error::other(format!(
                    "it belongs to another user ({}), and it chooses your identities",
                    platform::describe(&owner)
                )));
            }
            if platform::others_may_write(path, meta)?.is_some() {
                return Err(std::io::Error::other(format!(
                    "{} may write it; run `{}`",
                    platform::OTHERS,
                    platform::fix_others_write(path)
                )));
            }
            check_folders(path, file, &me)
        },
    )
}

/// Checks the folders of the file `opened` from `path`: every folder on its real path (links
/// resolved) belongs to `me` or the administrator and is writable by others only when it keeps
/// their entries to their owners (the sticky bit); and the real path is the file opened, not one
/// swapped in since. A `realpath`, a `stat` and one `lstat` per folder: no file is read.
fn check_folders(path: &Path, opened: &File, me: &platform::User) -> std::io::Result<()> {
    let real = fs::canonicalize(path)?;
    if !platform::same_file(&real, opened)? {
        return Err(std::io::Error::other("it was replaced while being read"));
    }
    for folder in real.ancestors().skip(1) {
        let meta = fs::symlink_metadata(folder)?;
        let owner = platform::owner(folder, &meta)?;
        if owner != *me && !platform::is_administrator(&owner) {
            return Err(std::io::Error::other(format!(
                "its folder {} belongs to another user ({}), who could replace it",
                folder.display(),
                platform::describe(&owner)
            )));
        }
        if let Some(how) = platform::others_may_write(folder, &meta)?
            && !platform::keeps_entries_of_their_owners(&meta)
        {
            return Err(std::io::Error::other(format!(
                "{} may write its folder {} ({how}) and so replace it; run `{}`",
                platform::OTHERS,
                folder.display(),
                platform::fix_others_write(folder)
            )));
        }
    }
    Ok(())
}

/// Opens `path` with `options` and reads it whole when it is a regular file of at most `limit`
/// bytes that `check` (given the file and its metadata) accepts. `Ok(None)` when it does not
/// exist.
fn read_regular(
    options: &OpenOptions,
    path: &Path,
    limit: usize,
    check: impl FnOnce(&File, &fs::Metadata) -> std::io::Result<()>,
) -> Result<Option<Vec<u8>>, Error> {
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io("cannot read", path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            "refusing to read",
            path,
            std::io::Error::other("not a regular file"),
        ));
    }
    check(&file, &meta).map_err(|e| Error::io("refusing to read", path, e))?;
    read_bounded(file, path, limit, meta.len()).map(Some)
}

/// The whole of `file` (opened from `path`), refused when larger than `limit` bytes. `size` (its
/// size when opened) sizes the buffer, so that a file that has not grown since is read in one
/// `read` and one that tells the end, not in reads of doubling sizes.
fn read_bounded(file: File, path: &Path, limit: usize, size: u64) -> Result<Vec<u8>, Error> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(size.min(limit).saturating_add(1));
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
    Ok(buf)
}

/// The name of a temp file for `name` in [`write_atomic`]: `.<name>.<pid>.<32 hex digits>.tmp`.
fn temp_name(name: &str) -> String {
    format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The file a temp file of [`write_atomic`] was for, when `file_name` follows its naming rule
/// exactly (`.<name>.<pid>.<32 lowercase hex digits>.tmp`); `None` for any other name.
pub fn temp_target(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (rest, id) = rest.rsplit_once('.')?;
    let (name, pid) = rest.rsplit_once('.')?;
    let id_ok = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let pid_ok = (1..=10).contains(&pid.len()) && pid.bytes().all(|b| b.is_ascii_digit());
    (id_ok && pid_ok && !name.is_empty()).then_some(name)
}

/// Writes `bytes` to `path` atomically: a new temp file in the same folder with `mode`, flushed
/// to disk, then renamed over `path`. A crash leaves either the old file or the new one, and at
/// worst a temp file named as [`temp_target`] recognises.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(temp_name(name));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        platform::create_mode(&mut options, mode);
        let mut f = platform::no_follow(&mut options)
            .open(&tmp)
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        // The umask may have narrowed `mode`; a copied mode must come out exact.
        platform::set_mode(&f, &tmp, mode)
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
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        platform::create_mode(&mut options, 0o600);
        let file = platform::no_follow(&mut options)
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
#[cfg(unix)]
mod tests {
    use super::fifo::mkfifo;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o640);
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    fn mode(p: &Path) -> u32 {
        platform::permission_bits(&fs::metadata(p).unwrap())
    }

    /// This process's umask, from `/proc/self/status` (reading it with umask(2) would set it).
    fn umask() -> u32 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    }

    #[test]
    fn a_new_folder_is_0700_its_new_parents_follow_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        ensure_private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        assert_eq!(mode(&d.path().join("a")), 0o777 & !umask(), "a parent");
        // Existing: checked, not changed.
        ensure_private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(ensure_private_dir(&link).is_err());
        assert!(check_private_dir(&link).is_err());
    }

    #[test]
    fn an_existing_folder_keeps_its_mode_and_is_refused_when_others_can_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c");
        fs::create_dir(&p).unwrap();
        for used in [0o700, 0o750, 0o755, 0o1755] {
            fs::set_permissions(&p, std::fs::Permissions::from_mode(used)).unwrap();
            ensure_private_dir(&p).unwrap();
            assert!(check_private_dir(&p).unwrap().is_some());
            assert_eq!(mode(&p), used, "{used:o} kept");
        }
        for refused in [0o770, 0o775, 0o757, 0o777, 0o1777, 0o1770] {
            fs::set_permissions(&p, std::fs::Permissions::from_mode(refused)).unwrap();
            let e = ensure_private_dir(&p).unwrap_err().to_string();
            assert_eq!(mode(&p), refused, "{refused:o} kept");
            assert!(
                e.contains(&format!("chmod go-w {}", p.display())) && !e.contains('\n'),
                "{e}"
            );
            assert!(check_private_dir(&p).is_err());
            let e = ensure_dir(&p, "pick another with --cache-dir").unwrap_err();
            assert!(
                e.to_string().ends_with("or pick another with --cache-dir"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_folder_that_cannot_be_made_says_why() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("file"), b"").unwrap();
        let e = ensure_private_dir(&d.path().join("file/cache"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot ") && e.contains("Not a directory"),
            "{e}"
        );
    }

    #[test]
    fn reads_following_links_take_a_projected_token_and_nothing_but_a_bounded_file() {
        let d = tempfile::tempdir().unwrap();
        // As the kubelet lays out a projected service-account token.
        let data = d.path().join("..2024_01_01_00_00_00.123456789");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("token"), b"jwt").unwrap();
        std::os::unix::fs::symlink("..2024_01_01_00_00_00.123456789", d.path().join("..data"))
            .unwrap();
        let token = d.path().join("token");
        std::os::unix::fs::symlink("..data/token", &token).unwrap();
        assert_eq!(read_following(&token, 10).unwrap().unwrap(), b"jwt");
        assert!(
            read_private(&token, 10).is_err(),
            "the private read refuses it"
        );
        assert!(read_following(&token, 2).is_err(), "bounded");
        assert!(
            read_following(&d.path().join("none"), 10)
                .unwrap()
                .is_none()
        );
        assert!(read_following(&data, 10).is_err(), "a folder");
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        let start = Instant::now();
        assert!(read_following(&fifo, 10).is_err(), "a FIFO");
        assert!(start.elapsed() < Duration::from_secs(5), "without waiting");
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        let name = temp_name("reg-0123.json");
        assert_eq!(temp_target(&name), Some("reg-0123.json"), "{name}");
        assert_eq!(
            temp_target(".a.b.json.1.0123456789abcdef0123456789abcdef.tmp"),
            Some("a.b.json")
        );
        for other in [
            ".backup.tmp",
            ".reg-x.json.123.abc.tmp",
            "reg-x.json.1.0123456789abcdef0123456789abcdef.tmp",
            ".reg-x.json.1.0123456789ABCDEF0123456789ABCDEF.tmp",
            ".reg-x.json.pid.0123456789abcdef0123456789abcdef.tmp",
            "..1.0123456789abcdef0123456789abcdef.tmp",
            ".reg-x.json.1.0123456789abcdef0123456789abcdef.tmp.tmp",
            ".tmp",
        ] {
            assert_eq!(temp_target(other), None, "{other}");
        }
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
        // A FIFO where the file should be: refused at once, not waited on.
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        let e = read_private(&fifo, 10).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_private(d.path(), 10).is_err(), "a folder");
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

/// FIFOs for tests of the readers that must not wait on one.
#[cfg(test)]
#[cfg(unix)]
pub(crate) mod fifo {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::thread::JoinHandle;

    /// Makes a FIFO at `path`.
    pub(crate) fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    }

    /// A FIFO at a path with a writer in a thread that waits for a reader, writes its content
    /// and closes. A reader that opens it blocking gets the content (so a test of a reader that
    /// waits on FIFOs fails instead of hanging); one that refuses FIFOs leaves the writer
    /// waiting, until dropping this opens the other end for it.
    pub(crate) struct FifoWriter {
        path: PathBuf,
        writer: Option<JoinHandle<()>>,
    }

    impl FifoWriter {
        /// Makes the FIFO at `path` and starts its writer of `content`.
        pub(crate) fn new(path: &Path, content: &str) -> FifoWriter {
            mkfifo(path);
            let (at, content) = (path.to_path_buf(), content.to_string());
            let writer = std::thread::spawn(move || {
                if let Ok(mut f) = OpenOptions::new().write(true).open(&at) {
                    let _ = f.write_all(content.as_bytes());
                }
            });
            FifoWriter {
                path: path.to_path_buf(),
                writer: Some(writer),
            }
        }
    }

    impl Drop for FifoWriter {
        fn drop(&mut self) {
            // A reader that never blocks lets the writer's open return; held until it is done.
            let reader = crate::platform::non_blocking(OpenOptions::new().read(true))
                .open(&self.path)
                .ok();
            if let Some(w) = self.writer.take() {
                let _ = w.join();
            }
            drop(reader);
        }
    }
}
