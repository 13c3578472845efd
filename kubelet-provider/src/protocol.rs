//! The kubelet's image credential provider messages and Go's duration syntax.
//!
//! The kubelet writes one [`CredentialProviderRequest`] on the plugin's stdin and reads one
//! [`CredentialProviderResponse`] from its stdout. The three API versions
//! (`credentialprovider.kubelet.k8s.io/v1`, `v1beta1`, `v1alpha1`) have the same shape; the
//! response must carry the request's version. Field names are the kubelet's, exactly; unknown
//! request fields are ignored so that newer kubelets keep working.
//!
//! [`parse_request`] checks the document itself rather than relying on serde's messages, so a
//! malformed request gets an error that names the field and never echoes a value (the request
//! may carry a service-account token).

use acr_broker::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// `kind` of a request.
pub const REQUEST_KIND: &str = "CredentialProviderRequest";
/// `kind` of a response.
pub const RESPONSE_KIND: &str = "CredentialProviderResponse";

/// The API versions this provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiVersion {
    /// `credentialprovider.kubelet.k8s.io/v1` (Kubernetes 1.26 and later).
    #[serde(rename = "credentialprovider.kubelet.k8s.io/v1")]
    V1,
    /// `credentialprovider.kubelet.k8s.io/v1beta1`.
    #[serde(rename = "credentialprovider.kubelet.k8s.io/v1beta1")]
    V1beta1,
    /// `credentialprovider.kubelet.k8s.io/v1alpha1`.
    #[serde(rename = "credentialprovider.kubelet.k8s.io/v1alpha1")]
    V1alpha1,
}

impl ApiVersion {
    /// Every supported version, newest first.
    pub const ALL: [ApiVersion; 3] = [ApiVersion::V1, ApiVersion::V1beta1, ApiVersion::V1alpha1];

    /// The wire form, e.g. `credentialprovider.kubelet.k8s.io/v1`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "credentialprovider.kubelet.k8s.io/v1",
            ApiVersion::V1beta1 => "credentialprovider.kubelet.k8s.io/v1beta1",
            ApiVersion::V1alpha1 => "credentialprovider.kubelet.k8s.io/v1alpha1",
        }
    }

    /// The version with this wire form, if supported.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        ApiVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What the kubelet asks: credentials for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderRequest {
    /// The API version; the response repeats it.
    pub api_version: ApiVersion,
    /// Always [`REQUEST_KIND`].
    pub kind: String,
    /// The image being pulled, e.g. `myregistry.azurecr.io/app:1.0`.
    pub image: String,
    /// The pod's service-account token, sent when the provider config has `tokenAttributes`
    /// (KEP-4412).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_token: Option<Secret>,
    /// Annotations of the pod's service account that the provider config asks for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
}

/// How the kubelet may reuse a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheKeyType {
    /// For this image only.
    Image,
    /// For every image on the same registry host.
    Registry,
    /// For every image the provider matches.
    Global,
}

/// A username and password for one registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// The username (ACR's fixed `00000000-0000-0000-0000-000000000000`).
    pub username: String,
    /// The password: an ACR refresh token.
    pub password: Secret,
}

/// What the provider answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderResponse {
    /// The request's API version.
    pub api_version: ApiVersion,
    /// Always [`RESPONSE_KIND`].
    pub kind: String,
    /// How the kubelet may reuse the answer.
    pub cache_key_type: CacheKeyType,
    /// How long the kubelet may reuse it; absent means the config's `defaultCacheDuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<GoDuration>,
    /// Credentials keyed by registry host pattern (`host[:port][/path]`).
    pub auth: BTreeMap<String, AuthConfig>,
}

impl CredentialProviderResponse {
    /// A response of `api_version` keyed by registry, with no credentials yet.
    pub fn new(api_version: ApiVersion) -> CredentialProviderResponse {
        CredentialProviderResponse {
            api_version,
            kind: RESPONSE_KIND.to_string(),
            cache_key_type: CacheKeyType::Registry,
            cache_duration: None,
            auth: BTreeMap::new(),
        }
    }

