//! `docker-credential-acr`: the Docker credential helper for Azure Container Registry.
//!
//! Docker, skopeo, podman and buildah run `docker-credential-acr <action>` with the request on
//! stdin. Only the answer (or the protocol's error message) goes to stdout; logs go to stderr,
//! at the level named by `ACR_LOG`.

use acr_broker::Env;
use clap::{Parser, Subcommand};
use docker_credential_acr::actions;
use docker_credential_acr::failure::Failure;
use std::io::Write;
use std::process::ExitCode;

/// Docker credential helper for Azure Container Registry: short-lived registry tokens derived
/// from an Entra identity, cached and refreshed before they expire.
#[derive(Debug, Parser)]
#[command(name = "docker-credential-acr", disable_version_flag = true)]
struct Cli {
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print credentials for the server URL on stdin (Docker protocol).
    Get,
    /// Keep the credentials JSON on stdin, as given to `docker login` (Docker protocol).
    Store,
    /// Remove stored credentials and cached tokens of the server URL on stdin (Docker protocol).
    Erase,
    /// List servers with stored credentials or cached tokens (Docker protocol).
    List,
    /// Print the version.
    Version,
    /// Explain which identity and settings are in use and whether a pull would authenticate.
    Doctor {
        /// A registry to check end to end (challenge and token); REGISTRY/REPOSITORY also shows
        /// what a token for that repository really grants (pull, push, delete).
        registry: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a registry token for tools that cannot run a credential helper (a Kubernetes
    /// Secret, Argo CD Image Updater, `skopeo login --password-stdin`). The token is a secret:
    /// it goes to stdout only; keep it out of shell history, logs and CI output.
    Token {
        /// The registry (login server), e.g. myregistry.azurecr.io.
        registry: String,
        /// The shape: json (as `az acr login --expose-token`), basic (USERNAME:PASSWORD) or
        /// dockerconfigjson (a kubernetes.io/dockerconfigjson Secret's data).
        #[arg(long, value_enum, default_value = "json")]
        output: docker_credential_acr::token::Output,
        /// Instead of the refresh token, an access token from /oauth2/token that grants no more
        /// than this scope: repository:NAME:pull[,push][,delete] (repeatable; --output json
        /// only).
        #[arg(long = "scope", value_name = "repository:NAME:ACTIONS")]
        scopes: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Add credHelpers entries for registries to Docker's config.json (and, with --containers,
    /// to the auth.json of podman, buildah and skopeo; with --helm, to Helm's registry config).
    ConfigureDocker {
        /// Login servers, comma-separated (e.g. myregistry.azurecr.io,other.azurecr.io).
        #[arg(long, value_delimiter = ',', required = true)]
        registries: Vec<String>,
        /// Also configure podman, buildah and skopeo: $REGISTRY_AUTH_FILE, else
        /// $XDG_CONFIG_HOME/containers/auth.json.
        #[arg(long)]
        containers: bool,
        /// Also configure Helm, which reads its own registry config before Docker's:
        /// $HELM_REGISTRY_CONFIG, else $XDG_CONFIG_HOME/helm/registry/config.json.
        #[arg(long)]
        helm: bool,
    },
}

const USAGE: &str = "usage: docker-credential-acr <get|store|erase|list|version|configure-docker|doctor|token|completions>; run with --help for details";

const TOKEN_USAGE: &str = "usage: docker-credential-acr token REGISTRY [--output json|basic|dockerconfigjson] [--scope repository:NAME:pull[,push][,delete]]";

fn main() -> ExitCode {
    let env = Env::process();
    acr_broker::logging::init("docker-credential-acr", env.get("ACR_LOG"));
    // The hot path, `get` exactly as credential clients run it, skips building the parser.
    let mut args = std::env::args_os().skip(1);
    if let (Some(action), None) = (args.next(), args.next())
        && action == "get"
    {
        let result =
            actions::read_stdin(std::io::stdin().lock()).and_then(|i| actions::get(env, &i));
        return emit(result, false);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let detail = e.to_string();
            let first = detail
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            // `token`'s output is captured by scripts (`$(docker-credential-acr token …)`): its
            // errors go to stderr, so that no message is ever taken for a token.
            if std::env::args_os().nth(1).is_some_and(|a| a == "token") {
                return emit(Err(Failure::Usage(format!("{first}; {TOKEN_USAGE}"))), true);
            }
            return emit(Err(Failure::Usage(format!("{first}; {USAGE}"))), false);
        }
    };
    if cli.version {
        return emit(Ok(version()), false);
    }
    let Some(action) = cli.action else {
        return emit(
            Err(Failure::Usage(format!("no action given; {USAGE}"))),
            false,
        );
    };
    let mut stdin = std::io::stdin().lock();
    let result = match action {
        Action::Get => actions::read_stdin(&mut stdin).and_then(|i| actions::get(env, &i)),
        Action::Store => actions::read_stdin(&mut stdin).and_then(|i| actions::store(env, &i)),
        Action::Erase => actions::read_stdin(&mut stdin).and_then(|i| actions::erase(env, &i)),
        Action::List => actions::list(env),
        Action::Version => Ok(version()),
        Action::Doctor { registry, json } => {
            let (report, ok) =
                docker_credential_acr::doctor::doctor(env, registry.as_deref(), json);
            println!("{report}");
            return if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Action::Token {
            registry,
            output,
            scopes,
        } => {
            return emit(
                docker_credential_acr::token::token(env, &registry, output, &scopes),
                true,
            );
        }
        Action::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "docker-credential-acr",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Action::ConfigureDocker {
            registries,
            containers,
            helm,
        } => {
            return emit(
                actions::configure_docker(env, &registries, containers, helm),
                true,
            );
        }
    };
    emit(result, false)
}

fn version() -> String {
    format!("docker-credential-acr {}", env!("CARGO_PKG_VERSION"))
}

/// Writes the answer to stdout, or the error to stdout (protocol actions) or stderr (others).
/// Not-found is the protocol's answer, always on stdout, where clients compare it.
fn emit(result: Result<String, Failure>, errors_to_stderr: bool) -> ExitCode {
    let (text, code, to_stderr) = match result {
        Ok(text) => (text, ExitCode::SUCCESS, false),
        Err(not_found @ Failure::NotFound) => (not_found.to_string(), ExitCode::FAILURE, false),
        Err(e) => (e.to_string(), ExitCode::FAILURE, errors_to_stderr),
    };
    if text.is_empty() {
        return code;
    }
    let written = if to_stderr {
        writeln!(std::io::stderr(), "docker-credential-acr: {text}")
    } else {
        writeln!(std::io::stdout(), "{text}")
    };
    match written {
        Ok(()) => code,
        // The client went away (closed pipe): nothing to tell anyone.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(_) => ExitCode::FAILURE,
    }
}
