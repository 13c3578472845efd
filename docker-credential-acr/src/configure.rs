//! `configure-docker`: adds `credHelpers` entries for registries to Docker's `config.json` (and
//! with `--containers` to the containers tools' `auth.json`, which has the same `credHelpers`),
//! keeping every other key, the key order and the file's mode; written atomically; idempotent.

use acr_broker::{Env, files};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The helper name Docker derives the program from (`docker-credential-` + this).
pub const HELPER_NAME: &str = "acr";
const MAX_CONFIG: usize = 16 * 1024 * 1024;

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path(env: &Env) -> Option<PathBuf> {
    env.get("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"))
}

/// The auth file of the containers tools (podman, buildah, skopeo) that `configure-docker
/// --containers` edits: `$REGISTRY_AUTH_FILE` when set (then the only file they read), else the
/// persistent `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`), which
/// they read after their per-session `$XDG_RUNTIME_DIR/containers/auth.json` and before Docker's
/// config. The per-session file is not written: it is gone after a reboot.
pub fn containers_auth_path(env: &Env) -> Option<PathBuf> {
    match env.get("REGISTRY_AUTH_FILE") {
        Some(file) => Some(PathBuf::from(file)),
        None => env.config_home().map(|d| d.join("containers/auth.json")),
    }
}

/// Helm's registry config (Helm v3.8+ and v4 read it before Docker's config, in Docker's format,
/// `credHelpers` included): `$HELM_REGISTRY_CONFIG`, else
/// `$XDG_CONFIG_HOME/helm/registry/config.json` (`~/.config/helm/registry/config.json`).
pub fn helm_registry_config_path(env: &Env) -> Option<PathBuf> {
    match env.get("HELM_REGISTRY_CONFIG") {
        Some(file) => Some(PathBuf::from(file)),
        None => env
            .config_home()
            .map(|d| d.join("helm/registry/config.json")),
    }
}

/// The per-session auth file of podman, buildah and skopeo, read before every other one (and
/// where `podman login` writes): `$XDG_RUNTIME_DIR/containers/auth.json`. `None` when
/// `$REGISTRY_AUTH_FILE` is set (then the only file they read) or there is no runtime folder.
pub fn containers_session_auth_path(env: &Env) -> Option<PathBuf> {
    if env.get("REGISTRY_AUTH_FILE").is_some() {
        return None;
    }
    env.get("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .map(|d| d.join("containers/auth.json"))
}

/// What a client config file says of one registry host, in the order every client reads a file
/// (the docker CLI, Helm's oras-go, containers/image): `credHelpers[host]` first; then
/// `credsStore` (which containers/image ignores); then an `auths` entry with credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostEntry {
    /// `credHelpers[host]`.
    pub cred_helper: Option<String>,
    /// `credsStore`.
    pub creds_store: Option<String>,
    /// The key of an `auths` entry for the host that holds credentials (`auth`, `password` or
    /// `identitytoken`), as written (`host`, `https://host`, …).
    pub auths_key: Option<String>,
}

/// Reads what the config at `path` says of `host`; `None` when it is missing or not a JSON
/// object. `auths` keys are compared by host (`https://host/v1/` is `host`).
pub fn host_entry(path: &Path, host: &str) -> Option<HostEntry> {
    let bytes = files::read_following(path, MAX_CONFIG).ok()??;
    let config: Value = serde_json::from_slice(&bytes).ok()?;
    let config = config.as_object()?;
    let auths_key = config
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|auths| {
            auths.iter().find_map(|(key, entry)| {
                let same = acr_broker::normalize_host(key).is_ok_and(|k| k == host);
                let holds = ["auth", "password", "identitytoken"].iter().any(|f| {
                    entry
                        .get(*f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                });
                (same && holds).then(|| key.clone())
            })
        });
    Some(HostEntry {
        cred_helper: config
            .get("credHelpers")
            .and_then(|h| h.get(host))
            .and_then(Value::as_str)
            .map(str::to_string),
        creds_store: config
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        auths_key,
    })
}

/// What `configure` did for one registry.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The entry was added.
    Added(String),
    /// The entry pointed at another helper and now points at this one.
    Replaced(String, String),
    /// The entry was already there.
    Unchanged(String),
}

