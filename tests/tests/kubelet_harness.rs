//! `acr-credential-provider` driven by the kubelet's own code (`tests/kubelet-harness`:
//! `k8s.io/kubernetes` v1.36.3 `pkg/credentialprovider/plugin`), with every
//! `CredentialProviderConfig` AKS's node bootstrap writes and the ones this project ships.
//!
//! Each row loads its config through the kubelet's loader (strict decoding and validation), looks
//! images up through the kubelet's keyring for a pod, and checks, per lookup: whether the kubelet
//! executed the plugin or its cache answered (the kubelet's own run metric), the request the
//! kubelet wrote and the answer the plugin gave (recorded between them), the credentials the
//! kubelet hands the runtime in order, and a real pull (`skopeo`) trying them in that order, as
//! the kubelet's puller does (k8s.io/kubernetes v1.36.3 `pkg/kubelet/kuberuntime/
//! kuberuntime_image.go:50-70`: each credential in turn, the first that pulls wins; an empty
//! username and password is an anonymous pull).
//!
//! The configs are written here in the shape AgentBaker (Azure/AgentBaker at 06836ee) writes them
//! in `parts/linux/cloud-init/artifacts/cse_config.sh`, function `writeCredentialProviderConfig`
//! (lines 1800-1887), each function citing its lines. Two paths differ, because a test cannot
//! create files under `/etc/kubernetes` on the machine: the azure.json argument (AgentBaker:
//! `/etc/kubernetes/azure.json`, line 1864/1885) is the row's own file, and identity-bindings
//! rows add `--ib-ca-file` (AgentBaker relies on the default `/etc/kubernetes/certs/ca.crt`).
//! AgentBaker writes only the `credentialprovider.kubelet.k8s.io/v1` plugin API (lines 1862 and
//! 1883; no `v1beta1` anywhere in its history); the `v1beta1` row is the kubelet's other
//! supported version, which other installers still write.
//!
//! The answers checked are the AKS plugin's (cloud-provider-azure v1.35.3): a managed-identity
//! node gets an ACR refresh token under the image's registry and an empty `*.azurecr.*` entry; a
//! service-principal node gets its `aadClientId`/`aadClientSecret` under `*.azurecr.{io,cn,de,us}`
//! (and the custom cloud's suffix) without any network request; a non-ACR image gets an empty
//! `auth` with `cacheDuration: 0s`; every ACR answer has `cacheKeyType: Registry` and
//! `cacheDuration: 5m0s`.

use acr_tests::e2e::{self, REGISTRY, REGISTRY2, SERVICE_ADDRESS, TENANT, World, oci};
use acr_tests::emulator::{IDENTITY_BINDING_AUDIENCE, IdentityBindingAuthority, Role};
use acr_tests::kubelet::{self, Credential, Exec, Lookup, LookupResult, Plan, ServiceAccount};
use acr_tests::sandbox::workspace_bin;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type RowResult = Result<(), String>;

/// A registry of a custom cloud (AzureStackCloud), named by its environment file's suffix.
const CUSTOM: &str = "myregistry.azurecr.contoso.example";
const CUSTOM_SUFFIX: &str = ".azurecr.contoso.example";
const CUSTOM_AUTHORITY: &str = "login.contoso.example";
const ISSUER: &str = "https://oidc.cluster.example/kubelet/";
const SNI: &str = "ib.kubelet.example";
const APISERVER: &str = "mycluster-dns-5678.hcp.kubelet.example";
const ANONYMOUS: &str = "*.azurecr.*";
const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";
const V1: &str = "credentialprovider.kubelet.k8s.io/v1";
const V1BETA1: &str = "credentialprovider.kubelet.k8s.io/v1beta1";
const MCR_IMAGE: &str = "mcr.microsoft.com/app/hello:1";
const CLIENT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-client-id";
const TENANT_ID_ANNOTATION: &str = "kubernetes.azure.com/acr-tenant-id";
const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";
/// How long the kubelet may keep an ACR answer (the AKS plugin's, for every ACR answer).
const ACR_CACHE_DURATION: &str = "5m0s";

/// The node's service principal: AcrPull on REGISTRY and CUSTOM, no role on REGISTRY2.
const SP: &str = "11111111-0000-4000-8000-0000000000c1";
const SP_SECRET: &str = "kubelet-node-sp-secret";
const POD_APP: &str = "44444444-0000-4000-8000-0000000000c1";
const IB_APP: &str = "55555555-0000-4000-8000-0000000000c1";
const IB_DEFAULT: &str = "55555555-0000-4000-8000-0000000000c2";

fn image(registry: &str) -> String {
    format!("{registry}/app/hello:1")
}

/// The shared state of every row.
struct Ctx {
    w: World,
    harness: PathBuf,
    provider: PathBuf,
    digest: String,
    system_mi: String,
    authority: IdentityBindingAuthority,
    env_file: String,
    /// Every service-account token minted for a row (never to leak).
    pod_tokens: Vec<String>,
}

