//! `skopeo copy` pushes an image the test wrote, then pulls it back through
//! `docker-credential-acr`, once per identity source; the digests match and the emulator's
//! counters show which endpoint issued the Entra token.

use acr_tests::e2e::{self, REGISTRY, TENANT, World, oci};
use acr_tests::emulator::Role;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Pushes a fresh image to `REGISTRY/<repo>:1` and pulls it back; checks the digests.
fn round_trip(w: &World, repo: &str) -> TestResult {
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", format!("hello from {repo}\n").as_bytes())?;
    let reference = format!("{REGISTRY}/{repo}:1");
    let pushed = w
        .push(&layout, "1", &reference)
        .map_err(|e| format!("{e}\nregistry log:\n{}", w.registry_logs()))?;
    assert_eq!(
        pushed, image.manifest_digest,
        "skopeo pushed the manifest as written"
    );
    assert_eq!(w.inspect_digest(&reference)?, image.manifest_digest);
    let back = w.path("pulled");
    assert_eq!(w.pull(&reference, &back, "1")?, image.manifest_digest);
    assert!(oci::has_blob(&back, &image.layer_digest));
    assert!(oci::has_blob(&back, &image.config_digest));
    Ok(())
}

#[test]
fn skopeo_round_trip_with_client_secret() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let sp = w.use_secret_principal(Role::AcrPush);
    round_trip(&w, "secret/hello")?;
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&sp.client_id), 1, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    Ok(())
}

#[test]
fn skopeo_round_trip_with_client_certificate() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let (sp, pair) = w
        .emu
        .add_certificate_principal(TENANT, "22222222-2222-2222-2222-222222222222")?;
    w.emu.grant(&sp.client_id, REGISTRY, Role::AcrPush);
    let pem = w.write_file(
        "sp.pem",
        &format!("{}\n{}", pair.cert_pem, pair.key_pem),
        0o600,
    )?;
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &sp.client_id);
    w.set("AZURE_CLIENT_CERTIFICATE_PATH", &pem.to_string_lossy());
    round_trip(&w, "certificate/hello")?;
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&sp.client_id), 1, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    Ok(())
}

#[test]
fn skopeo_round_trip_with_workload_identity() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let issuer = "https://oidc.prod-aks.azure.com/cluster-1/";
    let subject = "system:serviceaccount:ci:builder";
    let app = w.emu.add_federated_principal(
        TENANT,
        "33333333-3333-3333-3333-333333333333",
        issuer,
        subject,
    );
    w.emu.grant(&app.client_id, REGISTRY, Role::AcrPush);
    let token = w.emu.mint_service_account_token(
        issuer,
        subject,
        "api://AzureADTokenExchange",
        Duration::from_secs(3600),
    );
    let file = w.write_file("azure-identity-token", &token, 0o600)?;
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &app.client_id);
    w.set("AZURE_FEDERATED_TOKEN_FILE", &file.to_string_lossy());
    round_trip(&w, "workload/hello")?;
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&app.client_id), 1, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    Ok(())
}

#[test]
fn skopeo_round_trip_with_managed_identity_through_imds() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    w.serve_imds()?;
    let mi = w.emu.add_managed_identity(None);
    w.emu.grant(&mi.client_id, REGISTRY, Role::AcrPush);
    // Not an Azure VM (no asset tag): IMDS is chosen by configuration.
    w.set("ACR_IDENTITY", "imds");
    round_trip(&w, "imds/hello")?;
    let c = w.emu.counters();
    assert_eq!((c.imds(), c.entra()), (1, 1), "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    Ok(())
}

#[test]
fn skopeo_round_trip_with_managed_identity_through_app_service() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let mi = w.emu.add_managed_identity(None);
    w.emu.grant(&mi.client_id, REGISTRY, Role::AcrPush);
    let (endpoint, header) = w.emu.app_service_endpoint();
    assert_eq!(endpoint, "https://localhost:443/msi/token");
    w.set("IDENTITY_ENDPOINT", &endpoint);
    w.set("IDENTITY_HEADER", &header);
    round_trip(&w, "appservice/hello")?;
    let c = w.emu.counters();
    assert_eq!((c.app_service(), c.entra()), (1, 1), "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    Ok(())
}

#[test]
fn skopeo_round_trip_with_azure_cli() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let w = World::start(&[REGISTRY])?;
    // The signed-in user: any identity of the directory will do for the stand-in.
    let user = w
        .emu
        .add_secret_principal(TENANT, "55555555-5555-5555-5555-555555555555", "unused");
    w.emu.grant(&user.client_id, REGISTRY, Role::AcrPush);
    let lifetime = Duration::from_secs(3600);
    let token = w
        .emu
        .mint_entra_token(&user, "https://containerregistry.azure.net", lifetime);
    let expires_on = i64::try_from(
        (SystemTime::now() + lifetime)
            .duration_since(UNIX_EPOCH)?
            .as_secs(),
    )?;
    w.install_az(&token, expires_on)?;
    round_trip(&w, "cli/hello")?;
    let c = w.emu.counters();
    assert_eq!(c.entra(), 0, "the token came from az: {c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    let calls = std::fs::read_to_string(w.path("az.log"))?;
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(
        calls.contains("account get-access-token")
            && calls.contains("--scope https://containerregistry.azure.net/.default"),
        "{calls}"
    );
    Ok(())
}
