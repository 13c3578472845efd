//! `--registry-mirror`: images on a source registry get the credentials of an ACR destination.
//!
//! The value is `src:dst[,src:dst...]`, each side `host` or `host:port`, the destination
//! optionally followed by a repository path, for example `mcr.microsoft.com:myregistry.azurecr.io`,
//! `localhost:5000:myregistry.azurecr.io:443`, or what AKS writes on network-isolated clusters
//! whose bootstrap registry serves MCR under a prefix,
//! `mcr.microsoft.com:myregistry.azurecr.io/aks-managed-repository` (AgentBaker passes its
//! `BOOTSTRAP_PROFILE_CONTAINER_REGISTRY_SERVER`, `host[/path]`, as the destination; the AKS plugin
//! takes everything after the `:` as it is). Tokens are registry-wide, so the path changes which
//! repositories containerd pulls, not which credentials are answered.
//!
//! **Parse rule.** The destination's path starts at the entry's first `/`. The rest is split at
//! every `:`. A part made only of digits is the port of the host just before it; any other part
//! starts a new host. An entry must give exactly two hosts, source then destination. No host name
//! is all digits (a top-level domain never is), so the rule has one reading. Hosts are normalised
//! like login servers (lowercase, port 443 dropped); schemes, user info, IPv6 literals and paths
//! that are not repository names are refused.

use acr_broker::normalize_host;

/// One mapping: images on `source` are pulled with credentials for `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The registry named in the image, normalised `host[:port]`.
    pub source: String,
    /// The ACR login server whose credentials are used, normalised `host[:port]`.
    pub destination: String,
    /// The repository path the destination serves the source under, if any (for the report).
    pub path: Option<String>,
}

/// Every mapping given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors(Vec<Mirror>);

/// A `--registry-mirror` value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--registry-mirror entry {entry:?}: {reason}")]
pub struct MirrorError {
    /// The entry, as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Mirrors {
    /// Parses every `--registry-mirror` value (each a comma-separated list). Empty items are
    /// ignored; the first entry that cannot be read (or a source given twice) is the error.
    pub fn parse(values: &[String]) -> Result<Mirrors, MirrorError> {
        let (mirrors, errors) = Mirrors::parse_each(values);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(mirrors),
        }
    }

    /// Parses every entry on its own: the mappings that can be read, and why each other one
    /// cannot. A source given twice keeps its last mapping, as the AKS plugin's map does
    /// (cloud-provider-azure v1.35.3 pkg/credentialprovider/azure_credentials.go:355-361). A
    /// request uses the mappings and warns of the rest, as the AKS plugin skips entries it
    /// cannot read: one bad entry must not stop a node's pulls.
    pub fn parse_each(values: &[String]) -> (Mirrors, Vec<MirrorError>) {
        let mut mirrors: Vec<Mirror> = Vec::new();
        let mut errors = Vec::new();
        for entry in values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let error = |reason| MirrorError {
                entry: entry.to_string(),
                reason,
            };
            match parse_entry(entry) {
                Err(reason) => errors.push(error(reason)),
                Ok(m) => {
                    mirrors.retain(|seen| seen.source != m.source);
                    mirrors.push(m);
                }
            }
        }
        (Mirrors(mirrors), errors)
    }

    /// Keeps only the mappings `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Mirror) -> bool) {
        self.0.retain(keep);
    }

    /// The destination for images on `host` (a normalised `host[:port]`), if it is mirrored.
    pub fn destination(&self, host: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|m| m.source == host)
            .map(|m| m.destination.as_str())
    }

    /// The destination for images whose registry is written `host` (as in an image reference,
    /// any case, port 443 or not), if it is mirrored.
    pub fn for_image_host(&self, host: &str) -> Option<&str> {
        normalize_host(host).ok().and_then(|h| self.destination(&h))
    }

    /// The mappings, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Mirror> {
        self.0.iter()
    }
}

