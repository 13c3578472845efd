//! The fetch path: what the broker does once the cache has no fresh credential, as one [`Fetch`].
//!
//! ```text
//! Entra token (cached per identity+scope, own lock) ─► ACR exchange ─► checks ─► write entry
//!                        └─ the registry refuses the audience: once more with the other one
//! ```
//! The broker takes the registry entry's lock and re-reads it first; the async runtime and the
//! HTTP client a `Fetch` holds are built only then, never on a cache hit.

use crate::audience::{Audience, AudiencePolicy, entra_lacks_audience, is_audience_refusal};
use crate::cache::{self, CACHE_VERSION, Cache, ENTRA_MARGIN, EntraEntry, RefreshEntry};
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::Error;
use crate::exchange::{Grant, exchange};
use crate::files::FileLock;
use crate::identity::answer::EntraToken;
use crate::identity::token::entra_token;
use crate::identity::{Identity, TokenRequest};
use crate::registry::LoginServer;
use crate::secret::Secret;
use crate::token::{check_lifetime, check_not_beyond_max, read_claims, within_max_lifetime};
use crate::validity::MinValidity;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a credential is for: the registry, the identity, the authority the identity's credential
/// goes to, and the cache key they make. Cheap to build: the cache-hit path builds one too.
pub(crate) struct Target<'a> {
    /// The registry.
    pub server: &'a LoginServer,
    /// Who asks.
    pub identity: &'a Identity,
    /// The Entra authority host.
    pub authority: String,
    /// The identity's fingerprint at that authority (see [`Identity::fingerprint`]).
    pub fingerprint: String,
    /// The registry entry's cache key.
    pub key: String,
}

impl<'a> Target<'a> {
    /// The target for `server` as `identity` at `authority`.
    pub(crate) fn new(server: &'a LoginServer, identity: &'a Identity, authority: String) -> Self {
        let fingerprint = identity.fingerprint(&authority);
        let key = cache::key(&[server.host(), &fingerprint]);
        Target {
            server,
            identity,
            authority,
            fingerprint,
            key,
        }
    }
}

/// What a fetch needs and a cache hit never builds: a single-threaded async runtime and the
/// HTTP client (through the proxies the settings name).
pub(crate) fn network(
    settings: &Settings,
) -> Result<(tokio::runtime::Runtime, reqwest::Client), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", "tokio", e))?;
    let http =
        crate::http::client(&settings.env, settings.timeout).map_err(Error::InvalidConfig)?;
    Ok((runtime, http))
}

/// One fetch of a registry credential, under the registry entry's lock (taken by the caller):
/// everything it reads, its deadline, and the runtime and client it runs on.
pub(crate) struct Fetch<'a> {
    /// The settings in force: scope, timeout, proxies, extra login servers.
    pub settings: &'a Settings,
    /// The broker's clock.
    pub clock: &'a dyn Clock,
    /// What the credential is for.
    pub target: &'a Target<'a>,
    /// The cache, when it can be written; `None` means no cache reads, locks or writes.
    pub cache: Option<&'a Cache>,
    /// When the fetch started: it must end within `settings.timeout` of it.
    pub started: Instant,
    /// How long to wait for the Entra token entry's lock.
    pub lock_wait: Duration,
    /// The runtime requests run on.
    pub runtime: tokio::runtime::Runtime,
    /// The client for Entra and the registry.
    pub http: reqwest::Client,
    /// Which audience to ask for, and whether the other may be tried.
    pub audience: AudiencePolicy,
    /// The audience the cache entry remembers as the one the registry took, if any.
    pub remembered: Option<Audience>,
    /// The minimum remaining life in force for the registry (for the clamp warning).
    pub min_validity: MinValidity,
}

/// The Entra token entry as found: a fresh token, or its lock (none when it cannot be taken).
enum EntraCached {
    Fresh(Secret),
    Locked(Option<FileLock>),
}