/// Why Docker's config was left as it was.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config is a symlink that leads nowhere readable.
    #[error("cannot resolve {}: {source}", path.display())]
    Resolve {
        /// The symlink.
        path: PathBuf,
        /// Why it could not be followed.
        source: std::io::Error,
    },
    /// The config (or its folder) could not be read or written.
    #[error(transparent)]
    File(#[from] acr_broker::Error),
    /// The config's mode could not be read.
    #[error("{}: {source}", path.display())]
    Mode {
        /// The config.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The config is not JSON.
    #[error("{} is not valid JSON ({source}); fix the file first", path.display())]
    NotJson {
        /// The config.
        path: PathBuf,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// The config is JSON but not an object.
    #[error("{} is not a JSON object; fix the file first", .0.display())]
    NotObject(PathBuf),
    /// The config's `credHelpers` is not an object.
    #[error("{}: \"credHelpers\" is not a JSON object; fix the file first", .0.display())]
    HelpersNotObject(PathBuf),
    /// The edited config could not be encoded.
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// Adds `credHelpers[host] = "acr"` for each host to the config at `path`.
pub fn configure(path: &Path, hosts: &[String]) -> Result<Vec<Change>, ConfigError> {
    // Write through a symlinked config (dotfile managers) rather than replacing the link.
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|source| ConfigError::Resolve {
                path: path.to_path_buf(),
                source,
            })?
        }
        _ => path.to_path_buf(),
    };
    let (mut root, mode) = match read_config(&target)? {
        Some((root, mode)) => (root, mode),
        None => {
            if let Some(dir) = target.parent()
                && !dir.exists()
            {
                files::ensure_private_dir(dir)?;
            }
            (Map::new(), 0o600)
        }
    };
    let helpers = root
        .entry("credHelpers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(helpers) = helpers else {
        return Err(ConfigError::HelpersNotObject(target));
    };
    let mut changes = Vec::new();
    for host in hosts {
        match helpers.get(host) {
            Some(Value::String(h)) if h == HELPER_NAME => {
                changes.push(Change::Unchanged(host.clone()))
            }
            Some(old) => {
                let old = old.as_str().unwrap_or("?").to_string();
                helpers.insert(host.clone(), Value::String(HELPER_NAME.into()));
                changes.push(Change::Replaced(host.clone(), old));
            }
            None => {
                helpers.insert(host.clone(), Value::String(HELPER_NAME.into()));
                changes.push(Change::Added(host.clone()));
            }
        }
    }
    if changes.iter().any(|c| !matches!(c, Change::Unchanged(_))) {
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(root))?;
        bytes.push(b'\n');
        files::write_atomic(&target, &bytes, mode)?;
    }
    Ok(changes)
}

/// A config file's top-level object and its mode.
type Config = (Map<String, Value>, u32);

