//! Test harness: an emulator for Entra and ACR, a private HOME, and the real helper binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use acr_tests::emulator::{Emulator, EmulatorConfig, Principal, Role};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-acr");
pub const NOT_FOUND: &str = "credentials not found in native keychain";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One test's world: an emulator, a registry on it, a temp HOME and the environment for the helper.
pub struct World {
    pub emu: Emulator,
    pub home: tempfile::TempDir,
    /// The registry host as clients name it: `localhost:PORT`.
    pub registry: String,
    /// A second registry on the same emulator: `127.0.0.1:PORT`.
    pub registry2: String,
    pub env: BTreeMap<String, String>,
}

impl World {
    pub fn new() -> World {
        let emu = Emulator::start(EmulatorConfig::default()).expect("emulator starts");
        let registry = format!("localhost:{}", emu.port());
        let registry2 = format!("127.0.0.1:{}", emu.port());
        emu.add_registry(&registry);
        emu.add_registry(&registry2);
        let home = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("HOME", home.path().to_str().unwrap().to_string()),
            ("PATH", "/usr/bin:/bin".to_string()),
            (
                "SSL_CERT_FILE",
                emu.ca_pem_path().to_str().unwrap().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", emu.base_url()),
            ("ACR_LOGIN_SERVERS", format!("{registry},{registry2}")),
            (
                "XDG_CACHE_HOME",
                home.path().join("cache").to_str().unwrap().to_string(),
            ),
            (
                "XDG_CONFIG_HOME",
                home.path().join("config").to_str().unwrap().to_string(),
            ),
        ] {
            env.insert(k.to_string(), v);
        }
        World {
            emu,
            home,
            registry,
            registry2,
            env,
        }
    }

    /// A world whose identity is a service principal with a secret and AcrPull on both registries.
    pub fn with_secret_principal() -> (World, Principal) {
        let mut w = World::new();
        let p = w.emu.add_secret_principal(
            TENANT,
            "11111111-1111-1111-1111-111111111111",
            "sp-secret-value-1",
        );
        w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
        w.emu.grant(&p.client_id, &w.registry2, Role::AcrPull);
        w.set("AZURE_TENANT_ID", TENANT);
        w.set("AZURE_CLIENT_ID", &p.client_id);
        w.set("AZURE_CLIENT_SECRET", "sp-secret-value-1");
        (w, p)
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.env.insert(k.to_string(), v.to_string());
    }

    pub fn unset(&mut self, k: &str) {
        self.env.remove(k);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path("cache/docker-credential-acr")
    }

    /// Runs the helper with `args` and `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        run_with_env(&self.env, args, stdin)
    }

    pub fn get(&self, server: &str) -> Output {
        self.run(&["get"], server)
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

pub fn run_with_env(env: &BTreeMap<String, String>, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helper starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses a successful `get` answer.
pub fn answer(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "get failed: stdout={} stderr={}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stdout(o).ends_with('\n') && stdout(o).lines().count() == 1,
        "one line: {:?}",
        stdout(o)
    );
    serde_json::from_str(&stdout(o)).expect("JSON answer")
}

/// Decodes a JWT's claims (no verification) for assertions about tokens the helper returned.
pub fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
