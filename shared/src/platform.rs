//! Everything platform-specific that [`crate::files`], [`crate::cache`], [`crate::config`] and
//! [`crate::identity`] use, in one place, behind one API with a Unix half and a Windows half:
//! "open without following a link", "make this folder private", "who owns this", "may others
//! write this", "is this program on `PATH`", and the per-user folders' conventions. Each half
//! answers in its own terms: mode bits, owners' uids and `O_NOFOLLOW` on Unix; an owner-only ACL,
//! owners' SIDs and `FILE_FLAG_OPEN_REPARSE_POINT` on Windows.
//!
//! Unix flags come from the `libc` crate and Windows ones from `winapi`, never as literals: their
//! values differ between platforms and even architectures. `O_NOFOLLOW` is `0o400000` on x86_64
//! but `0o100000` on aarch64, where `0o400000` is `O_LARGEFILE`: a literal copied from one would
//! silently follow symlinks on the other (`scripts/test-cross.sh` runs the file-safety tests
//! against an aarch64 build). No `unsafe` here (the workspace forbids it): the Windows security
//! calls go through `windows-permissions`' safe wrappers.

#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
pub use windows::*;

/// The Unix half.
#[cfg(unix)]
mod unix {
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

    /// A user as files name their owner: a uid.
    pub type User = u32;

    /// Who, besides a file's owner, may be able to write it, as messages say it.
    pub const OTHERS: &str = "group or others";

    /// The variable that names the user's home folder.
    pub const HOME: &str = "HOME";
    /// Where per-user settings go when `XDG_CONFIG_HOME` is unset: this variable's folder, and
    /// this folder under it.
    pub const CONFIG_HOME: (&str, &str) = ("HOME", ".config");
    /// Where per-user caches go when `XDG_CACHE_HOME` is unset, as [`CONFIG_HOME`].
    pub const CACHE_HOME: (&str, &str) = ("HOME", ".cache");
    /// What separates the folders of `PATH`.
    pub const PATH_SEPARATOR: char = ':';

