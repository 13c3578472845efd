//! `doctor`: why a pull would or would not authenticate, for a person (or `--json` for scripts).
//!
//! It shows which settings it read (names only), which identity source the chain picks and why
//! each earlier one was skipped, tenant and client id, the cache folder and its entries with their
//! expiry, and, for a registry, whether its challenge answers and whether a token can be had. It
//! never prints a secret, and exits non-zero when a pull would fail. The checks and the report are
//! [`acr_broker::doctor`]'s, shared with the kubelet provider; the helper adds one part, its
//! stored `docker login` credentials (`Stored`).

use crate::configure;
use crate::store::{Backend, Store};
use acr_broker::doctor::{self, Checks, Diagnosis, FrontEnd, Section};
use acr_broker::{Broker, Env};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::fmt;

/// Runs the checks; returns the report and whether everything needed for a pull works.
pub fn doctor(env: Env, registry: Option<&str>, as_json: bool) -> (String, bool) {
    let config = doctor::settings_listing(&env);
    let front = HelperParts {
        stored: stored_credentials(&env, registry),
        clients: registry.and_then(|r| clients(&env, r)),
    };
    let report = match Broker::with_config_file(env) {
        Err(e) => Diagnosis::unusable(config, front, e.to_string()),
        Ok(broker) => doctor::check(
            &broker,
            Checks {
                config,
                registry: registry.map(str::to_string),
                repository: registry.and_then(repository_of),
                not_acr_hint: "add it to ACR_LOGIN_SERVERS if it is an ACR under another name"
                    .into(),
                ..Checks::default()
            },
            front,
        ),
    };
    (report.render(as_json), report.ok())
}

/// The repository of `doctor REGISTRY/REPOSITORY[:TAG|@DIGEST]`, when one is named; not for a
/// registry URL's `/v2/` path.
fn repository_of(input: &str) -> Option<String> {
    let rest = input.trim();
    let rest = rest
        .strip_prefix("https://")
        .or_else(|| rest.strip_prefix("http://"))
        .unwrap_or(rest);
    let (_, path) = rest.split_once('/')?;
    let path = path.trim_end_matches('/');
    let path = path.split_once('@').map_or(path, |(p, _)| p);
    let path = match path.rsplit_once('/') {
        Some((dir, last)) => match last.split_once(':') {
            Some((name, _tag)) => format!("{dir}/{name}"),
            None => path.to_string(),
        },
        None => path.split_once(':').map_or(path, |(p, _)| p).to_string(),
    };
    (path != "v2" && !path.starts_with("v2/") && crate::token::valid_repository(&path))
        .then_some(path)
}

/// The helper's own parts of the report.
#[derive(Debug, Serialize)]
struct HelperParts {
    stored: Stored,
    /// For a registry: whether the clients' configs send it to this helper.
    #[serde(skip_serializing_if = "Option::is_none")]
    clients: Option<Clients>,
}

impl FrontEnd for HelperParts {
    fn sections(&self) -> Vec<&dyn Section> {
        let mut parts: Vec<&dyn Section> = vec![&self.stored];
        if let Some(c) = &self.clients {
            parts.push(c);
        }
        parts
    }
}

/// Which helper the clients' config files name for the registry asked about: Docker's
/// `config.json`, the containers tools' `auth.json` (podman, buildah, skopeo read it first) and
/// Helm's registry config (Helm reads it before Docker's), and each `auths` entry (a past `docker
/// login`, `podman login` or `helm registry login`) that such a client would use instead of a
/// helper, with the command that removes it. Informational: a pull can still reach the helper
/// another way, and a stale entry may still hold a password that works.
#[derive(Debug, Serialize)]
struct Clients {
    /// The registry host as the files key it.
    host: String,
    /// Docker's config, the containers auth files, Helm's registry config.
    files: Vec<ClientFile>,
}

/// Which clients read a file, and so what its rows say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Reader {
    /// The docker CLI (and docker-py, go-containerregistry, …).
    Docker,
    /// podman, buildah, skopeo (containers/image ignores `credsStore`).
    Containers,
    /// Helm (oras-go): its own file first, then Docker's.
    Helm,
}

/// One client config file and the helper it names for the registry.
#[derive(Debug, Serialize)]
struct ClientFile {
    /// Who reads it, e.g. `docker`.
    clients: &'static str,
    #[serde(skip)]
    reader: Reader,
    /// Its path.
    file: String,
    /// `credHelpers[host]`, else `credsStore` (not for the containers tools); `None`: no helper
    /// (or no file).
    helper: Option<String>,
    /// The key of an `auths` entry with credentials that the clients use instead of any helper
    /// (only when the file names none for the host).
    #[serde(skip_serializing_if = "Option::is_none")]
    hiding_entry: Option<String>,
    /// The command that removes that entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    remove: Option<String>,
    /// The command that adds the helper's entry.
    fix: String,
}

