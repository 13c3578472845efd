//! Managed identity through IMDS at its real address, 169.254.169.254:80, inside a private
//! network namespace that this test creates (nothing leaves the test; needs root, as CI is).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::{EndpointKind, Fault, FaultAction, Role};

#[test]
fn managed_identity_through_imds_system_and_user_assigned() {
    if !acr_tests::sandbox::in_private_netns(&["169.254.169.254/32"]) {
        return;
    }
    let mut w = sandbox();
    w.emu
        .serve_imds_http("169.254.169.254:80".parse().unwrap())
        .unwrap();
    let system = w.emu.add_managed_identity(None);
    let user = w
        .emu
        .add_managed_identity(Some("88888888-8888-8888-8888-888888888888"));
    w.emu.grant(&system.client_id, &w.registry, Role::AcrPull);
    w.emu.grant(&user.client_id, &w.registry2, Role::AcrPull);
    // Not an Azure VM: IMDS is chosen by configuration.
    w.set("ACR_IDENTITY", "imds");
    // IMDS answers 410 while the VM boots: retried (IMDS's own guidance), then it answers.
    w.emu.set_fault(Fault::once(
        EndpointKind::Imds,
        FaultAction::Status {
            code: 410,
            retry_after: None,
            body: None,
        },
    ));
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
    assert_eq!(w.emu.counters().imds(), 3, "one 410, then two answers");
    // Unknown user-assigned identity: IMDS's refusal, named.
    w.set("AZURE_CLIENT_ID", "99999999-9999-9999-9999-999999999999");
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("managed identity (IMDS)"),
        "{}",
        stdout(&o)
    );
}

/// A plain HTTP proxy that must never be used: it records each request line and answers every
/// request (CONNECT included) with a fake token, as a hostile proxy would.
fn start_hostile_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            log.lock().unwrap().push(line.trim().to_string());
            let body = r#"{"access_token":"fake.proxy.token","expires_on":"4102444800","expires_in":"3600","resource":"x","token_type":"Bearer"}"#;
            let mut c = client;
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn identity_endpoints_on_this_machine_never_go_through_a_proxy() {
    if !acr_tests::sandbox::in_private_netns(&["169.254.169.254/32"]) {
        return;
    }
    let mut w = sandbox();
    w.emu
        .serve_imds_http("169.254.169.254:80".parse().unwrap())
        .unwrap();
    let system = w.emu.add_managed_identity(None);
    w.emu.grant(&system.client_id, &w.registry2, Role::AcrPull);
    let (port, seen) = start_hostile_proxy();
    let proxy = format!("http://127.0.0.1:{port}");
    for k in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
        w.set(k, &proxy);
    }
    // NO_PROXY covers the registry (127.0.0.1), not the identity endpoints.
    w.set("NO_PROXY", "127.0.0.1");

    // IMDS (plain http on a link-local address).
    w.set("ACR_IDENTITY", "imds");
    let a = answer(&get(&w, &w.registry2));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        system.object_id.as_str()
    );
    assert_eq!(w.emu.counters().imds(), 1);

    // App Service (https on localhost), with its secret header.
    let (endpoint, header) = w.emu.app_service_endpoint();
    w.set("IDENTITY_ENDPOINT", &endpoint);
    w.set("IDENTITY_HEADER", &header);
    w.set("ACR_IDENTITY", "app-service");
    let a = answer(&get(&w, &w.registry2));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        system.object_id.as_str()
    );
    assert_eq!(w.emu.counters().app_service(), 1);
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

#[test]
fn the_chosen_managed_identity_endpoint_is_the_one_asked() {
    // ACR_IDENTITY=imds with App Service and legacy MSI variables also set: IMDS is asked (the
    // cache key says IMDS), not the endpoint the process environment would make a library pick.
    if !acr_tests::sandbox::in_private_netns(&["169.254.169.254/32"]) {
        return;
    }
    let mut w = sandbox();
    w.emu
        .serve_imds_http("169.254.169.254:80".parse().unwrap())
        .unwrap();
    let system = w.emu.add_managed_identity(None);
    w.emu.grant(&system.client_id, &w.registry, Role::AcrPull);
    let (endpoint, header) = w.emu.app_service_endpoint();
    w.set("IDENTITY_ENDPOINT", &endpoint);
    w.set("IDENTITY_HEADER", &header);
    w.set("MSI_ENDPOINT", "http://127.0.0.1:1/msi/token");
    w.set("MSI_SECRET", "legacy-secret");
    w.set("ACR_IDENTITY", "imds");
    answer(&get(&w, &w.registry));
    let c = w.emu.counters();
    assert_eq!((c.imds(), c.app_service()), (1, 0), "{c:?}");
}
