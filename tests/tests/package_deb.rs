//! The Debian package: `scripts/build-deb.sh` builds it (release profile, static, its own target
//! dir `target/deb`: the binaries as they ship), and it is installed for real with `dpkg -i`, through dpkg's own database and
//! dependency checks, inside a private mount (and network, and PID) namespace whose `/usr`,
//! `/etc` and `/var` are overlays on a tmpfs: the machine's files and dpkg database are never
//! written. Then its binaries must answer `version`, its completions, kubelet configs and docs
//! must be where the README says, and `dpkg -r` must take the binaries away again; then the
//! README's `apt install ./<file>.deb` and `apt remove` are run the same way.
//!
//! Needs root, `unshare` (util-linux), overlayfs and cargo-deb: CI has them all
//! (`scripts/install-deps.sh`). A missing piece fails the test; nothing is skipped.
//!
//! The release build takes minutes. `scripts/test.sh` starts the same command in the same
//! target dir before everything else, in the background, and runs this test last: the test's own
//! run of the script then finds the build up to date (or waits for cargo's lock on that folder
//! until it is) and only packages it. Run alone, the test builds everything itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acr_tests::emulator::{Emulator, EmulatorConfig, Role};
use acr_tests::sandbox::{NOT_FOUND, SP_SECRET, TENANT, current_test};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const PACKAGE: &str = "docker-credential-acr";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The installed (stripped, release-profile, static) binaries must stay under these. Measured at
/// 8,804,600 bytes (8.4 MiB, with the keychain support and a static glibc) and 6,854,896 bytes
/// (6.5 MiB), built with `lto`, `codegen-units = 1`, `panic = "abort"` and `strip`; about 1.5 MiB
/// of headroom.
/// Meant to catch a dependency that brings a second TLS or async stack, or a profile setting
/// lost (how much each would add was not measured).
const SIZE_BUDGETS: &[(&str, u64)] = &[
    ("/usr/bin/docker-credential-acr", 10 * 1024 * 1024),
    ("/usr/bin/acr-credential-provider", 8 * 1024 * 1024),
];

/// Set (to the .deb's path) in the inner run, the one inside the namespaces.
const INNER_DEB: &str = "ACR_DEB_TEST_PACKAGE";
/// The folder the inner run mounts its tmpfs on (made and removed by the outer run).
const INNER_SCRATCH: &str = "ACR_DEB_TEST_SCRATCH";

/// PATH for dpkg (it wants ldconfig and start-stop-daemon from sbin) and for the binaries.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every file or link the package must install, with what it must be.
const LAYOUT: &[(&str, Kind)] = &[
    ("/usr/bin/docker-credential-acr", Kind::Executable),
    ("/usr/bin/acr-credential-provider", Kind::Executable),
    (
        "/usr/libexec/kubelet-credential-providers/acr-credential-provider",
        Kind::LinkTo("../../bin/acr-credential-provider"),
    ),
    (
        "/usr/share/acr-credential-provider/credential-provider-config.yaml",
        Kind::SameAs("packaging/credential-provider-config.yaml"),
    ),
    (
        "/usr/share/acr-credential-provider/credential-provider-config-per-pod.yaml",
        Kind::SameAs("packaging/credential-provider-config-per-pod.yaml"),
    ),
    (
        "/usr/share/acr-credential-provider/credential-provider-config-identity-bindings.yaml",
        Kind::SameAs("packaging/credential-provider-config-identity-bindings.yaml"),
    ),
    (
        "/usr/share/bash-completion/completions/docker-credential-acr",
        Kind::Contains("configure-docker"),
    ),
    (
        "/usr/share/zsh/vendor-completions/_docker-credential-acr",
        Kind::Contains("#compdef docker-credential-acr"),
    ),
    (
        "/usr/share/fish/vendor_completions.d/docker-credential-acr.fish",
        Kind::Contains("complete -c docker-credential-acr"),
    ),
    (
        "/usr/share/doc/docker-credential-acr/README.md",
        Kind::SameAs("README.md"),
    ),
    (
        "/usr/share/doc/docker-credential-acr/README.kubelet.md",
        Kind::SameAs("packaging/README.md"),
    ),
    (
        "/usr/share/doc/docker-credential-acr/DESIGN.md",
        Kind::SameAs("docs/DESIGN.md"),
    ),
    (
        "/usr/share/doc/docker-credential-acr/SECURITY.md",
        Kind::SameAs("docs/SECURITY.md"),
    ),
    (
        "/usr/share/doc/docker-credential-acr/copyright",
        Kind::SameAs("packaging/debian/copyright"),
    ),
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A regular executable file.
    Executable,
    /// A symlink with this target, resolving to an executable.
    LinkTo(&'static str),
    /// A regular file with the same bytes as this file of the repository.
    SameAs(&'static str),
    /// A regular file containing this text.
    Contains(&'static str),
}

#[test]
fn deb_installs_answers_version_and_removes() {
    if let Some(deb) = std::env::var_os(INNER_DEB) {
        let scratch = std::env::var_os(INNER_SCRATCH).expect("the outer run names a scratch dir");
        inside_namespace(Path::new(&deb), Path::new(&scratch));
        return;
    }
    let started = Instant::now();
    let root = repo_root();
    let deb = build_deb(&root);
    eprintln!(
        "package_deb: built {} in {:.0?}",
        deb.display(),
        started.elapsed()
    );
    check_archive(&deb);

    // The install runs in a re-run of this test inside the namespaces.
    let host_before = host_state();
    let scratch = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let installed = Instant::now();
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
        ])
        .arg(&exe)
        .args([
            "--exact",
            &current_test(),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_DEB, &deb)
        .env(INNER_SCRATCH, scratch.path())
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux) runs");
    let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "the install inside a private mount namespace failed (needs root and overlayfs):\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "the inner run ran no test:\n{text}"
    );
    for line in text.lines().filter(|l| l.starts_with("package_deb: ")) {
        eprintln!("{line}");
    }
    eprintln!(
        "package_deb: installed, checked and removed in {:.0?} (total {:.0?})",
        installed.elapsed(),
        started.elapsed()
    );
    assert_eq!(
        host_state(),
        host_before,
        "the install inside the namespace changed the machine's dpkg state or /usr/bin"
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Runs the documented build command with its own target dir (the outer `cargo test` keeps its
/// own target dir locked), and returns the package it printed.
fn build_deb(root: &Path) -> PathBuf {
    let script = root.join("scripts/build-deb.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", root.join("target/deb"))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\n{}",
        script.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.is_file() && deb.extension().is_some_and(|e| e == "deb"),
        "build-deb.sh's last line is not a .deb: {stdout}"
    );
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("{PACKAGE}_{VERSION}-1_")),
        "unexpected package file name {name}"
    );
    deb
}

