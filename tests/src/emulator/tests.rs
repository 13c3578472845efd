//! Tests of the emulator over real HTTPS connections, with a blocking reqwest client.

use super::*;
use crate::TENANT;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crypto::unix_now;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::blocking::{Client, Response};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

const REGISTRY: &str = "myreg.azurecr.io";
const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";

fn start() -> Result<Emulator, Box<dyn Error>> {
    Ok(Emulator::start(EmulatorConfig {
        registries: vec![REGISTRY.to_owned()],
        ..EmulatorConfig::default()
    })?)
}

/// A client that trusts only the emulator's CA and resolves `hosts` to it.
fn client(emu: &Emulator, hosts: &[&str]) -> Result<Client, Box<dyn Error>> {
    let mut builder = Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_pem().as_bytes())?]);
    for host in hosts {
        builder = builder.resolve(host, emu.local_addr());
    }
    Ok(builder.build()?)
}

fn registry_url(emu: &Emulator, path: &str) -> String {
    format!("https://{REGISTRY}:{}{path}", emu.port())
}

/// The registry as clients on a non-default port name it.
fn registry_host(emu: &Emulator) -> String {
    format!("{REGISTRY}:{}", emu.port())
}

fn claims(token: &str) -> Result<Value, Box<dyn Error>> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

fn header(token: &str) -> Result<Value, Box<dyn Error>> {
    let part = token.split('.').next().ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
}

fn body(response: Response) -> Result<(u16, Value), Box<dyn Error>> {
    let status = response.status().as_u16();
    Ok((status, response.json()?))
}

fn entra_url(emu: &Emulator, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", emu.base_url())
}

fn secret_request(
    c: &Client,
    emu: &Emulator,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> Result<(u16, Value), Box<dyn Error>> {
    body(
        c.post(entra_url(emu, TENANT))
            .form(&[
                ("client_id", client_id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", scope),
            ])
            .send()?,
    )
}

fn assertion_request(
    c: &Client,
    emu: &Emulator,
    client_id: &str,
    assertion: &str,
) -> Result<(u16, Value), Box<dyn Error>> {
    body(
        c.post(entra_url(emu, TENANT))
            .form(&[
                ("client_assertion", assertion),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_id", client_id),
                ("grant_type", "client_credentials"),
                ("scope", ACR_SCOPE),
            ])
            .send()?,
    )
}

fn error_code(v: &Value) -> Option<i64> {
    v["error_codes"][0].as_i64()
}

#[test]
fn secret_flow_issues_token_and_refuses_wrong_secret() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let sp = emu.add_secret_principal(TENANT, "app-1", "s3cret");

    let (status, ok) = secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE)?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3600);
    assert_eq!(ok["ext_expires_in"], 3600);
    let token = ok["access_token"].as_str().ok_or("no token")?;
    let c1 = claims(token)?;
    assert_eq!(c1["aud"], "https://containerregistry.azure.net");
    assert_eq!(c1["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(c1["oid"], sp.object_id.as_str());
    assert_eq!(c1["appid"], "app-1");
    assert_eq!(c1["azp"], "app-1");
    assert_eq!(c1["tid"], TENANT);
    assert_eq!(header(token)?["alg"], "RS256");

    let (status, err) = secret_request(&c, &emu, "app-1", "wrong", ACR_SCOPE)?;
    assert_eq!(status, 401);
    assert_eq!(err["error"], "invalid_client");
    assert_eq!(error_code(&err), Some(7000215));
    assert!(
        err["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215: "))
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(err[field].is_string(), "{field} missing in {err}");
    }

    let (status, err) = secret_request(&c, &emu, "nobody", "s3cret", ACR_SCOPE)?;
    assert_eq!((status, error_code(&err)), (400, Some(700016)));

    let scope = "https://containerregistry.azure.net";
    let (status, err) = secret_request(&c, &emu, "app-1", "s3cret", scope)?;
    assert_eq!((status, error_code(&err)), (400, Some(1002012)));

    let (status, err) =
        secret_request(&c, &emu, "app-1", "s3cret", "https://nope.example/.default")?;
    assert_eq!((status, error_code(&err)), (400, Some(500011)));

    let other_tenant = body(
        c.post(entra_url(&emu, "00000000-0000-0000-0000-00000000dead"))
            .form(&[
                ("client_id", "app-1"),
                ("client_secret", "s3cret"),
                ("grant_type", "client_credentials"),
                ("scope", ACR_SCOPE),
            ])
            .send()?,
    )?;
    assert_eq!(
        (other_tenant.0, error_code(&other_tenant.1)),
        (400, Some(90002))
    );
    Ok(())
}

/// An assertion as azure_identity's certificate credential builds it.
fn cert_assertion(
    emu: &Emulator,
    client_id: &str,
    cert: &CertPair,
    signing_key_pem: &str,
    aud: Option<&str>,
    exp_offset: i64,
    standard_x5t: bool,
) -> Result<String, Box<dyn Error>> {
    let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?;
    let thumb = crypto::sha1(&der);
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(if standard_x5t {
        STANDARD.encode(&thumb)
    } else {
        URL_SAFE_NO_PAD.encode(&thumb)
    });
    let now = unix_now();
    let aud = aud.map_or_else(|| entra_url(emu, TENANT), str::to_owned);
    let claims = serde_json::json!({
        "aud": aud, "exp": now + exp_offset, "iss": client_id, "jti": "x",
        "nbf": now, "sub": client_id,
    });
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(signing_key_pem.as_bytes())?,
    )?)
}

#[test]
fn certificate_assertion_checks_key_signature_audience_and_time() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let (sp, cert) = emu.add_certificate_principal(TENANT, "cert-app")?;
    let (_, other) = emu.add_certificate_principal(TENANT, "other-app")?;

    for standard in [false, true] {
        let a = cert_assertion(&emu, "cert-app", &cert, &cert.key_pem, None, 300, standard)?;
        let (status, ok) = assertion_request(&c, &emu, "cert-app", &a)?;
        assert_eq!(status, 200, "{ok}");
        let token = ok["access_token"].as_str().ok_or("no token")?;
        assert_eq!(claims(token)?["oid"], sp.object_id.as_str());
    }

    // Exactly as azure_identity 1.0's ClientCertificateCredential formats it: padded base64url
    // parts, a standard-base64 x5t and a hand-written payload.
    let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?;
    let padded = base64::engine::general_purpose::URL_SAFE;
    let head = padded.encode(format!(
        r#"{{"alg":"RS256","typ":"JWT","x5t":"{}"}}"#,
        STANDARD.encode(crypto::sha1(&der))
    ));
    let now = unix_now();
    let payload = padded.encode(format!(
        r#"{{"aud":"{}","exp":{},"iss": "cert-app", "jti": "{}", "nbf": {now}, "sub": "cert-app"}}"#,
        entra_url(&emu, TENANT),
        now + 300,
        uuid::Uuid::new_v4()
    ));
    let input = format!("{head}.{payload}");
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_rsa_pem(cert.key_pem.as_bytes())?,
        Algorithm::RS256,
    )?;
    let sig = padded.encode(URL_SAFE_NO_PAD.decode(sig)?);
    let (status, ok) = assertion_request(&c, &emu, "cert-app", &format!("{input}.{sig}"))?;
    assert_eq!(status, 200, "{ok}");

    // Names cert-app's certificate but is signed with another key.
    let forged = cert_assertion(&emu, "cert-app", &cert, &other.key_pem, None, 300, false)?;
    let (status, err) = assertion_request(&c, &emu, "cert-app", &forged)?;
    assert_eq!((status, error_code(&err)), (401, Some(700027)), "{err}");

    // A certificate the app does not have.
    let stranger = cert_assertion(&emu, "cert-app", &other, &other.key_pem, None, 300, false)?;
    let (status, err) = assertion_request(&c, &emu, "cert-app", &stranger)?;
    assert_eq!((status, error_code(&err)), (401, Some(700027)));

    let expired = cert_assertion(&emu, "cert-app", &cert, &cert.key_pem, None, -10, false)?;
    let (status, err) = assertion_request(&c, &emu, "cert-app", &expired)?;
    assert_eq!((status, error_code(&err)), (401, Some(700024)));

    let wrong_aud = cert_assertion(
        &emu,
        "cert-app",
        &cert,
        &cert.key_pem,
        Some("https://login.microsoftonline.com/x/oauth2/v2.0/token"),
        300,
        false,
    )?;
    let (status, err) = assertion_request(&c, &emu, "cert-app", &wrong_aud)?;
    assert_eq!((status, error_code(&err)), (401, Some(50013)));
    Ok(())
}

