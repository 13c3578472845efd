//! `skopeo` through `docker-credential-acr` where one Entra token audience is refused, the
//! documented ways (Entra's AADSTS500011 in a tenant without ACR's service principal, a registry
//! with ARM-audience authentication disabled), and with `ACR_MIN_VALIDITY`: the helper finds the
//! audience that works with no setting and remembers it, refreshes a token with less than the
//! minimum left before handing it out, and fails in one line when neither audience (or the
//! forced one) is taken.

use acr_tests::e2e::{self, REGISTRY, TENANT, World, oci};
use acr_tests::emulator::{Principal, RegistryAudiences, Role};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SECRET: &str = "audience-s3cret";
/// ACR's Entra resource, whose service principal a tenant may lack (AADSTS500011).
const ACR_RESOURCE: &str = "https://containerregistry.azure.net";

/// How the world refuses one audience.
enum Refusal {
    /// The tenant has no service principal for ACR's audience: Entra issues no ACR-audience
    /// token (AADSTS500011).
    NoAcrAudienceInTenant,
    /// The registry has ARM-audience authentication disabled: it refuses ARM-audience tokens
    /// (`arm aad token disallowed`).
    ArmDisabledAtRegistry,
}

/// A world with one registry that refuses an audience as `refusal` says, and a service
/// principal (with AcrPush when `grant`) configured in the environment.
fn world(refusal: Refusal, grant: bool) -> Result<(World, Principal), Box<dyn std::error::Error>> {
    let mut w = World::start(&[REGISTRY])?;
    match refusal {
        Refusal::NoAcrAudienceInTenant => w.emu.remove_tenant_resource(TENANT, ACR_RESOURCE),
        Refusal::ArmDisabledAtRegistry => w
            .emu
            .set_registry_audiences(REGISTRY, RegistryAudiences::AcrOnly),
    }
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
fn a_tenant_without_acr_audience_tokens_works_through_arm_with_no_setting() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (mut w, sp) = world(Refusal::NoAcrAudienceInTenant, true)?;
    // Two-minute refresh tokens, issued by a registry whose clock is 21 s behind: they reach
    // the helper with 99 s left. The default (refresh with a third of the lifetime, 40 s, left)
    // hands them out; ACR_MIN_VALIDITY=100s (the most a 2-minute token can be held to) does not.
    w.emu
        .set_lifetimes(Duration::from_secs(3600), Duration::from_secs(120));
    w.emu.set_clock_offset(-21);
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"arm only\n")?;
    let reference = format!("{REGISTRY}/arm/hello:1");
    let pushed = w
        .push(&layout, "1", &reference)
        .map_err(|e| format!("{e}\nregistry log:\n{}", w.registry_logs()))?;
    assert_eq!(pushed, image.manifest_digest);
    let c = w.emu.counters();
    // An ACR-audience token, refused by Entra; an ARM-audience one, exchanged; then cache hits.
    assert_eq!(c.entra_for(&sp.client_id), 2, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    w.emu.set_clock_offset(0);
    w.emu.reset_counters();
    // With the default, the token with 99 s left is handed out as it is...
    assert_eq!(w.inspect_digest(&reference)?, image.manifest_digest);
    assert_eq!(w.emu.counters().exchange_for(REGISTRY), 0);
    // ...with less than ACR_MIN_VALIDITY left, it is refreshed first, with the remembered
    // audience (ARM's Entra token is still cached, so no Entra request, and no ACR-audience
    // attempt).
    w.set("ACR_MIN_VALIDITY", "100s");
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
    // No ACR-audience token in the tenant, and no role: ACR's audience is refused by Entra,
    // ARM's by the registry for the role.
    let (w, _) = world(Refusal::NoAcrAudienceInTenant, false)?;
    let text = failed_get(&w)?;
    assert!(
        text.contains(&format!(
            "{REGISTRY}: no ACR-audience token (Entra issues none in this tenant"
        )) && text.contains("AADSTS500011")
            && text.contains("and the ARM-audience attempt failed")
            && text.contains("grant it AcrPull"),
        "{text}"
    );
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    for secret in w.emu.secrets().iter().chain([&SECRET.to_string()]) {
        assert!(!text.contains(secret.as_str()), "a secret in: {text}");
    }
    assert!(w.cached_refresh_tokens().is_empty(), "nothing cached");
    assert_eq!(w.emu.counters().exchange_for(REGISTRY), 1);
    Ok(())
}

#[test]
fn a_forced_audience_the_registry_refuses_fails_without_fallback() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    // ARM-audience authentication disabled, and ARM's audience forced.
    let (mut w, sp) = world(Refusal::ArmDisabledAtRegistry, true)?;
    w.set("ACR_AUDIENCE", "arm");
    let out = w.skopeo(&["inspect", &format!("docker://{REGISTRY}/arm/none:1")])?;
    assert!(!out.status.success());
    let text = failed_get(&w)?;
    assert!(text.contains("arm aad token disallowed"), "{text}");
    assert!(!text.contains("ACR-audience"), "{text}");
    let c = w.emu.counters();
    // skopeo's get and ours: one Entra token (cached after the first), one exchange each.
    assert_eq!(c.exchange_for(REGISTRY), 2, "{c:?}");
    assert_eq!(c.entra_for(&sp.client_id), 1, "{c:?}");
    assert!(w.cached_refresh_tokens().is_empty());
    Ok(())
}

#[test]
fn a_remembered_arm_audience_goes_back_to_acr_when_the_registry_disables_arm_tokens() -> TestResult
{
    if !e2e::isolated() {
        return Ok(());
    }
    let (mut w, sp) = world(Refusal::NoAcrAudienceInTenant, true)?;
    // Two-minute refresh tokens from a registry whose clock is 21 s behind reach the helper with
    // 99 s left: with ACR_MIN_VALIDITY=100s, each get refreshes the one it cached.
    w.emu
        .set_lifetimes(Duration::from_secs(3600), Duration::from_secs(120));
    w.emu.set_clock_offset(-21);
    w.set("ACR_MIN_VALIDITY", "100s");
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{out:?}");
    };
    ok(w.helper(&["get"], REGISTRY)?);
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&sp.client_id), 2, "ACR's refused, ARM's: {c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    // An administrator adds ACR's service principal to the tenant and disables ARM-audience
    // authentication on the registry: the remembered ARM audience, tried first, is refused with
    // ACR's documented `arm aad token disallowed`, then ACR's is taken.
    w.emu.restore_tenant_resource(TENANT, ACR_RESOURCE);
    w.emu
        .set_registry_audiences(REGISTRY, RegistryAudiences::AcrOnly);
    w.emu.reset_counters();
    ok(w.helper(&["get"], REGISTRY)?);
    let c = w.emu.counters();
    assert_eq!(c.exchange_for(REGISTRY), 2, "ARM's refused, ACR's: {c:?}");
    assert_eq!(c.entra_for(&sp.client_id), 1, "ACR's (ARM's cached): {c:?}");
    // ACR's is remembered: the next refresh asks for it first, with its cached Entra token.
    w.emu.reset_counters();
    ok(w.helper(&["get"], REGISTRY)?);
    let c = w.emu.counters();
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    assert_eq!(c.entra_for(&sp.client_id), 0, "{c:?}");
    Ok(())
}
