//! `docker-credential-acr token REGISTRY`: a registry token on stdout, for tools that cannot call
//! a credential helper (a Kubernetes `docker-registry` Secret, Argo CD Image Updater's `ext:`
//! scripts, `skopeo login --password-stdin`, older Helm).
//!
//! Without `--scope` the token is the registry's refresh token (the one `get` answers with, from
//! the same cache), in one of three shapes: [`Output::Json`] (the shape of
//! `az acr login --expose-token`), [`Output::Basic`] (`user:password`) and
//! [`Output::Dockerconfigjson`] (a `kubernetes.io/dockerconfigjson` Secret's data). With
//! `--scope repository:NAME:ACTIONS` it is an access token from `/oauth2/token` that grants no
//! more than those actions: a bearer token for the registry API, which only the JSON shape
//! carries (username/password clients trade a password for a token themselves, and ACR takes a
//! refresh token there, not an access token). A scope the registry does not grant in full is an
//! error that names the missing actions and the role that grants them.
//!
//! Printing a secret is this command's job: stdout carries the token and nothing else; errors
//! and logs (stderr) never hold it.

use crate::failure::{Failure, NotGranted};
use acr_broker::token::{Access, granted_on as granted, roles_granting};
use acr_broker::{ACR_USERNAME, Broker, Env, Secret};
use base64::Engine;

/// The shape of the printed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// `{"accessToken", "loginServer", "username", "expiresAt"}`, as `az acr login --expose-token`
    /// (`expiresAt` in Unix seconds; with `--scope`, also `access`: what the token grants).
    Json,
    /// `USERNAME:PASSWORD` on one line (Argo CD Image Updater's `ext:` credentials).
    Basic,
    /// `{"auths": {REGISTRY: {"username", "password", "auth"}}}`: the `.dockerconfigjson` of a
    /// `kubernetes.io/dockerconfigjson` Secret, or an `auth.json`.
    Dockerconfigjson,
}

/// The actions a repository scope may ask for.
const ACTIONS: &[&str] = &["pull", "push", "delete"];

/// A requested `repository:NAME:ACTIONS` scope, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The repository.
    pub repository: String,
    /// The actions, each once, in the order given.
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses `repository:NAME:ACTION[,ACTION…]`; the error is one line that says what is
    /// expected.
    pub fn parse(text: &str) -> Result<Scope, Failure> {
        let usage = |why: &str| {
            Failure::Usage(format!(
                "--scope {text:?}: {why}; expected repository:NAME:ACTIONS with ACTIONS from {} (e.g. repository:team/app:pull,push)",
                ACTIONS.join(", ")
            ))
        };
        let Some(rest) = text.strip_prefix("repository:") else {
            return Err(usage("only repository scopes are supported"));
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            return Err(usage("no actions"));
        };
        if !valid_repository(name) {
            return Err(usage(&format!(
                "{name:?} is not a repository name (lowercase letters, digits, and . _ - / between them)"
            )));
        }
        let mut list = Vec::new();
        for action in actions.split(',') {
            if !ACTIONS.contains(&action) {
                return Err(usage(&format!("unknown action {action:?}")));
            }
            if !list.iter().any(|a| a == action) {
                list.push(action.to_string());
            }
        }
        Ok(Scope {
            repository: name.to_string(),
            actions: list,
        })
    }

    /// The scope as the token service takes it.
    pub fn text(&self) -> String {
        format!("repository:{}:{}", self.repository, self.actions.join(","))
    }

    /// The actions of this scope that `access` does not grant.
    pub fn missing(&self, access: &[Access]) -> Vec<String> {
        let granted = granted(&self.repository, access);
        self.actions
            .iter()
            .filter(|a| !granted.iter().any(|g| g == *a || g == "*"))
            .cloned()
            .collect()
    }
}

/// A Docker repository name: path components of lowercase letters and digits, separated inside
/// a component by `.`, `_`, `__` or `-`.
pub(crate) fn valid_repository(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.split('/').all(|part| {
            let bytes = part.as_bytes();
            !part.is_empty()
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
                && part.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
                })
        })
}