impl fmt::Display for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "clients of {}:", self.host)?;
        for c in &self.files {
            if let (Some(key), Some(remove)) = (&c.hiding_entry, &c.remove) {
                let (login, uses) = match c.reader {
                    Reader::Docker => ("docker login", "docker uses instead of any helper"),
                    Reader::Containers => (
                        "podman login",
                        "podman, buildah and skopeo use before any other file's helper",
                    ),
                    Reader::Helm => (
                        "helm registry login",
                        "Helm uses before Docker's config, so the helper is never asked",
                    ),
                };
                write!(
                    f,
                    "\n  {}: WARNING {} has an auths entry {key:?} (a past `{login}`) that {uses}; remove it with `{remove}`",
                    c.clients, c.file
                )?;
                if c.reader != Reader::Containers {
                    write!(f, ", then run `{}`", c.fix)?;
                }
                continue;
            }
            match (c.helper.as_deref(), c.reader) {
                (Some(configure::HELPER_NAME), _) => {
                    write!(f, "\n  {}: {} names this helper", c.clients, c.file)?
                }
                (Some(other), _) => write!(
                    f,
                    "\n  {}: {} names the helper {other:?}, not this one; run `{}`",
                    c.clients, c.file, c.fix
                )?,
                (None, Reader::Helm) => write!(
                    f,
                    "\n  {}: {} names no helper for it, so Helm reads Docker's config (or run `{}`)",
                    c.clients, c.file, c.fix
                )?,
                (None, _) => write!(
                    f,
                    "\n  {}: {} names no helper for it; run `{}`",
                    c.clients, c.file, c.fix
                )?,
            }
        }
        Ok(())
    }
}

impl Section for Clients {
    fn ok(&self) -> bool {
        true
    }
}

/// What Docker's config, the containers auth files and Helm's registry config say of
/// `registry`; `None` when Docker's config cannot be placed (no HOME).
fn clients(env: &Env, registry: &str) -> Option<Clients> {
    let host = acr_broker::normalize_host(registry).ok()?;
    let docker = configure::config_path(env)?;
    let mut files = vec![client_file(
        Reader::Docker,
        "docker",
        &docker,
        &host,
        format!("docker-credential-acr configure-docker --registries {host}"),
        format!("docker logout {host}"),
    )];
    // podman login's per-session file, read first: listed only when it says something of the
    // registry.
    if let Some(session) = configure::containers_session_auth_path(env)
        && configure::host_entry(&session, &host)
            .is_some_and(|e| e.cred_helper.is_some() || e.auths_key.is_some())
    {
        files.push(client_file(
            Reader::Containers,
            "podman, buildah, skopeo",
            &session,
            &host,
            format!("docker-credential-acr configure-docker --containers --registries {host}"),
            format!("podman logout {host}"),
        ));
    }
    if let Some(containers) = configure::containers_auth_path(env) {
        files.push(client_file(
            Reader::Containers,
            "podman, buildah, skopeo",
            &containers,
            &host,
            format!("docker-credential-acr configure-docker --containers --registries {host}"),
            format!("podman logout --authfile {} {host}", containers.display()),
        ));
    }
    if let Some(helm) = configure::helm_registry_config_path(env) {
        files.push(client_file(
            Reader::Helm,
            "helm",
            &helm,
            &host,
            format!("docker-credential-acr configure-docker --helm --registries {host}"),
            format!("helm registry logout {host}"),
        ));
    }
    Some(Clients { host, files })
}

/// One row: what the file at `path` names for `host`, read as `reader` reads it.
fn client_file(
    reader: Reader,
    clients: &'static str,
    path: &std::path::Path,
    host: &str,
    fix: String,
    remove: String,
) -> ClientFile {
    let entry = configure::host_entry(path, host).unwrap_or_default();
    let store = match reader {
        // containers/image never reads credsStore.
        Reader::Containers => None,
        Reader::Docker | Reader::Helm => entry.creds_store,
    };
    let helper = entry.cred_helper.or(store);
    let hiding_entry = if helper.is_none() {
        entry.auths_key
    } else {
        None
    };
    ClientFile {
        clients,
        reader,
        file: path.display().to_string(),
        helper,
        remove: hiding_entry.as_ref().map(|_| remove),
        hiding_entry,
        fix,
    }
}

/// Where `docker login` secrets go and what is stored.
#[derive(Debug)]
enum Stored {
    /// No folder for the credentials file (neither HOME nor XDG_CONFIG_HOME).
    NoFolder,
    /// The store cannot be opened or listed: why.
    Unreadable(String),
    /// The store and its entries.
    Listed {
        /// The credentials file.
        file: String,
        /// Where new secrets go, described.
        backend: &'static str,
        /// The stored entries (never a secret).
        entries: Vec<StoredEntry>,
        /// The registry asked about, when stored credentials answer `get` for it.
        registry: Option<StoredRegistry>,
    },
}

