//! A node on an Azure Arc-enabled server with no azure.json (kubeadm, k3s): the broker's chain
//! finds the Arc agent's variables, passed as the credential provider config's `env`, and pulls
//! as the machine's identity. The agent's endpoint (127.0.0.1:40342) and its token folder (a
//! tmpfs over /var/opt) live in a private network and mount namespace this test creates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::Role;

#[test]
fn a_node_without_azure_json_pulls_as_the_arc_machines_identity() {
    if !acr_tests::sandbox::in_private_netns(&[]) {
        return;
    }
    let mut w = sandbox();
    w.emu.serve_arc_agent().unwrap();
    let machine = w.emu.add_managed_identity(None);
    w.emu.grant(&machine.client_id, &w.registry, Role::AcrPull);
    w.set(
        "IDENTITY_ENDPOINT",
        "http://localhost:40342/metadata/identity/oauth2/token",
    );
    w.set("IMDS_ENDPOINT", "http://localhost:40342");

    let r = response(&w.run(&[], &request(V1, &format!("{}/app:1", w.registry))));
    let p = r["auth"][&w.registry]["password"].as_str().unwrap();
    assert_eq!(claims(p)["sub"], machine.object_id.as_str());
    assert_eq!(w.emu.counters().arc(), 2, "the challenge, then the key");
}
