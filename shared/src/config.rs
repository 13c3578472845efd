//! Settings, read once from the environment (or from a map in tests) into [`Settings`].
//!
//! | variable | meaning |
//! |---|---|
//! | `ACR_IDENTITY` | force one identity source: `secret`, `certificate`, `workload`, `federated-token`, `github`, `azure-pipelines`, `managed` (`app-service` or `imds`), `cli` |
//! | `ACR_LOGIN_SERVERS` | extra login servers to serve, comma-separated `host[:port]` or `*.<suffix>` (custom domains, custom clouds, test hosts) |
//! | `ACR_AUDIENCE` | `acr` (`https://containerregistry.azure.net/.default`) or `arm` (`https://management.azure.com/.default`): only this one is tried. Unset: ACR's first, then ARM's once if the registry refuses the audience (remembered per registry and identity) |
//! | `ACR_MIN_VALIDITY` | the least life a handed-out token has left, e.g. `90m`, `2h`, `3600s` (default 60 minutes, best effort; set, it is strict); see [`crate::validity`] |
//! | `ACR_CACHE_DIR` | cache folder (default: in a CI job, the job's temporary folder `$RUNNER_TEMP`/`$AGENT_TEMPDIRECTORY`; else `$XDG_CACHE_HOME/docker-credential-acr`, else `~/.cache/docker-credential-acr`) |
//! | `ACR_TIMEOUT` | overall deadline of one fetch in seconds (default 30) |
//! | `ACR_DMI_ASSET_TAG_FILE` | where the machine's DMI chassis asset tag is read (default `/sys/class/dmi/id/chassis_asset_tag`): IMDS is chosen when it holds Azure's tag. Tests point it elsewhere so that they behave alike on and off Azure VMs |
//! | `ACR_CLOUD` | the cloud the identity belongs to: `public` (default), `china`, `usgov`; its credential goes only to that cloud's authority |
//! | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`, `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`, `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` | the conventional Azure settings |
//! | `AZURE_FEDERATED_TOKEN` | a federated token (JWT) given directly, e.g. GitLab's `id_tokens` |
//! | `ACTIONS_ID_TOKEN_REQUEST_URL`, `ACTIONS_ID_TOKEN_REQUEST_TOKEN` | GitHub Actions' OIDC endpoint (set by the runner) |
//! | `SYSTEM_OIDCREQUESTURI`, `SYSTEM_ACCESSTOKEN`, `SYSTEM_PLANID`, `SYSTEM_JOBID`, `AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`, `AZURESUBSCRIPTION_TENANT_ID`, `AZURESUBSCRIPTION_CLIENT_ID` | Azure Pipelines' OIDC endpoint and service connection (set by the agent and the AzureCLI@2 task) |

use crate::audience::{Audience, AudiencePolicy};
use crate::error::Error;
use crate::registry::{Cloud, LoginServer, normalize_host};
use crate::secret::Secret;
use crate::validity::MinValidity;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::audience::{ACR_SCOPE, ARM_SCOPE};

/// A snapshot of environment variables; the only way the broker reads the environment.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    /// Taken from the process, so only [`relevant`] names were kept.
    filtered: bool,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets (AZURE_CLIENT_SECRET): show names only.
        let keys: Vec<_> = self.vars.keys().collect();
        f.debug_struct("Env").field("names", &keys).finish()
    }
}