#[test]
fn federated_assertion_matches_issuer_subject_audience() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let issuer = "https://oidc.example.test/cluster-1";
    let subject = "system:serviceaccount:default:puller";
    let sp = emu.add_federated_principal(TENANT, "wi-app", issuer, subject);
    let hour = std::time::Duration::from_secs(3600);

    let good = emu.mint_service_account_token(issuer, subject, "api://AzureADTokenExchange", hour);
    let (status, ok) = assertion_request(&c, &emu, "wi-app", &good)?;
    assert_eq!(status, 200, "{ok}");
    let token = ok["access_token"].as_str().ok_or("no token")?;
    assert_eq!(claims(token)?["oid"], sp.object_id.as_str());

    let cases = [
        (
            emu.mint_service_account_token(
                "https://other.example",
                subject,
                "api://AzureADTokenExchange",
                hour,
            ),
            700211,
        ),
        (
            emu.mint_service_account_token(
                issuer,
                "system:serviceaccount:default:other",
                "api://AzureADTokenExchange",
                hour,
            ),
            700213,
        ),
        (
            emu.mint_service_account_token(issuer, subject, "sts.amazonaws.com", hour),
            700212,
        ),
        (
            emu.mint_service_account_token(
                issuer,
                subject,
                "api://AzureADTokenExchange",
                std::time::Duration::ZERO,
            ),
            700024,
        ),
    ];
    for (assertion, code) in cases {
        let (status, err) = assertion_request(&c, &emu, "wi-app", &assertion)?;
        assert!(status == 400 || status == 401, "{status}");
        assert_eq!(error_code(&err), Some(code), "{err}");
    }

    // A token from another emulator's cluster: same claims, foreign key.
    let foreign =
        start()?.mint_service_account_token(issuer, subject, "api://AzureADTokenExchange", hour);
    let (status, err) = assertion_request(&c, &emu, "wi-app", &foreign)?;
    assert_eq!((status, error_code(&err)), (401, Some(700027)));
    Ok(())
}

#[test]
fn imds_requires_metadata_header_and_known_identity() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2019-08-01&resource=https://containerregistry.azure.net",
        emu.base_url()
    );

    let (status, err) = body(c.get(&url).send()?)?;
    assert_eq!(status, 400);
    assert_eq!(
        err,
        serde_json::json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})
    );

    // No identity at all yet.
    let (status, err) = body(c.get(&url).header("Metadata", "true").send()?)?;
    assert_eq!(
        (status, err["error_description"].as_str()),
        (400, Some("Identity not found"))
    );

    let system = emu.add_managed_identity(None);
    let user = emu.add_managed_identity(Some("ua-client"));
    let (status, ok) = body(c.get(&url).header("Metadata", "true").send()?)?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["client_id"], system.client_id.as_str());
    assert!(
        ok["expires_on"]
            .as_str()
            .is_some_and(|s| s.parse::<i64>().is_ok())
    );
    assert!(ok["expires_in"].is_string());
    assert_eq!(ok["resource"], "https://containerregistry.azure.net");
    assert_eq!(ok["token_type"], "Bearer");
    let token = ok["access_token"].as_str().ok_or("no token")?;
    assert_eq!(claims(token)?["oid"], system.object_id.as_str());

    let (status, ok) = body(
        c.get(format!("{url}&client_id=ua-client"))
            .header("Metadata", "true")
            .send()?,
    )?;
    assert_eq!(status, 200);
    assert_eq!(ok["client_id"], user.client_id.as_str());

    let (status, err) = body(
        c.get(format!("{url}&client_id=unknown"))
            .header("Metadata", "true")
            .send()?,
    )?;
    assert_eq!(
        (status, err["error_description"].as_str()),
        (400, Some("Identity not found"))
    );

    // The same endpoint over plain HTTP.
    let plain = emu.serve_imds_http("127.0.0.1:0".parse()?)?;
    let plain_url = format!(
        "http://{plain}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
    );
    let (status, ok) = body(
        Client::builder()
            .no_proxy()
            .build()?
            .get(plain_url)
            .header("Metadata", "true")
            .send()?,
    )?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(emu.counters().imds(), 6);
    assert_eq!(emu.counters().entra_for("ua-client"), 1);
    Ok(())
}

#[test]
fn app_service_checks_identity_header() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let mi = emu.add_managed_identity(None);
    let (endpoint, secret) = emu.app_service_endpoint();
    let url =
        format!("{endpoint}?api-version=2019-08-01&resource=https://containerregistry.azure.net");

    assert_eq!(c.get(&url).send()?.status().as_u16(), 400);
    assert_eq!(
        c.get(&url)
            .header("X-IDENTITY-HEADER", "nope")
            .send()?
            .status()
            .as_u16(),
        401
    );
    let (status, ok) = body(c.get(&url).header("X-IDENTITY-HEADER", &secret).send()?)?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["client_id"], mi.client_id.as_str());
    assert!(
        ok["expires_on"]
            .as_str()
            .is_some_and(|s| s.parse::<i64>().is_ok())
    );
    assert_eq!(emu.counters().app_service(), 3);
    Ok(())
}

fn exchange(c: &Client, emu: &Emulator, aad: &str) -> Result<(u16, Value), Box<dyn Error>> {
    let service = registry_host(emu);
    body(
        c.post(registry_url(emu, "/oauth2/exchange"))
            .form(&[
                ("grant_type", "access_token"),
                ("service", service.as_str()),
                ("tenant", TENANT),
                ("access_token", aad),
            ])
            .send()?,
    )
}

fn acr_access(
    c: &Client,
    emu: &Emulator,
    refresh: &str,
    scopes: &[&str],
) -> Result<(u16, Value), Box<dyn Error>> {
    let service = registry_host(emu);
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("service", service.as_str()),
        ("refresh_token", refresh),
    ];
    form.extend(scopes.iter().map(|s| ("scope", *s)));
    body(
        c.post(registry_url(emu, "/oauth2/token"))
            .form(&form)
            .send()?,
    )
}

