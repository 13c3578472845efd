//! A real Secret Service for keychain tests: a private D-Bus session bus (`dbus-daemon`) with
//! `gnome-keyring-daemon` on it, its login keyring created and unlocked, all under a temporary
//! folder and stopped on drop. Nothing touches the desktop session of whoever runs the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::Permissions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running session bus with GNOME Keyring answering as `org.freedesktop.secrets`.
pub struct SecretService {
    dir: tempfile::TempDir,
    address: String,
    bus: Child,
    keyring: Child,
}

impl SecretService {
    /// Starts the bus and the keyring daemon and waits until the keyring owns its bus name.
    pub fn start() -> SecretService {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "run"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::set_permissions(dir.path().join("run"), Permissions::from_mode(0o700)).unwrap();
        let socket = dir.path().join("bus");
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // It complains it cannot raise its fd limit when not started by systemd: noise.
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon starts (Debian package dbus-daemon; scripts/install-deps.sh)");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {line:?}");
        let mut service = SecretService {
            keyring: Command::new("true").spawn().unwrap(),
            dir,
            address,
            bus,
        };
        let mut keyring = service
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon starts (Debian package gnome-keyring)");
        // --unlock reads the login keyring's password from stdin, creating the keyring.
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(b"test-login-password").unwrap();
        drop(stdin);
        service.keyring = keyring;
        service.wait_for_owner("org.freedesktop.secrets");
        service
    }

    /// The bus address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The environment a client needs to reach this keyring (bus, runtime and data folders).
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |rel: &str| self.dir.path().join(rel).to_str().unwrap().to_string();
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone()),
            ("XDG_RUNTIME_DIR".into(), p("run")),
        ]
    }

    /// A command with this session's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"));
        c
    }

    /// The keyring daemon's HOME (its keyrings are under `.local/share/keyrings`).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `secret-tool lookup` of an item by its attributes: `Some(secret)` or `None` when the
    /// keyring has no such item. This is libsecret's own client, not the code under test.
    pub fn lookup(&self, attributes: &[(&str, &str)]) -> Option<String> {
        let out = self.secret_tool("lookup", attributes);
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// `secret-tool clear`: removes matching items, as a user would with the keyring's tools.
    pub fn clear(&self, attributes: &[(&str, &str)]) {
        let out = self.secret_tool("clear", attributes);
        assert!(out.status.success(), "secret-tool clear: {out:?}");
    }

    /// Locks the login keyring (Secret Service `Lock`), as a screen locker or a timeout would.
    /// Reading then needs an unlock prompt, which nobody can answer here.
    pub fn lock(&self) {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .output()
            .expect("dbus-send runs (Debian package dbus-bin)");
        assert!(out.status.success(), "Lock: {out:?}");
    }

    fn secret_tool(&self, action: &str, attributes: &[(&str, &str)]) -> Output {
        let mut c = self.command("secret-tool");
        c.arg(action);
        for (k, v) in attributes {
            c.args([k, v]);
        }
        c.stdin(Stdio::null())
            .output()
            .expect("secret-tool runs (Debian package libsecret-tools)")
    }

    fn wait_for_owner(&mut self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                ])
                .arg(format!("string:{name}"))
                .output()
                .expect("dbus-send runs (Debian package dbus-bin)");
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                return;
            }
            if let Ok(Some(status)) = self.keyring.try_wait() {
                panic!("gnome-keyring-daemon exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{name} never appeared on the bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for child in [&mut self.keyring, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