/// Whether any part of this project reads the variable `name`. [`Env::process`] keeps only
/// these: copying a whole environment (often dozens of variables) was a tenth of a cache hit's
/// instructions. Debug builds check every read against this list.
pub fn relevant(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "ACR_",
        "AZURE_",
        "IDENTITY_",
        "XDG_",
        "DOCKER_",
        "DBUS_",
        "ACTIONS_ID_TOKEN_",
        "AZURESUBSCRIPTION_",
    ];
    const NAMES: &[&str] = &[
        "HOME",
        // Windows' home, per-user settings and caches (crate::platform).
        "USERPROFILE",
        "APPDATA",
        "LOCALAPPDATA",
        "PATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "REGISTRY_AUTH_FILE",
        "HELM_REGISTRY_CONFIG",
        "IMDS_ENDPOINT",
        "SYSTEM_OIDCREQUESTURI",
        "SYSTEM_ACCESSTOKEN",
        "SYSTEM_PLANID",
        "SYSTEM_JOBID",
        "RUNNER_TEMP",
        "AGENT_TEMPDIRECTORY",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

impl Env {
    /// The process environment's `relevant` variables (those that are not valid UTF-8 are
    /// left out), named as the platform compares names (on Windows, without case: `Path` is
    /// `PATH`).
    pub fn process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| {
                    let k = crate::platform::env_name(k.to_str()?).into_owned();
                    relevant(&k).then_some((k, v.into_string().ok()?))
                })
                .collect(),
            filtered: true,
        }
    }

    /// An environment made of the given pairs and nothing of the machine: no variable of the
    /// process, and no machine file a setting would default to (the DMI asset tag is read only
    /// where `ACR_DMI_ASSET_TAG_FILE` names it), so tests and simulations behave alike on any
    /// machine, an Azure VM included.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            filtered: false,
        }
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        debug_assert!(
            !self.filtered || relevant(key),
            "{key} is read but config::relevant() leaves it out of Env::process()"
        );
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A variable that a setting names (a config file's `secret_env`), which `relevant` cannot
    /// list: read from the process when this snapshot was taken from it, else from the pairs.
    /// Empty counts as unset.
    pub fn named(&self, key: &str) -> Option<String> {
        if self.filtered && !relevant(key) {
            return std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        }
        self.get(key).map(str::to_string)
    }

    /// The user's config folder: `$XDG_CONFIG_HOME`, else `$HOME/.config` (on Windows
    /// `%APPDATA%`); `None` when neither is set. A relative value is ignored, as the XDG base
    /// directory specification says: it would name a folder under whatever folder the program
    /// runs in.
    pub fn config_home(&self) -> Option<PathBuf> {
        let (var, sub) = crate::platform::CONFIG_HOME;
        self.get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| self.get(var).map(|h| PathBuf::from(h).join(sub)))
            .filter(|d| d.is_absolute())
    }

    /// The user's home folder: `$HOME` (on Windows `%USERPROFILE%`).
    pub fn home(&self) -> Option<&str> {
        self.get(crate::platform::HOME)
    }

    /// Sets a variable (for callers that add settings from flags).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.vars.insert(key.to_string(), value.into());
    }

    /// Removes a variable.
    pub fn unset(&mut self, key: &str) {
        self.vars.remove(key);
    }
}

/// Which identity source configuration forces, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    /// Service principal with a client secret.
    Secret,
    /// Service principal with a certificate.
    Certificate,
    /// Workload identity (federated token file).
    Workload,
    /// A federated token in `AZURE_FEDERATED_TOKEN`.
    FederatedToken,
    /// GitHub Actions' OIDC token.
    GitHub,
    /// Azure Pipelines' OIDC token for a service connection.
    AzurePipelines,
    /// Managed identity, App Service endpoint if set, else IMDS.
    Managed,
    /// Managed identity through the App Service style endpoint.
    AppService,
    /// Managed identity through IMDS.
    Imds,
    /// Managed identity of an Azure Arc-enabled server, through its local agent (HIMDS).
    Arc,
    /// The Azure CLI's login.
    Cli,
}

impl SourceChoice {
    /// The names `ACR_IDENTITY` (and a config file's `identity`) take, for messages.
    pub const NAMES: &'static str =
        "secret, certificate, workload, managed, app-service, arc, imds, cli";

    /// The source `s` names (see [`SourceChoice::NAMES`]).
    pub fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "secret" | "client-secret" => SourceChoice::Secret,
            "certificate" | "cert" | "client-certificate" => SourceChoice::Certificate,
            "workload" | "workload-identity" => SourceChoice::Workload,
            "federated-token" => SourceChoice::FederatedToken,
            "github" | "github-actions" => SourceChoice::GitHub,
            "azure-pipelines" | "pipelines" => SourceChoice::AzurePipelines,
            "managed" | "managed-identity" | "msi" => SourceChoice::Managed,
            "app-service" => SourceChoice::AppService,
            "imds" => SourceChoice::Imds,
            "arc" | "azure-arc" => SourceChoice::Arc,
            "cli" | "azure-cli" | "az" => SourceChoice::Cli,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "ACR_IDENTITY={other:?} is not one of {}",
                    SourceChoice::NAMES
                )));
            }
        })
    }
}

