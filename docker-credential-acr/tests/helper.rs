//! The real `docker-credential-acr` binary against the Entra/ACR emulator over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::Role;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";

#[test]
fn secret_principal_gets_a_refresh_token_for_the_registry() {
    let (w, p) = sandbox_with_secret_principal();
    let o = get(&w, &w.registry);
    let a = answer(&o);
    assert_eq!(a["ServerURL"], w.registry.as_str());
    assert_eq!(a["Username"], ACR_USER);
    let c = claims(a["Secret"].as_str().unwrap());
    assert_eq!(c["aud"], w.registry.as_str());
    assert_eq!(c["sub"], p.object_id.as_str());
    let n = w.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (1, 1));
    assert_eq!(stderr(&o), "", "quiet by default");
    // The answer's keys are in the protocol's order and spelling.
    assert!(stdout(&o).starts_with(&format!(
        "{{\"ServerURL\":\"{}\",\"Username\":\"{ACR_USER}\",\"Secret\":\"",
        w.registry
    )));
}

#[test]
fn cache_hit_makes_no_request_whatever_form_the_client_sends() {
    let (w, _) = sandbox_with_secret_principal();
    let first = answer(&get(&w, &w.registry));
    let before = w.emu.counters().total();
    for form in [
        w.registry.clone(),
        format!("https://{}", w.registry),
        format!("https://{}/v2/", w.registry),
        format!("{}/library/alpine", w.registry),
        w.registry.to_uppercase(),
    ] {
        let a = answer(&get(&w, &form));
        assert_eq!(a["Secret"], first["Secret"], "{form}");
        assert_eq!(a["ServerURL"], form.as_str());
    }
    assert_eq!(
        w.emu.counters().total(),
        before,
        "no request on a cache hit"
    );
    // Files are private.
    let dir = w.cache_dir();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            e.metadata().unwrap().mode() & 0o777,
            0o600,
            "{:?}",
            e.path()
        );
    }
}

#[test]
fn second_registry_of_the_same_identity_costs_one_exchange_and_no_entra_call() {
    let (w, _) = sandbox_with_secret_principal();
    answer(&get(&w, &w.registry));
    let a = answer(&get(&w, &w.registry2));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["aud"],
        w.registry2.as_str()
    );
    let n = w.emu.counters();
    assert_eq!(n.entra(), 1);
    assert_eq!(n.exchange(), 2);
    assert_eq!(n.exchange_for(&w.registry2), 1);
}

#[test]
fn thirty_two_concurrent_cold_processes_make_one_entra_request_and_one_exchange() {
    let (w, _) = sandbox_with_secret_principal();
    w.emu.set_fault(acr_tests::emulator::Fault::once(
        acr_tests::emulator::EndpointKind::Entra,
        acr_tests::emulator::FaultAction::Latency(Duration::from_millis(300)),
    ));
    // Entra answers slowly, so all 32 are running before the first fetch ends.
    let children: Vec<_> = (0..32).map(|_| w.spawn(&["get"], &w.registry)).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let secrets: std::collections::BTreeSet<String> = outputs
        .iter()
        .map(|o| answer(o)["Secret"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(secrets.len(), 1, "every process answers with the one token");
    let n = w.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (1, 1));
}

#[test]
fn certificate_principal() {
    let mut w = sandbox();
    let (p, pair) = w
        .emu
        .add_certificate_principal(TENANT, "22222222-2222-2222-2222-222222222222")
        .unwrap();
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    let pem = w.path("sp.pem");
    std::fs::write(&pem, format!("{}\n{}", pair.cert_pem, pair.key_pem)).unwrap();
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_CLIENT_CERTIFICATE_PATH", pem.to_str().unwrap());
    let a = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        p.object_id.as_str()
    );
    assert_eq!(w.emu.counters().entra_for(&p.client_id), 1);
}

#[test]
fn certificate_file_without_key_is_a_clear_error() {
    let mut w = sandbox();
    let (p, pair) = w
        .emu
        .add_certificate_principal(TENANT, "22222222-2222-2222-2222-222222222223")
        .unwrap();
    let pem = w.path("cert-only.pem");
    std::fs::write(&pem, pair.cert_pem).unwrap();
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_CLIENT_CERTIFICATE_PATH", pem.to_str().unwrap());
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("no PRIVATE KEY block"),
        "{}",
        stdout(&o)
    );
    assert_eq!(w.emu.counters().total(), 0);
}

