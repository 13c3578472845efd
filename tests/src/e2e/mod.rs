//! End-to-end worlds: the emulator on port 443 under real ACR names, real registries
//! (Debian `docker-registry`) behind it, and real clients (`skopeo`, the `docker` CLI) that find
//! `docker-credential-acr` through `credHelpers` in a throw-away Docker config.
//!
//! A [`World`] lives inside the private network and mount namespace of one test
//! ([`isolated`]): there it bind-mounts its own hosts file over `/etc/hosts`, so
//! `myregistry.azurecr.io`, `otherregistry.azurecr.io` and `login.microsoftonline.com` resolve to
//! [`SERVICE_ADDRESS`] and `localhost` to 127.0.0.1, both on `lo`, and nothing leaves the
//! namespace; `169.254.169.254` is on `lo` for IMDS. The emulator listens on port 443 of all of
//! them. The registry names deliberately do not resolve to loopback: the docker CLI treats
//! registries on 127.0.0.0/8 as insecure (it skips TLS verification and falls back to plain
//! HTTP), which would hide what it does with a real ACR. No `ACR_LOGIN_SERVERS` and no `AZURE_AUTHORITY_HOST`: the helper takes its real-name
//! path. The emulator's CA is trusted through `SSL_CERT_FILE` (the helper; Go clients read it too)
//! and, for skopeo, `--src-cert-dir`/`--dest-cert-dir`.

pub mod oci;
mod registry;

pub use registry::{Distribution, config_yaml};

use crate::emulator::{Emulator, EmulatorConfig, Principal, Role};
use crate::sandbox::{in_private_netns, inside_private_netns, install_bin, workspace_bin};
use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What the e2e helpers return.
pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The first registry of a [`World`].
pub const REGISTRY: &str = "myregistry.azurecr.io";
/// The second registry of a [`World`] started with two.
pub const REGISTRY2: &str = "otherregistry.azurecr.io";
/// The public cloud's Entra authority host, which the helper uses for `*.azurecr.io`.
pub const AUTHORITY: &str = "login.microsoftonline.com";
/// The tenant of the worlds' app registrations.
pub use crate::TENANT;
/// The client id of [`World::use_secret_principal`]'s service principal.
pub const SP_CLIENT_ID: &str = "11111111-1111-1111-1111-111111111111";
/// Its client secret.
pub const SP_SECRET: &str = "s3cret";
/// IMDS's address, present on `lo` in [`isolated`] namespaces.
pub const IMDS: &str = "169.254.169.254";
/// The address the registry and authority names resolve to in [`isolated`] namespaces: from
/// TEST-NET-1 (RFC 5737, documentation only), so it is nobody's real host, and not loopback.
pub const SERVICE_ADDRESS: &str = "192.0.2.10";

/// The machine's programs a world's clients are: linked into its `tools` folder, which with its
/// `bin` folder (the helper and stand-ins) is the whole of its `PATH`. No other program of the
/// machine, such as an installed `az` or another credential helper, can be found by accident.
pub const CLIENT_TOOLS: &[&str] = &["skopeo", "docker", "podman", "buildah"];

/// Where [`CLIENT_TOOLS`] are looked for: the system's folders, not the `PATH` of whoever runs
/// the tests.
const SYSTEM_FOLDERS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Runs the current test in a private network and mount namespace with 169.254.169.254 and
/// [`SERVICE_ADDRESS`] on `lo` (see [`in_private_netns`]); `true` in the inner run, which does
/// the work.
pub fn isolated() -> bool {
    in_private_netns(&[&format!("{IMDS}/32"), &format!("{SERVICE_ADDRESS}/32")])
}

/// The backend port of the `index`th registry (namespaces are private, so fixed ports are fine).
fn backend_port(index: usize) -> u16 {
    5000 + u16::try_from(index).unwrap_or(0)
}

/// One test's world; see the module documentation. Dropping it stops the registries and the
/// emulator and removes every file (the hosts bind mount dies with the namespace).
pub struct World {
    /// The emulator, listening on port 443.
    pub emu: Emulator,
    registries: Vec<(String, Distribution)>,
    dir: tempfile::TempDir,
    /// The environment every client and helper runs with (and nothing else).
    pub env: BTreeMap<String, String>,
}

impl World {
    /// Starts the emulator and one `docker-registry` per login server in `registries`, writes
    /// the Docker config (`credHelpers`: each registry → `acr`) and the environment. Must run
    /// inside [`isolated`].
    pub fn start(registries: &[&str]) -> Result<World> {
        if !inside_private_netns() {
            return Err(
                "World::start changes /etc/hosts: call it only inside e2e::isolated".into(),
            );
        }
        let dir = tempfile::Builder::new().prefix("acr-e2e-").tempdir()?;
        let root = dir.path().to_path_buf();

        let hosts = root.join("hosts");
        let mut names = vec![AUTHORITY.to_owned()];
        names.extend(registries.iter().map(|r| (*r).to_owned()));
        std::fs::write(
            &hosts,
            format!(
                "127.0.0.1 localhost\n::1 localhost ip6-localhost\n{SERVICE_ADDRESS} {}\n",
                names.join(" ")
            ),
        )?;
        run_ok(
            Command::new("mount")
                .arg("--bind")
                .arg(&hosts)
                .arg("/etc/hosts"),
        )?;

        // Every address of the namespace: the service names, and localhost for App Service.
        let emu = Emulator::start(EmulatorConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            registries: registries.iter().map(|r| (*r).to_owned()).collect(),
            ..EmulatorConfig::default()
        })?;
        let mut backends = Vec::new();
        for (i, name) in registries.iter().enumerate() {
            let registry = Distribution::start(
                name,
                backend_port(i),
                &emu,
                &root.join(format!("registry-{i}")),
            )?;
            emu.set_upstream(name, &registry.url())?;
            backends.push(((*name).to_owned(), registry));
        }