/// The control fields and file list, read from the archive before installing it.
fn check_archive(deb: &Path) {
    let fields = ok(Command::new("dpkg-deb").arg("--field").arg(deb));
    for want in [
        format!("Package: {PACKAGE}"),
        format!("Version: {VERSION}-1"),
        "Section: misc".to_string(),
        "Priority: optional".to_string(),
    ] {
        assert!(
            fields.lines().any(|l| l == want),
            "{want} not in:\n{fields}"
        );
    }
    // Static binaries: no shared library to depend on; the CA store for TLS.
    assert!(
        fields.lines().any(|l| l == "Depends: ca-certificates"),
        "{fields}"
    );
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    for (path, _) in LAYOUT {
        assert!(
            listing.contains(&format!(".{path}")),
            "{path} is not in the package:\n{listing}"
        );
    }
    assert!(
        !listing.contains(" ./etc/"),
        "the package must enable nothing under /etc:\n{listing}"
    );
}

/// What a stray install on the machine would change.
fn host_state() -> (String, bool, bool) {
    let status = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", PACKAGE])
        .output()
        .expect("dpkg-query runs");
    (
        text(&status.stdout),
        Path::new("/usr/bin/docker-credential-acr").exists(),
        Path::new("/usr/libexec/kubelet-credential-providers").exists(),
    )
}

