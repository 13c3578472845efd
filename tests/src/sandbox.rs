//! A test's world: an [`Emulator`], a private HOME, the environment that points a helper binary
//! at both, and ways to run the binary and look at what it did.
//!
//! Also [`in_private_netns`], which re-runs a test inside a network namespace of its own so it
//! can use fixed addresses (IMDS's 169.254.169.254, port 443 under an ACR name) without touching
//! the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::emulator::{Emulator, EmulatorConfig, Principal, Role};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The tenant the sandbox's identities live in.
pub use crate::TENANT;
/// The client secret of [`Sandbox::with_secret_principal`]'s identity.
pub const SP_SECRET: &str = "sp-secret-value-1";
/// The Docker protocol's "no credentials" answer.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// An emulator with two registries, a temp HOME, and the environment for the binary under test.
pub struct Sandbox {
    /// The emulator.
    pub emu: Emulator,
    /// The temporary HOME (removed on drop).
    pub home: tempfile::TempDir,
    /// The binary under test.
    pub bin: PathBuf,
    /// A registry as clients name it: `localhost:PORT`.
    pub registry: String,
    /// A second registry on the same emulator: `127.0.0.1:PORT`.
    pub registry2: String,
    /// The binary's whole environment (it runs with a cleared one).
    pub env: BTreeMap<String, String>,
}

impl Sandbox {
    /// A sandbox with no identity configured. `bin` is the binary under test as this build made
    /// it; [`product_bin`] may put another build's in its place.
    pub fn new(bin: impl Into<PathBuf>) -> Sandbox {
        let bin = product_bin(&bin.into());
        let emu = Emulator::start(EmulatorConfig::default()).expect("emulator starts");
        let registry = format!("localhost:{}", emu.port());
        let registry2 = format!("127.0.0.1:{}", emu.port());
        emu.add_registry(&registry);
        emu.add_registry(&registry2);
        let home = tempfile::tempdir().unwrap();
        let h = |rel: &str| home.path().join(rel).to_str().unwrap().to_string();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("HOME", h("")),
            // The machine's own facts stay out: no `az` from the host (an empty folder; tests
            // that want one put a stand-in first), no DMI asset tag (so an Azure VM behaves as
            // any other machine).
            ("PATH", h("bin")),
            ("ACR_DMI_ASSET_TAG_FILE", h("no-asset-tag")),
            (
                "SSL_CERT_FILE",
                emu.ca_pem_path().to_str().unwrap().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", emu.base_url()),
            ("ACR_LOGIN_SERVERS", format!("{registry},{registry2}")),
            ("XDG_CACHE_HOME", h("cache")),
            ("XDG_CONFIG_HOME", h("config")),
            ("ACR_CACHE_DIR", h("cache/docker-credential-acr")),
            // No session bus answers here: `store` never reaches the keychain of whoever runs
            // the tests. Keychain tests point this at their own (`crate::secret_service`).
            (
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", h("no-session-bus")),
            ),
        ] {
            env.insert(k.to_string(), v);
        }
        Sandbox {
            emu,
            home,
            bin,
            registry,
            registry2,
            env,
        }
    }

    /// A sandbox whose identity is a service principal with a secret and AcrPull on both
    /// registries.
    pub fn with_secret_principal(bin: impl Into<PathBuf>) -> (Sandbox, Principal) {
        let mut s = Sandbox::new(bin);
        let p =
            s.emu
                .add_secret_principal(TENANT, "11111111-1111-1111-1111-111111111111", SP_SECRET);
        s.emu.grant(&p.client_id, &s.registry, Role::AcrPull);
        s.emu.grant(&p.client_id, &s.registry2, Role::AcrPull);
        s.set("AZURE_TENANT_ID", TENANT);
        s.set("AZURE_CLIENT_ID", &p.client_id);
        s.set("AZURE_CLIENT_SECRET", SP_SECRET);
        (s, p)
    }

    /// Sets a variable of the binary's environment.
    pub fn set(&mut self, k: &str, v: &str) {
        self.env.insert(k.to_string(), v.to_string());
    }

    /// Removes a variable of the binary's environment.
    pub fn unset(&mut self, k: &str) {
        self.env.remove(k);
    }

