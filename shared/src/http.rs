//! The one place that builds HTTP clients and reads response bodies.
//!
//! Clients use rustls trusting the system's CA bundle plus any bundle named by `SSL_CERT_FILE`
//! and the folders named by `SSL_CERT_DIR` (see [`roots`]), honour
//! the proxy variables of the broker's [`Env`] (never the process environment: the `Env` the
//! broker read is the only one any request uses), never follow redirects (a token must not be replayed to another
//! host), and time out. Bodies are read up to a limit, so a hostile or broken server cannot make
//! the process grow without bound.

use crate::config::Env;
use crate::{files, platform};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Largest response body read from any token endpoint.
pub const MAX_BODY: usize = 256 * 1024;

/// Builds the HTTP client used for every request of one fetch: through the proxies `env` names.
pub fn client(env: &Env, timeout: Duration) -> Result<reqwest::Client, String> {
    build(env, timeout, true)
}

/// Like [`client`], but never through a proxy: for identity endpoints on this machine.
pub fn direct_client(env: &Env, timeout: Duration) -> Result<reqwest::Client, String> {
    build(env, timeout, false)
}

/// The proxies `env` names: `HTTPS_PROXY` (or `https_proxy`, else `ALL_PROXY`/`all_proxy`) for
/// https URLs, `HTTP_PROXY` (or `http_proxy`, else `ALL_PROXY`/`all_proxy`) for http ones, each
/// bypassed for `NO_PROXY` (`no_proxy`). Errors name the variable, never its value (it may hold
/// a password).
fn proxies(env: &Env) -> Result<Vec<reqwest::Proxy>, String> {
    let first = |names: &[&'static str]| {
        names
            .iter()
            .find_map(|n| env.get(n).map(|v| (*n, v.trim().to_string())))
    };
    let no_proxy =
        first(&["NO_PROXY", "no_proxy"]).and_then(|(_, list)| reqwest::NoProxy::from_string(&list));
    let mut out = Vec::new();
    if let Some((name, url)) = first(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
        let p = reqwest::Proxy::https(url.as_str())
            .map_err(|_| format!("{name} is not a proxy URL"))?;
        out.push(p.no_proxy(no_proxy.clone()));
    }
    if let Some((name, url)) = first(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]) {
        let p =
            reqwest::Proxy::http(url.as_str()).map_err(|_| format!("{name} is not a proxy URL"))?;
        out.push(p.no_proxy(no_proxy));
    }
    Ok(out)
}

fn build(env: &Env, timeout: Duration, proxied: bool) -> Result<reqwest::Client, String> {
    // No system proxies: only what `env` says.
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(env)?)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("acr-broker/", env!("CARGO_PKG_VERSION")));
    if proxied {
        for p in proxies(env)? {
            builder = builder.proxy(p);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// TLS as reqwest would set it up (TLS 1.2 and 1.3, rustls' aws-lc-rs provider, ALPN
/// `http/1.1`, the only HTTP version the clients speak), with [`roots`] as the trusted CAs.
fn tls_config(env: &Env) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots(env)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The CA certificates a client trusts: the system's bundle ([`system_roots`]), plus every
/// certificate of the file `SSL_CERT_FILE` names (an extra bundle, e.g. a corporate or test CA;
/// one that cannot be read or used is an error naming it) and of the files in the folders
/// `SSL_CERT_DIR` names (`:`-separated). Fails when nothing at all is trusted.
pub(crate) fn roots(env: &Env) -> Result<Arc<RootCertStore>, String> {
    let system = system_roots();
    let file = env.get("SSL_CERT_FILE");
    let dirs = env.get("SSL_CERT_DIR");
    if file.is_none() && dirs.is_none() {
        return if system.is_empty() {
            Err(no_roots())
        } else {
            Ok(system)
        };
    }
    let mut store = RootCertStore::clone(&system);
    if let Some(path) = file {
        let pem = read_ca_bundle(Path::new(path), "SSL_CERT_FILE")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| format!("SSL_CERT_FILE {path} is not a PEM bundle: {e}"))?;
            store.add(cert).map_err(|e| {
                format!("SSL_CERT_FILE {path} holds a certificate that cannot be trusted: {e}")
            })?;
        }
    }
    for dir in dirs.into_iter().flat_map(|d| d.split(':')) {
        if !dir.trim().is_empty() {
            add_folder(&mut store, Path::new(dir.trim()));
        }
    }
    if store.is_empty() {
        return Err(no_roots());
    }
    Ok(Arc::new(store))
}

fn no_roots() -> String {
    format!(
        "no trusted CA certificates: none of {} holds any; install the ca-certificates package or set SSL_CERT_FILE",
        platform::CA_BUNDLES.join(", ")
    )
}

/// The system's CA certificates, read once per process: the first bundle of
/// [`platform::CA_BUNDLES`] that holds certificates, else the files of
/// [`platform::CA_FOLDERS`]. A miss that builds two clients (Entra through a local endpoint, then
/// the registry) reads the bundle once; a cache hit builds no client and reads nothing.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let bundles = platform::CA_BUNDLES.iter().map(Path::new);
            let folders = platform::CA_FOLDERS.iter().map(Path::new);
            Arc::new(load_system_roots(bundles, folders))
        })
        .clone()
}