#[test]
fn workload_identity() {
    let mut w = sandbox();
    let issuer = "https://oidc.prod-aks.azure.com/cluster-1/";
    let subject = "system:serviceaccount:default:builder";
    let p = w.emu.add_federated_principal(
        TENANT,
        "33333333-3333-3333-3333-333333333333",
        issuer,
        subject,
    );
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPush);
    let token = w.emu.mint_service_account_token(
        issuer,
        subject,
        "api://AzureADTokenExchange",
        Duration::from_secs(3600),
    );
    let file = w.path("azure-identity-token");
    std::fs::write(&file, &token).unwrap();
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap());
    w.set("ACR_LOG", "trace");
    let o = get(&w, &w.registry);
    let a = answer(&o);
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        p.object_id.as_str()
    );
    assert!(
        !stderr(&o).contains(&token),
        "the assertion never reaches stderr"
    );
    assert!(!stderr(&o).contains(a["Secret"].as_str().unwrap()));
}

#[test]
fn managed_identity_through_the_app_service_endpoint_system_and_user_assigned() {
    let mut w = sandbox();
    let system = w.emu.add_managed_identity(None);
    let user = w
        .emu
        .add_managed_identity(Some("44444444-4444-4444-4444-444444444444"));
    w.emu.grant(&system.client_id, &w.registry, Role::AcrPull);
    w.emu.grant(&user.client_id, &w.registry2, Role::AcrPull);
    let (endpoint, header) = w.emu.app_service_endpoint();
    w.set("IDENTITY_ENDPOINT", &endpoint);
    w.set("IDENTITY_HEADER", &header);
    let a = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        system.object_id.as_str()
    );
    w.set("AZURE_CLIENT_ID", &user.client_id);
    let a = answer(&get(&w, &w.registry2));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        user.object_id.as_str()
    );
    assert_eq!(w.emu.counters().app_service(), 2);
}

#[test]
fn azure_cli_login() {
    let mut w = sandbox();
    let p = w.emu.add_secret_principal(
        TENANT,
        "55555555-5555-5555-5555-555555555555",
        "unused-secret",
    );
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    let token = w.emu.mint_entra_token(
        &p,
        "https://containerregistry.azure.net",
        Duration::from_secs(3600),
    );
    let bin = w.path("bin");
    let args_file = w.path("az-args");
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    acr_tests::az::install(
        &bin,
        &args_file,
        &token,
        i64::try_from(expires).unwrap() + 3600,
    )
    .unwrap();
    w.set("PATH", &format!("{}:/usr/bin:/bin", bin.display()));
    let a = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        p.object_id.as_str()
    );
    let args = acr_tests::az::calls(&args_file).join("\n");
    assert!(args.contains("account get-access-token"), "{args}");
    assert!(
        args.contains("https://containerregistry.azure.net/.default"),
        "{args}"
    );
    assert_eq!(
        w.emu.counters().entra(),
        0,
        "the CLI, not Entra, gave the token"
    );
    assert_eq!(w.emu.counters().exchange(), 1);

    // `az login` as someone else (the CLI rewrites azureProfile.json, with a byte-order mark):
    // the first account's cached token is not served to the second.
    let profile = |user: &str| {
        let doc = serde_json::json!({"subscriptions": [
            {"id": "s-other", "isDefault": false, "tenantId": "other-tenant",
             "user": {"name": "someone@else", "type": "user"}},
            {"id": "s1", "isDefault": true, "tenantId": TENANT,
             "user": {"name": user, "type": "user"}},
        ]});
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend(doc.to_string().into_bytes());
        std::fs::create_dir_all(w.path(".azure")).unwrap();
        std::fs::write(w.path(".azure/azureProfile.json"), bytes).unwrap();
    };
    let az_calls = || acr_tests::az::calls(&args_file).len();
    std::fs::remove_file(&args_file).unwrap();
    profile("alice@contoso.com");
    answer(&get(&w, &w.registry));
    assert_eq!(az_calls(), 1, "a new account asks the CLI");
    answer(&get(&w, &w.registry));
    assert_eq!(az_calls(), 1, "the same account is served from the cache");
    profile("bob@contoso.com");
    answer(&get(&w, &w.registry));
    assert_eq!(
        az_calls(),
        2,
        "after az login as bob, alice's token is not served"
    );
    profile("alice@contoso.com");
    answer(&get(&w, &w.registry));
    assert_eq!(az_calls(), 2, "alice's entry is still cached");
}

