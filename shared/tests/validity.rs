//! The broker as a library, with an injected clock, against the Entra/ACR emulator: the minimum
//! remaining validity (`ACR_MIN_VALIDITY`) and the audience at a configured host (no fallback
//! unasked), on the documented ways an audience is refused: Entra's AADSTS500011 (the tenant has
//! no service principal for ACR's audience) and ACR's `arm aad token disallowed` (ARM-audience
//! authentication disabled). The fallback itself needs a known cloud's login server name:
//! `tests/tests/e2e_validity_audience.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acr_broker::audience::Audience;
use acr_broker::{Broker, Env, ManualClock, Settings};
use acr_tests::TENANT;
use acr_tests::emulator::{
    Emulator, EmulatorConfig, EndpointKind, Fault, FaultAction, RegistryAudiences, Role,
};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "secret-8";
/// ACR's Entra resource, whose service principal a tenant may lack (AADSTS500011).
const ACR_RESOURCE: &str = "https://containerregistry.azure.net";

/// The broker's warnings, as its binaries would print them, kept per thread (each test runs on
/// a thread of its own, and the broker logs on the calling thread).
mod warnings {
    use log::{Level, LevelFilter, Log, Metadata, Record};
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static LOGGED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    struct Capture;

    impl Log for Capture {
        fn enabled(&self, metadata: &Metadata) -> bool {
            metadata.level() <= Level::Warn
        }

        fn log(&self, record: &Record) {
            if self.enabled(record.metadata()) {
                LOGGED.with(|l| l.borrow_mut().push(record.args().to_string()));
            }
        }

        fn flush(&self) {}
    }

    /// The warnings logged on this thread since the last call (the first call starts the
    /// capture).
    pub fn take() -> Vec<String> {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            log::set_logger(&Capture).unwrap();
            log::set_max_level(LevelFilter::Warn);
        });
        LOGGED.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

struct Setup {
    emu: Emulator,
    _dir: tempfile::TempDir,
    clock: ManualClock,
    registry: String,
    client_id: String,
}

