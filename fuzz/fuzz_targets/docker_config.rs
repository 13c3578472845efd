#![no_main]
//! The Docker config editor never panics, and leaves a file it refuses byte for byte as it was.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("config.json");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if docker_credential_acr::configure::configure(&path, &["abcde.azurecr.io".to_string()]).is_err() {
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(data));
    }
});
