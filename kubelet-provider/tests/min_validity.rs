//! The real `acr-credential-provider` binary with `ACR_MIN_VALIDITY`: the kubelet is told to keep
//! a credential only while it has at least that much life left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

#[test]
fn cache_duration_keeps_to_acr_min_validity() {
    let (mut w, _) = sandbox_with_node_principal();
    let image = format!("{}/team/app:1.0", w.registry);
    // The default: until the refresh point, a third of the 3 h lifetime before expiry.
    let r = response(&w.run(&[&w.azure_json()], &request(V1, &image)));
    let exp = claims(r["auth"][&w.registry]["password"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    let default = go_seconds(r["cacheDuration"].as_str().unwrap()) as i64;
    let point = exp - 3600 - unix_now();
    assert!(
        (point - 30..=point + 1).contains(&default),
        "{default} vs {point}"
    );
    // With 150 minutes required, only until 150 minutes are left.
    w.set("ACR_MIN_VALIDITY", "150m");
    let r = response(&w.run(&[&w.azure_json()], &request(V1, &image)));
    let strict = go_seconds(r["cacheDuration"].as_str().unwrap()) as i64;
    let point = exp - 150 * 60 - unix_now();
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
