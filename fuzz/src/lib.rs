//! The fuzz targets' bodies, as plain functions: `cargo fuzz` runs them through the thin
//! `fuzz_targets/*.rs` binaries, and `tests/seeds.rs` replays the checked-in seeds (`seeds/<target>/`)
//! through them on stable Rust, in CI. Each one panics when a property breaks.

use std::path::Path;
use std::process::ExitCode;

/// What a target's binary does when built without cargo-fuzz (so without libFuzzer): runs the
/// target on each file named on the command line, as libFuzzer does with file arguments, so a
/// crash input replays on stable Rust (`cargo run -p acr-fuzz --bin <target> -- <file>...`).
/// A broken property panics; an unreadable file is reported and fails the run.
pub fn replay(target: fn(&[u8])) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in std::env::args_os().skip(1) {
        match std::fs::read(&file) {
            Ok(data) => target(&data),
            Err(e) => {
                eprintln!("{}: {e}", Path::new(&file).display());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// A target's name (of its binary and of its seed folder) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("login_server", login_server),
    ("challenge", challenge),
    ("jwt_claims", jwt_claims),
    ("kubelet_request", kubelet_request),
    ("azure_json", azure_json),
    ("docker_config", docker_config),
    ("store_input", store_input),
    ("registry_mirror", registry_mirror),
];

/// Host normalisation is idempotent and strips what it must; only anchored ACR names pass.
pub fn login_server(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = acr_broker::normalize_host(s) {
        assert!(!h.contains('/') && !h.contains('@') && !h.contains("://"));
        assert_eq!(acr_broker::normalize_host(&h).as_deref(), Ok(h.as_str()));
    }
    if let Ok(l) = acr_broker::LoginServer::parse(s, &[]) {
        let host = l.host();
        assert!(
            host.ends_with(".azurecr.io")
                || host.ends_with(".azurecr.cn")
                || host.ends_with(".azurecr.us")
        );
        assert!(!host.contains(':'));
    }
}

/// The `/v2/` challenge parser never panics; a parsed realm is never empty of its scheme.
pub fn challenge(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = acr_broker::parse_challenge(s);
    }
}

/// JWT claims are read without panicking.
pub fn jwt_claims(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = acr_broker::token::read_claims(s);
    }
}

/// The kubelet's request parser never panics; refusals are one line.
pub fn kubelet_request(data: &[u8]) {
    if let Err(e) = acr_credential_provider::protocol::parse_request(data) {
        assert!(!e.to_string().contains('\n'));
    }
}

/// azure.json (JSON or YAML) never panics; refusals are one line.
pub fn azure_json(data: &[u8]) {
    if let Err(e) =
        acr_credential_provider::azure_json::AzureJson::parse(data, Path::new("azure.json"))
    {
        assert!(!e.to_string().contains('\n'));
    }
}

/// `configure-docker` on any config file: a refusal leaves the file as it was.
pub fn docker_config(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("config.json");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if docker_credential_acr::configure::configure(&path, &["abcde.azurecr.io".to_string()])
        .is_err()
    {
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(data));
    }
}

/// `store`'s input: never a panic, never a multi-line error, never a file written on refusal.
/// The store keeps secrets in its file in a temporary folder, by construction: fuzzing never
/// reaches the user's keychain.
pub fn store_input(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let store = docker_credential_acr::store::Store::in_file(
        dir.path().join("docker-credential-acr/credentials.json"),
    );
    if let Err(e) = docker_credential_acr::actions::store_in(&store, input) {
        assert!(!e.to_string().contains('\n'));
        assert!(
            std::fs::read_dir(dir.path())
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
        );
    }
}

/// `--registry-mirror` values: never a panic; refusals are one line; every accepted source maps
/// to a destination that is not itself.
pub fn registry_mirror(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match acr_credential_provider::mirror::Mirrors::parse(&[s.to_string()]) {
        Ok(m) => {
            for mirror in m.iter() {
                assert_ne!(mirror.source, mirror.destination);
                assert_eq!(
                    m.destination(&mirror.source),
                    Some(mirror.destination.as_str())
                );
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
}
