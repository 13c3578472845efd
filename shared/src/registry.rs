//! Which hosts are Azure Container Registry login servers, and which cloud each belongs to.
//!
//! [`normalize_host`] turns every form a registry client sends (`host`, `host:port`,
//! `https://host`, `https://host/v2/...`, `host/repo`, upper case, trailing dot) into one
//! `host[:port]` string. [`LoginServer::parse`] then applies an anchored rule: only
//! `<name>[-<hash>].azurecr.{io,cn,us}` and `<name>.<region>.geo.azurecr.{io,cn,us}` match, plus
//! login servers named in configuration. Anything else is [`NotAcr`], and the caller answers
//! "no credentials" without any I/O.

use std::fmt;

/// Longest input accepted; a DNS name is at most 253 characters, so anything longer is not a host.
const MAX_INPUT: usize = 2048;

/// The Azure cloud a login server belongs to; it decides the Entra authority host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Azure public cloud (`*.azurecr.io`).
    Public,
    /// Azure China (`*.azurecr.cn`).
    China,
    /// Azure US Government (`*.azurecr.us`).
    UsGovernment,
}

impl Cloud {
    /// The cloud a setting names: `public`, `china`, `usgov`, or the cloud names azure.json and
    /// the Azure SDKs use (`AzurePublicCloud`, `AzureChinaCloud`, `AzureUSGovernment[Cloud]`).
    pub fn from_name(name: &str) -> Option<Cloud> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "public" | "azurepubliccloud" | "azurecloud" => Cloud::Public,
            "china" | "azurechinacloud" => Cloud::China,
            "usgov" | "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => {
                Cloud::UsGovernment
            }
            _ => return None,
        })
    }

    /// The cloud whose Entra authority is `url`, if it is one of the three: an https URL, parsed
    /// (so any case, the default port, a trailing slash or a path), whose host is one of the
    /// names Entra answers on for that cloud (`AUTHORITY_HOSTS`). User info or another port
    /// makes it no known cloud's.
    pub fn of_authority(url: &str) -> Option<Cloud> {
        let url = url::Url::parse(url.trim()).ok()?;
        if url.scheme() != "https"
            || url.port().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(name) => name.strip_suffix('.').unwrap_or(name),
            url::Host::Ipv4(_) | url::Host::Ipv6(_) => return None,
        };
        AUTHORITY_HOSTS
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, cloud)| *cloud)
    }

    /// The cloud's name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Public => "the Azure public cloud",
            Cloud::China => "Azure China",
            Cloud::UsGovernment => "Azure US Government",
        }
    }

    /// The `ACR_CLOUD` value that selects this cloud.
    pub fn setting(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::China => "china",
            Cloud::UsGovernment => "usgov",
        }
    }

    /// The Entra authority host of this cloud.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::UsGovernment => "https://login.microsoftonline.us",
        }
    }
}

/// The host names of each cloud's Entra authority: the canonical one first (the one
/// [`Cloud::authority_host`] gives), then the aliases Entra's instance discovery lists for it.
pub(crate) const AUTHORITY_HOSTS: &[(&str, Cloud)] = &[
    ("login.microsoftonline.com", Cloud::Public),
    ("login.windows.net", Cloud::Public),
    ("login.microsoft.com", Cloud::Public),
    ("sts.windows.net", Cloud::Public),
    ("login.chinacloudapi.cn", Cloud::China),
    ("login.partner.microsoftonline.cn", Cloud::China),
    ("login.microsoftonline.us", Cloud::UsGovernment),
    ("login.usgovcloudapi.net", Cloud::UsGovernment),
];

/// Why an input is not a login server this broker serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAcr {
    /// What was wrong, for debug logs.
    pub reason: &'static str,
}

impl fmt::Display for NotAcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an Azure Container Registry login server: {}",
            self.reason
        )
    }
}

impl std::error::Error for NotAcr {}

/// A recognised login server: a normalised `host[:port]` and its cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginServer {
    host: String,
    cloud: Cloud,
    /// Named in configuration (custom domains, custom clouds): its cloud is not known from its
    /// name.
    configured: bool,
}

