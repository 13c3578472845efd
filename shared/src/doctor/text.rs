//! A diagnosis as text for a person: one line per fact, problems as `<what>: ERROR <cause and
//! fix>`, and a last line saying whether a pull would work.

use super::diagnosis::{
    CacheCheck, CacheState, ChallengeCheck, Checked, Diagnosis, FrontEnd, IdentityCheck, Outcome,
    RegistryCheck, RepositoryAnswer, RepositoryCheck, TokenCheck,
};
use std::fmt;

impl<F: FrontEnd> fmt::Display for Diagnosis<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Outcome::Unusable(e) = &self.outcome {
            writeln!(f, "configuration: ERROR {e}")?;
        }
        if self.settings.is_empty() {
            writeln!(f, "settings: none of ACR_* / AZURE_* set")?;
        } else {
            writeln!(f, "settings:")?;
            for s in &self.settings {
                writeln!(f, "  {}={}", s.name, s.value)?;
            }
        }
        for section in self.front.sections() {
            writeln!(f, "{section}")?;
        }
        if let Outcome::Checked(checked) = &self.outcome {
            checked.fmt(f)?;
        }
        f.write_str(if self.ok() {
            "result: ok"
        } else {
            "result: a pull would fail; see the ERROR lines"
        })
    }
}

impl fmt::Display for Checked {
    /// The lines from the cache folder to the registry, each ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.cache)?;
        if let Some(c) = &self.config_file {
            writeln!(f, "config file: {} ({} registry rules)", c.path, c.rules)?;
        }
        for k in &self.skipped {
            writeln!(f, "skipped {}: {}", k.source, k.reason)?;
        }
        writeln!(f, "{}", self.identity)?;
        for c in &self.cached {
            writeln!(
                f,
                "cached: {} as {}, expires in {} min",
                c.login_server, c.identity, c.expires_in_minutes
            )?;
        }
        let m = &self.min_validity;
        match m.origin {
            "default" => writeln!(
                f,
                "minimum validity: {} min (default, at most a third of a token's lifetime; set ACR_MIN_VALIDITY to require more)",
                m.minutes
            )?,
            origin => writeln!(f, "minimum validity: {} min ({origin})", m.minutes)?,
        }
        if let Some(r) = &self.registry {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CacheCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A folder the settings do not name shows as `null`, as it always has.
        let dir = self.dir.as_deref().unwrap_or("null");
        match &self.state {
            CacheState::Failed(e) => write!(f, "cache folder: {dir}: ERROR {e}"),
            CacheState::Usable => write!(f, "cache folder: {dir} (ok)"),
            CacheState::NotUsable => write!(
                f,
                "cache folder: {dir} (NOT USABLE (tokens will not be cached))"
            ),
        }
    }
}

impl fmt::Display for IdentityCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityCheck::Missing { error, .. } => write!(f, "identity: ERROR {error}"),
            IdentityCheck::Found {
                source,
                client_id,
                tenant,
                from,
            } => {
                write!(
                    f,
                    "identity: {source} (client id {}, tenant {})",
                    client_id.as_deref().unwrap_or("-"),
                    tenant.as_deref().unwrap_or("from the token")
                )?;
                match from {
                    Some(from) => write!(f, ", from {from}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for RegistryCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (login_server, authority, rule, challenge, token, repository) = match self {
            RegistryCheck::NotAcr { input, error } => {
                return write!(f, "registry {input}: ERROR {error}");
            }
            RegistryCheck::Checked {
                login_server,
                authority,
                rule,
                challenge,
                token,
                repository,
                ..
            } => (login_server, authority, rule, challenge, token, repository),
        };
        write!(f, "registry: {login_server} (Entra authority {authority})")?;
        if let Some(r) = rule {
            write!(
                f,
                "\n  rule: {} line {} (match = {:?})",
                r.file, r.line, r.pattern
            )?;
            if let Some(server) = &r.login_server {
                write!(f, ", with the token of {server}")?;
            }
            write!(f, "\n  rule's {}", r.identity)?;
        }
        match challenge {
            ChallengeCheck::Answered { realm, .. } => {
                write!(f, "\n  challenge: ok, token service {realm}")?
            }
            ChallengeCheck::Failed { error } => write!(f, "\n  challenge: ERROR {error}")?,
        }
        match token {
            Some(TokenCheck::Exchanged {
                expires_in_minutes,
                audience,
                min_validity_clamped,
                ..
            }) => {
                write!(
                    f,
                    "\n  token: ok, expires in {expires_in_minutes} min (a new exchange, not the cache)"
                )?;
                if let Some(a) = audience {
                    write!(
                        f,
                        "\n  audience: {a} (the registry took this one; asked for first from now on)"
                    )?;
                }
                match min_validity_clamped {
                    Some(c) => write!(
                        f,
                        "\n  minimum validity: clamped to {} min: this registry's tokens live {} min",
                        c.held_to_minutes, c.lifetime_minutes
                    ),
                    None => Ok(()),
                }
            }
            Some(TokenCheck::Failed(e)) => write!(f, "\n  token: ERROR {e}"),
            None => Ok(()),
        }?;
        match repository {
            Some(r) => write!(f, "\n  {r}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for RepositoryCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        let (granted, missing, role, abac_role) = match &self.answer {
            RepositoryAnswer::Failed { error } => {
                return write!(f, "repository {name}: ERROR {error}");
            }
            RepositoryAnswer::Granted {
                granted,
                missing,
                role,
                abac_role,
            } => (granted, missing, role, abac_role),
        };
        let error = if self.ok() { "" } else { "ERROR " };
        let granted = if granted.is_empty() {
            "nothing".to_string()
        } else {
            granted.join(", ")
        };
        write!(f, "repository {name}: {error}the token grants {granted}")?;
        if let (Some(role), Some(abac_role)) = (role, abac_role) {
            write!(
                f,
                ", not {}; for that, assign {role} on the registry, or, if it is in ABAC mode (`az acr show --name {} --query roleAssignmentMode` says AbacRepositoryPermissions; AcrPull and AcrPush then give no repository access), \"{abac_role}\" on the repository",
                missing.join(", "),
                self.registry_name
            )?;
        }
        Ok(())
    }
}
