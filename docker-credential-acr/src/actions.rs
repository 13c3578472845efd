//! The helper's actions. Each returns the text for stdout, or a [`Failure`] whose message goes to
//! stdout too (the protocol's rule: clients show stdout, and compare it with the not-found text).

use crate::configure::{self, Change};
use crate::failure::Failure;
use crate::protocol::Credentials;
use crate::store::Store;
use acr_broker::rules::Rules;
use acr_broker::{ACR_USERNAME, Broker, Env, LoginServer, Secret, Settings};
use std::collections::BTreeMap;
use std::io::Read;

/// Largest stdin accepted (a server URL, or `store`'s JSON).
const MAX_STDIN: usize = 64 * 1024;

/// Reads the request from stdin, bounded.
pub fn read_stdin(input: impl std::io::Read) -> Result<String, Failure> {
    let mut buf = Vec::new();
    input
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::Request(format!("cannot read standard input: {e}")))?;
    if buf.len() > MAX_STDIN {
        return Err(Failure::Request(format!(
            "standard input is larger than {MAX_STDIN} bytes"
        )));
    }
    String::from_utf8(buf).map_err(|_| Failure::Request("standard input is not UTF-8 text".into()))
}

fn server_url(input: &str, action: &str) -> Result<String, Failure> {
    let url = input.trim();
    if url.is_empty() {
        return Err(Failure::Request(format!(
            "no server URL on standard input; usage: echo myregistry.azurecr.io | docker-credential-acr {action}"
        )));
    }
    Ok(url.to_string())
}

/// `get`: stored credentials first, then a token from the broker; not-found for other hosts.
pub fn get(env: Env, input: &str) -> Result<String, Failure> {
    let url = server_url(input, "get")?;
    if let Some(store) = Store::from_env(&env)?
        && let Some(c) = store.get(&url)?
    {
        return answer(&url, &c.username, &c.secret);
    }
    let anonymous_fallback = env
        .get("ACR_ANONYMOUS_FALLBACK")
        .is_some_and(|v| v != "0" && v != "false");
    let broker = broker_for(env, &url)?;
    let server = match broker.login_server(&url) {
        Ok(s) => s,
        Err(e) => {
            log::debug!("{url:?}: {e}");
            return Err(Failure::NotFound);
        }
    };
    match broker.credential(&server) {
        Ok(c) => answer(&url, &c.username, &c.secret),
        Err(e) if anonymous_fallback => {
            log::warn!("{e}; continuing anonymously (ACR_ANONYMOUS_FALLBACK is set)");
            Err(Failure::NotFound)
        }
        Err(e) => Err(e.into()),
    }
}

/// The broker for a `get` of `url`: the environment's settings and the config file's rules. A
/// config file that cannot be used fails only hosts that are login servers without it: for any
/// other host (Docker Hub, asked of a catch-all `credsStore`) the answer is "not found", with
/// the cause on stderr, as it would be with no file.
fn broker_for(env: Env, url: &str) -> Result<Broker, Failure> {
    let settings = Settings::from_env(env, None)?;
    match Rules::load(&settings.env) {
        Ok(rules) => Ok(Broker::new(settings).with_rules(rules)),
        Err(e) if LoginServer::parse(url, &settings.extra_login_servers).is_err() => {
            log::warn!("{e}");
            Err(Failure::NotFound)
        }
        Err(e) => Err(e.into()),
    }
}

fn answer(url: &str, username: &str, secret: &Secret) -> Result<String, Failure> {
    let c = Credentials {
        server_url: url.to_string(),
        username: username.to_string(),
        secret: secret.clone(),
    };
    Ok(serde_json::to_string(&c)?)
}

/// `store`: keeps what `docker login` gives, where the environment says.
pub fn store(env: Env, input: &str) -> Result<String, Failure> {
    let credentials = read_credentials(input)?;
    let store = Store::from_env(&env)?.ok_or(Failure::NoCredentialsFolder)?;
    store.put(credentials)?;
    Ok(String::new())
}

/// `store` into a given store: tests and fuzzing pass one whose secrets stay in its file.
pub fn store_in(store: &Store, input: &str) -> Result<String, Failure> {
    store.put(read_credentials(input)?)?;
    Ok(String::new())
}

/// `store`'s input: a whole credentials object, checked as the reference helpers do. A refusal
/// never echoes the input.
fn read_credentials(input: &str) -> Result<Credentials, Failure> {
    if input.trim().is_empty() {
        return Err(Failure::Request(
            "no credentials on standard input; expected {\"ServerURL\":…,\"Username\":…,\"Secret\":…}".into(),
        ));
    }
    let bad = |why: String| {
        Failure::Request(format!(
            "standard input is not credentials JSON ({why}); expected {{\"ServerURL\":…,\"Username\":…,\"Secret\":…}}"
        ))
    };
    // Only an object: serde would also accept a JSON array as a struct.
    let value: serde_json::Value =
        serde_json::from_str(input.trim()).map_err(|e| bad(e.to_string()))?;
    if !value.is_object() {
        return Err(bad("not a JSON object".into()));
    }
    let c: Credentials = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    c.validate().map_err(|m| Failure::Request(m.into()))?;
    Ok(c)
}

/// `erase`: removes stored credentials and cached tokens of a host (for a host a config file
/// rule serves, those of its login server and of the rule's identity). A config file that cannot
/// be used does not stop a logout: what the environment alone names is removed, with a warning.
pub fn erase(env: Env, input: &str) -> Result<String, Failure> {
    let url = server_url(input, "erase")?;
    let mut removed = false;
    if let Some(store) = Store::from_env(&env)? {
        removed |= store.remove(&url)?;
    }
    let broker = match Broker::with_config_file(env.clone()) {
        Ok(broker) => broker,
        Err(e) => {
            log::warn!("{e}; erasing what the environment's settings name");
            Broker::new(Settings::from_env(env, None)?)
        }
    };
    removed |= broker.erase(&Store::key(&url))? > 0;
    if removed {
        Ok(String::new())
    } else {
        Err(Failure::NotFound)
    }
}

