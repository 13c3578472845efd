//! The real helper with `ACR_MIN_VALIDITY` and a registry that takes ARM-audience tokens only:
//! `doctor` explains the minimum in force, a clamp, and the audience that worked; a bad value is
//! one line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::RegistryAudiences;

#[test]
fn doctor_explains_the_minimum_validity_and_the_audience_that_worked() {
    let (mut w, _) = sandbox_with_secret_principal();
    let o = w.run(&["doctor"], "");
    let out = stdout(&o);
    assert!(
        out.contains("\nminimum validity: 60 min (default, at most a third of a token's lifetime; set ACR_MIN_VALIDITY to require more)\n"),
        "{out}"
    );
    // A registry that takes ARM-audience tokens only; not a known cloud's ACR login server (it
    // is one of ACR_LOGIN_SERVERS), so ARM's audience is used only when asked for.
    w.emu
        .set_registry_audiences(&w.registry, RegistryAudiences::ArmOnly);
    w.set("ACR_AUDIENCE", "arm");
    w.set("ACR_MIN_VALIDITY", "10h");
    let o = w.run(&["doctor", &w.registry], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    for line in [
        "\n  ACR_MIN_VALIDITY=10h\n",
        "\nminimum validity: 600 min (ACR_MIN_VALIDITY)\n",
        "\n  audience: ARM (the registry took this one; asked for first from now on)\n",
        "\n  minimum validity: clamped to 150 min: this registry's tokens live 180 min\n",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let o = w.run(&["doctor", &w.registry, "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["min_validity"],
        serde_json::json!({"minutes": 600, "origin": "ACR_MIN_VALIDITY"})
    );
    assert_eq!(v["registry"]["token"]["audience"], "ARM");
    assert_eq!(
        v["registry"]["token"]["min_validity_clamped"],
        serde_json::json!({"lifetime_minutes": 180, "held_to_minutes": 150})
    );
    // The second check asks for that audience again: one exchange.
    w.emu.reset_counters();
    w.run(&["doctor", &w.registry], "");
    assert_eq!(w.emu.counters().exchange_for(&w.registry), 1);
}

#[test]
fn a_bad_minimum_is_one_line_and_exits_nonzero() {
    let (mut w, _) = sandbox_with_secret_principal();
    w.set("ACR_MIN_VALIDITY", "an hour");
    let o = get(&w, &w.registry);
    assert!(!o.status.success());
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        text.contains("ACR_MIN_VALIDITY=\"an hour\" is not a duration such as 90m, 2h or 3600s"),
        "{text}"
    );
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert_eq!(w.emu.counters().total(), 0);
}

/// A tenant where Entra issues no ACR-audience token, for a registry that is not a known
/// cloud's ACR login server: one line naming the code and the setting, no ARM-audience token
/// sent unasked. (With no setting for `*.azurecr.io`: `e2e_validity_audience`.)
#[test]
fn a_tenant_without_acrs_audience_names_the_setting_for_a_configured_host() {
    let (mut w, p) = sandbox_with_secret_principal();
    // The tenant has no service principal for ACR's audience (Entra: AADSTS500011).
    w.emu
        .remove_tenant_resource(TENANT, "https://containerregistry.azure.net");
    let o = get(&w, &w.registry);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("AADSTS500011") && out.contains("set ACR_AUDIENCE=arm"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&p.client_id), 1, "{c:?}");
    assert_eq!(c.exchange_for(&w.registry), 0, "{c:?}");

    // Asked for: ARM's audience, one Entra request and one exchange.
    w.set("ACR_AUDIENCE", "arm");
    answer(&get(&w, &w.registry));
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&p.client_id), 2, "{c:?}");
    assert_eq!(c.exchange_for(&w.registry), 1, "{c:?}");

    // Forced to ACR's audience: no fallback, one line naming the code (no hint to set it).
    w.set("ACR_AUDIENCE", "acr");
    std::fs::remove_dir_all(w.cache_dir()).unwrap();
    let o = get(&w, &w.registry);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("AADSTS500011") && out.lines().count() == 1,
        "{out}"
    );
    assert_eq!(w.emu.counters().entra_for(&p.client_id), 3);
}