    /// The JSON document, one line.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and maps cannot fail; keep a valid fallback anyway.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// A whole number of seconds written the way Go's `time.Duration` prints:
/// `0s`, `59s`, `1m0s`, `2h59m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub u64);

impl GoDuration {
    /// Parses the forms [`GoDuration`]'s `Display` writes (units `h`, `m`, `s`, whole numbers).
    pub fn parse(s: &str) -> Option<GoDuration> {
        if s.is_empty() {
            return None;
        }
        let mut total: u64 = 0;
        let mut number = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return None,
            };
            let n: u64 = number.parse().ok()?;
            total = total.checked_add(n.checked_mul(unit)?)?;
            number.clear();
        }
        number.is_empty().then_some(GoDuration(total))
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 % 3600 / 60, self.0 % 60);
        if h > 0 {
            write!(f, "{h}h{m}m{s}s")
        } else if m > 0 {
            write!(f, "{m}m{s}s")
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a duration")))
    }
}

/// Why a request was refused. Messages are one line and quote no request value except the
/// `apiVersion` and `kind` (shortened).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not JSON at all.
    #[error("the request on stdin is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("the request on stdin is not a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("the request has no {0:?} field")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("the request's {field:?} field must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },
    /// An apiVersion this provider does not speak.
    #[error(
        "unsupported apiVersion {0:?}; this provider speaks credentialprovider.kubelet.k8s.io/v1, v1beta1 and v1alpha1"
    )]
    UnsupportedApiVersion(String),
    /// Another kind of message.
    #[error("the request's kind is {0:?}, expected \"CredentialProviderRequest\"")]
    WrongKind(String),
    /// The image is empty.
    #[error("the request's image is empty")]
    EmptyImage,
}

