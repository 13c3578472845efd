//! [`Broker`]: from a login server to a registry credential, through the cache.
//!
//! ```text
//! cache hit (one small file read, no lock) ───────────────────────────────► answer
//!   │ miss or refresh due
//!   exclusive lock ─► re-read ─► Entra token (cached per identity+scope, own lock)
//!                  ─► ACR exchange ─► write entry (temp + rename) ─► answer
//! ```
//! The async runtime and the HTTP client are built only on a miss, after the re-read: the steps
//! from there are [`crate::fetch::Fetch`]'s.

use crate::audience::Audience;
use crate::cache::{self, Cache, RefreshEntry};
use crate::clock::{Clock, SystemClock};
use crate::config::{Env, Settings};
use crate::error::Error;
use crate::exchange;
use crate::fetch::{Fetch, Target, network};
use crate::files::FileLock;
use crate::identity::Identity;
use crate::registry::{Cloud, LoginServer, NotAcr};
use crate::rules::{Rule, Rules};
use crate::secret::Secret;
use crate::validity::MinValidity;
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
    /// When the broker will start refreshing it (Unix seconds): a third of its lifetime before
    /// expiry, or sooner to keep to the minimum validity in force; callers that cache (the
    /// kubelet) should not keep it past this.
    pub refresh_at: i64,
    /// Its lifetime as issued, seconds.
    pub lifetime: i64,
    /// The audience of the Entra token the registry took for it, when known.
    pub audience: Option<Audience>,
}

impl Credential {
    /// Until when a caller that caches answers (the kubelet) may keep this credential: its
    /// refresh point (which keeps to the minimum validity), and never closer to its expiry than
    /// the broker's hand-out margin.
    pub fn keep_until(&self) -> i64 {
        self.refresh_at
            .min(self.expires_at.saturating_sub(cache::EXPIRY_MARGIN))
    }

    fn from_entry(e: &RefreshEntry, min: MinValidity) -> Credential {
        Credential {
            login_server: e.login_server.clone(),
            username: ACR_USERNAME.to_string(),
            secret: e.refresh_token.clone(),
            expires_at: e.expires_at,
            refresh_at: e.refresh_at_for(min),
            lifetime: e.lifetime,
            audience: e.audience,
        }
    }
}

/// A registry access token from the token service (`/oauth2/token`): what it grants, and until
/// when. See [`Broker::access_token`].
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The login server it is for.
    pub login_server: String,
    /// The token, for `Authorization: Bearer` on the registry API.
    pub token: Secret,
    /// When it expires (Unix seconds), when the token says.
    pub expires_at: Option<i64>,
    /// What the registry granted (the token's `access` claim).
    pub access: Vec<crate::token::Access>,
}

