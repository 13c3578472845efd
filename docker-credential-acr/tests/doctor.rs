//! `doctor`: a working setup and each broken one, in text and JSON, never a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

#[test]
fn a_working_setup_is_explained_and_exits_zero() {
    let (w, p) = sandbox_with_secret_principal();
    answer(&get(&w, &w.registry2));
    let o = w.run(&["doctor", &w.registry], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "identity: service principal (secret) (client id {}, tenant {TENANT})",
            p.client_id
        )),
        "{out}"
    );
    assert!(out.contains("AZURE_CLIENT_SECRET=(set, hidden)"), "{out}");
    assert!(!out.contains(acr_tests::sandbox::SP_SECRET));
    assert!(
        out.contains("  challenge: ok, token service https://"),
        "{out}"
    );
    assert!(out.contains("  token: ok, expires in"), "{out}");
    assert!(
        out.contains(&format!(
            "cached: {} as service principal (secret)",
            w.registry2
        )),
        "{out}"
    );
    assert!(out.ends_with("result: ok\n"), "{out}");
    acr_tests::sandbox::assert_no_secret(&w.emu, &o.stdout, "doctor's stdout");

    let o = w.run(&["doctor", &w.registry, "--json"], "");
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["identity"]["client_id"], p.client_id.as_str());
    assert_eq!(v["registry"]["token"]["ok"], true);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 0);
    acr_tests::sandbox::assert_no_secret(&w.emu, &o.stdout, "doctor's JSON");
}

#[test]
fn each_broken_setup_says_what_is_wrong_and_exits_one() {
    // No identity at all: every source is listed with what it lacked.
    let w = sandbox();
    let o = w.run(&["doctor"], "");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("skipped service principal (secret): AZURE_CLIENT_SECRET is not set"),
        "{out}"
    );
    assert!(
        out.contains("identity: ERROR no Azure identity found"),
        "{out}"
    );

    // An identity without a role on the registry.
    let mut w = sandbox();
    let p = w.emu.add_secret_principal(
        TENANT,
        "66666666-6666-6666-6666-666666666666",
        "no-role-secret-1",
    );
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_CLIENT_SECRET", "no-role-secret-1");
    let o = w.run(&["doctor", &w.registry], "");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("  challenge: ok"), "{out}");
    assert!(
        out.contains("  token: ERROR") && out.contains("AcrPull"),
        "{out}"
    );
    assert!(!out.contains("no-role-secret-1"));

    // A host that is not an ACR login server.
    let o = w.run(&["doctor", "ghcr.io"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("registry ghcr.io: ERROR not an Azure Container Registry login server"),
        "{}",
        stdout(&o)
    );

    // A registry that does not answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("127.0.0.1:{closed}");
    w.set("ACR_LOGIN_SERVERS", &format!("{},{dead}", w.registry));
    w.set("ACR_TIMEOUT", "3");
    let o = w.run(&["doctor", &dead], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("  challenge: ERROR"), "{}", stdout(&o));

    // A bad setting.
    w.set("ACR_IDENTITY", "magic");
    let o = w.run(&["doctor"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("configuration: ERROR invalid configuration: ACR_IDENTITY"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_role_removed_since_the_token_was_cached_shows() {
    let (w, p) = sandbox_with_secret_principal();
    // A pull caches a token; then the role assignment is deleted.
    answer(&get(&w, &w.registry));
    let exchanges = w.emu.counters().exchange();
    w.emu.revoke(&p.client_id, &w.registry);
    // `get` still answers from the cache (the registry would refuse that token's use later)...
    answer(&get(&w, &w.registry));
    assert_eq!(w.emu.counters().exchange(), exchanges);
    // ...but doctor exchanges anew and says what is wrong.
    let o = w.run(&["doctor", &w.registry], "");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("  token: ERROR") && out.contains("AcrPull"),
        "{out}"
    );
    assert_eq!(w.emu.counters().exchange(), exchanges + 1);
    // With the role back, it is ok again, from another new exchange.
    w.emu.grant(
        &p.client_id,
        &w.registry,
        acr_tests::emulator::Role::AcrPull,
    );
    let o = w.run(&["doctor", &w.registry], "");
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("(a new exchange, not the cache)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(w.emu.counters().exchange(), exchanges + 2);
}

#[test]
fn proxy_credentials_are_never_printed() {
    let (mut w, _) = sandbox_with_secret_principal();
    // NO_PROXY covers the emulator on loopback, so the checks still run; the proxies' user info
    // must not reach the report in either form.
    for (k, v) in [
        (
            "HTTPS_PROXY",
            "http://proxyuser:pr0xy-pa55@proxy.example:3128",
        ),
        (
            "HTTP_PROXY",
            "http://proxyuser:pr0xy-pa55@proxy.example:3128",
        ),
        (
            "ALL_PROXY",
            "socks5://proxyuser:pr0xy-pa55@proxy.example:1080",
        ),
        ("NO_PROXY", "127.0.0.1,localhost"),
    ] {
        w.set(k, v);
    }
    for args in [
        vec!["doctor", w.registry.as_str()],
        vec!["doctor", w.registry.as_str(), "--json"],
    ] {
        let o = w.run(&args, "");
        let out = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            !out.contains("pr0xy-pa55") && !out.contains("proxyuser"),
            "{out}"
        );
        assert!(out.contains("(hidden)@proxy.example:3128"), "{out}");
        assert!(out.contains("ALL_PROXY"), "{out}");
    }
}
