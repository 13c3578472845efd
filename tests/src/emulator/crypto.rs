//! Key material of one emulator: the TLS CA and per-name server certificates, the RS256 keys that
//! sign Entra, ACR and "cluster" (service account) tokens, and the JWT helpers around them.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_RSA_SHA256, PublicKeyData,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lock;

/// Seconds since the Unix epoch; the emulator's only clock.
#[allow(clippy::disallowed_methods, reason = "the emulator runs on real time")]
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whole seconds of a duration, saturating.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

pub(crate) fn io_err(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// SHA-1 of `data` (certificate thumbprints, `x5t`).
pub(crate) fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// The libtrust key id Docker distribution derives from a public key: SHA-256 of the DER
/// SubjectPublicKeyInfo, first 240 bits, RFC 4648 base32 (no padding), in 12 groups of 4
/// characters joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = sha256(spki_der);
    let encoded = base32(&digest[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32, standard alphabet, without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decode base64url, tolerating padding and the standard alphabet (clients differ).
pub(crate) fn b64_lenient(s: &str) -> Option<Vec<u8>> {
    let cleaned: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(cleaned).ok()
}

/// An RS256 key pair with the id put in the `kid` header of tokens it signs.
pub(crate) struct JwtKey {
    encoding: EncodingKey,
    /// Every token this key signed, so tests can check none leaks into output.
    pub(crate) minted: std::sync::Mutex<Vec<String>>,
    pub(crate) decoding: DecodingKey,
    pub(crate) kid: String,
    pub(crate) key_pair: KeyPair,
}

impl JwtKey {
    fn generate(kid: impl FnOnce(&[u8]) -> String) -> io::Result<Self> {
        let key_pair = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(io_err)?;
        JwtKey::from_key_pair(key_pair, kid)
    }

    fn from_key_pair(key_pair: KeyPair, kid: impl FnOnce(&[u8]) -> String) -> io::Result<Self> {
        let encoding =
            EncodingKey::from_rsa_pem(key_pair.serialize_pem().as_bytes()).map_err(io_err)?;
        let spki = key_pair.subject_public_key_info();
        Ok(JwtKey {
            encoding,
            minted: std::sync::Mutex::new(Vec::new()),
            // The raw key is PKCS#1 RSAPublicKey, the form aws-lc-rs verifies with.
            decoding: DecodingKey::from_rsa_der(key_pair.public_key_raw()),
            kid: kid(&spki),
            key_pair,
        })
    }

    /// Sign `claims` as an RS256 JWT; `x5t` adds that header too.
    pub(crate) fn sign(&self, claims: &Value, x5t: Option<&str>) -> io::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        header.x5t = x5t.map(str::to_owned);
        let token = jsonwebtoken::encode(&header, claims, &self.encoding).map_err(io_err)?;
        if let Ok(mut minted) = self.minted.lock() {
            minted.push(token.clone());
        }
        Ok(token)
    }

    /// Sign, for the public `mint_*` helpers that return a bare string.
    #[allow(
        clippy::expect_used,
        reason = "RS256 over a JSON object with a key generated at start cannot fail"
    )]
    pub(crate) fn sign_infallible(&self, claims: &Value) -> String {
        self.sign(claims, None).expect("signing a JWT")
    }
}

/// A JWT split into its parts; nothing is verified yet.
#[derive(Debug)]
pub(crate) struct Jwt {
    pub(crate) header: Value,
    pub(crate) claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    /// Split and decode a compact JWS; `None` when it is not one.
    pub(crate) fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.trim().split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&b64_lenient(h)?).ok()?;
        let claims: Value = serde_json::from_slice(&b64_lenient(c)?).ok()?;
        if !header.is_object() || !claims.is_object() {
            return None;
        }
        Some(Jwt {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature: b64_lenient(s)?,
        })
    }

    /// Whether the token is RS256 and its signature verifies with `key`.
    pub(crate) fn verify(&self, key: &DecodingKey) -> bool {
        if self.header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return false;
        }
        let sig = URL_SAFE_NO_PAD.encode(&self.signature);
        jsonwebtoken::crypto::verify(&sig, self.signing_input.as_bytes(), key, Algorithm::RS256)
            .unwrap_or(false)
    }

    /// A string claim.
    pub(crate) fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric claim (seconds).
    pub(crate) fn time_claim(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    /// A header field.
    pub(crate) fn header_field(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// Whether `aud` (a string or an array of strings) contains one of `accepted`.
    pub(crate) fn audience_in(&self, accepted: &[&str]) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(s)) => accepted.contains(&s.as_str()),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .any(|s| accepted.contains(&s)),
            _ => false,
        }
    }

    /// The `aud` claim as text, for error messages.
    pub(crate) fn audience_text(&self) -> String {
        match self.claims.get("aud") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }
}

