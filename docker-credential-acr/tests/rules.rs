//! The config file's per-registry rules, through the real helper: a custom host that uses another
//! login server's token, and files that are refused with one line naming the line to fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::Role;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// Writes the config file where the sandbox's helper looks for it, with `mode`, in folders only
/// their owner may write (whatever the umask).
fn config(w: &Sandbox, text: &str, mode: u32) -> std::path::PathBuf {
    let path = w.path("config/docker-credential-acr/config.toml");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path.parent().unwrap())
        .unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn files_a_rule_names_are_held_to_the_config_files_trust_rule() {
    let w = sandbox();
    let (p, pair) = w
        .emu
        .add_certificate_principal(TENANT, "55555555-5555-5555-5555-555555555555")
        .unwrap();
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    let rule = |certificate: &str| {
        format!(
            "[[registry]]\nmatch = \"{}\"\ntenant = \"{TENANT}\"\nclient_id = \"{}\"\ncertificate = \"{certificate}\"\n",
            w.registry, p.client_id
        )
    };
    let path = config(&w, &rule("team.pem"), 0o600);
    let pem = path.with_file_name("team.pem");
    std::fs::write(&pem, format!("{}\n{}", pair.cert_pem, pair.key_pem)).unwrap();
    // A certificate others may write: anyone could put their own key there.
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = get(&w, &w.registry);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("team.pem") && out.contains("chmod go-w"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(w.emu.counters().entra_for(&p.client_id), 0);
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    answer(&get(&w, &w.registry));
    assert_eq!(w.emu.counters().entra_for(&p.client_id), 1);
    // A private certificate in a folder others may write: swapped as easily.
    let shared = w.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let moved = shared.join("team.pem");
    std::fs::rename(&pem, &moved).unwrap();
    config(&w, &rule(moved.to_str().unwrap()), 0o600);
    std::fs::remove_dir_all(w.cache_dir()).unwrap();
    let o = get(&w, &w.registry);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains(shared.to_str().unwrap()) && out.contains("chmod go-w"),
        "{out}"
    );
    assert_eq!(w.emu.counters().entra_for(&p.client_id), 1);
}

#[test]
fn a_custom_host_uses_its_login_servers_token_as_the_rules_identity() {
    let mut w = sandbox();
    let p = w.emu.add_secret_principal(
        TENANT,
        "33333333-3333-3333-3333-333333333333",
        "rule-secret-1",
    );
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    w.set("TEAM_SECRET", "rule-secret-1");
    config(
        &w,
        &format!(
            "[[registry]]\nmatch = \"registry.contoso.example\"\nlogin_server = \"{}\"\ntenant = \"{TENANT}\"\nclient_id = \"{}\"\nsecret_env = \"TEAM_SECRET\"\n",
            w.registry, p.client_id
        ),
        0o600,
    );
    // No identity in the environment: the rule is the only one.
    let a = answer(&get(&w, "registry.contoso.example"));
    assert_eq!(a["ServerURL"], "registry.contoso.example");
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["aud"],
        w.registry.as_str()
    );
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&p.client_id), 1, "{c:?}");
    assert_eq!(c.exchange_for(&w.registry), 1, "{c:?}");
    // A host no rule names is still served by the environment (none here: an error, not the
    // rule's identity).
    let o = get(&w, &w.registry2);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("no Azure identity found"),
        "{}",
        stdout(&o)
    );
    assert_eq!(w.emu.counters().entra_for(&p.client_id), 1);
}

#[test]
fn a_bad_config_file_leaves_hosts_that_are_not_login_servers_not_found() {
    let (w, _) = sandbox_with_secret_principal();
    config(
        &w,
        "[[registry]]\nmatch = \"team.azurecr.io\"\nidentity = \"magic\"\n",
        0o600,
    );
    // Docker Hub, as a catch-all credsStore is asked for it: "not found", the cause on stderr.
    for host in ["registry-1.docker.io", "https://index.docker.io/v1/"] {
        let o = get(&w, host);
        assert_eq!(stdout(&o), format!("{NOT_FOUND}\n"), "{host}");
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("config.toml line 1: identity = \"magic\""),
            "{}",
            stderr(&o)
        );
    }
    // A login server (here, one of ACR_LOGIN_SERVERS) still gets the error.
    let o = get(&w, &w.registry);
    assert!(
        stdout(&o).contains("config.toml line 1: identity = \"magic\""),
        "{}",
        stdout(&o)
    );
    assert_eq!(w.emu.counters().total(), 0);
}

#[test]
fn a_secret_typed_into_secret_env_is_refused_and_never_echoed() {
    let (w, _) = sandbox_with_secret_principal();
    let typed = "Zq8~xP3.tYv_Fk9-Lm2";
    config(
        &w,
        &format!(
            "[[registry]]\nmatch = \"{}\"\ntenant = \"{TENANT}\"\nclient_id = \"c\"\nsecret_env = \"{typed}\"\n",
            w.registry
        ),
        0o600,
    );
    for args in [
        &["get"][..],
        &["doctor", "--json", &w.registry],
        &["doctor"],
    ] {
        let o = w.run(args, &w.registry);
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(!o.status.success(), "{args:?}: {out}");
        assert!(
            out.contains("secret_env must name an environment variable"),
            "{args:?}: {out}"
        );
        assert!(
            !out.contains(typed) && !err.contains(typed),
            "{args:?} echoed it: {out}{err}"
        );
    }
    assert_eq!(w.emu.counters().total(), 0);
}

