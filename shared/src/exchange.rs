//! The ACR token service: exchanging an Entra token for an ACR refresh token.
//!
//! The broker posts straight to `https://<login>/oauth2/exchange`. Only when that endpoint is not
//! there (404/405) does it read the `/v2/` challenge to discover the realm, and it follows a realm
//! only on the login server the token is for (for a custom host a config file rule maps to a
//! login server, that login server), for that login server as the `service`: a registry's
//! challenge never sends the Entra token to another host, nor gets a token of another registry
//! stored under its name.

use crate::error::{Error, one_line};
use crate::http::{error_chain, read_body, send_may_heal};
use crate::identity::Identity;
use crate::registry::LoginServer;
use crate::retry::{Attempt, retry_after, with_retries};
use crate::secret::Secret;
use std::collections::HashMap;
use std::time::Duration;

/// A parsed `Www-Authenticate: Bearer ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The token endpoint.
    pub realm: String,
    /// The `service` parameter, if given.
    pub service: Option<String>,
}

/// Parses a Bearer challenge; values may be quoted (with `\` escapes) or bare tokens.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.to_ascii_lowercase(), value);
    }
    Some(Challenge {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

#[derive(serde::Deserialize)]
struct ExchangeResponse {
    refresh_token: Option<Secret>,
}

#[derive(serde::Deserialize)]
struct AcrErrors {
    errors: Vec<AcrError>,
}

#[derive(serde::Deserialize)]
struct AcrError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// What the exchange requests of one fetch send, and where: an Entra token of `identity` for
/// `server`'s refresh token.
pub(crate) struct Grant<'a> {
    /// The client of the fetch.
    pub http: &'a reqwest::Client,
    /// The registry.
    pub server: &'a LoginServer,
    /// Who the Entra token is for (for refusal messages).
    pub identity: &'a Identity,
    /// The tenant sent along, when known.
    pub tenant: Option<&'a str>,
    /// The Entra access token.
    pub aad_token: &'a Secret,
}

/// Exchanges the grant's Entra token for an ACR refresh token at its registry.
pub(crate) async fn exchange(grant: &Grant<'_>) -> Result<Secret, Error> {
    let registry = grant.server.host();
    let direct = format!("{}/oauth2/exchange", grant.server.base_url());
    let first = with_retries(|| post_exchange(grant, &direct, registry)).await;
    let detail = match first {
        Ok(token) => return Ok(token),
        Err(Attempt::NotThere(detail)) => detail,
        Err(other) => return Err(into_error(other, registry)),
    };
    log::debug!("{direct}: {detail}; reading the /v2/ challenge");
    let challenge = with_retries(|| discover(grant.http, grant.server))
        .await
        .map_err(|a| into_error(a, registry))?;
    let url = realm_exchange_url(grant.server, &challenge)?;
    with_retries(|| post_exchange(grant, &url, registry))
        .await
        .map_err(|a| into_error(a, registry))
}

/// The exchange URL of a challenge's realm, when the realm is an `https://…/oauth2/token` URL on
/// `server` itself and the challenge's `service`, if any, is `server`: an Entra token goes to no
/// other host, and the token got is for no other registry.
fn realm_exchange_url(server: &LoginServer, challenge: &Challenge) -> Result<String, Error> {
    let registry = server.host();
    let refuse = |detail: String| Error::Exchange {
        registry: registry.to_string(),
        detail,
    };
    let realm = &challenge.realm;
    let url = realm_to_exchange(realm).ok_or_else(|| {
        refuse(format!(
            "challenge realm {realm:?} is not an https://…/oauth2/token URL"
        ))
    })?;
    let on_registry = crate::registry::normalize_host(&url).is_ok_and(|h| h == registry);
    if !on_registry {
        return Err(refuse(format!(
            "challenge realm {realm:?} is not on {registry}; refusing to send a token to another host (for a host in front of another login server, name that one in a config file rule's login_server)"
        )));
    }
    if let Some(service) = &challenge.service
        && !crate::registry::normalize_host(service).is_ok_and(|s| s == registry)
    {
        return Err(refuse(format!(
            "challenge names the service {service:?}, not {registry}; refusing to get a token for another registry"
        )));
    }
    Ok(url)
}

/// Reads the registry's `/v2/` challenge (with the usual retries), for diagnostics.
pub(crate) async fn challenge(
    http: &reqwest::Client,
    server: &LoginServer,
) -> Result<Challenge, Error> {
    with_retries(|| discover(http, server))
        .await
        .map_err(|a| into_error(a, server.host()))
}

/// The error a failed attempt ends with; `NotThere` (after discovery) names the registry.
fn into_error(attempt: Attempt, registry: &str) -> Error {
    match attempt {
        Attempt::NotThere(detail) => Error::Exchange {
            registry: registry.to_string(),
            detail,
        },
        other => other.into_inner(),
    }
}

/// A request that could not be sent or whose answer could not be read: connection trouble and
/// timeouts may heal; a certificate that does not verify will not.
fn send_failed(registry: &str, e: &reqwest::Error) -> Attempt {
    let error = Error::Exchange {
        registry: registry.to_string(),
        detail: one_line(&error_chain(e)),
    };
    Attempt::healing_if(send_may_heal(e), error)
}

/// An unexpected status: transient for 408, 429 and 5xx gateway/availability answers.
fn status_failed(
    registry: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Attempt {
    let error = Error::Exchange {
        registry: registry.to_string(),
        detail: match acr_message(body) {
            Some(m) => format!("HTTP {status}: {m}"),
            None => format!("HTTP {status}"),
        },
    };
    if matches!(status, 408 | 429 | 500 | 502 | 503 | 504) {
        Attempt::Transient { error, retry_after }
    } else {
        Attempt::Fatal(error)
    }
}

/// One exchange request to `url` for `service`.
async fn post_exchange(grant: &Grant<'_>, url: &str, service: &str) -> Result<Secret, Attempt> {
    let registry = grant.server.host();
    let mut form = vec![
        ("grant_type", "access_token"),
        ("service", service),
        ("access_token", grant.aad_token.expose()),
    ];
    if let Some(t) = grant.tenant {
        form.push(("tenant", t));
    }
    let (status, wait, body) = post_form(grant.http, url, registry, &form).await?;
    read_answer(grant, status, &body, wait)
}

/// POSTs `form` to `url` of `registry`'s token service: the answer's status, its `Retry-After`
/// and its body.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    registry: &str,
    form: &[(&str, &str)],
) -> Result<(u16, Option<Duration>, Vec<u8>), Attempt> {
    let response = http
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| send_failed(registry, &e))?;
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let body = read_body(response).await.map_err(|e| {
        // A body cut short is connection trouble: worth a retry.
        let heals = matches!(e, crate::http::BodyError::Read(_));
        let error = Error::Exchange {
            registry: registry.to_string(),
            detail: e.to_string(),
        };
        Attempt::healing_if(heals, error)
    })?;
    Ok((status, wait, body))
}