/// Thumbprints by which a client assertion's header may name a certificate.
#[derive(Clone, Debug)]
pub(crate) struct Thumbprints {
    sha1: Vec<u8>,
    sha256: Vec<u8>,
}

impl Thumbprints {
    pub(crate) fn of(cert_der: &[u8]) -> Self {
        Thumbprints {
            sha1: sha1(cert_der),
            sha256: sha256(cert_der),
        }
    }

    /// Whether an `x5t` (SHA-1) or `x5t#S256` header value names this certificate. Accepts
    /// base64url and standard base64 (`azure_identity` 1.0 sends standard base64 with padding)
    /// and hex (the form the Azure portal shows).
    pub(crate) fn matches(&self, x5t: Option<&str>, x5t_s256: Option<&str>) -> bool {
        let check = |value: &str, digest: &[u8]| {
            b64_lenient(value).is_some_and(|d| d == digest)
                || STANDARD.decode(value).is_ok_and(|d| d == digest)
                || hex_eq(value, digest)
        };
        x5t.is_some_and(|v| check(v, &self.sha1))
            || x5t_s256.is_some_and(|v| check(v, &self.sha256))
    }
}

fn hex_eq(value: &str, digest: &[u8]) -> bool {
    value.len() == digest.len() * 2
        && digest
            .iter()
            .zip(value.as_bytes().chunks(2))
            .all(|(b, pair)| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    == Some(*b)
            })
}

/// A client certificate made for a certificate principal.
pub(crate) struct ClientCert {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) thumbprints: Thumbprints,
    pub(crate) decoding: DecodingKey,
}

/// Generate a self-signed RSA 2048 client certificate, as `az ad sp create-for-rbac --cert`
/// would.
pub(crate) fn client_certificate(client_id: &str) -> io::Result<ClientCert> {
    let key_pair = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(io_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(io_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("client {client_id}"));
    validity(&mut params, 365);
    let cert = params.self_signed(&key_pair).map_err(io_err)?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem: key_pair.serialize_pem(),
        thumbprints: Thumbprints::of(cert.der()),
        decoding: DecodingKey::from_rsa_der(key_pair.public_key_raw()),
    })
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::from_unix_timestamp(unix_now())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// All keys of one emulator.
pub(crate) struct Keys {
    /// PEM of the CA that signs every server certificate.
    pub(crate) ca_pem: String,
    /// The TLS certificate resolver (per-SNI certificates).
    pub(crate) tls: Arc<CertResolver>,
    /// Signs Entra access tokens.
    pub(crate) entra: JwtKey,
    /// Signs ACR refresh and access tokens; `kid` is its libtrust key id.
    pub(crate) acr: JwtKey,
    /// PEM of a self-signed certificate over the ACR key (a registry's `rootcertbundle`).
    pub(crate) acr_cert_pem: String,
    /// Signs service account tokens of the emulated cluster.
    pub(crate) cluster: JwtKey,
}

