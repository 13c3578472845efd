//! The docker helper's tests on top of the shared sandbox.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use acr_tests::emulator::Principal;
pub use acr_tests::sandbox::{NOT_FOUND, Sandbox, TENANT, claims, stderr, stdout};
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-acr");

/// A sandbox for the helper, no identity configured.
pub fn sandbox() -> Sandbox {
    Sandbox::new(BIN)
}

/// A sandbox for the helper with a service principal that may pull from both registries.
pub fn sandbox_with_secret_principal() -> (Sandbox, Principal) {
    Sandbox::with_secret_principal(BIN)
}

/// Runs `get` for `server`.
pub fn get(w: &Sandbox, server: &str) -> Output {
    w.run(&["get"], server)
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
