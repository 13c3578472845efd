//! Everything platform-specific that [`crate::files`] and [`crate::cache`] use, in one place:
//! flags of `open(2)`, file modes and owners, the process's user.
//!
//! The flags come from the `libc` crate, never as literals: their values differ between
//! architectures. `O_NOFOLLOW` is `0o400000` on x86_64 but `0o100000` on aarch64, where
//! `0o400000` is `O_LARGEFILE`: a literal copied from one would silently follow symlinks on the
//! other. No `unsafe` is needed (the workspace forbids it): only constants are taken from `libc`.

use std::fs::{DirBuilder, File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// `open(2)` fails with `ELOOP` when the last component is a symlink.
pub const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;
/// `open(2)` does not wait (for a FIFO's writer, say).
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;
/// `open(2)` fails unless the path is a folder.
pub const O_DIRECTORY: i32 = libc::O_DIRECTORY;

/// The sticky bit of a folder's mode: only an entry's owner (or the folder's) may remove or
/// rename it.
pub const STICKY: u32 = 0o1000;

/// Whether two metadata describe the same file (device and inode).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// `options` that refuse to open a symlink (the last component of the path). Replaces any other
/// custom flag set on `options`.
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(O_NOFOLLOW)
}

/// `options` that never block in `open` (a FIFO planted where a file should be cannot hang the
/// process). Replaces any other custom flag set on `options`.
pub fn non_blocking(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(O_NONBLOCK)
}

/// `options` that refuse a symlink (as [`no_follow`]) and never block in `open` (as
/// [`non_blocking`]). Replaces any other custom flag set on `options`.
pub fn no_follow_non_blocking(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(O_NOFOLLOW | O_NONBLOCK)
}

/// `options` that create a missing file with `mode` (narrowed by the umask).
pub fn create_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    options.mode(mode)
}

/// Permissions of exactly `mode`.
pub fn permissions(mode: u32) -> Permissions {
    Permissions::from_mode(mode)
}

/// The permission bits of a file, with the setuid, setgid and sticky bits (`0o7777`).
pub fn permission_bits(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// The uid owning a file.
pub fn owner(meta: &Metadata) -> u32 {
    meta.uid()
}

/// The effective uid of this process, found without `unsafe`: `/proc/self` is owned by it.
pub fn effective_uid() -> io::Result<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid())
}

/// Creates the folder `dir` (not its parents) with mode 0700, narrowed by the umask.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(0o700).create(dir)
}

/// Opens the folder `dir` itself, refusing a symlink or anything but a folder, to change it
/// through the handle (`fchmod`) rather than by a path that could be swapped.
pub fn open_dir_no_follow(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(O_NOFOLLOW | O_DIRECTORY)
        .open(dir)
}

/// The system's bundle of trusted CA certificates: the first of these files that exists and
/// holds certificates (the list `openssl-probe` and Go's `crypto/x509` search on Linux). One file
/// read instead of a folder of hundreds: the distributions that keep a hashed folder
/// (`/etc/ssl/certs`) generate the bundle from the same certificates.
pub const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Gentoo, Arch
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Fedora, RHEL 7+, CentOS
    "/etc/pki/tls/certs/ca-bundle.crt",   // RHEL 6, older Fedora
    "/etc/ssl/ca-bundle.pem",             // openSUSE, SLES
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/ssl/cert.pem",                  // Alpine
];

/// Folders of CA certificate files, read only when no bundle of [`CA_BUNDLES`] exists.
pub const CA_FOLDERS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// What identifies a file whatever path reaches it (device and inode): a folder's links to one
/// certificate file are read once.
pub fn file_identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each flag does what its name says on this platform, through the functions that use it:
    /// a value copied from another architecture (`0o400000` is `O_NOFOLLOW` on x86_64 but
    /// `O_LARGEFILE` on aarch64) fails here, on the platform where it is wrong.
    #[test]
    fn each_flag_does_what_its_name_says() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        // O_NOFOLLOW, also when combined with O_NONBLOCK: a link is refused with ELOOP.
        let e = no_follow_non_blocking(OpenOptions::new().read(true))
            .open(&link)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        // O_DIRECTORY: a file opened as a folder is refused with ENOTDIR.
        let e = open_dir_no_follow(&file).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{e}");
        // O_NONBLOCK: a FIFO with no writer opens at once (a blocking open waits for a writer).
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        for open in [non_blocking, no_follow_non_blocking] {
            let (tx, fifo) = (tx.clone(), fifo.clone());
            // A thread, so that a blocking open fails the test instead of hanging it.
            std::thread::spawn(move || {
                let _ = tx.send(open(OpenOptions::new().read(true)).open(&fifo).is_ok());
            });
            let opened = rx.recv_timeout(std::time::Duration::from_secs(10));
            assert_eq!(opened, Ok(true), "a FIFO without a writer blocked the open");
        }
    }

    #[test]
    fn a_no_follow_open_refuses_a_symlink_and_opens_a_file() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let e = no_follow(OpenOptions::new().read(true))
            .open(&link)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert!(no_follow(OpenOptions::new().read(true)).open(&file).is_ok());
        // A folder opened as a folder, a link to it refused.
        let dir = d.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        assert!(open_dir_no_follow(&dir).is_ok());
        std::os::unix::fs::symlink(&dir, d.path().join("dl")).unwrap();
        assert!(open_dir_no_follow(&d.path().join("dl")).is_err());
        assert!(open_dir_no_follow(&file).is_err());
    }

    /// `files` and `cache` reach the platform only through this module: no `std::os` extension
    /// trait, no `libc`, no literal flag in their code (their tests may use anything).
    #[test]
    fn files_and_cache_use_the_platform_only_through_this_module() {
        for (name, source) in [
            ("files.rs", include_str!("files.rs")),
            ("cache.rs", include_str!("cache.rs")),
        ] {
            let found = platform_api_in(source);
            assert!(found.is_empty(), "{name} uses {found:?} directly");
        }
    }

    /// The platform-specific names in `source`'s code before its test module.
    fn platform_api_in(source: &str) -> Vec<&'static str> {
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        [
            "std::os",
            "libc::",
            "MetadataExt",
            "OpenOptionsExt",
            "PermissionsExt",
            "DirBuilderExt",
            "FileTypeExt",
            "custom_flags",
            "from_mode",
            "0o400000",
            "0o100000",
        ]
        .into_iter()
        .filter(|needle| code.contains(needle))
        .collect()
    }

    #[test]
    fn the_scan_finds_what_the_old_files_rs_did() {
        // What files.rs held before this module existed.
        let old = "use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};\nconst O_NOFOLLOW: i32 = 0o400000;\n";
        let found = platform_api_in(old);
        assert!(
            found.contains(&"std::os") && found.contains(&"0o400000"),
            "{found:?}"
        );
    }
}
