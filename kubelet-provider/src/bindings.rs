//! AKS identity bindings (`--ib-*`): pods pull as the Entra identity their service account names,
//! with a token from the cluster's local token authority instead of Entra's federation.
//!
//! AKS's node bootstrap passes `--ib-sni-name`, `--ib-apiserver-ip` (the API server's name or
//! address) and optionally `--ib-default-client-id` / `--ib-default-tenant-id` on every node with
//! service-account image pull turned on. The flags are checked here with the AKS plugin's rules:
//! the SNI name has no scheme; the SNI name and the API server address come together; the defaults
//! need the SNI name. The address must be an IP or a host name; a name is resolved when a token is
//! fetched, not on every start, so cache hits do no DNS lookup.

use acr_broker::{KUBERNETES_CA_FILE, normalize_host};
use std::net::IpAddr;
use std::path::PathBuf;

/// The identity-bindings settings of one provider run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityBindings {
    /// The local authority's TLS server name; tokens are requested from `https://<sni_name>`.
    pub sni_name: String,
    /// Where the authority is reached (port 443): an IP, or a name resolved at fetch time.
    pub apiserver: String,
    /// The client id for service accounts without the `kubernetes.azure.com/acr-client-id`
    /// annotation.
    pub default_client_id: Option<String>,
    /// The tenant for service accounts without the `kubernetes.azure.com/acr-tenant-id`
    /// annotation (else azure.json's `tenantId`).
    pub default_tenant_id: Option<String>,
    /// The cluster CA bundle, the only roots trusted for the authority.
    pub ca_file: PathBuf,
}

/// The `--ib-*` flags as given (empty values count as absent, as in the AKS plugin).
#[derive(Debug, Clone, Default)]
pub struct BindingFlags {
    /// `--ib-sni-name`.
    pub sni_name: Option<String>,
    /// `--ib-default-client-id`.
    pub default_client_id: Option<String>,
    /// `--ib-default-tenant-id`.
    pub default_tenant_id: Option<String>,
    /// `--ib-apiserver-ip`.
    pub apiserver: Option<String>,
    /// `--ib-ca-file` (ours; default `/etc/kubernetes/certs/ca.crt`).
    pub ca_file: Option<PathBuf>,
}

impl BindingFlags {
    /// Checks the flags; `None` when identity bindings are off (no `--ib-sni-name`). Errors are
    /// one line naming the flag.
    pub fn check(&self) -> Result<Option<IdentityBindings>, String> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let sni = given(&self.sni_name);
        let apiserver = given(&self.apiserver);
        let client = given(&self.default_client_id);
        let tenant = given(&self.default_tenant_id);
        if let Some(sni) = &sni {
            let lower = sni.to_ascii_lowercase();
            if lower.starts_with("https://") || lower.starts_with("http://") {
                return Err(format!(
                    "--ib-sni-name must not contain protocol prefix (https:// or http://), got: {sni}"
                ));
            }
            if sni.contains([':', '/', '@']) || normalize_host(sni).is_err() {
                return Err(format!(
                    "--ib-sni-name must be a host name (no port or path), got: {sni}"
                ));
            }
            if apiserver.is_none() {
                return Err("--ib-apiserver-ip must be set when --ib-sni-name is provided".into());
            }
        }
        if client.is_some() && sni.is_none() {
            return Err("--ib-sni-name must be set when --ib-default-client-id is provided".into());
        }
        if tenant.is_some() && sni.is_none() {
            return Err("--ib-sni-name must be set when --ib-default-tenant-id is provided".into());
        }
        if let Some(a) = &apiserver {
            let is_name = || normalize_host(a).is_ok_and(|h| !h.contains(':'));
            if a.parse::<IpAddr>().is_err() && !is_name() {
                return Err(format!(
                    "--ib-apiserver-ip must be a valid IP address or resolvable FQDN, got: {a}"
                ));
            }
            if sni.is_none() {
                return Err("--ib-sni-name must be set when --ib-apiserver-ip is provided".into());
            }
        }
        if self.ca_file.is_some() && sni.is_none() {
            return Err("--ib-sni-name must be set when --ib-ca-file is provided".into());
        }
        let (Some(sni_name), Some(apiserver)) = (sni, apiserver) else {
            return Ok(None);
        };
        Ok(Some(IdentityBindings {
            sni_name: sni_name.to_ascii_lowercase(),
            apiserver,
            default_client_id: client,
            default_tenant_id: tenant,
            ca_file: self
                .ca_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(KUBERNETES_CA_FILE)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(sni: &str, client: &str, tenant: &str, apiserver: &str) -> BindingFlags {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        BindingFlags {
            sni_name: some(sni),
            default_client_id: some(client),
            default_tenant_id: some(tenant),
            apiserver: some(apiserver),
            ca_file: None,
        }
    }

    #[test]
    fn the_aks_plugins_rules() {
        // What AgentBaker writes (the address is the API server's FQDN).
        let ib = flags(
            "ib.example.internal",
            "c",
            "t",
            "mycluster-dns-1234.hcp.westeurope.azmk8s.io",
        )
        .check()
        .unwrap()
        .unwrap();
        assert_eq!(ib.sni_name, "ib.example.internal");
        assert_eq!(ib.apiserver, "mycluster-dns-1234.hcp.westeurope.azmk8s.io");
        assert_eq!(ib.default_client_id.as_deref(), Some("c"));
        assert_eq!(ib.ca_file, PathBuf::from("/etc/kubernetes/certs/ca.crt"));
        assert_eq!(flags("", "", "", "").check().unwrap(), None);
        assert!(
            flags("s.example", "", "", "10.0.0.1")
                .check()
                .unwrap()
                .is_some()
        );
        for (f, want) in [
            (
                flags("https://s.example", "", "", "10.0.0.1"),
                "--ib-sni-name must not contain protocol prefix",
            ),
            (
                flags("s.example", "", "", ""),
                "--ib-apiserver-ip must be set when --ib-sni-name is provided",
            ),
            (
                flags("", "c", "", ""),
                "--ib-sni-name must be set when --ib-default-client-id is provided",
            ),
            (
                flags("", "", "t", ""),
                "--ib-sni-name must be set when --ib-default-tenant-id is provided",
            ),
            (
                flags("", "", "", "10.0.0.1"),
                "--ib-sni-name must be set when --ib-apiserver-ip is provided",
            ),
            (
                flags("s.example", "", "", "not a host!"),
                "--ib-apiserver-ip must be a valid IP address or resolvable FQDN, got: not a host!",
            ),
            (
                flags("s.example:443", "", "", "10.0.0.1"),
                "--ib-sni-name must be a host name",
            ),
        ] {
            let e = f.check().unwrap_err();
            assert!(e.contains(want), "{f:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}
