//! `doctor`: why a pull would or would not authenticate, for a person (or `--json` for scripts).
//!
//! It shows which settings it read (names only), which identity source the chain picks and why
//! each earlier one was skipped, tenant and client id, the cache folder and its entries with their
//! expiry, and, for a registry, whether its challenge answers and whether a token can be had. It
//! never prints a secret, and exits non-zero when a pull would fail. The checks and the report are
//! [`acr_broker::doctor`]'s, shared with the kubelet provider.

use acr_broker::doctor::{self, Checks, Report};
use acr_broker::{Broker, Env, Settings};

/// Runs the checks; returns the report and whether everything needed for a pull works.
pub fn doctor(env: Env, registry: Option<&str>, as_json: bool) -> (String, bool) {
    let config = doctor::settings_listing(&env);
    let report = match Settings::from_env(env, None) {
        Err(e) => Report::config_error(config, Vec::new(), &e.to_string()),
        Ok(settings) => doctor::check(
            &Broker::new(settings),
            Checks {
                config,
                registry: registry.map(str::to_string),
                not_acr_hint: "add it to ACR_LOGIN_SERVERS if it is an ACR under another name"
                    .into(),
                ..Checks::default()
            },
        ),
    };
    (report.render(as_json), report.ok())
}
