//! Both binaries at once on one cache: 64 concurrent cold processes, docker helper and kubelet
//! provider mixed, make exactly one Entra request and one exchange, and all succeed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acr_tests::emulator::{EndpointKind, Fault, FaultAction};
use acr_tests::sandbox::{Sandbox, assert_no_secret, workspace_bin};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn sixty_four_mixed_cold_processes_make_one_entra_request_and_one_exchange() {
    let (w, _) = Sandbox::with_secret_principal(workspace_bin("docker-credential-acr"));
    let kubelet = workspace_bin("acr-credential-provider");
    // Slow Entra down so every process starts while the first one is still fetching.
    w.emu.set_fault(Fault::once(
        EndpointKind::Entra,
        FaultAction::Latency(Duration::from_millis(500)),
    ));
    let request = serde_json::json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": format!("{}/app/web:1.0", w.registry),
    })
    .to_string();
    let mut children = Vec::new();
    for i in 0..64 {
        let (bin, args, input): (&std::path::Path, &[&str], String) = if i % 2 == 0 {
            (&w.bin, &["get"], w.registry.clone())
        } else {
            (&kubelet, &[], request.clone())
        };
        let child = acr_tests::sandbox::command(bin)
            .args(args)
            .env_clear()
            .envs(&w.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((i, child, input));
    }
    for (_, child, input) in &mut children {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let mut secrets = std::collections::BTreeSet::new();
    for (i, child, _) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "process {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret(&w.emu, &out.stderr, "stderr");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let secret = if i % 2 == 0 {
            v["Secret"].as_str().unwrap().to_string()
        } else {
            v["auth"][w.registry.as_str()]["password"]
                .as_str()
                .unwrap()
                .to_string()
        };
        secrets.insert(secret);
    }
    assert_eq!(secrets.len(), 1, "one token, shared by both binaries");
    let n = w.emu.counters();
    assert_eq!((n.entra(), n.exchange()), (1, 1));
}
