//! Managed identity of an Azure Arc-enabled server: the agent's endpoint on 127.0.0.1:40342 and
//! its key files in /var/opt/azcmagent/tokens, both inside a private network and mount namespace
//! this test creates (a tmpfs over /var/opt: nothing of the machine's is read or written).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::{ARC_TOKENS_FOLDER as TOKENS, Role};
use std::os::unix::fs::PermissionsExt;

#[test]
fn an_arc_servers_identity_through_the_agents_challenge() {
    if !acr_tests::sandbox::in_private_netns(&[]) {
        return;
    }
    let mut w = sandbox();
    w.emu.serve_arc_agent().unwrap();
    let machine = w.emu.add_managed_identity(None);
    w.emu.grant(&machine.client_id, &w.registry, Role::AcrPull);
    // As the agent sets them, on a machine whose asset tag also says Azure VM: Arc comes first,
    // IMDS (not served here) is never asked.
    w.set(
        "IDENTITY_ENDPOINT",
        "http://localhost:40342/metadata/identity/oauth2/token",
    );
    w.set("IMDS_ENDPOINT", "http://localhost:40342");
    let tag = w.path("asset-tag");
    std::fs::write(&tag, "7783-7084-3265-9085-8269-3286-77\n").unwrap();
    w.set("ACR_DMI_ASSET_TAG_FILE", tag.to_str().unwrap());

    let a = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        machine.object_id.as_str()
    );
    let c = w.emu.counters();
    assert_eq!(
        (c.arc(), c.imds()),
        (2, 0),
        "challenge, then the key: {c:?}"
    );
    // A cache hit asks nobody.
    answer(&get(&w, &w.registry));
    assert_eq!(w.emu.counters().arc(), 2);

    let o = w.run(&["doctor", &w.registry], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("identity: managed identity (Azure Arc)"),
        "{out}"
    );

    // A token folder others may write: a planted key file could be anyone's; refused, one line.
    std::fs::remove_dir_all(w.cache_dir()).unwrap();
    std::fs::set_permissions(TOKENS, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    let said = stdout(&o);
    assert!(
        said.contains("managed identity (Azure Arc)")
            && said.contains("only its owner and group may write")
            && said.lines().count() == 1,
        "{said}"
    );
    std::fs::set_permissions(TOKENS, std::fs::Permissions::from_mode(0o770)).unwrap();

    // Arc has no user-assigned identities: AZURE_CLIENT_ID is refused, not ignored.
    w.set("AZURE_CLIENT_ID", "99999999-9999-9999-9999-999999999999");
    let o = get(&w, &w.registry);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("Azure Arc has only the machine's system-assigned identity"),
        "{}",
        stdout(&o)
    );
    w.unset("AZURE_CLIENT_ID");

    // ACR_IDENTITY=arc without the variables (a service started without the agent's
    // environment): the agent's default endpoint.
    w.unset("IDENTITY_ENDPOINT");
    w.unset("IMDS_ENDPOINT");
    w.set("ACR_IDENTITY", "arc");
    answer(&get(&w, &w.registry));
    // 2, then the refused challenge, then 2 (the client id was refused before any request).
    assert_eq!(w.emu.counters().arc(), 5);
}
