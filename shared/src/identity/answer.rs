//! What a token endpoint answers, read: the access token and its expiry ([`token_from_answer`]),
//! or a one-line summary of an error body ([`error_summary`]). Shared by every source that
//! reads an OAuth answer itself (managed identity endpoints, identity bindings) and the type
//! every source returns ([`EntraToken`]).

use crate::secret::Secret;

/// An Entra access token and when it expires.
#[derive(Debug, Clone)]
pub(crate) struct EntraToken {
    pub token: Secret,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An OAuth token endpoint's answer read as an [`EntraToken`]: `access_token`, expiring at the
/// token's own `exp`, else `expires_on` (Unix seconds), else now + `expires_in` (numbers or
/// strings, as the managed identity endpoints send them). The error completes "answered ...".
pub(crate) fn token_from_answer(body: &[u8]) -> Result<EntraToken, &'static str> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
        #[serde(default)]
        expires_on: Option<serde_json::Value>,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| "without an access_token")?;
    let number = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let token = Secret::new(answer.access_token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let expires_at = crate::token::read_claims(token.expose())
        .and_then(|c| c.exp)
        .or_else(|| number(&answer.expires_on))
        .or_else(|| number(&answer.expires_in).and_then(|s| now.checked_add(s)))
        .ok_or("a token with no expiry")?;
    Ok(EntraToken { token, expires_at })
}

/// `: <error>: <error_description>` (or `message`) of an error body, its first 200 characters,
/// or nothing: for one-line messages that never quote anything else of the body.
pub(crate) fn error_summary(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let text = [&v["error"], &v["error_description"], &v["message"]]
        .iter()
        .filter_map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(": ");
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.chars().take(200).collect::<String>())
    }
}
