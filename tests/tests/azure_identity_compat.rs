//! The emulator against the real client: `azure_identity` 1.0 credentials get tokens from it and
//! see its refusals as Entra errors.

use acr_tests::TENANT;
use acr_tests::emulator::{Emulator, EmulatorConfig, EndpointKind, Fault, FaultAction};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

type TestResult = Result<(), Box<dyn Error>>;

const SCOPE: &str = "https://containerregistry.azure.net/.default";

/// Client options that send to the emulator and trust its CA.
fn options(emu: &Emulator) -> Result<ClientOptions, Box<dyn Error>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_pem().as_bytes())?])
        .build()?;
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = emu.base_url();
    Ok(ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
        ..ClientOptions::default()
    })
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Box<dyn Error>> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

#[test]
fn client_secret_credential_gets_a_token_and_reports_a_bad_secret() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default())?;
    emu.add_secret_principal(TENANT, "app-1", "s3cret");
    // One transient failure first: the client's retry policy absorbs it.
    emu.set_fault(Fault::once(
        EndpointKind::Entra,
        FaultAction::Status {
            code: 503,
            retry_after: Some(0),
            body: None,
        },
    ));

    let good = ClientSecretCredential::new(
        TENANT,
        "app-1".to_owned(),
        "s3cret".into(),
        Some(ClientSecretCredentialOptions {
            client_options: options(&emu)?,
        }),
    )?;
    let token = block_on(good.get_token(&[SCOPE], None))??;
    assert!(token.token.secret().starts_with("ey"));
    let left = token.expires_on - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(55), "{left}");
    assert_eq!(emu.counters().entra_for("app-1"), 2);

    let bad = ClientSecretCredential::new(
        TENANT,
        "app-1".to_owned(),
        "wrong".into(),
        Some(ClientSecretCredentialOptions {
            client_options: options(&emu)?,
        }),
    )?;
    let err = block_on(bad.get_token(&[SCOPE], None))?
        .err()
        .ok_or("a wrong secret must fail")?;
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
    Ok(())
}

#[test]
fn workload_identity_credential_exchanges_a_service_account_token() -> TestResult {
    let emu = Emulator::start(EmulatorConfig::default())?;
    let issuer = "https://oidc.example.test/c1";
    let subject = "system:serviceaccount:ns:sa";
    let principal = emu.add_federated_principal(TENANT, "wi-app", issuer, subject);
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        emu.mint_service_account_token(
            issuer,
            subject,
            "api://AzureADTokenExchange",
            Duration::from_secs(3600),
        ),
    )?;

    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: azure_identity::ClientAssertionCredentialOptions {
            client_options: options(&emu)?,
        },
        client_id: Some("wi-app".to_owned()),
        tenant_id: Some(TENANT.to_owned()),
        token_file_path: Some(token_file),
    }))?;
    let token = block_on(credential.get_token(&[SCOPE], None))??;
    let payload = token.token.secret().split('.').nth(1).ok_or("not a JWT")?;
    use base64::Engine as _;
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    assert_eq!(claims["oid"], principal.object_id.as_str());
    Ok(())
}