#[test]
fn a_registry_audience_policy_refuses_the_other_audience_as_acr_does() -> TestResult {
    let emu = start()?;
    let host = registry_host(&emu);
    emu.add_registry(&host);
    let c = client(&emu, &[REGISTRY])?;
    let hour = std::time::Duration::from_secs(3600);
    let p = emu.add_secret_principal(TENANT, "audiences", "p");
    let acr = emu.mint_entra_token(&p, "https://containerregistry.azure.net", hour);
    let arm = emu.mint_entra_token(&p, "https://management.azure.com/", hour);
    // Audiences are checked before roles: no role yet, and still the audience refusal.
    emu.set_registry_audiences(&host, RegistryAudiences::AcrOnly);
    let (status, err) = exchange(&c, &emu, &arm)?;
    assert_eq!(
        (status, &err["errors"][0]["message"]),
        (401, &serde_json::json!("arm aad token disallowed"))
    );
    emu.grant(&p.client_id, &host, Role::AcrPull);
    assert_eq!(exchange(&c, &emu, &acr)?.0, 200);
    assert_eq!(exchange(&c, &emu, &arm)?.0, 401);
    // ARM's only: no refusal of this kind is documented, so only the status and code are
    // checked, not the emulator's invented message.
    emu.set_registry_audiences(&host, RegistryAudiences::ArmOnly);
    let (status, err) = exchange(&c, &emu, &acr)?;
    assert_eq!(
        (status, &err["errors"][0]["code"]),
        (401, &serde_json::json!("UNAUTHORIZED"))
    );
    assert_eq!(exchange(&c, &emu, &arm)?.0, 200);
    emu.set_registry_audiences(&host, RegistryAudiences::Both);
    assert_eq!(
        (exchange(&c, &emu, &acr)?.0, exchange(&c, &emu, &arm)?.0),
        (200, 200)
    );
    Ok(())
}

#[test]
fn challenge_exchange_and_token_filter_by_role() -> TestResult {
    let emu = start()?;
    emu.add_registry(&registry_host(&emu));
    let c = client(&emu, &[REGISTRY])?;
    let hour = std::time::Duration::from_secs(3600);

    let challenge = c.get(registry_url(&emu, "/v2/")).send()?;
    assert_eq!(challenge.status().as_u16(), 401);
    let host = registry_host(&emu);
    assert_eq!(
        challenge.headers()["www-authenticate"].to_str()?,
        format!("Bearer realm=\"https://{host}/oauth2/token\",service=\"{host}\"")
    );
    let (_, err) = body(challenge)?;
    assert_eq!(err["errors"][0]["code"], "UNAUTHORIZED");

    let puller = emu.add_secret_principal(TENANT, "puller", "p");
    let aad = emu.mint_entra_token(&puller, "https://containerregistry.azure.net", hour);

    let (status, err) = exchange(&c, &emu, &aad)?;
    assert_eq!(status, 401, "no role yet: {err}");
    assert_eq!(err["errors"][0]["code"], "UNAUTHORIZED");

    emu.grant(&puller.client_id, &host, Role::AcrPull);
    let (status, ok) = exchange(&c, &emu, &aad)?;
    assert_eq!(status, 200, "{ok}");
    let refresh = ok["refresh_token"].as_str().ok_or("no refresh token")?;
    let rc = claims(refresh)?;
    assert_eq!(rc["aud"], host.as_str());
    assert_eq!(rc["sub"], puller.object_id.as_str());
    assert_eq!(rc["iss"], "Azure Container Registry");
    assert_eq!(rc["grant_type"], "refresh_token");
    assert_eq!(rc["permissions"]["actions"], serde_json::json!(["read"]));
    let lifetime = rc["exp"].as_i64().unwrap_or(0) - rc["iat"].as_i64().unwrap_or(0);
    assert_eq!(lifetime, 3 * 3600);

    let (status, ok) = acr_access(&c, &emu, refresh, &["repository:app:pull,push"])?;
    assert_eq!(status, 200, "{ok}");
    let access = ok["access_token"].as_str().ok_or("no access token")?;
    let ac = claims(access)?;
    assert_eq!(
        ac["access"],
        serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull"]}])
    );
    assert_eq!(ac["aud"], host.as_str());
    assert_eq!(ac["iss"], "Azure Container Registry");
    assert_eq!(header(access)?["kid"], emu.token_signing_key_id().as_str());

    // The access token opens /v2/.
    let ping = c
        .get(registry_url(&emu, "/v2/"))
        .bearer_auth(access)
        .send()?;
    assert_eq!(ping.status().as_u16(), 200);

    // A pusher gets both actions, through Basic auth with the refresh token as password.
    let pusher = emu.add_secret_principal(TENANT, "pusher", "p");
    emu.grant(&pusher.object_id, &host, Role::AcrPush);
    let arm = emu.mint_entra_token(&pusher, "https://management.azure.com", hour);
    let (status, ok) = exchange(&c, &emu, &arm)?;
    assert_eq!(status, 200, "ARM audience accepted: {ok}");
    let refresh = ok["refresh_token"].as_str().ok_or("no refresh token")?;
    let (status, ok) = body(
        c.get(registry_url(&emu, "/oauth2/token"))
            .query(&[
                ("service", host.as_str()),
                ("scope", "repository:app:pull,push"),
            ])
            .basic_auth("00000000-0000-0000-0000-000000000000", Some(refresh))
            .send()?,
    )?;
    assert_eq!(status, 200, "{ok}");
    let access = ok["access_token"].as_str().ok_or("no access token")?;
    assert_eq!(
        claims(access)?["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );

    // Refused: a token for another audience, an expired one, a foreign one, another registry.
    let graph = emu.mint_entra_token(&pusher, "https://graph.microsoft.com", hour);
    assert_eq!(exchange(&c, &emu, &graph)?.0, 401);
    let expired = emu.mint_entra_token(
        &pusher,
        "https://containerregistry.azure.net",
        std::time::Duration::ZERO,
    );
    assert_eq!(exchange(&c, &emu, &expired)?.0, 401);
    let foreign = start()?.mint_entra_token(&pusher, "https://containerregistry.azure.net", hour);
    assert_eq!(exchange(&c, &emu, &foreign)?.0, 401);
    let (status, _) = body(
        c.post(registry_url(&emu, "/oauth2/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("service", REGISTRY),
                ("refresh_token", refresh),
            ])
            .send()?,
    )?;
    assert_eq!(
        status, 400,
        "service must name the registry the client addressed"
    );

    // An unknown registry host is not served.
    emu.add_registry("other.azurecr.io");
    let c2 = client(&emu, &["unknown.azurecr.io"])?;
    let url = format!("https://unknown.azurecr.io:{}/v2/", emu.port());
    assert_eq!(c2.get(url).send()?.status().as_u16(), 404);

    let n = emu.counters();
    assert_eq!(n.exchange_for(&host), 6);
    assert_eq!(n.acr_token_for(&host), 3);
    assert_eq!(n.challenge_for(&host), 2);
    assert_eq!(n.challenge(), 3);
    Ok(())
}

/// A stopped clock dates every token at its second, however long requests take, and judges
/// them there: a day ahead, Entra's and the registry's tokens carry that second; stopped at the
/// refresh token's expiry, the registry refuses it; running again, the same token is good.
#[test]
fn a_stopped_clock_dates_and_judges_every_token_at_its_second() -> TestResult {
    let emu = start()?;
    let host = registry_host(&emu);
    emu.add_registry(&host);
    let c = client(&emu, &[REGISTRY])?;
    let sp = emu.add_secret_principal(TENANT, "clocked", "s");
    emu.grant(&sp.client_id, &host, Role::AcrPull);
    let at = unix_now() + 24 * 3600;
    emu.stop_clock_at(at);

    let (status, ok) = secret_request(&c, &emu, "clocked", "s", ACR_SCOPE)?;
    assert_eq!(status, 200, "{ok}");
    let aad = ok["access_token"].as_str().ok_or("no token")?;
    assert_eq!(claims(aad)?["iat"], at);
    assert_eq!(claims(aad)?["exp"], at + 3600);
    let (status, ok) = exchange(&c, &emu, aad)?;
    assert_eq!(status, 200, "{ok}");
    let refresh = ok["refresh_token"]
        .as_str()
        .ok_or("no refresh token")?
        .to_owned();
    let rc = claims(&refresh)?;
    assert_eq!(
        (&rc["iat"], &rc["exp"]),
        (&json!(at), &json!(at + 3 * 3600))
    );
    let sa = emu.mint_service_account_token(
        "https://oidc.example",
        "system:serviceaccount:ns:sa",
        "api://AzureADTokenExchange",
        std::time::Duration::from_secs(600),
    );
    assert_eq!(claims(&sa)?["iat"], at);
    assert_eq!(
        acr_access(&c, &emu, &refresh, &["repository:app:pull"])?.0,
        200
    );

    // Stopped at its expiry, the refresh token is refused; a second earlier, taken.
    emu.stop_clock_at(at + 3 * 3600);
    assert_eq!(
        acr_access(&c, &emu, &refresh, &["repository:app:pull"])?.0,
        401
    );
    emu.stop_clock_at(at + 3 * 3600 - 1);
    assert_eq!(
        acr_access(&c, &emu, &refresh, &["repository:app:pull"])?.0,
        200
    );

    // Running again (no offset): new tokens are dated by the machine's clock.
    let before = unix_now();
    emu.set_clock_offset(0);
    let (_, ok) = secret_request(&c, &emu, "clocked", "s", ACR_SCOPE)?;
    let iat = claims(ok["access_token"].as_str().ok_or("no token")?)?["iat"]
        .as_i64()
        .ok_or("no iat")?;
    assert!((before..=unix_now()).contains(&iat), "{iat}");
    Ok(())
}

#[test]
fn access_token_kid_names_the_bundle_certificate_key() -> TestResult {
    let emu = start()?;
    let der = CertificateDer::from_pem_slice(emu.token_signing_cert_pem().as_bytes())?;
    let spki = spki_of_certificate(&der).ok_or("no SubjectPublicKeyInfo")?;
    assert_eq!(libtrust_key_id(spki), emu.token_signing_key_id());
    Ok(())
}

/// The SubjectPublicKeyInfo of a DER certificate (a minimal DER walk, enough for rcgen output).
fn spki_of_certificate(der: &[u8]) -> Option<&[u8]> {
    /// (tag, contents, the whole element, what follows it)
    type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);
    fn element(input: &[u8]) -> Option<Element<'_>> {
        let tag = *input.first()?;
        let first = *input.get(1)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            let len = input
                .get(2..2 + n)?
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        };
        let whole = input.get(..header + len)?;
        Some((tag, &whole[header..], whole, &input[header + len..]))
    }
    let (_, cert, _, _) = element(der)?;
    let (_, tbs, _, _) = element(cert)?;
    let mut rest = tbs;
    let mut index = 0;
    while !rest.is_empty() {
        let (tag, _, whole, next) = element(rest)?;
        // version [0] is optional; SPKI is the 7th field with it, the 6th without.
        if index == 0 && tag != 0xa0 {
            index = 1;
        }
        if index == 6 {
            return Some(whole);
        }
        index += 1;
        rest = next;
    }
    None
}

