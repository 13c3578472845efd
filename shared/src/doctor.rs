//! The checks behind both binaries' `doctor`: why a pull would or would not authenticate, as a
//! report for a person (text) or a script (JSON).
//!
//! [`check`] lists the settings it read (secret values hidden), the identity (the chain's choice
//! and why each earlier source was skipped, or one the front end chose itself), tenant and client
//! id, the cache folder and its entries with their expiry, and, for a registry, whether its
//! challenge answers and whether a token can be had. Front ends add their own [`Section`]s (the
//! kubelet provider's azure.json and mirrors). Nothing in a report is ever a secret.

use crate::{Broker, Clock, Env, Identity, SystemClock};
use serde_json::{Value, json};

/// Variables that configure the broker, and whether their value is secret. Names of those set
/// are listed; values only when not secret.
pub const SETTINGS: &[(&str, bool)] = &[
    ("ACR_IDENTITY", false),
    ("ACR_LOGIN_SERVERS", false),
    ("ACR_AUDIENCE", false),
    ("ACR_CACHE_DIR", false),
    ("ACR_TIMEOUT", false),
    ("ACR_ANONYMOUS_FALLBACK", false),
    ("AZURE_TENANT_ID", false),
    ("AZURE_CLIENT_ID", false),
    ("AZURE_CLIENT_SECRET", true),
    ("AZURE_CLIENT_CERTIFICATE_PATH", false),
    ("AZURE_FEDERATED_TOKEN_FILE", false),
    ("AZURE_AUTHORITY_HOST", false),
    ("IDENTITY_ENDPOINT", false),
    ("IDENTITY_HEADER", true),
    ("ACR_CLOUD", false),
    ("ACR_DMI_ASSET_TAG_FILE", false),
    ("AZURE_ENVIRONMENT_FILEPATH", false),
    ("SSL_CERT_FILE", false),
    ("HTTPS_PROXY", false),
    ("https_proxy", false),
    ("HTTP_PROXY", false),
    ("http_proxy", false),
    ("ALL_PROXY", false),
    ("all_proxy", false),
    ("NO_PROXY", false),
    ("no_proxy", false),
    ("ACR_CREDENTIAL_STORE", false),
    ("ACR_CREDENTIALS_FILE", false),
];

/// What a report shows instead of a secret value.
pub const HIDDEN: &str = "(set, hidden)";

