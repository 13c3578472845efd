//! What a diagnosis found, as data: each part a type whose `Serialize` is the `--json` report
//! (the text is `text.rs`'s). A front end adds its own parts through [`FrontEnd`].

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::fmt;

/// One part of a front end's report, shown as text lines after the settings (its `Display`,
/// lines joined by `\n`; a problem reads `<what>: ERROR <cause and fix>`).
pub trait Section: fmt::Display {
    /// `false` when this part alone means a pull would fail.
    fn ok(&self) -> bool;
}

/// The parts only one front end reports (the helper's stored credentials, the kubelet provider's
/// azure.json and mirrors). Its `Serialize` must be an object: its keys join the report's
/// top-level object after `config` and must not be one of the report's own keys; never a secret.
pub trait FrontEnd: Serialize {
    /// The parts, in the order their text is shown.
    fn sections(&self) -> Vec<&dyn Section>;

    /// Whether none of the parts alone means a pull would fail.
    fn ok(&self) -> bool {
        self.sections().iter().all(|s| s.ok())
    }
}

/// A front end with no parts of its own.
impl FrontEnd for () {
    fn sections(&self) -> Vec<&dyn Section> {
        Vec::new()
    }
}

/// A finished diagnosis: the settings read, the front end's parts, and what the checks found.
/// `Serialize` gives the `--json` report, `Display` the text for a person.
#[derive(Debug, Clone)]
pub struct Diagnosis<F> {
    /// The settings present, secret values hidden.
    pub settings: Vec<Setting>,
    /// The front end's own parts.
    pub front: F,
    /// What the checks found, or why none could run.
    pub outcome: Outcome,
}

/// Whether the checks ran.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The settings are unusable (the message says which and why): nothing else was checked.
    Unusable(String),
    /// The checks ran.
    Checked(Box<Checked>),
}

impl<F: FrontEnd> Diagnosis<F> {
    /// The diagnosis when the settings themselves are unusable (`error` says why): the listing,
    /// the front end's parts and the error; nothing else can be checked.
    pub fn unusable(settings: Vec<Setting>, front: F, error: String) -> Diagnosis<F> {
        Diagnosis {
            settings,
            front,
            outcome: Outcome::Unusable(error),
        }
    }

    /// Whether everything needed for a pull works.
    pub fn ok(&self) -> bool {
        match &self.outcome {
            Outcome::Unusable(_) => false,
            Outcome::Checked(c) => self.front.ok() && c.ok(),
        }
    }

    /// The report as pretty JSON (`as_json`) or as text lines for a person.
    pub fn render(&self, as_json: bool) -> String {
        if as_json {
            serde_json::to_string_pretty(self).unwrap_or_default()
        } else {
            self.to_string()
        }
    }
}

/// A variable that configures the broker and its value as shown (secret values hidden).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The variable, e.g. `AZURE_CLIENT_ID`.
    pub name: &'static str,
    /// Its value, or [`super::HIDDEN`] for a secret; user info in URLs hidden.
    pub value: String,
}

/// What the checks found beyond the settings.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The cache folder.
    #[serde(flatten)]
    pub cache: CacheCheck,
    /// The config file of per-registry rules, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<ConfigFileCheck>,
    /// The identity a pull would use.
    pub identity: IdentityCheck,
    /// The chain's sources tried before the one chosen, and why each was skipped.
    pub skipped: Vec<SkippedSource>,
    /// The cached tokens still usable.
    pub cached: Vec<CachedToken>,
    /// The minimum remaining validity of handed-out tokens.
    pub min_validity: MinValidityCheck,
    /// The registry asked about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryCheck>,
}

impl Checked {
    /// Whether nothing found means a pull would fail.
    pub fn ok(&self) -> bool {
        !matches!(self.cache.state, CacheState::Failed(_))
            && matches!(self.identity, IdentityCheck::Found { .. })
            && self.registry.as_ref().is_none_or(RegistryCheck::ok)
    }
}

/// The cache folder and whether tokens can be kept in it.
#[derive(Debug, Clone)]
pub struct CacheCheck {
    /// The folder, when the settings name one.
    pub dir: Option<String>,
    /// Whether it can be used.
    pub state: CacheState,
}

