//! Test harness: the shared sandbox (an emulator standing in for Entra and ACR, a private
//! folder) around the real provider binary, fed real request documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code, unused_imports)]

use acr_tests::emulator::{Principal, Role};
pub use acr_tests::sandbox::{Sandbox, TENANT, claims, stderr, stdout};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_acr-credential-provider");
pub const USERNAME: &str = "00000000-0000-0000-0000-000000000000";
pub const V1: &str = "credentialprovider.kubelet.k8s.io/v1";
pub const V1BETA1: &str = "credentialprovider.kubelet.k8s.io/v1beta1";
pub const V1ALPHA1: &str = "credentialprovider.kubelet.k8s.io/v1alpha1";
/// The issuer of the emulated cluster's service-account tokens.
pub const CLUSTER_ISSUER: &str = "https://oidc.cluster.example/6f1c7e0a/";
pub const TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const CLIENT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-client-id";
pub const TENANT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-tenant-id";

/// Makes a service-principal node (the one of [`sandbox_with_node_principal`]) derive ACR
/// tokens, the path these tests exercise; without it such a node answers its id and secret, as
/// the AKS plugin does (tested in `provider.rs`).
pub const EXCHANGE: &str = "--exchange-sp-secret";

/// The node's service principal (in azure.json).
pub const NODE_CLIENT: &str = "11111111-1111-1111-1111-111111111111";
pub const NODE_SECRET: &str = "node-sp-secret-value-7f3a";

/// A sandbox for the provider, no identity configured.
pub fn sandbox() -> Sandbox {
    Sandbox::new(BIN)
}

/// A sandbox whose node has a service principal in azure.json, with AcrPull on `registry`.
pub fn sandbox_with_node_principal() -> (Sandbox, Principal) {
    let w = sandbox();
    let p = w.emu.add_secret_principal(TENANT, NODE_CLIENT, NODE_SECRET);
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    w.write(
        "azure.json",
        &json!({
            "cloud": "AzurePublicCloud",
            "tenantId": TENANT,
            "subscriptionId": "00000000-0000-0000-0000-00000000000a",
            "aadClientId": NODE_CLIENT,
            "aadClientSecret": NODE_SECRET,
            "resourceGroup": "MC_rg_cluster_westeurope",
            "location": "westeurope",
            "useManagedIdentityExtension": false,
            "userAssignedIdentityID": "",
        })
        .to_string(),
    );
    (w, p)
}

/// What the provider's tests add to the shared sandbox.
pub trait ProviderSandbox {
    /// The azure.json path.
    fn azure_json(&self) -> String;
    /// Writes a file under the sandbox's folder.
    fn write(&self, rel: &str, content: &str);
    /// A federated app trusting the cluster's tokens for `namespace/name`, and a token for it.
    fn pod_identity(&self, client_id: &str, namespace: &str, name: &str) -> (Principal, String);
    /// A service-account token for `namespace/name`.
    fn token(&self, namespace: &str, name: &str) -> String;
    /// Checks that the credential gives `pull` on `repository`.
    fn check_pull(&self, registry: &str, username: &str, password: &str, repository: &str);
}

impl ProviderSandbox for Sandbox {
    fn azure_json(&self) -> String {
        self.path("azure.json").to_str().unwrap().to_string()
    }

    fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.path(rel), content).unwrap();
    }

    fn pod_identity(&self, client_id: &str, namespace: &str, name: &str) -> (Principal, String) {
        let subject = format!("system:serviceaccount:{namespace}:{name}");
        let p = self
            .emu
            .add_federated_principal(TENANT, client_id, CLUSTER_ISSUER, &subject);
        (p, self.token(namespace, name))
    }

    fn token(&self, namespace: &str, name: &str) -> String {
        self.emu.mint_service_account_token(
            CLUSTER_ISSUER,
            &format!("system:serviceaccount:{namespace}:{name}"),
            TOKEN_AUDIENCE,
            Duration::from_secs(3600),
        )
    }

    // As a registry client would with the kubelet's username and password.
    fn check_pull(&self, registry: &str, username: &str, password: &str, repository: &str) {
        let pem = std::fs::read(self.emu.ca_pem_path()).unwrap();
        let mut builder = reqwest::blocking::Client::builder();
        for cert in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().unwrap();
        let scope = format!("repository:{repository}:pull");
        let r = client
            // Every character of these values may stand in a query as it is.
            .get(format!(
                "https://{registry}/oauth2/token?service={registry}&scope={scope}"
            ))
            .basic_auth(username, Some(password))
            .send()
            .unwrap();
        let status = r.status();
        let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        assert!(status.is_success(), "{status}: {body}");
        let access = claims(body["access_token"].as_str().unwrap());
        let granted = &access["access"][0];
        assert_eq!(granted["name"], repository, "{access}");
        assert!(
            granted["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "pull"),
            "{access}"
        );
    }
}

/// A request document of `version` for `image`.
pub fn request(version: &str, image: &str) -> String {
    json!({"apiVersion": version, "kind": "CredentialProviderRequest", "image": image}).to_string()
}

/// A v1 request with a service-account token and annotations, as the kubelet sends with
/// `tokenAttributes`.
pub fn pod_request(image: &str, token: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    json!({
        "apiVersion": V1,
        "kind": "CredentialProviderRequest",
        "image": image,
        "serviceAccountToken": token,
        "serviceAccountAnnotations": annotations,
    })
    .to_string()
}

/// The response of a successful run, checked to be one JSON line with nothing on stderr.
pub fn response(o: &std::process::Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    let out = stdout(o);
    assert!(
        out.ends_with('\n') && out.trim_end().lines().count() == 1,
        "{out:?}"
    );
    serde_json::from_str(&out).unwrap()
}

/// Checks a failed run: status 1, nothing on stdout, one line on stderr; returns the line.
pub fn failure(o: &std::process::Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert_eq!(stdout(o), "", "nothing on stdout");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(
        err.starts_with("acr-credential-provider: error: "),
        "{err:?}"
    );
    err
}

/// Seconds in a Go duration as the provider writes it (`1h59m0s`).
pub fn go_seconds(d: &str) -> u64 {
    let mut total = 0;
    let mut n = String::new();
    for c in d.chars() {
        match c {
            '0'..='9' => n.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total += n.parse::<u64>().unwrap() * unit;
                n.clear();
            }
            _ => panic!("not a Go duration: {d}"),
        }
    }
    assert!(n.is_empty(), "not a Go duration: {d}");
    total
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
