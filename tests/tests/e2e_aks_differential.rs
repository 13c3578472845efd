//! The upstream AKS plugin as the oracle: both `acr-credential-provider`s, ours and the one AKS
//! ships (built from `sigs.k8s.io/cloud-provider-azure/cmd/acr-credential-provider` at
//! [`UPSTREAM_RELEASE`] by `scripts/install-deps.sh`, see `tests/upstream/`), run with the same
//! request, azure.json, arguments and environment against the same emulator, inside a private
//! network namespace where the real names (IMDS at 169.254.169.254, `login.microsoftonline.com`
//! and the other clouds' authorities, the registries, the API server) are the emulator's. Go
//! trusts the emulator's CA through `SSL_CERT_FILE`; the cluster CA is where AKS keeps it
//! (`/etc/kubernetes/certs/ca.crt`, in a private overlay of `/etc`).
//!
//! Each answer is normalised (exit status, `auth` keys, usernames, what kind of password,
//! `cacheKeyType`, `cacheDuration`) and so are the requests each made, from the emulator's
//! journal, to the parameters that choose an identity (`client_id`, `msi_res_id`, resource or
//! scope, tenant, the grant, and whose token an exchange carried). Requests that choose nothing
//! are not compared: the `/v2/` challenge upstream reads before each exchange (ours posts to
//! `/oauth2/exchange` at once and reads the challenge only on 404/405), the exchange's
//! `grant_type`, and MSAL's discovery requests.
//!
//! Every difference found must be listed in `docs/COMPATIBILITY.md`'s table of differences,
//! and every listed one must be found: a new difference, or a fixed one still listed, fails the
//! test.

use acr_tests::e2e::{self, REGISTRY, REGISTRY2, SERVICE_ADDRESS, TENANT, World};
use acr_tests::emulator::{
    EndpointKind, Fault, FaultAction, IDENTITY_BINDING_AUDIENCE, JournalEntry, Role,
};
use acr_tests::sandbox::workspace_bin;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The upstream release the oracle is built from (`tests/upstream/go.mod`).
const UPSTREAM_RELEASE: &str = "v1.35.3";

const CHINA: &str = "myregistry.azurecr.cn";
const USGOV: &str = "myregistry.azurecr.us";
const GERMANY: &str = "myregistry.azurecr.de";
const GEO: &str = "myregistry.westeurope.geo.azurecr.io";
const CUSTOM: &str = "myregistry.azurecr.contoso.example";
const CUSTOM_AUTHORITY: &str = "login.contoso.example";
const OTHER_TENANT: &str = "0b0b0b0b-0000-4000-8000-0000000000b2";
const ISSUER: &str = "https://oidc.cluster.example/differential/";
const SNI: &str = "ib.differential.example";
const APISERVER: &str = "mycluster-dns-1234.hcp.differential.example";
/// An address in the namespace where nothing listens: Entra "unreachable" (refused at once).
const NOWHERE: &str = "192.0.2.99";

const SP: &str = "11111111-0000-4000-8000-000000000001";
const SP_SECRET: &str = "node-sp-secret-1";
const UAMI: &str = "22222222-0000-4000-8000-000000000001";
const UAMI_BY_RESOURCE: &str = "22222222-0000-4000-8000-000000000002";
const UAMI_RESOURCE_ID: &str = "/subscriptions/3333/resourceGroups/MC_rg_diff_westeurope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/diff-agentpool";
const POD_APP: &str = "44444444-0000-4000-8000-000000000001";
const IB_APP: &str = "55555555-0000-4000-8000-000000000001";
const IB_DEFAULT: &str = "55555555-0000-4000-8000-000000000002";

/// How long a run may take. Against a fault that never clears (IMDS answering 500, Entra
/// refusing connections) upstream's Azure SDK retries for about a minute (58-60 s measured on
/// this suite's rows) where ours gives up within `ACR_TIMEOUT`-bound retries (about 5 s); a run
/// still going after this long is stopped and counted as failed, which is what the kubelet sees
/// at its own one-minute limit, and what upstream ends in when let run.
const RUN_LIMIT: Duration = Duration::from_secs(8);