#[test]
fn sni_certificates_cover_registries_added_later() -> TestResult {
    let emu = start()?;
    emu.add_registry("late.example.test");
    let c = client(&emu, &["late.example.test", REGISTRY])?;
    for url in [
        format!("https://late.example.test:{}/v2/", emu.port()),
        registry_url(&emu, "/v2/"),
        format!("https://127.0.0.1:{}/v2/", emu.port()),
    ] {
        // 401 (a registry) or 404 (not one): either way the TLS handshake succeeded.
        let status = c.get(&url).send()?.status().as_u16();
        assert!(status == 401 || status == 404, "{url}: {status}");
    }
    Ok(())
}

#[test]
fn counters_count_every_request_and_reset() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    emu.add_secret_principal(TENANT, "app-1", "s3cret");
    secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE)?;
    secret_request(&c, &emu, "app-1", "bad", ACR_SCOPE)?;
    secret_request(&c, &emu, "app-2", "bad", ACR_SCOPE)?;
    c.get(format!("{}/nothing-here", emu.base_url())).send()?;

    let n = emu.counters();
    assert_eq!(n.entra(), 3);
    assert_eq!(n.entra_for("app-1"), 2);
    assert_eq!(n.entra_for("app-2"), 1);
    assert_eq!(
        n.kind_for(EndpointKind::Entra, &format!("{TENANT}/app-1")),
        2
    );
    assert_eq!(n.total(), 4);

    let remote: Counters = c
        .get(format!("{}/_emulator/counters", emu.base_url()))
        .send()?
        .json()?;
    assert_eq!(remote, n, "control requests are not counted");

    emu.reset_counters();
    assert_eq!(emu.counters().total(), 0);
    Ok(())
}

#[test]
fn faults_apply_to_the_next_matching_requests_and_still_count() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    emu.add_secret_principal(TENANT, "app-1", "s3cret");

    emu.set_fault(Fault::times(
        EndpointKind::Entra,
        2,
        FaultAction::Status {
            code: 503,
            retry_after: Some(7),
            body: None,
        },
    ));
    for _ in 0..2 {
        let r = c
            .post(entra_url(&emu, TENANT))
            .form(&[("client_id", "app-1")])
            .send()?;
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(r.headers()["retry-after"], "7");
        let v: Value = r.json()?;
        assert!(v["error_codes"].is_array());
    }
    assert_eq!(
        secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE)?.0,
        200
    );

    // Faults for another kind leave Entra alone.
    emu.set_fault(Fault::once(
        EndpointKind::Exchange,
        FaultAction::DropConnection,
    ));
    assert_eq!(
        secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE)?.0,
        200
    );
    emu.clear_faults();

    emu.set_fault(Fault::once(EndpointKind::Any, FaultAction::DropConnection));
    assert!(secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE).is_err());

    emu.set_fault(Fault::once(EndpointKind::Entra, FaultAction::TruncatedBody));
    let r = c.post(entra_url(&emu, TENANT)).send()?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().is_err(), "a truncated body must fail to read");

    emu.set_fault(Fault::once(EndpointKind::Entra, FaultAction::MalformedBody));
    let r = c.post(entra_url(&emu, TENANT)).send()?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.json::<Value>().is_err());

    emu.set_fault(Fault::once(
        EndpointKind::Entra,
        FaultAction::Latency(std::time::Duration::from_millis(300)),
    ));
    let started = std::time::Instant::now();
    assert_eq!(
        secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE)?.0,
        200
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));

    // The control endpoint takes the JSON form.
    let r = c
        .post(format!("{}/_emulator/faults", emu.base_url()))
        .body(r#"[{"endpoint":"entra","action":{"status":{"code":429}}}]"#)
        .send()?;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        secret_request(&c, &emu, "app-1", "s3cret", ACR_SCOPE)?.0,
        429
    );

    assert_eq!(emu.counters().entra(), 9);
    Ok(())
}