impl LoginServer {
    /// Parses a client's input. `extra` lists additional login servers that configuration
    /// allows, such as custom domains or test hosts: each a `host[:port]` already normalised with
    /// [`normalize_host`], or `*.<suffix>` for every `<name>.<suffix>` with one more label (a
    /// custom cloud's registry domain).
    pub fn parse(input: &str, extra: &[String]) -> Result<LoginServer, NotAcr> {
        let host = normalize_host(input)?;
        if extra.iter().any(|e| extra_matches(e, &host)) {
            return Ok(LoginServer {
                cloud: cloud_of(&host).unwrap_or(Cloud::Public),
                configured: cloud_of(&host).is_none(),
                host,
            });
        }
        if host.contains(':') {
            return Err(NotAcr {
                reason: "ACR login servers listen on port 443 only",
            });
        }
        match cloud_of(&host) {
            Some(cloud) => Ok(LoginServer {
                host,
                cloud,
                configured: false,
            }),
            None => Err(NotAcr {
                reason: "host does not match <name>.azurecr.io, .cn or .us",
            }),
        }
    }

    /// The normalised `host[:port]`, as used in URLs and as the token `service`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The cloud the login server belongs to.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// The cloud its name places it in: `None` for a login server named in configuration under
    /// another domain, whose cloud only the configuration knows.
    pub fn known_cloud(&self) -> Option<Cloud> {
        (!self.configured).then_some(self.cloud)
    }

    /// `https://<host>`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.host)
    }
}

impl fmt::Display for LoginServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

/// Reduces a client's server URL to a lowercase `host[:port]` (port 443 dropped).
///
/// Accepts `host`, `host:port`, `https://host[:port][/path]` and `host[:port]/path`. Refuses
/// `http://` (tokens never travel in clear text), other schemes, user info (`@`), queries,
/// fragments, percent-encoding, non-ASCII and IP-literal brackets, so that no lookalike can pass.
pub fn normalize_host(input: &str) -> Result<String, NotAcr> {
    let s = input.trim();
    if s.is_empty() {
        return Err(NotAcr { reason: "empty" });
    }
    if s.len() > MAX_INPUT {
        return Err(NotAcr { reason: "too long" });
    }
    let lower = s.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if lower.contains("://") {
        return Err(NotAcr {
            reason: "only https:// URLs are served",
        });
    } else {
        lower.as_str()
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':'))
    {
        return Err(NotAcr {
            reason: "host has characters a DNS name cannot have",
        });
    }
    let (name, port) = match authority.split_once(':') {
        Some((name, port)) => {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NotAcr { reason: "bad port" });
            }
            let n: u32 = port.parse().map_err(|_| NotAcr { reason: "bad port" })?;
            if n == 0 || n > 65535 {
                return Err(NotAcr { reason: "bad port" });
            }
            (name, if n == 443 { None } else { Some(n) })
        }
        None => (authority, None),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(NotAcr {
            reason: "bad host name",
        });
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return Err(NotAcr {
                reason: "bad host name",
            });
        }
    }
    Ok(match port {
        Some(p) => format!("{name}:{p}"),
        None => name.to_string(),
    })
}

/// Whether `host` (normalised) is the configured login server `entry`: equal, or for a
/// `*.<suffix>` entry, one label (no dot, no port) followed by `.<suffix>`.
fn extra_matches(entry: &str, host: &str) -> bool {
    match entry.strip_prefix("*.") {
        None => entry == host,
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains(['.', ':'])),
    }
}

