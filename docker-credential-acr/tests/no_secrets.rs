//! Every scenario again at the most verbose log level: the sandbox fails any run whose stderr, or
//! whose stdout when it failed, holds a secret the emulator knows or handed out (see
//! `Sandbox::run`). Each scenario's outcome is asserted too, so a scenario that stopped
//! reaching the code it exercises shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::{EndpointKind, Fault, FaultAction};

#[test]
fn no_secret_reaches_stderr_in_any_scenario_at_trace_level() {
    let (mut w, _) = sandbox_with_secret_principal();
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
    // (fault, whether `get` still succeeds: transient faults are retried, refusals and
    // malformed answers are not)
    for (action, succeeds) in [
        (
            FaultAction::Status {
                code: 401,
                retry_after: None,
                body: None,
            },
            false,
        ),
        (
            FaultAction::Status {
                code: 503,
                retry_after: Some(0),
                body: None,
            },
            true,
        ),
        (FaultAction::MalformedBody, false),
        (FaultAction::TruncatedBody, true),
    ] {
        let before = w.emu.counters().exchange();
        w.emu
            .set_fault(Fault::times(EndpointKind::Exchange, 1, action.clone()));
        let o = get(&w, &w.registry);
        assert_eq!(o.status.success(), succeeds, "{action:?}: {}", stdout(&o));
        let asked = w.emu.counters().exchange() - before;
        assert_eq!(asked, if succeeds { 2 } else { 1 }, "{action:?}");
        assert!(w.run(&["erase"], &w.registry).status.code().is_some());
    }
    // A malformed Entra answer (with no cached Entra token, or the fault would not be reached).
    std::fs::remove_dir_all(w.cache_dir()).unwrap();
    let before = w.emu.counters().entra();
    w.emu
        .set_fault(Fault::once(EndpointKind::Entra, FaultAction::MalformedBody));
    let o = get(&w, &w.registry2);
    assert_eq!(w.emu.counters().entra() - before, 1, "Entra was asked once");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
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
