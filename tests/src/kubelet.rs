//! The kubelet's own credential-provider code as a test client: `tests/kubelet-harness`, a small
//! Go program built against `k8s.io/kubernetes` v1.36.3's `pkg/credentialprovider/plugin`.
//!
//! [`build`] compiles it into the cargo target folder (`go build`, quick when Go's build cache is
//! warm: `scripts/install-deps.sh` warms it); [`run`] hands it a [`Plan`] and reads back what the
//! kubelet would give the container runtime for each lookup ([`Output`]). The harness registers
//! the plugins through the kubelet's loader (`RegisterCredentialProviderPlugins`: strict decoding
//! and validation of the `CredentialProviderConfig`), resolves each image through the kubelet's
//! keyring (`NewExternalCredentialProviderDockerKeyring(...).Lookup`), and counts plugin runs with
//! the kubelet's own metric (`kubelet_credential_provider_plugin_duration`, observed once per
//! execution), so "the cache answered" is [`LookupResult::plugin_runs`] `== 0`. With
//! [`Plan::record`] a shim between the kubelet and the plugin records each execution's request and
//! response ([`Exec`]) exactly as they crossed the pipe.
//!
//! See `tests/kubelet-harness/main.go` for the plan and output formats.

use crate::sandbox::inside_private_netns;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the harness functions return.
pub type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The harness's source folder (`tests/kubelet-harness`).
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kubelet-harness")
}

/// Where [`build`] puts the binary: `target/<profile>/kubelet-harness`, beside the workspace's
/// binaries (tests run from `target/<profile>/deps/`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().unwrap_or(Path::new("."));
    let profile_dir = match deps.parent() {
        Some(profile) if deps.file_name().is_some_and(|n| n == "deps") => profile,
        _ => deps,
    };
    profile_dir.join("kubelet-harness")
}

/// Builds the harness with `go build` (module and build caches must be warm inside a test's
/// network namespace, which has no network: call this before [`crate::e2e::isolated`]; in the
/// inner run it only checks that the binary is there). Returns its path.
pub fn build() -> Result<PathBuf> {
    let out = binary();
    if inside_private_netns() {
        return if out.is_file() {
            Ok(out)
        } else {
            Err(format!("{} is missing: the outer run builds it", out.display()).into())
        };
    }
    let result = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(source_dir())
        // go.sum as committed; this machine's Go, never a downloaded toolchain.
        .env("GOFLAGS", "-mod=readonly")
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("go could not start ({e}): install Go 1.26 (scripts/install-deps.sh)")
        })?;
    if !result.status.success() {
        return Err(format!(
            "go build of {} failed ({}):\n{}",
            source_dir().display(),
            result.status,
            String::from_utf8_lossy(&result.stderr)
        )
        .into());
    }
    Ok(out)
}

/// What the harness does: the kubelet's two flags, the fake API server's service accounts, and the
/// lookups, in order, in one process (so the kubelet's cache carries over).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `--image-credential-provider-config`.
    pub config: PathBuf,
    /// `--image-credential-provider-bin-dir`.
    pub bin_dir: PathBuf,
    /// Record every plugin execution through the harness's shim.
    pub record: bool,
    /// Feature gates to set on the kubelet (unset: 1.36's defaults).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    /// The service accounts the kubelet may ask about.
    pub service_accounts: Vec<ServiceAccount>,
    /// The lookups.
    pub lookups: Vec<Lookup>,
}

/// A service account of the fake API server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceAccount {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Its annotations (the kubelet passes those the config's tokenAttributes name).
    pub annotations: BTreeMap<String, String>,
    /// The token handed out for each audience; a TokenRequest for another audience fails.
    pub tokens: BTreeMap<String, String>,
}

/// One image pull's credential lookup.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lookup {
    /// The image, as in the pod spec.
    pub image: String,
    /// The pod it is pulled for.
    pub pod: Pod,
}