#[test]
fn config_round_trips_through_json() -> TestResult {
    let config: EmulatorConfig = serde_json::from_str(
        r#"{"registries":["a.azurecr.io"],"refresh_lifetime":60,
            "faults":[{"endpoint":"imds","times":2,"action":{"latency":1500}}],
            "secret_principals":[{"tenant":"t","client_id":"c","secret":"s"}],
            "managed_identities":[null,"ua"],
            "grants":[{"principal":"c","registry":"a.azurecr.io","role":"AcrPush"}]}"#,
    )?;
    assert_eq!(config.refresh_lifetime, std::time::Duration::from_secs(60));
    assert_eq!(
        config.faults[0].action,
        FaultAction::Latency(std::time::Duration::from_millis(1500))
    );
    assert_eq!(config.managed_identities, vec![None, Some("ua".to_owned())]);
    assert_eq!(config.listen.port(), 0);
    Ok(())
}

#[test]
fn emulator_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Emulator>();
}

/// A backend that echoes what reached it, with the headers a registry sends.
fn start_echo_backend() -> Result<(tokio::runtime::Runtime, u16), Box<dyn Error>> {
    use axum::http::{HeaderMap as Headers, Method as M, Uri as U};
    use axum::response::IntoResponse;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new()
        .route(
            "/v2/app/blobs/{digest}",
            axum::routing::get(|| async { "0123456789" }),
        )
        .route(
            "/v2/{*rest}",
            axum::routing::any(
                move |method: M, headers: Headers, uri: U, body: axum::body::Bytes| async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let echo = serde_json::json!({
                        "method": method.as_str(),
                        "uri": uri.to_string(),
                        "host": h("host"),
                        "proto": h("x-forwarded-proto"),
                        "forwarded_host": h("x-forwarded-host"),
                        "authorization": h("authorization"),
                        "body": body.len(),
                    });
                    (
                        [
                            (
                                "location",
                                format!("http://127.0.0.1:{port}/v2/app/blobs/uploads/u1?_state=s"),
                            ),
                            (
                                "www-authenticate",
                                "Bearer realm=\"r\",service=\"s\"".to_owned(),
                            ),
                            ("docker-content-digest", "sha256:abc".to_owned()),
                            ("connection", "x-hop".to_owned()),
                            ("x-hop", "1".to_owned()),
                        ],
                        echo.to_string(),
                    )
                        .into_response()
                },
            ),
        );
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((runtime, port))
}

#[test]
fn upstream_registries_are_proxied_with_headers_bodies_and_locations() -> TestResult {
    let (_backend, port) = start_echo_backend()?;
    let emu = start()?;
    let host = registry_host(&emu);
    assert!(emu.set_upstream(&host, "https://127.0.0.1:1").is_err());
    emu.set_upstream(&host, &format!("http://127.0.0.1:{port}"))?;
    assert_eq!(
        emu.upstreams(),
        vec![(host.clone(), format!("http://127.0.0.1:{port}"))]
    );
    let c = client(&emu, &[REGISTRY])?;

    let big = vec![7u8; 300_000];
    let r = c
        .patch(registry_url(&emu, "/v2/app/blobs/uploads/u1?_state=s"))
        .header("authorization", "Bearer t")
        .body(big.clone())
        .send()?;
    assert_eq!(r.status().as_u16(), 200);
    let headers = r.headers().clone();
    let echo: Value = r.json()?;
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["uri"], "/v2/app/blobs/uploads/u1?_state=s");
    assert_eq!(
        echo["host"],
        registry_host(&emu),
        "Host as the client sent it"
    );
    assert_eq!(echo["forwarded_host"], registry_host(&emu));
    assert_eq!(echo["proto"], "https");
    assert_eq!(echo["authorization"], "Bearer t");
    assert_eq!(echo["body"], big.len());
    assert_eq!(
        headers["location"],
        format!(
            "https://{}/v2/app/blobs/uploads/u1?_state=s",
            registry_host(&emu)
        )
        .as_str()
    );
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"r\",service=\"s\""
    );
    assert_eq!(headers["docker-content-digest"], "sha256:abc");
    assert!(
        !headers.contains_key("x-hop"),
        "hop-by-hop headers stay behind"
    );

    // HEAD keeps the backend's Content-Length (clients read blob sizes from it).
    let blob = registry_url(&emu, "/v2/app/blobs/sha256:00");
    assert_eq!(c.get(&blob).send()?.text()?, "0123456789");
    let head = c.head(&blob).send()?;
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["content-length"].to_str()?, "10");

    // Backend requests are counted as the registry's /v2/ requests and take its faults.
    emu.set_fault(Fault::once(
        EndpointKind::Challenge,
        FaultAction::Status {
            code: 503,
            retry_after: None,
            body: None,
        },
    ));
    let r = c.get(registry_url(&emu, "/v2/app/manifests/1")).send()?;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(emu.counters().challenge_for(&registry_host(&emu)), 4);

    // A backend that is gone: 502 with a registry error body.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    emu.set_upstream(&host, &format!("http://127.0.0.1:{gone}"))?;
    let (status, body) = body(c.get(registry_url(&emu, "/v2/")).send()?)?;
    assert_eq!(status, 502);
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    Ok(())
}

#[test]
fn admin_user_gets_every_action_with_basic_auth() -> TestResult {
    let emu = start()?;
    emu.add_registry(&registry_host(&emu));
    emu.set_admin_user(&registry_host(&emu), "myreg", "admin-pw");
    let c = client(&emu, &[REGISTRY])?;
    let ask = |password: &str| {
        c.get(registry_url(&emu, "/oauth2/token"))
            .query(&[
                ("service", registry_host(&emu).as_str()),
                ("scope", "repository:app:pull,push"),
            ])
            .basic_auth("myreg", Some(password))
            .send()
    };
    let (status, body) = body(ask("admin-pw")?)?;
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().ok_or("no access_token")?;
    assert_eq!(
        claims(token)?["access"],
        serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull", "push"]}])
    );
    assert_eq!(ask("wrong")?.status().as_u16(), 401);
    Ok(())
}

#[test]
fn pushes_to_a_registry_without_backend_are_refused() -> TestResult {
    let emu = start()?;
    emu.add_registry(&registry_host(&emu));
    let c = client(&emu, &[REGISTRY])?;
    let r = c
        .post(registry_url(&emu, "/v2/app/blobs/uploads/"))
        .send()?;
    assert_eq!(r.status().as_u16(), 405);
    Ok(())
}

const RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg-test/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller";

