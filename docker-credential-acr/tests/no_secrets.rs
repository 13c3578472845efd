//! Every scenario again at the most verbose log level: the sandbox fails any run whose stderr
//! holds a secret the emulator knows or handed out (see `Sandbox::run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use acr_tests::emulator::{EndpointKind, Fault, FaultAction};
use common::*;

#[test]
fn no_secret_reaches_stderr_in_any_scenario_at_trace_level() {
    let (mut w, _) = world_with_secret_principal();
    w.set("ACR_LOG", "trace");
    // Success, cache hit, second registry.
    answer(&get(&w, &w.registry));
    answer(&get(&w, &w.registry));
    answer(&get(&w, &w.registry2));
    // Stored credentials: store, get, list, erase.
    let stored = r#"{"ServerURL":"stored.example.com","Username":"admin","Secret":"stored-password-value-1"}"#;
    assert!(w.run(&["store"], stored).status.success());
    let o = get(&w, "stored.example.com");
    assert!(!stderr(&o).contains("stored-password-value-1"));
    let o = w.run(&["list"], "x");
    assert!(
        !stderr(&o).contains("stored-password-value-1")
            && !stdout(&o).contains("stored-password-value-1")
    );
    w.run(&["erase"], "stored.example.com");
    // Failures: refused exchange, transient faults, malformed answers, Entra refusal.
    assert!(w.run(&["erase"], &w.registry).status.success());
    for action in [
        FaultAction::Status {
            code: 401,
            retry_after: None,
            body: None,
        },
        FaultAction::Status {
            code: 503,
            retry_after: Some(0),
            body: None,
        },
        FaultAction::MalformedBody,
        FaultAction::TruncatedBody,
    ] {
        w.emu
            .set_fault(Fault::times(EndpointKind::Exchange, 1, action));
        let _ = get(&w, &w.registry);
        assert!(w.run(&["erase"], &w.registry).status.code().is_some());
    }
    w.emu
        .set_fault(Fault::once(EndpointKind::Entra, FaultAction::MalformedBody));
    let _ = get(&w, &w.registry2);
    // The wrong secret.
    w.set("AZURE_CLIENT_SECRET", "wrong-secret-value-9");
    std::fs::remove_dir_all(w.cache_dir()).unwrap();
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !stderr(&o).contains("wrong-secret-value-9")
            && !stdout(&o).contains("wrong-secret-value-9")
    );
    // Every token handed out so far was checked against every stderr above; make sure the
    // check had something to look for.
    assert!(w.emu.secrets().len() >= 5);
}
