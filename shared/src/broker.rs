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
use crate::registry::{Cloud, LoginServer, NotAcr};
use crate::secret::Secret;
use crate::token::{check_lifetime, check_not_beyond_max, read_claims, within_max_lifetime};
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
    /// Until when a caller that caches answers (the kubelet) may keep this credential: its
    /// refresh point, and never closer to its expiry than the broker's hand-out margin.
    pub fn keep_until(&self) -> i64 {
        self.refresh_at
            .min(self.expires_at.saturating_sub(cache::EXPIRY_MARGIN))
    }

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

    /// The Entra authority the identity's credential goes to: `AZURE_AUTHORITY_HOST` (or
    /// azure.json's `cloud`), else `ACR_CLOUD`'s, else the public cloud's; never one the
    /// registry's domain picks.
    pub fn authority(&self) -> String {
        self.settings.authority_host.clone().unwrap_or_else(|| {
            self.settings
                .cloud
                .unwrap_or(Cloud::Public)
                .authority_host()
                .to_string()
        })
    }

    /// The cloud the identity is configured for, and the setting that says so: the cloud of
    /// `AZURE_AUTHORITY_HOST` (`None` for an authority of no known cloud: a custom cloud, whose
    /// registries configuration names), else `ACR_CLOUD`, else the public cloud. A caller that
    /// reads azure.json's `cloud` sets `authority_host` from it.
    pub fn identity_cloud(&self) -> (Option<Cloud>, &'static str) {
        match (&self.settings.authority_host, self.settings.cloud) {
            (Some(a), _) => (
                Cloud::of_authority(a),
                "AZURE_AUTHORITY_HOST or azure.json's cloud",
            ),
            (None, Some(c)) => (Some(c), "ACR_CLOUD"),
            (None, None) => (Some(Cloud::Public), "the default; ACR_CLOUD"),
        }
    }

    /// Refuses a registry of another cloud than the identity's, before any request: the
    /// requested registry's domain must never choose where the identity's credential goes.
    pub fn check_cloud(&self, server: &LoginServer) -> Result<(), Error> {
        let (Some(mine), setting) = self.identity_cloud() else {
            return Ok(());
        };
        match server.known_cloud() {
            Some(theirs) if theirs != mine => Err(Error::WrongCloud {
                registry: server.host().to_string(),
                registry_cloud: theirs.name(),
                identity_cloud: mine.name(),
                setting,
                wanted: theirs.setting(),
            }),
            _ => Ok(()),
        }
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
        self.check_cloud(server)?;
        let authority = self.authority();
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
                    old.expires_at.saturating_sub(self.clock.now()) / 60
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

    /// Removes every cached entry for `server`, whatever the identity, and the cached Entra
    /// tokens of the identity the settings name now (a logout must not leave a token that the
    /// next fetch trusts, e.g. one a proxy planted). Returns how many files it removed.
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
        // Only for a login server: logging out of another host leaves the identity alone.
        if let (Ok(identity), Ok(_)) = (self.identity(), self.login_server(server)) {
            let fingerprint = identity.fingerprint(&self.authority());
            for scope in [crate::config::ACR_SCOPE, crate::config::ARM_SCOPE] {
                let path = cache.entra_path(&cache::key(&[&fingerprint, scope]));
                if crate::files::remove(&path)? {
                    n += 1;
                }
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
        self.check_cloud(server)?;
        let authority = self.authority();
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
        let mut cache = self.usable_cache();
        let _guard = match cache {
            Some(c) => match c.lock(&c.refresh_path(key), lock_wait) {
                Ok(g) => Some(g),
                Err(e @ Error::LockTimeout { .. }) => return Err(e),
                Err(e) => {
                    // A folder we cannot write: one warning, then no more cache writes (or
                    // locks) in this fetch; every fetch goes to Entra and the registry.
                    log::warn!("not caching tokens: {e}");
                    cache = None;
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
        let fresh = |e: &EntraEntry| {
            let now = self.clock.now();
            now < e.expires_at.saturating_sub(ENTRA_MARGIN)
                && within_max_lifetime(e.expires_at, now)
        };
        let path = cache.map(|c| c.entra_path(&key));
        let _guard = match (cache, &path) {
            (Some(c), Some(p)) => {
                if let Some(e) = c.read::<EntraEntry>(p).filter(fresh) {
                    log::debug!("using the cached Entra token of {}", identity.describe());
                    return Ok(e.token);
                }
                // A folder we cannot write (read-only, full, not ours to write) must not stop the
                // fetch: go on without the lock, as for the registry entry's lock.
                match c.lock(p, lock_wait) {
                    Ok(guard) => {
                        if let Some(e) = c.read::<EntraEntry>(p).filter(fresh) {
                            return Ok(e.token);
                        }
                        Some(guard)
                    }
                    Err(e @ Error::LockTimeout { .. }) => return Err(e),
                    Err(e) => {
                        log::debug!("not locking the Entra token's entry: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
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
            http
        };
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
        // It is used at once, so only a lifetime no token has is refused (one that would stay
        // cached for ever); a short one is only not reused (see `fresh`).
        check_not_beyond_max(token.expires_at, self.clock.now()).map_err(|why| Error::Entra {
            source_name: identity.source_name(),
            detail: format!("the access token it returned {why}"),
        })?;
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

#[cfg(test)]
mod cloud_tests {
    use super::*;
    use crate::config::Env;

    fn broker(pairs: &[(&str, &str)]) -> Broker {
        Broker::new(Settings::from_env(Env::from_pairs(pairs.iter().copied()), None).unwrap())
    }

    #[test]
    fn the_identitys_cloud_not_the_registrys_chooses_the_authority() {
        let public = broker(&[]);
        let cn = public.login_server("reg01.azurecr.cn").unwrap();
        let io = public.login_server("reg01.azurecr.io").unwrap();
        assert_eq!(public.authority(), "https://login.microsoftonline.com");
        let e = public.check_cloud(&cn).unwrap_err().to_string();
        assert!(e.contains("reg01.azurecr.cn is in Azure China but the identity is configured for the Azure public cloud (the default; ACR_CLOUD); set ACR_CLOUD=china"), "{e}");
        assert!(public.check_cloud(&io).is_ok());

        let china = broker(&[("ACR_CLOUD", "china")]);
        assert_eq!(china.authority(), "https://login.chinacloudapi.cn");
        assert!(china.check_cloud(&cn).is_ok());
        assert!(china.check_cloud(&io).is_err());

        let us = broker(&[("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]);
        let usreg = us.login_server("reg01.azurecr.us").unwrap();
        assert!(us.check_cloud(&usreg).is_ok());
        assert!(
            us.check_cloud(&io)
                .unwrap_err()
                .to_string()
                .contains("AZURE_AUTHORITY_HOST")
        );

        // An authority of no known cloud (a custom cloud, an emulator) is the operator's word.
        let custom = broker(&[("AZURE_AUTHORITY_HOST", "https://login.contoso.example")]);
        assert!(custom.check_cloud(&cn).is_ok() && custom.check_cloud(&io).is_ok());

        let e = Settings::from_env(Env::from_pairs([("ACR_CLOUD", "mars")]), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ACR_CLOUD=\"mars\" is not public, china or usgov"),
            "{e}"
        );
    }
}