    /// A path inside HOME.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// The broker's cache folder.
    pub fn cache_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["ACR_CACHE_DIR"])
    }

    /// Runs the binary with `args` and `stdin`.
    ///
    /// Every run is also checked for leaks: no secret the emulator knows or handed out (client
    /// secrets, the identity header, every token it signed) may appear on stderr, whatever the
    /// log level, nor on stdout when the run failed (the Docker helper writes its errors there;
    /// a successful run's stdout is the protocol answer, which carries the credential).
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let out = run(&self.bin, &self.env, args, stdin);
        assert_no_secret(
            &self.emu,
            &out.stderr,
            &format!("stderr of {} {args:?}", self.bin.display()),
        );
        if !out.status.success() {
            assert_no_secret(
                &self.emu,
                &out.stdout,
                &format!("stdout of the failed {} {args:?}", self.bin.display()),
            );
        }
        out
    }

    /// Starts the binary with `args` and writes `stdin` to it, without waiting: for concurrency
    /// and kill tests.
    pub fn spawn(&self, args: &[&str], stdin: &str) -> std::process::Child {
        let mut child = spawn(&self.bin, &self.env, args);
        if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        child
    }

    /// Every file under HOME with its bytes, to prove a command changed nothing.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(self.home.path(), &mut out);
        out
    }
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
        }
    }
}