/// The pod of a lookup; an empty service account is a pod without one (a static pod).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Service account name.
    pub service_account: String,
}

impl Lookup {
    /// A lookup of `image` for a pod without a service account.
    pub fn static_pod(image: &str) -> Lookup {
        Lookup {
            image: image.to_owned(),
            pod: Pod {
                namespace: "kube-system".into(),
                name: "static-pod".into(),
                uid: "00000000-0000-4000-8000-00000000000a".into(),
                service_account: String::new(),
            },
        }
    }

    /// A lookup of `image` for pod `name` (UID `uid`) running as service account `sa` in
    /// `namespace`.
    pub fn for_pod(image: &str, namespace: &str, name: &str, uid: &str, sa: &str) -> Lookup {
        Lookup {
            image: image.to_owned(),
            pod: Pod {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.into(),
                service_account: sa.into(),
            },
        }
    }
}

/// What the harness printed.
#[derive(Debug, Clone, Deserialize)]
pub struct Output {
    /// One result per lookup, in order.
    pub lookups: Vec<LookupResult>,
}

/// One lookup's outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupResult {
    /// The image.
    pub image: String,
    /// Whether the keyring matched any credential.
    pub found: bool,
    /// What the kubelet hands the runtime, in the order its puller tries them.
    pub credentials: Vec<Credential>,
    /// How many times the kubelet executed a plugin for this lookup (its metric).
    pub plugin_runs: u64,
    /// How many of those failed (its metric).
    pub plugin_errors: f64,
    /// The TokenRequests the kubelet made.
    pub token_requests: Vec<TokenRequest>,
    /// The recorded executions ([`Plan::record`]).
    pub execs: Vec<Exec>,
}

/// A credential as the kubelet hands it to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credential {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Where the kubelet notes it came from (a service account), if anywhere.
    pub source: Option<Source>,
}

/// A credential's origin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The service account whose token the plugin was given.
    pub service_account: Option<Coordinates>,
}

/// Namespace, name and UID of an object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Coordinates {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// A TokenRequest the kubelet made.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    /// The service account's namespace.
    pub namespace: String,
    /// Its name.
    pub service_account: String,
    /// Its UID (the request's metadata.uid).
    #[serde(rename = "serviceAccountUID")]
    pub service_account_uid: String,
    /// The audiences asked for.
    pub audiences: Vec<String>,
    /// The bound object's kind (`Pod`).
    pub bound_kind: String,
    /// Its name.
    pub bound_name: String,
    /// Its UID.
    #[serde(rename = "boundUID")]
    pub bound_uid: String,
    /// Whether the plan had a token for the audience.
    pub served: bool,
}

/// One plugin execution, as recorded between the kubelet and the plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exec {
    /// The plugin's name.
    pub plugin: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The request the kubelet wrote.
    pub stdin: String,
    /// The plugin's answer.
    pub stdout: String,
    /// What the plugin logged.
    pub stderr: String,
    /// Its exit status.
    pub exit_code: i32,
}

/// A harness run: its output (when it got as far as printing one), stderr (the kubelet's log and
/// the harness's errors) and whether it exited 0.
#[derive(Debug)]
pub struct Run {
    /// The parsed output; `None` when the harness failed (e.g. the loader refused the config).
    pub output: Option<Output>,
    /// Its stdout, verbatim.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `harness` on `plan` with exactly `env` (the kubelet passes its environment on to the
/// plugins).
pub fn run(harness: &Path, plan: &Plan, env: &BTreeMap<String, String>) -> Result<Run> {
    let mut child = Command::new(harness)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} could not start: {e}", harness.display()))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(serde_json::to_string(plan)?.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let output = if out.status.success() {
        Some(serde_json::from_str(&stdout).map_err(|e| {
            format!("the harness printed no output ({e}):\n{stdout}\nstderr: {stderr}")
        })?)
    } else {
        None
    };
    Ok(Run {
        output,
        stdout,
        stderr,
    })
}
