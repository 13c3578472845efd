//! The `docker` CLI (the machine's own when there is one, 28.x where this was last run; else
//! Debian's `docker.io`, 20.10 on Debian 12, which install-deps.sh installs and these tests have
//! not been seen with) with no daemon, configured only by `credHelpers` in a throw-away
//! Docker config. Without a daemon, `docker pull` still asks the credential helper (`get`) before
//! it fails to connect, and `docker login` falls back to logging in from the CLI itself (it checks
//! the password against the registry's token realm), then stores through the helper (`store`);
//! `docker logout` erases through it.

use acr_tests::e2e::{self, REGISTRY, World};
use acr_tests::emulator::Role;
use acr_tests::secret_service::SecretService;
use std::os::unix::fs::PermissionsExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NO_DAEMON: &str = "Cannot connect to the Docker daemon";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn docker_pull_runs_the_helpers_get_without_a_daemon() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let sp = w.use_secret_principal(Role::AcrPull);
    assert!(w.cached_refresh_tokens().is_empty());

    let image = format!("{REGISTRY}/hello:1");
    let o = w.docker(&["pull", &image], "")?;
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains(NO_DAEMON), "{}", text(&o.stderr));
    // The pull failed for want of a daemon, but only after the helper did its work.
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&sp.client_id), 1, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    assert_eq!(w.cached_refresh_tokens().len(), 1);

    // A second `docker pull` is a new helper process: it answers from the cache.
    let o = w.docker(&["pull", &image], "")?;
    assert!(text(&o.stderr).contains(NO_DAEMON), "{}", text(&o.stderr));
    assert_eq!(w.emu.counters(), c, "no request at all");
    Ok(())
}

#[test]
fn docker_login_stores_through_the_helper_and_logout_erases() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    // ACR's admin user is named after the registry. No identity is configured at all.
    w.emu
        .set_admin_user(REGISTRY, "myregistry", "admin-password-1");
    let login = |w: &World, password: &str| {
        w.docker(
            &["login", REGISTRY, "-u", "myregistry", "--password-stdin"],
            &format!("{password}\n"),
        )
    };
    let credentials = w.path("home/.config/docker-credential-acr/credentials.json");

    // The CLI checks the password itself (no daemon to ask): a wrong one stores nothing.
    let o = login(&w, "wrong")?;
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("unauthorized"),
        "{}",
        text(&o.stderr)
    );
    assert!(!credentials.exists());

    // It verifies TLS as with a real ACR (the names do not resolve to loopback, which docker
    // would treat as an insecure registry): without the emulator's CA it refuses to talk.
    let ca = w
        .env
        .remove("SSL_CERT_FILE")
        .ok_or("SSL_CERT_FILE is set")?;
    let o = login(&w, "admin-password-1")?;
    w.set("SSL_CERT_FILE", &ca);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("certificate signed by unknown authority"),
        "{}",
        text(&o.stderr)
    );
    assert!(!credentials.exists());

    let before = w.emu.counters();
    let o = login(&w, "admin-password-1")?;
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("Login Succeeded"));
    let after = w.emu.counters();
    assert!(
        after.acr_token_for(REGISTRY) > before.acr_token_for(REGISTRY),
        "docker checked the password at the realm: {after:?}"
    );
    assert_eq!(after.entra(), 0, "{after:?}");

    // Stored by the helper, not by docker.
    let stored = std::fs::read_to_string(&credentials)?;
    assert!(stored.contains(REGISTRY), "{stored}");
    let mode = std::fs::metadata(&credentials)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = std::fs::read_to_string(w.path("home/.docker/config.json"))?;
    assert!(!config.contains("admin-password-1"), "{config}");
    let o = w.helper(&["list"], "unused\n")?;
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(listed, serde_json::json!({REGISTRY: "myregistry"}));
    let o = w.helper(&["get"], REGISTRY)?;
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(answer["Username"], "myregistry");
    assert_eq!(answer["Secret"], "admin-password-1");

    // `docker pull` now gets the stored credentials from the helper: no identity needed.
    let o = w.docker(&["pull", &format!("{REGISTRY}/hello:1")], "")?;
    assert!(text(&o.stderr).contains(NO_DAEMON), "{}", text(&o.stderr));
    assert_eq!(w.emu.counters().entra(), 0);

    let o = w.docker(&["logout", REGISTRY], "")?;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = w.helper(&["list"], "unused\n")?;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout)?,
        serde_json::json!({})
    );
    Ok(())
}

#[test]
fn docker_login_keeps_the_password_in_the_os_keychain() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    w.emu
        .set_admin_user(REGISTRY, "myregistry", "admin-password-2");
    let keyring = SecretService::start();
    for (k, v) in keyring.env() {
        w.set(&k, &v);
    }
    let item = [("service", "docker-credential-acr"), ("username", REGISTRY)];

    let o = w.docker(
        &["login", REGISTRY, "-u", "myregistry", "--password-stdin"],
        "admin-password-2\n",
    )?;
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    // GNOME Keyring holds the password (read back with libsecret's own client); the helper's
    // file and Docker's config only name the registry.
    assert_eq!(keyring.lookup(&item).as_deref(), Some("admin-password-2"));
    let stored =
        std::fs::read_to_string(w.path("home/.config/docker-credential-acr/credentials.json"))?;
    assert!(
        stored.contains(REGISTRY) && !stored.contains("admin-password-2"),
        "{stored}"
    );
    let config = std::fs::read_to_string(w.path("home/.docker/config.json"))?;
    assert!(!config.contains("admin-password-2"), "{config}");

    // `docker pull` asks the helper, which answers from the keychain: no identity exists to ask
    // Entra, and the helper's own `get` gives the password back.
    let before = w.emu.counters();
    let o = w.docker(&["pull", &format!("{REGISTRY}/hello:1")], "")?;
    assert!(text(&o.stderr).contains(NO_DAEMON), "{}", text(&o.stderr));
    assert_eq!(w.emu.counters().entra(), before.entra());
    let o = w.helper(&["get"], REGISTRY)?;
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(answer["Secret"], "admin-password-2");

    let o = w.docker(&["logout", REGISTRY], "")?;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        keyring.lookup(&item),
        None,
        "logout left the password in the keychain"
    );
    Ok(())
}
