//! The command line: flags, settings, one request on stdin, one response on stdout.
//!
//! Exit status 0 with the response on stdout, or 1 with one line on stderr and nothing on stdout.
//! With `--doctor[=IMAGE_OR_REGISTRY]` it reads no request and prints a report of the node's setup
//! instead (exit 1 when a pull would fail).

use crate::bindings::BindingFlags;
use crate::doctor::DoctorArgs;
use crate::node::{NodeConfig, NodeError, NodeFlags};
use crate::protocol::{ProtocolError, parse_request};
use crate::provider::{Provider, ProviderError};
use acr_broker::{Env, SystemClock};
use clap::Parser;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const PROGRAM: &str = "acr-credential-provider";
/// Largest request read from stdin.
const MAX_REQUEST: u64 = 1024 * 1024;

/// Kubelet image credential provider for Azure Container Registry.
///
/// Flags are those of the AKS plugin (a single-valued flag given twice keeps the last value, as
/// there), plus this provider's own.
///
/// Reads one CredentialProviderRequest (credentialprovider.kubelet.k8s.io/v1, v1beta1 or
/// v1alpha1) on stdin and writes one CredentialProviderResponse on stdout. Tokens come from the
/// node identity (AZURE_JSON if given, else workload identity, managed identity or the
/// environment) or, for pods whose service account is annotated with
/// kubernetes.azure.com/acr-client-id, from the pod's own identity.
///
/// To check a node, run it with the arguments of its CredentialProviderConfig entry plus
/// --doctor=IMAGE (e.g. --doctor=myregistry.azurecr.io/app:1).
#[derive(Debug, Default, Parser)]
#[command(name = PROGRAM, version)]
struct Cli {
    /// The node's azure.json (AKS: /etc/kubernetes/azure.json); its identity and cloud are used.
    #[arg(value_name = "AZURE_JSON")]
    azure_json: Option<PathBuf>,

    /// Pull images on SRC with the credentials of the ACR login server DST, with the node's
    /// identity; each side is host or host:port (e.g. mcr.microsoft.com:myregistry.azurecr.io),
    /// DST optionally followed by a repository path. Given twice, the last value wins, as for
    /// the AKS plugin: list several mappings in one value, comma-separated.
    #[arg(
        short = 'r',
        long,
        overrides_with = "registry_mirror",
        value_name = "SRC:DST[,SRC:DST]"
    )]
    registry_mirror: Option<String>,

    /// Identity bindings: the TLS server name of the cluster's local token authority (AKS
    /// service-account image pull). Pods then pull as the client id their service account's
    /// kubernetes.azure.com/acr-client-id annotation names.
    #[arg(long, overrides_with = "ib_sni_name", value_name = "NAME")]
    ib_sni_name: Option<String>,

    /// Identity bindings: the client id for service accounts without the annotation.
    #[arg(
        long,
        overrides_with = "ib_default_client_id",
        value_name = "CLIENT_ID"
    )]
    ib_default_client_id: Option<String>,

    /// Identity bindings: the tenant for service accounts without the
    /// kubernetes.azure.com/acr-tenant-id annotation [default: azure.json's tenantId].
    #[arg(
        long,
        overrides_with = "ib_default_tenant_id",
        value_name = "TENANT_ID"
    )]
    ib_default_tenant_id: Option<String>,

    /// Identity bindings: the API server's address (IP or name), reached on port 443.
    #[arg(long, overrides_with = "ib_apiserver_ip", value_name = "ADDRESS")]
    ib_apiserver_ip: Option<String>,

    /// Identity bindings: the cluster CA bundle, the only roots trusted for the local authority
    /// [default: /etc/kubernetes/certs/ca.crt].
    #[arg(long, overrides_with = "ib_ca_file", value_name = "FILE")]
    ib_ca_file: Option<PathBuf>,

    /// Kubernetes log verbosity (accepted as the AKS plugin does): 0-1 warnings, 2-3 info,
    /// 4 debug, 5 and more trace. ACR_LOG, when set, wins.
    #[arg(
        short = 'v',
        long = "v",
        overrides_with = "verbosity",
        value_name = "LEVEL"
    )]
    verbosity: Option<u8>,

    /// Kubernetes per-file log verbosity; accepted for compatibility and ignored.
    #[arg(long, overrides_with = "vmodule", value_name = "PATTERN=N,...")]
    vmodule: Option<String>,

    /// Kubernetes log flush interval; accepted for compatibility and ignored (every line is
    /// written at once).
    #[arg(long, overrides_with = "log_flush_frequency", value_name = "DURATION")]
    log_flush_frequency: Option<String>,

    /// Token cache folder [default: $ACR_CACHE_DIR, else /var/lib/kubelet/acr-credential-provider].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Use the node identity where the AKS plugin fails for want of a pod identity: a pod's
    /// service-account token without the kubernetes.azure.com/acr-client-id annotation, or
    /// identity bindings (--ib-sni-name) without a token (static pods).
    #[arg(long)]
    fallback_to_node_identity: bool,

    /// On a service-principal node (azure.json useManagedIdentityExtension: false), exchange the
    /// service principal's secret for a short-lived ACR token instead of handing the id and
    /// secret to the container runtime as the AKS plugin does (falls back to them when no token
    /// can be had, e.g. for a registry in another tenant).
    #[arg(long)]
    exchange_sp_secret: bool,

    /// Read no request: check this node's setup (azure.json, identity, mirrors, cache folder and,
    /// given an image or registry, its challenge and a token) and print a report; exit 1 when a
    /// pull would fail. Secrets are never printed.
    #[arg(
        long,
        value_name = "IMAGE_OR_REGISTRY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    doctor: Option<String>,

    /// With --doctor: print the report as JSON.
    #[arg(long, requires = "doctor")]
    json: bool,
}