#[test]
fn the_kubelet_gets_the_aks_plugins_answers_for_every_agentbaker_configuration() -> TestResult {
    // Built before entering the namespace, which has no network.
    let harness = kubelet::build()?;
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY, REGISTRY2, CUSTOM])?;
    // The custom cloud's authority is the emulator; the identity-bindings authority listens on
    // ::1 (the emulator holds port 443 of every IPv4 address), reached by the API server's name.
    add_hosts(&[(SERVICE_ADDRESS, CUSTOM_AUTHORITY), ("::1", APISERVER)])?;
    let digest = seed(&mut w)?;
    w.serve_imds()?;

    let system = w.emu.add_managed_identity(None);
    for registry in [REGISTRY, REGISTRY2] {
        w.emu.grant(&system.client_id, registry, Role::AcrPull);
    }
    w.emu.add_secret_principal(TENANT, SP, SP_SECRET);
    for registry in [REGISTRY, CUSTOM] {
        w.emu.grant(SP, registry, Role::AcrPull);
    }
    // REGISTRY2 serves anonymous pulls; the node's service principal has no role on it.
    w.emu.set_anonymous_pull(REGISTRY2, true);
    w.emu
        .add_federated_principal(TENANT, POD_APP, ISSUER, "system:serviceaccount:shop:web");
    w.emu.grant(POD_APP, REGISTRY, Role::AcrPull);
    let authority = w.emu.start_identity_binding_authority(
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 443)),
        SNI,
    )?;
    for app in [IB_APP, IB_DEFAULT] {
        w.emu
            .add_secret_principal(TENANT, app, &format!("unused-{app}"));
        w.emu.grant(app, REGISTRY, Role::AcrPull);
    }
    authority.bind(IB_APP, ISSUER, "system:serviceaccount:shop:web");
    authority.bind(IB_DEFAULT, ISSUER, "system:serviceaccount:shop:batch");
    // The custom cloud's environment file, as AKS writes it (AgentBaker cse_cmd.sh:181 names it,
    // cse_config.sh:950-951 puts AZURE_ENVIRONMENT_FILEPATH in the kubelet's environment).
    let env_file = w.write_file(
        "akscustom.json",
        &json!({
            "name": "AzureStackCloud",
            "resourceManagerEndpoint": "https://management.contoso.example/",
            "activeDirectoryEndpoint": format!("https://{CUSTOM_AUTHORITY}/"),
            "containerRegistryDNSSuffix": CUSTOM_SUFFIX,
        })
        .to_string(),
        0o644,
    )?;

    let mut ctx = Ctx {
        w,
        harness,
        provider: workspace_bin("acr-credential-provider"),
        digest,
        system_mi: system.client_id.clone(),
        authority,
        env_file: env_file.to_string_lossy().into_owned(),
        pod_tokens: Vec::new(),
    };
    type Row = fn(&mut Ctx) -> RowResult;
    let rows: [(&str, Row); 10] = [
        ("AgentBaker default, managed-identity node", mi_node),
        ("AgentBaker default, service-principal node", sp_node),
        (
            "AgentBaker default, anonymous-pull registry",
            anonymous_pull,
        ),
        ("AgentBaker network-isolated: MCR mirrored", mirrored_mcr),
        ("AgentBaker identity bindings", identity_bindings),
        (
            "AgentBaker custom cloud, service-principal node",
            custom_cloud_sp,
        ),
        ("AgentBaker custom cloud, no environment file", not_acr),
        ("v1beta1 plugin API", v1beta1),
        ("shipped configs", shipped_configs),
        (
            "shipped identity-bindings config",
            shipped_identity_bindings,
        ),
    ];
    let mut failures = Vec::new();
    for (name, row) in rows {
        if let Err(e) = row(&mut ctx) {
            failures.push(format!("row {name:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The configurations.

/// What varies between AgentBaker's configs.
#[derive(Default)]
struct Shape<'a> {
    /// `*$AKS_CUSTOM_CLOUD_CONTAINER_REGISTRY_DNS_SUFFIX` (cse_config.sh:1844-1865).
    custom_suffix: Option<&'a str>,
    /// `BOOTSTRAP_PROFILE_CONTAINER_REGISTRY_SERVER` (network-isolated clusters,
    /// cse_config.sh:1835-1842): `"mcr.microsoft.com"` in matchImages and
    /// `--registry-mirror=mcr.microsoft.com:<server>`.
    bootstrap_registry: Option<&'a str>,
    /// `SERVICE_ACCOUNT_IMAGE_PULL_ENABLED` (cse_config.sh:1813-1831): tokenAttributes and the
    /// `--ib-*` arguments.
    identity_bindings: bool,
    /// The plugin API (AgentBaker: always v1).
    api_version: &'a str,
}

/// The `CredentialProviderConfig` `writeCredentialProviderConfig` writes (AgentBaker 06836ee,
/// `parts/linux/cloud-init/artifacts/cse_config.sh`: default 1869-1885, custom cloud 1847-1864),
/// with `azure_json` for `/etc/kubernetes/azure.json`.
fn agentbaker_config(shape: &Shape, azure_json: &Path, ib_ca: &Path) -> String {
    let mut match_images: Vec<String> = [
        "*.azurecr.io",
        "*.azurecr.cn",
        "*.azurecr.de",
        "*.azurecr.us",
        "*.*.geo.azurecr.io",
        "*.*.geo.azurecr.cn",
        "*.*.geo.azurecr.de",
        "*.*.geo.azurecr.us",
    ]
    .map(str::to_owned)
    .to_vec();
    // Line 1860.
    match_images.extend(shape.custom_suffix.map(|s| format!("*{s}")));
    let mut args = vec![azure_json.display().to_string()];
    if let Some(server) = shape.bootstrap_registry {
        // Lines 1836-1841 (MCR_REPOSITORY_BASE defaults to mcr.microsoft.com).
        match_images.push("mcr.microsoft.com".into());
        args.push(format!("--registry-mirror=mcr.microsoft.com:{server}"));
    }
    let mut token_attributes = String::new();
    if shape.identity_bindings {
        // Lines 1814-1820.
        token_attributes = "    tokenAttributes:
      serviceAccountTokenAudience: api://AKSIdentityBinding
      requireServiceAccount: false
      cacheType: ServiceAccount
      optionalServiceAccountAnnotationKeys:
        - kubernetes.azure.com/acr-client-id
"
        .into();
        // Lines 1822-1825, in that order.
        args.push(format!("--ib-sni-name={SNI}"));
        args.push(format!("--ib-default-client-id={IB_DEFAULT}"));
        args.push(format!("--ib-default-tenant-id={TENANT}"));
        args.push(format!("--ib-apiserver-ip={APISERVER}"));
        args.push(format!("--ib-ca-file={}", ib_ca.display()));
    }
    let api_version = if shape.api_version.is_empty() {
        V1
    } else {
        shape.api_version
    };
    let q = |s: &str| Value::from(s).to_string();
    format!(
        "apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: acr-credential-provider
    matchImages:
{match_images}
    defaultCacheDuration: \"10m\"
    apiVersion: {api_version}
{token_attributes}    args:
{args}
",
        match_images = match_images
            .iter()
            .map(|m| format!("      - {}\n", q(m)))
            .collect::<String>()
            .trim_end(),
        args = args
            .iter()
            .map(|a| format!("      - {}\n", q(a)))
            .collect::<String>()
            .trim_end(),
    )
}

fn mi_json() -> String {
    json!({
        "cloud": "AzurePublicCloud",
        "tenantId": TENANT,
        "subscriptionId": "3333",
        "aadClientId": "msi",
        "aadClientSecret": "msi",
        "resourceGroup": "MC_rg_kubelet_westeurope",
        "location": "westeurope",
        "vmType": "vmss",
        "useManagedIdentityExtension": true,
        "userAssignedIdentityID": "",
        "useInstanceMetadata": true,
    })
    .to_string()
}

fn sp_json(cloud: &str) -> String {
    json!({
        "cloud": cloud,
        "tenantId": TENANT,
        "subscriptionId": "3333",
        "aadClientId": SP,
        "aadClientSecret": SP_SECRET,
        "resourceGroup": "MC_rg_kubelet_westeurope",
        "location": "westeurope",
        "useManagedIdentityExtension": false,
        "userAssignedIdentityID": "",
        "useInstanceMetadata": true,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// The rows.

fn mi_node(ctx: &mut Ctx) -> RowResult {
    let row = ctx.row("mi", &mi_json(), &Shape::default(), &[])?;
    let other_image = format!("{REGISTRY}/app/other:2");
    let out = row.run(
        ctx,
        &[],
        &[
            Lookup::static_pod(&image(REGISTRY)),
            // Same registry: cacheKeyType Registry, within cacheDuration: the cache answers.
            Lookup::static_pod(&other_image),
            // Another registry: not a Global answer, the plugin runs again.
            Lookup::static_pod(&image(REGISTRY2)),
            // Not in matchImages: the plugin is not asked.
            Lookup::static_pod("docker.io/library/nginx:1"),
        ],
    )?;
    let mi = Pw::Token(ctx.system_mi.clone());
    let [first, cached, other, hub] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(first, 1)?;
    answer(
        first,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &mi,
        ACR_CACHE_DURATION,
    )?;
    let want = [(ACR_USER, mi.clone()), ("", Pw::Empty)];
    credentials(first, REGISTRY, &want)?;
    pulls_with(ctx, &image(REGISTRY), &first.credentials, 0)?;
    runs(cached, 0)?;
    if cached.credentials != first.credentials {
        return Err("the cached lookup handed out other credentials".into());
    }
    runs(other, 1)?;
    answer(
        other,
        V1,
        &[REGISTRY2, ANONYMOUS],
        REGISTRY2,
        ACR_USER,
        &mi,
        ACR_CACHE_DURATION,
    )?;
    runs(hub, 0)?;
    if hub.found || !hub.credentials.is_empty() {
        return Err(format!(
            "credentials for an image outside matchImages: {hub:?}"
        ));
    }
    Ok(())
}

/// The four public-cloud wildcards a service-principal node's answer carries.
const SP_KEYS: [&str; 5] = [
    "*.azurecr.io",
    "*.azurecr.cn",
    "*.azurecr.de",
    "*.azurecr.us",
    ANONYMOUS,
];

fn sp_node(ctx: &mut Ctx) -> RowResult {
    let row = ctx.row("sp", &sp_json("AzurePublicCloud"), &Shape::default(), &[])?;
    let before = ctx.w.emu.counters().total();
    let out = row.run(
        ctx,
        &[],
        &[
            Lookup::static_pod(&image(REGISTRY)),
            Lookup::static_pod(&format!("{REGISTRY}/app/other:2")),
        ],
    )?;
    let [first, cached] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    let requests = ctx.w.emu.counters().total() - before;
    if requests != 0 {
        return Err(format!(
            "a service-principal node's answer needs no network; the provider made {requests} requests"
        ));
    }
    runs(first, 1)?;
    let secret = Pw::Secret(SP_SECRET.into());
    answer(
        first,
        V1,
        &SP_KEYS,
        REGISTRY,
        SP,
        &secret,
        ACR_CACHE_DURATION,
    )?;
    credentials(first, REGISTRY, &[(SP, secret.clone()), ("", Pw::Empty)])?;
    pulls_with(ctx, &image(REGISTRY), &first.credentials, 0)?;
    runs(cached, 0)
}

/// A registry with anonymous pull on which the node's identity has no role: the identity's
/// credentials are refused, and the kubelet's next candidate, the empty `*.azurecr.*` entry,
/// pulls anonymously. Without anonymous pull, nothing pulls.
fn anonymous_pull(ctx: &mut Ctx) -> RowResult {
    let row = ctx.row(
        "anonymous",
        &sp_json("AzurePublicCloud"),
        &Shape::default(),
        &[],
    )?;
    let out = row.run(ctx, &[], &[Lookup::static_pod(&image(REGISTRY2))])?;
    let [lookup] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(lookup, 1)?;
    let secret = Pw::Secret(SP_SECRET.into());
    answer(
        lookup,
        V1,
        &SP_KEYS,
        REGISTRY2,
        SP,
        &secret,
        ACR_CACHE_DURATION,
    )?;
    credentials(lookup, REGISTRY2, &[(SP, secret), ("", Pw::Empty)])?;
    pulls_with(ctx, &image(REGISTRY2), &lookup.credentials, 1)?;
    // The identity's credentials alone are refused: the empty entry is what makes it work.
    if pull(ctx, &image(REGISTRY2), &lookup.credentials[0]).is_ok() {
        return Err("the registry let the service principal without a role pull".into());
    }
    ctx.w.emu.set_anonymous_pull(REGISTRY2, false);
    let refused = pull(ctx, &image(REGISTRY2), &lookup.credentials[1]);
    ctx.w.emu.set_anonymous_pull(REGISTRY2, true);
    match refused {
        Ok(()) => Err("an anonymous pull worked without anonymous pull enabled".into()),
        Err(_) => Ok(()),
    }
}

fn mirrored_mcr(ctx: &mut Ctx) -> RowResult {
    let shape = Shape {
        bootstrap_registry: Some(REGISTRY),
        ..Shape::default()
    };
    let row = ctx.row("mirror", &mi_json(), &shape, &[])?;
    let out = row.run(
        ctx,
        &[],
        &[
            Lookup::static_pod(MCR_IMAGE),
            Lookup::static_pod("mcr.microsoft.com/app/other:2"),
        ],
    )?;
    let [first, cached] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(first, 1)?;
    let mi = Pw::Token(ctx.system_mi.clone());
    answer(
        first,
        V1,
        &["mcr.microsoft.com", REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &mi,
        ACR_CACHE_DURATION,
    )?;
    // Only the MCR key matches an MCR image.
    credentials(first, REGISTRY, &[(ACR_USER, mi)])?;
    // The node pulls MCR images from the mirror with them.
    pulls_with(ctx, &image(REGISTRY), &first.credentials, 0)?;
    runs(cached, 0)
}

fn identity_bindings(ctx: &mut Ctx) -> RowResult {
    let shape = Shape {
        identity_bindings: true,
        ..Shape::default()
    };
    let row = ctx.row("ib", &mi_json(), &shape, &[])?;
    let web = ctx.service_account(
        "web",
        IDENTITY_BINDING_AUDIENCE,
        &[(CLIENT_ID_ANNOTATION, IB_APP)],
    );
    let batch = ctx.service_account("batch", IDENTITY_BINDING_AUDIENCE, &[]);
    let web_token = web.tokens[IDENTITY_BINDING_AUDIENCE].clone();
    let before = ctx.authority.requests();
    let reg = image(REGISTRY);
    let out = row.run(
        ctx,
        &[web.clone(), batch],
        &[
            Lookup::for_pod(
                &reg,
                "shop",
                "web-1",
                "00000000-0000-4000-8000-0000000000f1",
                "web",
            ),
            // Another pod of the same service account: cacheType ServiceAccount, cached.
            Lookup::for_pod(
                &reg,
                "shop",
                "web-2",
                "00000000-0000-4000-8000-0000000000f2",
                "web",
            ),
            Lookup::for_pod(
                &reg,
                "shop",
                "batch-1",
                "00000000-0000-4000-8000-0000000000f3",
                "batch",
            ),
        ],
    )?;
    let [first, second, unannotated] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(first, 1)?;
    token_request(first, &web, "web-1")?;
    let exec = only_exec(first)?;
    let request: Value = serde_json::from_str(&exec.stdin).map_err(|e| e.to_string())?;
    let want = json!({
        "kind": "CredentialProviderRequest",
        "apiVersion": V1,
        "image": reg,
        "serviceAccountToken": web_token,
        // Only the annotation the config names (line 1820).
        "serviceAccountAnnotations": {CLIENT_ID_ANNOTATION: IB_APP},
    });
    if request != want {
        return Err(format!("the kubelet sent {request}"));
    }
    let ib = Pw::Token(IB_APP.into());
    answer(
        first,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &ib,
        ACR_CACHE_DURATION,
    )?;
    credentials(first, REGISTRY, &[(ACR_USER, ib.clone()), ("", Pw::Empty)])?;
    for c in &first.credentials {
        let sa = c.source.as_ref().and_then(|s| s.service_account.as_ref());
        if sa.map(|s| (s.namespace.as_str(), s.name.as_str(), s.uid.as_str()))
            != Some(("shop", "web", web.uid.as_str()))
        {
            return Err(format!("credential source {:?}", c.source));
        }
    }
    pulls_with(ctx, &reg, &first.credentials, 0)?;
    runs(second, 0)?;
    // The kubelet asks for a token for every pod, even when its cache answers.
    token_request(second, &web, "web-2")?;
    runs(unannotated, 1)?;
    let default = Pw::Token(IB_DEFAULT.into());
    answer(
        unannotated,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &default,
        ACR_CACHE_DURATION,
    )?;
    let asked = ctx.authority.requests() - before;
    if asked != 2 {
        return Err(format!(
            "the local authority was asked {asked} times, not 2"
        ));
    }
    Ok(())
}

fn custom_cloud_sp(ctx: &mut Ctx) -> RowResult {
    let shape = Shape {
        custom_suffix: Some(CUSTOM_SUFFIX),
        ..Shape::default()
    };
    let env = [("AZURE_ENVIRONMENT_FILEPATH", ctx.env_file.clone())];
    let row = ctx.row("custom-sp", &sp_json("AzureStackCloud"), &shape, &env)?;
    let before = ctx.w.emu.counters().total();
    let out = row.run(ctx, &[], &[Lookup::static_pod(&image(CUSTOM))])?;
    let [lookup] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    let requests = ctx.w.emu.counters().total() - before;
    if requests != 0 {
        return Err(format!("no network expected, {requests} requests"));
    }
    runs(lookup, 1)?;
    let custom_key = format!("*{CUSTOM_SUFFIX}");
    let mut keys = SP_KEYS.to_vec();
    keys.push(&custom_key);
    let secret = Pw::Secret(SP_SECRET.into());
    answer(lookup, V1, &keys, CUSTOM, SP, &secret, ACR_CACHE_DURATION)?;
    // "*.azurecr.*" has three labels: it does not match the custom cloud's four.
    credentials(lookup, CUSTOM, &[(SP, secret)])?;
    pulls_with(ctx, &image(CUSTOM), &lookup.credentials, 0)
}

/// The custom cloud's config on a node whose kubelet lacks the environment file: the image
/// matches the config but is no ACR image for the plugin, which answers `auth: {}` with
/// `cacheDuration: 0s`, so the kubelet does not keep the empty answer and runs the plugin again.
fn not_acr(ctx: &mut Ctx) -> RowResult {
    let shape = Shape {
        custom_suffix: Some(CUSTOM_SUFFIX),
        ..Shape::default()
    };
    let row = ctx.row("not-acr", &mi_json(), &shape, &[])?;
    let out = row.run(
        ctx,
        &[],
        &[
            Lookup::static_pod(&image(CUSTOM)),
            Lookup::static_pod(&image(CUSTOM)),
        ],
    )?;
    for lookup in &out {
        runs(lookup, 1)?;
        let exec = only_exec(lookup)?;
        let v = response(exec)?;
        let want = json!({
            "apiVersion": V1,
            "kind": "CredentialProviderResponse",
            "cacheKeyType": "Registry",
            "cacheDuration": "0s",
            "auth": {},
        });
        if v != want {
            return Err(format!("expected {want}, got {v}"));
        }
        if lookup.found || !lookup.credentials.is_empty() {
            return Err(format!("credentials: {:?}", lookup.credentials));
        }
    }
    Ok(())
}

fn v1beta1(ctx: &mut Ctx) -> RowResult {
    let shape = Shape {
        api_version: V1BETA1,
        ..Shape::default()
    };
    let row = ctx.row("v1beta1", &mi_json(), &shape, &[])?;
    let out = row.run(ctx, &[], &[Lookup::static_pod(&image(REGISTRY))])?;
    let [lookup] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(lookup, 1)?;
    let request: Value =
        serde_json::from_str(&only_exec(lookup)?.stdin).map_err(|e| e.to_string())?;
    if request["apiVersion"] != V1BETA1 {
        return Err(format!("the kubelet sent {request}"));
    }
    let mi = Pw::Token(ctx.system_mi.clone());
    answer(
        lookup,
        V1BETA1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &mi,
        ACR_CACHE_DURATION,
    )?;
    credentials(lookup, REGISTRY, &[(ACR_USER, mi), ("", Pw::Empty)])?;
    pulls_with(ctx, &image(REGISTRY), &lookup.credentials, 0)
}

/// `packaging/credential-provider-config.yaml` and `-per-pod.yaml` as shipped, with the row's
/// azure.json for `/etc/kubernetes/azure.json`.
fn shipped_configs(ctx: &mut Ctx) -> RowResult {
    let mi = Pw::Token(ctx.system_mi.clone());
    // The node config.
    let row = ctx.shipped_row("shipped", "credential-provider-config.yaml", &[])?;
    let out = row.run(ctx, &[], &[Lookup::static_pod(&image(REGISTRY))])?;
    let [lookup] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(lookup, 1)?;
    answer(
        lookup,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &mi,
        ACR_CACHE_DURATION,
    )?;
    pulls_with(ctx, &image(REGISTRY), &lookup.credentials, 0)?;

    // Per-pod identities: a federated service account, and a static pod (the node identity).
    let row = ctx.shipped_row(
        "shipped-per-pod",
        "credential-provider-config-per-pod.yaml",
        &[],
    )?;
    let web = ctx.service_account(
        "web",
        FEDERATION_AUDIENCE,
        &[
            (CLIENT_ID_ANNOTATION, POD_APP),
            (TENANT_ID_ANNOTATION, TENANT),
        ],
    );
    let reg = image(REGISTRY);
    let out = row.run(
        ctx,
        std::slice::from_ref(&web),
        &[
            Lookup::for_pod(
                &reg,
                "shop",
                "web-1",
                "00000000-0000-4000-8000-0000000000e1",
                "web",
            ),
            Lookup::static_pod(&reg),
        ],
    )?;
    let [pod, node] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(pod, 1)?;
    token_request(pod, &web, "web-1")?;
    let pod_pw = Pw::Token(POD_APP.into());
    answer(
        pod,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &pod_pw,
        ACR_CACHE_DURATION,
    )?;
    pulls_with(ctx, &reg, &pod.credentials, 0)?;
    // The static pod's cache key has no service account: the plugin runs, as the node.
    runs(node, 1)?;
    answer(
        node,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &mi,
        ACR_CACHE_DURATION,
    )
}

/// `packaging/credential-provider-config-identity-bindings.yaml` with the example `--ib-*`
/// values replaced by the cluster's (as its comment says), and `--ib-ca-file`.
fn shipped_identity_bindings(ctx: &mut Ctx) -> RowResult {
    let ca = ctx.authority.ca_pem_path().display().to_string();
    let row = ctx.shipped_row(
        "shipped-ib",
        "credential-provider-config-identity-bindings.yaml",
        &[
            (
                "--ib-sni-name=local-authority.mycluster.example",
                format!("--ib-sni-name={SNI}"),
            ),
            (
                "--ib-default-client-id=00000000-0000-0000-0000-000000000000",
                format!("--ib-default-client-id={IB_DEFAULT}"),
            ),
            (
                "--ib-default-tenant-id=00000000-0000-0000-0000-000000000000",
                format!("--ib-default-tenant-id={TENANT}"),
            ),
            (
                "--ib-apiserver-ip=mycluster-dns-00000000.hcp.westeurope.azmk8s.io",
                format!("--ib-apiserver-ip={APISERVER}\n      - --ib-ca-file={ca}"),
            ),
        ],
    )?;
    let batch = ctx.service_account("batch", IDENTITY_BINDING_AUDIENCE, &[]);
    let reg = image(REGISTRY);
    let out = row.run(
        ctx,
        std::slice::from_ref(&batch),
        &[
            Lookup::for_pod(
                &reg,
                "shop",
                "batch-1",
                "00000000-0000-4000-8000-0000000000d1",
                "batch",
            ),
            // A static pod: no token; AKS's plugin fails, and so does ours without
            // --fallback-to-node-identity.
            Lookup::static_pod(&reg),
        ],
    )?;
    let [lookup, static_pod] = &out[..] else {
        return Err(format!("{} lookups", out.len()));
    };
    runs(lookup, 1)?;
    token_request(lookup, &batch, "batch-1")?;
    let default = Pw::Token(IB_DEFAULT.into());
    answer(
        lookup,
        V1,
        &[REGISTRY, ANONYMOUS],
        REGISTRY,
        ACR_USER,
        &default,
        ACR_CACHE_DURATION,
    )?;
    pulls_with(ctx, &reg, &lookup.credentials, 0)?;
    fails(static_pod, "--fallback-to-node-identity")
}

// ---------------------------------------------------------------------------------------------
// Running a row.

/// One row's files: config, azure.json, plugin bin dir, provider cache, environment.
struct RowFiles {
    name: String,
    config: PathBuf,
    bin_dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Ctx {
    /// Writes the row's azure.json and AgentBaker config, its bin dir (the workspace's provider
    /// under the plugin's name) and environment (the world's, a cache folder of the row's, and
    /// `extra`: the kubelet's environment, which it passes on to the plugin).
    fn row(
        &self,
        name: &str,
        azure_json: &str,
        shape: &Shape,
        extra: &[(&str, String)],
    ) -> Result<RowFiles, String> {
        let azure = self
            .w
            .write_file(&format!("{name}/azure.json"), azure_json, 0o600)
            .map_err(|e| e.to_string())?;
        let config = agentbaker_config(shape, &azure, self.authority.ca_pem_path());
        self.files(name, &config, extra)
    }

    /// A shipped config, with `/etc/kubernetes/azure.json` → the row's MI azure.json and each
    /// (from, to) replaced; each `from` must be in the file.
    fn shipped_row(
        &self,
        name: &str,
        file: &str,
        replace: &[(&str, String)],
    ) -> Result<RowFiles, String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging")
            .join(file);
        let mut text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let azure = self
            .w
            .write_file(&format!("{name}/azure.json"), &mi_json(), 0o600)
            .map_err(|e| e.to_string())?;
        let mut all = vec![("/etc/kubernetes/azure.json", azure.display().to_string())];
        all.extend(replace.iter().map(|(f, t)| (*f, t.clone())));
        for (from, to) in all {
            if !text.contains(from) {
                return Err(format!("{file} no longer holds {from:?}"));
            }
            text = text.replace(from, &to);
        }
        self.files(name, &text, &[])
    }

    fn files(
        &self,
        name: &str,
        config: &str,
        extra: &[(&str, String)],
    ) -> Result<RowFiles, String> {
        let e = |e: Box<dyn std::error::Error>| e.to_string();
        let config_path = self
            .w
            .write_file(
                &format!("{name}/credential-provider-config.yaml"),
                config,
                0o644,
            )
            .map_err(e)?;
        let bin_dir = self.w.path(&format!("{name}/credential-provider"));
        std::fs::create_dir_all(&bin_dir).map_err(|e| e.to_string())?;
        acr_tests::sandbox::install_bin(&self.provider, &bin_dir.join("acr-credential-provider"))
            .map_err(|e| e.to_string())?;
        let mut env = self.w.env.clone();
        let path = |rel: &str| self.w.path(&format!("{name}/{rel}")).display().to_string();
        env.insert("ACR_CACHE_DIR".into(), path("cache"));
        env.insert("TMPDIR".into(), path(""));
        for (k, v) in extra {
            env.insert((*k).to_owned(), v.clone());
        }
        Ok(RowFiles {
            name: name.to_owned(),
            config: config_path,
            bin_dir,
            env,
        })
    }

    /// A service account `shop/<name>` with `annotations` and a token for `audience`.
    fn service_account(
        &mut self,
        name: &str,
        audience: &str,
        annotations: &[(&str, &str)],
    ) -> ServiceAccount {
        let token = self.w.emu.mint_service_account_token(
            ISSUER,
            &format!("system:serviceaccount:shop:{name}"),
            audience,
            Duration::from_secs(3600),
        );
        self.pod_tokens.push(token.clone());
        ServiceAccount {
            namespace: "shop".into(),
            name: name.into(),
            uid: format!("{name}-0000-4000-8000-000000000001"),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            tokens: [(audience.to_owned(), token)].into(),
        }
    }
}

impl RowFiles {
    /// Runs the harness: the kubelet's loader must take the config, every lookup's plugin runs
    /// must equal the recorded executions, and nothing may leak (see [`no_leak`]).
    fn run(
        &self,
        ctx: &Ctx,
        accounts: &[ServiceAccount],
        lookups: &[Lookup],
    ) -> Result<Vec<LookupResult>, String> {
        let plan = Plan {
            config: self.config.clone(),
            bin_dir: self.bin_dir.clone(),
            record: true,
            service_accounts: accounts.to_vec(),
            lookups: lookups.to_vec(),
            ..Plan::default()
        };
        let run = kubelet::run(&ctx.harness, &plan, &self.env).map_err(|e| e.to_string())?;
        no_leak(ctx, "the kubelet's log", &run.stderr, &BTreeSet::new())?;
        let Some(output) = run.output else {
            return Err(format!(
                "the harness failed ({}): {}",
                self.name, run.stderr
            ));
        };
        // Secrets: the plugin logs none; the kubelet's request holds the pod's token and no other;
        // the answers hold only their own passwords (each row checks what they are), never a pod
        // token; the kubelet hands out only passwords the plugin answered.
        let pod_tokens: BTreeSet<String> = ctx.pod_tokens.iter().cloned().collect();
        let mut answered = BTreeSet::new();
        for l in &output.lookups {
            for e in &l.execs {
                no_leak(ctx, "the plugin's stderr", &e.stderr, &BTreeSet::new())?;
                no_leak(ctx, "the kubelet's request", &e.stdin, &pod_tokens)?;
                let passwords = serde_json::from_str::<Value>(&e.stdout)
                    .ok()
                    .and_then(|v| v["auth"].as_object().cloned())
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, entry)| entry["password"].as_str().map(str::to_owned))
                    .filter(|p| !pod_tokens.contains(p));
                answered.extend(passwords);
                no_leak(ctx, "the plugin's answer", &e.stdout, &answered)?;
            }
            if let Some(c) = l
                .credentials
                .iter()
                .find(|c| !answered.contains(&c.password))
            {
                return Err(format!(
                    "{}: the kubelet hands out a password no answer held (user {:?})",
                    l.image, c.username
                ));
            }
            if l.plugin_runs != l.execs.len() as u64 {
                return Err(format!(
                    "{}: the kubelet's metric counts {} runs, the shim saw {}",
                    l.image,
                    l.plugin_runs,
                    l.execs.len()
                ));
            }
        }
        Ok(output.lookups)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// What a password must be.
#[derive(Clone, Debug)]
enum Pw {
    /// An ACR refresh token issued to this client id.
    Token(String),
    /// Exactly this secret.
    Secret(String),
    /// Empty.
    Empty,
}

fn check_password(pw: &Pw, password: &str, registry: &str) -> RowResult {
    match pw {
        Pw::Empty if password.is_empty() => Ok(()),
        Pw::Secret(s) if password == s => Ok(()),
        Pw::Token(appid) => {
            let c = claims(password);
            if c["iss"] == "Azure Container Registry"
                && c["aud"] == registry
                && c["appid"] == *appid
            {
                Ok(())
            } else {
                Err(format!(
                    "not an ACR refresh token of {appid} for {registry}: {c}"
                ))
            }
        }
        _ => Err(format!("password is not {pw:?}")),
    }
}

/// The kubelet ran the plugin `want` times for the lookup (0: its cache answered), and no run
/// failed.
fn runs(lookup: &LookupResult, want: u64) -> RowResult {
    if lookup.plugin_errors != 0.0 {
        let logs: Vec<&str> = lookup.execs.iter().map(|e| e.stderr.as_str()).collect();
        return Err(format!("{}: the plugin failed: {logs:?}", lookup.image));
    }
    if lookup.plugin_runs == want {
        Ok(())
    } else {
        Err(format!(
            "{}: the kubelet ran the plugin {} times, expected {want} ({})",
            lookup.image,
            lookup.plugin_runs,
            if want == 0 {
                "its cache should answer"
            } else {
                "its cache should not answer"
            }
        ))
    }
}

/// The kubelet ran the plugin once, it failed with one line containing `want`, and the kubelet
/// hands the runtime nothing (the pull goes on without credentials).
fn fails(lookup: &LookupResult, want: &str) -> RowResult {
    let exec = only_exec(lookup)?;
    let lines: Vec<&str> = exec.stderr.lines().collect();
    if lookup.plugin_errors != 1.0
        || exec.exit_code == 0
        || !exec.stdout.is_empty()
        || lines.len() != 1
        || !lines[0].contains(want)
    {
        return Err(format!(
            "{}: expected one failure naming {want:?}, got exit {} and {:?}",
            lookup.image, exec.exit_code, exec.stderr
        ));
    }
    if lookup.found || !lookup.credentials.is_empty() {
        return Err(format!("{}: credentials after a failure", lookup.image));
    }
    Ok(())
}

fn only_exec(lookup: &LookupResult) -> Result<&Exec, String> {
    match &lookup.execs[..] {
        [exec] => Ok(exec),
        other => Err(format!(
            "{}: {} plugin executions",
            lookup.image,
            other.len()
        )),
    }
}

fn response(exec: &Exec) -> Result<Value, String> {
    if exec.exit_code != 0 {
        return Err(format!(
            "the plugin exited {}: {}",
            exec.exit_code, exec.stderr
        ));
    }
    serde_json::from_str(&exec.stdout).map_err(|e| format!("{e}: {}", exec.stdout))
}

/// The plugin's answer: `api_version`, `cacheKeyType: Registry`, `cache_duration`, `auth` with
/// exactly `keys`, each `username`/`pw` (for `registry`) but `*.azurecr.*`, which is empty.
fn answer(
    lookup: &LookupResult,
    api_version: &str,
    keys: &[&str],
    registry: &str,
    username: &str,
    pw: &Pw,
    cache_duration: &str,
) -> RowResult {
    let v = response(only_exec(lookup)?)?;
    let shown = redacted(&v);
    let context = |what: String| format!("{}: {what}\nanswer: {shown}", lookup.image);
    if v["apiVersion"] != api_version || v["kind"] != "CredentialProviderResponse" {
        return Err(context(format!("apiVersion/kind, expected {api_version}")));
    }
    if v["cacheKeyType"] != "Registry" {
        return Err(context("cacheKeyType is not Registry".into()));
    }
    if v["cacheDuration"] != cache_duration {
        return Err(context(format!("cacheDuration is not {cache_duration}")));
    }
    let auth = v["auth"]
        .as_object()
        .ok_or_else(|| context("no auth".into()))?;
    let got: BTreeSet<&str> = auth.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = keys.iter().copied().collect();
    if got != want {
        return Err(context(format!("auth keys {got:?}, expected {want:?}")));
    }
    for (key, entry) in auth {
        let (u, p) = (
            entry["username"].as_str().unwrap_or("?"),
            entry["password"].as_str().unwrap_or("?"),
        );
        let (want_user, want_pw) = if key == ANONYMOUS {
            ("", &Pw::Empty)
        } else {
            (username, pw)
        };
        if u != want_user {
            return Err(context(format!(
                "{key}: username {u:?}, expected {want_user:?}"
            )));
        }
        check_password(want_pw, p, registry).map_err(|e| context(format!("{key}: {e}")))?;
    }
    Ok(())
}

/// The credentials the kubelet hands the runtime, in order.
fn credentials(lookup: &LookupResult, registry: &str, want: &[(&str, Pw)]) -> RowResult {
    let got = &lookup.credentials;
    let shown: Vec<&str> = got.iter().map(|c| c.username.as_str()).collect();
    if !lookup.found || got.len() != want.len() {
        return Err(format!(
            "{}: the kubelet hands out {} credentials {shown:?}, expected {}",
            lookup.image,
            got.len(),
            want.len()
        ));
    }
    for (i, (c, (user, pw))) in got.iter().zip(want).enumerate() {
        if c.username != *user {
            return Err(format!("{}: credential {i} is {shown:?}", lookup.image));
        }
        check_password(pw, &c.password, registry).map_err(|e| format!("credential {i}: {e}"))?;
    }
    Ok(())
}

/// The kubelet asked for exactly one token: for `sa`, the config's audience, bound to the pod.
fn token_request(lookup: &LookupResult, sa: &ServiceAccount, pod: &str) -> RowResult {
    match &lookup.token_requests[..] {
        [t] if t.namespace == sa.namespace
            && t.service_account == sa.name
            && t.service_account_uid == sa.uid
            && t.audiences.iter().eq(sa.tokens.keys())
            && t.bound_kind == "Pod"
            && t.bound_name == pod
            && t.served =>
        {
            Ok(())
        }
        other => Err(format!("{}: token requests {other:?}", lookup.image)),
    }
}

/// Pulls `reference` as the kubelet's puller does: each credential in order until one works;
/// the one that works must be the `want`th.
fn pulls_with(ctx: &Ctx, reference: &str, creds: &[Credential], want: usize) -> RowResult {
    let mut errors = Vec::new();
    for (i, c) in creds.iter().enumerate() {
        match pull(ctx, reference, c) {
            Ok(()) if i == want => return Ok(()),
            Ok(()) => {
                return Err(format!(
                    "{reference}: credential {i} pulled, expected {want}"
                ));
            }
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "{reference}: no credential pulled:\n{}",
        errors.join("\n")
    ))
}

/// One pull attempt with one credential (empty: anonymous); checks the digest.
fn pull(ctx: &Ctx, reference: &str, c: &Credential) -> RowResult {
    let dest = ctx
        .w
        .path(&format!("pulls/{}", pull_dir_name(reference, c)));
    std::fs::create_dir_all(ctx.w.path("pulls")).map_err(|e| e.to_string())?;
    let pair = format!("{}:{}", c.username, c.password);
    let creds: Vec<&str> = if c.username.is_empty() && c.password.is_empty() {
        vec!["--src-no-creds"]
    } else {
        vec!["--src-creds", &pair]
    };
    let src = format!("docker://{reference}");
    let dst = format!("oci:{}:pulled", dest.display());
    let mut args = vec!["copy"];
    args.extend(creds);
    args.extend([src.as_str(), dst.as_str()]);
    let out = ctx.w.skopeo(&args).map_err(|e| e.to_string())?;
    let digest = out
        .status
        .success()
        .then(|| oci::layout_digest(&dest, "pulled"));
    let _ = std::fs::remove_dir_all(&dest);
    match digest {
        None => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Some(Ok(d)) if d == ctx.digest => Ok(()),
        Some(other) => Err(format!("pulled {other:?}, expected {}", ctx.digest)),
    }
}

fn pull_dir_name(reference: &str, c: &Credential) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (reference, &c.username, &c.password).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// No secret of the emulator's (client secrets, tokens it signed) and no pod token in `text`,
/// but the `allowed` ones.
fn no_leak(ctx: &Ctx, what: &str, text: &str, allowed: &BTreeSet<String>) -> RowResult {
    let mut secrets = ctx.w.emu.secrets();
    secrets.extend(ctx.pod_tokens.iter().cloned());
    for s in secrets {
        if !allowed.contains(&s) && text.contains(&s) {
            return Err(format!("{what} holds a secret"));
        }
    }
    Ok(())
}

/// An answer with each password replaced by what it is, for messages.
fn redacted(answer: &Value) -> Value {
    let mut v = answer.clone();
    if let Some(auth) = v["auth"].as_object_mut() {
        for entry in auth.values_mut() {
            let p = entry["password"].as_str().unwrap_or_default();
            let c = claims(p);
            entry["password"] = if p.is_empty() {
                json!("")
            } else if c.is_null() {
                json!(format!("<{} characters>", p.len()))
            } else {
                json!(format!("<token of {} for {}>", c["appid"], c["aud"]))
            };
        }
    }
    v
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// The world.

fn add_hosts(lines: &[(&str, &str)]) -> TestResult {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open("/etc/hosts")?;
    for (address, name) in lines {
        writeln!(f, "{address} {name}")?;
    }
    Ok(())
}

/// Pushes one image to each registry with a pusher identity through the docker helper; returns
/// its digest.
fn seed(w: &mut World) -> Result<String, Box<dyn std::error::Error>> {
    let pusher = w.emu.add_secret_principal(
        TENANT,
        "99999999-0000-4000-8000-0000000000c9",
        "kubelet-pusher-secret",
    );
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &pusher.client_id);
    w.set("AZURE_CLIENT_SECRET", "kubelet-pusher-secret");
    w.set("ACR_LOGIN_SERVERS", CUSTOM);
    let layout = w.path("image");
    let made = oci::write_layout(&layout, "1", b"kubelet harness\n")?;
    for registry in [REGISTRY, REGISTRY2, CUSTOM] {
        w.emu.grant(&pusher.client_id, registry, Role::AcrPush);
        assert_eq!(
            w.push(&layout, "1", &image(registry))?,
            made.manifest_digest
        );
    }
    for k in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "ACR_LOGIN_SERVERS",
    ] {
        w.env.remove(k);
    }
    Ok(made.manifest_digest)
}
