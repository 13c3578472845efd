//! The broker as a library, with an injected clock, against the Entra/ACR emulator: refresh
//! ahead of expiry and stale-if-error, without sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acr_broker::{Broker, Env, ManualClock, Settings};
use acr_tests::TENANT;
use acr_tests::emulator::{Emulator, EmulatorConfig, EndpointKind, Fault, FaultAction, Role};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Setup {
    emu: Emulator,
    _dir: tempfile::TempDir,
    broker: Broker,
    clock: ManualClock,
    registry: String,
}

fn setup() -> Setup {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let registry = format!("localhost:{}", emu.port());
    emu.add_registry(&registry);
    let p = emu.add_secret_principal(TENANT, "77777777-7777-7777-7777-777777777777", "secret-7");
    emu.grant(&p.client_id, &registry, Role::AcrPull);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("HOME", dir.path().to_str().unwrap().to_string()),
        ("PATH", "/nonexistent".to_string()),
        (
            "SSL_CERT_FILE",
            emu.ca_pem_path().to_str().unwrap().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.base_url()),
        ("ACR_LOGIN_SERVERS", registry.clone()),
        (
            "ACR_CACHE_DIR",
            dir.path().join("cache").to_str().unwrap().to_string(),
        ),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", p.client_id.clone()),
        ("AZURE_CLIENT_SECRET", "secret-7".to_string()),
    ]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let clock = ManualClock::new(now);
    let broker = Broker::with_clock(
        Settings::from_env(env, None).unwrap(),
        Arc::new(clock.clone()),
    );
    Setup {
        emu,
        _dir: dir,
        broker,
        clock,
        registry,
    }
}

#[test]
fn refreshes_when_a_third_of_the_lifetime_remains() {
    let s = setup();
    s.emu
        .set_lifetimes(Duration::from_secs(3600), Duration::from_secs(3 * 3600));
    let server = s.broker.login_server(&s.registry).unwrap();
    let first = s.broker.credential(&server).unwrap();
    assert_eq!(first.refresh_at, first.expires_at - 3600);
    // Just before the refresh point: still served from the cache.
    s.clock.advance(2 * 3600 - 10);
    let again = s.broker.credential(&server).unwrap();
    assert_eq!(again.secret, first.secret);
    assert_eq!(s.emu.counters().exchange(), 1);
    // Past it: a new token, though the old one is still valid.
    s.clock.advance(20);
    let refreshed = s.broker.credential(&server).unwrap();
    assert_ne!(refreshed.secret, first.secret);
    assert_eq!(s.emu.counters().exchange(), 2);
    // The Entra token (1 h) had expired on the injected clock, so Entra was asked again.
    assert_eq!(s.emu.counters().entra(), 2);
}

#[test]
fn stale_if_error_serves_the_cached_token_until_it_expires() {
    let s = setup();
    let server = s.broker.login_server(&s.registry).unwrap();
    let first = s.broker.credential(&server).unwrap();
    s.clock.advance(2 * 3600 + 60);
    s.emu.set_fault(Fault::times(
        EndpointKind::Exchange,
        100,
        FaultAction::Status {
            code: 503,
            retry_after: None,
            body: None,
        },
    ));
    let stale = s.broker.credential(&server).unwrap();
    assert_eq!(
        stale.secret, first.secret,
        "refresh failed: the still-valid token is served"
    );
    assert!(s.emu.counters().exchange() >= 2, "a refresh was attempted");
    // Once the cached token is about to expire, the failure is the answer.
    s.clock.set(first.expires_at - 30);
    let e = s.broker.credential(&server).unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    // Recovery: the fault is gone, a fresh token comes.
    s.emu.clear_faults();
    let fresh = s.broker.credential(&server).unwrap();
    assert_ne!(fresh.secret, first.secret);
}

#[test]
fn exchange_falls_back_to_the_challenge_realm_when_the_endpoint_is_missing() {
    let s = setup();
    let server = s.broker.login_server(&s.registry).unwrap();
    s.emu.set_fault(Fault::once(
        EndpointKind::Exchange,
        FaultAction::Status {
            code: 404,
            retry_after: None,
            body: None,
        },
    ));
    s.broker.credential(&server).unwrap();
    let n = s.emu.counters();
    assert_eq!((n.challenge(), n.exchange()), (1, 2));
}

/// The Entra token's lock cannot be taken (here a folder stands where its lock file goes) but the
/// registry's can: the fetch goes on without that lock, as for an unwritable cache.
#[test]
fn an_entra_lock_that_cannot_be_taken_does_not_stop_the_fetch() {
    let s = setup();
    let server = s.broker.login_server(&s.registry).unwrap();
    s.broker.credential(&server).unwrap();
    let cache = s.broker.settings().cache_dir.clone().unwrap();
    let names = |prefix: &str, suffix: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.starts_with(prefix) && n.ends_with(suffix)
            })
            .collect()
    };
    let entra_locks = names("entra-", ".json.lock");
    assert_eq!(
        entra_locks.len(),
        1,
        "the first fetch locked the Entra entry"
    );
    for p in names("reg-", ".json")
        .into_iter()
        .chain(names("entra-", ".json"))
    {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::remove_file(&entra_locks[0]).unwrap();
    std::fs::create_dir(&entra_locks[0]).unwrap();
    let c = s.broker.credential(&server).unwrap();
    assert!(!c.secret.expose().is_empty());
    assert_eq!(
        s.emu.counters().entra(),
        2,
        "a new Entra token, without its lock"
    );
    assert_eq!(s.emu.counters().exchange(), 2);
}
