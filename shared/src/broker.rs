//! [`Broker`]: from a login server to a registry credential, through the cache.
//!
//! ```text
//! cache hit (one small file read, no lock) ───────────────────────────────► answer
//!   │ miss or refresh due
//!   exclusive lock ─► re-read ─► Entra token (cached per identity+scope, own lock)
//!                  ─► ACR exchange ─► write entry (temp + rename) ─► answer
//! ```
//! The async runtime and the HTTP client are built only on a miss.

use crate::cache::{self, CACHE_VERSION, Cache, ENTRA_MARGIN, EntraEntry, RefreshEntry};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::error::Error;
use crate::exchange;
use crate::identity::{Identity, entra};
use crate::registry::{LoginServer, NotAcr};
use crate::secret::Secret;
use crate::token::read_claims;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The username that goes with an ACR refresh token.
pub const ACR_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

/// A registry credential: ACR's fixed username and a refresh token.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The login server it is for.
    pub login_server: String,
    /// Always [`ACR_USERNAME`].
    pub username: String,
    /// The ACR refresh token.
    pub secret: Secret,
    /// When the token expires (Unix seconds).
    pub expires_at: i64,
    /// When the broker will start refreshing it (Unix seconds); callers that cache (the
    /// kubelet) should not keep it past this.
    pub refresh_at: i64,
}

impl Credential {
    fn from_entry(e: &RefreshEntry) -> Credential {
        Credential {
            login_server: e.login_server.clone(),
            username: ACR_USERNAME.to_string(),
            secret: e.refresh_token.clone(),
            expires_at: e.expires_at,
            refresh_at: e.refresh_at(),
        }
    }
}

/// Gets ACR credentials for login servers, caching them on disk.
pub struct Broker {
    settings: Settings,
    clock: Arc<dyn Clock>,
    cache: Option<Cache>,
}

impl Broker {
    /// A broker with the system clock.
    pub fn new(settings: Settings) -> Broker {
        Broker::with_clock(settings, Arc::new(SystemClock))
    }

