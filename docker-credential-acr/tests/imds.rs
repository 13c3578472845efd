//! Managed identity through IMDS at its real address, 169.254.169.254:80, inside a private
//! network namespace that this test creates (nothing leaves the test; needs root, as CI is).
//!
//! The outer test re-runs this test binary under `unshare --net`; the inner run (marked by an
//! environment variable) brings up loopback, adds the IMDS address to it, starts the emulator
//! and runs the helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use acr_tests::emulator::Role;
use common::*;
use std::process::Command;

const INNER: &str = "ACR_TEST_INSIDE_NETNS";

#[test]
fn managed_identity_through_imds_system_and_user_assigned() {
    if std::env::var_os(INNER).is_some() {
        return inside_namespace();
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args([
            "--exact",
            "managed_identity_through_imds_system_and_user_assigned",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .output()
        .expect("unshare runs (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(text.contains("1 passed"), "the inner test ran:\n{text}");
}

fn inside_namespace() {
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", "169.254.169.254/32", "dev", "lo"][..],
    ] {
        let s = Command::new("ip")
            .args(args)
            .status()
            .expect("ip (iproute2) runs");
        assert!(s.success(), "ip {args:?}");
    }
    let mut w = World::new();
    w.emu
        .serve_imds_http("169.254.169.254:80".parse().unwrap())
        .unwrap();
    let system = w.emu.add_managed_identity(None);
    let user = w
        .emu
        .add_managed_identity(Some("88888888-8888-8888-8888-888888888888"));
    w.emu.grant(&system.client_id, &w.registry, Role::AcrPull);
    w.emu.grant(&user.client_id, &w.registry2, Role::AcrPull);
    // Not an Azure VM: IMDS is chosen by configuration.
    w.set("ACR_IDENTITY", "imds");
    let a = answer(&w.get(&w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        system.object_id.as_str()
    );
    w.set("AZURE_CLIENT_ID", &user.client_id);
    let a = answer(&w.get(&w.registry2));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        user.object_id.as_str()
    );
    assert_eq!(w.emu.counters().imds(), 2);
    // Unknown user-assigned identity: IMDS's refusal, named.
    w.set("AZURE_CLIENT_ID", "99999999-9999-9999-9999-999999999999");
    let o = w.get(&w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("managed identity (IMDS)"),
        "{}",
        stdout(&o)
    );
}