        let home = root.join("home");
        let docker_config = home.join(".docker");
        std::fs::create_dir_all(&docker_config)?;
        let helpers: serde_json::Map<String, serde_json::Value> = registries
            .iter()
            .map(|r| ((*r).to_owned(), "acr".into()))
            .collect();
        std::fs::write(
            docker_config.join("config.json"),
            serde_json::to_string_pretty(&serde_json::json!({ "credHelpers": helpers }))?,
        )?;
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin)?;
        install_bin(
            &workspace_bin("docker-credential-acr"),
            &bin.join("docker-credential-acr"),
        )?;
        let tools = root.join("tools");
        std::fs::create_dir_all(&tools)?;
        for tool in CLIENT_TOOLS {
            // A tool that is not installed stays missing: running it says to install it.
            if let Some(found) = SYSTEM_FOLDERS
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.is_file())
            {
                std::os::unix::fs::symlink(found, tools.join(tool))?;
            }
        }
        let certs = root.join("certs");
        std::fs::create_dir_all(&certs)?;
        std::fs::write(certs.join("ca.crt"), emu.ca_pem())?;
        for sub in ["run", ".config", ".cache"] {
            let p = if sub == "run" {
                root.join(sub)
            } else {
                home.join(sub)
            };
            std::fs::create_dir_all(&p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
        }

        let text = |p: &Path| p.to_string_lossy().into_owned();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("HOME", text(&home)),
            // The helper and stand-ins, then the clients: nothing else of the machine's.
            ("PATH", format!("{}:{}", text(&bin), text(&tools))),
            ("DOCKER_CONFIG", text(&docker_config)),
            ("XDG_CONFIG_HOME", text(&home.join(".config"))),
            ("XDG_CACHE_HOME", text(&home.join(".cache"))),
            ("XDG_RUNTIME_DIR", text(&root.join("run"))),
            ("SSL_CERT_FILE", text(emu.ca_pem_path())),
            // No DMI asset tag: an Azure VM running the tests behaves as any other machine.
            ("ACR_DMI_ASSET_TAG_FILE", text(&root.join("no-asset-tag"))),
            // No daemon: make sure the docker CLI cannot find one of the machine's.
            (
                "DOCKER_HOST",
                format!("unix://{}", text(&root.join("no-daemon.sock"))),
            ),
        ] {
            env.insert(k.to_owned(), v);
        }
        Ok(World {
            emu,
            registries: backends,
            dir,
            env,
        })
    }

    /// A path inside the world's temporary folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The folder of the `ca.crt` that skopeo's `--src-cert-dir`/`--dest-cert-dir` take.
    pub fn cert_dir(&self) -> PathBuf {
        self.path("certs")
    }

    /// The folder on `PATH` that holds `docker-credential-acr` (and stand-ins such as `az`).
    pub fn bin_dir(&self) -> PathBuf {
        self.path("bin")
    }

    /// The helper's cache folder (`$XDG_CACHE_HOME/docker-credential-acr`).
    pub fn cache_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["XDG_CACHE_HOME"]).join("docker-credential-acr")
    }

    /// The cached ACR refresh tokens (`reg-*.json`).
    pub fn cached_refresh_tokens(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.cache_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("reg-") && n.ends_with(".json"))
            })
            .collect();
        out.sort();
        out
    }

    /// Sets a variable of the clients' environment.
    pub fn set(&mut self, k: &str, v: &str) {
        self.env.insert(k.to_owned(), v.to_owned());
    }

    /// Writes a file inside the world's folder with `mode`; returns its path.
    pub fn write_file(&self, rel: &str, content: &str, mode: u32) -> Result<PathBuf> {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, content)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        Ok(p)
    }

    /// Serves IMDS on 169.254.169.254:80, as on an Azure VM.
    pub fn serve_imds(&self) -> Result<()> {
        self.emu
            .serve_imds_http(SocketAddr::from(([169, 254, 169, 254], 80)))?;
        Ok(())
    }

    /// Makes a service principal with a client secret the clients' identity (the `AZURE_*`
    /// variables), with `role` on every registry of the world; returns it.
    pub fn use_secret_principal(&mut self, role: Role) -> Principal {
        let sp = self
            .emu
            .add_secret_principal(TENANT, SP_CLIENT_ID, SP_SECRET);
        for (registry, _) in &self.registries {
            self.emu.grant(&sp.client_id, registry, role);
        }
        self.set("AZURE_TENANT_ID", TENANT);
        self.set("AZURE_CLIENT_ID", &sp.client_id);
        self.set("AZURE_CLIENT_SECRET", SP_SECRET);
        sp
    }

    /// Puts an `az` stand-in on `PATH` that answers `az account get-access-token` with
    /// `access_token` (expiring at `expires_on`, unix seconds), as after `az login`, and logs its
    /// arguments to `az.log` in the world's folder.
    pub fn install_az(&self, access_token: &str, expires_on: i64) -> Result<()> {
        crate::az::install(
            &self.bin_dir(),
            &self.path("az.log"),
            access_token,
            expires_on,
        )?;
        Ok(())
    }

    /// Runs `program` with `args`, `stdin` and exactly the world's environment.
    pub fn run(&self, program: &str, args: &[&str], stdin: &str) -> Result<Output> {
        // A product binary of another build (`sandbox::BIN_DIR`) runs under its runner.
        let mut child = crate::sandbox::command(Path::new(program))
            .args(args)
            .env_clear()
            .envs(&self.env)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program} could not start ({e}): run scripts/install-deps.sh"))?;
        if let Some(mut input) = child.stdin.take()
            && let Err(e) = input.write_all(stdin.as_bytes())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e.into());
        }
        Ok(child.wait_with_output()?)
    }

    /// Runs `skopeo` with `args`, trusting the emulator's CA for both ends of a copy.
    pub fn skopeo(&self, args: &[&str]) -> Result<Output> {
        let certs = self.cert_dir().to_string_lossy().into_owned();
        let mut all: Vec<&str> = Vec::new();
        let mut rest = args.iter().copied();
        if let Some(cmd) = rest.next() {
            all.push(cmd);
            match cmd {
                "copy" => all.extend(["--src-cert-dir", &certs, "--dest-cert-dir", &certs]),
                "inspect" => all.extend(["--cert-dir", &certs]),
                _ => {}
            }
        }
        all.extend(rest);
        self.run("skopeo", &all, "")
    }

    /// Pushes the OCI layout `layout` (tag `tag`) to `reference` (`host/repo:tag`) with
    /// `skopeo copy`; returns the pushed manifest digest.
    pub fn push(&self, layout: &Path, tag: &str, reference: &str) -> Result<String> {
        let digest_file = self.path("pushed.digest");
        let src = format!("oci:{}:{tag}", layout.display());
        let dst = format!("docker://{reference}");
        let out = self.skopeo(&[
            "copy",
            "--digestfile",
            &digest_file.to_string_lossy(),
            &src,
            &dst,
        ])?;
        check(&out, &format!("skopeo copy {src} {dst}"))?;
        Ok(std::fs::read_to_string(digest_file)?.trim().to_owned())
    }

    /// Pulls `reference` into a new OCI layout `dest` (tag `tag`) with `skopeo copy`; returns
    /// the manifest digest written there.
    pub fn pull(&self, reference: &str, dest: &Path, tag: &str) -> Result<String> {
        let src = format!("docker://{reference}");
        let dst = format!("oci:{}:{tag}", dest.display());
        let out = self.skopeo(&["copy", &src, &dst])?;
        check(&out, &format!("skopeo copy {src} {dst}"))?;
        Ok(oci::layout_digest(dest, tag)?)
    }

    /// The digest `skopeo inspect` reports for `reference`.
    pub fn inspect_digest(&self, reference: &str) -> Result<String> {
        let out = self.skopeo(&["inspect", &format!("docker://{reference}")])?;
        check(&out, &format!("skopeo inspect {reference}"))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v["Digest"]
            .as_str()
            .ok_or("skopeo inspect printed no Digest")?
            .to_owned())
    }

    /// Runs the `docker` CLI.
    pub fn docker(&self, args: &[&str], stdin: &str) -> Result<Output> {
        self.run("docker", args, stdin)
    }

    /// Runs `docker-credential-acr` from `PATH`, as clients do.
    pub fn helper(&self, args: &[&str], stdin: &str) -> Result<Output> {
        self.run("docker-credential-acr", args, stdin)
    }

    /// Every registry's log, for failure messages.
    pub fn registry_logs(&self) -> String {
        self.registries
            .iter()
            .map(|(name, r)| format!("--- {name} ---\n{}", r.log()))
            .collect()
    }
}

/// A test tool built with Go by `scripts/build-test-tools.sh` (e.g. `kubectl`), from its folder
/// (`$ACR_TEST_TOOLS`, default `~/.local/share/acr-test-tools`; never on `PATH`). An error that
/// says what to run when it has not been built.
pub fn test_tool(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("ACR_TEST_TOOLS").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".local/share/acr-test-tools"),
    };
    let path = dir.join("bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run scripts/build-test-tools.sh (scripts/install-deps.sh runs it)",
            path.display()
        )
        .into())
    }
}

/// An error with the command's output unless it succeeded.
pub fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let out = cmd.output()?;
    check(&out, &format!("{cmd:?}"))
}
