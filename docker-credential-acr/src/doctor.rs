//! `doctor`: why a pull would or would not authenticate, for a person (or `--json` for scripts).
//!
//! It shows which settings it read (names only), which identity source the chain picks and why
//! each earlier one was skipped, tenant and client id, the cache folder and its entries with their
//! expiry, and, for a registry, whether its challenge answers and whether a token can be had. It
//! never prints a secret, and exits non-zero when a pull would fail.

use acr_broker::{Broker, Env, Identity, Settings};
use serde_json::{Value, json};

/// Variables that configure the broker; their names are shown, values only when not secret.
const SETTINGS: &[(&str, bool)] = &[
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
    ("SSL_CERT_FILE", false),
    ("HTTPS_PROXY", false),
    ("NO_PROXY", false),
];

/// Runs the checks; returns the report and whether everything needed for a pull works.
pub fn doctor(env: Env, registry: Option<&str>, as_json: bool) -> (String, bool) {
    let mut ok = true;
    let config: Vec<Value> = SETTINGS
        .iter()
        .filter_map(|(name, secret)| {
            env.get(name).map(|v| {
                let shown = if *secret {
                    "(set, hidden)".to_string()
                } else {
                    v.to_string()
                };
                json!({"name": name, "value": shown})
            })
        })
        .collect();
    let settings = match Settings::from_env(env, None) {
        Ok(s) => s,
        Err(e) => {
            let report = json!({"ok": false, "config": config, "error": e.to_string()});
            return (render(&report, as_json), false);
        }
    };
    let (chosen, skipped) = Identity::select(&settings);
    let skipped: Vec<Value> = skipped
        .iter()
        .map(|s| json!({"source": s.source, "reason": s.reason}))
        .collect();
    let identity = match &chosen {
        Ok(id) => json!({
            "source": id.source_name(),
            "client_id": id.client_id(),
            "tenant": id.tenant(),
        }),
        Err(e) => {
            ok = false;
            json!({"error": e.to_string()})
        }
    };
    let cache_dir = settings.cache_dir.clone();
    let broker = Broker::new(settings);
    let now = acr_broker::Clock::now(&acr_broker::SystemClock);
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
    let mut report = json!({
        "config": config,
        "cache_dir": cache_dir.as_ref().map(|d| d.display().to_string()),
        "cache_usable": broker.cache().is_none_or(|c| c.prepare().is_ok()),
        "identity": identity,
        "skipped": skipped,
        "cached": cached,
    });
    if let Some(input) = registry {
        let mut r = json!({"input": input});
        match broker.login_server(input) {
            Err(e) => {
                ok = false;
                r["error"] = json!(format!(
                    "{e}; add it to ACR_LOGIN_SERVERS if it is an ACR under another name"
                ));
            }
            Ok(server) => {
                r["login_server"] = json!(server.host());
                r["authority"] = json!(broker.authority(&server));
                match broker.challenge(&server) {
                    Ok(c) => r["challenge"] = json!({"realm": c.realm, "service": c.service}),
                    Err(e) => {
                        ok = false;
                        r["challenge"] = json!({"error": e.to_string()});
                    }
                }
                if let Ok(id) = &chosen {
                    match broker.credential_for(&server, id) {
                        Ok(c) => {
                            r["token"] = json!({
                                "ok": true,
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
    (render(&report, as_json), ok)
}

fn render(report: &Value, as_json: bool) -> String {
    if as_json {
        return serde_json::to_string_pretty(report).unwrap_or_default();
    }
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
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
    if let Some(dir) = report.get("cache_dir") {
        let usable = if report["cache_usable"] == json!(true) {
            "ok"
        } else {
            "NOT USABLE (tokens will not be cached)"
        };
        out.push(format!("cache folder: {} ({usable})", s(dir)));
    }
    for k in report["skipped"].as_array().cloned().unwrap_or_default() {
        out.push(format!("skipped {}: {}", s(&k["source"]), s(&k["reason"])));
    }
    let id = &report["identity"];
    if let Some(e) = id.get("error") {
        out.push(format!("identity: ERROR {}", s(e)));
    } else if !id.is_null() {
        out.push(format!(
            "identity: {} (client id {}, tenant {})",
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
                    "  token: ok, expires in {} min",
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