/// One stored entry.
#[derive(Debug, Serialize)]
struct StoredEntry {
    server_url: String,
    username: String,
    /// `keychain` or `file`.
    secret_in: &'static str,
}

/// Whether the stored credentials of the registry asked about can really be read: they win
/// over the identity.
#[derive(Debug)]
struct StoredRegistry {
    /// The registry as given.
    input: String,
    /// `Err`: why `get` fails for it (`ERROR <cause and fix>`).
    status: Result<(), String>,
}

impl fmt::Display for StoredRegistry {
    /// The status alone (the JSON value); the text line prefixes the registry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            Ok(()) => {
                f.write_str("ok: docker login's credentials are used for it, not the identity")
            }
            Err(e) => f.write_str(e),
        }
    }
}

impl Serialize for Stored {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Stored::NoFolder => m.serialize_entry("file", &())?,
            Stored::Unreadable(error) => m.serialize_entry("error", error)?,
            Stored::Listed {
                file,
                backend,
                entries,
                registry,
            } => {
                m.serialize_entry("file", file)?;
                m.serialize_entry("backend", backend)?;
                m.serialize_entry("entries", entries)?;
                if let Some(r) = registry {
                    m.serialize_entry("registry", &r.to_string())?;
                }
            }
        }
        m.end()
    }
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, backend, entries, registry) = match self {
            Stored::NoFolder => {
                return f.write_str(
                    "stored credentials: none (neither HOME nor XDG_CONFIG_HOME is set)",
                );
            }
            Stored::Unreadable(e) => return write!(f, "stored credentials: ERROR {e}"),
            Stored::Listed {
                file,
                backend,
                entries,
                registry,
            } => (file, backend, entries, registry),
        };
        write!(f, "stored credentials: {file} (new secrets: {backend})")?;
        for e in entries {
            write!(
                f,
                "\n  {} as {} (secret in the {})",
                e.server_url, e.username, e.secret_in
            )?;
        }
        if let Some(r) = registry {
            write!(f, "\n  {}: {r}", r.input)?;
        }
        Ok(())
    }
}

impl Section for Stored {
    fn ok(&self) -> bool {
        match self {
            Stored::NoFolder => true,
            Stored::Unreadable(_) => false,
            Stored::Listed { registry, .. } => registry.as_ref().is_none_or(|r| r.status.is_ok()),
        }
    }
}

/// Where `docker login` secrets go, what is stored, and whether the registry's stored
/// credentials (which win over the identity) can be read.
fn stored_credentials(env: &Env, registry: Option<&str>) -> Stored {
    let store = match Store::from_env(env) {
        Ok(Some(store)) => store,
        Ok(None) => return Stored::NoFolder,
        Err(e) => return Stored::Unreadable(e.to_string()),
    };
    let backend = match store.backend() {
        Backend::Auto => "auto (the OS keychain when one answers, else the file)",
        Backend::Keychain => "keychain",
        Backend::File => "file",
    };
    let listed = match store.list() {
        Ok(listed) => listed,
        Err(e) => return Stored::Unreadable(format!("{e}; get fails until it is fixed")),
    };
    let registry = registry
        .filter(|r| {
            let key = Store::key(r);
            listed.iter().any(|l| Store::key(&l.server_url) == key)
        })
        .map(|r| StoredRegistry {
            input: r.to_string(),
            // Stored credentials answer `get` for this host: check they can really be read.
            status: match store.get(r) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(
                    "ERROR the OS keychain no longer holds its secret; run docker login again"
                        .into(),
                ),
                Err(e) => Err(format!("ERROR {e}")),
            },
        });
    Stored::Listed {
        file: store.path().display().to_string(),
        backend,
        entries: listed
            .into_iter()
            .map(|l| StoredEntry {
                secret_in: if l.in_keychain { "keychain" } else { "file" },
                server_url: l.server_url,
                username: l.username,
            })
            .collect(),
        registry,
    }
}

#[cfg(test)]
mod tests {
    use super::repository_of;

    #[test]
    fn a_repository_is_read_from_the_registry_argument() {
        for (input, repository) in [
            ("r.azurecr.io", None),
            ("r.azurecr.io/", None),
            ("https://r.azurecr.io/v2/", None),
            ("r.azurecr.io/team/app", Some("team/app")),
            ("r.azurecr.io/team/app:1.2", Some("team/app")),
            ("https://r.azurecr.io/app@sha256:00", Some("app")),
            ("r.azurecr.io/app:1", Some("app")),
            ("r.azurecr.io/App", None),
        ] {
            assert_eq!(repository_of(input).as_deref(), repository, "{input}");
        }
    }
}
