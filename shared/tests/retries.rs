//! Transient faults of the ACR token service are retried with backoff (and `Retry-After`);
//! refusals and malformed answers are not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acr_broker::{Broker, Env, Settings};
use acr_tests::TENANT;
use acr_tests::emulator::{Emulator, EmulatorConfig, EndpointKind, Fault, FaultAction, Role};
use std::time::{Duration, Instant};

/// The broker's settings for the emulator: a secret principal, `registry` served, a cache in
/// `dir/<cache>`.
fn standard_env(
    emu: &Emulator,
    dir: &tempfile::TempDir,
    registry: &str,
    client_id: &str,
    cache: &str,
) -> Env {
    Env::from_pairs([
        ("PATH", "/nonexistent".to_string()),
        (
            "SSL_CERT_FILE",
            emu.ca_pem_path().to_str().unwrap().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.base_url()),
        ("ACR_LOGIN_SERVERS", registry.to_string()),
        (
            "ACR_CACHE_DIR",
            dir.path().join(cache).to_str().unwrap().to_string(),
        ),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", client_id.to_string()),
        ("AZURE_CLIENT_SECRET", "secret-r".to_string()),
    ])
}

fn setup(grant: bool) -> (Emulator, tempfile::TempDir, Broker, String) {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let registry = format!("localhost:{}", emu.port());
    emu.add_registry(&registry);
    let p = emu.add_secret_principal(TENANT, "12121212-1212-1212-1212-121212121212", "secret-r");
    if grant {
        emu.grant(&p.client_id, &registry, Role::AcrPull);
    }
    let dir = tempfile::tempdir().unwrap();
    let env = standard_env(&emu, &dir, &registry, &p.client_id, "cache");
    let broker = Broker::new(Settings::from_env(env, None).unwrap());
    (emu, dir, broker, registry)
}

fn exchange_fault(times: usize, action: FaultAction) -> Fault {
    Fault::times(EndpointKind::Exchange, times, action)
}

#[test]
fn transient_exchange_failures_are_retried() {
    for action in [
        FaultAction::Status {
            code: 503,
            retry_after: None,
            body: None,
        },
        FaultAction::Status {
            code: 500,
            retry_after: None,
            body: None,
        },
        FaultAction::Status {
            code: 429,
            retry_after: None,
            body: None,
        },
        FaultAction::DropConnection,
        FaultAction::TruncatedBody,
    ] {
        let (emu, _dir, broker, registry) = setup(true);
        emu.set_fault(exchange_fault(2, action.clone()));
        let server = broker.login_server(&registry).unwrap();
        broker
            .credential(&server)
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        assert_eq!(
            emu.counters().exchange(),
            3,
            "{action:?}: two failures, then success"
        );
    }
}

#[test]
fn retry_after_is_honoured() {
    let (emu, _dir, broker, registry) = setup(true);
    emu.set_fault(exchange_fault(
        1,
        FaultAction::Status {
            code: 429,
            retry_after: Some(2),
            body: None,
        },
    ));
    let server = broker.login_server(&registry).unwrap();
    let start = Instant::now();
    broker.credential(&server).unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "waited as told: {:?}",
        start.elapsed()
    );
    assert_eq!(emu.counters().exchange(), 2);
}

#[test]
fn a_retry_after_beyond_the_cap_ends_the_fetch_instead_of_waiting() {
    // Retry-After over 20 s: waiting would overrun the kubelet's exec timeout, so the broker
    // reports the answer at once rather than sleeping for it.
    let (emu, _dir, broker, registry) = setup(true);
    emu.set_fault(exchange_fault(
        1,
        FaultAction::Status {
            code: 429,
            retry_after: Some(60),
            body: None,
        },
    ));
    let server = broker.login_server(&registry).unwrap();
    let started = Instant::now();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("429"), "{e}");
    assert_eq!(
        emu.counters().exchange(),
        1,
        "no retry after a 60 s Retry-After"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn persistent_failure_gives_up_after_bounded_retries() {
    let (emu, _dir, broker, registry) = setup(true);
    emu.set_fault(exchange_fault(
        100,
        FaultAction::Status {
            code: 503,
            retry_after: None,
            body: None,
        },
    ));
    let server = broker.login_server(&registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("HTTP 503"), "{e}");
    assert_eq!(emu.counters().exchange(), 5, "one try and four retries");
}

#[test]
fn refusals_and_malformed_answers_are_not_retried() {
    let (emu, _dir, broker, registry) = setup(false);
    let server = broker.login_server(&registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("AcrPull"), "{e}");
    assert_eq!(emu.counters().exchange(), 1);

    let (emu, _dir, broker, registry) = setup(true);
    emu.set_fault(exchange_fault(1, FaultAction::MalformedBody));
    let server = broker.login_server(&registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("malformed exchange response"), "{e}");
    assert_eq!(emu.counters().exchange(), 1);

    let (emu, _dir, broker, registry) = setup(true);
    emu.set_fault(exchange_fault(
        1,
        FaultAction::Status {
            code: 400,
            retry_after: None,
            body: None,
        },
    ));
    let server = broker.login_server(&registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("HTTP 400"), "{e}");
    assert_eq!(emu.counters().exchange(), 1);
}

/// A listener that records whether anyone connected.
fn trap() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!(
        "https://127.0.0.1:{}/oauth2/exchange",
        l.local_addr().unwrap().port()
    );
    (l, url)
}

