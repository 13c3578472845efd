//! Drop-in compatibility with the AKS plugin, configuration by configuration.
//!
//! One table: each row runs the real `acr-credential-provider` with the arguments AKS's node
//! bootstrap (AgentBaker) writes into the kubelet's `CredentialProviderConfig` (positional
//! `/etc/kubernetes/azure.json`, `--registry-mirror`, the `--ib-*` flags), an azure.json of the
//! shape AKS writes, and the request the kubelet sends. Where a pull should work, the real `skopeo`
//! pulls with the answer's username and password from the real registry behind the emulator;
//! where the AKS plugin's pull fails too, the registry refuses or the provider fails with one
//! line naming the cause. No row's output holds a secret it should not.
//!
//! The only argument AgentBaker does not write is `--ib-ca-file`: the cluster CA lives at
//! `/etc/kubernetes/certs/ca.crt` on AKS (the default), which a test cannot create on the host.

use acr_tests::e2e::{self, REGISTRY, REGISTRY2, SERVICE_ADDRESS, TENANT, World, oci};
use acr_tests::emulator::{IDENTITY_BINDING_AUDIENCE, IdentityBindingAuthority, Role};
use acr_tests::sandbox::workspace_bin;
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A registry in a custom cloud (AzureStackCloud) whose environment file names its domain.
const CUSTOM: &str = "myregistry.azurecr.contoso.example";
const CUSTOM_AUTHORITY: &str = "login.contoso.example";
/// The tenant that owns REGISTRY2 (the cross-tenant case).
const OTHER_TENANT: &str = "0b0b0b0b-0000-4000-8000-0000000000b2";
const ISSUER: &str = "https://oidc.cluster.example/compat/";
const SNI: &str = "ib.compat.example";
const APISERVER: &str = "mycluster-dns-1234.hcp.compat.example";
const ANONYMOUS: &str = "*.azurecr.*";
const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";

const SP: &str = "11111111-0000-4000-8000-000000000001";
const SP_SECRET: &str = "node-sp-secret-1";
const SP_NO_ROLE: &str = "11111111-0000-4000-8000-000000000002";
const SP_NO_ROLE_SECRET: &str = "node-sp-secret-2";
const UAMI: &str = "22222222-0000-4000-8000-000000000001";
const UAMI_BY_RESOURCE: &str = "22222222-0000-4000-8000-000000000002";
const UAMI_RESOURCE_ID: &str = "/subscriptions/3333/resourceGroups/MC_rg_compat_westeurope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/compat-agentpool";
const UAMI_NO_ROLE: &str = "22222222-0000-4000-8000-000000000003";
const POD_APP: &str = "44444444-0000-4000-8000-000000000001";
const IB_APP: &str = "55555555-0000-4000-8000-000000000001";
const IB_DEFAULT: &str = "55555555-0000-4000-8000-000000000002";

/// What a row expects.
enum Expect {
    /// The answer for `registry` lets skopeo pull: a token issued to `appid` (the ACR username),
    /// or, with `basic`, the service principal's own id and secret. The answer's `auth` keys are
    /// exactly `keys` and `*.azurecr.*`, each with the same credential; `key` is the one the
    /// kubelet would match for the image.
    Pull {
        registry: &'static str,
        key: &'static str,
        keys: Vec<&'static str>,
        appid: Appid,
        basic: bool,
    },
    /// The provider answers the service principal's own id and secret (under the AKS plugin's
    /// keys) and the registry refuses them with 401 (the AKS plugin's pull fails too).
    Refused {
        registry: &'static str,
        client_id: &'static str,
        secret: &'static str,
    },
    /// An answer with no credentials at all (not an ACR image for this node), kept 0s.
    NoAuth,
    /// Exit 1 with one line on stderr containing each of these, nothing on stdout.
    Fails(&'static [&'static str]),
}

/// The keys a service-principal node answers, as the AKS plugin (cloud-provider-azure v1.35.3
/// pkg/credentialprovider/azure_credentials.go:49, :230-256).
const SP_KEYS: [&str; 4] = [
    "*.azurecr.cn",
    "*.azurecr.de",
    "*.azurecr.io",
    "*.azurecr.us",
];