/// The cloud of an ACR host name (no port), or `None` when the name does not follow ACR's rule.
fn cloud_of(host: &str) -> Option<Cloud> {
    let (rest, cloud) = if let Some(r) = host.strip_suffix(".azurecr.io") {
        (r, Cloud::Public)
    } else if let Some(r) = host.strip_suffix(".azurecr.cn") {
        (r, Cloud::China)
    } else if let Some(r) = host.strip_suffix(".azurecr.us") {
        (r, Cloud::UsGovernment)
    } else {
        return None;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    let ok = match labels.as_slice() {
        [name] => is_registry_label(name),
        [name, region, "geo"] => is_registry_label(name) && is_region(region),
        _ => false,
    };
    ok.then_some(cloud)
}

/// A registry name label: 5 to 50 lowercase alphanumerics, optionally `-<hash>` (the
/// domain-name-label scope hash of newer registries).
fn is_registry_label(label: &str) -> bool {
    let (name, hash) = match label.split_once('-') {
        Some((n, h)) => (n, Some(h)),
        None => (label, None),
    };
    let name_ok = (5..=50).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
    let hash_ok = hash.is_none_or(|h| {
        (1..=16).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    name_ok && hash_ok
}

fn is_region(label: &str) -> bool {
    (2..=40).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<String, NotAcr> {
        LoginServer::parse(s, &[]).map(|l| l.host().to_string())
    }

    #[test]
    fn every_client_form_normalises_to_the_login_server() {
        for input in [
            "myregistry.azurecr.io",
            "myregistry.azurecr.io:443",
            "https://myregistry.azurecr.io",
            "https://myregistry.azurecr.io/",
            "https://myregistry.azurecr.io/v2/",
            "https://myregistry.azurecr.io/v2/library/alpine/manifests/latest",
            "myregistry.azurecr.io/library/alpine",
            "MyRegistry.AzureCR.io",
            "HTTPS://MYREGISTRY.AZURECR.IO",
            "myregistry.azurecr.io.",
            "  myregistry.azurecr.io\n",
        ] {
            assert_eq!(
                parse(input).as_deref(),
                Ok("myregistry.azurecr.io"),
                "{input}"
            );
        }
    }

    #[test]
    fn cloud_names_and_authorities() {
        for (name, cloud) in [
            ("public", Cloud::Public),
            ("AzurePublicCloud", Cloud::Public),
            ("China", Cloud::China),
            ("AzureChinaCloud", Cloud::China),
            ("usgov", Cloud::UsGovernment),
            ("AzureUSGovernmentCloud", Cloud::UsGovernment),
        ] {
            assert_eq!(Cloud::from_name(name), Some(cloud), "{name}");
            assert_eq!(Cloud::from_name(cloud.setting()), Some(cloud));
            assert_eq!(Cloud::of_authority(cloud.authority_host()), Some(cloud));
        }
        assert_eq!(Cloud::from_name("mars"), None);
        assert_eq!(
            Cloud::of_authority("https://login.chinacloudapi.cn/"),
            Some(Cloud::China)
        );
        assert_eq!(Cloud::of_authority("https://127.0.0.1:8443"), None);
        assert_eq!(
            Cloud::of_authority("http://login.microsoftonline.com"),
            None
        );
        // Configured login servers have no cloud known from their name.
        let extra = vec!["registry.contoso.example".to_string()];
        let l = LoginServer::parse("registry.contoso.example", &extra).unwrap();
        assert_eq!(l.known_cloud(), None);
        let l = LoginServer::parse("reg01.azurecr.cn", &extra).unwrap();
        assert_eq!(l.known_cloud(), Some(Cloud::China));
    }

    /// An authority is a URL: its cloud is its host's, whatever the spelling (default port,
    /// case, trailing slash, a path), and Entra's other names for a cloud's authority count.
    #[test]
    fn authority_spellings_and_aliases_name_their_cloud() {
        for (url, cloud) in [
            ("https://login.microsoftonline.com:443", Some(Cloud::Public)),
            (
                "https://login.microsoftonline.com:443/",
                Some(Cloud::Public),
            ),
            ("HTTPS://Login.MicrosoftOnline.com/", Some(Cloud::Public)),
            (
                "https://login.microsoftonline.com/organizations/",
                Some(Cloud::Public),
            ),
            ("https://login.windows.net", Some(Cloud::Public)),
            ("https://login.microsoft.com/", Some(Cloud::Public)),
            ("https://sts.windows.net", Some(Cloud::Public)),
            ("https://login.chinacloudapi.cn:443", Some(Cloud::China)),
            (
                "https://login.partner.microsoftonline.cn",
                Some(Cloud::China),
            ),
            (
                "https://login.microsoftonline.us/",
                Some(Cloud::UsGovernment),
            ),
            ("https://login.usgovcloudapi.net", Some(Cloud::UsGovernment)),
            ("https://login.microsoftonline.com:8443", None),
            ("https://login.microsoftonline.com.evil.example", None),
            ("https://user@login.microsoftonline.com", None),
            ("http://login.microsoftonline.com", None),
            ("login.microsoftonline.com", None),
            ("https://127.0.0.1:8443", None),
        ] {
            assert_eq!(Cloud::of_authority(url), cloud, "{url}");
        }
    }

    #[test]
    fn custom_suffix_entries_match_one_label_only() {
        let extra = vec!["*.azurecr.contoso.example".to_string()];
        let l = LoginServer::parse("Reg01.AzureCR.Contoso.Example/app:1", &extra).unwrap();
        assert_eq!(l.host(), "reg01.azurecr.contoso.example");
        for input in [
            "azurecr.contoso.example",
            ".azurecr.contoso.example",
            "a.b.azurecr.contoso.example",
            "reg01.azurecr.contoso.example:5000",
            "reg01.azurecr.contoso.example.evil.example",
            "reg01xazurecr.contoso.example",
        ] {
            assert!(LoginServer::parse(input, &extra).is_err(), "{input}");
        }
    }

    #[test]
    fn clouds_follow_the_suffix() {
        let l = LoginServer::parse("reg01.azurecr.cn", &[]).unwrap();
        assert_eq!(l.cloud(), Cloud::China);
        assert_eq!(l.cloud().authority_host(), "https://login.chinacloudapi.cn");
        let l = LoginServer::parse("reg01.azurecr.us", &[]).unwrap();
        assert_eq!(l.cloud(), Cloud::UsGovernment);
        let l = LoginServer::parse("reg01.azurecr.io", &[]).unwrap();
        assert_eq!(l.cloud(), Cloud::Public);
    }

    #[test]
    fn hashed_names_and_geo_replicas_match() {
        assert!(parse("myregistry-abcd1234.azurecr.io").is_ok());
        assert!(parse("myregistry.westeurope.geo.azurecr.io").is_ok());
        assert!(parse("myregistry.eastus2.geo.azurecr.us").is_ok());
    }

    #[test]
    fn lookalikes_never_match() {
        for input in [
            "x.azurecr.io.evil.example",
            "myregistry.azurecr.io.evil.example",
            "myregistry.azurecr.io@evil.example",
            "https://myregistry.azurecr.io@evil.example/",
            "evil.example/myregistry.azurecr.io",
            "http://myregistry.azurecr.io",
            "ftp://myregistry.azurecr.io",
            "myregistry.azurecr.io:5000",
            "myregistry.azurecr.io:0",
            "myregistry.azurecr.io:99999",
            "azurecr.io",
            ".azurecr.io",
            "abc.azurecr.io",
            "my_registry.azurecr.io",
            "my%72egistry.azurecr.io",
            "myregistry.azurecr.io%2eevil.example",
            "myregistrу.azurecr.io",
            "a.b.c.azurecr.io",
            "myregistry.westeurope.data.azurecr.io",
            "myregistry..azurecr.io",
            "127.0.0.1",
            "[::1]:443",
            "myregistry.azurecr.io?x=y",
            "myregistry.azurecr.io#x",
            "",
            "   ",
        ] {
            assert!(parse(input).is_err(), "{input:?} must not match");
        }
        assert!(parse(&format!("{}.azurecr.io", "a".repeat(3000))).is_err());
    }

    #[test]
    fn configured_extra_servers_match_exactly() {
        let extra = vec![
            "localhost:8443".to_string(),
            "registry.example.com".to_string(),
        ];
        assert_eq!(
            LoginServer::parse("https://localhost:8443/v2/", &extra)
                .unwrap()
                .host(),
            "localhost:8443"
        );
        assert!(LoginServer::parse("registry.example.com", &extra).is_ok());
        assert!(LoginServer::parse("localhost:8444", &extra).is_err());
        assert!(LoginServer::parse("sub.registry.example.com", &extra).is_err());
    }

    proptest! {
        #[test]
        fn normaliser_never_panics(s in "\\PC{0,80}") {
            let _ = normalize_host(&s);
        }

        /// Host-shaped input, in every form a client sends: accepted whenever the name and port
        /// are valid, normalised to lowercase `host[:port]` without 443, and idempotent.
        #[test]
        fn host_shaped_input_normalises_idempotently(
            scheme in prop::sample::select(vec!["", "https://", "HTTPS://"]),
            labels in proptest::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", 1..4),
            port in proptest::option::of(1u32..=65535),
            path in prop::sample::select(vec!["", "/", "/v2/", "/v2/library/alpine/manifests/latest"]),
            trailing_dot in any::<bool>(),
        ) {
            let name = labels.join(".");
            let host = if trailing_dot { format!("{name}.") } else { name.clone() };
            let input = match port {
                Some(p) => format!("{scheme}{host}:{p}{path}"),
                None => format!("{scheme}{host}{path}"),
            };
            let h = normalize_host(&input);
            prop_assert!(h.is_ok(), "{input}: {h:?}");
            let h = h.unwrap();
            let want = match port {
                Some(p) if p != 443 => format!("{}:{p}", name.to_ascii_lowercase()),
                _ => name.to_ascii_lowercase(),
            };
            prop_assert_eq!(&h, &want);
            prop_assert_eq!(normalize_host(&h), Ok(h.clone()));
        }

        #[test]
        fn anything_appended_after_the_suffix_is_refused(tail in "[a-z0-9.-]{1,20}") {
            let input = format!("myregistry.azurecr.io.{tail}");
            prop_assert!(parse(&input).is_err());
        }

        #[test]
        fn registry_names_round_trip(name in "[a-z0-9]{5,50}", scheme in prop::bool::ANY) {
            let host = format!("{name}.azurecr.io");
            let input = if scheme { format!("https://{host}/v2/") } else { host.clone() };
            prop_assert_eq!(parse(&input), Ok(host));
        }
    }
}
