//! The Docker credential-helper protocol: wire types and the exact strings clients compare.

use acr_broker::Secret;
use serde::{Deserialize, Serialize};

/// What clients compare stdout with to mean "no credentials": they then go on anonymously.
pub const NOT_FOUND: &str = "credentials not found in native keychain";
/// `store` with an empty `ServerURL`.
pub const NO_SERVER_URL: &str = "no credentials server URL";
/// `store` with an empty `Username`.
pub const NO_USERNAME: &str = "no credentials username";

/// The JSON of `get`'s answer and `store`'s input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    /// The registry as the client named it.
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    /// The username (`00000000-…` for ACR tokens, `<token>` for identity tokens).
    #[serde(rename = "Username", default)]
    pub username: String,
    /// The password or token.
    #[serde(rename = "Secret", default)]
    pub secret: Secret,
}

impl Credentials {
    /// Checks `store` input the way the reference helpers do.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.server_url.trim().is_empty() {
            return Err(NO_SERVER_URL);
        }
        if self.username.trim().is_empty() {
            return Err(NO_USERNAME);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_exact_and_unknown_fields_ignored() {
        let c = Credentials {
            server_url: "r.azurecr.io".into(),
            username: "u".into(),
            secret: Secret::new("s"),
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"ServerURL":"r.azurecr.io","Username":"u","Secret":"s"}"#
        );
        let back: Credentials = serde_json::from_str(
            r#"{"ServerURL":"r.azurecr.io","Username":"u","Secret":"s","Extra":1}"#,
        )
        .unwrap();
        assert_eq!(back, c);
        assert!(!format!("{c:?}").contains("\"s\""));
    }

    #[test]
    fn store_validation_uses_the_reference_messages() {
        let mut c = Credentials {
            server_url: String::new(),
            username: "u".into(),
            secret: Secret::new("s"),
        };
        assert_eq!(c.validate(), Err("no credentials server URL"));
        c.server_url = "x".into();
        c.username = " ".into();
        assert_eq!(c.validate(), Err("no credentials username"));
    }
}
