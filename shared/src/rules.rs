//! Per-registry rules from the config file: which identity, audience and minimum validity a
//! registry gets, and hosts that use another login server's token.
//!
//! ```toml
//! # ~/.config/docker-credential-acr/config.toml (or $ACR_CONFIG)
//! [[registry]]
//! match = "prod.azurecr.io"         # a login server, or "*.suffix" for every registry under it
//! tenant = "72f988bf-…"
//! client_id = "11111111-…"
//! secret_env = "PROD_ACR_SECRET"    # the variable holding the secret: never the secret itself
//!
//! [[registry]]
//! match = "registry.contoso.com"    # a custom host in front of an ACR
//! login_server = "contoso.azurecr.io"
//! identity = "cli"
//! ```
//!
//! The environment stays the default for everything: a registry no rule matches is served as
//! before, and the first matching rule (in file order) describes its registry's whole identity.
//! The identity variables of the environment (`ACR_IDENTITY`, `AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`,
//! `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_FEDERATED_TOKEN`, `AZURESUBSCRIPTION_TENANT_ID`,
//! `AZURESUBSCRIPTION_CLIENT_ID`) do not apply to it, so an environment's
//! secret is never paired with a rule's client id; the rule's values take their place, and the
//! identity chain picks the source from them as it does from the environment. Everything else
//! (proxies, `PATH`, the managed identity endpoint, the cache folder) is shared.
//!
//! The file is read on every run (a missing file costs one failed `open`), parsed with `toml`,
//! and refused as a whole, with its line number, when any rule is wrong; a file that another user
//! owns or that group or others may write is refused as well, and so is one in a folder that
//! is (`files::read_trusted`), or named by a relative `ACR_CONFIG`. The certificate and token
//! file a rule names are held to the same rule when they are read.

use crate::config::{Env, Settings, SourceChoice, login_server_entry};
use crate::error::{Error, one_line};
use crate::files;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest config file read.
const MAX_FILE: usize = 1024 * 1024;

/// The environment variables that describe an identity: a rule replaces all of them.
const IDENTITY_VARIABLES: &[&str] = &[
    "ACR_IDENTITY",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_FEDERATED_TOKEN",
    // Azure Pipelines' AzureCLI task names the service connection's app with these; the
    // pipelines source prefers them to AZURE_TENANT_ID/AZURE_CLIENT_ID.
    "AZURESUBSCRIPTION_TENANT_ID",
    "AZURESUBSCRIPTION_CLIENT_ID",
];

/// The rules of one config file, in file order.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The file they were read from.
    pub path: PathBuf,
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
}

/// One `[[registry]]` table: the registries it matches and what they get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The line of the file the table starts on (1-based), for messages and `doctor`.
    pub line: usize,
    /// A normalised login server, or `*.suffix`.
    pub pattern: String,
    /// `identity`: the source, as `ACR_IDENTITY` names it.
    pub identity: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `secret_env`: the name of the variable that holds the client secret.
    pub secret_env: Option<String>,
    /// `certificate`: a PEM file (relative paths are relative to the config file's folder).
    pub certificate: Option<PathBuf>,
    /// `token_file`: a federated token file (relative as `certificate`).
    pub token_file: Option<PathBuf>,
    /// `audience`: `acr` or `arm`, as `ACR_AUDIENCE`.
    pub audience: Option<String>,
    /// `min_validity`, as `ACR_MIN_VALIDITY`.
    pub min_validity: Option<String>,
    /// `login_server`: the ACR whose token a matching host uses (a custom host in front of it).
    pub login_server: Option<String>,
}

/// A `[[registry]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: String,
    identity: Option<String>,
    tenant: Option<String>,
    client_id: Option<String>,
    secret_env: Option<String>,
    /// Only to refuse it with a useful message.
    secret: Option<serde::de::IgnoredAny>,
    certificate: Option<PathBuf>,
    token_file: Option<PathBuf>,
    audience: Option<String>,
    min_validity: Option<String>,
    login_server: Option<String>,
}

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    registry: Vec<toml::Spanned<RawRule>>,
}