/// Whether the cache folder can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// Tokens are cached.
    Usable,
    /// Not usable, which the front end can live with: tokens are fetched every time.
    NotUsable,
    /// Not usable, and the front end needs it: why, and the front end's advice.
    Failed(String),
}

impl Serialize for CacheCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("cache_dir", &self.dir)?;
        m.serialize_entry("cache_usable", &(self.state == CacheState::Usable))?;
        if let CacheState::Failed(e) = &self.state {
            m.serialize_entry("cache_error", e)?;
        }
        m.end()
    }
}

/// The config file of per-registry rules ([`crate::rules`]).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFileCheck {
    /// Its path.
    pub path: String,
    /// How many rules it holds.
    pub rules: usize,
}

/// The config file rule that decides how a registry is served.
#[derive(Debug, Clone, Serialize)]
pub struct RuleMatch {
    /// The config file.
    pub file: String,
    /// The line its `[[registry]]` table starts on.
    pub line: usize,
    /// Its `match`.
    pub pattern: String,
    /// The login server whose token the registry uses, when the rule names another one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_server: Option<String>,
    /// The identity the rule gives the registry.
    pub identity: IdentityCheck,
}

/// The identity a pull would use, or why there is none.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum IdentityCheck {
    /// An identity was found.
    Found {
        /// Its source, e.g. `service principal (secret)`.
        source: &'static str,
        /// Its client id, when it names one.
        client_id: Option<String>,
        /// Its tenant, when known before a token is fetched.
        tenant: Option<String>,
        /// Where the front end took it from (e.g. its azure.json); `None`: the broker's chain.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// None could be found: why (one line, no secret).
    Missing {
        /// Why.
        error: String,
        /// Where the front end looked for it; `None`: the broker's chain.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
}

/// A source of the identity chain that was passed over.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedSource {
    /// The source, e.g. `service principal (secret)`.
    pub source: &'static str,
    /// What it lacked.
    pub reason: String,
}

/// A cached token (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct CachedToken {
    /// The login server it is for.
    pub login_server: String,
    /// The identity it was fetched as, described.
    pub identity: String,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
    /// Whole minutes until then.
    pub expires_in_minutes: i64,
}

/// The minimum remaining validity in force and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct MinValidityCheck {
    /// Whole minutes.
    pub minutes: i64,
    /// `default` or `ACR_MIN_VALIDITY`.
    pub origin: &'static str,
}

/// A minimum validity a registry's tokens cannot meet, and what it is held to.
#[derive(Debug, Clone, Serialize)]
pub struct Clamped {
    /// The lifetime of the registry's tokens, whole minutes.
    pub lifetime_minutes: i64,
    /// The minimum they are held to, whole minutes.
    pub held_to_minutes: i64,
}

/// The registry asked about.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RegistryCheck {
    /// It is not an ACR login server.
    NotAcr {
        /// The registry as given.
        input: String,
        /// Why, with the front end's hint.
        error: String,
    },
    /// A login server: its challenge and a new token.
    Checked {
        /// The registry as given.
        input: String,
        /// The login server it names.
        login_server: String,
        /// The Entra authority tokens come from.
        authority: String,
        /// The config file rule that matched it; `None`: the environment's identity serves it.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<Box<RuleMatch>>,
        /// Whether its challenge answers.
        challenge: ChallengeCheck,
        /// Whether a new exchange gives a token; `None` without an identity.
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<TokenCheck>,
        /// What a token for the repository asked about really grants; `None` when none was
        /// asked about or no token could be had.
        #[serde(skip_serializing_if = "Option::is_none")]
        repository: Option<Box<RepositoryCheck>>,
    },
}

/// What `/oauth2/token` grants on one repository when asked for `pull,push,delete`.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryCheck {
    /// The repository.
    pub name: String,
    /// The registry's short name (the login server's first label), for `az acr show`.
    pub registry_name: String,
    /// What the registry answered: the actions granted, or why no token came.
    #[serde(flatten)]
    pub answer: RepositoryAnswer,
}