impl Keys {
    /// Generate everything. RSA key generation dominates, so the three keys are made in parallel.
    pub(crate) fn generate(extra_names: &[String]) -> io::Result<Keys> {
        let kid_thumb = |spki: &[u8]| URL_SAFE_NO_PAD.encode(sha1(spki));
        let (entra, acr, cluster) = std::thread::scope(|s| {
            let entra = s.spawn(|| JwtKey::generate(kid_thumb));
            let acr = s.spawn(|| JwtKey::generate(libtrust_key_id));
            let cluster = JwtKey::generate(|spki| URL_SAFE_NO_PAD.encode(sha256(spki)));
            let join = |h: std::thread::ScopedJoinHandle<'_, io::Result<JwtKey>>| {
                h.join()
                    .unwrap_or_else(|_| Err(io_err("key generation panicked")))
            };
            (join(entra), join(acr), cluster)
        });
        let (entra, acr, cluster) = (entra?, acr?, cluster?);

        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(io_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ACR emulator token signing");
        validity(&mut params, 365);
        let acr_cert_pem = params.self_signed(&acr.key_pair).map_err(io_err)?.pem();

        let (tls, ca_pem) = CertResolver::new(extra_names)?;
        Ok(Keys {
            ca_pem,
            tls: Arc::new(tls),
            entra,
            acr,
            acr_cert_pem,
            cluster,
        })
    }
}

/// Names every server certificate carries.
const DEFAULT_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "*.azurecr.io",
    "*.azurecr.cn",
    "*.azurecr.us",
];

/// Chooses the server certificate by SNI: the default certificate when the client sent no name,
/// else one made (and cached) for that name, so registries added after start work too.
pub(crate) struct CertResolver {
    inner: Mutex<ResolverInner>,
}

struct ResolverInner {
    issuer: Issuer<'static, KeyPair>,
    leaf_key: KeyPair,
    signing_key: Arc<dyn rustls::sign::SigningKey>,
    base_names: Vec<String>,
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

/// A fresh self-signed test CA named `common_name`: the issuer and its certificate, PEM.
fn test_ca(common_name: &str) -> io::Result<(Issuer<'static, KeyPair>, String)> {
    let ca_key = KeyPair::generate().map_err(io_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(io_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params, 365);
    let ca_pem = ca_params.self_signed(&ca_key).map_err(io_err)?.pem();
    Ok((Issuer::new(ca_params, ca_key), ca_pem))
}

/// A fresh P-256 leaf key and its rustls signing key.
fn leaf_key() -> io::Result<(KeyPair, Arc<dyn rustls::sign::SigningKey>)> {
    let leaf_key = KeyPair::generate().map_err(io_err)?;
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
        PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    ))
    .map_err(io_err)?;
    Ok((leaf_key, signing_key))
}

/// Serves one certificate, and only to clients that ask for its name by SNI: a client that
/// sends no name or another one gets no certificate, so its handshake fails.
pub(crate) struct SingleNameResolver {
    name: String,
    certified: Arc<CertifiedKey>,
}

impl fmt::Debug for SingleNameResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleNameResolver")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SingleNameResolver {
    /// A fresh CA named `ca_name` and a server certificate it signs for the DNS name `name`;
    /// returns the resolver and the CA certificate, PEM.
    pub(crate) fn new(ca_name: &str, name: &str) -> io::Result<(Self, String)> {
        let name = name.to_ascii_lowercase();
        let (issuer, ca_pem) = test_ca(ca_name)?;
        let (leaf_key, signing_key) = leaf_key()?;
        let certified = leaf(&issuer, &leaf_key, &signing_key, vec![name.clone()])?;
        Ok((SingleNameResolver { name, certified }, ca_pem))
    }
}

impl ResolvesServerCert for SingleNameResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .is_some_and(|n| n.eq_ignore_ascii_case(&self.name))
            .then(|| Arc::clone(&self.certified))
    }
}