/// The inner run: overlays, `dpkg -i`, checks, `dpkg -r`, checks.
fn inside_namespace(deb: &Path, scratch: &Path) {
    let root = repo_root();
    isolate(scratch);

    if status(PACKAGE).is_some_and(|s| s.ends_with(" installed")) {
        // The machine has the package: start this private copy of it from a clean state.
        ok(dpkg().args(["--purge", PACKAGE]));
    }
    assert!(!Path::new("/usr/bin/docker-credential-acr").exists());

    // For real: dpkg's database, its dependency checks (no --force-*), maintainer steps.
    let log = ok(dpkg().arg("--install").arg(deb));
    assert_eq!(
        status(PACKAGE).as_deref(),
        Some("install ok installed"),
        "dpkg -i did not leave the package configured:\n{log}"
    );
    let fields = ok(Command::new("dpkg-query").args(["--status", PACKAGE]));
    assert!(
        fields.contains(&format!("\nVersion: {VERSION}-1\n")),
        "{fields}"
    );

    let listed = ok(Command::new("dpkg-query").args(["--listfiles", PACKAGE]));
    for (path, kind) in LAYOUT {
        assert!(
            listed.lines().any(|l| l == *path),
            "dpkg -L does not list {path}:\n{listed}"
        );
        check_file(&root, Path::new(path), *kind);
    }
    assert!(
        !listed.lines().any(|l| l.starts_with("/etc/")),
        "the package installed files under /etc:\n{listed}"
    );

    for &(bin, budget) in SIZE_BUDGETS {
        // Static and not position-independent (scripts/build-deb.sh): no program interpreter,
        // so no dynamic loader runs at all.
        let headers = ok(Command::new("readelf").args(["--program-headers", bin]));
        assert!(
            !headers.contains("INTERP") && headers.contains("EXEC (Executable file)"),
            "{bin} is not a static, non-PIE executable:\n{headers}"
        );
        let size = std::fs::metadata(bin).unwrap().len();
        eprintln!("package_deb: {bin}: {size} bytes (budget {budget})");
        assert!(
            size < budget,
            "{bin} is {size} bytes, over its budget of {budget}: check [profile.release] and \
             new dependencies"
        );
    }

    let home = scratch.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let version = run(&home, "docker-credential-acr", &["version"], "");
    assert!(version.status.success(), "{version:?}");
    assert_eq!(text(&version.stdout), format!("{PACKAGE} {VERSION}\n"));
    for provider in [
        "acr-credential-provider",
        // The path the kubelet runs, through --image-credential-provider-bin-dir.
        "/usr/libexec/kubelet-credential-providers/acr-credential-provider",
    ] {
        let version = run(&home, provider, &["--version"], "");
        assert!(version.status.success(), "{provider}: {version:?}");
        assert_eq!(
            text(&version.stdout),
            format!("acr-credential-provider {VERSION}\n")
        );
    }
    cold_get_through_the_installed_binary(&home);
    // Not an ACR host: the protocol's "not found", at once and with no network.
    let get = run(&home, "docker-credential-acr", &["get"], "docker.io");
    assert_eq!(get.status.code(), Some(1), "{get:?}");
    assert_eq!(text(&get.stdout).trim_end(), NOT_FOUND, "{get:?}");
    // Every command has --help: the top level's list of commands, each with its own page.
    let help = run(&home, "docker-credential-acr", &["--help"], "");
    assert!(help.status.success(), "{help:?}");
    let top = text(&help.stdout);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    for want in ["get", "store", "erase", "list", "version", "completions"] {
        assert!(
            commands.contains(&want),
            "{want} missing from --help:\n{top}"
        );
    }
    for command in commands {
        let help = run(&home, "docker-credential-acr", &[command, "--help"], "");
        let page = text(&help.stdout);
        assert!(help.status.success(), "{command} --help: {help:?}");
        assert!(
            page.contains(&format!("Usage: docker-credential-acr {command}")),
            "{command} --help:\n{page}"
        );
    }
    let help = run(&home, "acr-credential-provider", &["--help"], "");
    assert!(
        help.status.success() && text(&help.stdout).contains("Usage: acr-credential-provider"),
        "{help:?}"
    );
    // The bash completion loads and registers itself.
    let bash = Command::new("bash")
        .env_clear()
        .env("PATH", PATH)
        .arg("-c")
        .arg(
            "source /usr/share/bash-completion/completions/docker-credential-acr \
             && complete -p docker-credential-acr",
        )
        .output()
        .unwrap();
    assert!(
        bash.status.success() && text(&bash.stdout).contains("docker-credential-acr"),
        "{bash:?}"
    );

    let log = ok(dpkg().args(["--remove", PACKAGE]));
    assert!(
        !status(PACKAGE).is_some_and(|s| s.ends_with(" installed")),
        "dpkg -r left the package installed:\n{log}"
    );
    for (path, _) in LAYOUT {
        // dpkg -r keeps only conffiles, and the package has none.
        let gone = std::fs::symlink_metadata(path).is_err();
        assert!(gone, "dpkg -r left {path} behind");
    }

    // The README's route: `apt install ./<file>.deb` (dependencies resolved by apt), then
    // `apt remove`. apt-get, the same with a stable command line.
    let file = format!("./{}", deb.file_name().unwrap().to_string_lossy());
    let log = ok(tool("apt-get")
        .args(["install", "--yes", "--no-install-recommends", &file])
        .current_dir(deb.parent().unwrap()));
    assert_eq!(
        status(PACKAGE).as_deref(),
        Some("install ok installed"),
        "apt-get install {file}:\n{log}"
    );
    let version = run(&home, "docker-credential-acr", &["version"], "");
    assert_eq!(text(&version.stdout), format!("{PACKAGE} {VERSION}\n"));
    let log = ok(tool("apt-get").args(["remove", "--yes", PACKAGE]));
    assert!(
        !Path::new("/usr/bin/docker-credential-acr").exists(),
        "apt-get remove:\n{log}"
    );
}

