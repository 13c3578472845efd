//! The checks behind both binaries' `doctor`: why a pull would or would not authenticate, as a
//! [`Diagnosis`] for a person (its text) or a script (its JSON).
//!
//! [`check`] lists the settings it read (secret values hidden), the identity (the chain's choice
//! and why each earlier source was skipped, or one the front end chose itself), tenant and client
//! id, the cache folder and its entries with their expiry, and, for a registry, whether its
//! challenge answers and whether a token can be had. Front ends add their own parts through
//! [`FrontEnd`] (the helper's stored credentials, the kubelet provider's azure.json and mirrors).
//! Nothing in a diagnosis is ever a secret.
//!
//! The findings are typed data ([`diagnosis`]); how they read as text is `text`'s alone, and the
//! JSON is their `Serialize`. The broker itself knows nothing of this module: presentation stays
//! out of the token library's core.

pub mod diagnosis;
mod text;

pub use diagnosis::{
    CacheCheck, CacheState, CachedToken, ChallengeCheck, Checked, Clamped, ConfigFileCheck,
    Diagnosis, FrontEnd, IdentityCheck, MinValidityCheck, Outcome, RegistryCheck, RepositoryAnswer,
    RepositoryCheck, RuleMatch, Section, Setting, SkippedSource, TokenCheck,
};

use crate::{Broker, Clock, Env, Identity, SystemClock};

/// Variables that configure the broker, and whether their value is secret. Names of those set
/// are listed; values only when not secret.
pub const SETTINGS: &[(&str, bool)] = &[
    ("ACR_IDENTITY", false),
    ("ACR_LOGIN_SERVERS", false),
    ("ACR_AUDIENCE", false),
    ("ACR_MIN_VALIDITY", false),
    ("ACR_CACHE_DIR", false),
    ("ACR_TIMEOUT", false),
    ("ACR_ANONYMOUS_FALLBACK", false),
    ("AZURE_TENANT_ID", false),
    ("AZURE_CLIENT_ID", false),
    ("AZURE_CLIENT_SECRET", true),
    ("AZURE_CLIENT_CERTIFICATE_PATH", false),
    ("AZURE_FEDERATED_TOKEN_FILE", false),
    ("AZURE_FEDERATED_TOKEN", true),
    ("ACTIONS_ID_TOKEN_REQUEST_URL", false),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", true),
    ("SYSTEM_OIDCREQUESTURI", false),
    ("SYSTEM_ACCESSTOKEN", true),
    ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", false),
    ("AZURESUBSCRIPTION_TENANT_ID", false),
    ("AZURESUBSCRIPTION_CLIENT_ID", false),
    ("AZURE_AUTHORITY_HOST", false),
    ("IDENTITY_ENDPOINT", false),
    ("IDENTITY_HEADER", true),
    ("ACR_CLOUD", false),
    ("ACR_DMI_ASSET_TAG_FILE", false),
    ("AZURE_ENVIRONMENT_FILEPATH", false),
    ("SSL_CERT_FILE", false),
    ("SSL_CERT_DIR", false),
    ("HTTPS_PROXY", false),
    ("https_proxy", false),
    ("HTTP_PROXY", false),
    ("http_proxy", false),
    ("ALL_PROXY", false),
    ("all_proxy", false),
    ("NO_PROXY", false),
    ("no_proxy", false),
    ("ACR_CONFIG", false),
    ("ACR_CREDENTIAL_STORE", false),
    ("ACR_CREDENTIALS_FILE", false),
];

/// What a report shows instead of a secret value.
pub const HIDDEN: &str = "(set, hidden)";