/// The certificates of the first of `bundles` that holds any, else of every file in `folders`.
fn load_system_roots<'a>(
    bundles: impl IntoIterator<Item = &'a Path>,
    folders: impl IntoIterator<Item = &'a Path>,
) -> RootCertStore {
    let mut store = RootCertStore::empty();
    for bundle in bundles {
        if let Some(pem) = read_ca_file(bundle) {
            add_pem(&mut store, &pem);
            if !store.is_empty() {
                log::debug!(
                    "trusting {} CA certificates of {}",
                    store.len(),
                    bundle.display()
                );
                return store;
            }
        }
    }
    for folder in folders {
        add_folder(&mut store, folder);
    }
    log::debug!(
        "trusting {} CA certificates of the system's folders",
        store.len()
    );
    store
}

/// Adds the usable certificates of a PEM text; anything else in it is skipped, as OpenSSL
/// skips it.
fn add_pem(store: &mut RootCertStore, pem: &[u8]) {
    let certs = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok);
    let (_, ignored) = store.add_parsable_certificates(certs);
    if ignored > 0 {
        log::debug!("{ignored} CA certificates cannot be used and are ignored");
    }
}

/// Adds the certificates of every file in `folder`, each file read once however many links
/// (OpenSSL's hash names) lead to it.
fn add_folder(store: &mut RootCertStore, folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file()
            && platform::file_identity(&meta).is_none_or(|id| seen.insert(id))
            && let Some(pem) = read_ca_file(&path)
        {
            add_pem(store, &pem);
        }
    }
}

/// Largest CA bundle read (Debian's whole bundle is about 220 KiB).
const MAX_CA_BUNDLE: usize = 8 * 1024 * 1024;

/// A system CA file's bytes, read as [`files::read_following`] reads (bounded, never waiting on
/// a FIFO, a regular file only); `None` when it is missing or cannot be used, as for OpenSSL.
fn read_ca_file(path: &Path) -> Option<Vec<u8>> {
    match files::read_following(path, MAX_CA_BUNDLE) {
        Ok(pem) => pem,
        Err(e) => {
            log::debug!("skipping the CA file {}: {e}", path.display());
            None
        }
    }
}

/// The CA bundle at `path` (named by the setting `what`), read as [`crate::files::read_named`]
/// reads: it must be there, a regular file of at most [`MAX_CA_BUNDLE`] bytes.
pub(crate) fn read_ca_bundle(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    files::read_named(path, MAX_CA_BUNDLE, what, false)
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than [`MAX_BODY`]: will not heal.
    TooLarge,
    /// The connection failed while reading (cut short, reset): may heal.
    Read(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => write!(f, "response body larger than {MAX_BODY} bytes"),
            BodyError::Read(e) => write!(f, "reading the response failed: {e}"),
        }
    }
}

