//! A GitHub-Actions-style job with real `skopeo`: the job's OIDC endpoint (emulated) issues
//! assertions that live seconds, and the job keeps pushing and pulling after the first one
//! expired and the ACR token was refreshed, because the helper asks for a fresh assertion each
//! time it needs an Entra token.

use acr_tests::e2e::{self, REGISTRY, TENANT, oci};
use acr_tests::emulator::Role;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_github_job_keeps_pulling_with_skopeo_after_its_first_assertion_expired() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = e2e::World::start(&[REGISTRY])?;
    // Entra tokens shorter than the helper's reuse margin: each refresh needs a new Entra token,
    // as when the hour-long one has run out in a long job.
    w.emu
        .set_lifetimes(Duration::from_secs(240), Duration::from_secs(3 * 3600));
    let subject = "repo:org/app:ref:refs/heads/main";
    let job = w.emu.add_github_job(subject, Duration::from_secs(3));
    let app = w.emu.add_federated_principal(
        TENANT,
        "44444444-4444-4444-4444-444444444444",
        &job.issuer,
        subject,
    );
    w.emu.grant(&app.client_id, REGISTRY, Role::AcrPush);
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &app.client_id);
    w.set("ACTIONS_ID_TOKEN_REQUEST_URL", &job.request_url);
    w.set("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &job.request_token);

    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"built in a long job\n")?;
    let reference = format!("{REGISTRY}/ci/app:1");
    let pushed = w
        .push(&layout, "1", &reference)
        .map_err(|e| format!("{e}\nregistry log:\n{}", w.registry_logs()))?;
    assert_eq!(pushed, image.manifest_digest);
    let c = w.emu.counters();
    assert_eq!(
        (c.github_oidc(), c.entra(), c.exchange()),
        (1, 1, 1),
        "{c:?}"
    );

    // The first assertion expires (for Entra: the emulator's clock moves past it); the cached
    // ACR token comes due for refresh (its recorded lifetime made longer, so a third of it is
    // left).
    w.emu.set_clock_offset(5);
    let entries = w.cached_refresh_tokens();
    assert_eq!(entries.len(), 1, "{entries:?}");
    for path in entries {
        let mut e: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        let left =
            e["expires_at"].as_i64().ok_or("exp")? - e["obtained_at"].as_i64().ok_or("obtained")?;
        e["lifetime"] = serde_json::json!(left * 3 + 600);
        std::fs::write(&path, e.to_string())?;
    }

    let back = w.path("pulled");
    assert_eq!(w.pull(&reference, &back, "1")?, image.manifest_digest);
    assert!(oci::has_blob(&back, &image.layer_digest));
    let c = w.emu.counters();
    assert_eq!(
        (c.github_oidc(), c.entra(), c.exchange()),
        (2, 2, 2),
        "a second assertion for the refresh: {c:?}"
    );
    Ok(())
}
