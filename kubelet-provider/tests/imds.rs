//! The AKS azure.json with `useManagedIdentityExtension: true`: the node's managed identity
//! through IMDS at its real address, 169.254.169.254:80, inside a private network namespace this
//! test creates (nothing leaves the test; needs root, as CI has).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::Role;
use serde_json::json;

#[test]
fn azure_json_managed_identity_system_and_user_assigned() {
    if !acr_tests::sandbox::in_private_netns(&["169.254.169.254/32"]) {
        return;
    }
    let w = sandbox();
    w.emu
        .serve_imds_http("169.254.169.254:80".parse().unwrap())
        .unwrap();
    let system = w.emu.add_managed_identity(None);
    let user = w
        .emu
        .add_managed_identity(Some("88888888-8888-8888-8888-888888888888"));
    w.emu.grant(&system.client_id, &w.registry, Role::AcrPull);
    w.emu.grant(&user.client_id, &w.registry2, Role::AcrPull);
    let file = |uai: &str| {
        json!({
            "cloud": "AzurePublicCloud",
            "tenantId": TENANT,
            "aadClientId": "msi",
            "aadClientSecret": "msi",
            "useManagedIdentityExtension": true,
            "userAssignedIdentityID": uai,
        })
        .to_string()
    };

    // System-assigned: userAssignedIdentityID is empty. Not an Azure VM, yet azure.json decides.
    w.write("azure.json", &file(""));
    let r = response(&w.run(
        &[&w.azure_json()],
        &request(V1, &format!("{}/a:1", w.registry)),
    ));
    let p = r["auth"][&w.registry]["password"].as_str().unwrap();
    assert_eq!(claims(p)["sub"], system.object_id.as_str());

    // User-assigned.
    w.write("azure.json", &file(&user.client_id));
    let r = response(&w.run(
        &[&w.azure_json()],
        &request(V1, &format!("{}/b:1", w.registry2)),
    ));
    let p = r["auth"][&w.registry2]["password"].as_str().unwrap();
    assert_eq!(claims(p)["sub"], user.object_id.as_str());
    assert_eq!(w.emu.counters().imds(), 2);
}