/// Reads a response body, failing when it exceeds [`MAX_BODY`].
pub async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|l| l > MAX_BODY as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes on one line (reqwest hides the interesting part in the sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

/// Whether a request that failed before its answer was read may succeed if sent again: the
/// connection could not be made or was cut, or it timed out; never when the server's certificate
/// does not verify (see [`is_certificate_failure`]).
pub fn send_may_heal(e: &reqwest::Error) -> bool {
    (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body())
        && !is_certificate_failure(e)
}

/// Whether `e`, or an error it was caused by, is TLS refusing the peer's certificate (unknown
/// issuer, expired, wrong name, none presented, or the peer's alert about one): a failure that
/// no retry heals. Read from the error types in the chain, never from their text. rustls errors
/// reach here inside `std::io::Error`s, whose `source()` skips the error they wrap, so those are
/// opened with `get_ref()`.
pub fn is_certificate_failure(e: &(dyn StdError + 'static)) -> bool {
    use rustls::AlertDescription as Alert;
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            let refused = match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::InvalidCertRevocationList(_) => true,
                rustls::Error::AlertReceived(alert) => matches!(
                    alert,
                    Alert::BadCertificate
                        | Alert::UnsupportedCertificate
                        | Alert::CertificateRevoked
                        | Alert::CertificateExpired
                        | Alert::CertificateUnknown
                        | Alert::UnknownCA
                ),
                _ => false,
            };
            if refused {
                return true;
            }
        }
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(inner) = wrapped
            && is_certificate_failure(inner)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Whether `url` names a host on this machine (loopback, link-local or `localhost`): such
/// endpoints are reached directly, never through a proxy.
pub fn is_local(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || IpAddr::V6(ip).to_canonical().is_loopback() || {
                let first = ip.segments()[0];
                first & 0xffc0 == 0xfe80
            }
        }
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use acr_tests::emulator::{Emulator, EmulatorConfig};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A real TLS handshake with a server whose CA the client does not trust is a certificate
    /// failure, seen through reqwest's error and through azure_core's wrapping of it; a refused
    /// connection is not, and may heal.
    #[test]
    fn certificate_failures_are_told_apart_by_type() {
        use azure_core::http::HttpClient;
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        // No SSL_CERT_FILE: the emulator's CA is not trusted.
        let http = client(
            &Env::from_pairs([("PATH", "/nonexistent")]),
            Duration::from_secs(10),
        )
        .unwrap();
        let url = format!("{}/v2/", emu.base_url());
        let rt = runtime();
        let e = rt
            .block_on(async { http.get(&url).send().await })
            .unwrap_err();
        assert!(is_certificate_failure(&e), "{}", error_chain(&e));
        assert!(!send_may_heal(&e), "{}", error_chain(&e));
        let request =
            azure_core::http::Request::new(url.parse().unwrap(), azure_core::http::Method::Get);
        let e = rt
            .block_on(async { http.execute_request(&request).await })
            .unwrap_err();
        assert!(is_certificate_failure(&e), "{}", error_chain(&e));

        // A port nobody listens on: refused, transient.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let e = rt
            .block_on(async { http.get(format!("https://127.0.0.1:{port}/")).send().await })
            .unwrap_err();
        assert!(!is_certificate_failure(&e), "{}", error_chain(&e));
        assert!(send_may_heal(&e), "{}", error_chain(&e));
    }

    /// The system's roots come from the first bundle that holds certificates; later bundles and
    /// the folders are not read.
    #[test]
    fn the_system_bundle_is_the_first_that_holds_certificates() {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("empty.crt");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let one = d.path().join("one.crt");
        std::fs::write(&one, emu.ca_pem()).unwrap();
        let two = d.path().join("two.crt");
        std::fs::write(&two, emu.ca_pem() + &emu.token_signing_cert_pem()).unwrap();
        let folder = d.path().join("certs");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("other.pem"), emu.token_signing_cert_pem()).unwrap();
        let missing = d.path().join("missing.crt");
        let store = load_system_roots([missing.as_path(), &empty, &one, &two], [folder.as_path()]);
        assert_eq!(store.len(), 1);
        // No bundle: the folder's files, each read once however many links lead to it.
        std::os::unix::fs::symlink(folder.join("other.pem"), folder.join("0a1b2c3d.0")).unwrap();
        std::fs::write(folder.join("README"), "not a certificate").unwrap();
        let store = load_system_roots([missing.as_path()], [folder.as_path()]);
        assert_eq!(store.len(), 1);
    }

    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` add to the system's roots; a file that cannot be read
    /// or holds a broken certificate is an error that names it.
    #[test]
    fn ssl_cert_file_and_dir_add_to_the_system_roots() {
        let emu = Emulator::start(EmulatorConfig::default()).unwrap();
        let system = system_roots().len();
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca.pem");
        std::fs::write(&ca, emu.ca_pem()).unwrap();
        let env = Env::from_pairs([("SSL_CERT_FILE", ca.to_str().unwrap())]);
        assert_eq!(roots(&env).unwrap().len(), system + 1);
        let folder = d.path().join("certs");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("signing.pem"), emu.token_signing_cert_pem()).unwrap();
        let env = Env::from_pairs([
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
            (
                "SSL_CERT_DIR",
                &format!("/nonexistent:{}", folder.display()),
            ),
        ]);
        assert_eq!(roots(&env).unwrap().len(), system + 2);

        let missing = d.path().join("missing.pem");
        let e = roots(&Env::from_pairs([(
            "SSL_CERT_FILE",
            missing.to_str().unwrap(),
        )]))
        .unwrap_err();
        assert!(
            e.contains("SSL_CERT_FILE") && e.contains("missing.pem"),
            "{e}"
        );
        let broken = d.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = roots(&Env::from_pairs([(
            "SSL_CERT_FILE",
            broken.to_str().unwrap(),
        )]))
        .unwrap_err();
        assert!(e.contains("broken.pem"), "{e}");
    }

    #[test]
    fn the_ca_bundle_is_read_bounded_and_never_waits_on_a_fifo() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("ca.pem");
        let _writer = crate::files::fifo::FifoWriter::new(&fifo, "");
        let big = d.path().join("big.pem");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(MAX_CA_BUNDLE as u64 + 1))
            .unwrap();
        for (path, want) in [(&fifo, "not a regular file"), (&big, "larger than")] {
            let env = Env::from_pairs([("SSL_CERT_FILE", path.to_str().unwrap())]);
            let e = client(&env, Duration::from_secs(10)).unwrap_err();
            assert!(e.contains("SSL_CERT_FILE") && e.contains(want), "{e}");
        }
    }

    #[test]
    fn local_endpoints() {
        for url in [
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://127.0.0.1:41741/msi/token",
            "https://localhost:443/msi/token",
            "http://[::1]:8081/msi/token",
            "http://[fe80::1]/msi/token",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "https://10.0.0.4/msi/token",
            "https://login.microsoftonline.com/",
            "https://localhost.evil.example/",
            "not a url",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }
}