#[test]
fn managed_identities_are_found_by_resource_id_ignoring_case() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    emu.add_managed_identity(Some("ua-other"));
    let mi = emu.add_managed_identity_with_resource_id("ua-res", RESOURCE_ID);
    assert_eq!(
        emu.add_managed_identity(Some("ua-res")),
        mi,
        "the same identity, found by client id"
    );
    let imds = |resource_id: &str| -> Result<(u16, Value), Box<dyn Error>> {
        body(
            c.get(format!("{}/metadata/identity/oauth2/token", emu.base_url()))
                .query(&[
                    ("api-version", "2018-02-01"),
                    ("resource", "https://containerregistry.azure.net"),
                    ("msi_res_id", resource_id),
                ])
                .header("Metadata", "true")
                .send()?,
        )
    };

    let (status, ok) = imds(RESOURCE_ID)?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["client_id"], "ua-res");
    let token = ok["access_token"].as_str().ok_or("no token")?;
    assert_eq!(claims(token)?["oid"], mi.object_id.as_str());

    let (status, ok) = imds(&RESOURCE_ID.to_ascii_uppercase())?;
    assert_eq!(status, 200, "ARM ids are case-insensitive: {ok}");
    assert_eq!(ok["client_id"], "ua-res");

    let unknown = RESOURCE_ID.replace("/puller", "/stranger");
    let (status, err) = imds(&unknown)?;
    assert_eq!(
        (status, err["error_description"].as_str()),
        (400, Some("Identity not found"))
    );
    assert_eq!(emu.counters().entra_for("ua-res"), 2);

    // App Service names the identity by `mi_res_id`.
    let (endpoint, secret) = emu.app_service_endpoint();
    let app_service = |resource_id: &str| -> Result<(u16, Value), Box<dyn Error>> {
        body(
            c.get(&endpoint)
                .query(&[
                    ("api-version", "2019-08-01"),
                    ("resource", "https://containerregistry.azure.net"),
                    ("mi_res_id", resource_id),
                ])
                .header("X-IDENTITY-HEADER", &secret)
                .send()?,
        )
    };
    let (status, ok) = app_service(&RESOURCE_ID.to_ascii_lowercase())?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["client_id"], "ua-res");
    assert_eq!(app_service(&unknown)?.0, 400);
    Ok(())
}

const OTHER_TENANT: &str = "99999999-8888-7777-6666-555555555555";

#[test]
fn registry_owned_by_a_tenant_refuses_tokens_of_other_tenants() -> TestResult {
    let emu = start()?;
    let host = registry_host(&emu);
    emu.add_registry(&host);
    let c = client(&emu, &[REGISTRY])?;
    let hour = std::time::Duration::from_secs(3600);
    let home = emu.add_secret_principal(TENANT, "home-app", "home-secret");
    let foreign = emu.add_secret_principal(OTHER_TENANT, "guest-app", "guest-secret");
    let mi = emu.add_managed_identity(Some("mi-puller"));
    for p in [&home, &foreign, &mi] {
        emu.grant(&p.client_id, &host, Role::AcrPull);
    }
    let aad = |p: &Principal| emu.mint_entra_token(p, "https://containerregistry.azure.net", hour);

    // No owner: every tenant gets in.
    assert_eq!(exchange(&c, &emu, &aad(&foreign))?.0, 200);

    emu.set_registry_tenant(&host, &TENANT.to_ascii_uppercase());
    let (status, err) = exchange(&c, &emu, &aad(&foreign))?;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["errors"][0]["code"], "UNAUTHORIZED");
    let message = err["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("tenant") && message.contains(OTHER_TENANT),
        "{message}"
    );
    assert_eq!(mi.tenant, TENANT);
    assert_eq!(
        exchange(&c, &emu, &aad(&mi))?.0,
        200,
        "a managed identity belongs to its subscription's tenant, the registry's here"
    );
    let (status, ok) = exchange(&c, &emu, &aad(&home))?;
    assert_eq!(status, 200, "the owner's tenant, any case: {ok}");
    assert_eq!(emu.counters().exchange_for(&host), 4);

    // The guest app's client id and secret still work as Basic credentials.
    let (status, ok) = body(
        c.get(registry_url(&emu, "/oauth2/token"))
            .query(&[("service", host.as_str()), ("scope", "repository:app:pull")])
            .basic_auth("guest-app", Some("guest-secret"))
            .send()?,
    )?;
    assert_eq!(status, 200, "{ok}");
    let access = ok["access_token"].as_str().ok_or("no access token")?;
    assert_eq!(
        claims(access)?["access"],
        serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull"]}])
    );

    // Other registries keep taking any tenant.
    let service = format!("open.azurecr.io:{}", emu.port());
    emu.add_registry(&service);
    let open = client(&emu, &["open.azurecr.io"])?;
    emu.grant(&foreign.client_id, &service, Role::AcrPull);
    let (status, ok) = body(
        open.post(format!("https://{service}/oauth2/exchange"))
            .form(&[
                ("grant_type", "access_token"),
                ("service", service.as_str()),
                ("access_token", aad(&foreign).as_str()),
            ])
            .send()?,
    )?;
    assert_eq!(status, 200, "{ok}");
    Ok(())
}

const BINDING_SNI: &str = "ib.cluster-1.example.test";
const SA_ISSUER: &str = "https://oidc.example.test/cluster-1";
const SA_SUBJECT: &str = "system:serviceaccount:default:puller";

/// A client that trusts only the authority's CA and resolves its name to it.
fn authority_client(auth: &IdentityBindingAuthority) -> Result<Client, Box<dyn Error>> {
    Ok(Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .tls_certs_only([reqwest::Certificate::from_pem(auth.ca_pem().as_bytes())?])
        .resolve(BINDING_SNI, auth.local_addr())
        .build()?)
}

fn authority_url(auth: &IdentityBindingAuthority, path: &str) -> String {
    format!("https://{BINDING_SNI}:{}{path}", auth.local_addr().port())
}

/// A token request as the kubelet credential provider sends it.
fn binding_request(
    c: &Client,
    auth: &IdentityBindingAuthority,
    client_id: &str,
    assertion: &str,
    scope: &str,
) -> Result<(u16, Value), Box<dyn Error>> {
    body(
        c.post(authority_url(auth, "/"))
            .form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_id", client_id),
                ("scope", scope),
                ("client_assertion", assertion),
            ])
            .send()?,
    )
}

fn start_authority(emu: &Emulator) -> Result<IdentityBindingAuthority, Box<dyn Error>> {
    Ok(emu.start_identity_binding_authority("127.0.0.1:0".parse()?, BINDING_SNI)?)
}