/// The kubelet's limit for one run of a plugin.
const KUBELET_LIMIT: Duration = Duration::from_secs(60);

/// Waits for `child`, killing it after `limit`; the output and whether it was stopped. Its
/// output is read while it runs, so a full pipe cannot stall it.
fn wait_at_most(
    mut child: std::process::Child,
    limit: Duration,
) -> std::io::Result<(std::process::Output, bool)> {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = std::time::Instant::now();
    let mut stopped = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            child.kill()?;
            stopped = true;
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Ok((output, stopped))
}

/// Where `scripts/install-deps.sh` puts the test tools built with Go (never on `PATH`).
fn tools_dir() -> PathBuf {
    match std::env::var_os("ACR_TEST_TOOLS").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".local/share/acr-test-tools")
        }
    }
}

/// One configuration, given identically to both binaries.
struct Row {
    name: &'static str,
    azure_json: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    image: String,
    api_version: &'static str,
    /// A service-account token for (subject, audience).
    pod: Option<(&'static str, &'static str)>,
    annotations: Vec<(&'static str, &'static str)>,
    /// Faults queued before each binary runs.
    faults: Vec<Fault>,
    /// Entra's public authority resolves to an address where nothing listens.
    entra_down: bool,
}

impl Row {
    fn new(name: &'static str, azure_json: String, image: &str) -> Row {
        Row {
            name,
            azure_json,
            args: Vec::new(),
            env: Vec::new(),
            image: image.to_owned(),
            api_version: "credentialprovider.kubelet.k8s.io/v1",
            pod: None,
            annotations: Vec::new(),
            faults: Vec::new(),
            entra_down: false,
        }
    }
    fn entra_down(mut self) -> Row {
        self.entra_down = true;
        self
    }
    fn args(mut self, args: &[&str]) -> Row {
        self.args = args.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    fn pod(mut self, subject: &'static str, audience: &'static str) -> Row {
        self.pod = Some((subject, audience));
        self
    }
    fn annotate(mut self, key: &'static str, value: &'static str) -> Row {
        self.annotations.push((key, value));
        self
    }
    fn env(mut self, key: &'static str, value: &str) -> Row {
        self.env.push((key, value.to_owned()));
        self
    }
    fn fault(mut self, fault: Fault) -> Row {
        self.faults.push(fault);
        self
    }
}

fn mi_json(user_assigned: &str) -> String {
    mi_json_in("AzurePublicCloud", user_assigned)
}

fn mi_json_in(cloud: &str, user_assigned: &str) -> String {
    json!({
        "cloud": cloud,
        "tenantId": TENANT,
        "subscriptionId": "3333",
        "aadClientId": "msi",
        "aadClientSecret": "msi",
        "resourceGroup": "MC_rg_diff_westeurope",
        "location": "westeurope",
        "vmType": "vmss",
        "useManagedIdentityExtension": true,
        "userAssignedIdentityID": user_assigned,
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
        "resourceGroup": "MC_rg_diff_westeurope",
        "useManagedIdentityExtension": false,
        "userAssignedIdentityID": "",
        "useInstanceMetadata": true,
    })
    .to_string()
}

fn image(registry: &str) -> String {
    format!("{registry}/app/hello:1")
}

/// What one binary did with one row, normalised.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    exit: String,
    /// key → "username / password kind"
    auth: BTreeMap<String, String>,
    cache_key_type: String,
    cache_duration: String,
    /// The identity-choosing requests, deduplicated (retries are not compared).
    requests: BTreeSet<String>,
}

impl Outcome {
    /// The compared fields, by name.
    fn fields(&self) -> BTreeMap<&'static str, String> {
        let keys: Vec<&str> = self.auth.keys().map(String::as_str).collect();
        let mut m = BTreeMap::new();
        m.insert("exit", self.exit.clone());
        m.insert("auth keys", keys.join(" "));
        m.insert(
            "credentials",
            self.auth
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        );
        m.insert("cacheKeyType", self.cache_key_type.clone());
        m.insert("cacheDuration", self.cache_duration.clone());
        m.insert(
            "requests",
            self.requests.iter().cloned().collect::<Vec<_>>().join("; "),
        );
        m
    }
}