impl Cli {
    /// The flags that configure the node, for [`NodeConfig::from_flags`].
    fn node_flags(self) -> NodeFlags {
        NodeFlags {
            azure_json: self.azure_json,
            registry_mirror: self.registry_mirror.into_iter().collect(),
            cache_dir: self.cache_dir,
            fallback_to_node_identity: self.fallback_to_node_identity,
            exchange_sp_secret: self.exchange_sp_secret,
            identity_bindings: BindingFlags {
                sni_name: self.ib_sni_name,
                default_client_id: self.ib_default_client_id,
                default_tenant_id: self.ib_default_tenant_id,
                apiserver: self.ib_apiserver_ip,
                ca_file: self.ib_ca_file,
            },
        }
    }
}

/// Why a run fails; printed once, as one line on stderr, by [`fail`].
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The command line cannot be parsed (clap's message, as one line).
    #[error("{0}; run with --help for usage")]
    Usage(String),
    /// stdin cannot be read.
    #[error("cannot read the request on stdin: {0}")]
    ReadRequest(std::io::Error),
    /// stdin holds more than a request can be.
    #[error("the request on stdin is larger than 1 MiB")]
    RequestTooLarge,
    /// The node's configuration cannot serve a request.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The request is not one the provider reads.
    #[error(transparent)]
    Request(#[from] ProtocolError),
    /// No credential can be given.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// stdout cannot be written.
    #[error("cannot write the {what}: {source}")]
    Write {
        /// `response` or `report`.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The log level `-v N` means, as ACR_LOG would name it.
fn verbosity_level(v: u8) -> &'static str {
    match v {
        0 | 1 => "warn",
        2 | 3 => "info",
        4 => "debug",
        _ => "trace",
    }
}

/// What clap makes of the command lines the kubelet runs the provider with on AKS (the
/// azure.json path alone, not empty) and of none at all; `None` for any other, which clap parses. These
/// skip building clap's parser, which would cost a cache hit a fifth of its work.
fn plain(args: &[OsString]) -> Option<Cli> {
    match args {
        [] => Some(Cli::default()),
        [azure_json]
            if !azure_json.is_empty() && !azure_json.as_encoded_bytes().starts_with(b"-") =>
        {
            Some(Cli {
                azure_json: Some(PathBuf::from(azure_json)),
                ..Cli::default()
            })
        }
        _ => None,
    }
}

/// Runs the provider once.
pub fn run() -> ExitCode {
    let env = Env::process();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let parsed = plain(&args).map_or_else(Cli::try_parse, Ok);
    let level = env.get("ACR_LOG").or_else(|| {
        parsed
            .as_ref()
            .ok()
            .and_then(|c| c.verbosity)
            .map(verbosity_level)
    });
    acr_broker::logging::init(PROGRAM, level);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message up to its usage block, as one line: some messages (a missing
            // argument) name what is wrong on their second line.
            let text = e.to_string();
            let first = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            return fail(&CliError::Usage(first.to_string()));
        }
    };
    if let Some(target) = cli.doctor.clone() {
        return doctor(cli, env, target);
    }
    match read_request().and_then(|input| serve(cli, env, &input)) {
        Ok(json) => match print(&json, "response") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Err(e) => fail(&e),
    }
}

/// The request on stdin, at most [`MAX_REQUEST`] bytes.
fn read_request() -> Result<Vec<u8>, CliError> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut input)
        .map_err(CliError::ReadRequest)?;
    if input.len() as u64 > MAX_REQUEST {
        return Err(CliError::RequestTooLarge);
    }
    Ok(input)
}

/// Writes `text` and a newline on stdout; `what` names it in the error.
fn print(text: &str, what: &'static str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write { what, source })
}

/// Prints the `--doctor` report on stdout; failure when a pull would fail.
fn doctor(cli: Cli, env: Env, target: String) -> ExitCode {
    let as_json = cli.json;
    let args = DoctorArgs {
        node: cli.node_flags(),
        target: Some(target).filter(|t| !t.trim().is_empty()),
    };
    let report = crate::doctor::doctor(env, &args);
    if let Err(e) = print(&report.render(as_json), "report") {
        return fail(&e);
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the provider from flags and environment, then answers the request.
fn serve(cli: Cli, env: Env, input: &[u8]) -> Result<String, CliError> {
    let (settings, options) = NodeConfig::from_flags(&cli.node_flags(), env).into_options()?;
    let provider = Provider::new(settings, options, Arc::new(SystemClock))?;
    let request = parse_request(input)?;
    let response = provider.respond(&request)?;
    Ok(response.to_json())
}

/// Prints `error` as one line on stderr and returns the failure status: the one place a run's
/// error is shown.
fn fail(error: &CliError) -> ExitCode {
    let text = error.to_string();
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("{PROGRAM}: error: {line}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command lines [`plain`] reads are read as clap reads them; any other is left to clap.
    #[test]
    fn plain_command_lines_are_read_as_clap_reads_them() {
        for args in [&[][..], &["/etc/kubernetes/azure.json"], &["azure.json"]] {
            let os: Vec<OsString> = args.iter().map(OsString::from).collect();
            let clap = Cli::try_parse_from(std::iter::once(PROGRAM).chain(args.iter().copied()));
            assert_eq!(
                format!("{:?}", plain(&os)),
                format!("{:?}", clap.ok()),
                "{args:?}"
            );
        }
        for args in [
            &["-v", "2"][..],
            &["--version"],
            &["-"],
            &[""],
            &["/etc/kubernetes/azure.json", "--registry-mirror=a:b"],
            &["a", "b"],
        ] {
            let os: Vec<OsString> = args.iter().map(OsString::from).collect();
            assert!(plain(&os).is_none(), "{args:?}");
        }
    }
}