#[test]
fn bad_config_files_fail_every_get_with_one_line_and_nothing_cached() {
    let (mut w, _) = sandbox_with_secret_principal();
    let registry = w.registry.clone();
    for (text, mode, want) in [
        (
            format!(
                "[[registry]]\nmatch = \"{registry}\"\nclient_id = \"c\"\nidentity = \"magic\"\n"
            ),
            0o600,
            "config.toml line 1: identity = \"magic\" is not one of".to_string(),
        ),
        (
            format!("[[registry]]\nmatch = \"{registry}\"\n\nclient-id = \"c\"\n"),
            0o600,
            "config.toml line 4: unknown field `client-id`".to_string(),
        ),
        (
            format!("[[registry]]\nmatch = \"{registry}\"\nsecret = \"sp-secret-value-1\"\n"),
            0o600,
            "a secret never goes in this file".to_string(),
        ),
        (
            format!("[[registry]]\nmatch = \"{registry}\"\n"),
            0o664,
            "chmod go-w".to_string(),
        ),
        (
            format!(
                "[[registry]]\nmatch = \"{registry}\"\nclient_id = \"c\"\nsecret_env = \"UNSET_SECRET\"\n"
            ),
            0o600,
            "takes the client secret from UNSET_SECRET, which is not set".to_string(),
        ),
    ] {
        config(&w, &text, mode);
        let o = get(&w, &registry);
        assert!(!o.status.success(), "{text}");
        let out = stdout(&o);
        assert!(out.contains(&want), "{text}: {out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains("sp-secret-value-1"), "{out}");
        assert_eq!(w.emu.counters().exchange(), 0, "{text}");
        assert!(
            std::fs::read_dir(w.cache_dir()).map_or(true, |d| d.count() == 0),
            "nothing cached"
        );
    }
    // ACR_CONFIG naming a missing file is an error too (it was asked for).
    w.set("ACR_CONFIG", w.path("nowhere.toml").to_str().unwrap());
    let o = get(&w, &registry);
    assert!(stdout(&o).contains("nowhere.toml"), "{}", stdout(&o));
}

/// The cache's files whose names start with `prefix` (`reg-`, `entra-`) and end in `.json`.
fn cached(w: &Sandbox, prefix: &str) -> usize {
    std::fs::read_dir(w.cache_dir()).map_or(0, |d| {
        d.flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(prefix) && name.ends_with(".json")
            })
            .count()
    })
}

#[test]
fn logout_of_a_rule_host_drops_its_tokens_and_its_rules_identitys() {
    let mut w = sandbox();
    let front = w.emu.add_secret_principal(
        TENANT,
        "33333333-3333-3333-3333-333333333333",
        "rule-secret-1",
    );
    let team = w.emu.add_secret_principal(
        TENANT,
        "44444444-4444-4444-4444-444444444444",
        "rule-secret-2",
    );
    w.emu.grant(&front.client_id, &w.registry, Role::AcrPull);
    w.emu.grant(&team.client_id, &w.registry2, Role::AcrPull);
    w.set("FRONT_SECRET", "rule-secret-1");
    w.set("TEAM_SECRET", "rule-secret-2");
    config(
        &w,
        &format!(
            "[[registry]]\nmatch = \"registry.contoso.example\"\nlogin_server = \"{}\"\ntenant = \"{TENANT}\"\nclient_id = \"{}\"\nsecret_env = \"FRONT_SECRET\"\n\n\
             [[registry]]\nmatch = \"{}\"\ntenant = \"{TENANT}\"\nclient_id = \"{}\"\nsecret_env = \"TEAM_SECRET\"\n",
            w.registry, front.client_id, w.registry2, team.client_id
        ),
        0o600,
    );
    answer(&get(&w, "registry.contoso.example"));
    answer(&get(&w, &w.registry2));
    assert_eq!((cached(&w, "reg-"), cached(&w, "entra-")), (2, 2));
    // The custom host's token is its login server's, fetched as its rule's identity: both go.
    let o = w.run(&["erase"], "registry.contoso.example");
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!((cached(&w, "reg-"), cached(&w, "entra-")), (1, 1));
    // A rule registry: its token and its rule's identity's Entra tokens go.
    let o = w.run(&["erase"], &w.registry2);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!((cached(&w, "reg-"), cached(&w, "entra-")), (0, 0));
    // Nothing left to erase: the protocol's not-found.
    let o = w.run(&["erase"], "registry.contoso.example");
    assert_eq!(stdout(&o), format!("{NOT_FOUND}\n"));
}