/// Everything the broker needs to know, resolved from the environment before any work.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The raw environment, for the identity sources.
    pub env: Env,
    /// A source forced by `ACR_IDENTITY`.
    pub forced_source: Option<SourceChoice>,
    /// Extra login servers, normalised.
    pub extra_login_servers: Vec<String>,
    /// `ACR_AUDIENCE`, when set: the one audience asked for (see [`Settings::audience_for`]).
    pub audience: Option<Audience>,
    /// `ACR_MIN_VALIDITY`, else the default (see [`Settings::min_validity_for`]).
    pub min_validity: MinValidity,
    /// The cache folder, or `None` when no home folder is known (then nothing is cached).
    pub cache_dir: Option<PathBuf>,
    /// Overall deadline of one fetch.
    pub timeout: Duration,
    /// `AZURE_AUTHORITY_HOST`, when set (must be https).
    pub authority_host: Option<String>,
    /// `ACR_CLOUD`: the cloud the identity belongs to, when set.
    pub cloud: Option<Cloud>,
    /// The file holding the DMI chassis asset tag: `ACR_DMI_ASSET_TAG_FILE`, else the machine's
    /// `/sys/class/dmi/id/chassis_asset_tag` for the process environment; `None` (none is read)
    /// for an environment made of pairs that names none.
    pub asset_tag_file: Option<PathBuf>,
    /// The identity's files (certificate, federated token file) are named by a config file
    /// rule: they are read only as the config file itself is (`files::read_trusted`).
    pub files_from_config: bool,
}

/// Where Linux exposes the DMI chassis asset tag.
pub const ASSET_TAG_FILE: &str = "/sys/class/dmi/id/chassis_asset_tag";

/// The cache folder of a CI job: in the job's temporary folder, which the CI system empties
/// between jobs (GitHub Actions' `RUNNER_TEMP`, Azure Pipelines' `AGENT_TEMPDIRECTORY`), so a
/// later job of the same user on a self-hosted runner cannot read this job's tokens.
fn ci_job_cache_dir(env: &Env) -> Option<PathBuf> {
    ["RUNNER_TEMP", "AGENT_TEMPDIRECTORY"]
        .into_iter()
        .find_map(|name| env.get(name))
        .map(|temp| PathBuf::from(temp).join("docker-credential-acr"))
}

/// One configured login server: `host[:port]`, or `*.<suffix>` for every registry of a custom
/// domain (the suffix must have at least two labels, so `*.com` is refused). Normalised.
pub fn login_server_entry(item: &str) -> Result<String, &'static str> {
    match item.trim().strip_prefix("*.") {
        None => normalize_host(item).map_err(|e| e.reason),
        Some(suffix) => {
            let suffix = normalize_host(suffix).map_err(|e| e.reason)?;
            if suffix.contains(':') || !suffix.contains('.') {
                return Err("a *.suffix entry needs a domain of two or more labels and no port");
            }
            Ok(format!("*.{suffix}"))
        }
    }
}