/// Reads a request document, checking version, kind, image and field types.
pub fn parse_request(input: &[u8]) -> Result<CredentialProviderRequest, ProtocolError> {
    let value: Value =
        serde_json::from_slice(input).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ProtocolError::NotAnObject);
    };
    // `null` means absent, as with Go's omitempty.
    object.retain(|_, v| !v.is_null());
    let string = |field: &'static str| -> Result<Option<&str>, ProtocolError> {
        match object.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ProtocolError::WrongType {
                field,
                expected: "a string",
            }),
        }
    };
    let api_version = string("apiVersion")?.ok_or(ProtocolError::Missing("apiVersion"))?;
    if ApiVersion::parse(api_version).is_none() {
        return Err(ProtocolError::UnsupportedApiVersion(shorten(api_version)));
    }
    let kind = string("kind")?.ok_or(ProtocolError::Missing("kind"))?;
    if kind != REQUEST_KIND {
        return Err(ProtocolError::WrongKind(shorten(kind)));
    }
    let image = string("image")?.ok_or(ProtocolError::Missing("image"))?;
    if image.trim().is_empty() {
        return Err(ProtocolError::EmptyImage);
    }
    string("serviceAccountToken")?;
    match object.get("serviceAccountAnnotations") {
        None => {}
        Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
        Some(_) => {
            return Err(ProtocolError::WrongType {
                field: "serviceAccountAnnotations",
                expected: "an object of strings",
            });
        }
    }
    // Every field the type knows was checked above, so this cannot fail on content.
    serde_json::from_value(Value::Object(object))
        .map_err(|_| ProtocolError::Json("unexpected document shape".to_string()))
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "credentialprovider.kubelet.k8s.io/v1";
    const V1BETA1: &str = "credentialprovider.kubelet.k8s.io/v1beta1";
    const V1ALPHA1: &str = "credentialprovider.kubelet.k8s.io/v1alpha1";
    /// Every version, as written on the wire and as parsed.
    const VERSIONS: [(&str, ApiVersion); 3] = [
        (V1, ApiVersion::V1),
        (V1BETA1, ApiVersion::V1beta1),
        (V1ALPHA1, ApiVersion::V1alpha1),
    ];

    #[test]
    fn requests_of_every_version_parse_with_exact_field_names() {
        for (wire, version) in VERSIONS {
            let doc = format!(
                r#"{{"apiVersion":"{wire}","kind":"CredentialProviderRequest","image":"myregistry.azurecr.io/app:1.0"}}"#
            );
            let r = parse_request(doc.as_bytes()).unwrap();
            assert_eq!(
                r,
                CredentialProviderRequest {
                    api_version: version,
                    kind: REQUEST_KIND.into(),
                    image: "myregistry.azurecr.io/app:1.0".into(),
                    service_account_token: None,
                    service_account_annotations: BTreeMap::new(),
                }
            );
            // And back: the same document.
            assert_eq!(serde_json::to_string(&r).unwrap(), doc);
        }
    }

    #[test]
    fn service_account_fields_and_unknown_fields() {
        let doc = r#"{
            "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            "kind": "CredentialProviderRequest",
            "image": "myregistry.azurecr.io/app@sha256:0123",
            "serviceAccountToken": "eyJ.token.sig",
            "serviceAccountAnnotations": {
                "kubernetes.azure.com/acr-client-id": "11111111-2222-3333-4444-555555555555",
                "kubernetes.azure.com/acr-tenant-id": "tenant"
            },
            "someFutureField": {"nested": [1, 2, 3]}
        }"#;
        let r = parse_request(doc.as_bytes()).unwrap();
        assert_eq!(r.api_version, ApiVersion::V1);
        assert_eq!(r.image, "myregistry.azurecr.io/app@sha256:0123");
        assert_eq!(
            r.service_account_token.as_ref().map(Secret::expose),
            Some("eyJ.token.sig")
        );
        assert_eq!(
            r.service_account_annotations["kubernetes.azure.com/acr-client-id"],
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(r.service_account_annotations.len(), 2);
        // The token never shows in Debug.
        assert!(!format!("{r:?}").contains("eyJ.token.sig"));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"myregistry.azurecr.io/app@sha256:0123","serviceAccountToken":"eyJ.token.sig","serviceAccountAnnotations":{"kubernetes.azure.com/acr-client-id":"11111111-2222-3333-4444-555555555555","kubernetes.azure.com/acr-tenant-id":"tenant"}}"#
        );
    }

    #[test]
    fn nulls_count_as_absent() {
        let doc = r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.azurecr.io/x","serviceAccountToken":null,"serviceAccountAnnotations":null}"#;
        let r = parse_request(doc.as_bytes()).unwrap();
        assert!(r.service_account_token.is_none());
        assert!(r.service_account_annotations.is_empty());
    }

    #[test]
    fn responses_of_every_version_serialise_exactly() {
        for (wire, version) in VERSIONS {
            let mut r = CredentialProviderResponse::new(version);
            r.cache_duration = Some(GoDuration(7140));
            r.auth.insert(
                "myregistry.azurecr.io".into(),
                AuthConfig {
                    username: "00000000-0000-0000-0000-000000000000".into(),
                    password: Secret::new("refresh-token"),
                },
            );
            let json = r.to_json();
            assert_eq!(
                json,
                format!(
                    r#"{{"apiVersion":"{wire}","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"1h59m0s","auth":{{"myregistry.azurecr.io":{{"username":"00000000-0000-0000-0000-000000000000","password":"refresh-token"}}}}}}"#
                )
            );
            let back: CredentialProviderResponse = serde_json::from_str(&json).unwrap();
            assert_eq!(back, r);
            assert!(!format!("{r:?}").contains("refresh-token"));
        }
    }

    #[test]
    fn empty_response_omits_cache_duration_and_keeps_auth() {
        let r = CredentialProviderResponse::new(ApiVersion::V1);
        assert_eq!(
            r.to_json(),
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","auth":{}}"#
        );
    }

    #[test]
    fn bad_requests_are_named_without_echoing_values() {
        let cases: &[(&str, ProtocolError)] = &[
            ("", ProtocolError::Json(String::new())),
            ("not json", ProtocolError::Json(String::new())),
            ("[1,2]", ProtocolError::NotAnObject),
            (
                r#"{"kind":"CredentialProviderRequest","image":"x"}"#,
                ProtocolError::Missing("apiVersion"),
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v2","kind":"CredentialProviderRequest","image":"x"}"#,
                ProtocolError::UnsupportedApiVersion("credentialprovider.kubelet.k8s.io/v2".into()),
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","image":"x"}"#,
                ProtocolError::WrongKind("CredentialProviderResponse".into()),
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x"}"#,
                ProtocolError::Missing("kind"),
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}"#,
                ProtocolError::Missing("image"),
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"  "}"#,
                ProtocolError::EmptyImage,
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":7}"#,
                ProtocolError::WrongType {
                    field: "image",
                    expected: "a string",
                },
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"x","serviceAccountAnnotations":"s3cr3t"}"#,
                ProtocolError::WrongType {
                    field: "serviceAccountAnnotations",
                    expected: "an object of strings",
                },
            ),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"x","serviceAccountToken":["s3cr3t"]}"#,
                ProtocolError::WrongType {
                    field: "serviceAccountToken",
                    expected: "a string",
                },
            ),
        ];
        for (doc, want) in cases {
            let got = parse_request(doc.as_bytes()).unwrap_err();
            match (&got, want) {
                (ProtocolError::Json(_), ProtocolError::Json(_)) => {}
                _ => assert_eq!(&got, want, "{doc}"),
            }
            let message = got.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn go_durations() {
        for (secs, text) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m0s"),
            (61, "1m1s"),
            (3600, "1h0m0s"),
            (7140, "1h59m0s"),
            (10770, "2h59m30s"),
            (100 * 3600 + 1, "100h0m1s"),
        ] {
            assert_eq!(GoDuration(secs).to_string(), text);
            assert_eq!(GoDuration::parse(text), Some(GoDuration(secs)));
        }
        for bad in ["", "5", "1d", "m", "1.5s", "-1s"] {
            assert_eq!(GoDuration::parse(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn request_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&bytes);
        }

        /// Every well-formed request parses, with its fields as sent (the parser cannot pass by
        /// refusing everything).
        #[test]
        fn well_formed_requests_parse_with_their_fields(
            image in "[a-z0-9][a-z0-9./:@-]{0,59}",
            version in 0usize..3,
            token in proptest::option::of("[A-Za-z0-9_-]{8,40}\\.[A-Za-z0-9_-]{8,40}\\.[A-Za-z0-9_-]{8,40}"),
            client in proptest::option::of("[0-9a-f-]{36}"),
        ) {
            let api = ["credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1alpha1"][version];
            let mut doc = serde_json::json!({"apiVersion": api, "kind": "CredentialProviderRequest", "image": image});
            if let Some(t) = &token {
                doc["serviceAccountToken"] = t.clone().into();
            }
            if let Some(c) = &client {
                doc["serviceAccountAnnotations"] = serde_json::json!({"kubernetes.azure.com/acr-client-id": c});
            }
            let r = parse_request(doc.to_string().as_bytes());
            prop_assert!(r.is_ok(), "{doc}: {:?}", r.err().map(|e| e.to_string()));
            let r = r.unwrap();
            prop_assert_eq!(&r.image, &image);
            prop_assert_eq!(r.api_version.as_str(), api);
            prop_assert_eq!(r.service_account_token.as_ref().map(|t| t.expose().to_string()), token);
            prop_assert_eq!(
                r.service_account_annotations.get("kubernetes.azure.com/acr-client-id").cloned(),
                client
            );
        }

        /// The same requests with one thing wrong are refused, with one line naming it.
        #[test]
        fn mutated_requests_are_refused_with_one_line(
            image in "[a-z0-9][a-z0-9./:-]{0,40}",
            which in 0usize..5,
        ) {
            let mut doc = serde_json::json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest", "image": image});
            let (key, bad): (&str, serde_json::Value) = match which {
                0 => ("kind", "CredentialProviderResponse".into()),
                1 => ("apiVersion", "credentialprovider.kubelet.k8s.io/v2".into()),
                2 => ("image", "  ".into()),
                3 => ("image", 5.into()),
                _ => ("serviceAccountAnnotations", "not-a-map".into()),
            };
            doc[key] = bad;
            let e = parse_request(doc.to_string().as_bytes());
            prop_assert!(e.is_err(), "accepted {doc}");
            let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(!msg.is_empty() && !msg.contains('\n'), "{msg}");
        }

        #[test]
        fn go_durations_round_trip(seconds in 0u64..10_000_000) {
            let text = GoDuration(seconds).to_string();
            prop_assert_eq!(GoDuration::parse(&text), Some(GoDuration(seconds)));
        }
    }
}
