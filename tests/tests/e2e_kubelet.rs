//! The kubelet provider's answers used by a real client: skopeo pulls with the username and
//! password `acr-credential-provider` returns, for the node identity and for per-pod identities.

use acr_tests::e2e::{self, REGISTRY, TENANT, World, oci};
use acr_tests::emulator::Role;
use acr_tests::sandbox::workspace_bin;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ISSUER: &str = "https://oidc.cluster.example/e2e/";

/// Pushes a tiny image with a pusher identity through the docker helper; returns its digest.
fn seed_image(w: &mut World, reference: &str) -> Result<String, Box<dyn std::error::Error>> {
    let pusher = w.emu.add_secret_principal(
        TENANT,
        "99999999-0000-0000-0000-000000000001",
        "pusher-secret-1",
    );
    w.emu.grant(&pusher.client_id, REGISTRY, Role::AcrPush);
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &pusher.client_id);
    w.set("AZURE_CLIENT_SECRET", "pusher-secret-1");
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"kubelet e2e\n")?;
    assert_eq!(w.push(&layout, "1", reference)?, image.manifest_digest);
    // The provider must not see the pusher's identity.
    for k in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"] {
        w.env.remove(k);
    }
    Ok(image.manifest_digest)
}

/// Runs the provider with `args` on `request`; returns (username, password) or the stderr line.
fn provide(
    w: &World,
    args: &[&str],
    request: &serde_json::Value,
) -> Result<Result<(String, String), String>, Box<dyn std::error::Error>> {
    let bin = workspace_bin("acr-credential-provider");
    let out = w.run(&bin.to_string_lossy(), args, &request.to_string())?;
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["kind"], "CredentialProviderResponse");
    assert_eq!(v["cacheKeyType"], "Registry");
    let auth = &v["auth"][REGISTRY];
    let user = auth["username"].as_str().ok_or("no username")?.to_owned();
    let pass = auth["password"].as_str().ok_or("no password")?.to_owned();
    Ok(Ok((user, pass)))
}

/// `skopeo inspect` with explicit credentials (not the helper): the registry's own verdict.
fn inspect_with(
    w: &World,
    reference: &str,
    creds: &(String, String),
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let pair = format!("{}:{}", creds.0, creds.1);
    let out = w.skopeo(&[
        "inspect",
        "--creds",
        &pair,
        &format!("docker://{reference}"),
    ])?;
    if !out.status.success() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["Digest"].as_str().map(str::to_owned))
}

fn request(image: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": image})
}

#[test]
fn skopeo_pulls_with_the_node_identitys_answer() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let reference = format!("{REGISTRY}/app/hello:1");
    let digest = seed_image(&mut w, &reference)?;
    let node = w.emu.add_secret_principal(
        TENANT,
        "99999999-0000-0000-0000-000000000002",
        "node-secret-1",
    );
    w.emu.grant(&node.client_id, REGISTRY, Role::AcrPull);
    let azure_json = w.write_file(
        "azure.json",
        &serde_json::json!({"cloud": "AzurePublicCloud", "tenantId": TENANT, "aadClientId": node.client_id, "aadClientSecret": "node-secret-1"}).to_string(),
        0o600,
    )?;
    let cache = w.path("kubelet-cache");
    let cache = cache.to_string_lossy().into_owned();
    // A derived token (the AKS plugin's own answer, the id and secret, is pulled with in
    // e2e_aks_compat.rs).
    let args = [
        azure_json.to_string_lossy().into_owned(),
        "--exchange-sp-secret".into(),
        "--cache-dir".into(),
        cache,
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let creds =
        provide(&w, &args, &request(&reference))?.map_err(|e| format!("provider failed: {e}"))?;
    assert_eq!(creds.0, "00000000-0000-0000-0000-000000000000");
    assert_eq!(
        inspect_with(&w, &reference, &creds)?.as_deref(),
        Some(digest.as_str())
    );
    // Wrong credentials are refused by the registry: the check above is meaningful.
    let wrong = (creds.0.clone(), "not-a-token".to_owned());
    assert_eq!(inspect_with(&w, &reference, &wrong)?, None);
    Ok(())
}

#[test]
fn per_pod_identities_pull_with_their_own_roles() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let reference = format!("{REGISTRY}/team/app:1");
    let digest = seed_image(&mut w, &reference)?;
    let allowed_sub = "system:serviceaccount:shop:web";
    let denied_sub = "system:serviceaccount:shop:batch";
    let allowed = w.emu.add_federated_principal(
        TENANT,
        "99999999-0000-0000-0000-0000000000a1",
        ISSUER,
        allowed_sub,
    );
    let denied = w.emu.add_federated_principal(
        TENANT,
        "99999999-0000-0000-0000-0000000000a2",
        ISSUER,
        denied_sub,
    );
    w.emu.grant(&allowed.client_id, REGISTRY, Role::AcrPull);
    // `denied` has no role on the registry.
    let cache = w.path("kubelet-cache").to_string_lossy().into_owned();
    w.set("AZURE_TENANT_ID", TENANT);
    let pod = |sub: &str, client: &str| {
        let token = w.emu.mint_service_account_token(
            ISSUER,
            sub,
            "api://AzureADTokenExchange",
            Duration::from_secs(3600),
        );
        serde_json::json!({
            "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            "kind": "CredentialProviderRequest",
            "image": reference,
            "serviceAccountToken": token,
            "serviceAccountAnnotations": {"kubernetes.azure.com/acr-client-id": client},
        })
    };
    let creds = provide(
        &w,
        &["--cache-dir", &cache],
        &pod(allowed_sub, &allowed.client_id),
    )?
    .map_err(|e| format!("provider failed for the allowed pod: {e}"))?;
    assert_eq!(
        inspect_with(&w, &reference, &creds)?.as_deref(),
        Some(digest.as_str())
    );
    let err = provide(
        &w,
        &["--cache-dir", &cache],
        &pod(denied_sub, &denied.client_id),
    )?
    .expect_err("the pod without a role gets no credential");
    assert!(
        err.contains("AcrPull") && err.contains("shop/batch"),
        "{err}"
    );
    // The denied pod naming the allowed pod's client id is refused by Entra (its token's subject
    // is not that app's federated credential), not served the allowed pod's cached token.
    let err = provide(
        &w,
        &["--cache-dir", &cache],
        &pod(denied_sub, &allowed.client_id),
    )?
    .expect_err("a pod cannot borrow another pod's identity");
    assert!(err.contains("AADSTS"), "{err}");
    Ok(())
}