#[test]
fn identity_without_a_role_gets_an_error_naming_the_role() {
    let mut w = sandbox();
    let p = w.emu.add_secret_principal(
        TENANT,
        "66666666-6666-6666-6666-666666666666",
        "sp-secret-value-6",
    );
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_CLIENT_SECRET", "sp-secret-value-6");
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("AcrPull") && out.contains(&w.registry) && out.contains(&p.client_id),
        "{out}"
    );
    assert!(!out.contains("sp-secret-value-6"));
    // Configured to fall back to anonymous pulls: not-found, and the cause on stderr.
    w.set("ACR_ANONYMOUS_FALLBACK", "1");
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).trim(), NOT_FOUND);
    assert!(stderr(&o).contains("AcrPull"), "{}", stderr(&o));
}

#[test]
fn entra_refusal_is_one_line_naming_the_source_without_the_secret() {
    let (mut w, _) = sandbox_with_secret_principal();
    w.set("AZURE_CLIENT_SECRET", "wrong-secret-value");
    w.set("ACR_LOG", "trace");
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("service principal (secret)"), "{out}");
    assert!(out.contains("AADSTS7000215"), "{out}");
    assert_eq!(w.emu.counters().entra(), 1, "a refusal is not retried");
    assert!(!out.contains("wrong-secret-value") && !stderr(&o).contains("wrong-secret-value"));
}

#[test]
fn hosts_that_are_not_acr_answer_not_found_with_no_request() {
    let (w, _) = sandbox_with_secret_principal();
    for host in [
        "docker.io",
        "https://index.docker.io/v1/",
        "ghcr.io",
        "myregistry.azurecr.io.evil.example",
        "myregistry.azurecr.io@evil.example",
        "https://myregistry.azurecr.io@127.0.0.1/",
        "http://myregistry.azurecr.io",
        "myregistry.azurecr.io:8443",
        "127.0.0.2",
        "[::1]",
        "xn--myregistry.azurecr.io.example",
        "localhost",
    ] {
        let o = get(&w, host);
        assert_eq!(o.status.code(), Some(1), "{host}");
        assert_eq!(stdout(&o), format!("{NOT_FOUND}\n"), "{host}");
        assert_eq!(stderr(&o), "", "{host}");
    }
    assert_eq!(w.emu.counters().total(), 0, "nothing was sent");
}

#[test]
fn no_identity_lists_what_each_source_lacked() {
    let w = sandbox();
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.starts_with("no Azure identity found (tried: service principal (secret): AZURE_CLIENT_SECRET is not set;"), "{out}");
    assert!(out.contains("Azure CLI: `az` is not on PATH"), "{out}");
    assert_eq!(w.emu.counters().total(), 0);
}

