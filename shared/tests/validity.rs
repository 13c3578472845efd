//! The broker as a library, with an injected clock, against the Entra/ACR emulator: the minimum
//! remaining validity (`ACR_MIN_VALIDITY`) and the audience fallback.
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
    // 85 minutes left, and every exchange fails.
    s.clock.set(first.expires_at - 85 * 60);
    s.fail_exchanges();
    let e = strict.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains("only 85 min left, less than ACR_MIN_VALIDITY (90 min)") && e.contains("503"),
        "{e}"
    );
    assert!(
        !e.contains('\n') && !e.contains(first.secret.expose()),
        "{e}"
    );
    // The default keeps the old best effort: the still-usable token, with a warning.
    assert_eq!(default.credential(&server).unwrap().secret, first.secret);
}

/// A host that is not a known cloud's ACR login server (here one of `ACR_LOGIN_SERVERS`) gets an
/// ARM-audience token only when asked for one, even after an entry remembers ARM's for it.
/// (The fallback with no setting, for `*.azurecr.io`, is `e2e_validity_audience`'s.)
#[test]
fn a_configured_host_gets_arm_tokens_only_when_asked_even_once_remembered() {
    let s = Setup::new(true);
    s.emu
        .set_registry_audiences(&s.registry, RegistryAudiences::ArmOnly);
    let asked = s.broker(&[("ACR_AUDIENCE", "arm")]);
    let server = asked.login_server(&s.registry).unwrap();
    let first = asked.credential(&server).unwrap();
    assert_eq!(
        first.audience,
        Some(Audience::Arm),
        "remembered in the entry"
    );
    // Expired: the next fetch, without the setting, asks for ACR's audience only.
    s.clock.set(first.expires_at + 10);
    let unasked = s.broker(&[]);
    let e = unasked.credential(&server).unwrap_err().to_string();
    assert!(
        e.contains("acr aad token disallowed") && e.contains("set ACR_AUDIENCE=arm"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let n = s.emu.counters();
    assert_eq!(
        (n.entra(), n.exchange()),
        (2, 2),
        "ARM's when asked, then ACR's only"
    );
}

#[test]
fn a_forced_audience_is_not_fallen_back_from() {
    let s = Setup::new(true);
    s.emu
        .set_registry_audiences(&s.registry, RegistryAudiences::ArmOnly);
    let broker = s.broker(&[("ACR_AUDIENCE", "acr")]);
    let server = broker.login_server(&s.registry).unwrap();
    let e = broker.credential(&server).unwrap_err().to_string();
    assert!(e.contains("acr aad token disallowed"), "{e}");
    let n = s.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (1, 1));
    // An ARM-audience-disabled registry with ACR_AUDIENCE=arm: the same.
    s.emu
        .set_registry_audiences(&s.registry, RegistryAudiences::AcrOnly);
    let arm = s.broker(&[("ACR_AUDIENCE", "arm")]);
    let e = arm.credential(&server).unwrap_err().to_string();
    assert!(e.contains("arm aad token disallowed"), "{e}");
    assert_eq!(s.emu.counters().exchange(), 2);
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