/// Where the config file is: `ACR_CONFIG`, else `$XDG_CONFIG_HOME/docker-credential-acr/config.toml`,
/// else `~/.config/docker-credential-acr/config.toml`; `None` when none of those is set.
pub fn config_path(env: &Env) -> Option<PathBuf> {
    match env.get("ACR_CONFIG") {
        Some(p) => Some(PathBuf::from(p)),
        None => env
            .config_home()
            .map(|d| d.join("docker-credential-acr/config.toml")),
    }
}

impl Rules {
    /// The rules of the config file `env` names, `None` when there is no file (an `ACR_CONFIG`
    /// that names a missing file is an error: it was asked for).
    pub fn load(env: &Env) -> Result<Option<Rules>, Error> {
        let Some(path) = config_path(env) else {
            return Ok(None);
        };
        // Relative, it would be read from wherever the client runs (a cloned repository, say).
        if !path.is_absolute() {
            return Err(Error::InvalidConfig(format!(
                "ACR_CONFIG={:?} is not an absolute path; name the file by its full path (a relative one would be looked up in whatever folder a client runs the helper from)",
                path.display().to_string()
            )));
        }
        let bytes = match files::read_trusted(&path, MAX_FILE)? {
            Some(bytes) => bytes,
            None if env.get("ACR_CONFIG").is_none() => return Ok(None),
            None => {
                let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
                return Err(Error::io("cannot read the config file", &path, missing));
            }
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::InvalidConfig(format!("{} is not UTF-8 text", path.display())))?;
        Rules::parse(&path, &text, env).map(Some)
    }

    /// The rules in `text`, the contents of `path`; `env` checks each rule's settings.
    pub fn parse(path: &Path, text: &str, env: &Env) -> Result<Rules, Error> {
        let at = |line: usize, what: String| {
            Error::InvalidConfig(format!("{} line {line}: {what}", path.display()))
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            at(line, one_line(e.message()))
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let mut rules = Vec::new();
        for spanned in raw.registry {
            let line = line_of(text, spanned.span().start);
            let rule =
                Rule::from_raw(line, spanned.into_inner(), folder).map_err(|m| at(line, m))?;
            // The settings a matching registry gets must be valid now, not at its first pull
            // (a placeholder stands in for a secret the environment holds).
            Settings::from_env(rule.env_with(env, Some("placeholder")), None).map_err(|e| {
                let message = match e {
                    Error::InvalidConfig(m) => m,
                    other => other.to_string(),
                };
                at(line, message)
            })?;
            rules.push(rule);
        }
        Ok(Rules {
            path: path.to_path_buf(),
            rules,
        })
    }

    /// The first rule that matches the login server `host`.
    pub fn matching(&self, host: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(host))
    }
}