impl CertResolver {
    fn new(extra_names: &[String]) -> io::Result<(Self, String)> {
        let (issuer, ca_pem) = test_ca("ACR emulator test CA")?;
        let (leaf_key, signing_key) = leaf_key()?;

        let mut base_names: Vec<String> = DEFAULT_NAMES.iter().map(|s| (*s).to_owned()).collect();
        for name in extra_names {
            let name = super::host::without_port(&super::host::normalize(name)).to_owned();
            if !name.is_empty() && !base_names.contains(&name) {
                base_names.push(name);
            }
        }
        let default = leaf(&issuer, &leaf_key, &signing_key, base_names.clone())?;
        Ok((
            CertResolver {
                inner: Mutex::new(ResolverInner {
                    issuer,
                    leaf_key,
                    signing_key,
                    base_names,
                    default,
                    by_name: HashMap::new(),
                }),
            },
            ca_pem,
        ))
    }
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    leaf_key: &KeyPair,
    signing_key: &Arc<dyn rustls::sign::SigningKey>,
    names: Vec<String>,
) -> io::Result<Arc<CertifiedKey>> {
    let mut params = CertificateParams::new(names).map_err(io_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "ACR emulator");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 90);
    let cert = params.signed_by(leaf_key, issuer).map_err(io_err)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        Arc::clone(signing_key),
    )))
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut inner = lock(&self.inner);
        let Some(name) = hello.server_name().map(str::to_ascii_lowercase) else {
            return Some(Arc::clone(&inner.default));
        };
        if let Some(found) = inner.by_name.get(&name) {
            return Some(Arc::clone(found));
        }
        let mut names = inner.base_names.clone();
        if !names.contains(&name) {
            names.push(name.clone());
        }
        match leaf(&inner.issuer, &inner.leaf_key, &inner.signing_key, names) {
            Ok(made) => {
                inner.by_name.insert(name, Arc::clone(&made));
                Some(made)
            }
            // A name rcgen refuses cannot be served under its own name; the default
            // certificate makes the client report a name mismatch, which is the truth.
            Err(_) => Some(Arc::clone(&inner.default)),
        }
    }
}

/// The rustls server configuration: HTTP/1.1 only, certificates from `resolver`.
pub(crate) fn server_config<R: ResolvesServerCert + 'static>(
    resolver: Arc<R>,
) -> io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_err)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn libtrust_key_id_format() {
        // Reference computed with Python: base64.b32encode(sha256(b"hello")[:30]), grouped by 4.
        assert_eq!(
            libtrust_key_id(b"hello"),
            "FTZE:3OS7:WCRQ:4JXI:HMVM:LOPC:TYNR:MHS4:D6TU:EXTT:AQZW:FE4L"
        );
        let kid = libtrust_key_id(&[0u8; 294]);
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        }));
    }

    #[test]
    fn jwt_round_trip_and_lenient_parse() -> io::Result<()> {
        let key = JwtKey::generate(|_| "k".to_owned())?;
        let token = key.sign(&serde_json::json!({"sub": "x", "aud": ["a", "b"]}), None)?;
        let jwt = Jwt::parse(&token).ok_or_else(|| io_err("parse"))?;
        assert!(jwt.verify(&key.decoding));
        assert!(jwt.audience_in(&["b"]));
        assert_eq!(jwt.header_field("kid"), Some("k"));

        // Padded parts and a standard-base64 signature, as azure_identity's certificate
        // credential sends them: the signature covers the text as sent.
        let header = STANDARD.encode(br#"{"alg":"RS256","typ":"JWT","x5t":"abc"}"#);
        let payload = base64::engine::general_purpose::URL_SAFE.encode(br#"{"sub":"padded"}"#);
        let input = format!("{header}.{payload}");
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, Algorithm::RS256)
            .map_err(io_err)?;
        let sig = STANDARD.encode(b64_lenient(&sig).ok_or_else(|| io_err("sig"))?);
        let jwt = Jwt::parse(&format!("{input}.{sig}")).ok_or_else(|| io_err("parse padded"))?;
        assert!(jwt.verify(&key.decoding));
        assert_eq!(jwt.claim("sub"), Some("padded"));

        let other = JwtKey::generate(|_| "o".to_owned())?;
        assert!(!Jwt::parse(&token).is_some_and(|j| j.verify(&other.decoding)));
        Ok(())
    }

    #[test]
    fn thumbprint_encodings() {
        let t = Thumbprints::of(b"cert");
        let d = sha1(b"cert");
        assert!(t.matches(Some(&URL_SAFE_NO_PAD.encode(&d)), None));
        assert!(t.matches(Some(&STANDARD.encode(&d)), None));
        let hex: String = d.iter().map(|b| format!("{b:02X}")).collect();
        assert!(t.matches(Some(&hex), None));
        assert!(t.matches(None, Some(&URL_SAFE_NO_PAD.encode(sha256(b"cert")))));
        assert!(!t.matches(Some("AAAA"), None));
        assert!(!t.matches(None, None));
    }
}
