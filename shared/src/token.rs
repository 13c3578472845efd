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

        #[test]
        fn round_trips_exp(exp in 0i64..=4_000_000_000) {
            let c = read_claims(&jwt(&format!(r#"{{"exp":{exp}}}"#))).unwrap();
            prop_assert_eq!(c.exp, Some(exp));
        }
    }
}