/// `value` with the user info of every URL in it hidden (`http://user:pass@proxy:3128` →
/// `http://(hidden)@proxy:3128`, also without a scheme): proxies and endpoints may carry
/// credentials.
pub fn hide_userinfo(value: &str) -> String {
    value
        .split(',')
        .map(|item| {
            let (scheme, rest) = match item.find("://") {
                Some(i) => item.split_at(i + 3),
                None => ("", item),
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}(hidden){}", &rest[at..]),
                None => item.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The [`SETTINGS`] present in `env`, as `{"name", "value"}` objects with secret values hidden,
/// and user info hidden in every other value.
pub fn settings_listing(env: &Env) -> Vec<Value> {
    SETTINGS
        .iter()
        .filter_map(|(name, secret)| {
            env.get(name).map(|v| {
                let shown = if *secret {
                    HIDDEN.to_string()
                } else {
                    hide_userinfo(v)
                };
                json!({"name": name, "value": shown})
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

/// A part of the report that only one front end has: a JSON value under `key`, and text lines
/// shown after the settings.
#[derive(Debug, Clone)]
pub struct Section {
    /// The JSON key; must not be one of the report's own keys.
    pub key: &'static str,
    /// The JSON value; never holds a secret.
    pub value: Value,
    /// The text lines; a problem reads `<what>: ERROR <cause and fix>`.
    pub lines: Vec<String>,
    /// `false` when this section alone means a pull would fail.
    pub ok: bool,
}

/// What [`check`] looks at beyond the broker's settings.
#[derive(Debug, Default)]
pub struct Checks {
    /// The settings listing, from [`settings_listing`].
    pub config: Vec<Value>,
    /// The front end's own sections.
    pub sections: Vec<Section>,
    /// The identity the front end uses; `None`: the broker's chain picks one.
    pub identity: Option<ChosenIdentity>,
    /// A registry (host, login server or URL) to check the challenge and a token with.
    pub registry: Option<String>,
    /// Appended to the error for a registry that is not an ACR login server.
    pub not_acr_hint: String,
    /// When set, an unusable cache folder is an error, explained with this advice; otherwise it
    /// is only noted (tokens are then fetched every time, but pulls work).
    pub cache_required: Option<String>,
}

/// A finished report.
#[derive(Debug, Clone)]
pub struct Report {
    value: Value,
    lines: Vec<String>,
}

impl Report {
    /// The report when the settings themselves are unusable: the listing, the front end's
    /// sections and the error; nothing else can be checked.
    pub fn config_error(config: Vec<Value>, sections: Vec<Section>, error: &str) -> Report {
        let mut value = json!({"ok": false, "config": config});
        let mut lines = Vec::new();
        for s in sections {
            value[s.key] = s.value;
            lines.extend(s.lines);
        }
        value["error"] = json!(error);
        Report { value, lines }
    }

    /// Whether everything needed for a pull works.
    pub fn ok(&self) -> bool {
        self.value["ok"] == json!(true)
    }

    /// The report as JSON.
    pub fn json(&self) -> &Value {
        &self.value
    }

    /// The report as pretty JSON (`as_json`) or as text lines for a person.
    pub fn render(&self, as_json: bool) -> String {
        if as_json {
            serde_json::to_string_pretty(&self.value).unwrap_or_default()
        } else {
            render_text(&self.value, &self.lines)
        }
    }
}

/// Runs the checks with `broker` (built from the same settings a real request uses).
pub fn check(broker: &Broker, checks: Checks) -> Report {
    let mut ok = checks.sections.iter().all(|s| s.ok);
    let (chosen, skipped, origin) = match checks.identity {
        Some(c) => (c.identity, Vec::new(), Some(c.origin)),
        None => {
            let (chosen, skipped) = Identity::select(broker.settings());
            (chosen.map_err(|e| e.to_string()), skipped, None)
        }
    };
    let skipped: Vec<Value> = skipped
        .iter()
        .map(|s| json!({"source": s.source, "reason": s.reason}))
        .collect();
    let mut identity = match &chosen {
        Ok(id) => json!({
            "source": id.source_name(),
            "client_id": id.client_id(),
            "tenant": id.tenant(),
        }),
        Err(e) => {
            ok = false;
            json!({"error": e})
        }
    };
    if let Some(origin) = origin {
        identity["from"] = json!(origin);
    }
    let now = SystemClock.now();
    let cached: Vec<Value> = broker
        .cached_servers()
        .into_iter()
        .map(|e| {
            json!({
                "login_server": e.login_server,
                "identity": e.identity,
                "expires_at": e.expires_at,
                "expires_in_minutes": (e.expires_at - now) / 60,
            })
        })
        .collect();
    let cache_error = broker
        .cache()
        .and_then(|c| c.prepare().err())
        .map(|e| e.to_string());
    let mut report = json!({"config": checks.config});
    let mut lines = Vec::new();
    for s in checks.sections {
        report[s.key] = s.value;
        lines.extend(s.lines);
    }
    report["cache_dir"] = json!(
        broker
            .settings()
            .cache_dir
            .as_ref()
            .map(|d| d.display().to_string())
    );
    report["cache_usable"] = json!(cache_error.is_none());
    if let (Some(advice), Some(e)) = (&checks.cache_required, &cache_error) {
        ok = false;
        report["cache_error"] = json!(format!("{e}; {advice}"));
    }
    report["identity"] = identity;
    report["skipped"] = json!(skipped);
    report["cached"] = json!(cached);
    if let Some(input) = checks.registry.as_deref() {
        let mut r = json!({"input": input});
        match broker.login_server(input) {
            Err(e) => {
                ok = false;
                r["error"] = json!(format!("{e}; {}", checks.not_acr_hint));
            }
            Ok(server) => {
                r["login_server"] = json!(server.host());
                r["authority"] = json!(broker.authority());
                match broker.challenge(&server) {
                    Ok(c) => r["challenge"] = json!({"realm": c.realm, "service": c.service}),
                    Err(e) => {
                        ok = false;
                        r["challenge"] = json!({"error": e.to_string()});
                    }
                }
                if let Ok(id) = &chosen {
                    // A new exchange, not the cache: a role removed since the cached token
                    // was fetched must show.
                    match broker.verify(&server, id) {
                        Ok(c) => {
                            r["token"] = json!({
                                "ok": true,
                                "exchanged": true,
                                "expires_at": c.expires_at,
                                "expires_in_minutes": (c.expires_at - now) / 60,
                            })
                        }
                        Err(e) => {
                            ok = false;
                            r["token"] = json!({"ok": false, "error": e.to_string()});
                        }
                    }
                }
            }
        }
        report["registry"] = r;
    }
    report["ok"] = json!(ok);
    Report {
        value: report,
        lines,
    }
}

/// A JSON value as text: strings without quotes.
fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn render_text(report: &Value, extra: &[String]) -> String {
    let mut out = Vec::new();
    if let Some(e) = report.get("error") {
        out.push(format!("configuration: ERROR {}", s(e)));
    }
    let config = report["config"].as_array().cloned().unwrap_or_default();
    if config.is_empty() {
        out.push("settings: none of ACR_* / AZURE_* set".into());
    } else {
        out.push("settings:".into());
        for c in config {
            out.push(format!("  {}={}", s(&c["name"]), s(&c["value"])));
        }
    }
    out.extend(extra.iter().cloned());
    if let Some(dir) = report.get("cache_dir") {
        match report.get("cache_error") {
            Some(e) => out.push(format!("cache folder: {}: ERROR {}", s(dir), s(e))),
            None => {
                let usable = if report["cache_usable"] == json!(true) {
                    "ok"
                } else {
                    "NOT USABLE (tokens will not be cached)"
                };
                out.push(format!("cache folder: {} ({usable})", s(dir)));
            }
        }
    }
    for k in report["skipped"].as_array().cloned().unwrap_or_default() {
        out.push(format!("skipped {}: {}", s(&k["source"]), s(&k["reason"])));
    }
    let id = &report["identity"];
    if let Some(e) = id.get("error") {
        out.push(format!("identity: ERROR {}", s(e)));
    } else if !id.is_null() {
        let from = id
            .get("from")
            .map(|f| format!(", from {}", s(f)))
            .unwrap_or_default();
        out.push(format!(
            "identity: {} (client id {}, tenant {}){from}",
            s(&id["source"]),
            id["client_id"].as_str().unwrap_or("-"),
            id["tenant"].as_str().unwrap_or("from the token")
        ));
    }
    for c in report["cached"].as_array().cloned().unwrap_or_default() {
        out.push(format!(
            "cached: {} as {}, expires in {} min",
            s(&c["login_server"]),
            s(&c["identity"]),
            c["expires_in_minutes"]
        ));
    }
    if let Some(r) = report.get("registry") {
        if let Some(e) = r.get("error") {
            out.push(format!("registry {}: ERROR {}", s(&r["input"]), s(e)));
        } else {
            out.push(format!(
                "registry: {} (Entra authority {})",
                s(&r["login_server"]),
                s(&r["authority"])
            ));
            let c = &r["challenge"];
            match c.get("error") {
                Some(e) => out.push(format!("  challenge: ERROR {}", s(e))),
                None => out.push(format!("  challenge: ok, token service {}", s(&c["realm"]))),
            }
            let t = &r["token"];
            match t.get("error") {
                Some(e) => out.push(format!("  token: ERROR {}", s(e))),
                None if !t.is_null() => out.push(format!(
                    "  token: ok, expires in {} min (a new exchange, not the cache)",
                    t["expires_in_minutes"]
                )),
                None => {}
            }
        }
    }
    out.push(if report["ok"] == json!(true) {
        "result: ok".into()
    } else {
        "result: a pull would fail; see the ERROR lines".into()
    });
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    fn broker(pairs: &[(&str, &str)]) -> Broker {
        Broker::new(Settings::from_env(Env::from_pairs(pairs.iter().copied()), None).unwrap())
    }

    #[test]
    fn user_info_in_urls_is_hidden() {
        for (value, shown) in [
            ("http://user:p4ss@proxy:3128", "http://(hidden)@proxy:3128"),
            (
                "https://p4ss@proxy.example/x@y",
                "https://(hidden)@proxy.example/x@y",
            ),
            ("user:p4ss@proxy:3128", "(hidden)@proxy:3128"),
            (
                "socks5://a:b@h:1,http://c:d@e:2",
                "socks5://(hidden)@h:1,http://(hidden)@e:2",
            ),
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

    #[test]
    fn secret_values_are_hidden_and_unknown_variables_left_out() {
        let env = Env::from_pairs([
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
            ("IDENTITY_HEADER", "h3ad3r-value"),
            ("AZURE_CLIENT_ID", "c"),
            ("UNRELATED", "x"),
        ]);
        let listing = Value::from(settings_listing(&env)).to_string();
        assert!(!listing.contains("s3cr3t") && !listing.contains("h3ad3r"));
        assert!(listing.contains(r#"{"name":"AZURE_CLIENT_ID","value":"c"}"#));
        assert_eq!(listing.matches(HIDDEN).count(), 2, "{listing}");
        assert!(!listing.contains("UNRELATED"));
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
                sections: vec![Section {
                    key: "node",
                    value: json!({"x": 1}),
                    lines: vec!["node: fine".into()],
                    ok: true,
                }],
                ..Checks::default()
            },
        );
        assert!(report.ok());
        let v = report.json();
        assert_eq!(v["identity"]["from"], "/etc/kubernetes/azure.json");
        assert_eq!(v["skipped"], json!([]));
        assert_eq!(v["node"]["x"], 1);
        let text = report.render(false);
        assert!(text.contains("\nnode: fine\ncache folder: "), "{text}");
        assert!(
            text.contains("\nidentity: managed identity (IMDS) (client id c-1, tenant from the token), from /etc/kubernetes/azure.json\n"),
            "{text}"
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
        let report = check(&broker(&pairs), Checks::default());
        assert!(report.ok());
        assert!(report.render(false).contains("(NOT USABLE"));
        let report = check(
            &broker(&pairs),
            Checks {
                cache_required: Some("pass --cache-dir".into()),
                ..Checks::default()
            },
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