/// The refresh token in an exchange answer, or what its status means.
fn read_answer(
    grant: &Grant<'_>,
    status: u16,
    body: &[u8],
    wait: Option<Duration>,
) -> Result<Secret, Attempt> {
    let registry = grant.server.host();
    let fatal = |detail: String| {
        Attempt::Fatal(Error::Exchange {
            registry: registry.to_string(),
            detail,
        })
    };
    match status {
        200 => {
            let parsed: ExchangeResponse = serde_json::from_slice(body)
                .map_err(|e| fatal(one_line(&format!("malformed exchange response: {e}"))))?;
            match parsed.refresh_token {
                Some(t) if !t.is_empty() => Ok(t),
                _ => Err(fatal("exchange response has no refresh_token".into())),
            }
        }
        401 | 403 => Err(Attempt::Fatal(Error::ExchangeRefused {
            registry: registry.to_string(),
            identity: grant.identity.describe(),
            status,
            message: acr_message(body),
        })),
        404 | 405 => Err(Attempt::NotThere(format!("HTTP {status}"))),
        _ => Err(status_failed(registry, status, body, wait)),
    }
}

/// Asks `server`'s token service for an access token with `scopes`, paying with the ACR refresh
/// token `refresh` (`POST /oauth2/token`, `grant_type=refresh_token`): a token for the registry
/// API only, with no more than the scopes asked for. The refresh token goes only to the login
/// server it was issued for.
pub(crate) async fn access_token(
    http: &reqwest::Client,
    server: &LoginServer,
    refresh: &Secret,
    scopes: &[String],
) -> Result<Secret, Error> {
    let url = format!("{}/oauth2/token", server.base_url());
    with_retries(|| post_token(http, server, &url, refresh, scopes))
        .await
        .map_err(|a| a.into_inner())
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: Option<Secret>,
}

/// One `/oauth2/token` request.
async fn post_token(
    http: &reqwest::Client,
    server: &LoginServer,
    url: &str,
    refresh: &Secret,
    scopes: &[String],
) -> Result<Secret, Attempt> {
    let registry = server.host();
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("service", registry),
        ("refresh_token", refresh.expose()),
    ];
    form.extend(scopes.iter().map(|s| ("scope", s.as_str())));
    let (status, wait, body) = post_form(http, url, registry, &form).await?;
    match status {
        200 => {
            let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                Attempt::Fatal(Error::Exchange {
                    registry: registry.to_string(),
                    detail: one_line(&format!("malformed /oauth2/token response: {e}")),
                })
            })?;
            match parsed.access_token {
                Some(t) if !t.is_empty() => Ok(t),
                _ => Err(Attempt::Fatal(Error::Exchange {
                    registry: registry.to_string(),
                    detail: "/oauth2/token response has no access_token".into(),
                })),
            }
        }
        401 | 403 => Err(Attempt::Fatal(Error::AccessTokenRefused {
            registry: registry.to_string(),
            status,
            message: acr_message(&body),
        })),
        _ => Err(status_failed(registry, status, &body, wait)),
    }
}

