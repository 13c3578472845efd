//! Fleet budget: one Kubernetes node over 24 hours, simulated with an injected clock against the
//! Entra/ACR emulator (issue 6).
//!
//! 500 pod starts spread over the day pull from 5 registries as 4 identities: the node's own (a
//! service principal with a secret) and 3 per-pod identities (federated service-account tokens,
//! as `acr-credential-provider` builds them). The kubelet's credential cache is modelled the way
//! the kubelet uses the provider's answer: one entry per (registry, service account), kept for the
//! returned `cacheDuration` (the credential's `refresh_at` minus now, never closer than 60 s to
//! its expiry, as `kubelet-provider/src/provider.rs` computes it); a miss runs the plugin, which
//! is a fresh process, so each run gets a fresh `Broker` over the shared cache folder.
//!
//! The budget asserted, per identity per day: no more Entra requests than the Entra token lifetime
//! forces (`ceil(24 h / (lifetime - 5 min reuse margin)) + 1`), and at most 12 exchanges per
//! registry (a 3-hour ACR refresh token refreshed when a third of its life remains lasts 2 hours).
//! Run with `--nocapture` to see the per-identity report.
//!
//! ## Time
//!
//! The broker decides with a [`ManualClock`] that walks through the day from the real now, and
//! before each plugin run the emulator's clock is stopped at the same simulated second
//! (`Emulator::stop_clock_at`): every token it issues is dated, and every token it checks judged,
//! at exactly that second, however long the run takes on a loaded machine. So an ACR refresh
//! token of the real 3-hour lifetime is issued at the simulated now, and its refresh point is
//! exactly where a real one's would be, which the test checks to the second after every fetch.
//!
//! One value is computed by the broker's HTTP client from the machine's clock: an Entra token's
//! expiry (now + `expires_in`). The emulator's Entra lifetime is set to `L_entra + offset`
//! (offset = simulated now - real now), so the client computes simulated now + `L_entra`, to the
//! second or two the machine's clock moves during the run; only the Entra request count depends
//! on that, and its bound allows one request more than the lifetime forces.
//!
//! The 5 registries are `localhost:<port>` for 5 loopback TCP relays to the one emulator, which
//! tells registries apart by the `Host` header.
//!
//! The test re-runs itself with `SSL_CERT_FILE=/dev/null` in its process environment: the HTTP
//! client trusts the emulator's CA (the broker's `SSL_CERT_FILE` setting) and would otherwise
//! also parse the host's whole trust store on every fetch, which in a debug build is most of the
//! test's time and makes it depend on the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acr_broker::{Broker, Credential, Env, Identity, ManualClock, Secret, Settings};
use acr_tests::TENANT;
use acr_tests::emulator::{Counters, Emulator, EmulatorConfig, Role};
use acr_tests::sandbox::current_test;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://oidc.fleet.example/cluster-1";
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

const DAY: i64 = 24 * 3600;
const POD_STARTS: usize = 500;
const REGISTRIES: usize = 5;
/// Entra access token lifetime (Entra issues 60 to 90 minutes; the shortest is the worst case).
const ENTRA_LIFETIME: i64 = 3600;
/// ACR refresh token lifetime (3 hours).
const REFRESH_LIFETIME: i64 = 3 * 3600;
/// The broker reuses an Entra token until this long before it expires (the broker's own value).
const ENTRA_MARGIN: i64 = acr_broker::cache::ENTRA_MARGIN;
/// The issue's target for exchanges per registry per identity per day.
const MAX_EXCHANGES: usize = 12;
/// Set in the inner run (see the module documentation).
const INNER: &str = "ACR_FLEET_INNER";

fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// splitmix64: a fixed, dependency-free pseudo-random sequence, so every run sees the same day.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A loopback TCP relay to `target`; returns its port. Threads live until the test ends.
fn relay(target: SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(target) else {
                    return;
                };
                pipe(client, server);
            });
        }
    });
    port
}

fn pipe(a: TcpStream, b: TcpStream) {
    // Without TCP_NODELAY, Nagle and delayed ACKs add tens of milliseconds per TLS flight.
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (Ok(mut a_read), Ok(mut b_read)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let (mut a_write, mut b_write) = (a, b);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a_read, &mut b_write);
        let _ = b_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut b_read, &mut a_write);
    let _ = a_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// One identity pods on the node pull as.
