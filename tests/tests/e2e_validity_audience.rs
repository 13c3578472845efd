//! `skopeo` through `docker-credential-acr` against registries that take one Entra token
//! audience only, and with `ACR_MIN_VALIDITY`: the helper finds the audience that works with no
//! setting and remembers it, refreshes a token with less than the minimum left before handing
//! it out, and fails in one line when neither audience (or the forced one) is taken.

use acr_tests::e2e::{self, REGISTRY, TENANT, World, oci};
use acr_tests::emulator::{Principal, RegistryAudiences, Role};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SECRET: &str = "audience-s3cret";

/// A world whose one registry takes only `audiences`, and a service principal (with AcrPush when
/// `grant`) configured in the environment.
fn world(
    audiences: RegistryAudiences,
    grant: bool,
) -> Result<(World, Principal), Box<dyn std::error::Error>> {
    let mut w = World::start(&[REGISTRY])?;
    w.emu.set_registry_audiences(REGISTRY, audiences);
    let sp = w
        .emu
        .add_secret_principal(TENANT, "44444444-4444-4444-4444-444444444444", SECRET);
    if grant {
        w.emu.grant(&sp.client_id, REGISTRY, Role::AcrPush);
    }
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &sp.client_id);
    w.set("AZURE_CLIENT_SECRET", SECRET);
    Ok((w, sp))
}

/// What `docker-credential-acr get` said (stdout, where the credential-helper protocol puts
/// errors, and stderr) when it failed.
fn failed_get(w: &World) -> Result<String, Box<dyn std::error::Error>> {
    let out = w.helper(&["get"], REGISTRY)?;
    assert!(!out.status.success(), "{out:?}");
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn a_registry_that_takes_only_arm_audience_tokens_works_with_no_setting() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (mut w, sp) = world(RegistryAudiences::ArmOnly, true)?;
    // Two-minute refresh tokens, to be handed out only with 100 s left (the most a 2-minute
    // token can be held to): one is refreshed 20 s after it was issued, where the default
    // (a third of the lifetime, 40 s) would still hand it out.
    w.emu
        .set_lifetimes(Duration::from_secs(3600), Duration::from_secs(120));
    w.set("ACR_MIN_VALIDITY", "100s");
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"arm only\n")?;
    let reference = format!("{REGISTRY}/arm/hello:1");
    let pushed = w
        .push(&layout, "1", &reference)
        .map_err(|e| format!("{e}\nregistry log:\n{}", w.registry_logs()))?;
    assert_eq!(pushed, image.manifest_digest);
    let c = w.emu.counters();
    // An ACR-audience token, refused; an ARM-audience one, taken; then cache hits.
    assert_eq!(c.entra_for(&sp.client_id), 2, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 2, "{c:?}");
    w.emu.reset_counters();
    std::thread::sleep(Duration::from_secs(21));
    // Less than ACR_MIN_VALIDITY left: refreshed first, with the remembered audience (ARM's
    // Entra token is still cached, so no Entra request, and no ACR-audience attempt).
    assert_eq!(w.inspect_digest(&reference)?, image.manifest_digest);
    let c = w.emu.counters();
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    assert_eq!(c.entra_for(&sp.client_id), 0, "{c:?}");
    Ok(())
}

#[test]
fn a_refusal_both_ways_is_one_line_and_caches_nothing() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    // ARM's audience only, and no role: ACR's is refused as the audience, ARM's for the role.
    let (w, _) = world(RegistryAudiences::ArmOnly, false)?;
    let text = failed_get(&w)?;
    assert!(
        text.contains(&format!(
            "{REGISTRY}: no ACR-audience token (the registry refused it"
        )) && text.contains("and the ARM-audience attempt failed")
            && text.contains("grant it AcrPull"),
        "{text}"
    );
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    for secret in w.emu.secrets().iter().chain([&SECRET.to_string()]) {
        assert!(!text.contains(secret.as_str()), "a secret in: {text}");
    }
    assert!(w.cached_refresh_tokens().is_empty(), "nothing cached");
    assert_eq!(w.emu.counters().exchange_for(REGISTRY), 2);
    Ok(())
}

#[test]
fn a_forced_audience_the_registry_refuses_fails_without_fallback() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (mut w, sp) = world(RegistryAudiences::ArmOnly, true)?;
    w.set("ACR_AUDIENCE", "acr");
    let out = w.skopeo(&["inspect", &format!("docker://{REGISTRY}/arm/none:1")])?;
    assert!(!out.status.success());
    let text = failed_get(&w)?;
    assert!(text.contains("acr aad token disallowed"), "{text}");
    assert!(!text.contains("ARM-audience"), "{text}");
    let c = w.emu.counters();
    // skopeo's get and ours: one Entra token (cached after the first), one exchange each.
    assert_eq!(c.exchange_for(REGISTRY), 2, "{c:?}");
    assert_eq!(c.entra_for(&sp.client_id), 1, "{c:?}");
    assert!(w.cached_refresh_tokens().is_empty());
    Ok(())
}

#[test]
fn a_tenant_without_acrs_audience_gets_an_arm_audience_token_with_no_setting() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    // A known cloud's ACR login server: the other audience is tried unasked.
    let (w, sp) = world(RegistryAudiences::Both, true)?;
    // The tenant has no service principal for ACR's audience (Entra: AADSTS500011).
    w.emu
        .remove_tenant_resource(TENANT, "https://containerregistry.azure.net");
    let out = w.helper(&["get"], REGISTRY)?;
    assert!(out.status.success(), "{out:?}");
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&sp.client_id), 2, "ACR's, then ARM's: {c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    Ok(())
}