impl Setup {
    /// An emulator with one registry and one service principal; `grant`: whether it has AcrPull.
    fn new(grant: bool) -> Setup {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let registry = format!("localhost:{}", emu.port());
        emu.add_registry(&registry);
        let p = emu.add_secret_principal(TENANT, "88888888-8888-8888-8888-888888888888", SECRET);
        if grant {
            emu.grant(&p.client_id, &registry, Role::AcrPull);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Setup {
            emu,
            _dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::new(now),
            registry,
            client_id: p.client_id,
        }
    }

    /// A broker on the usual settings plus `extra`.
    fn broker(&self, extra: &[(&str, &str)]) -> Broker {
        let dir = self._dir.path();
        let mut pairs = vec![
            ("HOME", dir.to_str().unwrap().to_string()),
            ("PATH", "/nonexistent".to_string()),
            (
                "SSL_CERT_FILE",
                self.emu.ca_pem_path().to_str().unwrap().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", self.emu.base_url()),
            ("ACR_LOGIN_SERVERS", self.registry.clone()),
            (
                "ACR_CACHE_DIR",
                dir.join("cache").to_str().unwrap().to_string(),
            ),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", self.client_id.clone()),
            ("AZURE_CLIENT_SECRET", SECRET.to_string()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        Broker::with_clock(
            Settings::from_env(Env::from_pairs(pairs), None).unwrap(),
            Arc::new(self.clock.clone()),
        )
    }

    fn fail_exchanges(&self) {
        self.emu.set_fault(Fault::times(
            EndpointKind::Exchange,
            100,
            FaultAction::Status {
                code: 503,
                retry_after: None,
                body: None,
            },
        ));
    }
}

#[test]
fn a_token_with_less_than_the_minimum_left_is_refreshed_before_it_is_handed_out() {
    let s = Setup::new(true);
    let strict = s.broker(&[("ACR_MIN_VALIDITY", "150m")]);
    let default = s.broker(&[]);
    let server = strict.login_server(&s.registry).unwrap();
    let first = strict.credential(&server).unwrap();
    // ACR's tokens live 3 h: refreshed with 150 min left instead of 60.
    assert_eq!(first.refresh_at, first.expires_at - 150 * 60);
    assert_eq!(first.keep_until(), first.refresh_at);
    s.clock.advance(31 * 60);
    // With the default, the token (149 min left) is still handed out as it is...
    assert_eq!(default.credential(&server).unwrap().secret, first.secret);
    assert_eq!(s.emu.counters().exchange(), 1);
    // ...with ACR_MIN_VALIDITY=150m it is refreshed first.
    let second = strict.credential(&server).unwrap();
    assert_ne!(second.secret, first.secret);
    assert_eq!(s.emu.counters().exchange(), 2);
}

#[test]
fn a_minimum_the_lifetime_cannot_meet_is_clamped_not_refreshed_on_every_get() {
    let s = Setup::new(true);
    let broker = s.broker(&[("ACR_MIN_VALIDITY", "10h")]);
    let server = broker.login_server(&s.registry).unwrap();
    let first = broker.credential(&server).unwrap();
    // Held to five sixths of the 3 h lifetime: 150 min.
    assert_eq!(first.refresh_at, first.expires_at - 150 * 60);
    s.clock.advance(29 * 60);
    assert_eq!(broker.credential(&server).unwrap().secret, first.secret);
    assert_eq!(s.emu.counters().exchange(), 1);
    s.clock.advance(2 * 60);
    assert_ne!(broker.credential(&server).unwrap().secret, first.secret);
}

#[test]
fn a_failed_refresh_below_an_explicit_minimum_is_an_error_but_best_effort_by_default() {
    let s = Setup::new(true);
    let strict = s.broker(&[("ACR_MIN_VALIDITY", "90m")]);
    let default = s.broker(&[]);
    let server = strict.login_server(&s.registry).unwrap();
    let first = strict.credential(&server).unwrap();
    // 55 minutes left: past the refresh point of both (the default refreshes 3-hour tokens with
    // 60 minutes left), and every exchange fails.
    s.clock.set(first.expires_at - 55 * 60);
    s.fail_exchanges();
    let e = strict.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains("only 55 min left, less than ACR_MIN_VALIDITY (90 min)") && e.contains("503"),
        "{e}"
    );
    assert!(
        !e.contains('\n') && !e.contains(first.secret.expose()),
        "{e}"
    );
    // The default keeps the old best effort: it tries to refresh, fails, and hands out the
    // still-usable token with a warning that says so.
    warnings::take();
    let exchanges = s.emu.counters().exchange();
    assert_eq!(default.credential(&server).unwrap().secret, first.secret);
    assert!(
        s.emu.counters().exchange() > exchanges,
        "the default tried to refresh"
    );
    let warned = warnings::take();
    assert!(
        warned.iter().any(|w| w
            .starts_with(&format!("refreshing the token for {} failed (", s.registry))
            && w.contains("503")
            && w.ends_with("; using the cached one, valid for 55 more minutes")),
        "{warned:?}"
    );
    assert!(
        warned.iter().all(|w| !w.contains(first.secret.expose())),
        "{warned:?}"
    );
}

/// A host that is not a known cloud's ACR login server (here one of `ACR_LOGIN_SERVERS`) gets an
/// ARM-audience token only when asked for one, even after an entry remembers ARM's for it.
/// (The fallback with no setting, for `*.azurecr.io`, is `e2e_validity_audience`'s.)
#[test]
fn a_configured_host_gets_arm_tokens_only_when_asked_even_once_remembered() {
    let s = Setup::new(true);
    // A tenant without ACR's service principal: Entra issues no ACR-audience token
    // (AADSTS500011, the documented trigger), ARM's works.
    s.emu.remove_tenant_resource(TENANT, ACR_RESOURCE);
    let asked = s.broker(&[("ACR_AUDIENCE", "arm")]);
    let server = asked.login_server(&s.registry).unwrap();
    let first = asked.credential(&server).unwrap();
    assert_eq!(
        first.audience,
        Some(Audience::Arm),
        "remembered in the entry"
    );
    // Expired: the next fetch, without the setting, asks for ACR's audience only, and names
    // the setting when Entra refuses it.
    s.clock.set(first.expires_at + 10);
    let unasked = s.broker(&[]);
    let e = unasked.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "{}: no ACR-audience token (Entra issues none in this tenant: ",
            s.registry
        )) && e.contains("AADSTS500011")
            && e.contains("set ACR_AUDIENCE=arm"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let n = s.emu.counters();
    assert_eq!(
        (n.entra(), n.exchange()),
        (2, 1),
        "ARM's when asked, exchanged; then ACR's only, refused by Entra"
    );
}

#[test]
fn a_forced_audience_is_not_fallen_back_from() {
    let s = Setup::new(true);
    // A tenant without ACR's service principal, with ACR_AUDIENCE=acr: Entra's refusal, no
    // second audience.
    s.emu.remove_tenant_resource(TENANT, ACR_RESOURCE);
    let broker = s.broker(&[("ACR_AUDIENCE", "acr")]);
    let server = broker.login_server(&s.registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("AADSTS500011") && !e.contains("ARM"), "{e}");
    let n = s.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (1, 0));
    // An ARM-audience-disabled registry with ACR_AUDIENCE=arm: the registry's refusal, no
    // second audience.
    s.emu
        .set_registry_audiences(&s.registry, RegistryAudiences::AcrOnly);
    let arm = s.broker(&[("ACR_AUDIENCE", "arm")]);
    let e = arm.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains("arm aad token disallowed") && !e.contains("ACR-audience"),
        "{e}"
    );
    assert_eq!(s.emu.counters().exchange(), 1);
}

#[test]
fn a_missing_role_is_one_error_with_no_second_entra_request() {
    let s = Setup::new(false);
    let broker = s.broker(&[]);
    let server = broker.login_server(&s.registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains("grant it AcrPull") && !e.contains("audience"),
        "{e}"
    );
    let n = s.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (1, 1));
}