#[test]
fn store_get_list_erase_round_trip() {
    let (w, _) = sandbox_with_secret_principal();
    let o = w.run(&["store"], r#"{"ServerURL":"https://myregistry.azurecr.io","Username":"admin","Secret":"admin-password-1"}"#);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");
    let file = w.path("config/docker-credential-acr/credentials.json");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    // Stored credentials win, and cost no request.
    let a = answer(&get(&w, "myregistry.azurecr.io"));
    assert_eq!(
        (a["Username"].as_str(), a["Secret"].as_str()),
        (Some("admin"), Some("admin-password-1"))
    );
    // An identity token from `docker login` round-trips too.
    let o = w.run(
        &["store"],
        r#"{"ServerURL":"other.example.com","Username":"<token>","Secret":"identity-token-1"}"#,
    );
    assert!(o.status.success());
    assert_eq!(answer(&get(&w, "other.example.com"))["Username"], "<token>");
    // A token fetched through the broker is listed too.
    answer(&get(&w, &w.registry));
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&w.run(&["list"], "unused"))).unwrap();
    assert_eq!(list["https://myregistry.azurecr.io"], "admin");
    assert_eq!(list["other.example.com"], "<token>");
    assert_eq!(list[w.registry.as_str()], ACR_USER);
    assert_eq!(w.emu.counters().exchange(), 1);
    // Erase removes stored credentials ...
    assert!(w.run(&["erase"], "myregistry.azurecr.io").status.success());
    let o = get(&w, "myregistry.azurecr.io");
    assert_eq!(o.status.code(), Some(1));
    // ... and cached tokens, the identity's Entra token too (a logout leaves nothing the next
    // fetch would trust): the next get asks Entra and exchanges again.
    assert!(
        w.run(&["erase"], &format!("https://{}", w.registry))
            .status
            .success()
    );
    let entra_files = std::fs::read_dir(w.cache_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("entra-"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(entra_files, 0, "erase leaves no cached Entra token");
    let before = w.emu.counters().entra();
    answer(&get(&w, &w.registry));
    let n = w.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (before + 1, 2));
    // Erasing what is not there is the protocol's not-found.
    let o = w.run(&["erase"], "nothing.example.com");
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(1), format!("{NOT_FOUND}\n"))
    );
    assert!(!stdout(&w.run(&["list"], "x")).contains("myregistry.azurecr.io"));
}

#[test]
fn store_refuses_bad_input_with_the_reference_messages_and_changes_nothing() {
    let (w, _) = sandbox_with_secret_principal();
    assert!(
        w.run(
            &["store"],
            r#"{"ServerURL":"a.example","Username":"u","Secret":"s"}"#
        )
        .status
        .success()
    );
    let before = w.snapshot();
    for (input, message) in [
        ("", "no credentials on standard input"),
        ("{garbage", "standard input is not credentials JSON"),
        ("[]", "standard input is not credentials JSON"),
        (
            r#"{"ServerURL":"","Username":"u","Secret":"s"}"#,
            "no credentials server URL",
        ),
        (
            r#"{"ServerURL":"b.example","Username":"","Secret":"s"}"#,
            "no credentials username",
        ),
    ] {
        let o = w.run(&["store"], input);
        assert_eq!(o.status.code(), Some(1), "{input}");
        assert!(stdout(&o).starts_with(message), "{input}: {}", stdout(&o));
        assert_eq!(stdout(&o).lines().count(), 1);
    }
    assert_eq!(
        stdout(&w.run(
            &["store"],
            r#"{"ServerURL":"","Username":"u","Secret":"s"}"#
        )),
        "no credentials server URL\n"
    );
    assert_eq!(w.snapshot(), before, "nothing on disk changed");
}

#[test]
fn bad_invocations_fail_clearly_and_change_nothing() {
    let (w, _) = sandbox_with_secret_principal();
    answer(&get(&w, &w.registry));
    let before = w.snapshot();
    for (args, stdin, needle) in [
        (&[][..], "", "no action given"),
        (&["bogus"][..], "", "unrecognized subcommand 'bogus'"),
        (&["get"][..], "", "no server URL on standard input"),
        (&["get"][..], "   \n", "no server URL on standard input"),
        (&["erase"][..], "", "no server URL on standard input"),
    ] {
        let o = w.run(args, stdin);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stdout(&o).contains(needle), "{args:?}: {}", stdout(&o));
        assert_eq!(stdout(&o).lines().count(), 1, "{args:?}");
    }
    assert_eq!(w.snapshot(), before);
}