impl Settings {
    /// Reads settings from `env`. `default_cache_dir` is used when `ACR_CACHE_DIR` is unset and
    /// the caller has its own default (the kubelet plugin); otherwise XDG rules apply.
    pub fn from_env(env: Env, default_cache_dir: Option<PathBuf>) -> Result<Settings, Error> {
        let forced_source = env
            .get("ACR_IDENTITY")
            .map(SourceChoice::parse)
            .transpose()?;
        let mut extra_login_servers = Vec::new();
        if let Some(list) = env.get("ACR_LOGIN_SERVERS") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                extra_login_servers.push(login_server_entry(item).map_err(|reason| {
                    Error::InvalidConfig(format!("ACR_LOGIN_SERVERS entry {item:?}: {reason}"))
                })?);
            }
        }
        let audience = match env.get("ACR_AUDIENCE") {
            None => None,
            Some(a) => Some(Audience::parse(a).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "ACR_AUDIENCE={:?} is not `acr` or `arm`",
                    a.trim().to_ascii_lowercase()
                ))
            })?),
        };
        let min_validity = match env.get("ACR_MIN_VALIDITY") {
            None => MinValidity::default(),
            Some(v) => MinValidity::parse(v).map_err(Error::InvalidConfig)?,
        };
        let cache_dir = env
            .get("ACR_CACHE_DIR")
            .map(PathBuf::from)
            .or(default_cache_dir)
            .or_else(|| ci_job_cache_dir(&env))
            .or_else(|| {
                env.get("XDG_CACHE_HOME")
                    .map(|x| PathBuf::from(x).join("docker-credential-acr"))
            })
            .or_else(|| {
                let (var, sub) = crate::platform::CACHE_HOME;
                env.get(var)
                    .map(|h| PathBuf::from(h).join(sub).join("docker-credential-acr"))
            });
        let timeout = match env.get("ACR_TIMEOUT") {
            None => Duration::from_secs(30),
            Some(t) => match t.trim().parse::<u64>() {
                Ok(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "ACR_TIMEOUT={t:?} is not a number of seconds between 1 and 3600"
                    )));
                }
            },
        };
        let authority_host = match env.get("AZURE_AUTHORITY_HOST") {
            None => None,
            Some(a) => {
                let a = a.trim().trim_end_matches('/').to_string();
                let usable =
                    url::Url::parse(&a).is_ok_and(|u| u.scheme() == "https" && u.host().is_some());
                if !usable {
                    return Err(Error::InvalidConfig(format!(
                        "AZURE_AUTHORITY_HOST={a:?} must be an https:// URL"
                    )));
                }
                Some(a)
            }
        };
        let cloud = match env.get("ACR_CLOUD") {
            None => None,
            Some(c) => Some(Cloud::from_name(c).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "ACR_CLOUD={:?} is not public, china or usgov",
                    c.trim()
                ))
            })?),
        };
        let asset_tag_file = match env.get("ACR_DMI_ASSET_TAG_FILE") {
            Some(file) => Some(PathBuf::from(file)),
            None => env.filtered.then(|| PathBuf::from(ASSET_TAG_FILE)),
        };
        Ok(Settings {
            env,
            forced_source,
            extra_login_servers,
            audience,
            min_validity,
            cache_dir,
            timeout,
            authority_host,
            cloud,
            asset_tag_file,
            files_from_config: false,
        })
    }

    /// The audience policy for `server`: `ACR_AUDIENCE` forces one; else ACR's first, with
    /// ARM's as the fallback only when `server` is an ACR login server of a known cloud (by the
    /// anchored rule; not a custom domain, a custom cloud's registry or another configured
    /// host: see [`crate::audience`]). A config file rule's `audience` reaches here as the
    /// `ACR_AUDIENCE` of the settings `Broker::for_registry` makes for its registry.
    pub fn audience_for(&self, server: &LoginServer) -> AudiencePolicy {
        AudiencePolicy {
            first: self.audience.unwrap_or(Audience::Acr),
            forced: self.audience.is_some(),
            fallback: self.audience.is_none() && server.known_cloud().is_some(),
        }
    }

    /// The minimum remaining life of tokens handed out for `server`; a config file rule's
    /// `min_validity` reaches here as its registry's `ACR_MIN_VALIDITY` (see `audience_for`).
    pub fn min_validity_for(&self, _server: &LoginServer) -> MinValidity {
        self.min_validity
    }

    /// A secret setting from the environment.
    pub(crate) fn secret(&self, key: &str) -> Option<Secret> {
        self.env.get(key).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests build settings from pairs: none of them may read the machine's DMI asset tag (on an
    /// Azure VM it would send the identity chain to IMDS).
    #[test]
    fn an_environment_of_pairs_reads_no_machine_file() {
        let s = Settings::from_env(Env::from_pairs([("HOME", "/home/u")]), None).unwrap();
        assert_eq!(s.asset_tag_file, None);
        let s = Settings::from_env(
            Env::from_pairs([("ACR_DMI_ASSET_TAG_FILE", "/tmp/tag")]),
            None,
        )
        .unwrap();
        assert_eq!(s.asset_tag_file, Some(PathBuf::from("/tmp/tag")));
    }

    #[test]
    fn defaults() {
        let s = Settings::from_env(Env::from_pairs([("HOME", "/home/u")]), None).unwrap();
        assert_eq!(s.audience, None);
        assert_eq!(s.min_validity, MinValidity::default());
        assert_eq!(
            s.cache_dir.unwrap(),
            PathBuf::from("/home/u/.cache/docker-credential-acr")
        );
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert!(s.forced_source.is_none());
    }

    #[test]
    fn xdg_and_override_and_extra_servers() {
        let s = Settings::from_env(
            Env::from_pairs([
                ("HOME", "/home/u"),
                ("XDG_CACHE_HOME", "/x"),
                (
                    "ACR_LOGIN_SERVERS",
                    "https://Localhost:8443/, registry.example.com",
                ),
                ("ACR_AUDIENCE", "ARM"),
                ("ACR_IDENTITY", "cli"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            s.cache_dir.unwrap(),
            PathBuf::from("/x/docker-credential-acr")
        );
        assert_eq!(
            s.extra_login_servers,
            vec!["localhost:8443", "registry.example.com"]
        );
        assert_eq!(s.audience, Some(Audience::Arm));
        assert_eq!(s.forced_source, Some(SourceChoice::Cli));
        let s = Settings::from_env(
            Env::from_pairs([("ACR_CACHE_DIR", "/c")]),
            Some("/d".into()),
        )
        .unwrap();
        assert_eq!(s.cache_dir.unwrap(), PathBuf::from("/c"));
    }

    /// A CI job's tokens stay in the job's own temporary folder, which the CI system empties
    /// between jobs: a later job on a self-hosted runner (same user) cannot read them.
    #[test]
    fn ci_jobs_cache_in_the_jobs_temp_folder_unless_a_folder_is_set() {
        let dir = |pairs: &[(&str, &str)], default: Option<&str>| {
            Settings::from_env(
                Env::from_pairs(pairs.iter().copied()),
                default.map(Into::into),
            )
            .unwrap()
            .cache_dir
            .unwrap()
        };
        let home = ("HOME", "/home/runner");
        assert_eq!(
            dir(&[home, ("RUNNER_TEMP", "/w/_temp")], None),
            PathBuf::from("/w/_temp/docker-credential-acr")
        );
        assert_eq!(
            dir(
                &[
                    home,
                    ("XDG_CACHE_HOME", "/x"),
                    ("AGENT_TEMPDIRECTORY", "/a/_temp")
                ],
                None
            ),
            PathBuf::from("/a/_temp/docker-credential-acr")
        );
        // A folder that is set wins.
        let set = [home, ("RUNNER_TEMP", "/w/_temp"), ("ACR_CACHE_DIR", "/c")];
        assert_eq!(dir(&set, None), PathBuf::from("/c"));
        assert_eq!(
            dir(&[home, ("RUNNER_TEMP", "/w/_temp")], Some("/var/lib/p")),
            PathBuf::from("/var/lib/p")
        );
        assert!(relevant("RUNNER_TEMP") && relevant("AGENT_TEMPDIRECTORY"));
    }

    #[test]
    fn bad_values_are_named() {
        for (k, v) in [
            ("ACR_IDENTITY", "magic"),
            ("ACR_AUDIENCE", "graph"),
            ("ACR_MIN_VALIDITY", "soon"),
            ("ACR_TIMEOUT", "soon"),
            ("AZURE_AUTHORITY_HOST", "http://login.example"),
            ("ACR_LOGIN_SERVERS", "user@host"),
        ] {
            let e = Settings::from_env(Env::from_pairs([(k, v)]), None).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn the_process_snapshot_keeps_only_variables_something_reads() {
        // cargo sets CARGO_* for test processes; nothing here reads them.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let names = format!("{:?}", Env::process());
        assert!(!names.contains("CARGO_"), "{names}");
        assert!(names.contains("\"PATH\""), "{names}");
        assert!(relevant("ACR_TIMEOUT") && relevant("AZURE_CLIENT_ID") && relevant("https_proxy"));
        assert!(!relevant("LS_COLORS") && !relevant("ACR") && !relevant("PATHS"));
        // The CI sources' variables.
        for name in [
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "SYSTEM_OIDCREQUESTURI",
            "SYSTEM_ACCESSTOKEN",
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
        ] {
            assert!(relevant(name), "{name}");
        }
        assert!(!relevant("ACTIONS_RUNTIME_TOKEN") && !relevant("SYSTEM_DEBUG"));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "leaves it out of Env::process()")]
    fn reading_an_unlisted_variable_from_the_process_is_caught_in_debug_builds() {
        let _ = Env::process().get("LS_COLORS");
    }

    #[test]
    fn env_debug_shows_no_values() {
        let e = Env::from_pairs([("AZURE_CLIENT_SECRET", "s3cr3t")]);
        assert!(!format!("{e:?}").contains("s3cr3t"));
    }
}