impl Fetch<'_> {
    /// Entra token, exchange, checks, and the new entry written to the cache; when the registry
    /// refuses the audience (and none is forced), once more with the other one.
    pub(crate) fn run(&self) -> Result<RefreshEntry, Error> {
        let first = self.audience.start(self.remembered);
        let refusal = match self.attempt(first) {
            Err(Error::ExchangeRefused {
                message, status, ..
            }) if !self.audience.forced && is_audience_refusal(message.as_deref()) => format!(
                "the registry refused it: {}",
                message.unwrap_or_else(|| format!("HTTP {status}"))
            ),
            Err(e) if !self.audience.forced && entra_lacks_audience(&e) => {
                format!("Entra issues none in this tenant: {e}")
            }
            other => return other,
        };
        let (server, second) = (self.target.server, first.other());
        if !self.audience.fallback {
            return Err(Error::AudienceNotTaken {
                registry: server.host().to_string(),
                first: first.name(),
                refusal,
                second: second.name(),
                setting: second.setting(),
            });
        }
        log::info!(
            "{server}: no {}-audience token ({refusal}); trying the {} audience",
            first.name(),
            second.name()
        );
        match self.attempt(second) {
            Ok(entry) => {
                log::info!(
                    "{server} takes {}-audience tokens of {}: asking for that audience first from now on",
                    second.name(),
                    self.target.identity.describe()
                );
                Ok(entry)
            }
            Err(error) => Err(Error::BothAudiences {
                registry: server.host().to_string(),
                first: first.name(),
                refusal,
                second: second.name(),
                error: Box::new(error),
            }),
        }
    }

    /// One try with an Entra token of `audience`.
    fn attempt(&self, audience: Audience) -> Result<RefreshEntry, Error> {
        let aad = self.entra_token(audience.scope())?;
        let refresh = self.exchange(&aad)?;
        let entry = self.entry(refresh, audience)?;
        self.store(&entry);
        Ok(entry)
    }

    /// The time left before the deadline, or the error that says it passed.
    fn remaining(&self) -> Result<Duration, Error> {
        self.settings
            .timeout
            .checked_sub(self.started.elapsed())
            .ok_or_else(|| self.timed_out())
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            doing: "getting a token for",
            registry: self.target.server.host().to_string(),
            seconds: self.settings.timeout.as_secs(),
        }
    }

    /// Runs `work` on the fetch's runtime for at most `left`; `None` when the time ran out.
    fn within<F: Future>(&self, left: Duration, work: F) -> Option<F::Output> {
        self.runtime
            .block_on(async { tokio::time::timeout(left, work).await })
            .ok()
    }

    /// An Entra token for the identity and scope, from the cache or from Entra (then cached).
    fn entra_token(&self, scope: &'static str) -> Result<Secret, Error> {
        let left = self.remaining()?;
        let key = cache::key(&[&self.target.fingerprint, scope]);
        let path = self.cache.map(|c| c.entra_path(&key));
        let _guard = match (self.cache, &path) {
            (Some(c), Some(p)) => match self.cached_entra(c, p)? {
                EntraCached::Fresh(token) => return Ok(token),
                EntraCached::Locked(guard) => guard,
            },
            _ => None,
        };
        let token = self.ask_entra(scope, left)?;
        if let (Some(c), Some(p)) = (self.cache, &path) {
            let entry = EntraEntry {
                v: CACHE_VERSION,
                token: token.token.clone(),
                expires_at: token.expires_at,
            };
            if let Err(e) = c.write(p, &entry) {
                log::warn!("not caching the Entra token: {e}");
            }
        }
        Ok(token.token)
    }

    /// Whether a cached Entra token can be used: a short one is only not reused (see
    /// [`Fetch::ask_entra`]).
    fn fresh(&self, e: &EntraEntry) -> bool {
        let now = self.clock.now();
        now < e.expires_at.saturating_sub(ENTRA_MARGIN) && within_max_lifetime(e.expires_at, now)
    }

    /// The Entra entry at `path`: fresh, else locked and read again (another process may have
    /// just written it).
    fn cached_entra(&self, cache: &Cache, path: &Path) -> Result<EntraCached, Error> {
        if let Some(e) = cache.read::<EntraEntry>(path).filter(|e| self.fresh(e)) {
            log::debug!(
                "using the cached Entra token of {}",
                self.target.identity.describe()
            );
            return Ok(EntraCached::Fresh(e.token));
        }
        // A folder we cannot write (read-only, full, not ours to write) must not stop the
        // fetch: go on without the lock, as for the registry entry's lock.
        match cache.lock(path, self.lock_wait) {
            Ok(guard) => match cache.read::<EntraEntry>(path).filter(|e| self.fresh(e)) {
                Some(e) => Ok(EntraCached::Fresh(e.token)),
                None => Ok(EntraCached::Locked(Some(guard))),
            },
            Err(e @ Error::LockTimeout { .. }) => Err(e),
            Err(e) => {
                log::debug!("not locking the Entra token's entry: {e}");
                Ok(EntraCached::Locked(None))
            }
        }
    }

    /// A new Entra token for `scope` from the identity's source, within `left`.
    fn ask_entra(&self, scope: &'static str, left: Duration) -> Result<EntraToken, Error> {
        let identity = self.target.identity;
        log::debug!(
            "asking Entra for a token as {} (scope {scope})",
            identity.describe()
        );
        // Identity endpoints on this machine are reached directly, never through a proxy.
        let direct;
        let http = if identity.endpoint_is_local() {
            direct = crate::http::direct_client(&self.settings.env, self.settings.timeout)
                .map_err(Error::InvalidConfig)?;
            &direct
        } else {
            &self.http
        };
        let request = TokenRequest {
            identity,
            files_from_config: self.settings.files_from_config,
            scope,
            authority: &self.target.authority,
            http,
            deadline: left,
        };
        let token = self
            .within(left, entra_token(&request))
            .ok_or_else(|| Error::Entra {
                source_name: identity.source_name(),
                detail: format!("no answer within {}s", left.as_secs()),
            })??;
        // It is used at once, so only a lifetime no token has is refused (one that would stay
        // cached for ever); a short one is only not reused (see `fresh`).
        check_not_beyond_max(token.expires_at, self.clock.now()).map_err(|why| Error::Entra {
            source_name: identity.source_name(),
            detail: format!("the access token it returned {why}"),
        })?;
        Ok(token)
    }

    /// The registry's refresh token for `aad`, within the time left.
    fn exchange(&self, aad: &Secret) -> Result<Secret, Error> {
        let identity = self.target.identity;
        let tenant = read_claims(aad.expose())
            .and_then(|c| c.tid)
            .or_else(|| identity.tenant().map(str::to_string));
        let left = self.remaining()?;
        let grant = Grant {
            http: &self.http,
            server: self.target.server,
            identity,
            tenant: tenant.as_deref(),
            aad_token: aad,
        };
        self.within(left, exchange(&grant))
            .ok_or_else(|| self.timed_out())?
    }

    /// The cache entry for a new refresh token (from an Entra token of `audience`), once its
    /// lifetime is checked.
    fn entry(&self, refresh: Secret, audience: Audience) -> Result<RefreshEntry, Error> {
        let server = self.target.server;
        let now = self.clock.now();
        let claims = read_claims(refresh.expose()).unwrap_or_default();
        let expires_at = claims.exp.unwrap_or_else(|| {
            log::warn!("the refresh token from {server} has no exp claim; assuming 3 hours");
            now.saturating_add(3 * 3600)
        });
        // Its lifetime as issued (from `iat`, else from now) must be sane, and it must not
        // claim to last longer than any token from now on either.
        let issued = claims.iat.unwrap_or(now);
        let lifetime = check_not_beyond_max(expires_at, now)
            .and_then(|()| check_lifetime(expires_at, issued))
            .map_err(|why| Error::Exchange {
                registry: server.host().to_string(),
                detail: format!("the refresh token it issued {why}"),
            })?;
        let min = self.min_validity;
        if min.clamped(lifetime) {
            log::warn!(
                "ACR_MIN_VALIDITY ({} min) is more than tokens of {server} can meet (they live {} min); holding them to {} min",
                min.seconds / 60,
                lifetime / 60,
                min.effective(lifetime) / 60
            );
        }
        let entry = RefreshEntry {
            v: CACHE_VERSION,
            login_server: server.host().to_string(),
            identity: self.target.identity.describe(),
            refresh_token: refresh,
            obtained_at: now,
            expires_at,
            lifetime,
            audience: Some(audience),
        };
        if !entry.meets(min, now) {
            // Only a clock far off the registry's can make a new token fall short.
            log::warn!(
                "the new token for {server} has {} min left, less than the {} min minimum; is the clock right?",
                expires_at.saturating_sub(now) / 60,
                min.effective(lifetime) / 60
            );
        }
        Ok(entry)
    }

    /// Writes `entry` to the cache, when there is one (a failure only warns).
    fn store(&self, entry: &RefreshEntry) {
        let server = self.target.server;
        if let Some(c) = self.cache
            && let Err(e) = c.write(&c.refresh_path(&self.target.key), entry)
        {
            log::warn!("not caching the token for {server}: {e}");
        }
        log::info!(
            "got a token for {server} as {}, valid until {}",
            self.target.identity.describe(),
            entry.expires_at
        );
    }
}
