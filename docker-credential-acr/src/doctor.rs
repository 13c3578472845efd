//! `doctor`: why a pull would or would not authenticate, for a person (or `--json` for scripts).
//!
//! It shows which settings it read (names only), which identity source the chain picks and why
//! each earlier one was skipped, tenant and client id, the cache folder and its entries with their
//! expiry, and, for a registry, whether its challenge answers and whether a token can be had. It
//! never prints a secret, and exits non-zero when a pull would fail. The checks and the report are
//! [`acr_broker::doctor`]'s, shared with the kubelet provider.

use crate::store::{Backend, Store};
use acr_broker::doctor::{self, Checks, Report, Section};
use acr_broker::{Broker, Env, Settings};
use serde_json::json;

/// Runs the checks; returns the report and whether everything needed for a pull works.
pub fn doctor(env: Env, registry: Option<&str>, as_json: bool) -> (String, bool) {
    let config = doctor::settings_listing(&env);
    let sections = vec![stored_credentials(&env, registry)];
    let report = match Settings::from_env(env, None) {
        Err(e) => Report::config_error(config, sections, &e.to_string()),
        Ok(settings) => doctor::check(
            &Broker::new(settings),
            Checks {
                config,
                sections,
                registry: registry.map(str::to_string),
                not_acr_hint: "add it to ACR_LOGIN_SERVERS if it is an ACR under another name"
                    .into(),
                ..Checks::default()
            },
        ),
    };
    (report.render(as_json), report.ok())
}

/// Where `docker login` secrets go, what is stored, and whether the registry's stored
/// credentials (which win over the identity) can be read.
fn stored_credentials(env: &Env, registry: Option<&str>) -> Section {
    let error = |what: String| Section {
        key: "stored",
        value: json!({"error": what}),
        lines: vec![format!("stored credentials: ERROR {what}")],
        ok: false,
    };
    let store = match Store::from_env(env) {
        Ok(Some(store)) => store,
        Ok(None) => {
            return Section {
                key: "stored",
                value: json!({"file": null}),
                lines: vec![
                    "stored credentials: none (neither HOME nor XDG_CONFIG_HOME is set)".into(),
                ],
                ok: true,
            };
        }
        Err(e) => return error(e.to_string()),
    };
    let backend = match store.backend() {
        Backend::Auto => "auto (the OS keychain when one answers, else the file)",
        Backend::Keychain => "keychain",
        Backend::File => "file",
    };
    let listed = match store.list() {
        Ok(listed) => listed,
        Err(e) => return error(format!("{e}; get fails until it is fixed")),
    };
    let mut lines = vec![format!(
        "stored credentials: {} (new secrets: {backend})",
        store.path().display()
    )];
    let mut entries = Vec::new();
    for l in &listed {
        let place = if l.in_keychain { "keychain" } else { "file" };
        lines.push(format!(
            "  {} as {} (secret in the {place})",
            l.server_url, l.username
        ));
        entries
            .push(json!({"server_url": l.server_url, "username": l.username, "secret_in": place}));
    }
    let mut value =
        json!({"file": store.path().display().to_string(), "backend": backend, "entries": entries});
    let mut ok = true;
    if let Some(r) = registry.filter(|r| {
        let key = Store::key(r);
        listed.iter().any(|l| Store::key(&l.server_url) == key)
    }) {
        // Stored credentials answer `get` for this host: check they can really be read.
        let status = match store.get(r) {
            Ok(Some(_)) => {
                "ok: docker login's credentials are used for it, not the identity".to_string()
            }
            Ok(None) => {
                ok = false;
                "ERROR the OS keychain no longer holds its secret; run docker login again".into()
            }
            Err(e) => {
                ok = false;
                format!("ERROR {e}")
            }
        };
        lines.push(format!("  {r}: {status}"));
        value["registry"] = json!(status);
    }
    Section {
        key: "stored",
        value,
        lines,
        ok,
    }
}
