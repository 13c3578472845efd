//! Credentials from `docker login` in the OS keychain: the real binary against a real Secret
//! Service (GNOME Keyring on a private D-Bus session), checked with libsecret's own
//! `secret-tool`; and the 0600 file wherever no keychain answers.

use crate::common::*;
use acr_tests::secret_service::SecretService;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

const HOST: &str = "myreg.azurecr.io";
const OTHER: &str = "ghcr.example.test";

fn item(host: &str) -> [(&'static str, &str); 2] {
    [("service", "docker-credential-acr"), ("username", host)]
}

fn credentials(host: &str, secret: &str) -> String {
    serde_json::json!({"ServerURL": format!("https://{host}"), "Username": "admin", "Secret": secret})
        .to_string()
}

fn with_keychain(w: &mut Sandbox, ss: &SecretService) {
    for (k, v) in ss.env() {
        w.set(&k, &v);
    }
}

fn credentials_file(w: &Sandbox) -> std::path::PathBuf {
    w.path("config/docker-credential-acr/credentials.json")
}

#[test]
fn store_get_list_erase_go_through_the_secret_service() {
    let ss = SecretService::start();
    let mut w = sandbox();
    with_keychain(&mut w, &ss);
    for (host, secret) in [(HOST, "keychain-pw-1"), (OTHER, "keychain-pw-2")] {
        let o = w.run(&["store"], &credentials(host, secret));
        assert!(o.status.success(), "store: {o:?}");
        assert_eq!(stdout(&o), "");
        // The keyring holds the secret, as libsecret's own client reads it...
        assert_eq!(ss.lookup(&item(host)).as_deref(), Some(secret));
    }
    // ...and the file only names the servers.
    let file = std::fs::read_to_string(credentials_file(&w)).unwrap();
    assert!(file.contains(HOST) && file.contains(OTHER), "{file}");
    assert!(
        !file.contains("keychain-pw") && !file.contains("Secret"),
        "{file}"
    );

    // `get` by another form of the host answers from the keychain, before any broker work.
    let o = get(&w, &format!("{HOST}:443"));
    let a = answer(&o);
    assert_eq!(a["Username"], "admin");
    assert_eq!(a["Secret"], "keychain-pw-1");
    assert_eq!(answer(&get(&w, OTHER))["Secret"], "keychain-pw-2");

    let list: serde_json::Value = serde_json::from_str(&stdout(&w.run(&["list"], ""))).unwrap();
    assert_eq!(list[format!("https://{HOST}")], "admin");
    assert_eq!(list[format!("https://{OTHER}")], "admin");

    let o = w.run(&["erase"], OTHER);
    assert!(o.status.success(), "erase: {o:?}");
    assert_eq!(
        ss.lookup(&item(OTHER)),
        None,
        "erase leaves the keychain item"
    );
    assert_eq!(stdout(&get(&w, OTHER)).trim(), NOT_FOUND);
    // The other server is untouched.
    assert_eq!(ss.lookup(&item(HOST)).as_deref(), Some("keychain-pw-1"));
    let list: serde_json::Value = serde_json::from_str(&stdout(&w.run(&["list"], ""))).unwrap();
    assert!(list.get(format!("https://{OTHER}")).is_none(), "{list}");
}

#[test]
fn storing_again_with_the_file_backend_moves_the_secret_out_of_the_keychain() {
    let ss = SecretService::start();
    let mut w = sandbox();
    with_keychain(&mut w, &ss);
    assert!(
        w.run(&["store"], &credentials(OTHER, "first-pw"))
            .status
            .success()
    );
    assert_eq!(ss.lookup(&item(OTHER)).as_deref(), Some("first-pw"));

    w.set("ACR_CREDENTIAL_STORE", "file");
    assert!(
        w.run(&["store"], &credentials(OTHER, "second-pw"))
            .status
            .success()
    );
    assert_eq!(
        ss.lookup(&item(OTHER)),
        None,
        "the older secret outlived the new one"
    );
    let file = std::fs::read_to_string(credentials_file(&w)).unwrap();
    assert!(file.contains("second-pw"), "{file}");
    assert_eq!(answer(&get(&w, OTHER))["Secret"], "second-pw");
}

#[test]
fn an_item_removed_with_the_keychains_own_tools_counts_as_not_stored() {
    let ss = SecretService::start();
    let mut w = sandbox();
    with_keychain(&mut w, &ss);
    assert!(
        w.run(&["store"], &credentials(OTHER, "gone-pw"))
            .status
            .success()
    );
    ss.clear(&item(OTHER));
    let o = get(&w, OTHER);
    assert_eq!(stdout(&o).trim(), NOT_FOUND);
    assert!(
        stderr(&o).contains("run docker login again"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn without_a_keychain_auto_keeps_the_secret_in_a_private_file() {
    // The sandbox's session bus address names a socket nobody listens on.
    let w = sandbox();
    let o = w.run(&["store"], &credentials(OTHER, "file-pw"));
    assert!(o.status.success(), "store: {o:?}");
    assert!(
        stderr(&o).contains("no OS keychain answers"),
        "{}",
        stderr(&o)
    );
    let path = credentials_file(&w);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&path).unwrap().contains("file-pw"));
    assert_eq!(answer(&get(&w, OTHER))["Secret"], "file-pw");
    assert!(w.run(&["erase"], OTHER).status.success());
    assert_eq!(stdout(&get(&w, OTHER)).trim(), NOT_FOUND);
}

#[test]
fn keychain_mode_without_a_keychain_fails_and_writes_nothing() {
    let mut w = sandbox();
    w.set("ACR_CREDENTIAL_STORE", "keychain");
    let before = w.snapshot();
    let o = w.run(&["store"], &credentials(OTHER, "unkept-pw"));
    assert_eq!(o.status.code(), Some(1));
    let msg = stdout(&o);
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains("OS keychain") && msg.contains("ACR_CREDENTIAL_STORE=file"),
        "{msg}"
    );
    assert!(!msg.contains("unkept-pw"));
    // Only the (empty) lock file the store takes before asking the keychain may appear.
    let mut after = w.snapshot();
    after.retain(|p, bytes| !(p.extension().is_some_and(|e| e == "lock") && bytes.is_empty()));
    assert_eq!(after, before);
}

#[test]
fn a_bad_backend_name_is_refused() {
    let mut w = sandbox();
    w.set("ACR_CREDENTIAL_STORE", "vault");
    let o = w.run(&["store"], &credentials(OTHER, "pw"));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).trim(),
        "ACR_CREDENTIAL_STORE=\"vault\" is not one of auto, keychain, file"
    );
}