fn parse_entry(entry: &str) -> Result<Mirror, String> {
    if entry.contains("://") {
        return Err("write registry hosts without a scheme".into());
    }
    let (hosts_part, path) = match entry.split_once('/') {
        None => (entry, None),
        Some((hosts, path)) => (hosts, repository_path(path)?),
    };
    let mut hosts: Vec<String> = Vec::new();
    for part in hosts_part.split(':') {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty host or port".into());
        }
        if part.bytes().all(|b| b.is_ascii_digit()) {
            match hosts.last_mut() {
                None => return Err("starts with a port".into()),
                Some(h) if h.contains(':') => return Err(format!("two ports after {h:?}")),
                Some(h) => {
                    h.push(':');
                    h.push_str(part);
                }
            }
        } else {
            hosts.push(part.to_string());
        }
    }
    let [source, destination] = hosts.as_slice() else {
        return Err(format!(
            "expected <source>:<destination>, each host or host:port, but found {} host(s)",
            hosts.len()
        ));
    };
    let normal = |h: &str| normalize_host(h).map_err(|e| format!("{h:?}: {}", e.reason));
    let mirror = Mirror {
        source: normal(source)?,
        destination: normal(destination)?,
        path,
    };
    if mirror.source == mirror.destination {
        return Err("source and destination are the same registry".into());
    }
    Ok(mirror)
}