#[test]
fn identity_binding_authority_issues_tokens_the_registry_exchanges() -> TestResult {
    let emu = start()?;
    let host = registry_host(&emu);
    emu.add_registry(&host);
    emu.set_registry_tenant(&host, TENANT);
    let app = emu.add_secret_principal(TENANT, "ib-app", "ib-secret");
    emu.grant(&app.client_id, &host, Role::AcrPull);
    let mi = emu.add_managed_identity(Some("ib-mi"));
    let auth = start_authority(&emu)?;
    assert_ne!(auth.ca_pem(), emu.ca_pem(), "the authority has its own CA");
    assert_eq!(std::fs::read_to_string(auth.ca_pem_path())?, auth.ca_pem());
    auth.bind("ib-app", SA_ISSUER, SA_SUBJECT);
    auth.bind("ib-mi", SA_ISSUER, SA_SUBJECT);
    let c = authority_client(&auth)?;
    let hour = std::time::Duration::from_secs(3600);
    let sa = emu.mint_service_account_token(SA_ISSUER, SA_SUBJECT, IDENTITY_BINDING_AUDIENCE, hour);

    let (status, ok) = binding_request(&c, &auth, "ib-app", &sa, ACR_SCOPE)?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3600);
    let token = ok["access_token"].as_str().ok_or("no token")?;
    let tc = claims(token)?;
    assert_eq!(tc["aud"], "https://containerregistry.azure.net");
    assert_eq!(tc["tid"], TENANT);
    assert_eq!(tc["oid"], app.object_id.as_str());
    assert_eq!(tc["appid"], "ib-app");
    assert!(
        emu.secrets().iter().any(|s| s == token),
        "listed as a secret"
    );

    // The registry (owned by the app's tenant) takes it.
    let (status, ok) = exchange(&client(&emu, &[REGISTRY])?, &emu, token)?;
    assert_eq!(status, 200, "{ok}");
    assert!(ok["refresh_token"].is_string());

    // A managed identity and the ARM scope; only at `/`, where the AKS plugin posts, and a
    // tenant, when sent, must be the identity's own.
    let mi_request = |path: &str, tenant: Option<&str>| {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_id", "ib-mi"),
            ("scope", "https://management.azure.com/.default"),
            ("client_assertion", sa.as_str()),
        ];
        form.extend(tenant.map(|t| ("tenant", t)));
        body(c.post(authority_url(&auth, path)).form(&form).send()?)
    };
    let (status, err) = mi_request("/token", None)?;
    assert_eq!(status, 404, "{err}");
    assert!(err.to_string().contains("POST to /"), "{err}");
    let (status, err) = mi_request("/", Some("some-other-tenant"))?;
    assert_eq!(status, 400, "{err}");
    let (status, ok) = mi_request("/", Some(mi.tenant.as_str()))?;
    assert_eq!(status, 200, "{ok}");
    let (status, ok) = mi_request("/", None)?;
    assert_eq!(status, 200, "{ok}");
    let tc = claims(ok["access_token"].as_str().ok_or("no token")?)?;
    assert_eq!(tc["aud"], "https://management.azure.com");
    assert_eq!(tc["oid"], mi.object_id.as_str());
    assert_eq!(tc["tid"], mi.tenant.as_str());
    assert_eq!(auth.requests(), 5);
    assert_eq!(emu.counters().entra(), 0, "the authority is not Entra");
    // The journal has each request with its path and identity-choosing fields, and no secret.
    let journal: Vec<_> = emu
        .journal()
        .into_iter()
        .filter(|e| e.listener == "binding")
        .collect();
    assert_eq!(journal.len(), 5, "{journal:?}");
    assert_eq!(journal[1].path, "/token");
    assert_eq!(journal[2].params["tenant"], "some-other-tenant");
    assert_eq!(journal[4].params["client_id"], "ib-mi");
    assert_eq!(journal[4].params["client_assertion.sub"], SA_SUBJECT);
    let text = format!("{journal:?}");
    assert!(
        !text.contains(sa.as_str()),
        "the assertion itself is not kept"
    );
    Ok(())
}

/// Accepts any server certificate, so a failed handshake can only be the server's refusal.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS handshake with `addr` that sends `sni` (none if `None`) and trusts any certificate.
fn raw_handshake(addr: std::net::SocketAddr, sni: Option<&str>) -> TestResult {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.enable_sni = sni.is_some();
    let name = rustls_pki_types::ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(())
}

#[test]
fn identity_binding_authority_serves_tls_only_for_its_name_and_ca() -> TestResult {
    let emu = start()?;
    let auth = start_authority(&emu)?;
    let addr = auth.local_addr();

    raw_handshake(addr, Some(BINDING_SNI))?;
    assert!(
        raw_handshake(addr, Some("other.example.test")).is_err(),
        "no certificate for another name"
    );
    assert!(
        raw_handshake(addr, None).is_err(),
        "no certificate without SNI"
    );

    let trusting = |ca: &str| -> Result<Client, Box<dyn Error>> {
        Ok(Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(20))
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
            .resolve(BINDING_SNI, addr)
            .resolve("other.example.test", addr)
            .build()?)
    };
    let ok = trusting(&auth.ca_pem())?;
    assert_eq!(
        ok.get(authority_url(&auth, "/")).send()?.status().as_u16(),
        405,
        "the right name and CA get through"
    );
    let other = format!("https://other.example.test:{}/", addr.port());
    assert!(ok.get(other).send().is_err(), "wrong SNI");
    assert!(
        trusting(&emu.ca_pem())?
            .get(authority_url(&auth, "/"))
            .send()
            .is_err(),
        "the emulator's CA does not vouch for the authority"
    );
    let no_sni = Client::builder()
        .no_proxy()
        .tls_sni(false)
        .tls_certs_only([reqwest::Certificate::from_pem(auth.ca_pem().as_bytes())?])
        .resolve(BINDING_SNI, addr)
        .build()?;
    assert!(no_sni.get(authority_url(&auth, "/")).send().is_err());
    assert_eq!(
        auth.requests(),
        1,
        "only the one good handshake made a request"
    );
    Ok(())
}

#[test]
fn identity_binding_authority_refuses_bad_assertions_without_echoing_them() -> TestResult {
    let emu = start()?;
    emu.add_secret_principal(TENANT, "ib-app", "ib-secret");
    let auth = start_authority(&emu)?;
    auth.bind("ib-app", SA_ISSUER, SA_SUBJECT);
    auth.bind("ghost-app", SA_ISSUER, SA_SUBJECT);
    let c = authority_client(&auth)?;
    let hour = std::time::Duration::from_secs(3600);
    let mint = |subject: &str, audience: &str, lifetime| {
        emu.mint_service_account_token(SA_ISSUER, subject, audience, lifetime)
    };
    let good = mint(SA_SUBJECT, IDENTITY_BINDING_AUDIENCE, hour);

    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "unbound subject",
            mint(
                "system:serviceaccount:default:other",
                IDENTITY_BINDING_AUDIENCE,
                hour,
            ),
            "ib-app",
            401,
            "unauthorized_client",
        ),
        (
            "wrong audience",
            mint(SA_SUBJECT, "api://AzureADTokenExchange", hour),
            "ib-app",
            401,
            "invalid_client",
        ),
        (
            "expired",
            mint(
                SA_SUBJECT,
                IDENTITY_BINDING_AUDIENCE,
                std::time::Duration::ZERO,
            ),
            "ib-app",
            401,
            "invalid_client",
        ),
        (
            "another cluster's key",
            start()?.mint_service_account_token(
                SA_ISSUER,
                SA_SUBJECT,
                IDENTITY_BINDING_AUDIENCE,
                hour,
            ),
            "ib-app",
            401,
            "invalid_client",
        ),
        (
            "bound to another client id",
            good.clone(),
            "other-app",
            401,
            "unauthorized_client",
        ),
        (
            "bound but unknown to the directory",
            good.clone(),
            "ghost-app",
            400,
            "invalid_client",
        ),
    ];
    for (what, assertion, client_id, status, error) in &cases {
        let (got, err) = binding_request(&c, &auth, client_id, assertion, ACR_SCOPE)?;
        assert_eq!(
            (got, err["error"].as_str()),
            (*status, Some(*error)),
            "{what}: {err}"
        );
        assert!(err["error_description"].is_string(), "{what}: {err}");
        assert!(
            !err.to_string().contains(assertion.as_str()),
            "{what} echoed the assertion"
        );
    }

    let (status, err) = binding_request(
        &c,
        &auth,
        "ib-app",
        &good,
        "https://vault.azure.net/.default",
    )?;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, err) = body(
        c.post(authority_url(&auth, "/"))
            .json(&serde_json::json!({"client_id": "ib-app", "client_assertion": good}))
            .send()?,
    )?;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(!err.to_string().contains(good.as_str()));

    // The same assertion, bound and known, succeeds.
    assert_eq!(
        binding_request(&c, &auth, "ib-app", &good, ACR_SCOPE)?.0,
        200
    );
    assert_eq!(auth.requests(), cases.len() + 3);
    Ok(())
}