/// Runs `bin` with exactly `env`, `args` and `stdin`, and collects its output.
pub fn run(bin: &Path, env: &BTreeMap<String, String>, args: &[&str], stdin: &str) -> Output {
    let mut child = spawn(bin, env, args);
    // A binary that does not read stdin may be gone before the write: a broken pipe is fine.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// Fails the test if any secret of `emu` appears in `bytes`.
pub fn assert_no_secret(emu: &Emulator, bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    for secret in emu.secrets() {
        assert!(!text.contains(&secret), "a secret leaked into {what}");
    }
}

/// Starts `bin` with exactly `env` and `args`, stdin, stdout and stderr piped; the caller writes
/// the request and waits (or kills). A binary of [`product_bin`]'s other build runs under the
/// [`RUNNER`].
pub fn spawn(bin: &Path, env: &BTreeMap<String, String>, args: &[&str]) -> std::process::Child {
    command(bin)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", bin.display()))
}

/// A command's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Decodes a JWT's claims (no verification), to check which identity a token belongs to.
pub fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Names a folder holding the product binaries (`docker-credential-acr`,
/// `acr-credential-provider`, or the same with `.exe`) of another build, typically another
/// target's (`scripts/test-cross.sh`): the tests then run those instead of the ones this build
/// made, under [`RUNNER`].
pub const BIN_DIR: &str = "ACR_TEST_BIN_DIR";
/// The command, split on spaces, that runs a binary of [`BIN_DIR`] (e.g. `/usr/bin/qemu-aarch64
/// -L /usr/aarch64-linux-gnu`, or a script running Wine); unset or empty: the binary runs
/// itself. Absolute paths: the binaries run with the sandbox's `PATH`.
pub const RUNNER: &str = "ACR_TEST_RUNNER";

/// The binaries [`BIN_DIR`] replaces: the shipped ones (never the emulator).
pub const PRODUCTS: [&str; 2] = ["docker-credential-acr", "acr-credential-provider"];

/// The binary to run in place of `built` (a binary this build made): with [`BIN_DIR`] set and
/// `built` one of the [`PRODUCTS`], the binary of the same name there (`name`, else
/// `name.exe`); else `built` itself. Panics when [`BIN_DIR`] has no such binary, so a cross run
/// never tests the native build by mistake.
pub fn product_bin(built: &Path) -> PathBuf {
    let Some(dir) = std::env::var_os(BIN_DIR).filter(|d| !d.is_empty()) else {
        return built.to_path_buf();
    };
    let Some(name) = built
        .file_stem()
        .filter(|n| PRODUCTS.iter().any(|p| **n == **p))
    else {
        return built.to_path_buf();
    };
    let dir = PathBuf::from(dir);
    let plain = dir.join(name);
    let exe = dir.join(format!("{}.exe", name.to_string_lossy()));
    [plain, exe]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{BIN_DIR}={} holds no {name:?} (nor .exe)", dir.display()))
}

/// The words of [`RUNNER`], empty when it is unset.
pub fn runner() -> Vec<String> {
    std::env::var(RUNNER)
        .unwrap_or_default()
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A command that runs `bin`: under the [`RUNNER`] when `bin` is in [`BIN_DIR`], else `bin`
/// itself. Nothing else is set.
pub fn command(bin: &Path) -> Command {
    let dir = std::env::var_os(BIN_DIR).filter(|d| !d.is_empty());
    let runner = runner();
    match (dir, runner.split_first()) {
        (Some(dir), Some((program, args))) if bin.starts_with(&dir) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

/// [`command`] as one line for `sh`: its program and arguments, each quoted.
pub fn shell_words(bin: &Path) -> String {
    let c = command(bin);
    let quote = |w: &std::ffi::OsStr| format!("'{}'", w.to_string_lossy().replace('\'', "'\\''"));
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes `at` run `bin` as [`command`] does, for clients that find the binary on `PATH` (the
/// docker CLI, skopeo, the kubelet): a symlink to `bin`, or, under a [`RUNNER`], a small `sh`
/// script that runs it there with its arguments.
pub fn install_bin(bin: &Path, at: &Path) -> std::io::Result<()> {
    if command(bin).get_program() == bin.as_os_str() {
        return std::os::unix::fs::symlink(bin, at);
    }
    std::fs::write(at, format!("#!/bin/sh\nexec {} \"$@\"\n", shell_words(bin)))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755))
}

/// The path of a binary of this workspace (`docker-credential-acr`, `acr-credential-provider`,
/// `acr-emulator`) built with the same profile as the running test (the first two from
/// [`BIN_DIR`] when it is set, see [`product_bin`]): tests run from
/// `target/<profile>/deps/`, binaries sit in `target/<profile>/`. Panics, saying what to run,
/// when the binary has not been built (`cargo test` builds only the test's own crate's binaries).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot find the test executable's path: {e}"));
    let deps = exe.parent().unwrap_or(Path::new("/"));
    let profile_dir = match deps.parent() {
        Some(profile) if deps.file_name().is_some_and(|n| n == "deps") => profile,
        _ => deps,
    };
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    // The product binaries may come from another build ([`BIN_DIR`]).
    let other = product_bin(&bin);
    if other != bin {
        return other;
    }
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (with the same profile and \
         CARGO_TARGET_DIR as `cargo test`) before the tests, as scripts/test.sh does",
        bin.display()
    );
    bin
}

const INNER: &str = "ACR_TEST_INSIDE_NETNS";

/// Whether this process is the inner run of [`in_private_netns`], so it may change mounts and
/// addresses without touching the machine.
pub fn inside_private_netns() -> bool {
    std::env::var_os(INNER).is_some()
}

/// The name of the running test as the test harness knows it (libtest names each test's thread
/// after it, e.g. `module::test_name`), so a test can re-run itself alone.
pub fn current_test() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => panic!(
            "current_test: call it from a test's own thread (libtest names it after the test)"
        ),
    }
}

/// Runs the current test ([`current_test`]) inside a private network (and mount) namespace with
/// loopback up and the given extra addresses on it, by re-running the current test binary under
/// `unshare`.
/// Returns `true` in the inner run (the caller then does the test's work) and `false` in the
/// outer one, after asserting that the inner run passed. Needs root, as CI has.
///
/// The inner run is PID 1 of a private PID namespace too (`--pid --fork --kill-child`): whatever
/// it starts (registries, clients) dies with it, even when the run is killed.
pub fn in_private_netns(addresses: &[&str]) -> bool {
    if inside_private_netns() {
        let mut cmds: Vec<Vec<&str>> = vec![vec!["link", "set", "lo", "up"]];
        for a in addresses {
            cmds.push(vec!["addr", "add", a, "dev", "lo"]);
        }
        for args in cmds {
            let s = Command::new("ip")
                .args(&args)
                .status()
                .expect("ip (iproute2) runs");
            assert!(s.success(), "ip {args:?}");
        }
        return true;
    }
    let test = current_test();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
        ])
        .arg(exe)
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run of {test} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inner run ran {test}:\n{text}"
    );
    false
}