/// `token`: the text for stdout.
pub fn token(
    env: Env,
    registry: &str,
    output: Output,
    scopes: &[String],
) -> Result<String, Failure> {
    let scopes = scopes
        .iter()
        .map(|s| Scope::parse(s.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if !scopes.is_empty() && output != Output::Json {
        return Err(Failure::Usage(
            "--scope gives an access token, a bearer token for the registry API that only --output json carries; for a username and password (basic, dockerconfigjson) leave out --scope".into(),
        ));
    }
    let broker = Broker::with_config_file(env)?;
    let server = broker
        .login_server(registry)
        .map_err(|reason| Failure::NotAcr {
            registry: registry.to_string(),
            reason,
        })?;
    if scopes.is_empty() {
        let credential = broker.credential(&server)?;
        return render(
            output,
            server.host(),
            &credential.secret,
            Some(credential.expires_at),
        );
    }
    let texts: Vec<String> = scopes.iter().map(Scope::text).collect();
    let token = broker.access_token(&server, &texts)?;
    for scope in &scopes {
        let missing = scope.missing(&token.access);
        if !missing.is_empty() {
            let (role, abac_role) = roles_granting(&missing);
            let granted = granted(&scope.repository, &token.access);
            return Err(Failure::NotGranted(Box::new(NotGranted {
                registry: server.host().to_string(),
                repository: scope.repository.clone(),
                granted: if granted.is_empty() {
                    "nothing".into()
                } else {
                    granted.join(",")
                },
                missing: missing.join(","),
                role,
                abac_role,
            })));
        }
    }
    let mut value = serde_json::json!({
        "accessToken": token.token.expose(),
        "loginServer": server.host(),
        "expiresAt": token.expires_at,
        "access": token.access,
    });
    if token.expires_at.is_none()
        && let Some(o) = value.as_object_mut()
    {
        o.remove("expiresAt");
    }
    Ok(serde_json::to_string_pretty(&value)?)
}

/// The refresh token `secret` for `host` in the `output` shape.
fn render(
    output: Output,
    host: &str,
    secret: &Secret,
    expires_at: Option<i64>,
) -> Result<String, Failure> {
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(&serde_json::json!({
            "accessToken": secret.expose(),
            "loginServer": host,
            "username": ACR_USERNAME,
            "expiresAt": expires_at,
        }))?,
        Output::Basic => format!("{ACR_USERNAME}:{}", secret.expose()),
        Output::Dockerconfigjson => {
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{ACR_USERNAME}:{}", secret.expose()));
            serde_json::to_string(&serde_json::json!({
                "auths": {
                    host: {
                        "username": ACR_USERNAME,
                        "password": secret.expose(),
                        "auth": auth,
                    }
                }
            }))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_refuse_in_one_line() {
        let s = Scope::parse("repository:team/app:pull,push,pull").unwrap();
        assert_eq!(s.repository, "team/app");
        assert_eq!(s.actions, ["pull", "push"]);
        assert_eq!(s.text(), "repository:team/app:pull,push");
        for bad in [
            "registry:catalog:*",
            "repository:app",
            "repository::pull",
            "repository:App:pull",
            "repository:app/:pull",
            "repository:-app:pull",
            "repository:app:pull,admin",
            "repository:app:",
        ] {
            let e = Scope::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--scope {bad:?}")), "{e}");
            assert!(
                e.contains("repository:NAME:ACTIONS") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_actions_and_their_roles() {
        let access = vec![Access {
            kind: "repository".into(),
            name: "app".into(),
            actions: vec!["pull".into()],
        }];
        let s = Scope::parse("repository:app:pull,push").unwrap();
        assert_eq!(s.missing(&access), ["push"]);
        assert_eq!(
            Scope::parse("repository:other:pull")
                .unwrap()
                .missing(&access),
            ["pull"]
        );
        assert!(
            Scope::parse("repository:app:pull")
                .unwrap()
                .missing(&access)
                .is_empty()
        );
        assert_eq!(roles_granting(&s.missing(&access)).0, "AcrPush");
        assert_eq!(
            roles_granting(&["pull".into()]).1,
            "Container Registry Repository Reader"
        );
        assert_eq!(
            roles_granting(&["push".into(), "delete".into()]),
            (
                "AcrPush and AcrDelete",
                "Container Registry Repository Contributor"
            )
        );
    }

    #[test]
    fn the_three_shapes() {
        let secret = Secret::new("tok".to_string());
        let basic = render(Output::Basic, "r.azurecr.io", &secret, Some(5)).unwrap();
        assert_eq!(basic, format!("{ACR_USERNAME}:tok"));
        let json: serde_json::Value =
            serde_json::from_str(&render(Output::Json, "r.azurecr.io", &secret, Some(5)).unwrap())
                .unwrap();
        assert_eq!(json["accessToken"], "tok");
        assert_eq!(json["loginServer"], "r.azurecr.io");
        assert_eq!(json["expiresAt"], 5);
        let dcj: serde_json::Value = serde_json::from_str(
            &render(Output::Dockerconfigjson, "r.azurecr.io", &secret, None).unwrap(),
        )
        .unwrap();
        let entry = &dcj["auths"]["r.azurecr.io"];
        assert_eq!(entry["password"], "tok");
        let auth = base64::engine::general_purpose::STANDARD
            .decode(entry["auth"].as_str().unwrap())
            .unwrap();
        assert_eq!(auth, format!("{ACR_USERNAME}:tok").as_bytes());
    }
}
