//! The real `acr-credential-provider` binary with `ACR_MIN_VALIDITY`: the kubelet is told to keep
//! a credential only while it has at least that much life left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

#[test]
fn cache_duration_keeps_to_acr_min_validity() {
    let (mut w, _) = sandbox_with_node_principal();
    // 20-minute ACR tokens, so the refresh point can come before the AKS plugin's 5 minutes.
    w.emu.set_lifetimes(
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(20 * 60),
    );
    let image = format!("{}/team/app:1.0", w.registry);
    // The default: the refresh point is a third of the lifetime before expiry (13 min away), so
    // the AKS plugin's five minutes.
    let r = response(&w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image)));
    let exp = claims(r["auth"][&w.registry]["password"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert_eq!(r["cacheDuration"], "5m0s", "{r}");
    // With 16 minutes required, only until 16 minutes are left: about 4 minutes.
    w.set("ACR_MIN_VALIDITY", "16m");
    let r = response(&w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image)));
    let strict = go_seconds(r["cacheDuration"].as_str().unwrap()) as i64;
    let point = exp - 16 * 60 - unix_now();
    assert!(point < 300, "{point}");
    assert!(
        (point - 30..=point + 1).contains(&strict),
        "{strict} vs {point}"
    );
    assert_eq!(
        w.emu.counters().exchange(),
        1,
        "the same token, from the cache"
    );
}
