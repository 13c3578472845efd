//! The real helper with `ACR_MIN_VALIDITY` and a registry that takes ARM-audience tokens only:
//! `doctor` explains the minimum in force, a clamp, and the audience that worked; a bad value is
//! one line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use acr_tests::emulator::RegistryAudiences;
use common::*;

#[test]
fn doctor_explains_the_minimum_validity_and_the_audience_that_worked() {
    let (mut w, _) = sandbox_with_secret_principal();
    let o = w.run(&["doctor"], "");
    let out = stdout(&o);
    assert!(
        out.contains("\nminimum validity: 60 min (default, at most a third of a token's lifetime; set ACR_MIN_VALIDITY to require more)\n"),
        "{out}"
    );
    w.emu
        .set_registry_audiences(&w.registry, RegistryAudiences::ArmOnly);
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
    // The second check started with the remembered audience: one exchange, not two.
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
