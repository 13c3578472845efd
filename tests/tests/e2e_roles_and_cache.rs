//! Role assignments, two registries for one identity, and the cache, seen through skopeo.

use acr_tests::e2e::{self, REGISTRY, REGISTRY2, TENANT, World, oci};
use acr_tests::emulator::{Principal, Role};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A service principal with a secret, configured as the helper's identity.
fn secret_identity(w: &mut World, client_id: &str) -> Principal {
    let sp = w.emu.add_secret_principal(TENANT, client_id, "s3cret");
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &sp.client_id);
    w.set("AZURE_CLIENT_SECRET", "s3cret");
    sp
}

#[test]
fn a_missing_role_fails_the_client_with_the_role_named() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    secret_identity(&mut w, "66666666-6666-6666-6666-666666666666");
    let layout = w.path("image");
    oci::write_layout(&layout, "1", b"no role\n")?;
    let o = w.skopeo(&[
        "copy",
        &format!("oci:{}:1", layout.display()),
        &format!("docker://{REGISTRY}/norole/hello:1"),
    ])?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    // skopeo shows the helper's stdout; the helper's own words (the emulator's 401 body, which
    // it quotes, names roles too, so match the helper's sentence).
    assert!(err.contains("grant it AcrPull"), "{err}");
    assert!(
        err.contains("66666666-6666-6666-6666-666666666666"),
        "{err}"
    );
    let c = w.emu.counters();
    assert_eq!((c.entra(), c.exchange()), (1, 1), "{c:?}");
    assert!(w.cached_refresh_tokens().is_empty());
    Ok(())
}

#[test]
fn two_registries_one_identity_make_one_entra_request() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY, REGISTRY2])?;
    let sp = secret_identity(&mut w, "77777777-7777-7777-7777-777777777777");
    w.emu.grant(&sp.client_id, REGISTRY, Role::AcrPush);
    w.emu.grant(&sp.client_id, REGISTRY2, Role::AcrPush);
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"two registries\n")?;
    for registry in [REGISTRY, REGISTRY2] {
        let reference = format!("{registry}/shared/hello:1");
        assert_eq!(w.push(&layout, "1", &reference)?, image.manifest_digest);
        assert_eq!(w.inspect_digest(&reference)?, image.manifest_digest);
    }
    let c = w.emu.counters();
    assert_eq!(
        c.entra(),
        1,
        "one Entra token serves both registries: {c:?}"
    );
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY2), 1, "{c:?}");
    assert_eq!(w.cached_refresh_tokens().len(), 2);
    Ok(())
}

#[test]
fn the_second_pull_makes_no_entra_or_exchange_request() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let sp = secret_identity(&mut w, "88888888-8888-8888-8888-888888888888");
    w.emu.grant(&sp.client_id, REGISTRY, Role::AcrPush);
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"cached\n")?;
    let reference = format!("{REGISTRY}/cache/hello:1");
    w.push(&layout, "1", &reference)?;
    // Pull with a cold cache of its own.
    let cold = w.path("pull-cache");
    w.set("XDG_CACHE_HOME", &cold.to_string_lossy());
    w.emu.reset_counters();

    assert_eq!(
        w.pull(&reference, &w.path("first"), "1")?,
        image.manifest_digest
    );
    let first = w.emu.counters();
    assert_eq!((first.entra(), first.exchange()), (1, 1), "{first:?}");

    w.emu.reset_counters();
    assert_eq!(
        w.pull(&reference, &w.path("second"), "1")?,
        image.manifest_digest
    );
    let second = w.emu.counters();
    assert_eq!((second.entra(), second.exchange()), (0, 0), "{second:?}");
    // The pull itself did happen, with access tokens from the cached refresh token.
    assert!(second.acr_token_for(REGISTRY) >= 1, "{second:?}");
    assert!(second.challenge_for(REGISTRY) >= 2, "{second:?}");
    Ok(())
}