/// Whose token the password must be.
#[derive(Clone, Copy)]
enum Appid {
    Client(&'static str),
    SystemAssigned,
}

/// One configuration.
struct Row {
    name: &'static str,
    /// azure.json content (JSON or YAML), as AKS writes it.
    azure_json: String,
    /// Arguments after azure.json, as in the CredentialProviderConfig.
    args: Vec<String>,
    /// Extra environment of the kubelet.
    env: Vec<(&'static str, String)>,
    image: String,
    /// A service-account token for (subject, audience), and the annotations.
    pod: Option<(&'static str, &'static str)>,
    annotations: Vec<(&'static str, &'static str)>,
    expect: Expect,
    /// Requests the identity bindings authority gets for this row.
    authority_requests: usize,
}

fn mi_json(user_assigned: &str) -> String {
    json!({
        "cloud": "AzurePublicCloud",
        "tenantId": TENANT,
        "subscriptionId": "3333",
        "aadClientId": "msi",
        "aadClientSecret": "msi",
        "resourceGroup": "MC_rg_compat_westeurope",
        "location": "westeurope",
        "vmType": "vmss",
        "useManagedIdentityExtension": true,
        "userAssignedIdentityID": user_assigned,
        "useInstanceMetadata": true,
    })
    .to_string()
}

fn sp_json(cloud: &str, client: &str, secret: &str) -> String {
    json!({
        "cloud": cloud,
        "tenantId": TENANT,
        "subscriptionId": "3333",
        "aadClientId": client,
        "aadClientSecret": secret,
        "resourceGroup": "MC_rg_compat_westeurope",
        "useManagedIdentityExtension": false,
        "userAssignedIdentityID": "",
        "useInstanceMetadata": true,
    })
    .to_string()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn image(registry: &str) -> String {
    format!("{registry}/app/hello:1")
}

/// Appends `address name` lines to the world's hosts file (bind-mounted on /etc/hosts).
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
        "99999999-0000-4000-8000-0000000000ff",
        "pusher-secret-1",
    );
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &pusher.client_id);
    w.set("AZURE_CLIENT_SECRET", "pusher-secret-1");
    w.set("ACR_LOGIN_SERVERS", CUSTOM);
    let layout = w.path("image");
    let made = oci::write_layout(&layout, "1", b"aks compat\n")?;
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

/// The registry's verdict on `username:password` for the seeded image: its digest, or `None`.
fn inspect_with(
    w: &World,
    reference: &str,
    username: &str,
    password: &str,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let pair = format!("{username}:{password}");
    let out = w.skopeo(&[
        "inspect",
        "--creds",
        &pair,
        &format!("docker://{reference}"),
    ])?;
    if !out.status.success() {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["Digest"].as_str().map(str::to_owned))
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

#[test]
fn every_aks_node_configuration_works_unchanged() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY, REGISTRY2, CUSTOM])?;
    // The custom cloud's authority is the emulator too; the local authority is on ::1 (the
    // emulator holds port 443 of every IPv4 address), reached by the API server's name.
    add_hosts(&[(SERVICE_ADDRESS, CUSTOM_AUTHORITY), ("::1", APISERVER)])?;
    let digest = seed(&mut w)?;
    w.serve_imds()?;

    // Node identities.
    let system = w.emu.add_managed_identity(None);
    w.emu.grant(&system.client_id, REGISTRY, Role::AcrPull);
    w.emu.add_managed_identity(Some(UAMI));
    w.emu.grant(UAMI, REGISTRY, Role::AcrPull);
    w.emu
        .add_managed_identity_with_resource_id(UAMI_BY_RESOURCE, UAMI_RESOURCE_ID);
    w.emu.grant(UAMI_BY_RESOURCE, REGISTRY, Role::AcrPull);
    w.emu.add_managed_identity(Some(UAMI_NO_ROLE));
    w.emu.add_secret_principal(TENANT, SP, SP_SECRET);
    for registry in [REGISTRY, REGISTRY2, CUSTOM] {
        w.emu.grant(SP, registry, Role::AcrPull);
    }
    w.emu
        .add_secret_principal(TENANT, SP_NO_ROLE, SP_NO_ROLE_SECRET);
    // REGISTRY2 lives in another tenant: tokens of the nodes' tenant are refused there, but the
    // (multi-tenant) service principal holds AcrPull in it and ACR checks its id and secret.
    w.emu.set_registry_tenant(REGISTRY2, OTHER_TENANT);

    // Pod identities: KEP-4412 federation, and identity bindings.
    w.emu
        .add_federated_principal(TENANT, POD_APP, ISSUER, "system:serviceaccount:shop:web");
    w.emu.grant(POD_APP, REGISTRY, Role::AcrPull);
    let authority: IdentityBindingAuthority = w.emu.start_identity_binding_authority(
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
    let ib_ca = authority.ca_pem_path().to_string_lossy().into_owned();
    let emu_ca = w.emu.ca_pem_path().to_string_lossy().into_owned();

    // The custom cloud's environment file (AZURE_ENVIRONMENT_FILEPATH), as AKS writes it.
    let env_file = w.write_file(
        "akscustom.json",
        &json!({
            "name": "AzureStackCloud",
            "resourceManagerEndpoint": "https://management.contoso.example/",
            "activeDirectoryEndpoint": format!("https://{CUSTOM_AUTHORITY}/"),
            "containerRegistryDNSSuffix": ".azurecr.contoso.example",
        })
        .to_string(),
        0o644,
    )?;
    let env_file = env_file.to_string_lossy().into_owned();

    let ib_args = |sni: &str, ca: &str, default_client: bool| {
        let mut a = vec![format!("--ib-sni-name={sni}")];
        if default_client {
            a.push(format!("--ib-default-client-id={IB_DEFAULT}"));
        }
        a.push(format!("--ib-default-tenant-id={TENANT}"));
        a.push(format!("--ib-apiserver-ip={APISERVER}"));
        a.push(format!("--ib-ca-file={ca}"));
        a
    };
    let web = Some(("system:serviceaccount:shop:web", IDENTITY_BINDING_AUDIENCE));
    let batch = Some((
        "system:serviceaccount:shop:batch",
        IDENTITY_BINDING_AUDIENCE,
    ));
    let web_federated = Some((
        "system:serviceaccount:shop:web",
        "api://AzureADTokenExchange",
    ));
    let pull = |registry: &'static str, appid: Appid| Expect::Pull {
        registry,
        key: registry,
        keys: vec![registry],
        appid,
        basic: false,
    };
    // A service-principal node: its id and secret under the AKS plugin's patterns.
    let sp_pull = |registry: &'static str, key: &'static str, extra: Option<&'static str>| {
        let mut keys = SP_KEYS.to_vec();
        keys.extend(extra);
        Expect::Pull {
            registry,
            key,
            keys,
            appid: Appid::Client(SP),
            basic: true,
        }
    };
    // An MCR image mirrored to REGISTRY: its credentials, keyed by MCR and the mirror, for the
    // node identity.
    let mirrored = || Expect::Pull {
        registry: REGISTRY,
        key: "mcr.microsoft.com",
        keys: vec!["mcr.microsoft.com", REGISTRY],
        appid: Appid::SystemAssigned,
        basic: false,
    };
    let row = |name, azure_json: String, args: Vec<String>, image: String, expect| Row {
        name,
        azure_json,
        args,
        env: Vec::new(),
        image,
        pod: None,
        annotations: Vec::new(),
        expect,
        authority_requests: 0,
    };

    let rows = vec![
        row(
            "system-assigned managed identity",
            mi_json(""),
            vec![],
            image(REGISTRY),
            pull(REGISTRY, Appid::SystemAssigned),
        ),
        row(
            "user-assigned managed identity by client id, Kubernetes log flags",
            mi_json(UAMI),
            strings(&["-v=2", "--v=4", "--vmodule=x=2", "--log-flush-frequency=5s"]),
            image(REGISTRY),
            pull(REGISTRY, Appid::Client(UAMI)),
        ),
        row(
            "user-assigned managed identity by ARM resource id",
            mi_json(UAMI_RESOURCE_ID),
            vec![],
            image(REGISTRY),
            pull(REGISTRY, Appid::Client(UAMI_BY_RESOURCE)),
        ),
        row(
            "azure.json written as YAML",
            format!(
                "cloud: AzurePublicCloud\ntenantId: {TENANT}\naadClientId: msi\naadClientSecret: msi\nuseManagedIdentityExtension: true\nuserAssignedIdentityID: {UAMI}\n"
            ),
            vec![],
            image(REGISTRY),
            pull(REGISTRY, Appid::Client(UAMI)),
        ),
        row(
            "managed identity without AcrPull",
            mi_json(UAMI_NO_ROLE),
            vec![],
            image(REGISTRY),
            Expect::Fails(&["AcrPull"]),
        ),
        row(
            "service principal, registry in the node's tenant: its id and secret",
            sp_json("AzurePublicCloud", SP, SP_SECRET),
            vec![],
            image(REGISTRY),
            sp_pull(REGISTRY, "*.azurecr.io", None),
        ),
        Row {
            args: strings(&["--exchange-sp-secret"]),
            ..row(
                "service principal with --exchange-sp-secret: a derived token",
                sp_json("AzurePublicCloud", SP, SP_SECRET),
                vec![],
                image(REGISTRY),
                pull(REGISTRY, Appid::Client(SP)),
            )
        },
        row(
            "service principal, registry in another tenant: its id and secret",
            sp_json("AzurePublicCloud", SP, SP_SECRET),
            vec![],
            image(REGISTRY2),
            sp_pull(REGISTRY2, "*.azurecr.io", None),
        ),
        row(
            "service principal without a role in the other tenant",
            sp_json("AzurePublicCloud", SP_NO_ROLE, SP_NO_ROLE_SECRET),
            vec![],
            image(REGISTRY2),
            Expect::Refused {
                registry: REGISTRY2,
                client_id: SP_NO_ROLE,
                secret: SP_NO_ROLE_SECRET,
            },
        ),
        row(
            "network-isolated cluster: MCR mirrored to the bootstrap registry (-r)",
            mi_json(""),
            strings(&["-r", &format!("mcr.microsoft.com:{REGISTRY}")]),
            "mcr.microsoft.com/app/hello:1".to_owned(),
            mirrored(),
        ),
        row(
            "network-isolated cluster whose bootstrap registry serves MCR under a repository prefix",
            mi_json(""),
            vec![format!(
                "--registry-mirror=mcr.microsoft.com:{REGISTRY}/aks-managed-repository"
            )],
            "mcr.microsoft.com/app/hello:1".to_owned(),
            mirrored(),
        ),
        Row {
            env: vec![("AZURE_ENVIRONMENT_FILEPATH", env_file.clone())],
            ..row(
                "custom cloud (AzureStackCloud with its environment file)",
                sp_json("AzureStackCloud", SP, SP_SECRET),
                vec![],
                image(CUSTOM),
                sp_pull(
                    CUSTOM,
                    "*.azurecr.contoso.example",
                    Some("*.azurecr.contoso.example"),
                ),
            )
        },
        row(
            "custom cloud without its environment file: not an ACR image here",
            sp_json("AzureStackCloud", SP, SP_SECRET),
            vec![],
            image(CUSTOM),
            Expect::NoAuth,
        ),
        Row {
            pod: web_federated,
            annotations: vec![("kubernetes.azure.com/acr-client-id", POD_APP)],
            ..row(
                "per-pod identity (service-account token, annotated client id)",
                mi_json(""),
                vec![],
                image(REGISTRY),
                pull(REGISTRY, Appid::Client(POD_APP)),
            )
        },
        Row {
            pod: web_federated,
            annotations: vec![
                ("kubernetes.azure.com/acr-client-id", POD_APP),
                ("kubernetes.azure.com/acr-tenant-id", OTHER_TENANT),
            ],
            ..row(
                "per-pod identity in the wrong tenant",
                mi_json(""),
                vec![],
                image(REGISTRY),
                // Entra's own answer (the tenant is none the pod's app lives in), not only the
                // tenant the request itself carried.
                Expect::Fails(&[OTHER_TENANT, "AADSTS90002"]),
            )
        },
        Row {
            pod: web,
            annotations: vec![("kubernetes.azure.com/acr-client-id", IB_APP)],
            // A proxy that answers nothing: the local authority is never reached through it.
            env: vec![
                ("HTTPS_PROXY", "http://127.0.0.1:9".to_owned()),
                (
                    "NO_PROXY",
                    ".azurecr.io,login.microsoftonline.com".to_owned(),
                ),
            ],
            authority_requests: 1,
            ..row(
                "identity bindings, annotated service account (never through a proxy)",
                mi_json(""),
                ib_args(SNI, &ib_ca, true),
                image(REGISTRY),
                pull(REGISTRY, Appid::Client(IB_APP)),
            )
        },
        Row {
            pod: batch,
            authority_requests: 1,
            ..row(
                "identity bindings, no annotation: --ib-default-client-id",
                mi_json(""),
                ib_args(SNI, &ib_ca, true),
                image(REGISTRY),
                pull(REGISTRY, Appid::Client(IB_DEFAULT)),
            )
        },
        row(
            "identity bindings, no service-account token (static pod): fails, as the AKS plugin",
            mi_json(""),
            ib_args(SNI, &ib_ca, true),
            image(REGISTRY),
            Expect::Fails(&[
                "sent no service-account token",
                "--fallback-to-node-identity",
            ]),
        ),
        row(
            "identity bindings, no token, --fallback-to-node-identity: the node identity",
            mi_json(""),
            [
                ib_args(SNI, &ib_ca, true),
                strings(&["--fallback-to-node-identity"]),
            ]
            .concat(),
            image(REGISTRY),
            pull(REGISTRY, Appid::SystemAssigned),
        ),
        Row {
            pod: web,
            annotations: vec![("kubernetes.azure.com/acr-client-id", IB_APP)],
            ..row(
                "identity bindings do not apply to mirrored images",
                mi_json(""),
                [
                    ib_args(SNI, &ib_ca, true),
                    vec![format!("--registry-mirror=mcr.microsoft.com:{REGISTRY}")],
                ]
                .concat(),
                "mcr.microsoft.com/app/hello:1".to_owned(),
                mirrored(),
            )
        },
        Row {
            pod: batch,
            ..row(
                "identity bindings, no annotation and no default",
                mi_json(""),
                ib_args(SNI, &ib_ca, false),
                image(REGISTRY),
                Expect::Fails(&[
                    "service account shop/batch has no kubernetes.azure.com/acr-client-id annotation and the provider has no --ib-default-client-id",
                ]),
            )
        },
        Row {
            pod: web,
            annotations: vec![("kubernetes.azure.com/acr-client-id", IB_APP)],
            ..row(
                "identity bindings, wrong SNI name",
                mi_json(""),
                ib_args("wrong.compat.example", &ib_ca, true),
                image(REGISTRY),
                Expect::Fails(&["https://wrong.compat.example/"]),
            )
        },
        Row {
            pod: web,
            annotations: vec![("kubernetes.azure.com/acr-client-id", IB_APP)],
            ..row(
                "identity bindings, a CA that is not the cluster's",
                mi_json(""),
                ib_args(SNI, &emu_ca, true),
                image(REGISTRY),
                Expect::Fails(&["is the cluster CA and --ib-sni-name names the authority"]),
            )
        },
        row(
            "identity bindings, SNI name with a scheme",
            mi_json(""),
            ib_args(&format!("https://{SNI}"), &ib_ca, true),
            image(REGISTRY),
            Expect::Fails(&[
                "--ib-sni-name must not contain protocol prefix (https:// or http://)",
            ]),
        ),
        row(
            "identity bindings, SNI name without the API server",
            mi_json(""),
            vec![format!("--ib-sni-name={SNI}")],
            image(REGISTRY),
            Expect::Fails(&["--ib-apiserver-ip must be set when --ib-sni-name is provided"]),
        ),
        row(
            "an unknown flag",
            mi_json(""),
            strings(&["--no-such-flag"]),
            image(REGISTRY),
            Expect::Fails(&["unexpected argument '--no-such-flag'"]),
        ),
    ];

    let bin = workspace_bin("acr-credential-provider");
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let before = authority.requests();
        if let Err(e) = run_row(&w, &bin, i, r, &digest, &system.client_id) {
            failures.push(format!("row {:?}: {e}", r.name));
        }
        // The local authority is asked exactly by the identity-bindings rows that reach it:
        // once each (a fresh cache), never by mirrored, tokenless or misconfigured ones.
        let asked = authority.requests() - before;
        if asked != r.authority_requests {
            failures.push(format!(
                "row {:?}: the local authority got {asked} requests, expected {}",
                r.name, r.authority_requests
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // --doctor with the node's arguments reports the identity-bindings settings and checks that
    // the local authority answers over TLS verified with the cluster CA.
    let azure_json = w.write_file("doctor/azure.json", &mi_json(""), 0o600)?;
    let azure_json = azure_json.to_string_lossy().into_owned();
    let doctor = |ca: &str| -> Result<(bool, String), Box<dyn std::error::Error>> {
        let cache = w.path("doctor/cache");
        let mut args = vec![
            azure_json.clone(),
            format!("--cache-dir={}", cache.display()),
        ];
        args.extend(ib_args(SNI, ca, true));
        args.push(format!("--doctor={}", image(REGISTRY)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.run(&bin.to_string_lossy(), &args, "")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let before = authority.requests();
    let (ok, report) = doctor(&ib_ca)?;
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!(
            "identity bindings: pods pull through https://{SNI} at {APISERVER}:443"
        )),
        "{report}"
    );
    assert!(
        report.contains("the local authority answered over verified TLS (HTTP 400"),
        "{report}"
    );
    assert_eq!(authority.requests(), before + 1);
    let (ok, report) = doctor(&emu_ca)?;
    assert!(!ok, "{report}");
    assert!(
        report.contains("identity bindings: ERROR the local authority cannot be reached"),
        "{report}"
    );
    for s in w.emu.secrets() {
        assert!(!report.contains(s.as_str()), "{report}");
    }
    Ok(())
}

fn run_row(
    w: &World,
    bin: &std::path::Path,
    i: usize,
    r: &Row,
    digest: &str,
    system_client_id: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let azure_json = w.write_file(&format!("row-{i}/azure.json"), &r.azure_json, 0o600)?;
    let cache = w.path(&format!("row-{i}/cache"));
    let mut args = vec![
        azure_json.to_string_lossy().into_owned(),
        format!("--cache-dir={}", cache.display()),
    ];
    args.extend(r.args.iter().cloned());
    let mut request = json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": r.image,
    });
    let mut pod_token = None;
    if let Some((subject, audience)) = r.pod {
        let token =
            w.emu
                .mint_service_account_token(ISSUER, subject, audience, Duration::from_secs(3600));
        request["serviceAccountToken"] = json!(token);
        pod_token = Some(token);
    }
    if !r.annotations.is_empty() {
        let map: serde_json::Map<String, Value> = r
            .annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        request["serviceAccountAnnotations"] = Value::Object(map);
    }
    let mut env = w.env.clone();
    for (k, v) in &r.env {
        env.insert((*k).to_owned(), v.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = acr_tests::sandbox::command(bin)
        .args(&args)
        .env_clear()
        .envs(&env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut input) = child.stdin.take() {
                // A provider that fails on its arguments exits before reading stdin.
                match input.write_all(request.to_string().as_bytes()) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
            }
            child.wait_with_output()
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // No secret the emulator knows or signed, and not the pod's token, in stderr; in stdout
    // none but the one password the row expects.
    let mut secrets = w.emu.secrets();
    secrets.extend(pod_token.clone());
    for s in &secrets {
        if stderr.contains(s.as_str()) {
            return Err(format!("stderr holds a secret: {stderr}").into());
        }
    }
    let expected_password: Option<String> = match &r.expect {
        Expect::Pull { basic: true, .. } => Some(SP_SECRET.to_owned()),
        Expect::Refused { secret, .. } => Some((*secret).to_owned()),
        _ => None,
    };
    let stdout_json: Option<Value> = serde_json::from_str(&stdout).ok();

    match &r.expect {
        Expect::Fails(wants) => {
            if out.status.success() || !stdout.is_empty() {
                return Err(format!("expected a failure, got {}: {stdout}", out.status).into());
            }
            let lines: Vec<&str> = stderr.lines().collect();
            let last = lines.last().copied().unwrap_or_default();
            if !last.starts_with("acr-credential-provider: error: ")
                || !wants.iter().all(|w| last.contains(w))
            {
                return Err(
                    format!("expected one error line naming {wants:?}, got: {stderr}").into(),
                );
            }
            if lines.iter().filter(|l| l.contains(": error: ")).count() != 1 {
                return Err(format!("more than one error line: {stderr}").into());
            }
            Ok(())
        }
        other => {
            if !out.status.success() {
                return Err(format!("provider failed: {stderr}").into());
            }
            let v = stdout_json.ok_or_else(|| format!("not JSON: {stdout}"))?;
            if v["cacheKeyType"] != "Registry" {
                return Err(format!("cacheKeyType: {stdout}").into());
            }
            let auth = v["auth"].as_object().ok_or("no auth")?;
            if let Expect::NoAuth = other {
                return if auth.is_empty() && v["cacheDuration"] == "0s" {
                    Ok(())
                } else {
                    Err(format!("expected no credentials, kept 0s; got {stdout}").into())
                };
            }
            if v["cacheDuration"] != "5m0s" {
                return Err(format!("cacheDuration: {stdout}").into());
            }
            if auth.get(ANONYMOUS) != Some(&json!({"username": "", "password": ""})) {
                return Err(format!("no anonymous fallback entry: {stdout}").into());
            }
            let (registry, key, keys, appid, basic) = match other {
                Expect::Pull {
                    registry,
                    key,
                    keys,
                    appid,
                    basic,
                } => (*registry, *key, keys.clone(), Some(*appid), *basic),
                Expect::Refused { registry, .. } => {
                    (*registry, "*.azurecr.io", SP_KEYS.to_vec(), None, true)
                }
                _ => unreachable!("handled above"),
            };
            // Exactly the expected keys, each with the one credential.
            let mut want: Vec<&str> = keys.clone();
            want.push(ANONYMOUS);
            want.sort_unstable();
            want.dedup();
            let mut got: Vec<&str> = auth.keys().map(String::as_str).collect();
            got.sort_unstable();
            if got != want {
                return Err(format!("auth keys {got:?}, expected {want:?}").into());
            }
            let entry = &auth[key];
            for k in &keys {
                if &auth[*k] != entry {
                    return Err(format!("{k} carries another credential than {key}").into());
                }
            }
            let username = entry["username"].as_str().unwrap_or_default();
            let password = entry["password"].as_str().unwrap_or_default();
            // No emulator secret in stdout but the password this row expects (the service
            // principal's secret, or the one token answered, checked below as issued to whom).
            let allowed = expected_password
                .clone()
                .or_else(|| Some(password.to_owned()));
            for s in &secrets {
                if stdout.contains(s.as_str()) && Some(s) != allowed.as_ref() {
                    return Err("stdout holds a secret the row does not expect".into());
                }
            }
            let reference = image(registry);
            if let Expect::Refused {
                client_id, secret, ..
            } = other
            {
                if username != *client_id || password != *secret {
                    return Err(format!(
                        "expected the service principal's id and secret, got user {username}"
                    )
                    .into());
                }
                // The registry's own refusal, not any failure of the client.
                let pair = format!("{username}:{password}");
                let out = w.skopeo(&[
                    "inspect",
                    "--creds",
                    &pair,
                    &format!("docker://{reference}"),
                ])?;
                let err = String::from_utf8_lossy(&out.stderr);
                return if !out.status.success()
                    && (err.contains("401") || err.contains("unauthorized"))
                {
                    Ok(())
                } else {
                    Err(format!("expected the registry's 401, got {}: {err}", out.status).into())
                };
            }
            let verdict = inspect_with(w, &reference, username, password)?;
            if verdict.as_deref() != Some(digest) {
                return Err(format!(
                    "skopeo could not pull {reference} with the answer (user {username})"
                )
                .into());
            }
            let want_appid = match appid {
                Some(Appid::Client(c)) => c.to_owned(),
                Some(Appid::SystemAssigned) | None => system_client_id.to_owned(),
            };
            if basic {
                if username != want_appid || password != SP_SECRET {
                    return Err(format!(
                        "expected the service principal's id and secret, got username {username}"
                    )
                    .into());
                }
            } else {
                if username != ACR_USER {
                    return Err(format!("expected an ACR token, got username {username}").into());
                }
                let c = claims(password);
                if c["appid"] != json!(want_appid) {
                    return Err(
                        format!("token issued to {} instead of {want_appid}", c["appid"]).into(),
                    );
                }
            }
            Ok(())
        }
    }
}