#[test]
fn version_answers() {
    let w = sandbox();
    for arg in ["version", "--version", "-v"] {
        let o = w.run(&[arg], "");
        assert!(o.status.success());
        assert_eq!(
            stdout(&o),
            format!("docker-credential-acr {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn configure_docker_adds_helpers_and_keeps_everything_else() {
    let mut w = sandbox();
    let docker = w.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = docker.join("config.json");
    std::fs::write(&config, r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}},"psFormat":"table {{.ID}}","credHelpers":{"gcr.io":"gcloud"},"experimental":"enabled"}"#).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    w.set("DOCKER_CONFIG", docker.to_str().unwrap());
    let o = w.run(
        &[
            "configure-docker",
            "--registries",
            "a1234.azurecr.io,https://B1234.azurecr.io/",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(
        stdout(&o).contains("added credHelpers[\"a1234.azurecr.io\"] = \"acr\""),
        "{}",
        stdout(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(v["credHelpers"]["a1234.azurecr.io"], "acr");
    assert_eq!(v["credHelpers"]["b1234.azurecr.io"], "acr");
    assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
    assert_eq!(v["auths"]["ghcr.io"]["auth"], "dXNlcjpwYXNz");
    assert_eq!(v["psFormat"], "table {{.ID}}");
    assert_eq!(v["experimental"], "enabled");
    assert_eq!(std::fs::metadata(&config).unwrap().mode() & 0o777, 0o640);
    let before = std::fs::read(&config).unwrap();
    let o = w.run(
        &["configure-docker", "--registries", "a1234.azurecr.io"],
        "",
    );
    assert!(o.status.success());
    assert!(stdout(&o).contains("already"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&config).unwrap(), before, "idempotent");
    // A host that is not ACR is refused on stderr, and the file stays as it was.
    let o = w.run(&["configure-docker", "--registries", "evil.example"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("evil.example"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&config).unwrap(), before);
}

#[test]
fn secrets_never_reach_stderr_even_at_trace_level() {
    let (mut w, _) = sandbox_with_secret_principal();
    w.set("ACR_LOG", "trace");
    let o = get(&w, &w.registry);
    let token = answer(&o)["Secret"].as_str().unwrap().to_string();
    let err = stderr(&o);
    assert!(err.contains("got a token for"), "trace logs are on: {err}");
    for secret in ["sp-secret-value-1", token.as_str()] {
        assert!(!err.contains(secret));
    }
    // The Entra token cached on disk is not in stderr either.
    for e in std::fs::read_dir(w.cache_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("entra-")
            && p.extension().is_some_and(|x| x == "json")
        {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert!(!err.contains(v["token"].as_str().unwrap()));
        }
    }
}

/// A minimal HTTPS proxy (HTTP CONNECT) that records each tunnel's target and splices bytes.
fn start_connect_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() <= 2 {
                        break;
                    }
                }
                log.lock().unwrap().push(target.clone());
                let upstream = TcpStream::connect(&target).unwrap();
                let mut c = client;
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                let mut c_w = c.try_clone().unwrap();
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut up_w);
                    let _ = up_w.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up_r, &mut c_w);
                let _ = c_w.shutdown(std::net::Shutdown::Write);
                let _ = t.join();
            });
        }
    });
    (port, seen)
}

#[test]
fn https_proxy_is_used_for_entra_and_the_registry_unless_no_proxy_says_otherwise() {
    let (mut w, _) = sandbox_with_secret_principal();
    let (port, seen) = start_connect_proxy();
    w.set("HTTPS_PROXY", &format!("http://127.0.0.1:{port}"));
    answer(&get(&w, &w.registry));
    let tunnels = seen.lock().unwrap().clone();
    let target = format!("localhost:{}", w.emu.port());
    // Entra and the exchange share one tunnel (the connection is reused).
    assert!(
        !tunnels.is_empty() && tunnels.iter().all(|t| *t == target),
        "{tunnels:?}"
    );
    assert_eq!(w.emu.counters().exchange(), 1);
    // NO_PROXY exempts the second registry's host: it is reached directly.
    w.set("NO_PROXY", "127.0.0.1");
    let before = seen.lock().unwrap().len();
    answer(&get(&w, &w.registry2));
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "no tunnel for a NO_PROXY host"
    );
    assert_eq!(w.emu.counters().exchange_for(&w.registry2), 1);
}

#[test]
fn completions_are_valid_shell_and_know_every_command() {
    let w = sandbox();
    let o = w.run(&["completions", "bash"], "");
    assert!(o.status.success());
    let script = stdout(&o);
    for cmd in [
        "get",
        "store",
        "erase",
        "list",
        "version",
        "doctor",
        "configure-docker",
    ] {
        assert!(script.contains(cmd), "{cmd} missing");
    }
    let path = w.path("completion.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let o = w.run(&["completions", "tcsh"], "");
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unknown shell is a usage error"
    );
}