impl Rule {
    fn from_raw(line: usize, raw: RawRule, folder: &Path) -> Result<Rule, String> {
        if raw.secret.is_some() {
            return Err("`secret` is not read: a secret never goes in this file; put it in an environment variable and name that variable with `secret_env`".into());
        }
        let pattern = login_server_entry(&raw.pattern)
            .map_err(|reason| format!("match = {:?}: {reason}", raw.pattern))?;
        // What it names is not quoted: a secret typed where its variable's name belongs would be
        // echoed on every `get` and in `doctor`.
        if raw
            .secret_env
            .as_deref()
            .is_some_and(|n| !is_variable_name(n))
        {
            return Err("secret_env must name an environment variable (letters, digits and `_`, not starting with a digit), and what it holds is not one (not shown: it may be the secret itself); put the secret in a variable and name that variable".into());
        }
        if let Some(name) = &raw.identity {
            SourceChoice::parse(name).map_err(|_| {
                format!("identity = {name:?} is not one of {}", SourceChoice::NAMES)
            })?;
        }
        if let Some(server) = &raw.login_server {
            let entry = login_server_entry(server)
                .map_err(|reason| format!("login_server = {server:?}: {reason}"))?;
            if entry.starts_with("*.") {
                return Err(format!(
                    "login_server = {server:?} must name one registry, not a *.suffix"
                ));
            }
            // Every host under a wildcard, a subdomain taken over by someone else too, would be
            // handed that registry's (push-capable) token.
            if pattern.starts_with("*.") {
                return Err(format!(
                    "match = {:?} with login_server = {server:?}: a wildcard would hand {server}'s token to every host under it; name each host in a rule of its own",
                    raw.pattern
                ));
            }
        }
        let relative = |p: PathBuf| if p.is_absolute() { p } else { folder.join(p) };
        Ok(Rule {
            line,
            pattern,
            identity: raw.identity,
            tenant: raw.tenant,
            client_id: raw.client_id,
            secret_env: raw.secret_env,
            certificate: raw.certificate.map(relative),
            token_file: raw.token_file.map(relative),
            audience: raw.audience,
            min_validity: raw.min_validity,
            login_server: raw.login_server,
        })
    }

    /// Whether this rule matches the normalised login server `host`.
    pub fn matches(&self, host: &str) -> bool {
        match self.pattern.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => host == self.pattern,
        }
    }

    /// The environment a matching registry is served with: `base` without its identity
    /// variables, with this rule's. Fails when `secret_env` names a variable that is not set.
    pub fn env(&self, base: &Env) -> Result<Env, Error> {
        let secret = match &self.secret_env {
            None => None,
            Some(name) => Some(base.named(name).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "the config file's rule for {} (line {}) takes the client secret from {name}, which is not set",
                    self.pattern, self.line
                ))
            })?),
        };
        Ok(self.env_with(base, secret.as_deref()))
    }

    /// [`Rule::env`] for knowing who the identity is, not for using it: a secret variable that
    /// is not set is stood in for (no fingerprint holds a secret), so a logout works without it.
    pub(crate) fn env_to_identify(&self, base: &Env) -> Env {
        let secret = self
            .secret_env
            .as_ref()
            .map(|name| base.named(name).unwrap_or_else(|| "unset".to_string()));
        self.env_with(base, secret.as_deref())
    }

    fn env_with(&self, base: &Env, secret: Option<&str>) -> Env {
        let mut env = base.clone();
        for name in IDENTITY_VARIABLES {
            env.unset(name);
        }
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        for (name, value) in [
            ("ACR_IDENTITY", self.identity.clone()),
            ("AZURE_TENANT_ID", self.tenant.clone()),
            ("AZURE_CLIENT_ID", self.client_id.clone()),
            ("AZURE_CLIENT_SECRET", secret.map(str::to_string)),
            (
                "AZURE_CLIENT_CERTIFICATE_PATH",
                self.certificate.as_ref().map(path),
            ),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                self.token_file.as_ref().map(path),
            ),
            ("ACR_AUDIENCE", self.audience.clone()),
            ("ACR_MIN_VALIDITY", self.min_validity.clone()),
        ] {
            if let Some(value) = value {
                env.set(name, value);
            }
        }
        env
    }
}

