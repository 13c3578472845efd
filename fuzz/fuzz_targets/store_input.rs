#![no_main]
//! `store`'s input: never a panic, never a multi-line error, never a file written on refusal.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let env = acr_broker::Env::from_pairs([("XDG_CONFIG_HOME", dir.path().to_string_lossy().into_owned())]);
    if let Err(docker_credential_acr::actions::Failure(msg)) = docker_credential_acr::actions::store(env, input) {
        assert!(!msg.contains('\n'));
        assert!(!dir.path().join("docker-credential-acr/credentials.json").exists());
    }
});
