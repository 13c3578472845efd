//! A real registry: Debian's `docker-registry` (Docker distribution 2.8) with token auth that
//! trusts the emulator's ACR tokens, run as a child process for one test.

use crate::emulator::Emulator;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the registry may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `docker-registry serve`; dropping it kills the process.
#[derive(Debug)]
pub struct Distribution {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// The `config.yml` of a registry serving `name` (its login server) on `127.0.0.1:port`, storing
/// under `storage`, trusting tokens of `issuer` signed by the certificate in `bundle`.
pub fn config_yaml(name: &str, port: u16, storage: &Path, issuer: &str, bundle: &Path) -> String {
    // JSON strings are YAML strings: this quotes paths and names safely.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let path = |p: &Path| q(&p.to_string_lossy());
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {addr}
  secret: {secret}
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {bundle}
",
        storage = path(storage),
        addr = q(&format!("127.0.0.1:{port}")),
        secret = q(&uuid::Uuid::new_v4().simple().to_string()),
        realm = q(&format!("https://{name}/oauth2/token")),
        service = q(name),
        issuer = q(issuer),
        bundle = path(bundle),
    )
}

impl Distribution {
    /// Starts a registry for login server `name` on `127.0.0.1:port`, with its files (config,
    /// token certificate, storage, log) under `dir`, and waits until it answers. Put it behind
    /// the emulator with `emu.set_upstream(name, &registry.url())`.
    pub fn start(name: &str, port: u16, emu: &Emulator, dir: &Path) -> io::Result<Distribution> {
        std::fs::create_dir_all(dir.join("storage"))?;
        let bundle = dir.join("token-signing.pem");
        std::fs::write(&bundle, emu.token_signing_cert_pem())?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            config_yaml(name, port, &dir.join("storage"), &emu.acr_issuer(), &bundle),
        )?;
        let log = dir.join("registry.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "docker-registry could not start ({e}): install the Debian package \
                         `docker-registry` (scripts/install-deps.sh)"
                    ),
                )
            })?;
        let mut registry = Distribution { child, port, log };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "docker-registry exited ({status}) before answering:\n{}",
                    self.log()
                )));
            }
            // Unauthenticated `/v2/`: token auth answers 401 with the challenge.
            if let Ok(status) = http_status(self.port, "/v2/")
                && status == 401
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "docker-registry did not answer on port {} within {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The status code of a plain `GET` on `127.0.0.1:port`.
fn http_status(port: u16, path: &str) -> io::Result<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        tcp,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head)?;
    // "HTTP/1.1 401"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP answer"))
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