/// Names for the GUIDs and values a normalised outcome shows.
fn label(value: &str, labels: &BTreeMap<String, &'static str>) -> String {
    labels
        .get(&value.to_ascii_lowercase())
        .map_or_else(|| value.to_owned(), |l| (*l).to_owned())
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

fn password_kind(password: &str, labels: &BTreeMap<String, &'static str>) -> String {
    if password.is_empty() {
        return "empty".into();
    }
    if password == SP_SECRET {
        return "sp-secret".into();
    }
    let c = claims(password);
    if c["iss"] == "Azure Container Registry" {
        let appid = c["appid"].as_str().unwrap_or("?");
        return format!("acr-refresh-token({})", label(appid, labels));
    }
    "other".into()
}

/// One journal entry as compared, or `None` for requests that choose no identity.
fn request_line(e: &JournalEntry, labels: &BTreeMap<String, &'static str>) -> Option<String> {
    let p = |k: &str| e.params.get(k).map(|v| label(v, labels));
    let mut parts: Vec<String> = Vec::new();
    let mut add = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    };
    let kind = if e.listener == "imds" || e.path == "/metadata/identity/oauth2/token" {
        add("client_id", p("client_id"));
        add("msi_res_id", p("msi_res_id"));
        add("mi_res_id", p("mi_res_id"));
        add("object_id", p("object_id"));
        add("resource", p("resource"));
        "imds"
    } else if e.listener == "binding" {
        add("path", Some(e.path.clone()));
        add("client_id", p("client_id"));
        add("tenant", p("tenant"));
        add("scope", p("scope"));
        "identity-bindings"
    } else if e.path.ends_with("/oauth2/v2.0/token") {
        let tenant = e.path.trim_start_matches('/').split('/').next();
        add("host", Some(e.host.clone()));
        add("tenant", tenant.map(|t| label(t, labels)));
        add("client_id", p("client_id"));
        // MSAL adds the reserved OpenID Connect scopes to every request; Entra ignores them in
        // the client credentials grant.
        add(
            "scope",
            p("scope").map(|s| {
                s.split_whitespace()
                    .filter(|w| !matches!(*w, "openid" | "offline_access" | "profile" | "email"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        );
        add("grant", p("grant_type"));
        add("assertion", p("client_assertion.sub"));
        "entra"
    } else if e.path == "/oauth2/exchange" {
        add("host", Some(e.host.clone()));
        add("service", p("service"));
        add("token", p("access_token.appid"));
        add("token_tenant", p("access_token.tid"));
        "exchange"
    } else {
        return None;
    };
    Some(format!("{kind} {}", parts.join(" ")))
}

/// The `/etc` overlay: `/etc/kubernetes/certs/ca.crt` for identity bindings, and the world's
/// hosts file bound again over the overlay's.
fn overlay_etc(w: &World, cluster_ca: &str) -> TestResult {
    let upper = w.path("etc-upper");
    let work = w.path("etc-work");
    std::fs::create_dir_all(&upper)?;
    std::fs::create_dir_all(&work)?;
    let hosts = std::fs::read_to_string("/etc/hosts")?;
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir=/etc,upperdir={},workdir={}",
            upper.display(),
            work.display()
        ))
        .arg("/etc")
        .status()?;
    if !status.success() {
        return Err("mounting an overlay on /etc failed".into());
    }
    std::fs::create_dir_all("/etc/kubernetes/certs")?;
    std::fs::write("/etc/kubernetes/certs/ca.crt", cluster_ca)?;
    std::fs::write("/etc/hosts", hosts)?;
    Ok(())
}

fn add_hosts(lines: &[(&str, &str)]) -> TestResult {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open("/etc/hosts")?;
    for (address, name) in lines {
        writeln!(f, "{address} {name}")?;
    }
    Ok(())
}

/// Runs `bin` for `row` (azure.json written to `dir`), returns its outcome and output.
fn run(
    w: &World,
    bin: &Path,
    row: &Row,
    dir: &Path,
    ours: bool,
    labels: &BTreeMap<String, &'static str>,
) -> Result<(Outcome, String), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let azure_json = dir.join("azure.json");
    std::fs::write(&azure_json, &row.azure_json)?;
    let mut args = vec![azure_json.to_string_lossy().into_owned()];
    args.extend(row.args.iter().cloned());
    let mut request = json!({
        "apiVersion": row.api_version,
        "kind": "CredentialProviderRequest",
        "image": row.image,
    });
    if let Some((subject, audience)) = row.pod {
        request["serviceAccountToken"] = json!(w.emu.mint_service_account_token(
            ISSUER,
            subject,
            audience,
            Duration::from_secs(3600)
        ));
    }
    if !row.annotations.is_empty() {
        let map: serde_json::Map<String, Value> = row
            .annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        request["serviceAccountAnnotations"] = Value::Object(map);
    }
    let mut env = w.env.clone();
    for (k, v) in &row.env {
        env.insert((*k).to_owned(), v.clone());
    }
    if ours {
        // Where the kubelet provider keeps its cache on a node; a fresh one per run.
        env.insert(
            "ACR_CACHE_DIR".into(),
            dir.join("cache").to_string_lossy().into_owned(),
        );
    }
    w.emu.clear_faults();
    for f in &row.faults {
        w.emu.set_fault(f.clone());
    }
    let hosts = std::fs::read_to_string("/etc/hosts")?;
    if row.entra_down {
        // Only the one name moves: both clients would try every address a name has.
        let mut down: String = hosts
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| *w != e2e::AUTHORITY)
                    .collect::<Vec<_>>()
                    .join(" ")
                    + "\n"
            })
            .collect();
        down.push_str(&format!("{NOWHERE} {}\n", e2e::AUTHORITY));
        std::fs::write("/etc/hosts", down)?;
    }
    w.emu.clear_journal();
    let child = acr_tests::sandbox::command(bin)
        .args(&args)
        .env_clear()
        .envs(&env)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut input) = child.stdin.take() {
                // A provider that fails on its arguments exits before reading stdin.
                match input.write_all(request.to_string().as_bytes()) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
            }
            // Only rows whose fault never clears are cut short; the others get the kubelet's
            // own minute, so a loaded machine cannot turn a slow answer into a difference.
            let faulty = row.entra_down || !row.faults.is_empty();
            wait_at_most(child, if faulty { RUN_LIMIT } else { KUBELET_LIMIT })
        });
    w.emu.clear_faults();
    if row.entra_down {
        std::fs::write("/etc/hosts", hosts)?;
    }
    let (out, stopped) = child?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut outcome = Outcome {
        // A run stopped at RUN_LIMIT is still retrying a fault that never clears: it fails, as
        // the kubelet would see it after its own one-minute limit.
        exit: if out.status.success() && !stopped {
            "0".into()
        } else {
            "1".into()
        },
        requests: w
            .emu
            .journal()
            .iter()
            .filter_map(|e| request_line(e, labels))
            .collect(),
        ..Outcome::default()
    };
    if out.status.success() {
        let v: Value = serde_json::from_str(&stdout)
            .map_err(|e| format!("{}: not JSON ({e}): {stdout}", bin.display()))?;
        outcome.cache_key_type = v["cacheKeyType"].as_str().unwrap_or("-").to_owned();
        outcome.cache_duration = v["cacheDuration"].as_str().unwrap_or("-").to_owned();
        if let Some(auth) = v["auth"].as_object() {
            for (key, cred) in auth {
                let user = cred["username"].as_str().unwrap_or("");
                let pass = cred["password"].as_str().unwrap_or("");
                let user = if user.is_empty() {
                    "\"\"".to_owned()
                } else {
                    label(user, labels)
                };
                outcome.auth.insert(
                    key.clone(),
                    format!("{user} / {}", password_kind(pass, labels)),
                );
            }
        }
    }
    // The last lines of stderr (stdout holds credentials, and its normalised form is shown).
    // Cobra prints the usage after an error: keep the error lines, else the last ones.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("rror") || l.contains("warn"))
        .collect();
    let tail: Vec<&str> = if errors.is_empty() {
        let last: Vec<&str> = stderr.lines().rev().take(3).collect();
        last.into_iter().rev().collect()
    } else {
        errors
    };
    let journal: Vec<String> = w
        .emu
        .journal()
        .iter()
        .map(|e| format!("{} {}{}", e.method, e.host, e.path))
        .collect();
    if std::env::var_os("ACR_DIFFERENTIAL_VERBOSE").is_some() {
        eprintln!("--- {} full stderr:\n{stderr}", bin.display());
    }
    Ok((
        outcome,
        format!(
            "{}\n    requests: {}",
            tail.join("\n    "),
            journal.join(", ")
        ),
    ))
}

