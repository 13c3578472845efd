//! A registry (or a front end in its place) that answers to take more than its own token: one
//! that refuses the ACR-audience token to be sent an ARM-audience one, a challenge that points
//! the exchange at another registry, and error text with terminal escapes. Through the real
//! helper, against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::{EndpointKind, Fault, FaultAction, RegistryAudiences};
use std::io::{BufRead, BufReader, Write};

/// A fault: the next exchange is answered `status` with an ACR error body whose message is
/// `message` (a JSON string's contents, escapes allowed).
fn exchange_answers(status: u16, message: &str) -> Fault {
    Fault::once(
        EndpointKind::Exchange,
        FaultAction::Status {
            code: status,
            retry_after: None,
            body: Some(format!(
                r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"{message}"}}]}}"#
            )),
        },
    )
}

#[test]
fn a_host_that_is_not_a_known_clouds_acr_is_never_sent_an_arm_token_unasked() {
    let (mut w, p) = sandbox_with_secret_principal();
    // A custom front end (here one of ACR_LOGIN_SERVERS) refuses the ACR-audience token with
    // any text naming the audience, hoping for the identity's ARM (management-plane) token.
    w.emu
        .set_fault(exchange_answers(401, "token audience not accepted"));
    let o = get(&w, &w.registry);
    assert!(!o.status.success(), "{}", stdout(&o));
    let c = w.emu.counters();
    assert_eq!(
        c.entra_for(&p.client_id),
        1,
        "no ARM token asked for: {c:?}"
    );
    assert_eq!(c.exchange_for(&w.registry), 1, "{c:?}");
    // Even the refusal it recognises as ACR's does not make it send one: it says what to set.
    // (ACR documents only its refusal of ARM's audience, `arm aad token disallowed`; the
    // emulator's `acr aad token disallowed` is invented by symmetry, and the documented trigger
    // for ACR's, Entra's AADSTS500011, is validity.rs's
    // a_tenant_without_acrs_audience_names_the_setting_for_a_configured_host.)
    w.emu
        .set_registry_audiences(&w.registry, RegistryAudiences::ArmOnly);
    let o = get(&w, &w.registry);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("acr aad token disallowed") && out.contains("ACR_AUDIENCE=arm"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    let c = w.emu.counters();
    assert_eq!(c.exchange_for(&w.registry), 2, "{c:?}");
    // Asked for explicitly, the ARM audience is used.
    w.set("ACR_AUDIENCE", "arm");
    answer(&get(&w, &w.registry));
}

/// A plain-HTTP registry backend that answers every request `401` with `challenge` as its
/// `WWW-Authenticate` header; its URL.
fn backend_challenging(challenge: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = (&stream).write_all(
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    url
}

#[test]
fn a_challenge_never_sends_the_exchange_to_another_registry_or_service() {
    let (w, _) = sandbox_with_secret_principal();
    let (one, two) = (w.registry.clone(), w.registry2.clone());
    for (challenge, named) in [
        // The realm on another login server this helper serves.
        (
            format!(r#"Bearer realm="https://{two}/oauth2/token",service="{two}""#),
            two.clone(),
        ),
        // The registry's own realm, for another registry's service.
        (
            format!(r#"Bearer realm="https://{one}/oauth2/token",service="{two}""#),
            two.clone(),
        ),
    ] {
        w.emu.reset_counters();
        w.emu
            .set_upstream(&one, &backend_challenging(challenge.clone()))
            .unwrap();
        // No exchange endpoint where it should be: the challenge is read.
        w.emu.set_fault(Fault::once(
            EndpointKind::Exchange,
            FaultAction::Status {
                code: 404,
                retry_after: None,
                body: None,
            },
        ));
        let o = get(&w, &one);
        let out = stdout(&o);
        assert!(!o.status.success(), "{challenge}: {out}");
        assert!(out.contains(&named) && out.contains("refusing"), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        let c = w.emu.counters();
        assert_eq!(c.exchange_for(&two), 0, "{challenge}: {c:?}");
        assert_eq!(c.exchange_for(&one), 1, "only the first try: {c:?}");
    }
}

#[test]
fn a_registrys_error_text_reaches_the_terminal_without_control_characters() {
    let (mut w, _) = sandbox_with_secret_principal();
    w.set("ACR_LOG", "debug");
    // A title change, a bell, a screen clear and an 8-bit CSI.
    w.emu.set_fault(exchange_answers(
        401,
        r"no role\u001b]0;owned\u0007\u001b[2J\u009b31m here\u202e",
    ));
    let o = get(&w, &w.registry);
    assert!(!o.status.success());
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("no role") && out.contains("here"), "{out}");
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        let bad: Vec<char> = text
            .chars()
            .filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
            .collect();
        assert!(bad.is_empty(), "{name} has {bad:?}: {text:?}");
    }
}