struct Who {
    name: String,
    client_id: String,
    /// `None` for the node identity; the service account's subject for a per-pod one.
    subject: Option<String>,
}

/// Totals for one identity.
#[derive(Default)]
struct Tally {
    pod_starts: usize,
    plugin_runs: usize,
    exchanges: [usize; REGISTRIES],
}

/// What the kubelet provider answers as `cacheDuration`: the broker's own
/// [`Credential::keep_until`], which kubelet-provider/src/provider.rs's `cache_duration` uses.
fn cache_duration(c: &Credential, now: i64) -> i64 {
    c.keep_until().saturating_sub(now).max(0)
}

#[test]
fn one_node_for_a_day_stays_within_the_token_budget() {
    if std::env::var_os(INNER).is_some() {
        simulate_one_day();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &current_test(),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .env("SSL_CERT_FILE", "/dev/null")
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{text}");
    assert!(out.status.success(), "the simulation failed:\n{text}");
    assert!(text.contains("1 passed"), "the simulation ran:\n{text}");
}

fn simulate_one_day() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let registries: Vec<String> = (0..REGISTRIES)
        .map(|_| format!("localhost:{}", relay(emu.local_addr())))
        .collect();
    for r in &registries {
        emu.add_registry(r);
    }

    let node_client = "0d0d0d0d-0000-4000-8000-00000000000d";
    emu.add_secret_principal(TENANT, node_client, "node-secret");
    let mut who = vec![Who {
        name: "node (secret)".into(),
        client_id: node_client.into(),
        subject: None,
    }];
    for (i, account) in ["team-a:puller", "team-b:api", "batch:worker"]
        .iter()
        .enumerate()
    {
        let client_id = format!("{i}{i}{i}{i}{i}{i}{i}{i}-1111-4000-8000-00000000000{i}");
        let subject = format!("system:serviceaccount:{account}");
        emu.add_federated_principal(TENANT, &client_id, ISSUER, &subject);
        who.push(Who {
            name: format!("pod {}", account.replace(':', "/")),
            client_id,
            subject: Some(subject),
        });
    }
    for w in &who {
        for r in &registries {
            emu.grant(&w.client_id, r, Role::AcrPull);
        }
    }

    let home = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("HOME", home.path().to_str().unwrap().to_string()),
        ("PATH", "/nonexistent".to_string()),
        (
            "SSL_CERT_FILE",
            emu.ca_pem_path().to_str().unwrap().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.base_url()),
        ("ACR_LOGIN_SERVERS", registries.join(",")),
        (
            "ACR_CACHE_DIR",
            home.path().join("cache").to_str().unwrap().to_string(),
        ),
    ]);

    // The day's pod starts: when, which registry, which identity.
    let mut rng = Rng(0x6ac2_f1ee_7b0d_9e11);
    let mut starts: Vec<(i64, usize, usize)> = (0..POD_STARTS)
        .map(|_| {
            (
                rng.below(DAY as u64) as i64,
                rng.below(REGISTRIES as u64) as usize,
                rng.below(who.len() as u64) as usize,
            )
        })
        .collect();
    starts.sort_unstable();

    let start = real_now();
    let clock = ManualClock::new(start);
    // The kubelet's cache: (identity, registry) -> until when (simulated).
    let mut kubelet: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut tally: Vec<Tally> = who.iter().map(|_| Tally::default()).collect();

    for &(at, reg, id) in &starts {
        let now = start + at;
        clock.set(now);
        tally[id].pod_starts += 1;
        if kubelet.get(&(id, reg)).is_some_and(|&until| now < until) {
            continue;
        }
        tally[id].plugin_runs += 1;

        // The emulator's clock at the simulated now, and an Entra lifetime that the client, on
        // the machine's clock, turns into the simulated expiry (see above).
        emu.stop_clock_at(now);
        let entra = ENTRA_LIFETIME + now - real_now();
        emu.set_lifetimes(
            Duration::from_secs(u64::try_from(entra).unwrap()),
            Duration::from_secs(u64::try_from(REFRESH_LIFETIME).unwrap()),
        );

        let identity = match &who[id].subject {
            None => Identity::ClientSecret {
                tenant: TENANT.into(),
                client_id: who[id].client_id.clone(),
                secret: Secret::new("node-secret"),
            },
            // The kubelet sends a fresh service-account token on each plugin run.
            Some(subject) => Identity::Federated {
                tenant: TENANT.into(),
                client_id: who[id].client_id.clone(),
                assertion: Secret::new(emu.mint_service_account_token(
                    ISSUER,
                    subject,
                    EXCHANGE_AUDIENCE,
                    Duration::from_secs(3600),
                )),
            },
        };
        let before = emu.counters();
        // A plugin run is a new process: a new broker over the same cache folder.
        let broker = Broker::with_clock(
            Settings::from_env(env.clone(), None).unwrap(),
            Arc::new(clock.clone()),
        );
        let server = broker.login_server(&registries[reg]).unwrap();
        let credential = broker
            .credential_for(&server, &identity)
            .unwrap_or_else(|e| panic!("{} at +{at}s: {e}", who[id].name));
        let after = emu.counters();
        let exchanged = after.exchange() - before.exchange();
        assert_eq!(
            exchanged,
            after.exchange_for(&registries[reg]) - before.exchange_for(&registries[reg]),
            "a plugin run exchanges only for the registry it was asked about"
        );
        tally[id].exchanges[reg] += exchanged;
        if exchanged > 0 {
            // The new token's refresh point is where a real 3-hour token issued now puts it.
            assert_eq!(
                credential.refresh_at,
                now + 2 * REFRESH_LIFETIME / 3,
                "refresh point at +{at}s"
            );
        }
        let keep = cache_duration(&credential, now);
        assert!(keep > 0, "a usable credential is cached by the kubelet");
        kubelet.insert((id, reg), now + keep);
    }

    let counters: Counters = emu.counters();
    let entra_bound = (DAY as usize).div_ceil((ENTRA_LIFETIME - ENTRA_MARGIN) as usize) + 1;
    let mut report = String::new();
    report.push_str(&format!(
        "fleet budget, one node, 24 h, {POD_STARTS} pod starts, {REGISTRIES} registries; \
         Entra token {ENTRA_LIFETIME} s, ACR refresh token {REFRESH_LIFETIME} s\n"
    ));
    report.push_str(&format!(
        "{:<22} {:>10} {:>11} {:>14} {:>22} {:>15}\n",
        "identity",
        "pod starts",
        "plugin runs",
        "Entra requests",
        "exchanges per registry",
        "exchanges total"
    ));
    for (w, t) in who.iter().zip(&tally) {
        let entra = counters.entra_for(&w.client_id);
        let per_registry = t
            .exchanges
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        report.push_str(&format!(
            "{:<22} {:>10} {:>11} {:>14} {:>22} {:>15}\n",
            w.name,
            t.pod_starts,
            t.plugin_runs,
            entra,
            per_registry,
            t.exchanges.iter().sum::<usize>()
        ));
    }
    report.push_str(&format!(
        "budget: Entra requests <= {entra_bound} per identity, exchanges <= {MAX_EXCHANGES} per registry per identity\n"
    ));
    let mut out = std::io::stdout().lock();
    out.write_all(report.as_bytes()).unwrap();
    drop(out);

    assert_eq!(
        counters.exchange(),
        tally.iter().flat_map(|t| t.exchanges.iter()).sum::<usize>(),
        "every exchange was made by a plugin run\n{report}"
    );
    for (w, t) in who.iter().zip(&tally) {
        let entra = counters.entra_for(&w.client_id);
        assert!(
            entra <= entra_bound,
            "{}: {entra} Entra requests, more than the {entra_bound} the token lifetime forces\n{report}",
            w.name
        );
        assert!(entra >= 1, "{} never asked Entra\n{report}", w.name);
        for (reg, &n) in t.exchanges.iter().enumerate() {
            assert!(
                n <= MAX_EXCHANGES,
                "{} made {n} exchanges for {} in a day\n{report}",
                w.name,
                registries[reg]
            );
        }
        // The day really exercised refreshes (docs/BENCHMARKS.md): every registry's token was
        // renewed at least once for this identity, not fetched once and kept.
        for (reg, n) in t.exchanges.iter().enumerate() {
            assert!(
                *n >= 2,
                "{}: {n} exchange(s) for {} in a simulated day: no refresh\n{report}",
                w.name,
                registries[reg]
            );
        }
    }
    // Nothing but Entra token requests and exchanges reached the emulator.
    assert_eq!(
        counters.total(),
        counters.entra() + counters.exchange(),
        "{report}"
    );
}