/// `value` with the user info of a URL in it hidden (`http://user:pass@proxy:3128` →
/// `http://(hidden)@proxy:3128`, also without a scheme): proxies and endpoints may carry
/// credentials. Everything after the scheme up to the last `@` of the whole value is hidden,
/// before anything is split: a password may hold `,`, `/`, `#`, `?` or `@` (proxy variables hold
/// one URL, so nothing is lost but an `@` after the host, hidden with it).
pub fn hide_userinfo(value: &str) -> String {
    let Some(at) = value.rfind('@') else {
        return value.to_string();
    };
    // A scheme is letters, digits, `+`, `-`, `.`, starting with a letter; anything else before
    // `://` is part of the user info.
    let scheme_end = value.find("://").filter(|&i| {
        let scheme = &value[..i];
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let scheme = scheme_end.map_or("", |i| &value[..i + 3]);
    format!("{scheme}(hidden){}", &value[at..])
}

/// The [`SETTINGS`] present in `env`, secret values hidden and user info hidden in every other
/// value.
pub fn settings_listing(env: &Env) -> Vec<Setting> {
    SETTINGS
        .iter()
        .filter_map(|(name, secret)| {
            env.get(name).map(|v| Setting {
                name,
                value: if *secret {
                    HIDDEN.to_string()
                } else {
                    hide_userinfo(v)
                },
            })
        })
        .collect()
}

/// An identity the front end chose itself (the kubelet provider's azure.json), reported instead
/// of the chain's choice.
#[derive(Debug)]
pub struct ChosenIdentity {
    /// The identity, or why the front end has none (one line, no secret).
    pub identity: Result<Identity, String>,
    /// Where it comes from, e.g. `/etc/kubernetes/azure.json`.
    pub origin: String,
}

/// What [`check`] looks at beyond the broker's settings.
#[derive(Debug, Default)]
pub struct Checks {
    /// The settings listing, from [`settings_listing`].
    pub config: Vec<Setting>,
    /// The identity the front end uses; `None`: the broker's chain picks one.
    pub identity: Option<ChosenIdentity>,
    /// A registry (host, login server or URL) to check the challenge and a token with.
    pub registry: Option<String>,
    /// A repository of that registry: what a token for `pull,push,delete` on it really grants.
    pub repository: Option<String>,
    /// Appended to the error for a registry that is not an ACR login server.
    pub not_acr_hint: String,
    /// When set, an unusable cache folder is an error, explained with this advice; otherwise it
    /// is only noted (tokens are then fetched every time, but pulls work).
    pub cache_required: Option<String>,
}

/// What the report says of an identity the chain (or the front end, `from`) chose.
fn identity_check(chosen: &Result<Identity, String>, from: Option<String>) -> IdentityCheck {
    match chosen {
        Ok(id) => IdentityCheck::Found {
            source: id.source_name(),
            client_id: id.client_id().map(str::to_string),
            tenant: id.tenant().map(str::to_string),
            from,
        },
        Err(error) => IdentityCheck::Missing {
            error: error.clone(),
            from,
        },
    }
}

/// Runs the checks with `broker` (built from the same settings a real request uses); `front` is
/// the front end's own parts.
pub fn check<F: FrontEnd>(broker: &Broker, checks: Checks, front: F) -> Diagnosis<F> {
    let (chosen, skipped, from) = match checks.identity {
        Some(c) => (c.identity, Vec::new(), Some(c.origin)),
        None => {
            let (chosen, skipped) = Identity::select(broker.settings());
            (chosen.map_err(|e| e.to_string()), skipped, None)
        }
    };
    let identity = identity_check(&chosen, from);
    let now = SystemClock.now();
    let cached = broker
        .cached_servers()
        .into_iter()
        .map(|e| CachedToken {
            login_server: e.login_server,
            identity: e.identity,
            expires_at: e.expires_at,
            expires_in_minutes: (e.expires_at - now) / 60,
        })
        .collect();
    let cache_error = broker.cache().and_then(|c| c.prepare().err());
    let state = match (cache_error, &checks.cache_required) {
        (None, _) => CacheState::Usable,
        (Some(e), Some(advice)) => CacheState::Failed(format!("{e}; {advice}")),
        (Some(_), None) => CacheState::NotUsable,
    };
    let cache = CacheCheck {
        dir: broker
            .settings()
            .cache_dir
            .as_ref()
            .map(|d| d.display().to_string()),
        state,
    };
    let registry = checks.registry.map(|input| {
        let server = match broker.login_server(&input) {
            Ok(server) => server,
            Err(e) => {
                return RegistryCheck::NotAcr {
                    error: format!("{e}; {}", checks.not_acr_hint),
                    input,
                };
            }
        };
        let challenge = match broker.challenge(&server) {
            Ok(c) => ChallengeCheck::Answered {
                realm: c.realm,
                service: c.service,
            },
            Err(e) => ChallengeCheck::Failed {
                error: e.to_string(),
            },
        };
        // A config file rule: its own broker and identity serve this registry, with the token
        // of its login server.
        let mut ruled = None;
        let mut rule_error = None;
        let rule = broker.rule_for(&server).map(|r| {
            let identity = match broker.for_rule(&server, r) {
                Ok((b, target)) => {
                    let id = Identity::select(b.settings()).0.map_err(|e| e.to_string());
                    let check = identity_check(&id, None);
                    ruled = Some((b, target, id));
                    check
                }
                Err(e) => {
                    rule_error = Some(e.to_string());
                    identity_check(&Err(e.to_string()), None)
                }
            };
            Box::new(RuleMatch {
                file: broker
                    .rules()
                    .map(|f| f.path.display().to_string())
                    .unwrap_or_default(),
                line: r.line,
                pattern: r.pattern.clone(),
                login_server: r.login_server.clone(),
                identity,
            })
        });
        let (verifier, target, chosen) = match &ruled {
            Some((b, target, id)) => (b, target, id),
            None => (broker, &server, &chosen),
        };
        // A new exchange, not the cache: a role removed since the cached token was fetched
        // must show.
        let token = match rule_error {
            Some(e) => Some(TokenCheck::Failed(e)),
            _ => chosen
                .as_ref()
                .ok()
                .map(|id| match verifier.verify(target, id) {
                    Ok(c) => {
                        let min = verifier.settings().min_validity_for(target);
                        TokenCheck::Exchanged {
                            expires_at: c.expires_at,
                            expires_in_minutes: (c.expires_at - now) / 60,
                            audience: c.audience.map(|a| a.name()),
                            min_validity_clamped: min.clamped(c.lifetime).then(|| Clamped {
                                lifetime_minutes: c.lifetime / 60,
                                held_to_minutes: min.effective(c.lifetime) / 60,
                            }),
                        }
                    }
                    Err(e) => TokenCheck::Failed(e.to_string()),
                }),
        };
        let repository = match (&token, &checks.repository) {
            (Some(TokenCheck::Exchanged { .. }), Some(name)) => {
                Some(Box::new(repository_check(verifier, target, name)))
            }
            _ => None,
        };
        RegistryCheck::Checked {
            input,
            login_server: server.host().to_string(),
            authority: verifier.authority(),
            rule,
            challenge,
            token,
            repository,
        }
    });
    let config_file = broker.rules().map(|r| ConfigFileCheck {
        path: r.path.display().to_string(),
        rules: r.rules.len(),
    });
    Diagnosis {
        settings: checks.config,
        front,
        outcome: Outcome::Checked(Box::new(Checked {
            cache,
            config_file,
            identity,
            skipped: skipped
                .into_iter()
                .map(|s| SkippedSource {
                    source: s.source,
                    reason: s.reason,
                })
                .collect(),
            cached,
            min_validity: MinValidityCheck {
                minutes: broker.settings().min_validity.seconds / 60,
                origin: broker.settings().min_validity.origin(),
            },
            registry,
        })),
    }
}

/// Asks `target`'s token service for `pull,push,delete` on `name` and reads what the token
/// grants (in an ABAC-mode registry, repository role assignments decide; elsewhere the registry
/// role does).
fn repository_check(broker: &Broker, target: &crate::LoginServer, name: &str) -> RepositoryCheck {
    const ACTIONS: [&str; 3] = ["pull", "push", "delete"];
    let registry_name = target
        .host()
        .split(['.', ':'])
        .next()
        .unwrap_or_default()
        .to_string();
    let scope = format!("repository:{name}:{}", ACTIONS.join(","));
    let answer = match broker.access_token(target, &[scope]) {
        Ok(token) => {
            let granted = crate::token::granted_on(name, &token.access);
            let all = granted.iter().any(|a| a == "*");
            let missing: Vec<String> = ACTIONS
                .iter()
                .filter(|a| !all && !granted.iter().any(|g| g == *a))
                .map(|a| a.to_string())
                .collect();
            let roles = (!missing.is_empty()).then(|| crate::token::roles_granting(&missing));
            RepositoryAnswer::Granted {
                granted: ACTIONS
                    .iter()
                    .filter(|a| all || granted.iter().any(|g| g == *a))
                    .map(|a| a.to_string())
                    .collect(),
                missing,
                role: roles.map(|r| r.0),
                abac_role: roles.map(|r| r.1),
            }
        }
        Err(e) => RepositoryAnswer::Failed {
            error: e.to_string(),
        },
    };
    RepositoryCheck {
        name: name.to_string(),
        registry_name,
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_broker as broker;
    use serde::Serialize;
    use serde_json::{Value, json};

    #[test]
    fn user_info_in_urls_is_hidden() {
        for (value, shown) in [
            ("http://user:p4ss@proxy:3128", "http://(hidden)@proxy:3128"),
            // An `@` after the host cannot be told from one in a password with a `/`: hidden too.
            ("https://p4ss@proxy.example/x@y", "https://(hidden)@y"),
            ("user:p4ss@proxy:3128", "(hidden)@proxy:3128"),
            // Proxy variables hold one URL: a `,` may be part of a password.
            ("socks5://a:b@h:1,http://c:d@e:2", "socks5://(hidden)@e:2"),
            ("http://proxy:3128", "http://proxy:3128"),
            ("localhost,.internal", "localhost,.internal"),
        ] {
            assert_eq!(hide_userinfo(value), shown, "{value}");
        }
        let listing = settings_listing(&Env::from_pairs([
            ("HTTPS_PROXY", "http://user:p4ss@proxy:3128"),
            ("all_proxy", "socks5://u:p4ss@proxy:1080"),
        ]));
        let text = serde_json::to_string(&listing).unwrap();
        assert!(!text.contains("p4ss"), "{text}");
        assert!(text.contains("all_proxy"), "{text}");
    }

    /// A password with `,`, `#`, `/`, `?` or `@` in it is hidden whole: everything up to the last
    /// `@` of the value, before anything else is split.
    #[test]
    fn passwords_with_separators_are_hidden_whole() {
        for (value, shown) in [
            (
                "http://alice:Sup3r,S3cret@proxy:3128",
                "http://(hidden)@proxy:3128",
            ),
            (
                "http://alice:p#ss/w?rd@proxy:3128",
                "http://(hidden)@proxy:3128",
            ),
            (
                "http://alice:p@ss@proxy:3128/",
                "http://(hidden)@proxy:3128/",
            ),
            ("alice:a,b#c@proxy:3128", "(hidden)@proxy:3128"),
        ] {
            assert_eq!(hide_userinfo(value), shown, "{value}");
        }
        let listing = settings_listing(&Env::from_pairs([(
            "HTTPS_PROXY",
            "http://alice:Sup3r,S3cret@proxy:3128",
        )]));
        let text = serde_json::to_string(&listing).unwrap();
        assert!(
            !text.contains("Sup3r") && !text.contains("S3cret"),
            "{text}"
        );
    }

    #[test]
    fn secret_values_are_hidden_and_unknown_variables_left_out() {
        let env = Env::from_pairs([
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
            ("IDENTITY_HEADER", "h3ad3r-value"),
            ("AZURE_CLIENT_ID", "c"),
            ("UNRELATED", "x"),
        ]);
        let listing = serde_json::to_string(&settings_listing(&env)).unwrap();
        assert!(!listing.contains("s3cr3t") && !listing.contains("h3ad3r"));
        assert!(listing.contains(r#"{"name":"AZURE_CLIENT_ID","value":"c"}"#));
        assert_eq!(listing.matches(HIDDEN).count(), 2, "{listing}");
        assert!(!listing.contains("UNRELATED"));
    }

    /// A front end with one part.
    #[derive(Serialize)]
    struct Node {
        node: Fine,
    }

    #[derive(Serialize)]
    struct Fine {
        x: u32,
    }

    impl std::fmt::Display for Fine {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("node: fine")
        }
    }

    impl Section for Fine {
        fn ok(&self) -> bool {
            true
        }
    }

    impl FrontEnd for Node {
        fn sections(&self) -> Vec<&dyn Section> {
            vec![&self.node]
        }
    }

    #[test]
    fn a_chosen_identity_replaces_the_chain_and_sections_are_shown() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let b = broker(&[
            ("PATH", "/nonexistent"),
            ("ACR_CACHE_DIR", cache.to_str().unwrap()),
        ]);
        let report = check(
            &b,
            Checks {
                identity: Some(ChosenIdentity {
                    identity: Ok(Identity::Imds {
                        client_id: Some("c-1".into()),
                    }),
                    origin: "/etc/kubernetes/azure.json".into(),
                }),
                ..Checks::default()
            },
            Node {
                node: Fine { x: 1 },
            },
        );
        assert!(report.ok());
        let v: Value = serde_json::from_str(&report.render(true)).unwrap();
        assert_eq!(v["identity"]["from"], "/etc/kubernetes/azure.json");
        assert_eq!(v["skipped"], json!([]));
        assert_eq!(v["node"]["x"], 1);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "config",
                "node",
                "cache_dir",
                "cache_usable",
                "identity",
                "skipped",
                "cached",
                "min_validity",
                "ok"
            ]
        );
        let text = report.render(false);
        assert!(text.contains("\nnode: fine\ncache folder: "), "{text}");
        assert!(
            text.contains("\nidentity: managed identity (IMDS) (client id c-1, tenant from the token), from /etc/kubernetes/azure.json\n"),
            "{text}"
        );
    }

    #[test]
    fn unusable_settings_report_the_error_first() {
        let report = Diagnosis::unusable(
            settings_listing(&Env::from_pairs([("ACR_TIMEOUT", "soon")])),
            Node {
                node: Fine { x: 2 },
            },
            "invalid configuration: ACR_TIMEOUT".into(),
        );
        assert!(!report.ok());
        assert_eq!(
            report.render(false),
            "configuration: ERROR invalid configuration: ACR_TIMEOUT\nsettings:\n  ACR_TIMEOUT=soon\nnode: fine\nresult: a pull would fail; see the ERROR lines"
        );
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"ok":false,"config":[{"name":"ACR_TIMEOUT","value":"soon"}],"node":{"x":2},"error":"invalid configuration: ACR_TIMEOUT"}"#
        );
    }

    #[test]
    fn an_unusable_cache_fails_only_when_required() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let cache = file.join("cache");
        let pairs = [
            ("PATH", "/nonexistent"),
            ("ACR_IDENTITY", "imds"),
            ("ACR_CACHE_DIR", cache.to_str().unwrap()),
        ];
        let report = check(&broker(&pairs), Checks::default(), ());
        assert!(report.ok());
        assert!(report.render(false).contains("(NOT USABLE"));
        let report = check(
            &broker(&pairs),
            Checks {
                cache_required: Some("pass --cache-dir".into()),
                ..Checks::default()
            },
            (),
        );
        assert!(!report.ok());
        let text = report.render(false);
        let line = text
            .lines()
            .find(|l| l.starts_with("cache folder: "))
            .unwrap();
        assert!(
            line.starts_with(&format!("cache folder: {}: ERROR cannot ", cache.display()))
                && line.contains("Not a directory")
                && line.ends_with("; pass --cache-dir"),
            "{text}"
        );
    }
}