/// `list`: stored credentials and cached ACR tokens, `{server: username}`.
pub fn list(env: Env) -> Result<String, Failure> {
    let mut out = BTreeMap::new();
    let broker = Broker::new(Settings::from_env(env.clone(), None)?);
    for e in broker.cached_servers() {
        out.insert(e.login_server, ACR_USERNAME.to_string());
    }
    if let Some(store) = Store::from_env(&env)? {
        for c in store.list()? {
            out.insert(c.server_url, c.username);
        }
    }
    Ok(serde_json::to_string(&out)?)
}

/// `configure-docker`: adds credHelpers entries to Docker's config.json, with `containers` to the
/// containers tools' auth.json (podman, buildah, skopeo), and with `helm` to Helm's registry
/// config; returns the lines to print.
pub fn configure_docker(
    env: Env,
    registries: &[String],
    containers: bool,
    helm: bool,
) -> Result<String, Failure> {
    let broker = Broker::with_config_file(env.clone())?;
    let mut hosts = Vec::new();
    for r in registries
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        let server = broker.login_server(r).map_err(|reason| Failure::NotAcr {
            registry: r.to_string(),
            reason,
        })?;
        hosts.push(server.host().to_string());
    }
    if hosts.is_empty() {
        return Err(Failure::NoRegistries);
    }
    let mut paths = vec![configure::config_path(&env).ok_or(Failure::NoDockerConfig)?];
    if containers {
        paths.push(configure::containers_auth_path(&env).ok_or(Failure::NoContainersAuth)?);
    }
    if helm {
        paths.push(configure::helm_registry_config_path(&env).ok_or(Failure::NoHelmConfig)?);
    }
    let mut lines = Vec::new();
    for path in paths {
        for c in configure::configure(&path, &hosts)? {
            lines.push(describe(&path, &c));
        }
    }
    Ok(lines.join("\n"))
}

/// The line `configure-docker` prints for one change to the file at `path`.
fn describe(path: &std::path::Path, change: &Change) -> String {
    let path = path.display();
    match change {
        Change::Added(h) => format!("{path}: added credHelpers[\"{h}\"] = \"acr\""),
        Change::Replaced(h, old) => {
            format!("{path}: credHelpers[\"{h}\"] was \"{old}\", now \"acr\"")
        }
        Change::Unchanged(h) => format!("{path}: credHelpers[\"{h}\"] is already \"acr\""),
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Documents that hold `SECRET` but are not a whole credentials object: wrong types, missing
    /// or empty fields, cut short, not an object, the secret unquoted; with optional noise after.
    fn broken_credentials() -> impl Strategy<Value = String> {
        let templates = prop::sample::select(vec![
            r#"{"ServerURL": 5, "Username": "u", "Secret": "SECRET"}"#,
            r#"{"ServerURL": "", "Username": "u", "Secret": "SECRET"}"#,
            r#"{"ServerURL": "h.example", "Secret": "SECRET"}"#,
            r#"{"Username": "u", "Secret": "SECRET"}"#,
            r#"{"ServerURL": "h.example", "Username": "u", "Secret": SECRET}"#,
            r#"{"ServerURL": "h.example", "Username": "u", "Secret": "SECRET""#,
            r#"{"ServerURL": "h.example", "Username": ["u"], "Secret": "SECRET"}"#,
            r#"["h.example", "u", "SECRET"]"#,
            r#""SECRET""#,
            "SECRET",
            r#"{"ServerURL": "h.example", "Username": "u", "Secret": "SECRET"} trailing"#,
        ]);
        (templates, "[ \t\n]{0,2}", r"[x,\]]{0,2}")
            .prop_map(|(t, lead, tail)| format!("{lead}{t}{tail}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// `store` never panics, refuses every input that is not a whole credentials object
        /// without writing anything, and never echoes the secret the input holds.
        #[test]
        fn store_input(doc in broken_credentials(), secret in "[a-zA-Z0-9]{12,20}") {
            let d = tempfile::tempdir().unwrap();
            // Secrets stay in the file: a test must never write to the OS keychain of whoever
            // runs it.
            let s = Store::in_file(d.path().join("docker-credential-acr/credentials.json"));
            let doc = doc.replace("SECRET", &secret);
            prop_assert!(doc.contains(&secret));
            match store_in(&s, &doc) {
                Ok(_) => prop_assert!(false, "accepted {doc}"),
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.contains(&secret), "{}", msg);
                    prop_assert!(!msg.contains('\n'));
                }
            }
            prop_assert!(std::fs::read_dir(d.path()).unwrap().next().is_none());
        }

        #[test]
        fn store_accepts_any_valid_credentials(url in "[a-z0-9.:/-]{1,40}", user in "\\PC{1,20}", secret in "\\PC{0,40}") {
            prop_assume!(!url.trim().is_empty() && !user.trim().is_empty());
            let d = tempfile::tempdir().unwrap();
            // Secrets stay in the file: a test must never write to the OS keychain of whoever
            // runs it.
            let s = Store::in_file(d.path().join("docker-credential-acr/credentials.json"));
            let doc = serde_json::json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string();
            prop_assert!(store_in(&s, &doc).is_ok());
            let got = s.get(&url).unwrap().unwrap();
            prop_assert_eq!(got.username, user);
            prop_assert_eq!(got.secret.expose(), secret.as_str());
        }
    }
}