    /// An environment variable's name as the platform compares names: as it is.
    pub fn env_name(name: &str) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(name)
    }

    /// Whether `opened` (a file opened from `path`) is the file `path` names now (device and
    /// inode).
    pub fn same_file(path: &Path, opened: &File) -> io::Result<bool> {
        let (a, b) = (std::fs::metadata(path)?, opened.metadata()?);
        Ok(a.dev() == b.dev() && a.ino() == b.ino())
    }

    /// `options` that refuse to open a symlink (the last component of the path). Replaces any
    /// other custom flag set on `options`.
    pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
        options.custom_flags(O_NOFOLLOW)
    }

    /// `options` that never block in `open` (a FIFO planted where a file should be cannot hang
    /// the process). Replaces any other custom flag set on `options`.
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

    /// Gives the file `file` (opened from `path`, for writing) exactly `mode`, whatever the
    /// umask did to it.
    pub fn set_mode(file: &File, _path: &Path, mode: u32) -> io::Result<()> {
        file.set_permissions(permissions(mode))
    }

    /// Permissions of exactly `mode`.
    pub fn permissions(mode: u32) -> Permissions {
        Permissions::from_mode(mode)
    }

    /// What identifies a file whatever path reaches it (device and inode): a folder's links to
    /// one certificate file are read once.
    pub fn file_identity(meta: &Metadata) -> Option<(u64, u64)> {
        Some((meta.dev(), meta.ino()))
    }

    /// The permission bits of a file, with the setuid, setgid and sticky bits (`0o7777`).
    pub fn permission_bits(meta: &Metadata) -> u32 {
        meta.mode() & 0o7777
    }

    /// The owner of the file at `path`, whose metadata (not following links) is `meta`.
    pub fn owner(_path: &Path, meta: &Metadata) -> io::Result<User> {
        Ok(meta.uid())
    }

    /// Whether `user` is the administrator (root), whose files every user already trusts.
    pub fn is_administrator(user: &User) -> bool {
        *user == 0
    }

    /// How messages name a user.
    pub fn describe(user: &User) -> String {
        format!("uid {user}")
    }

    /// The effective uid of this process, found without `unsafe`: `/proc/self` is owned by it.
    pub fn current_user() -> io::Result<User> {
        std::fs::metadata("/proc/self").map(|m| m.uid())
    }

    /// What lets users other than the owner (and the administrator) write the file or folder at
    /// `path` (metadata `meta`, links not followed), as messages say it (`mode 0775`); `None`
    /// when nothing does.
    pub fn others_may_write(_path: &Path, meta: &Metadata) -> io::Result<Option<String>> {
        let mode = permission_bits(meta);
        Ok((mode & 0o022 != 0).then(|| format!("mode {mode:04o}")))
    }

    /// Whether the folder `meta` lets others add entries but not remove or replace those they
    /// do not own (the sticky bit, as `/tmp` has).
    pub fn keeps_entries_of_their_owners(meta: &Metadata) -> bool {
        permission_bits(meta) & STICKY != 0
    }

    /// The command that takes write access away from others, for messages.
    pub fn fix_others_write(path: &Path) -> String {
        format!("chmod go-w {}", path.display())
    }

    /// Creates the folder `dir` (not its parents) with mode 0700, narrowed by the umask.
    pub fn create_private_dir(dir: &Path) -> io::Result<()> {
        DirBuilder::new().mode(0o700).create(dir)
    }

    /// Makes the folder `dir`, just created by [`create_private_dir`], exactly 0700 (the umask may
    /// have narrowed it), through a handle to it rather than by a path that could be swapped.
    pub fn restrict_dir(dir: &Path) -> io::Result<()> {
        open_dir_no_follow(dir)?.set_permissions(permissions(0o700))
    }

    /// Opens the folder `dir` itself, refusing a symlink or anything but a folder.
    pub fn open_dir_no_follow(dir: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW | O_DIRECTORY)
            .open(dir)
    }

    /// Whether `dir` holds `program` as this platform runs it: an executable file of that name.
    pub fn program_in(dir: &Path, program: &str) -> bool {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
}

/// The Windows half.
#[cfg(windows)]
mod windows {
    use std::fs::{File, Metadata, OpenOptions};
    use std::io;
    use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
    use std::path::Path;
    use std::sync::OnceLock;
    use winapi::um::winbase::{
        FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_DELETE_ON_CLOSE, FILE_FLAG_OPEN_REPARSE_POINT,
    };
    use winapi::um::winnt::{
        DELETE, FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, FILE_APPEND_DATA,
        FILE_ATTRIBUTE_REPARSE_POINT, FILE_DELETE_CHILD, FILE_READ_ATTRIBUTES, FILE_WRITE_DATA,
        GENERIC_ALL, GENERIC_READ, GENERIC_WRITE, READ_CONTROL, WRITE_DAC, WRITE_OWNER,
    };
    use windows_permissions::constants::{AceFlags, AceType, SeObjectType, SecurityInformation};
    use windows_permissions::{LocalBox, SecurityDescriptor, wrappers};

    /// A user as files name their owner: a SID in its string form (`S-1-5-21-…`).
    pub type User = String;

    /// Who, besides a file's owner, may be able to write it, as messages say it.
    pub const OTHERS: &str = "other users";

    /// The variable that names the user's home folder (`%USERPROFILE%`).
    pub const HOME: &str = "USERPROFILE";
    /// Where per-user settings go when `XDG_CONFIG_HOME` is unset: `%APPDATA%`.
    pub const CONFIG_HOME: (&str, &str) = ("APPDATA", "");
    /// Where per-user caches go when `XDG_CACHE_HOME` is unset: `%LOCALAPPDATA%`.
    pub const CACHE_HOME: (&str, &str) = ("LOCALAPPDATA", "");
    /// What separates the folders of `PATH`.
    pub const PATH_SEPARATOR: char = ';';