/// The first ACR error message in a body, one line.
fn acr_message(body: &[u8]) -> Option<String> {
    let errors: AcrErrors = serde_json::from_slice(body).ok()?;
    let e = errors.errors.first()?;
    let text = match (e.code.is_empty(), e.message.is_empty()) {
        (false, false) => format!("{}: {}", e.code, e.message),
        (true, false) => e.message.clone(),
        (false, true) => e.code.clone(),
        (true, true) => return None,
    };
    Some(one_line(&text))
}

async fn discover(http: &reqwest::Client, server: &LoginServer) -> Result<Challenge, Attempt> {
    let registry = server.host();
    let url = format!("{}/v2/", server.base_url());
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| send_failed(registry, &e))?;
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match header.as_deref().and_then(parse_challenge) {
        Some(c) => Ok(c),
        None if matches!(status, 408 | 429 | 500 | 502 | 503 | 504) => {
            let wait = retry_after(response.headers());
            Err(status_failed(registry, status, b"", wait))
        }
        None => Err(Attempt::Fatal(Error::Exchange {
            registry: registry.to_string(),
            detail: format!(
                "no /oauth2/exchange endpoint and {url} gives no Bearer challenge; is this an Azure Container Registry?"
            ),
        })),
    }
}

/// `https://host/oauth2/token` → `https://host/oauth2/exchange`.
fn realm_to_exchange(realm: &str) -> Option<String> {
    let lower = realm.to_ascii_lowercase();
    if !lower.starts_with("https://") {
        return None;
    }
    let base = realm.strip_suffix("/oauth2/token")?;
    Some(format!("{base}/oauth2/exchange"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_acr_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://r.azurecr.io/oauth2/token");
        assert_eq!(c.service.as_deref(), Some("r.azurecr.io"));
        let c = parse_challenge(
            r#"bearer  Realm=https://x/oauth2/token , service=x, scope="repository:a:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://x/oauth2/token");
        assert_eq!(c.service.as_deref(), Some("x"));
        let c = parse_challenge(r#"Bearer realm="https://a/\"q\"""#).unwrap();
        assert_eq!(c.realm, r#"https://a/"q""#);
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        for h in [
            "Basic realm=\"x\"",
            "Bearer",
            "Bearer service=\"x\"",
            "Bearer realm=\"unterminated",
            "Bearer realm",
        ] {
            assert_eq!(parse_challenge(h), None, "{h}");
        }
    }

    #[test]
    fn realm_maps_to_exchange() {
        assert_eq!(
            realm_to_exchange("https://r.azurecr.io/oauth2/token").as_deref(),
            Some("https://r.azurecr.io/oauth2/exchange")
        );
        assert_eq!(realm_to_exchange("http://r.azurecr.io/oauth2/token"), None);
        assert_eq!(realm_to_exchange("https://r.azurecr.io/token"), None);
    }

    #[test]
    fn acr_error_bodies_become_one_line() {
        let body =
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"no role\nassigned","detail":null}]}"#;
        assert_eq!(
            acr_message(body).as_deref(),
            Some("UNAUTHORIZED: no role assigned")
        );
        assert_eq!(acr_message(b"<html>"), None);
    }

    proptest! {
        #[test]
        fn challenge_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_challenge(&s);
        }

        /// Challenge-shaped headers: parameters in any order and case, quoted (with escapes) or
        /// bare, with other parameters around. The realm and service come back as written, and
        /// a header without a realm is refused.
        #[test]
        fn challenge_shaped_headers(
            scheme in prop::sample::select(vec!["Bearer", "bearer", "BEARER"]),
            realm in "https://[a-z]{1,10}(:[0-9]{1,4})?/[a-z/]{0,10}",
            service in "[a-z0-9.-]{1,20}",
            scope in "[a-z:/,\"\\\\ ]{0,20}",
            with_realm in any::<bool>(),
            realm_first in any::<bool>(),
            quoted in any::<bool>(),
            upper_keys in any::<bool>(),
        ) {
            let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
            let key = |k: &str| if upper_keys { k.to_ascii_uppercase() } else { k.to_string() };
            let value = |v: &str| if quoted { quote(v) } else { v.to_string() };
            let mut params = vec![
                format!("{}={}", key("service"), value(&service)),
                format!("{}={}", key("scope"), quote(&scope)),
            ];
            if with_realm {
                let r = format!("{}={}", key("realm"), value(&realm));
                if realm_first { params.insert(0, r) } else { params.push(r) }
            }
            let header = format!("{scheme} {}", params.join(", "));
            match parse_challenge(&header) {
                Some(c) => {
                    prop_assert!(with_realm, "{header}");
                    prop_assert_eq!(c.realm, realm);
                    prop_assert_eq!(c.service, Some(service));
                }
                None => prop_assert!(!with_realm, "refused {header}"),
            }
        }

        #[test]
        fn challenge_round_trips(realm in "https://[a-z]{1,10}/[a-z/]{0,10}", service in "[a-z.]{1,20}") {
            let c = parse_challenge(&format!("Bearer realm=\"{realm}\",service=\"{service}\"")).unwrap();
            prop_assert_eq!(c.realm, realm);
            prop_assert_eq!(c.service, Some(service));
        }
    }
}