    /// A broker with an injected clock (tests, simulations).
    pub fn with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Broker {
        let cache = settings.cache_dir.clone().map(Cache::new);
        Broker {
            settings,
            clock,
            cache,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The cache, when a folder is known.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// Recognises a client's input as a login server this broker serves.
    pub fn login_server(&self, input: &str) -> Result<LoginServer, NotAcr> {
        LoginServer::parse(input, &self.settings.extra_login_servers)
    }

    /// The identity configuration selects.
    pub fn identity(&self) -> Result<Identity, Error> {
        Identity::from_settings(&self.settings)
    }

    /// The Entra authority for `server`: `AZURE_AUTHORITY_HOST`, else the server's cloud.
    pub fn authority(&self, server: &LoginServer) -> String {
        self.settings
            .authority_host
            .clone()
            .unwrap_or_else(|| server.cloud().authority_host().to_string())
    }

    /// A credential for `server` as the configured identity.
    pub fn credential(&self, server: &LoginServer) -> Result<Credential, Error> {
        let identity = self.identity()?;
        self.credential_for(server, &identity)
    }

    /// A credential for `server` as `identity`: from the cache when fresh, else fetched.
    pub fn credential_for(
        &self,
        server: &LoginServer,
        identity: &Identity,
    ) -> Result<Credential, Error> {
        let authority = self.authority(server);
        let fingerprint = identity.fingerprint(&authority);
        let key = cache::key(&[server.host(), &fingerprint]);
        let now = self.clock.now();
        let cached = self.read_refresh(&key, server);
        if let Some(e) = &cached
            && now < e.refresh_at()
            && e.usable_at(now)
        {
            log::debug!("cache hit for {server}");
            return Ok(Credential::from_entry(e));
        }
        let result = self.fetch_locked(server, identity, &authority, &fingerprint, &key, true);
        match (result, cached) {
            (Ok(c), _) => Ok(c),
            (Err(e), Some(old)) if old.usable_at(self.clock.now()) => {
                log::warn!(
                    "refreshing the token for {server} failed ({e}); using the cached one, valid for {} more minutes",
                    (old.expires_at - self.clock.now()) / 60
                );
                Ok(Credential::from_entry(&old))
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Reads `server`'s `/v2/` challenge: whether the registry answers, and where its token
    /// service is. For diagnostics; builds a runtime and a client, so never on the hot path.
    pub fn challenge(&self, server: &LoginServer) -> Result<crate::Challenge, Error> {
        let deadline = self.settings.timeout;
        let (runtime, http) = self.network()?;
        runtime
            .block_on(async {
                tokio::time::timeout(deadline, exchange::challenge(&http, server)).await
            })
            .map_err(|_| Error::Timeout {
                doing: "reading the /v2/ challenge of",
                registry: server.host().to_string(),
                seconds: deadline.as_secs(),
            })?
    }

    /// What a fetch needs and a cache hit never builds: a single-threaded async runtime and the
    /// HTTP client.
    fn network(&self) -> Result<(tokio::runtime::Runtime, reqwest::Client), Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the async runtime", "tokio", e))?;
        let http = crate::http::client(&self.settings.env, self.settings.timeout)
            .map_err(Error::InvalidConfig)?;
        Ok((runtime, http))
    }

    /// Removes every cached entry for `server`, whatever the identity. Returns how many.
    pub fn erase(&self, server: &str) -> Result<usize, Error> {
        let Some(cache) = &self.cache else {
            return Ok(0);
        };
        let mut n = 0;
        for (path, entry) in cache.refresh_entries() {
            if entry.login_server == server && crate::files::remove(&path)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Login servers with a cached token that can still be handed out.
    pub fn cached_servers(&self) -> Vec<RefreshEntry> {
        let now = self.clock.now();
        self.cache
            .as_ref()
            .map(|c| {
                c.refresh_entries()
                    .into_iter()
                    .map(|(_, e)| e)
                    .filter(|e| e.usable_at(now))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn read_refresh(&self, key: &str, server: &LoginServer) -> Option<RefreshEntry> {
        let cache = self.cache.as_ref().filter(|c| c.readable())?;
        cache
            .read::<RefreshEntry>(&cache.refresh_path(key))
            .filter(|e| e.login_server == server.host())
    }

    /// The cache, made ready; `None` (with a warning) when it cannot be used.
    fn usable_cache(&self) -> Option<&Cache> {
        let cache = self.cache.as_ref()?;
        match cache.prepare() {
            Ok(()) => Some(cache),
            Err(e) => {
                log::warn!("not caching tokens: {e}");
                None
            }
        }
    }

    /// A credential for `server` as `identity` from a new exchange, whatever the cache holds
    /// (the result is cached): proof that the registry grants the identity a token now, e.g.
    /// after a role was removed. For `doctor`; the Entra token may still come from the cache.
    pub fn verify(&self, server: &LoginServer, identity: &Identity) -> Result<Credential, Error> {
        let authority = self.authority(server);
        let fingerprint = identity.fingerprint(&authority);
        let key = cache::key(&[server.host(), &fingerprint]);
        self.fetch_locked(server, identity, &authority, &fingerprint, &key, false)
    }

    /// Fetches under the entry's lock; with `reuse`, first takes what another process may have
    /// fetched while this one waited for the lock.
    fn fetch_locked(
        &self,
        server: &LoginServer,
        identity: &Identity,
        authority: &str,
        fingerprint: &str,
        key: &str,
        reuse: bool,
    ) -> Result<Credential, Error> {
        let started = Instant::now();
        let deadline = self.settings.timeout;
        let lock_wait = deadline + Duration::from_secs(5);
        let cache = self.usable_cache();
        let _guard = match cache {
            Some(c) => match c.lock(&c.refresh_path(key), lock_wait) {
                Ok(g) => Some(g),
                Err(e @ Error::LockTimeout { .. }) => return Err(e),
                Err(e) => {
                    log::warn!("not locking the cache: {e}");
                    None
                }
            },
            None => None,
        };
        // Whoever held the lock before us may have fetched already.
        if reuse && let Some(e) = self.read_refresh(key, server) {
            let now = self.clock.now();
            if now < e.refresh_at() && e.usable_at(now) {
                log::debug!("{server}: another process refreshed the token");
                return Ok(Credential::from_entry(&e));
            }
        }

        let (runtime, http) = self.network()?;
        let remaining = |server: &LoginServer| {
            deadline
                .checked_sub(started.elapsed())
                .ok_or_else(|| Error::Timeout {
                    doing: "getting a token for",
                    registry: server.host().to_string(),
                    seconds: deadline.as_secs(),
                })
        };
        let timeout_err = || Error::Timeout {
            doing: "getting a token for",
            registry: server.host().to_string(),
            seconds: deadline.as_secs(),
        };

        let aad = self.entra_token(
            cache,
            identity,
            authority,
            fingerprint,
            &runtime,
            &http,
            remaining(server)?,
            lock_wait,
        )?;
        let tenant = read_claims(aad.expose())
            .and_then(|c| c.tid)
            .or_else(|| identity.tenant().map(str::to_string));
        let left = remaining(server)?;
        let refresh = runtime
            .block_on(async {
                tokio::time::timeout(
                    left,
                    exchange::exchange(
                        &http,
                        server,
                        &self.settings.extra_login_servers,
                        identity,
                        tenant.as_deref(),
                        &aad,
                    ),
                )
                .await
            })
            .map_err(|_| timeout_err())??;

        let now = self.clock.now();
        let claims = read_claims(refresh.expose()).unwrap_or_default();
        let expires_at = claims.exp.unwrap_or_else(|| {
            log::warn!("the refresh token from {server} has no exp claim; assuming 3 hours");
            now + 3 * 3600
        });
        let lifetime = match claims.iat {
            Some(iat) if iat < expires_at => expires_at - iat,
            _ => (expires_at - now).max(0),
        };
        let entry = RefreshEntry {
            v: CACHE_VERSION,
            login_server: server.host().to_string(),
            identity: identity.describe(),
            refresh_token: refresh,
            obtained_at: now,
            expires_at,
            lifetime,
        };
        if let Some(c) = cache
            && let Err(e) = c.write(&c.refresh_path(key), &entry)
        {
            log::warn!("not caching the token for {server}: {e}");
        }
        log::info!(
            "got a token for {server} as {}, valid until {expires_at}",
            identity.describe()
        );
        Ok(Credential::from_entry(&entry))
    }

    /// An Entra token for the identity and scope, from the cache or from Entra.
    #[allow(clippy::too_many_arguments)]
    fn entra_token(
        &self,
        cache: Option<&Cache>,
        identity: &Identity,
        authority: &str,
        fingerprint: &str,
        runtime: &tokio::runtime::Runtime,
        http: &reqwest::Client,
        left: Duration,
        lock_wait: Duration,
    ) -> Result<Secret, Error> {
        let scope = self.settings.scope;
        let key = cache::key(&[fingerprint, scope]);
        let fresh = |e: &EntraEntry| self.clock.now() < e.expires_at - ENTRA_MARGIN;
        let path = cache.map(|c| c.entra_path(&key));
        let _guard = match (cache, &path) {
            (Some(c), Some(p)) => {
                if let Some(e) = c.read::<EntraEntry>(p).filter(fresh) {
                    log::debug!("using the cached Entra token of {}", identity.describe());
                    return Ok(e.token);
                }
                let guard = c.lock(p, lock_wait)?;
                if let Some(e) = c.read::<EntraEntry>(p).filter(fresh) {
                    return Ok(e.token);
                }
                Some(guard)
            }
            _ => None,
        };
        log::debug!(
            "asking Entra for a token as {} (scope {scope})",
            identity.describe()
        );
        let token = runtime
            .block_on(async {
                tokio::time::timeout(
                    left,
                    entra::get_token(identity, scope, authority, http, left),
                )
                .await
            })
            .map_err(|_| Error::Entra {
                source_name: identity.source_name(),
                detail: format!("no answer within {}s", left.as_secs()),
            })??;
        if let (Some(c), Some(p)) = (cache, &path) {
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
}