/// Gets ACR credentials for login servers, caching them on disk.
pub struct Broker {
    settings: Settings,
    clock: Arc<dyn Clock>,
    cache: Option<Cache>,
    rules: Option<Rules>,
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
            rules: None,
        }
    }

    /// A broker on the settings of `env` and the per-registry rules of the user's config file
    /// (see [`crate::rules`]), as `docker-credential-acr` runs; the kubelet provider reads no
    /// config file.
    pub fn with_config_file(env: Env) -> Result<Broker, Error> {
        let settings = Settings::from_env(env, None)?;
        let rules = Rules::load(&settings.env)?;
        Ok(Broker::new(settings).with_rules(rules))
    }

    /// This broker with per-registry `rules`; the hosts they name are served as login servers.
    pub fn with_rules(mut self, rules: Option<Rules>) -> Broker {
        if let Some(rules) = &rules {
            for rule in &rules.rules {
                if !self.settings.extra_login_servers.contains(&rule.pattern) {
                    self.settings.extra_login_servers.push(rule.pattern.clone());
                }
            }
        }
        self.rules = rules;
        self
    }

    /// The per-registry rules in force, when a config file was read.
    pub fn rules(&self) -> Option<&Rules> {
        self.rules.as_ref()
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
    /// `AZURE_AUTHORITY_HOST` (any spelling of a known cloud's authority, see
    /// [`Cloud::of_authority`]), else `ACR_CLOUD` (which names the cloud of an authority no cloud
    /// is known by, such as a custom cloud's), else the public cloud; `None` for an authority of
    /// no known cloud without `ACR_CLOUD`. A caller that reads azure.json's `cloud` sets
    /// `authority_host` from it.
    pub fn identity_cloud(&self) -> (Option<Cloud>, &'static str) {
        let from_authority = self
            .settings
            .authority_host
            .as_deref()
            .map(Cloud::of_authority);
        match (from_authority, self.settings.cloud) {
            (Some(Some(c)), _) => (Some(c), "AZURE_AUTHORITY_HOST or azure.json's cloud"),
            (_, Some(c)) => (Some(c), "ACR_CLOUD"),
            (Some(None), None) => (None, "ACR_CLOUD"),
            (None, None) => (Some(Cloud::Public), "the default; ACR_CLOUD"),
        }
    }

    /// Refuses a registry of another cloud than the identity's, before any request: the
    /// requested registry's domain must never choose where the identity's credential goes. An
    /// identity of no known cloud (an authority no cloud is known by, without `ACR_CLOUD`) serves
    /// only registries that configuration names, never one whose name places it in a cloud.
    pub fn check_cloud(&self, server: &LoginServer) -> Result<(), Error> {
        let Some(theirs) = server.known_cloud() else {
            return Ok(());
        };
        match self.identity_cloud() {
            (Some(mine), _) if mine == theirs => Ok(()),
            (Some(mine), setting) => Err(Error::WrongCloud {
                registry: server.host().to_string(),
                registry_cloud: theirs.name(),
                identity_cloud: mine.name(),
                setting,
                wanted: theirs.setting(),
            }),
            (None, _) => Err(Error::UnknownCloud {
                registry: server.host().to_string(),
                registry_cloud: theirs.name(),
                authority: self.authority_name(),
                wanted: theirs.setting(),
            }),
        }
    }

    /// The authority's host (no user info, path or port), for messages.
    fn authority_name(&self) -> String {
        let authority = self.authority();
        url::Url::parse(&authority)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or(authority)
    }

    /// A credential for `server` as the configured identity.
    /// A credential for `server` as the configured identity: the config file's rule for it when
    /// one matches (see [`Broker::for_registry`]), else the environment's.
    pub fn credential(&self, server: &LoginServer) -> Result<Credential, Error> {
        if let Some((broker, server)) = self.for_registry(server)? {
            let identity = broker.identity()?;
            return broker.credential_for(&server, &identity);
        }
        let identity = self.identity()?;
        self.credential_for(server, &identity)
    }

    /// The config file's rule that matches `server`, if any.
    pub fn rule_for(&self, server: &LoginServer) -> Option<&Rule> {
        self.rules.as_ref()?.matching(server.host())
    }

    /// When a config file rule matches `server`: a broker with that rule's settings (same
    /// clock and cache folder), and the login server whose token `server` uses (the rule's
    /// `login_server`, else `server`). `None` when no rule matches.
    pub fn for_registry(
        &self,
        server: &LoginServer,
    ) -> Result<Option<(Broker, LoginServer)>, Error> {
        self.rule_for(server)
            .map(|rule| self.for_rule(server, rule))
            .transpose()
    }

    /// The broker (this one's clock and cache folder, `rule`'s settings) and the login server
    /// whose token `server` uses when `rule` serves it.
    pub fn for_rule(
        &self,
        server: &LoginServer,
        rule: &Rule,
    ) -> Result<(Broker, LoginServer), Error> {
        self.rule_broker(server, rule, rule.env(&self.settings.env)?)
    }

    /// [`Broker::for_rule`] with the rule's environment `env` made already.
    fn rule_broker(
        &self,
        server: &LoginServer,
        rule: &Rule,
        env: Env,
    ) -> Result<(Broker, LoginServer), Error> {
        let mut settings = Settings::from_env(env, None)?;
        settings.files_from_config = true;
        settings.cache_dir = self.settings.cache_dir.clone();
        settings.extra_login_servers = self.settings.extra_login_servers.clone();
        let target = match &rule.login_server {
            None => server.clone(),
            Some(name) => LoginServer::parse(name, &settings.extra_login_servers).map_err(|e| {
                Error::InvalidConfig(format!(
                    "the config file's rule for {} (line {}): login_server = {name:?} is {e}",
                    rule.pattern, rule.line
                ))
            })?,
        };
        Ok((Broker::with_clock(settings, self.clock.clone()), target))
    }

    /// A credential for `server` as `identity`: from the cache when fresh, else fetched. A
    /// cached token with less than the minimum validity left is never handed out when the
    /// minimum was set explicitly; with the default, it is (with a warning) when a refresh fails.
    pub fn credential_for(
        &self,
        server: &LoginServer,
        identity: &Identity,
    ) -> Result<Credential, Error> {
        self.check_cloud(server)?;
        let target = Target::new(server, identity, self.authority());
        let min = self.settings.min_validity_for(server);
        let now = self.clock.now();
        let cached = self.read_refresh(&target.key, server);
        if let Some(e) = &cached
            && fresh(e, now, min)
        {
            log::debug!("cache hit for {server}");
            return Ok(Credential::from_entry(e, min));
        }
        let result = self.fetch_locked(&target, true);
        let now = self.clock.now();
        match (result, cached) {
            (Ok(c), _) => Ok(c),
            (Err(e), Some(old)) if old.usable_at(now) => {
                let left = old.expires_at.saturating_sub(now) / 60;
                if min.strict() && !old.meets(min, now) {
                    return Err(Error::BelowMinValidity {
                        registry: server.host().to_string(),
                        minutes_left: left,
                        min_minutes: min.effective(old.lifetime) / 60,
                        cause: Box::new(e),
                    });
                }
                log::warn!(
                    "refreshing the token for {server} failed ({e}); using the cached one, valid for {left} more minutes"
                );
                Ok(Credential::from_entry(&old, min))
            }
            (Err(e), _) => Err(e),
        }
    }

    /// An access token for the registry API of `server` with no more than `scopes` (each
    /// `repository:NAME:ACTIONS`), from its token service (`/oauth2/token`) for the registry's
    /// refresh token (from the cache when fresh, as [`Broker::credential`]). Never cached: a
    /// caller asks for one when a tool needs it. Builds a runtime and a client: never on `get`'s
    /// path.
    pub fn access_token(
        &self,
        server: &LoginServer,
        scopes: &[String],
    ) -> Result<AccessToken, Error> {
        let credential = self.credential(server)?;
        // The refresh token's own login server (a config file rule may map `server` to another).
        let target = self
            .login_server(&credential.login_server)
            .map_err(|e| Error::InvalidConfig(format!("{}: {e}", credential.login_server)))?;
        let deadline = self.settings.timeout;
        let (runtime, http) = network(&self.settings)?;
        let token = runtime
            .block_on(async {
                tokio::time::timeout(
                    deadline,
                    exchange::access_token(&http, &target, &credential.secret, scopes),
                )
                .await
            })
            .map_err(|_| Error::Timeout {
                doing: "getting an access token from",
                registry: target.host().to_string(),
                seconds: deadline.as_secs(),
            })??;
        let claims = crate::token::read_claims(token.expose()).unwrap_or_default();
        Ok(AccessToken {
            login_server: target.host().to_string(),
            expires_at: claims.exp,
            access: claims.access.unwrap_or_default(),
            token,
        })
    }

    /// Reads `server`'s `/v2/` challenge: whether the registry answers, and where its token
    /// service is. For diagnostics; builds a runtime and a client, so never on the hot path.
    pub fn challenge(&self, server: &LoginServer) -> Result<crate::Challenge, Error> {
        let deadline = self.settings.timeout;
        let (runtime, http) = network(&self.settings)?;
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

    /// Removes every cached entry for `server`, whatever the identity, and the cached Entra
    /// tokens of the identity that serves it now (a logout must not leave a token that the next
    /// fetch trusts, e.g. one a proxy planted). For a host a config file rule serves, those are
    /// the entries of the login server whose token it uses and the rule's identity's Entra
    /// tokens (found without the rule's secret, which no fingerprint holds). Returns how many
    /// files it removed.
    pub fn erase(&self, server: &str) -> Result<usize, Error> {
        let Some(cache) = &self.cache else {
            return Ok(0);
        };
        // Only for a login server: logging out of another host leaves the identity alone.
        let Ok(login) = self.login_server(server) else {
            return remove_refresh_entries(cache, server);
        };
        let ruled = match self.rule_for(&login) {
            Some(rule) => {
                Some(self.rule_broker(&login, rule, rule.env_to_identify(&self.settings.env))?)
            }
            None => None,
        };
        let (broker, target) = match &ruled {
            Some((broker, target)) => (broker, target),
            None => (self, &login),
        };
        let mut n = remove_refresh_entries(cache, target.host())?;
        if target.host() != server {
            n += remove_refresh_entries(cache, server)?;
        }
        if let Ok(identity) = broker.identity() {
            let fingerprint = identity.fingerprint(&broker.authority());
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
        let target = Target::new(server, identity, self.authority());
        self.fetch_locked(&target, false)
    }

    /// Fetches under the entry's lock; with `reuse`, first takes what another process may have
    /// fetched while this one waited for the lock.
    fn fetch_locked(&self, target: &Target<'_>, reuse: bool) -> Result<Credential, Error> {
        let started = Instant::now();
        let lock_wait = self.settings.timeout + Duration::from_secs(5);
        let min = self.settings.min_validity_for(target.server);
        let (cache, _guard) = self.lock_entry(&target.key, lock_wait)?;
        let current = self.read_refresh(&target.key, target.server);
        // Whoever held the lock before us may have fetched already.
        if reuse
            && let Some(e) = &current
            && fresh(e, self.clock.now(), min)
        {
            log::debug!("{}: another process refreshed the token", target.server);
            return Ok(Credential::from_entry(e, min));
        }
        let (runtime, http) = network(&self.settings)?;
        let fetch = Fetch {
            settings: &self.settings,
            clock: &*self.clock,
            target,
            cache,
            started,
            lock_wait,
            runtime,
            http,
            audience: self.settings.audience_for(target.server),
            remembered: current.and_then(|e| e.audience),
            min_validity: min,
        };
        fetch.run().map(|entry| Credential::from_entry(&entry, min))
    }

    /// The cache, made ready, and the lock of `key`'s entry. A folder we cannot write: one
    /// warning, then no cache (no writes or locks) in this fetch; every fetch goes to Entra and
    /// the registry.
    fn lock_entry(
        &self,
        key: &str,
        wait: Duration,
    ) -> Result<(Option<&Cache>, Option<FileLock>), Error> {
        let Some(cache) = self.usable_cache() else {
            return Ok((None, None));
        };
        match cache.lock(&cache.refresh_path(key), wait) {
            Ok(guard) => Ok((Some(cache), Some(guard))),
            Err(e @ Error::LockTimeout { .. }) => Err(e),
            Err(e) => {
                log::warn!("not caching tokens: {e}");
                Ok((None, None))
            }
        }
    }
}

/// Removes the cached refresh entries for the login server `host`, whatever the identity.
fn remove_refresh_entries(cache: &Cache, host: &str) -> Result<usize, Error> {
    let mut n = 0;
    for (path, entry) in cache.refresh_entries() {
        if entry.login_server == host && crate::files::remove(&path)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Whether a cached entry is handed out as it is: before its refresh point under `min`, and
/// usable. Arithmetic on the entry already read: the cache-hit path does no more work for it.
fn fresh(e: &RefreshEntry, now: i64, min: MinValidity) -> bool {
    now < e.refresh_at_for(min) && e.usable_at(now)
}

/// A broker on the settings `pairs` make, for unit tests.
#[cfg(test)]
pub(crate) fn test_broker(pairs: &[(&str, &str)]) -> Broker {
    #[allow(clippy::unwrap_used)]
    Broker::new(
        Settings::from_env(crate::config::Env::from_pairs(pairs.iter().copied()), None).unwrap(),
    )
}

#[cfg(test)]
mod cloud_tests {
    use super::test_broker as broker;
    use super::*;
    use crate::config::Env;

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

        let e = Settings::from_env(Env::from_pairs([("ACR_CLOUD", "mars")]), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ACR_CLOUD=\"mars\" is not public, china or usgov"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod authority_tests {
    use super::test_broker as broker;

    /// The review's finding: `:443`, a trailing slash or another of Entra's names for the public
    /// authority made the identity's cloud unknown, and unknown allowed every registry.
    #[test]
    fn non_canonical_authority_spellings_keep_the_cross_cloud_guard() {
        for authority in [
            "https://login.microsoftonline.com:443",
            "https://login.microsoftonline.com/",
            "https://login.windows.net",
        ] {
            let b = broker(&[("AZURE_AUTHORITY_HOST", authority)]);
            let cn = b.login_server("reg01.azurecr.cn").unwrap();
            let io = b.login_server("reg01.azurecr.io").unwrap();
            let e = b.check_cloud(&cn).unwrap_err().to_string();
            assert!(e.contains("set ACR_CLOUD=china"), "{authority}: {e}");
            assert!(b.check_cloud(&io).is_ok(), "{authority}");
        }
    }

    /// An authority of no known cloud (a custom cloud, an emulator): registries configuration
    /// names are its own, but a registry whose name places it in a known cloud is served only
    /// when `ACR_CLOUD` says the identity belongs to that cloud.
    #[test]
    fn an_unknown_authority_serves_a_known_clouds_registry_only_when_acr_cloud_says_so() {
        let pairs = [
            ("AZURE_AUTHORITY_HOST", "https://login.contoso.example"),
            ("ACR_LOGIN_SERVERS", "registry.contoso.example"),
        ];
        let custom = broker(&pairs);
        let cn = custom.login_server("reg01.azurecr.cn").unwrap();
        let io = custom.login_server("reg01.azurecr.io").unwrap();
        let own = custom.login_server("registry.contoso.example").unwrap();
        assert!(custom.check_cloud(&own).is_ok());
        for server in [&cn, &io] {
            let e = custom.check_cloud(server).unwrap_err().to_string();
            assert!(
                e.contains("login.contoso.example") && e.contains("ACR_CLOUD="),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        let said = broker(&[pairs[0], pairs[1], ("ACR_CLOUD", "china")]);
        assert!(said.check_cloud(&cn).is_ok());
        assert!(said.check_cloud(&io).is_err());
        assert!(said.check_cloud(&own).is_ok());
        assert_eq!(said.authority(), "https://login.contoso.example");
    }
}

#[cfg(test)]
mod rule_tests {
    use super::test_broker as broker;
    use super::*;
    use crate::audience::Audience;
    use std::path::Path;

    #[test]
    fn a_rule_gives_its_registry_its_own_audience_min_validity_and_login_server() {
        let base = broker(&[("ACR_MIN_VALIDITY", "30m"), ("AZURE_CLIENT_ID", "env")]);
        let rules = Rules::parse(
            Path::new("/c.toml"),
            "[[registry]]\nmatch = \"team.azurecr.io\"\naudience = \"arm\"\nmin_validity = \"90m\"\nclient_id = \"rule\"\ntenant = \"t\"\n\n[[registry]]\nmatch = \"registry.contoso.example\"\nlogin_server = \"contoso.azurecr.io\"\n",
            &base.settings().env,
        )
        .unwrap();
        let b = base.with_rules(Some(rules));
        let team = b.login_server("team.azurecr.io").unwrap();
        let (sub, target) = b.for_registry(&team).unwrap().unwrap();
        assert_eq!(target.host(), "team.azurecr.io");
        let audience = sub.settings().audience_for(&target);
        assert_eq!((audience.first, audience.forced), (Audience::Arm, true));
        let min = sub.settings().min_validity_for(&target);
        assert_eq!((min.seconds, min.explicit), (90 * 60, true));
        assert_eq!(sub.settings().env.get("AZURE_CLIENT_ID"), Some("rule"));
        // A registry no rule matches keeps the environment's settings.
        let other = b.login_server("other.azurecr.io").unwrap();
        assert!(b.for_registry(&other).unwrap().is_none());
        assert_eq!(b.settings().min_validity_for(&other).seconds, 30 * 60);
        assert!(!b.settings().audience_for(&other).forced);
        // A custom host the file names is served, with its login server's token.
        let custom = b.login_server("registry.contoso.example").unwrap();
        let (_, target) = b.for_registry(&custom).unwrap().unwrap();
        assert_eq!(target.host(), "contoso.azurecr.io");
    }
}
