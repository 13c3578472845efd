//! Managed identity through IMDS at its real address, 169.254.169.254:80, inside a private
//! network namespace that this test creates (nothing leaves the test; needs root, as CI is).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use acr_tests::emulator::{EndpointKind, Fault, FaultAction, Role};
use common::*;

#[test]
fn managed_identity_through_imds_system_and_user_assigned() {
    if !acr_tests::sandbox::in_private_netns(
        "managed_identity_through_imds_system_and_user_assigned",
        &["169.254.169.254/32"],
    ) {
        return;
    }
    let mut w = world();
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
    // IMDS answers 410 while the VM boots: retried (IMDS's own guidance), then it answers.
    w.emu.set_fault(Fault::once(
        EndpointKind::Imds,
        FaultAction::Status {
            code: 410,
            retry_after: None,
            body: None,
        },
    ));
    let a = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        system.object_id.as_str()
    );
    w.set("AZURE_CLIENT_ID", &user.client_id);
    let a = answer(&get(&w, &w.registry2));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        user.object_id.as_str()
    );
    assert_eq!(w.emu.counters().imds(), 3, "one 410, then two answers");
    // Unknown user-assigned identity: IMDS's refusal, named.
    w.set("AZURE_CLIENT_ID", "99999999-9999-9999-9999-999999999999");
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("managed identity (IMDS)"),
        "{}",
        stdout(&o)
    );
}
