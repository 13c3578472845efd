//! An identity's credential goes only to the authority of the cloud it is configured for, never
//! to one the requested registry's domain picks (security review, finding 2).
//!
//! Two fake clouds in one private network namespace: `login.microsoftonline.com` and
//! `login.chinacloudapi.cn` both resolve to the emulator, which serves a public-cloud registry and
//! an Azure China one. A CI runner with a public-cloud service principal and the helper as its
//! catch-all credential store must not send the client secret anywhere for `FROM x.azurecr.cn/...`.

use acr_tests::e2e::{self, REGISTRY, SERVICE_ADDRESS, TENANT, World};
use acr_tests::emulator::Role;
use std::io::Write;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CHINA_REGISTRY: &str = "chinaregistry.azurecr.cn";
const SECRET: &str = "public-cloud-secret-1";

fn world() -> Result<World, Box<dyn std::error::Error>> {
    let mut w = World::start(&[REGISTRY, CHINA_REGISTRY])?;
    let mut hosts = std::fs::OpenOptions::new()
        .append(true)
        .open("/etc/hosts")?;
    writeln!(hosts, "{SERVICE_ADDRESS} login.chinacloudapi.cn")?;
    let sp = w
        .emu
        .add_secret_principal(TENANT, "11111111-0000-4000-8000-00000000c10d", SECRET);
    w.emu.grant(&sp.client_id, REGISTRY, Role::AcrPull);
    w.emu.grant(&sp.client_id, CHINA_REGISTRY, Role::AcrPull);
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &sp.client_id);
    w.set("AZURE_CLIENT_SECRET", SECRET);
    Ok(w)
}

#[test]
fn a_registry_of_another_cloud_gets_no_credential() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = world()?;
    // The public registry works: the identity's own cloud.
    let out = w.helper(&["get"], REGISTRY)?;
    assert!(out.status.success(), "{out:?}");
    w.emu.reset_counters();

    // The China registry: one line naming the setting, and not a single request anywhere.
    let out = w.helper(&["get"], CHINA_REGISTRY)?;
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("chinaregistry.azurecr.cn is in Azure China but the identity is configured for the Azure public cloud")
            && text.contains("ACR_CLOUD=china"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    let c = w.emu.counters();
    assert_eq!(c.total(), 0, "a request left: {c:?}");

    // The same through the kubelet provider without azure.json (the node's environment).
    let provider = acr_tests::sandbox::workspace_bin("acr-credential-provider");
    let cache = w.path("kubelet-cache").to_string_lossy().into_owned();
    let request = serde_json::json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": format!("{CHINA_REGISTRY}/app:1")});
    let out = w.run(
        &provider.to_string_lossy(),
        &["--cache-dir", &cache],
        &request.to_string(),
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ACR_CLOUD=china"), "{err}");
    assert_eq!(w.emu.counters().total(), 0);

    // Saying the identity belongs to Azure China sends it to China's authority, and only there:
    // now the public registry is the other cloud.
    w.set("ACR_CLOUD", "china");
    let out = w.helper(&["get"], CHINA_REGISTRY)?;
    assert!(out.status.success(), "{out:?}");
    let c = w.emu.counters();
    assert_eq!((c.entra(), c.exchange_for(CHINA_REGISTRY)), (1, 1), "{c:?}");
    let out = w.helper(&["get"], REGISTRY)?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ACR_CLOUD=public")
            || String::from_utf8_lossy(&out.stderr).contains("ACR_CLOUD=public"),
        "{out:?}"
    );
    Ok(())
}
