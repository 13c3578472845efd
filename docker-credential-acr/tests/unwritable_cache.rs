//! A cache folder that cannot be written never stops a credential (security review, finding 5):
//! `get` and the kubelet provider still answer, fetching every time, with a warning. Before, the
//! Entra token's lock could not be created there and every fetch failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// Runs `bin args` with `stdin` as the unprivileged user 65534 (`setpriv`, util-linux) with `env`.
fn as_nobody(
    bin: &std::path::Path,
    args: &[&str],
    env: &std::collections::BTreeMap<String, String>,
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    // The binary of another build (`ACR_TEST_BIN_DIR`) runs under its runner, as `nobody` too.
    let run = acr_tests::sandbox::command(&acr_tests::sandbox::product_bin(bin));
    let mut child = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(run.get_program())
        .args(run.get_args())
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv runs (util-linux)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_cache_folder_the_user_cannot_write_still_answers() {
    let (w, _) = sandbox_with_secret_principal();
    // A world-readable place for what the unprivileged user must read (the sandbox's own HOME is
    // private to root): the emulator's CA, and an existing cache folder it owns but cannot write.
    let dir = tempfile::Builder::new()
        .prefix("acr-nobody-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::copy(w.emu.ca_pem_path(), &ca).unwrap();
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
    let home = dir.path().join("home");
    let cache = home.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for p in [&home, &cache] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o500)).unwrap();
    let mut env = w.env.clone();
    for (k, v) in [
        ("HOME", home.to_str().unwrap()),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("ACR_CACHE_DIR", cache.to_str().unwrap()),
        ("XDG_CACHE_HOME", home.to_str().unwrap()),
        ("XDG_CONFIG_HOME", home.to_str().unwrap()),
        ("ACR_CREDENTIAL_STORE", "file"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    let bin = std::path::Path::new(BIN);
    for round in 1..=2 {
        let o = as_nobody(bin, &["get"], &env, &w.registry);
        let a = answer(&o);
        assert!(a["Secret"].as_str().is_some_and(|s| !s.is_empty()));
        // One warning line, saying why nothing is cached.
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "round {round}: {err}");
        assert!(
            err.contains("warn: not caching tokens:"),
            "round {round}: {err}"
        );
        acr_tests::sandbox::assert_no_secret(&w.emu, &o.stderr, "stderr");
        // Nothing is cached, so each round asks Entra and the registry again.
        let c = w.emu.counters();
        assert_eq!((c.entra(), c.exchange()), (round, round), "{c:?}");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);

    // The kubelet provider on the same folder: it answers too (node identity from the
    // environment), with one warning.
    let provider = acr_tests::sandbox::workspace_bin("acr-credential-provider");
    let request = serde_json::json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": format!("{}/app:1", w.registry)});
    let cache_arg = format!("--cache-dir={}", cache.display());
    let o = as_nobody(&provider, &[&cache_arg], &env, &request.to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["auth"][w.registry.as_str()]["password"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_eq!(w.emu.counters().exchange(), 3);
}