/// The path after the destination host, as given: the AKS plugin replaces the source by the whole
/// destination string (cloud-provider-azure v1.35.3
/// pkg/credentialprovider/azure_credentials.go:334-341, `processImageWithRegistryMirror`), so any path (a trailing
/// slash, upper case) leaves the destination registry, and so the credentials, unchanged. `None`
/// for an empty path; control characters are refused (the path is shown in reports).
fn repository_path(path: &str) -> Result<Option<String>, String> {
    let path = path.trim_matches('/');
    if path.chars().any(char::is_control) {
        return Err("the path after the destination holds control characters".into());
    }
    Ok((!path.is_empty()).then(|| path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<Vec<(String, String)>, String> {
        Mirrors::parse(&[v.to_string()])
            .map(|m| {
                m.iter()
                    .map(|m| (m.source.clone(), m.destination.clone()))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn hosts_and_ports() {
        for (spec, want) in [
            (
                "mcr.microsoft.com:myregistry.azurecr.io",
                vec![("mcr.microsoft.com", "myregistry.azurecr.io")],
            ),
            (
                "localhost:5000:myregistry.azurecr.io:443",
                vec![("localhost:5000", "myregistry.azurecr.io")],
            ),
            (
                "localhost:5000:localhost:8443",
                vec![("localhost:5000", "localhost:8443")],
            ),
            (
                "docker.io:myregistry.azurecr.io:8443",
                vec![("docker.io", "myregistry.azurecr.io:8443")],
            ),
            (
                "10.0.0.1:5000:myregistry.azurecr.io",
                vec![("10.0.0.1:5000", "myregistry.azurecr.io")],
            ),
            (
                " MCR.Microsoft.com:MyRegistry.azurecr.io , quay.io:5000:other.azurecr.io,",
                vec![
                    ("mcr.microsoft.com", "myregistry.azurecr.io"),
                    ("quay.io:5000", "other.azurecr.io"),
                ],
            ),
            (
                "mcr.microsoft.com:myregistry.azurecr.io/aks-managed-repository",
                vec![("mcr.microsoft.com", "myregistry.azurecr.io")],
            ),
            ("", vec![]),
        ] {
            assert_eq!(parse(spec), Ok(pairs(&want)), "{spec}");
        }
        let m =
            Mirrors::parse(&["mcr.microsoft.com:myregistry.azurecr.io:443/a/b-c/".into()]).unwrap();
        let m = m.iter().next().unwrap();
        assert_eq!(m.destination, "myregistry.azurecr.io");
        assert_eq!(m.path.as_deref(), Some("a/b-c"));
        // As the AKS plugin, which replaces the source by the destination string as given: a
        // trailing slash or an upper-case path leaves the destination registry as it is.
        for (spec, path) in [
            ("mcr.microsoft.com:myregistry.azurecr.io/", None),
            (
                "mcr.microsoft.com:myregistry.azurecr.io/AKS/Repo",
                Some("AKS/Repo"),
            ),
        ] {
            let m = Mirrors::parse(&[spec.into()]).unwrap();
            let m = m.iter().next().unwrap();
            assert_eq!(m.destination, "myregistry.azurecr.io", "{spec}");
            assert_eq!(m.path.as_deref(), path, "{spec}");
        }
        // A source given twice keeps its last destination, as the AKS plugin's map.
        assert_eq!(
            parse("a.example:b.example,a.example:c.example"),
            Ok(pairs(&[("a.example", "c.example")]))
        );
    }

    #[test]
    fn repeated_flags_add_up() {
        let m = Mirrors::parse(&[
            "mcr.microsoft.com:myregistry.azurecr.io".into(),
            "localhost:5000:localhost:8443".into(),
        ])
        .unwrap();
        assert_eq!(
            m.destination("mcr.microsoft.com"),
            Some("myregistry.azurecr.io")
        );
        assert_eq!(m.destination("localhost:5000"), Some("localhost:8443"));
        assert_eq!(m.destination("localhost"), None);
        assert_eq!(m.destination("myregistry.azurecr.io"), None);
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("mcr.microsoft.com", "found 1 host"),
            ("mcr.microsoft.com:5000", "found 1 host"),
            ("a.example:b.example:c.example", "found 3 host"),
            ("5000:myregistry.azurecr.io", "starts with a port"),
            ("a.example:5000:6000:b.example", "two ports"),
            ("a.example::b.example", "empty host or port"),
            ("https://a.example:b.example", "scheme"),
            ("a.example/path:b.example", "found 1 host(s)"),
            ("a.example:b.example/\u{7}", "control characters"),
            ("a.example:99999:b.example", "bad port"),
            ("a_b.example:b.example", "characters"),
            ("user@a.example:b.example", "characters"),
            ("a.example:a.example:443", "same registry"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
            assert!(e.starts_with("--registry-mirror entry"), "{e}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parser_never_panics(spec in "\\PC{0,80}") {
            let _ = Mirrors::parse(&[spec]);
        }

        /// Mirror-shaped lists (hosts, ports, separators, stray colons, slashes and schemes):
        /// an entry is accepted exactly when it names two different hosts (the destination may
        /// carry any path, a source none), and then each source maps to its last destination; a
        /// refusal is one line naming the entry.
        #[test]
        fn mirror_shaped_lists(
            entries in proptest::collection::vec(
                (
                    prop::sample::select(vec!["mcr.microsoft.com", "localhost", "src.example", "MCR.Microsoft.COM"]),
                    proptest::option::of(prop::sample::select(vec!["5000", "443", "0", "70000"])),
                    prop::sample::select(vec!["myregistry.azurecr.io", "other.azurecr.io", "mcr.microsoft.com"]),
                    prop::sample::select(vec!["", "https://", "/path", "src/path", "/Bad Path", "::"]),
                ),
                1..4,
            ),
        ) {
            let specs: Vec<String> = entries
                .iter()
                .map(|(src, port, dst, oddity)| {
                    let src = match port { Some(p) => format!("{src}:{p}"), None => src.to_string() };
                    match *oddity {
                        "https://" => format!("https://{src}:{dst}"),
                        "/path" => format!("{src}:{dst}/path"),
                        "src/path" => format!("{src}/path:{dst}"),
                        "/Bad Path" => format!("{src}:{dst}/Bad Path"),
                        "::" => format!("{src}::{dst}"),
                        _ => format!("{src}:{dst}"),
                    }
                })
                .collect();
            let joined = specs.join(",");
            let result = Mirrors::parse(std::slice::from_ref(&joined));
            // What a correct reading must conclude, entry by entry.
            let mut wanted: std::collections::BTreeMap<String, &str> = Default::default();
            let mut all_ok = true;
            for (src, port, dst, oddity) in &entries {
                let port_ok = port.is_none_or(|p| p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n)));
                let src_norm = match port {
                    Some(p) if *p != "443" => format!("{}:{p}", src.to_ascii_lowercase()),
                    _ => src.to_ascii_lowercase(),
                };
                let ok = matches!(*oddity, "" | "/path" | "/Bad Path")
                    && port_ok
                    && src_norm != *dst;
                all_ok &= ok;
                // The last mapping of a source wins.
                wanted.insert(src_norm, dst);
            }
            match result {
                Ok(m) => {
                    prop_assert!(all_ok, "accepted {joined}");
                    for (src, dst) in &wanted {
                        prop_assert_eq!(m.destination(src), Some(*dst));
                    }
                }
                Err(e) => {
                    prop_assert!(!all_ok, "refused {joined}: {e}");
                    prop_assert!(!e.to_string().contains('\n'));
                }
            }
        }

        #[test]
        fn host_pairs_parse(src in "[a-z]{1,10}\\.example\\.com", dst in "[a-z0-9]{5,20}\\.azurecr\\.io", port in proptest::option::of(1u16..=65535)) {
            let src_spec = match port { Some(p) => format!("{src}:{p}"), None => src.clone() };
            let m = Mirrors::parse(&[format!("{src_spec}:{dst}")]).unwrap();
            let key = match port { Some(p) if p != 443 => format!("{src}:{p}"), _ => src.clone() };
            prop_assert_eq!(m.destination(&key), Some(dst.as_str()));
        }
    }
}