#[test]
fn github_oidc_endpoint_checks_its_token_and_entra_accepts_its_assertions_until_they_expire()
-> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let subject = "repo:org/repo:ref:refs/heads/main";
    let job = emu.add_github_job(subject, std::time::Duration::from_secs(2));
    emu.add_federated_principal(TENANT, "gh-app", &job.issuer, subject);
    let url = format!(
        "{}&audience=api%3A%2F%2FAzureADTokenExchange",
        job.request_url
    );

    for bearer in ["", "Bearer wrong"] {
        let r = c.get(&url).header("Authorization", bearer).send()?;
        assert_eq!(r.status().as_u16(), 401);
    }
    let (status, v) = body(c.get(&url).bearer_auth(&job.request_token).send()?)?;
    assert_eq!(status, 200, "{v}");
    let token = v["value"].as_str().ok_or("no value")?.to_owned();
    let t = claims(&token)?;
    assert_eq!(
        (&t["iss"], &t["sub"], &t["aud"]),
        (
            &json!(job.issuer),
            &json!(subject),
            &json!("api://AzureADTokenExchange")
        )
    );
    assert!(emu.secrets().contains(&job.request_token));
    assert!(emu.secrets().contains(&token));
    let (status, ok) = assertion_request(&c, &emu, "gh-app", &token)?;
    assert_eq!(status, 200, "{ok}");

    // Without an audience, GitHub's default (the owner's URL), which Entra refuses.
    let (_, v) = body(
        c.get(&job.request_url)
            .bearer_auth(&job.request_token)
            .send()?,
    )?;
    let other = v["value"].as_str().ok_or("no value")?;
    assert_eq!(claims(other)?["aud"], "https://github.com/org");
    let (_, err) = assertion_request(&c, &emu, "gh-app", other)?;
    assert_eq!(error_code(&err), Some(700212), "{err}");

    // Expired: "Client assertion is not within its valid time range", once the emulator's clock
    // is past the token's 2 s.
    emu.set_clock_offset(4);
    let (status, err) = assertion_request(&c, &emu, "gh-app", &token)?;
    assert_eq!((status, error_code(&err)), (401, Some(700024)), "{err}");
    assert_eq!(emu.counters().github_oidc(), 4);
    assert_eq!(
        emu.counters().kind_for(EndpointKind::GitHubOidc, &job.id),
        4
    );
    Ok(())
}

#[test]
fn pipelines_oidc_endpoint_wants_the_access_token_and_the_service_connection() -> TestResult {
    let emu = start()?;
    let c = client(&emu, &[])?;
    let subject = "sc://org/project/acr-connection";
    let job = emu.add_pipelines_job("sc-1", subject, std::time::Duration::from_secs(600));
    emu.add_federated_principal(TENANT, "ado-app", &job.issuer, subject);
    let url = |sc: &str| {
        format!(
            "{}?api-version=7.1&serviceConnectionId={sc}",
            job.request_url
        )
    };

    let r = c.post(url("sc-1")).bearer_auth("wrong").send()?;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("x-vss-e2eid"));
    let r = c.post(url("sc-2")).bearer_auth(&job.request_token).send()?;
    assert_eq!(r.status().as_u16(), 404);
    let r = c.get(url("sc-1")).bearer_auth(&job.request_token).send()?;
    assert_eq!(r.status().as_u16(), 405, "POST only");
    let (status, v) = body(
        c.post(url("sc-1"))
            .bearer_auth(&job.request_token)
            .header("X-TFS-FedAuthRedirect", "Suppress")
            .send()?,
    )?;
    assert_eq!(status, 200, "{v}");
    let token = v["oidcToken"].as_str().ok_or("no oidcToken")?;
    assert_eq!(claims(token)?["sub"], subject);
    let (status, ok) = assertion_request(&c, &emu, "ado-app", token)?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        emu.counters().pipelines_oidc(),
        3,
        "the GET never reached it"
    );
    Ok(())
}

#[test]
fn anonymous_pull_gives_unauthenticated_clients_pull_only() -> Result<(), Box<dyn Error>> {
    let emu = start()?;
    let host = registry_host(&emu);
    emu.add_registry(&host);
    let c = client(&emu, &[REGISTRY])?;
    let scope = [
        ("service", host.as_str()),
        ("scope", "repository:app:pull,push"),
    ];
    let anonymous = || -> Result<(u16, Value), Box<dyn Error>> {
        body(
            c.get(registry_url(&emu, "/oauth2/token"))
                .query(&scope)
                .send()?,
        )
    };
    // Off (the default): no credentials, no token.
    assert_eq!(anonymous()?.0, 401);

    emu.set_anonymous_pull(&host, true);
    let (status, ok) = anonymous()?;
    assert_eq!(status, 200, "{ok}");
    let access = claims(ok["access_token"].as_str().ok_or("no access token")?)?;
    assert_eq!(
        access["access"],
        serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull"]}]),
        "pull only, whatever was asked"
    );
    assert_eq!(access["sub"], "");

    // A client that authenticates is judged by its role: without one it gets no access, and
    // wrong credentials are refused, anonymous pull or not.
    emu.add_secret_principal(TENANT, "no-role", "no-role-secret");
    let (status, ok) = body(
        c.get(registry_url(&emu, "/oauth2/token"))
            .query(&scope)
            .basic_auth("no-role", Some("no-role-secret"))
            .send()?,
    )?;
    assert_eq!(status, 200, "{ok}");
    let access = claims(ok["access_token"].as_str().ok_or("no access token")?)?;
    assert_eq!(access["access"], serde_json::json!([]));
    let refused = c
        .get(registry_url(&emu, "/oauth2/token"))
        .query(&scope)
        .basic_auth("no-role", Some("wrong"))
        .send()?;
    assert_eq!(refused.status().as_u16(), 401);
    let refused = c
        .get(registry_url(&emu, "/oauth2/token"))
        .query(&scope)
        .bearer_auth("not-basic")
        .send()?;
    assert_eq!(
        refused.status().as_u16(),
        401,
        "an Authorization header is not anonymous"
    );

    emu.set_anonymous_pull(&host, false);
    assert_eq!(anonymous()?.0, 401);
    Ok(())
}
