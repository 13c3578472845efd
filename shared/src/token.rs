//! Reading the claims of a JWT without checking its signature (the broker cannot: ACR signs
//! refresh tokens with keys it does not publish). Used for `exp`, `iat` and `tid`.

use base64::Engine;

/// The claims the broker reads from tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Claims {
    /// Expiry, Unix seconds.
    pub exp: Option<i64>,
    /// Issued at, Unix seconds.
    pub iat: Option<i64>,
    /// Tenant id (Entra tokens).
    pub tid: Option<String>,
    /// Tenant (ACR refresh tokens).
    pub tenant: Option<String>,
    /// Issuer (for federated assertions: the OIDC issuer, e.g. a cluster's).
    pub iss: Option<String>,
    /// Subject (for federated assertions: e.g. `system:serviceaccount:<ns>:<name>`).
    pub sub: Option<String>,
    /// What an ACR access token grants (`/oauth2/token` answers): one entry per resource.
    pub access: Option<Vec<Access>>,
}

/// One entry of an ACR (Docker distribution) access token's `access` claim: the actions granted
/// on one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Access {
    /// The resource type: `repository`, `registry`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The resource name: a repository, `catalog`.
    #[serde(default)]
    pub name: String,
    /// The actions granted: `pull`, `push`, `delete`, `*`, ….
    #[serde(default)]
    pub actions: Vec<String>,
}

/// The actions `access` grants on `repository`.
pub fn granted_on(repository: &str, access: &[Access]) -> Vec<String> {
    access
        .iter()
        .filter(|a| a.kind == "repository" && a.name == repository)
        .flat_map(|a| a.actions.iter().cloned())
        .collect()
}

/// The roles that grant the repository `actions`: the registry-wide built-in roles, and the
/// repository role of an ABAC-mode registry (`roleAssignmentMode: AbacRepositoryPermissions`),
/// where AcrPull and AcrPush give no repository access.
pub fn roles_granting(actions: &[String]) -> (&'static str, &'static str) {
    let has = |a: &str| actions.iter().any(|x| x == a);
    if has("delete") {
        let role = if has("push") {
            "AcrPush and AcrDelete"
        } else {
            "AcrDelete"
        };
        (role, "Container Registry Repository Contributor")
    } else if has("push") {
        ("AcrPush", "Container Registry Repository Writer")
    } else {
        ("AcrPull", "Container Registry Repository Reader")
    }
}

/// Shortest token lifetime the broker accepts.
pub const MIN_LIFETIME: i64 = 60;
/// Longest token lifetime the broker accepts (Entra and ACR tokens live hours, not weeks).
pub const MAX_LIFETIME: i64 = 7 * 24 * 3600;

/// Checks that a token expiring at `exp` (Unix seconds), fetched at `now`, has a remaining life
/// between [`MIN_LIFETIME`] and [`MAX_LIFETIME`]; returns it. The error is the phrase that
/// completes "the token ...", for one-line messages. No arithmetic can overflow.
pub fn check_lifetime(exp: i64, now: i64) -> Result<i64, String> {
    match exp.checked_sub(now) {
        Some(left) if (MIN_LIFETIME..=MAX_LIFETIME).contains(&left) => Ok(left),
        Some(left) if left < MIN_LIFETIME => Err(format!(
            "expires in {left} s, less than the {MIN_LIFETIME} s the broker needs (is the clock right?)"
        )),
        _ => Err(format!(
            "claims to live more than {} days (exp {exp}); refusing a token that would never expire",
            MAX_LIFETIME / 86400
        )),
    }
}

/// Whether a token expiring at `exp` claims no more life from `now` than any token has
/// ([`MAX_LIFETIME`]); no arithmetic can overflow.
pub fn within_max_lifetime(exp: i64, now: i64) -> bool {
    exp.saturating_sub(now) <= MAX_LIFETIME
}

/// [`within_max_lifetime`] as a check: the error completes "the token ...", like
/// [`check_lifetime`]'s.
pub fn check_not_beyond_max(exp: i64, now: i64) -> Result<(), String> {
    if within_max_lifetime(exp, now) {
        Ok(())
    } else {
        check_lifetime(exp, now).map(|_| ())
    }
}

/// Decodes the payload of a compact JWT. Returns `None` for anything that is not three
/// base64url parts with a JSON object in the middle, or that is implausibly large.
pub fn read_claims(jwt: &str) -> Option<Claims> {
    if jwt.len() > 64 * 1024 {
        return None;
    }
    let mut parts = jwt.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn lifetimes_outside_the_window_are_refused_without_overflow() {
        let now = 1_700_000_000;
        assert_eq!(check_lifetime(now + 3 * 3600, now), Ok(3 * 3600));
        assert_eq!(check_lifetime(now + 60, now), Ok(60));
        assert_eq!(check_lifetime(now + MAX_LIFETIME, now), Ok(MAX_LIFETIME));
        for exp in [
            now + 59,
            now,
            now - 10,
            i64::MIN,
            now + MAX_LIFETIME + 1,
            i64::MAX,
        ] {
            let e = check_lifetime(exp, now).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(check_lifetime(i64::MAX, i64::MIN).is_err());
        assert!(check_lifetime(i64::MIN, i64::MAX).is_err());
        assert!(
            check_lifetime(i64::MAX, now)
                .unwrap_err()
                .contains("never expire")
        );
    }

    #[test]
    fn reads_exp_iat_and_tenant() {
        let c = read_claims(&jwt(
            r#"{"exp":1700003600,"iat":1700000000,"tid":"t1","aud":"x"}"#,
        ))
        .unwrap();
        assert_eq!(c.exp, Some(1_700_003_600));
        assert_eq!(c.iat, Some(1_700_000_000));
        assert_eq!(c.tid.as_deref(), Some("t1"));
    }

    #[test]
    fn refuses_non_jwts() {
        for s in [
            "",
            "a.b",
            "a.b.c.d",
            "x.!!!.y",
            &jwt("[1,2]"),
            &jwt("not json"),
        ] {
            assert_eq!(read_claims(s), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = read_claims(&s);
        }

        /// JWT-shaped input (three base64url parts around any payload): claims are read exactly
        /// when the payload is a JSON object whose known claims have the right types.
        #[test]
        fn jwt_shaped_input_is_read_iff_the_payload_is_claims(
            header in "[A-Za-z0-9_-]{0,24}",
            payload in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..80),
                (any::<Option<i64>>(), any::<Option<i64>>(), proptest::option::of("[a-z0-9-]{0,12}"))
                    .prop_map(|(exp, iat, tid)| serde_json::json!({"exp": exp, "iat": iat, "tid": tid}).to_string().into_bytes()),
                "[a-z0-9\"{}:, ]{0,40}".prop_map(String::into_bytes),
            ],
            sig in "[A-Za-z0-9_-]{0,24}",
        ) {
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let token = format!("{header}.{}.{sig}", e.encode(&payload));
            let expected = serde_json::from_slice::<Claims>(&payload).ok();
            prop_assert_eq!(read_claims(&token), expected);
        }

        #[test]
        fn round_trips_exp(exp in 0i64..=4_000_000_000) {
            let c = read_claims(&jwt(&format!(r#"{{"exp":{exp}}}"#))).unwrap();
            prop_assert_eq!(c.exp, Some(exp));
        }
    }
}
