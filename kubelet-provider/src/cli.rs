//! The command line: flags, settings, one request on stdin, one response on stdout.
//!
//! Exit status 0 with the response on stdout, or 1 with one line on stderr and nothing on stdout.

use crate::azure_json::AzureJson;
use crate::mirror::Mirrors;
use crate::protocol::parse_request;
use crate::provider::{Options, Provider};
use acr_broker::{Env, Settings, SystemClock};
use clap::Parser;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const PROGRAM: &str = "acr-credential-provider";
/// Where tokens are cached unless `--cache-dir` or `ACR_CACHE_DIR` says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/kubelet/acr-credential-provider";
/// Largest request read from stdin.
const MAX_REQUEST: u64 = 1024 * 1024;

/// Kubelet image credential provider for Azure Container Registry.
///
/// Reads one CredentialProviderRequest (credentialprovider.kubelet.k8s.io/v1, v1beta1 or
/// v1alpha1) on stdin and writes one CredentialProviderResponse on stdout. Tokens come from the
/// node identity (AZURE_JSON if given, else workload identity, managed identity or the
/// environment) or, for pods whose service account is annotated with
/// kubernetes.azure.com/acr-client-id, from the pod's own identity.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version)]
struct Cli {
    /// The node's azure.json (AKS: /etc/kubernetes/azure.json); its identity and cloud are used.
    #[arg(value_name = "AZURE_JSON")]
    azure_json: Option<PathBuf>,

    /// Pull images on SRC with the credentials of the ACR login server DST; each side is
    /// host or host:port (e.g. localhost:5000:myregistry.azurecr.io). Repeatable.
    #[arg(long = "registry-mirror", value_name = "SRC:DST[,SRC:DST]")]
    registry_mirror: Vec<String>,

    /// Token cache folder [default: $ACR_CACHE_DIR, else /var/lib/kubelet/acr-credential-provider].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Use the node identity when a pod's service-account token comes without the
    /// kubernetes.azure.com/acr-client-id annotation, instead of failing.
    #[arg(long)]
    fallback_to_node_identity: bool,
}

/// Runs the provider once.
pub fn run() -> ExitCode {
    let env = Env::process();
    acr_broker::logging::init(PROGRAM, env.get("ACR_LOG"));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            return fail(&format!("{first}; run with --help for usage"));
        }
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut input)
    {
        return fail(&format!("cannot read the request on stdin: {e}"));
    }
    if input.len() as u64 > MAX_REQUEST {
        return fail("the request on stdin is larger than 1 MiB");
    }
    match serve(cli, env, &input) {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{json}").and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("cannot write the response: {e}")),
            }
        }
        Err(message) => fail(&message),
    }
}

/// Builds the provider from flags and environment, then answers the request.
fn serve(cli: Cli, mut env: Env, input: &[u8]) -> Result<String, String> {
    if let Some(dir) = &cli.cache_dir {
        env.set("ACR_CACHE_DIR", dir.to_string_lossy());
    }
    let settings = Settings::from_env(env, Some(PathBuf::from(DEFAULT_CACHE_DIR)))
        .map_err(|e| e.to_string())?;
    let azure_json = cli
        .azure_json
        .as_deref()
        .map(AzureJson::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mirrors = Mirrors::parse(&cli.registry_mirror).map_err(|e| e.to_string())?;
    let provider = Provider::new(
        settings,
        Options {
            azure_json,
            mirrors,
            fallback_to_node_identity: cli.fallback_to_node_identity,
        },
        Arc::new(SystemClock),
    )
    .map_err(|e| e.to_string())?;
    let request = parse_request(input).map_err(|e| e.to_string())?;
    let response = provider.respond(&request).map_err(|e| e.to_string())?;
    Ok(response.to_json())
}

/// Prints `message` as one line on stderr and returns the failure status.
fn fail(message: &str) -> ExitCode {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("{PROGRAM}: error: {line}");
    ExitCode::FAILURE
}