/// The table of differences in `docs/COMPATIBILITY.md`: (row, field) of every line of the
/// table under the heading "## Differences", whose first two cells are the row and the field.
fn listed_differences() -> Result<BTreeSet<(String, String)>, Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/COMPATIBILITY.md");
    let text = std::fs::read_to_string(&path)?;
    let mut out = BTreeSet::new();
    let mut in_section = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            in_section = line.trim() == "## Differences";
            continue;
        }
        if !in_section || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1] == "row" || cells[1].starts_with("---") {
            continue;
        }
        out.insert((cells[1].to_owned(), cells[2].to_owned()));
    }
    Ok(out)
}

#[test]
fn ours_answers_as_the_upstream_aks_plugin() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let upstream = tools_dir().join("bin/acr-credential-provider");
    if !upstream.is_file() {
        return Err(format!(
            "{} is missing: run scripts/install-deps.sh (it builds the upstream AKS plugin {UPSTREAM_RELEASE} with Go)",
            upstream.display()
        )
        .into());
    }
    let ours = workspace_bin("acr-credential-provider");
    let w = World::start(&[REGISTRY])?;
    for r in [REGISTRY2, CHINA, USGOV, GERMANY, GEO, CUSTOM] {
        w.emu.add_registry(r);
    }
    add_hosts(&[
        (
            SERVICE_ADDRESS,
            &format!(
                "{REGISTRY2} {CHINA} {USGOV} {GERMANY} {GEO} {CUSTOM} {CUSTOM_AUTHORITY} login.chinacloudapi.cn login.microsoftonline.us login.microsoftonline.de"
            ),
        ),
        ("::1", APISERVER),
    ])?;
    w.serve_imds()?;

    let system = w.emu.add_managed_identity(None);
    let mut labels: BTreeMap<String, &'static str> = BTreeMap::new();
    labels.insert(system.client_id.to_ascii_lowercase(), "SYSTEM_MI");
    for (id, name) in [
        (TENANT, "TENANT"),
        (OTHER_TENANT, "OTHER_TENANT"),
        (SP, "SP"),
        (UAMI, "UAMI"),
        (UAMI_BY_RESOURCE, "UAMI_BY_RESOURCE"),
        (UAMI_RESOURCE_ID, "UAMI_RESOURCE_ID"),
        (POD_APP, "POD_APP"),
        (IB_APP, "IB_APP"),
        (IB_DEFAULT, "IB_DEFAULT"),
    ] {
        labels.insert(id.to_ascii_lowercase(), name);
    }
    labels.insert("00000000-0000-0000-0000-000000000000".into(), "ACR_USER");
    w.emu.add_managed_identity(Some(UAMI));
    w.emu
        .add_managed_identity_with_resource_id(UAMI_BY_RESOURCE, UAMI_RESOURCE_ID);
    w.emu.add_secret_principal(TENANT, SP, SP_SECRET);
    w.emu
        .add_federated_principal(TENANT, POD_APP, ISSUER, "system:serviceaccount:shop:web");
    let authority = w.emu.start_identity_binding_authority(
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 443)),
        SNI,
    )?;
    for app in [IB_APP, IB_DEFAULT] {
        w.emu
            .add_secret_principal(TENANT, app, &format!("unused-{app}"));
    }
    authority.bind(IB_APP, ISSUER, "system:serviceaccount:shop:web");
    authority.bind(IB_DEFAULT, ISSUER, "system:serviceaccount:shop:batch");
    let registries = [REGISTRY, REGISTRY2, CHINA, USGOV, GERMANY, GEO, CUSTOM];
    for principal in [
        &system.client_id as &str,
        UAMI,
        UAMI_BY_RESOURCE,
        SP,
        POD_APP,
        IB_APP,
        IB_DEFAULT,
    ] {
        for r in registries {
            w.emu.grant(principal, r, Role::AcrPull);
        }
    }
    w.emu.set_registry_tenant(REGISTRY2, OTHER_TENANT);
    overlay_etc(&w, &authority.ca_pem())?;
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
    let odd_env_file = w.write_file(
        "akscustom-odd.json",
        &json!({
            "name": "AzureStackCloud",
            "resourceManagerEndpoint": "https://management.contoso.example/",
            // Plain http: no Entra authority, but a managed-identity node never asks Entra.
            "activeDirectoryEndpoint": format!("http://{CUSTOM_AUTHORITY}/"),
            "containerRegistryDNSSuffix": ".azurecr.contoso.example",
            "unknownField": "x",
        })
        .to_string(),
        0o644,
    )?;
    let odd_env_file = odd_env_file.to_string_lossy().into_owned();

    let web = "system:serviceaccount:shop:web";
    let batch = "system:serviceaccount:shop:batch";
    let exchange = "api://AzureADTokenExchange";
    let client = "kubernetes.azure.com/acr-client-id";
    let tenant = "kubernetes.azure.com/acr-tenant-id";
    let ib = |default_client: bool| {
        let mut a = vec![format!("--ib-sni-name={SNI}")];
        if default_client {
            a.push(format!("--ib-default-client-id={IB_DEFAULT}"));
        }
        a.push(format!("--ib-default-tenant-id={TENANT}"));
        a.push(format!("--ib-apiserver-ip={APISERVER}"));
        a
    };
    let with_args = |mut r: Row, args: Vec<String>| {
        r.args.extend(args);
        r
    };
    let imds_500 = Fault::times(
        EndpointKind::Imds,
        1000,
        FaultAction::Status {
            code: 500,
            retry_after: None,
            body: None,
        },
    );
    let mcr = "mcr.microsoft.com/app/hello:1";

    let rows = vec![
        Row::new("system-assigned managed identity", mi_json(""), &image(REGISTRY)),
        Row::new("user-assigned managed identity by client id", mi_json(UAMI), &image(REGISTRY))
            .args(&["-v=2", "--v=4", "--vmodule=x=2", "--log-flush-frequency=5s"]),
        Row::new(
            "user-assigned managed identity by resource id",
            mi_json(UAMI_RESOURCE_ID),
            &image(REGISTRY),
        ),
        Row::new(
            "azure.json as YAML",
            format!(
                "cloud: AzurePublicCloud\ntenantId: {TENANT}\naadClientId: msi\naadClientSecret: msi\nuseManagedIdentityExtension: true\nuserAssignedIdentityID: {UAMI}\n"
            ),
            &image(REGISTRY),
        ),
        Row::new("service principal, same tenant", sp_json("AzurePublicCloud"), &image(REGISTRY)),
        Row::new(
            "service principal, registry in another tenant",
            sp_json("AzurePublicCloud"),
            &image(REGISTRY2),
        ),
        with_args(
            Row::new("service principal with --ib-*", sp_json("AzurePublicCloud"), &image(REGISTRY))
                .pod(web, IDENTITY_BINDING_AUDIENCE)
                .annotate(client, IB_APP),
            ib(true),
        ),
        Row::new(
            "service principal, Entra unreachable",
            sp_json("AzurePublicCloud"),
            &image(REGISTRY),
        )
        .entra_down(),
        Row::new(
            "service principal, incomplete azure.json",
            json!({"cloud": "AzurePublicCloud", "tenantId": TENANT, "aadClientId": SP, "useManagedIdentityExtension": false}).to_string(),
            &image(REGISTRY),
        ),
        Row::new(
            "per-pod identity with client and tenant annotations",
            mi_json(""),
            &image(REGISTRY),
        )
        .pod(web, exchange)
        .annotate(client, POD_APP)
        .annotate(tenant, TENANT),
        Row::new("per-pod identity without the tenant annotation", mi_json(""), &image(REGISTRY))
            .pod(web, exchange)
            .annotate(client, POD_APP),
        Row::new(
            "per-pod identity on a service-principal node",
            sp_json("AzurePublicCloud"),
            &image(REGISTRY),
        )
        .pod(web, exchange)
        .annotate(client, POD_APP)
        .annotate(tenant, TENANT),
        Row::new("per-pod token without annotations", mi_json(""), &image(REGISTRY))
            .pod(web, exchange),
        Row::new("per-pod identity, empty client-id annotation", mi_json(""), &image(REGISTRY))
            .pod(web, exchange)
            .annotate(client, "")
            .annotate(tenant, TENANT),
        with_args(
            Row::new("identity bindings, annotated", mi_json(""), &image(REGISTRY))
                .pod(web, IDENTITY_BINDING_AUDIENCE)
                .annotate(client, IB_APP),
            ib(true),
        ),
        with_args(
            Row::new("identity bindings, default client id", mi_json(""), &image(REGISTRY))
                .pod(batch, IDENTITY_BINDING_AUDIENCE),
            ib(true),
        ),
        with_args(
            Row::new("identity bindings, no token", mi_json(""), &image(REGISTRY)),
            ib(true),
        ),
        with_args(
            Row::new("identity bindings, empty annotation", mi_json(""), &image(REGISTRY))
                .pod(batch, IDENTITY_BINDING_AUDIENCE)
                .annotate(client, ""),
            ib(true),
        ),
        with_args(
            Row::new("identity bindings, no annotation and no default", mi_json(""), &image(REGISTRY))
                .pod(batch, IDENTITY_BINDING_AUDIENCE),
            ib(false),
        ),
        Row::new("network isolated, -r", mi_json(""), mcr)
            .args(&["-r", &format!("mcr.microsoft.com:{REGISTRY}")]),
        Row::new("network isolated, repository-prefixed destination", mi_json(""), mcr).args(&[
            &format!("--registry-mirror=mcr.microsoft.com:{REGISTRY}/aks-managed-repository"),
        ]),
        Row::new("network isolated, trailing slash", mi_json(""), mcr)
            .args(&["-r", &format!("mcr.microsoft.com:{REGISTRY}/")]),
        Row::new("network isolated, -r repeated", mi_json(""), mcr).args(&[
            "-r",
            &format!("mcr.microsoft.com:{REGISTRY2}"),
            "-r",
            &format!("mcr.microsoft.com:{REGISTRY}"),
        ]),
        with_args(
            Row::new("identity bindings, mirrored image", mi_json(""), mcr)
                .pod(web, IDENTITY_BINDING_AUDIENCE)
                .annotate(client, IB_APP),
            [ib(true), vec![format!("--registry-mirror=mcr.microsoft.com:{REGISTRY}")]].concat(),
        ),
        Row::new("China", mi_json_in("AzureChinaCloud", ""), &image(CHINA)),
        Row::new("USGov", mi_json_in("AzureUSGovernmentCloud", ""), &image(USGOV)),
        Row::new("service principal, China", sp_json("AzureChinaCloud"), &image(CHINA)),
        Row::new("AzureStackCloud with its environment file", sp_json("AzureStackCloud"), &image(CUSTOM))
            .env("AZURE_ENVIRONMENT_FILEPATH", &env_file),
        Row::new(
            "AzureStackCloud managed identity",
            mi_json_in("AzureStackCloud", ""),
            &image(CUSTOM),
        )
        .env("AZURE_ENVIRONMENT_FILEPATH", &env_file),
        Row::new(
            "AzureStackCloud, odd environment file",
            mi_json_in("AzureStackCloud", ""),
            &image(CUSTOM),
        )
        .env("AZURE_ENVIRONMENT_FILEPATH", &odd_env_file),
        Row::new(
            "per-pod identity, Entra unreachable",
            mi_json(""),
            &image(REGISTRY),
        )
        .pod(web, exchange)
        .annotate(client, POD_APP)
        .annotate(tenant, TENANT)
        .entra_down(),
        Row::new("service principal, geo-replica host", sp_json("AzurePublicCloud"), &image(GEO)),
        Row::new("non-ACR image", mi_json(""), "docker.io/library/nginx:1"),
        Row::new("non-ACR image, service principal", sp_json("AzurePublicCloud"), "quay.io/x/y:1"),
        Row::new(".de registry", mi_json(""), &image(GERMANY)),
        Row::new("geo-replica host", mi_json(""), &image(GEO)),
        Row::new("uppercase registry name", mi_json(""), "MyRegistry.azurecr.io/app/hello:1"),
        Row::new("IMDS answering 500", mi_json(""), &image(REGISTRY)).fault(imds_500),
        Row {
            api_version: "credentialprovider.kubelet.k8s.io/v1beta1",
            ..Row::new("v1beta1 request", mi_json(""), &image(REGISTRY))
        },
    ];

    let mut found: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut report = String::new();
    for (i, row) in rows.iter().enumerate() {
        let started = std::time::Instant::now();
        let (theirs, their_out) = run(
            &w,
            &upstream,
            row,
            &w.path(&format!("up-{i}")),
            false,
            &labels,
        )?;
        let theirs_took = started.elapsed();
        let (ours_o, our_out) = run(&w, &ours, row, &w.path(&format!("ours-{i}")), true, &labels)?;
        let ours_took = started.elapsed() - theirs_took;
        let (tf, of) = (theirs.fields(), ours_o.fields());
        let mut differs = false;
        for (field, their_value) in &tf {
            let our_value = &of[field];
            if their_value != our_value {
                differs = true;
                found.insert(
                    (row.name.to_owned(), (*field).to_owned()),
                    format!("upstream: {their_value}\n      ours:     {our_value}"),
                );
            }
        }
        report.push_str(&format!(
            "\n== {} {} (upstream {:.1} s, ours {:.1} s)\n",
            row.name,
            if differs { "DIFFERS" } else { "same" },
            theirs_took.as_secs_f64(),
            ours_took.as_secs_f64(),
        ));
        for (field, their_value) in &tf {
            let our_value = &of[field];
            if their_value == our_value {
                report.push_str(&format!("  {field}: {their_value}\n"));
            } else {
                report.push_str(&format!(
                    "  {field}:\n    upstream: {their_value}\n    ours:     {our_value}\n"
                ));
            }
        }
        if differs {
            report.push_str(&format!(
                "  upstream stderr: {their_out}\n  ours stderr: {our_out}\n"
            ));
        }
        eprintln!("{report}");
        report.clear();
    }
    let listed = listed_differences()?;
    let found_keys: BTreeSet<(String, String)> = found.keys().cloned().collect();
    let unlisted: Vec<String> = found
        .iter()
        .filter(|(k, _)| !listed.contains(*k))
        .map(|((row, field), detail)| format!("| {row} | {field} |\n      {detail}"))
        .collect();
    let stale: Vec<String> = listed
        .difference(&found_keys)
        .map(|(row, field)| format!("| {row} | {field} |"))
        .collect();
    println!("{report}");
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "differences not in docs/COMPATIBILITY.md:\n{}\nlisted there but not found:\n{}",
        unlisted.join("\n"),
        stale.join("\n")
    );
    Ok(())
}