/// The config's top-level object and the file's mode, or `None` when there is no file.
fn read_config(path: &Path) -> Result<Option<Config>, ConfigError> {
    let Some(bytes) = files::read_private(path, MAX_CONFIG)? else {
        return Ok(None);
    };
    let mode = files::mode(path).map_err(|source| ConfigError::Mode {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some((Map::new(), mode)));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some((map, mode))),
        Ok(_) => Err(ConfigError::NotObject(path.to_path_buf())),
        Err(source) => Err(ConfigError::NotJson {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn helms_registry_config_is_helm_registry_config_else_under_xdg_config_home() {
        let path = |pairs: &[(&str, &str)]| {
            helm_registry_config_path(&Env::from_pairs(pairs.iter().copied()))
                .map(|p| p.display().to_string())
        };
        let all = [
            ("HELM_REGISTRY_CONFIG", "/ci/helm.json"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(path(&all).as_deref(), Some("/ci/helm.json"));
        assert_eq!(
            path(&all[1..]).as_deref(),
            Some("/x/helm/registry/config.json")
        );
        assert_eq!(
            path(&all[2..]).as_deref(),
            Some("/h/.config/helm/registry/config.json")
        );
        assert_eq!(path(&[]), None);
    }

    #[test]
    fn host_entries_read_as_clients_read_them() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.json");
        let read = |json: &str| {
            std::fs::write(&f, json).unwrap();
            host_entry(&f, "r.azurecr.io")
        };
        let e = read(
            r#"{"auths": {"https://r.azurecr.io/v1/": {"auth": "dTpw"}, "other.io": {"auth": "eDp5"}}}"#,
        )
        .unwrap();
        assert_eq!(e.auths_key.as_deref(), Some("https://r.azurecr.io/v1/"));
        assert_eq!((e.cred_helper, e.creds_store), (None, None));
        // An entry without credentials (what `docker logout` can leave) hides nothing.
        assert_eq!(
            read(r#"{"auths": {"r.azurecr.io": {}}}"#)
                .unwrap()
                .auths_key,
            None
        );
        assert_eq!(
            read(r#"{"auths": {"r.azurecr.io": {"identitytoken": "t"}}}"#)
                .unwrap()
                .auths_key
                .as_deref(),
            Some("r.azurecr.io")
        );
        // A lookalike host is another registry.
        assert_eq!(
            read(r#"{"auths": {"r.azurecr.io.evil.example": {"auth": "dTpw"}}}"#)
                .unwrap()
                .auths_key,
            None
        );
        let e =
            read(r#"{"credsStore": "desktop", "credHelpers": {"r.azurecr.io": "acr"}}"#).unwrap();
        assert_eq!(e.cred_helper.as_deref(), Some("acr"));
        assert_eq!(e.creds_store.as_deref(), Some("desktop"));
        assert_eq!(read("[1]"), None);
        assert_eq!(read("not json"), None);
        std::fs::remove_file(&f).unwrap();
        assert_eq!(host_entry(&f, "r.azurecr.io"), None);
    }

    #[test]
    fn the_containers_auth_file_is_registry_auth_file_else_the_persistent_one() {
        let path = |pairs: &[(&str, &str)]| {
            containers_auth_path(&Env::from_pairs(pairs.iter().copied()))
                .map(|p| p.display().to_string())
        };
        let all = [
            ("REGISTRY_AUTH_FILE", "/ci/auth.json"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(path(&all).as_deref(), Some("/ci/auth.json"));
        assert_eq!(path(&all[1..]).as_deref(), Some("/x/containers/auth.json"));
        assert_eq!(
            path(&all[2..]).as_deref(),
            Some("/h/.config/containers/auth.json")
        );
        assert_eq!(
            path(&[("REGISTRY_AUTH_FILE", ""), ("HOME", "/h")]).as_deref(),
            Some("/h/.config/containers/auth.json"),
            "an empty REGISTRY_AUTH_FILE is unset"
        );
        assert_eq!(path(&[]), None);
    }

    #[test]
    fn keeps_unknown_keys_order_and_mode_and_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        let original = r#"{"auths":{"x.io":{"auth":"abc"}},"zeta":1,"credHelpers":{"gcr.io":"gcloud"},"alpha":{"k":[1,2]}}"#;
        std::fs::write(&p, original).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = configure(&p, &["a.azurecr.io".into(), "gcr.io".into()]).unwrap();
        assert_eq!(
            c,
            vec![
                Change::Added("a.azurecr.io".into()),
                Change::Replaced("gcr.io".into(), "gcloud".into())
            ]
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["auths", "zeta", "credHelpers", "alpha"]);
        assert_eq!(v["auths"]["x.io"]["auth"], "abc");
        assert_eq!(v["alpha"]["k"][1], 2);
        assert_eq!(v["credHelpers"]["a.azurecr.io"], "acr");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        let before = std::fs::read(&p).unwrap();
        let c = configure(&p, &["a.azurecr.io".into()]).unwrap();
        assert_eq!(c, vec![Change::Unchanged("a.azurecr.io".into())]);
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn refuses_broken_files_without_touching_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        let shown = p.display();
        for (bad, message) in [
            (
                "{not json",
                format!(
                    "{shown} is not valid JSON (key must be a string at line 1 column 2); fix the file first"
                ),
            ),
            (
                "[1]",
                format!("{shown} is not a JSON object; fix the file first"),
            ),
            (
                r#"{"credHelpers":[]}"#,
                format!("{shown}: \"credHelpers\" is not a JSON object; fix the file first"),
            ),
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = configure(&p, &["a.azurecr.io".into()]).unwrap_err();
            assert_eq!(e.to_string(), message);
            assert_eq!(std::fs::read_to_string(&p).unwrap(), bad);
        }
    }

    #[test]
    fn creates_a_missing_file_0600_and_follows_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new/config.json");
        configure(&p, &["a.azurecr.io".into()]).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        configure(&link, &["b.azurecr.io".into()]).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["credHelpers"]["b.azurecr.io"], "acr");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary JSON values, a few levels deep.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_other_key_survives(other in proptest::collection::btree_map("[a-zA-Z]{1,10}", json(), 0..6)) {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("config.json");
            let mut root: Map<String, Value> = other.clone().into_iter().collect();
            root.remove("credHelpers");
            std::fs::write(&p, serde_json::to_vec(&Value::Object(root.clone())).unwrap()).unwrap();
            configure(&p, &["abcde.azurecr.io".into()]).unwrap();
            let after: Map<String, Value> = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            for (k, v) in &root {
                prop_assert_eq!(after.get(k), Some(v));
            }
            prop_assert_eq!(&after["credHelpers"]["abcde.azurecr.io"], "acr");
        }

        #[test]
        fn garbage_is_refused_and_left_alone(bytes in proptest::collection::vec(any::<u8>(), 1..200)) {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("config.json");
            std::fs::write(&p, &bytes).unwrap();
            if configure(&p, &["abcde.azurecr.io".into()]).is_err() {
                prop_assert_eq!(std::fs::read(&p).unwrap(), bytes);
            }
        }
    }
}