/// Whether `name` is an environment variable's name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules, String> {
        Rules::parse(Path::new("/etc/acr/config.toml"), text, &Env::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rules_match_exact_hosts_and_suffixes_in_file_order() {
        let r = parse(
            "[[registry]]\nmatch = \"Prod.AzureCR.io\"\nclient_id = \"a\"\n\n[[registry]]\nmatch = \"*.azurecr.io\"\nidentity = \"cli\"\n",
        )
        .unwrap();
        assert_eq!(r.matching("prod.azurecr.io").unwrap().line, 1);
        assert_eq!(r.matching("other.azurecr.io").unwrap().line, 5);
        assert!(r.matching("azurecr.io").is_none());
        assert!(r.matching("x.azurecr.io.evil.example").is_none());
        assert!(r.matching("prod.azurecr.cn").is_none());
    }

    #[test]
    fn secret_env_must_be_a_variable_name_and_is_never_echoed() {
        for typed in [
            "Zq8~xP3.tYv_Fk9-Lm2",
            "hunter2 s3cret",
            "1STARTS_WITH_A_DIGIT",
        ] {
            let text =
                format!("[[registry]]\nmatch = \"a.azurecr.io\"\nsecret_env = \"{typed}\"\n");
            let e = parse(&text).unwrap_err();
            assert!(
                e.contains("line 1: secret_env must name an environment variable"),
                "{e}"
            );
            assert!(!e.contains(typed) && !e.contains('\n'), "{e}");
        }
        for name in ["PROD_ACR_SECRET", "_x1", "a"] {
            let text = format!("[[registry]]\nmatch = \"a.azurecr.io\"\nsecret_env = \"{name}\"\n");
            parse(&text).unwrap();
        }
    }

    #[test]
    fn a_rule_replaces_every_identity_variable_of_the_environment() {
        let r = parse("[[registry]]\nmatch = \"a.azurecr.io\"\ntenant = \"t2\"\nclient_id = \"c2\"\nsecret_env = \"A_SECRET\"\ncertificate = \"certs/a.pem\"\n").unwrap();
        let base = Env::from_pairs([
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
            ("AZURE_CLIENT_SECRET", "s1"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
            ("ACR_IDENTITY", "workload"),
            ("AZURESUBSCRIPTION_CLIENT_ID", "c3"),
            ("AZURE_FEDERATED_TOKEN", "eyJ.e30.sig"),
            ("A_SECRET", "s2"),
            ("HTTPS_PROXY", "http://proxy:3128"),
        ]);
        let env = r.rules[0].env(&base).unwrap();
        assert_eq!(env.get("AZURE_TENANT_ID"), Some("t2"));
        assert_eq!(env.get("AZURE_CLIENT_ID"), Some("c2"));
        assert_eq!(env.get("AZURE_CLIENT_SECRET"), Some("s2"));
        assert_eq!(
            env.get("AZURE_CLIENT_CERTIFICATE_PATH"),
            Some("/etc/acr/certs/a.pem")
        );
        assert_eq!(env.get("AZURE_FEDERATED_TOKEN_FILE"), None);
        assert_eq!(env.get("ACR_IDENTITY"), None);
        assert_eq!(env.get("AZURESUBSCRIPTION_CLIENT_ID"), None);
        assert_eq!(env.get("AZURE_FEDERATED_TOKEN"), None);
        assert_eq!(env.get("HTTPS_PROXY"), Some("http://proxy:3128"));
        let missing = r.rules[0].env(&Env::default()).unwrap_err().to_string();
        assert!(missing.contains("A_SECRET, which is not set"), "{missing}");
    }

    #[test]
    fn bad_files_are_refused_with_their_line() {
        for (text, want) in [
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\nclient = \"x\"\n",
                "line 3: unknown field `client`",
            ),
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\n\n[[registry]]\nmatch = \"*.com\"\n",
                "line 4: match = \"*.com\"",
            ),
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\nidentity = \"magic\"\n",
                "line 1: identity = \"magic\" is not one of",
            ),
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\naudience = \"graph\"\n",
                "line 1: ACR_AUDIENCE=\"graph\"",
            ),
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\nsecret = \"hunter2\"\n",
                "line 1: `secret` is not read",
            ),
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\nlogin_server = \"*.azurecr.io\"\n",
                "must name one registry",
            ),
            (
                "[[registry]]\nmatch = \"a.azurecr.io\"\ntenant = \n",
                "line 3:",
            ),
            (
                "[[registry]]\ntenant = \"t\"\n",
                "line 1: missing field `match`",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(
                e.starts_with("invalid configuration: /etc/acr/config.toml line "),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn a_wildcard_rule_cannot_lend_a_login_servers_token() {
        let e = parse(
            "[[registry]]\nmatch = \"*.contoso.com\"\nlogin_server = \"contoso.azurecr.io\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("line 1: match = \"*.contoso.com\"") && e.contains("login_server"),
            "{e}"
        );
        // One host, or a wildcard with its own identity, are fine.
        parse("[[registry]]\nmatch = \"registry.contoso.com\"\nlogin_server = \"contoso.azurecr.io\"\n")
            .unwrap();
        parse("[[registry]]\nmatch = \"*.contoso.com\"\nidentity = \"cli\"\n").unwrap();
    }

    #[test]
    fn the_file_is_acr_config_else_the_config_folder() {
        let path = |pairs: &[(&str, &str)]| {
            config_path(&Env::from_pairs(pairs.iter().copied())).map(|p| p.display().to_string())
        };
        let all = [
            ("ACR_CONFIG", "/c.toml"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(path(&all).as_deref(), Some("/c.toml"));
        assert_eq!(
            path(&all[1..]).as_deref(),
            Some("/x/docker-credential-acr/config.toml")
        );
        assert_eq!(
            path(&all[2..]).as_deref(),
            Some("/h/.config/docker-credential-acr/config.toml")
        );
        assert_eq!(path(&[]), None);
    }

    #[test]
    fn files_others_may_write_are_refused_and_a_missing_default_is_no_rules() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("XDG_CONFIG_HOME", d.path().to_str().unwrap())]);
        assert!(Rules::load(&env).unwrap().is_none());
        let file = d.path().join("docker-credential-acr/config.toml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "[[registry]]\nmatch = \"a.azurecr.io\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Rules::load(&env).unwrap().unwrap().rules.len(), 1);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Rules::load(&env).unwrap_err().to_string();
        assert!(e.contains("chmod go-w"), "{e}");
        let named = Env::from_pairs([("ACR_CONFIG", d.path().join("none.toml").to_str().unwrap())]);
        let e = Rules::load(&named).unwrap_err().to_string();
        assert!(e.contains("none.toml"), "{e}");
    }

    #[test]
    fn a_relative_acr_config_is_refused() {
        for relative in ["config.toml", "./acr/config.toml", "../config.toml"] {
            let env = Env::from_pairs([("ACR_CONFIG", relative)]);
            let e = Rules::load(&env).unwrap_err().to_string();
            assert!(
                e.contains("ACR_CONFIG") && e.contains("absolute path"),
                "{relative}: {e}"
            );
        }
    }

    #[test]
    fn the_config_files_folders_must_be_as_private_as_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let folder = d.path().join("acr");
        std::fs::create_dir(&folder).unwrap();
        let file = folder.join("config.toml");
        std::fs::write(&file, "[[registry]]\nmatch = \"a.azurecr.io\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = Env::from_pairs([("ACR_CONFIG", file.to_str().unwrap())]);
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        for refused in [0o777, 0o775, 0o757] {
            mode(&folder, refused);
            let e = Rules::load(&env).unwrap_err().to_string();
            assert!(
                e.contains(folder.to_str().unwrap()) && e.contains("chmod go-w"),
                "{refused:o}: {e}"
            );
        }
        // A sticky folder (as /tmp): others cannot replace what is in it.
        for used in [0o755, 0o700, 0o1777] {
            mode(&folder, used);
            assert_eq!(
                Rules::load(&env).unwrap().unwrap().rules.len(),
                1,
                "{used:o}"
            );
        }
        // A link to the file is followed, and the folders that hold the file itself are checked.
        mode(&folder, 0o777);
        let link = d.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let env = Env::from_pairs([("ACR_CONFIG", link.to_str().unwrap())]);
        let e = Rules::load(&env).unwrap_err().to_string();
        assert!(e.contains(folder.to_str().unwrap()), "{e}");
    }
}