/// A session bus that records whether anyone connected: `get` served from the token cache or
/// from the file must never open a connection, whatever the backend.
#[test]
fn gets_served_from_the_cache_or_the_file_never_reach_the_session_bus() {
    let (mut w, _) = sandbox_with_secret_principal();
    let socket = w.path("spy-bus");
    let spy = UnixListener::bind(&socket).unwrap();
    spy.set_nonblocking(true).unwrap();
    w.set(
        "DBUS_SESSION_BUS_ADDRESS",
        &format!("unix:path={}", socket.display()),
    );
    w.set("ACR_CREDENTIAL_STORE", "file");
    assert!(
        w.run(&["store"], &credentials(OTHER, "file-pw"))
            .status
            .success()
    );
    w.set("ACR_CREDENTIAL_STORE", "keychain");
    let registry = w.registry.clone();
    answer(&get(&w, &registry)); // cold: Entra and the exchange
    for _ in 0..3 {
        answer(&get(&w, &registry)); // cache hits
        assert_eq!(answer(&get(&w, OTHER))["Secret"], "file-pw");
    }
    assert_eq!(
        spy.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a get connected to the session bus"
    );
}

#[test]
fn doctor_says_where_each_secret_is_and_whether_the_keychain_still_holds_it() {
    let ss = SecretService::start();
    let (mut w, _) = sandbox_with_secret_principal();
    with_keychain(&mut w, &ss);
    let registry = w.registry.clone();
    assert!(
        w.run(&["store"], &credentials(&registry, "doctor-pw"))
            .status
            .success()
    );
    w.set("ACR_CREDENTIAL_STORE", "file");
    assert!(
        w.run(&["store"], &credentials(OTHER, "other-pw"))
            .status
            .success()
    );

    let o = w.run(&["doctor", &registry], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "  https://{registry} as admin (secret in the keychain)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("  https://{OTHER} as admin (secret in the file)")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  {registry}: ok: docker login's credentials are used for it"
        )),
        "{out}"
    );
    assert!(out.contains("(new secrets: file)"), "{out}");
    assert!(
        !out.contains("doctor-pw") && !out.contains("other-pw"),
        "{out}"
    );

    // The item removed with the keychain's own tools: a pull would go on anonymously.
    ss.clear(&item(&registry));
    let o = w.run(&["doctor", &registry, "--json"], "");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["stored"]["registry"]
            .as_str()
            .unwrap()
            .contains("no longer holds its secret"),
        "{v}"
    );
    assert_eq!(v["stored"]["entries"].as_array().unwrap().len(), 2);

    w.set("ACR_CREDENTIAL_STORE", "vault");
    let o = w.run(&["doctor"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("stored credentials: ERROR ACR_CREDENTIAL_STORE=\"vault\" is not one of auto, keychain, file"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_locked_keychain_is_a_one_line_error_not_a_hang() {
    let ss = SecretService::start();
    let mut w = sandbox();
    with_keychain(&mut w, &ss);
    assert!(
        w.run(&["store"], &credentials(OTHER, "locked-pw"))
            .status
            .success()
    );
    ss.lock();
    let o = get(&w, OTHER);
    assert_eq!(o.status.code(), Some(1));
    let msg = stdout(&o);
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot read the credentials of {OTHER} in the OS keychain"
        )) && msg.contains("unlock the keychain"),
        "{msg}"
    );
    assert!(!msg.contains("locked-pw"));
    // The entry is kept, for when the keychain is unlocked again.
    assert!(
        std::fs::read_to_string(credentials_file(&w))
            .unwrap()
            .contains(OTHER)
    );
}