#[test]
fn redirects_on_token_endpoints_are_not_followed() {
    for kind in [EndpointKind::Exchange, EndpointKind::Entra] {
        let (emu, _dir, broker, registry) = setup(true);
        let (listener, url) = trap();
        emu.set_fault(Fault::times(kind, 100, FaultAction::Redirect(url)));
        let server = broker.login_server(&registry).unwrap();
        let e = broker.credential(&server).unwrap_err().to_string();
        // The exchange names the status; azure_identity reports the 307's empty body instead.
        let named = match kind {
            EndpointKind::Exchange => e.contains("HTTP 307"),
            _ => e.contains("could not get an Entra token"),
        };
        assert!(named, "{kind:?}: {e}");
        assert!(
            listener.accept().is_err(),
            "{kind:?}: the redirect target was never contacted"
        );
    }
}

#[test]
fn oversized_bodies_are_refused_without_retrying() {
    for kind in [EndpointKind::Exchange, EndpointKind::Entra] {
        let (emu, _dir, broker, registry) = setup(true);
        emu.set_fault(Fault::times(
            kind,
            100,
            FaultAction::OversizedBody(4 * 1024 * 1024),
        ));
        let server = broker.login_server(&registry).unwrap();
        let e = broker.credential(&server).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{kind:?}: {e}");
        assert_eq!(emu.counters().kind(kind), 1, "{kind:?}: not retried");
    }
}

#[test]
fn an_untrusted_certificate_is_a_clear_error() {
    let (emu, dir, _, registry) = setup(true);
    let mut env = standard_env(
        &emu,
        &dir,
        &registry,
        "12121212-1212-1212-1212-121212121212",
        "cache2",
    );
    // The same settings without the emulator's CA.
    env.unset("SSL_CERT_FILE");
    let broker = Broker::new(Settings::from_env(env, None).unwrap());
    let server = broker.login_server(&registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.to_ascii_lowercase().contains("certificate"), "{e}");
    assert!(!e.contains('\n'));
    assert_eq!(emu.counters().total(), 0, "no request got through TLS");
}

#[test]
fn connection_refused_is_retried_then_reported() {
    let (emu, dir, _, registry) = setup(true);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("127.0.0.1:{closed}");
    let mut env = standard_env(
        &emu,
        &dir,
        &registry,
        "12121212-1212-1212-1212-121212121212",
        "cache3",
    );
    env.set("ACR_LOGIN_SERVERS", format!("{registry},{dead}"));
    let broker = Broker::new(Settings::from_env(env, None).unwrap());
    let server = broker.login_server(&dead).unwrap();
    let started = Instant::now();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains(&dead) && e.to_ascii_lowercase().contains("connect"),
        "{e}"
    );
    // A refused connection answers at once, so the time spent is the backoff between retries:
    // at least the first two pauses (200 ms, then 400 ms, before jitter). Without retries the
    // error comes back in a few milliseconds.
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "retried with backoff: {:?}",
        started.elapsed()
    );
    assert_eq!(
        emu.counters().entra(),
        1,
        "Entra answered; only the registry was down"
    );
}

#[test]
fn a_slow_service_ends_at_the_overall_deadline() {
    let (emu, dir, _, registry) = setup(true);
    let mut env = standard_env(
        &emu,
        &dir,
        &registry,
        "12121212-1212-1212-1212-121212121212",
        "cache4",
    );
    env.set("ACR_TIMEOUT", "2");
    emu.set_fault(exchange_fault(
        100,
        FaultAction::Latency(Duration::from_secs(30)),
    ));
    let broker = Broker::new(Settings::from_env(env, None).unwrap());
    let server = broker.login_server(&registry).unwrap();
    let start = Instant::now();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("timed out after 2s"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "bounded by the deadline, not the server"
    );
}

/// A TCP relay to `to` that counts the connections made through it.
fn counting_relay(
    to: std::net::SocketAddr,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = std::net::TcpStream::connect(to) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c, mut s) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut c2, &mut s2));
            std::thread::spawn(move || std::io::copy(&mut s, &mut c));
        }
    });
    (addr.to_string(), count)
}

#[test]
fn a_managed_identity_endpoint_with_an_untrusted_certificate_is_asked_once() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let registry = format!("localhost:{}", emu.port());
    emu.add_registry(&registry);
    emu.add_managed_identity(None);
    let (endpoint, header) = emu.app_service_endpoint();
    let (relay, connections) = counting_relay(emu.local_addr());
    let endpoint = endpoint.replace(&format!("localhost:{}", emu.port()), &relay);
    assert!(
        endpoint.starts_with("https://") && endpoint.contains(&relay),
        "{endpoint}"
    );
    let dir = tempfile::tempdir().unwrap();
    // No SSL_CERT_FILE: the emulator's certificate does not verify.
    let env = Env::from_pairs([
        ("PATH", "/nonexistent".to_string()),
        ("ACR_IDENTITY", "app-service".to_string()),
        ("IDENTITY_ENDPOINT", endpoint),
        ("IDENTITY_HEADER", header),
        ("AZURE_AUTHORITY_HOST", emu.base_url()),
        ("ACR_LOGIN_SERVERS", registry.clone()),
        (
            "ACR_CACHE_DIR",
            dir.path().join("cache").to_str().unwrap().to_string(),
        ),
    ]);
    let broker = Broker::new(Settings::from_env(env, None).unwrap());
    let server = broker.login_server(&registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.to_ascii_lowercase().contains("certificate"), "{e}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a certificate that does not verify is not retried"
    );
    assert_eq!(emu.counters().total(), 0, "no request got through TLS");
}