/// A cold `get` by the installed (static) helper: it resolves `localhost` with its own built-in
/// resolver, verifies the emulator's TLS certificate, gets an Entra token and exchanges it, as on
/// a user's machine. The namespace's only network is loopback, brought up here.
fn cold_get_through_the_installed_binary(home: &Path) {
    ok(Command::new("ip").args(["link", "set", "lo", "up"]));
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let registry = format!("localhost:{}", emu.port());
    emu.add_registry(&registry);
    let p = emu.add_secret_principal(TENANT, "44444444-4444-4444-4444-444444444444", SP_SECRET);
    emu.grant(&p.client_id, &registry, Role::AcrPull);
    let out = Command::new("docker-credential-acr")
        .arg("get")
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", home)
        .env("SSL_CERT_FILE", emu.ca_pem_path())
        .env("AZURE_AUTHORITY_HOST", emu.base_url())
        .env("ACR_LOGIN_SERVERS", &registry)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", &p.client_id)
        .env("AZURE_CLIENT_SECRET", SP_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(registry.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "cold get: {out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["Username"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(emu.counters().entra(), 1);
    assert_eq!(emu.counters().exchange(), 1);
}

/// Makes this mount namespace's `/usr`, `/etc` and `/var` writable overlays whose upper layers
/// live on a tmpfs, so dpkg writes only there.
fn isolate(scratch: &Path) {
    // `unshare --propagation private` already did this; again, so that no mount below can leak.
    ok(Command::new("mount").args(["--make-rprivate", "/"]));
    ok(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0755", "acr-deb-test"])
        .arg(scratch));
    let dirs = ["usr", "etc", "var"];
    for d in dirs {
        for layer in ["upper", "work"] {
            std::fs::create_dir_all(scratch.join(d).join(layer)).unwrap();
        }
    }
    // /var last: the scratch folder may itself be under /var (TMPDIR=/var/tmp).
    for d in dirs {
        let upper = scratch.join(d).join("upper");
        let work = scratch.join(d).join("work");
        let options = format!(
            "lowerdir=/{d},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        ok(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(format!("/{d}")));
    }
    // Proof that writes land in the overlay, not on the machine.
    std::fs::write("/var/lib/dpkg/acr-deb-test-probe", b"x").unwrap();
    assert!(
        scratch
            .join("var/upper/lib/dpkg/acr-deb-test-probe")
            .is_file(),
        "/var is not the overlay"
    );
    std::fs::remove_file("/var/lib/dpkg/acr-deb-test-probe").unwrap();
}

fn check_file(root: &Path, path: &Path, kind: Kind) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} is not installed: {e}", path.display()));
    match kind {
        Kind::Executable => {
            assert!(meta.is_file(), "{} is not a file", path.display());
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o755,
                "{}",
                path.display()
            );
        }
        Kind::LinkTo(target) => {
            assert!(meta.is_symlink(), "{} is not a symlink", path.display());
            assert_eq!(std::fs::read_link(path).unwrap(), Path::new(target));
            let resolved = std::fs::metadata(path).unwrap();
            assert!(resolved.is_file() && resolved.permissions().mode() & 0o111 != 0);
        }
        Kind::SameAs(rel) => {
            assert!(meta.is_file(), "{} is not a file", path.display());
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o644,
                "{}",
                path.display()
            );
            assert!(
                std::fs::read(path).unwrap() == std::fs::read(root.join(rel)).unwrap(),
                "{} differs from {rel}",
                path.display()
            );
        }
        Kind::Contains(needle) => {
            assert!(meta.is_file(), "{} is not a file", path.display());
            let body = std::fs::read_to_string(path).unwrap();
            assert!(body.contains(needle), "{} lacks {needle:?}", path.display());
        }
    }
}

/// dpkg with a PATH that has its helpers and no inherited settings.
fn dpkg() -> Command {
    tool("dpkg")
}

/// A package tool run as an administrator would, its temporary files in the overlay.
fn tool(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", PATH)
        .env("TMPDIR", "/var/tmp")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    c
}

/// The package's `Status` field, if dpkg knows the package.
fn status(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .expect("dpkg-query runs");
    out.status.success().then(|| text(&out.stdout))
}

/// Runs an installed program as a user would: found on PATH, with a clean environment.
fn run(home: &Path, program: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    if let Err(e) = pipe.write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Runs `cmd`, fails the test with its output unless it succeeds, returns its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
