//! The broker's one error type. Each message is the single line a user needs to fix the problem.

use std::path::PathBuf;

/// One identity source the chain looked at, and why it did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source, e.g. `service principal (secret)`.
    pub source: &'static str,
    /// What it lacked, e.g. `AZURE_CLIENT_SECRET is not set`.
    pub reason: String,
}

/// Everything that can go wrong while getting a registry credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No identity source had its settings.
    #[error("no Azure identity found (tried: {}); set AZURE_TENANT_ID/AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE or AZURE_FEDERATED_TOKEN (in GitHub Actions, also grant `permissions: id-token: write`), use a managed identity, or run `az login`", list(.tried))]
    NoIdentity {
        /// Each source and what it lacked.
        tried: Vec<Skipped>,
    },

    /// The registry is in another cloud than the identity is configured for: its credential
    /// would go to that cloud's authority, so nothing is sent.
    #[error(
        "{registry} is in {registry_cloud} but the identity is configured for {identity_cloud} ({setting}); set ACR_CLOUD={wanted} (or AZURE_AUTHORITY_HOST) if this identity belongs to {registry_cloud}"
    )]
    WrongCloud {
        /// Login server.
        registry: String,
        /// The registry's cloud, for the message.
        registry_cloud: &'static str,
        /// The identity's cloud, for the message.
        identity_cloud: &'static str,
        /// The setting that chose the identity's cloud.
        setting: &'static str,
        /// The `ACR_CLOUD` value for the registry's cloud.
        wanted: &'static str,
    },

    /// The registry's name places it in a cloud, and the identity's authority is no cloud's this
    /// broker knows (a custom cloud's, a test's): nothing is sent unless `ACR_CLOUD` says the
    /// identity belongs to the registry's cloud.
    #[error(
        "{registry} is in {registry_cloud}, but the identity's Entra authority {authority} is not one of a cloud this helper knows; set ACR_CLOUD={wanted} if this identity belongs to {registry_cloud} (nothing was sent)"
    )]
    UnknownCloud {
        /// Login server.
        registry: String,
        /// The registry's cloud, for the message.
        registry_cloud: &'static str,
        /// The authority's host.
        authority: String,
        /// The `ACR_CLOUD` value for the registry's cloud.
        wanted: &'static str,
    },

    /// A setting is present but unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// Entra ID (or the managed identity endpoint, or the Azure CLI) refused or failed.
    #[error("{source_name} could not get an Entra token: {detail}")]
    Entra {
        /// The identity source.
        source_name: &'static str,
        /// The cause, one line, without secrets.
        detail: String,
    },

    /// The registry refused the exchange of the Entra token (401/403): a missing role.
    #[error("{registry} refused the token of {identity} (HTTP {status}{}); grant it AcrPull (or AcrPush) on the registry, or on ABAC-enabled registries a repository role such as \"Container Registry Repository Reader\"", server_message(.message))]
    ExchangeRefused {
        /// Login server.
        registry: String,
        /// A description of the identity (kind and client id), no secret.
        identity: String,
        /// HTTP status.
        status: u16,
        /// The registry's error message, if it gave one.
        message: Option<String>,
    },

    /// The registry's token service refused an access token for the refresh token it issued
    /// (401/403): the refresh token expired or was revoked between the two requests.
    #[error("{registry} refused an access token for its own refresh token (HTTP {status}{}); run the command again, or `docker-credential-acr erase` the registry's cached token", server_message(.message))]
    AccessTokenRefused {
        /// Login server.
        registry: String,
        /// HTTP status.
        status: u16,
        /// The registry's error message, if it gave one.
        message: Option<String>,
    },

    /// No token of one audience could be used (the registry refused it as the wrong audience,
    /// or Entra has none for the identity's tenant), and the attempt with the other audience
    /// failed too.
    #[error(
        "{registry}: no {first}-audience token ({refusal}), and the {second}-audience attempt failed: {error}"
    )]
    BothAudiences {
        /// Login server.
        registry: String,
        /// The audience tried first, `ACR` or `ARM`.
        first: &'static str,
        /// Who refused it and why, one line.
        refusal: String,
        /// The audience tried second.
        second: &'static str,
        /// Why that failed.
        error: Box<Error>,
    },

    /// No token of one audience could be used, and the other is not tried unasked at this
    /// registry (not a known cloud's ACR login server).
    #[error(
        "{registry}: no {first}-audience token ({refusal}); if this registry takes {second}-audience tokens, set ACR_AUDIENCE={setting} (or audience = \"{setting}\" in its config file rule): the other audience is tried unasked only at Azure Container Registry login servers of a known cloud"
    )]
    AudienceNotTaken {
        /// Login server.
        registry: String,
        /// The audience tried, `ACR` or `ARM`.
        first: &'static str,
        /// Who refused it and why, one line.
        refusal: String,
        /// The other audience.
        second: &'static str,
        /// Its `ACR_AUDIENCE` value.
        setting: &'static str,
    },

    /// A refresh failed and the cached token has less life left than `ACR_MIN_VALIDITY` demands.
    #[error(
        "refreshing the token for {registry} failed ({cause}); the cached one has only {minutes_left} min left, less than ACR_MIN_VALIDITY ({min_minutes} min); fix the cause or lower ACR_MIN_VALIDITY"
    )]
    BelowMinValidity {
        /// Login server.
        registry: String,
        /// Whole minutes the cached token has left.
        minutes_left: i64,
        /// The minimum in force, whole minutes.
        min_minutes: i64,
        /// Why the refresh failed.
        cause: Box<Error>,
    },

    /// The registry's token service failed in another way.
    #[error("token exchange with {registry} failed: {detail}")]
    Exchange {
        /// Login server.
        registry: String,
        /// The cause, one line.
        detail: String,
    },

    /// The whole operation took longer than its deadline.
    #[error(
        "timed out after {seconds}s {doing} {registry}; check network access to Entra ID and the registry, or raise ACR_TIMEOUT"
    )]
    Timeout {
        /// What was being done: `getting a token for` or `reading the /v2/ challenge of`.
        doing: &'static str,
        /// Login server.
        registry: String,
        /// The deadline.
        seconds: u64,
    },

    /// Another process held the cache lock for too long.
    #[error("timed out waiting for the cache lock {}; another process is fetching a token; retry, or remove the file if no such process runs", .path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
    },

    /// A file could not be read or written.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. `cannot write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was done and to which file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn list(tried: &[Skipped]) -> String {
    tried
        .iter()
        .map(|s| format!("{}: {}", s.source, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn server_message(m: &Option<String>) -> String {
    match m {
        Some(m) => format!(": {m}"),
        None => String::new(),
    }
}

/// Collapses a message to one line of at most 500 characters, with no character that a terminal
/// would act on (see [`printable`]): registries and identity endpoints write part of it.
pub(crate) fn one_line(s: &str) -> String {
    let mut out: String = printable(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if out.len() > 500 {
        let mut cut = 500;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// `s` with every control character that is not whitespace (ESC, BEL, DEL, 8-bit CSI, …) and
/// every bidirectional formatting character replaced by U+FFFD: text a server wrote cannot
/// drive the terminal it is printed on (retitle it, clear it, hide or reorder what follows).
/// Whitespace is left to the caller (see [`one_line`]).
pub(crate) fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !c.is_whitespace())
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if s.chars().any(unsafe_char) {
        s.chars()
            .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_identity_lists_every_source_and_reason() {
        let e = Error::NoIdentity {
            tried: vec![
                Skipped {
                    source: "service principal (secret)",
                    reason: "AZURE_CLIENT_SECRET is not set".into(),
                },
                Skipped {
                    source: "Azure CLI",
                    reason: "`az` is not on PATH".into(),
                },
            ],
        };
        let m = e.to_string();
        assert!(m.contains("service principal (secret): AZURE_CLIENT_SECRET is not set; Azure CLI: `az` is not on PATH"), "{m}");
        assert!(!m.contains('\n'));
    }

    #[test]
    fn one_line_replaces_control_characters() {
        let hostile = "no role\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{7f} here\u{202e}x\u{2066}";
        let line = one_line(hostile);
        assert!(
            !line.chars().any(|c| c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)),
            "{line:?}"
        );
        assert!(
            line.starts_with("no role") && line.contains("here"),
            "{line:?}"
        );
    }

    #[test]
    fn one_line_collapses_and_bounds() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        assert!(one_line(&"x ".repeat(1000)).len() <= 504);
    }
}