    /// `SYSTEM` (LocalSystem, which the kubelet runs as on AKS Windows nodes).
    const SYSTEM: &str = "S-1-5-18";
    /// `BUILTIN\Administrators`, the default owner of what an elevated administrator or
    /// `SYSTEM` creates.
    const ADMINISTRATORS: &str = "S-1-5-32-544";
    /// `CREATOR OWNER` and `OWNER RIGHTS`: placeholders for whoever owns the object.
    const OWNERS: [&str; 2] = ["S-1-3-0", "S-1-3-4"];
    /// `NT SERVICE\TrustedInstaller`, which owns the system's own folders.
    const TRUSTED_INSTALLER: &str =
        "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";

    /// Rights that let their holder change a file or a folder's entries.
    const WRITE_RIGHTS: u32 = FILE_WRITE_DATA
        | FILE_ADD_FILE
        | FILE_APPEND_DATA
        | FILE_ADD_SUBDIRECTORY
        | FILE_DELETE_CHILD
        | DELETE
        | WRITE_DAC
        | WRITE_OWNER
        | GENERIC_WRITE
        | GENERIC_ALL;

    /// An environment variable's name as the platform compares names: without case (`Path` is
    /// `PATH`).
    pub fn env_name(name: &str) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(name.to_ascii_uppercase())
    }

    /// Whether `opened` (a file opened from `path`) is the file `path` names now (volume and
    /// file index).
    pub fn same_file(path: &Path, opened: &File) -> io::Result<bool> {
        Ok(same_file::Handle::from_path(path)?
            == same_file::Handle::from_file(opened.try_clone()?)?)
    }

    /// `options` that open a reparse point (a symbolic link, a junction) itself instead of what it
    /// points to; its metadata then says it is a link, which the callers refuse (a link is never
    /// a regular file). Replaces any other custom flag set on `options`.
    pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
    }

    /// `options` as they are: opening a file on Windows never waits for a writer (there are no
    /// FIFOs among files; a named pipe's client open fails at once when it is busy).
    pub fn non_blocking(options: &mut OpenOptions) -> &mut OpenOptions {
        options.custom_flags(0)
    }

    /// [`no_follow`]: opening never blocks either.
    pub fn no_follow_non_blocking(options: &mut OpenOptions) -> &mut OpenOptions {
        no_follow(options)
    }

    /// `options` that can give a file they create an owner-only ACL when `mode` is private (no
    /// bit for group or others): they ask for the right to change its ACL as well.
    pub fn create_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
        if mode & 0o077 == 0 {
            options.access_mode(GENERIC_READ | GENERIC_WRITE | READ_CONTROL | WRITE_DAC);
        }
        options
    }

    /// A private `mode` (no bit for group or others) gives the file `file` an ACL that grants its
    /// owner alone full control, inheriting nothing (the file must be opened through
    /// [`create_mode`] with that mode); any other mode leaves it the ACL it inherited.
    pub fn set_mode(file: &File, _path: &Path, mode: u32) -> io::Result<()> {
        if mode & 0o077 == 0 {
            owner_only(file, false)
        } else {
            Ok(())
        }
    }

    /// Replaces the ACL of `handle` (opened with `READ_CONTROL` and `WRITE_DAC`) by one entry
    /// granting its owner full control, inherited by the files and folders made in it when
    /// `container`, and none of its parent's (a protected ACL).
    fn owner_only(handle: &File, container: bool) -> io::Result<()> {
        let sd = wrappers::GetSecurityInfo(
            handle,
            SeObjectType::SE_FILE_OBJECT,
            SecurityInformation::Owner,
        )?;
        let owner = sd
            .owner()
            .ok_or_else(|| io::Error::other("the file has no owner"))?;
        let inherit = if container { "OICI" } else { "" };
        let wanted: LocalBox<SecurityDescriptor> = format!("D:P(A;{inherit};FA;;;{owner})")
            .parse()
            .map_err(|e| io::Error::other(format!("cannot build the owner-only ACL: {e}")))?;
        let dacl = wanted
            .dacl()
            .ok_or_else(|| io::Error::other("the owner-only ACL is empty"))?;
        let mut handle = handle.try_clone()?;
        wrappers::SetSecurityInfo(
            &mut handle,
            SeObjectType::SE_FILE_OBJECT,
            SecurityInformation::Dacl | SecurityInformation::ProtectedDacl,
            None,
            None,
            Some(dacl),
            None,
        )
    }

    /// The mode a file's rewrite keeps (see [`set_mode`]): Windows has none, so a file that is
    /// not read-only is `0o644` (its rewrite keeps the ACL it inherits) and a read-only one
    /// `0o444`.
    pub fn permission_bits(meta: &Metadata) -> u32 {
        if meta.permissions().readonly() {
            0o444
        } else {
            0o644
        }
    }

    /// The owner of the file at `path` (its links already refused by the caller: `meta` is its
    /// own metadata).
    pub fn owner(path: &Path, _meta: &Metadata) -> io::Result<User> {
        let sd = wrappers::GetNamedSecurityInfo(
            path.as_os_str(),
            SeObjectType::SE_FILE_OBJECT,
            SecurityInformation::Owner,
        )?;
        sd.owner()
            .map(|s| s.to_string())
            .ok_or_else(|| io::Error::other("it has no owner"))
    }

    /// Whether `user` is `SYSTEM` or the Administrators group, whose files every user already
    /// trusts.
    pub fn is_administrator(user: &User) -> bool {
        user == SYSTEM || user == ADMINISTRATORS
    }

    /// How messages name a user.
    pub fn describe(user: &User) -> String {
        format!("SID {user}")
    }

    /// The owner Windows gives what this process creates (its token's default owner: the user,
    /// or the Administrators group for `SYSTEM` and elevated administrators), read once from a
    /// file created in the temporary folder and deleted when closed. The standard library names
    /// no user, and the token's own calls need `unsafe`.
    pub fn current_user() -> io::Result<User> {
        static ME: OnceLock<Result<User, String>> = OnceLock::new();
        ME.get_or_init(|| {
            let probe = std::env::temp_dir().join(format!(
                ".acr-owner-probe.{}.{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .access_mode(GENERIC_WRITE | READ_CONTROL | DELETE)
                .custom_flags(FILE_FLAG_DELETE_ON_CLOSE)
                .open(&probe)
                .and_then(|f| {
                    let sd = wrappers::GetSecurityInfo(
                        &f,
                        SeObjectType::SE_FILE_OBJECT,
                        SecurityInformation::Owner,
                    )?;
                    sd.owner()
                        .map(|s| s.to_string())
                        .ok_or_else(|| io::Error::other("a new file has no owner"))
                })
                .map_err(|e| format!("in {}: {e}", probe.display()))
        })
        .clone()
        .map_err(io::Error::other)
    }

    /// What lets users other than the owner, `SYSTEM` and the Administrators write the file or
    /// folder at `path` (metadata `meta`, links not followed), as messages say it (`its ACL lets
    /// S-1-5-32-545 write`); `None` when nothing does.
    pub fn others_may_write(path: &Path, _meta: &Metadata) -> io::Result<Option<String>> {
        let sd = wrappers::GetNamedSecurityInfo(
            path.as_os_str(),
            SeObjectType::SE_FILE_OBJECT,
            SecurityInformation::Owner | SecurityInformation::Dacl,
        )?;
        let owner = sd.owner().map(|s| s.to_string()).unwrap_or_default();
        let Some(dacl) = sd.dacl() else {
            return Ok(Some("it has no ACL: everyone may write it".into()));
        };
        for ace in (0..dacl.len()).filter_map(|i| dacl.get_ace(i)) {
            if ace.ace_type() != AceType::ACCESS_ALLOWED_ACE_TYPE
                || ace.flags().contains(AceFlags::InheritOnly)
                || ace.mask().bits() & WRITE_RIGHTS == 0
            {
                continue;
            }
            let Some(sid) = ace.sid().map(|s| s.to_string()) else {
                continue;
            };
            let trusted = sid == owner
                || is_administrator(&sid)
                || OWNERS.contains(&sid.as_str())
                || sid == TRUSTED_INSTALLER;
            if !trusted {
                return Ok(Some(format!("its ACL lets {sid} write")));
            }
        }
        Ok(None)
    }

    /// What identifies a file whatever path reaches it: stable Rust has no file index on
    /// Windows, so none (the caller then reads each file of a folder).
    pub fn file_identity(_meta: &Metadata) -> Option<(u64, u64)> {
        None
    }

    /// Whether the folder lets others add entries but not replace those they do not own: no
    /// Windows folder is trusted that way.
    pub fn keeps_entries_of_their_owners(_meta: &Metadata) -> bool {
        false
    }

    /// The command that gives the folder or file at `path` an owner-only ACL, for messages.
    pub fn fix_others_write(path: &Path) -> String {
        format!(
            "icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:(OI)(CI)F\"",
            path.display()
        )
    }

    /// Creates the folder `dir` (not its parents), with the ACL it inherits until
    /// [`restrict_dir`] replaces it.
    pub fn create_private_dir(dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    /// Gives the folder `dir`, just created by [`create_private_dir`], an owner-only ACL that the
    /// files made in it inherit, through a handle to the folder itself (a reparse point put in its
    /// place is refused, not followed).
    pub fn restrict_dir(dir: &Path) -> io::Result<()> {
        let handle = OpenOptions::new()
            .access_mode(READ_CONTROL | WRITE_DAC | FILE_READ_ATTRIBUTES)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
            .open(dir)?;
        let meta = handle.metadata()?;
        if !meta.is_dir() || meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(io::Error::other(
                "not a real folder (a link or a file is in the way)",
            ));
        }
        owner_only(&handle, true)
    }

    /// Whether `dir` holds `program` as Windows runs it from `PATH`: `program.cmd` (what the
    /// Azure CLI installs: `az.cmd`) or `program.exe`.
    pub fn program_in(dir: &Path, program: &str) -> bool {
        ["cmd", "exe"].iter().any(|ext| {
            std::fs::metadata(dir.join(format!("{program}.{ext}"))).is_ok_and(|m| m.is_file())
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    /// Each flag does what its name says on this platform, through the functions that use it:
    /// a value copied from another architecture (`0o400000` is `O_NOFOLLOW` on x86_64 but
    /// `O_LARGEFILE` on aarch64) fails here, on the platform where it is wrong; the file-safety
    /// tests `scripts/test-cross.sh` runs against the aarch64 build check it there too.
    #[cfg(unix)]
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

    #[cfg(unix)]
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

    #[test]
    fn a_private_folder_is_its_owners_alone_and_others_writing_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("private");
        create_private_dir(&dir).unwrap();
        restrict_dir(&dir).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(others_may_write(&dir, &meta).unwrap(), None);
        assert_eq!(owner(&dir, &meta).unwrap(), current_user().unwrap());
        // A file written there privately is private too.
        let file = dir.join("f");
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let f = create_mode(&mut options, 0o600).open(&file).unwrap();
        set_mode(&f, &file, 0o600).unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!(others_may_write(&file, &meta).unwrap(), None);
        assert!(!program_in(&dir, "f"), "not a program");
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
            "winapi::",
            "MetadataExt",
            "OpenOptionsExt",
            "PermissionsExt",
            "DirBuilderExt",
            "FileTypeExt",
            "custom_flags",
            "from_mode",
            "0o400000",
            "0o100000",
            "cfg(unix)",
            "cfg(windows)",
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