/// The token service's answer for a repository.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RepositoryAnswer {
    /// A token came: what it grants, what it does not, and the roles that would grant that.
    Granted {
        /// The actions granted, of `pull`, `push`, `delete`.
        granted: Vec<String>,
        /// The actions not granted.
        missing: Vec<String>,
        /// The registry-wide role that grants the missing actions.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<&'static str>,
        /// The repository role that grants them on an ABAC-mode registry.
        #[serde(skip_serializing_if = "Option::is_none")]
        abac_role: Option<&'static str>,
    },
    /// The token service refused or failed.
    Failed {
        /// Why.
        error: String,
    },
}

impl RepositoryCheck {
    /// Whether a pull from the repository would be allowed.
    pub fn ok(&self) -> bool {
        match &self.answer {
            RepositoryAnswer::Granted { missing, .. } => !missing.iter().any(|a| a == "pull"),
            RepositoryAnswer::Failed { .. } => false,
        }
    }
}

impl RegistryCheck {
    /// Whether a pull from it would authenticate.
    pub fn ok(&self) -> bool {
        match self {
            RegistryCheck::NotAcr { .. } => false,
            RegistryCheck::Checked {
                challenge,
                token,
                rule,
                repository,
                ..
            } => {
                matches!(challenge, ChallengeCheck::Answered { .. })
                    && !matches!(token, Some(TokenCheck::Failed(_)))
                    && repository.as_ref().is_none_or(|r| r.ok())
                    && rule
                        .as_ref()
                        .is_none_or(|r| matches!(r.identity, IdentityCheck::Found { .. }))
            }
        }
    }
}

/// The registry's `/v2/` challenge.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ChallengeCheck {
    /// It answered.
    Answered {
        /// Its token service.
        realm: String,
        /// The `service` it names.
        service: Option<String>,
    },
    /// It did not: why.
    Failed {
        /// Why.
        error: String,
    },
}

/// A new token exchange (not the cache: a role removed since must show).
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// The registry gave a token.
    Exchanged {
        /// Its expiry (Unix seconds).
        expires_at: i64,
        /// Whole minutes until then.
        expires_in_minutes: i64,
        /// The audience of the Entra token it took, `ACR` or `ARM` (remembered for later
        /// refreshes).
        audience: Option<&'static str>,
        /// Set when the minimum validity is more than its tokens can meet.
        min_validity_clamped: Option<Clamped>,
    },
    /// It did not: why.
    Failed(String),
}

impl Serialize for TokenCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            TokenCheck::Exchanged {
                expires_at,
                expires_in_minutes,
                audience,
                min_validity_clamped,
            } => {
                m.serialize_entry("ok", &true)?;
                m.serialize_entry("exchanged", &true)?;
                m.serialize_entry("expires_at", expires_at)?;
                m.serialize_entry("expires_in_minutes", expires_in_minutes)?;
                if let Some(a) = audience {
                    m.serialize_entry("audience", a)?;
                }
                if let Some(c) = min_validity_clamped {
                    m.serialize_entry("min_validity_clamped", c)?;
                }
            }
            TokenCheck::Failed(error) => {
                m.serialize_entry("ok", &false)?;
                m.serialize_entry("error", error)?;
            }
        }
        m.end()
    }
}

/// The JSON report's layout when the settings are unusable.
#[derive(Serialize)]
struct UnusableLayout<'a, F> {
    ok: bool,
    config: &'a [Setting],
    #[serde(flatten)]
    front: &'a F,
    error: &'a str,
}

/// The JSON report's layout when the checks ran.
#[derive(Serialize)]
struct CheckedLayout<'a, F> {
    config: &'a [Setting],
    #[serde(flatten)]
    front: &'a F,
    #[serde(flatten)]
    checked: &'a Checked,
    ok: bool,
}

impl<F: FrontEnd> Serialize for Diagnosis<F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (config, front, ok) = (&self.settings[..], &self.front, self.ok());
        match &self.outcome {
            Outcome::Unusable(error) => UnusableLayout {
                ok,
                config,
                front,
                error,
            }
            .serialize(s),
            Outcome::Checked(checked) => CheckedLayout {
                config,
                front,
                checked,
                ok,
            }
            .serialize(s),
        }
    }
}
