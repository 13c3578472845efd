//! The node's `azure.json` (on AKS `/etc/kubernetes/azure.json`): the node identity and cloud.
//!
//! Only six fields matter here: `cloud`, `tenantId`, `aadClientId`, `aadClientSecret`,
//! `useManagedIdentityExtension` and `userAssignedIdentityID`; the file's many other fields are
//! ignored. `useManagedIdentityExtension: true` selects the node's managed identity through IMDS
//! (the user-assigned one named by `userAssignedIdentityID`, a client id or an ARM resource id,
//! else the system-assigned one); otherwise `aadClientId`, `aadClientSecret` and `tenantId` make a
//! service principal.
//!
//! Read as the AKS plugin's loader reads it: JSON or YAML, field names matched without regard to
//! case (Go's `encoding/json` rule) when no exact match exists. `cloud: AzureStackCloud` takes its
//! Entra authority and registry domain from the environment file named by
//! `AZURE_ENVIRONMENT_FILEPATH` ([`AzureJson::custom_cloud`]).
//!
//! Error messages never quote the file's content: it holds a client secret.

use acr_broker::{Cloud, Identity, Secret};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Largest azure.json read.
const MAX_SIZE: u64 = 1024 * 1024;

/// The fields of azure.json this provider uses. Empty strings count as absent.
#[derive(Debug, Clone, Default)]
pub struct AzureJson {
    /// The file it was read from, for messages.
    pub path: PathBuf,
    /// `cloud`, e.g. `AzurePublicCloud`.
    pub cloud: Option<String>,
    /// `tenantId`.
    pub tenant_id: Option<String>,
    /// `aadClientId`.
    pub aad_client_id: Option<String>,
    /// `aadClientSecret`.
    pub aad_client_secret: Option<Secret>,
    /// `useManagedIdentityExtension`.
    pub use_managed_identity_extension: bool,
    /// `userAssignedIdentityID`: client id of the node's user-assigned identity.
    pub user_assigned_identity_id: Option<String>,
    /// `aadClientCertPath`, only to explain that certificates are not supported here.
    aad_client_cert_path: Option<String>,
}

/// Why azure.json cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AzureJsonError {
    /// The file cannot be read: it does not exist, or the path names something that is not a
    /// regular file of at most 1 MiB (a FIFO, a device, a folder, a huge file), which is refused
    /// without waiting on it or reading it whole.
    #[error("{0}")]
    Refused(String),
    /// The content is not what azure.json holds.
    #[error("{}: {detail}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, without quoting content.
        detail: String,
    },
}

impl AzureJson {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<AzureJson, AzureJsonError> {
        // Bounded and non-blocking (the broker's reader, following links as AKS lays them out):
        // a FIFO or a device in its place cannot hang the kubelet's pull.
        let bytes = match acr_broker::files::read_following(path, MAX_SIZE as usize) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(AzureJsonError::Refused(format!(
                    "cannot read {}: the file does not exist",
                    path.display()
                )));
            }
            Err(e) => return Err(AzureJsonError::Refused(e.to_string())),
        };
        AzureJson::parse(&bytes, path)
    }

    /// Parses azure.json content; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<AzureJson, AzureJsonError> {
        let invalid = |detail: String| AzureJsonError::Invalid {
            path: path.to_path_buf(),
            detail,
        };
        let value = parse_json_or_yaml(bytes).map_err(&invalid)?;
        let Value::Object(object) = value else {
            return Err(invalid("not an object of settings (JSON or YAML)".into()));
        };
        let string = |key: &str| text(&object, key).map_err(&invalid);
        let use_managed_identity_extension = match field(&object, "useManagedIdentityExtension") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    "useManagedIdentityExtension must be true or false".into(),
                ));
            }
        };
        Ok(AzureJson {
            path: path.to_path_buf(),
            cloud: string("cloud")?,
            tenant_id: string("tenantId")?,
            aad_client_id: string("aadClientId")?,
            aad_client_secret: string("aadClientSecret")?.map(Secret::new),
            use_managed_identity_extension,
            user_assigned_identity_id: string("userAssignedIdentityID")?,
            aad_client_cert_path: string("aadClientCertPath")?,
        })
    }

    /// The node identity the file describes.
    pub fn identity(&self) -> Result<Identity, String> {
        if self.use_managed_identity_extension {
            return Ok(Identity::Imds {
                client_id: self.user_assigned_identity_id.clone(),
            });
        }
        match (
            &self.tenant_id,
            &self.aad_client_id,
            &self.aad_client_secret,
        ) {
            (Some(tenant), Some(client_id), Some(secret)) => Ok(Identity::ClientSecret {
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                secret: secret.clone(),
            }),
            (tenant, client, secret) => {
                if secret.is_none() && self.aad_client_cert_path.is_some() {
                    return Err("aadClientCertPath is set but certificate (PFX) service principals are not supported; use aadClientSecret or a managed identity".into());
                }
                let missing: Vec<&str> = [
                    (tenant.is_none(), "tenantId"),
                    (client.is_none(), "aadClientId"),
                    (secret.is_none(), "aadClientSecret"),
                ]
                .into_iter()
                .filter_map(|(absent, name)| absent.then_some(name))
                .collect();
                Err(format!(
                    "neither useManagedIdentityExtension is true nor a service principal is complete (missing {})",
                    missing.join(", ")
                ))
            }
        }
    }

    /// The fields this provider reads that the file sets, in the file's spelling, with the values
    /// a report may show: the client secret's is hidden.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut out: Vec<(&'static str, Value)> = [
            ("cloud", &self.cloud),
            ("tenantId", &self.tenant_id),
            ("aadClientId", &self.aad_client_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, Value::String(v))))
        .collect();
        if self.aad_client_secret.is_some() {
            out.push(("aadClientSecret", acr_broker::doctor::HIDDEN.into()));
        }
        if let Some(path) = &self.aad_client_cert_path {
            out.push(("aadClientCertPath", path.clone().into()));
        }
        out.push((
            "useManagedIdentityExtension",
            self.use_managed_identity_extension.into(),
        ));
        if let Some(id) = &self.user_assigned_identity_id {
            out.push(("userAssignedIdentityID", id.clone().into()));
        }
        out
    }

    /// Whether `cloud` is `AzureStackCloud`: endpoints then come from the environment file.
    pub fn is_stack_cloud(&self) -> bool {
        self.cloud
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("AzureStackCloud"))
    }

    /// For `cloud: AzureStackCloud`, the environment file named by `AZURE_ENVIRONMENT_FILEPATH`
    /// (`env_file`): `None` when the cloud is another or the variable is unset (then, as for the
    /// AKS plugin, the public cloud's endpoints apply); an error naming the file when it cannot be
    /// read or lacks what it must say.
    pub fn custom_cloud(&self, env_file: Option<&str>) -> Result<Option<CustomCloud>, String> {
        if !self.is_stack_cloud() {
            return Ok(None);
        }
        let Some(path) = env_file else {
            return Ok(None);
        };
        CustomCloud::load(Path::new(path)).map(Some)
    }

    /// The Entra authority host of `cloud`, when it names one of the three clouds ACR runs in.
    /// `None` for an absent cloud; `Err` (with the name) for one this provider does not know.
    pub fn authority_host(&self) -> Result<Option<&'static str>, String> {
        let Some(cloud) = &self.cloud else {
            return Ok(None);
        };
        let c = match cloud.to_ascii_lowercase().as_str() {
            "azurepubliccloud" | "azurecloud" => Cloud::Public,
            "azurechinacloud" => Cloud::China,
            "azureusgovernmentcloud" | "azureusgovernment" => Cloud::UsGovernment,
            _ => return Err(cloud.chars().take(64).collect()),
        };
        Ok(Some(c.authority_host()))
    }
}

/// A custom cloud's endpoints, from the environment file `AZURE_ENVIRONMENT_FILEPATH` names
/// (the JSON AKS writes for `AzureStackCloud` nodes, e.g. `/etc/kubernetes/akscustom.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCloud {
    /// The file it was read from.
    pub path: PathBuf,
    /// `activeDirectoryEndpoint`, without a trailing `/`: the Entra authority.
    pub authority_host: Option<String>,
    /// Why `activeDirectoryEndpoint` cannot be the Entra authority (not an https:// URL). Only
    /// identities that ask Entra fail for it: the AKS plugin reads the file as a whole and a
    /// managed-identity node never uses the field.
    pub authority_error: Option<String>,
    /// `containerRegistryDNSSuffix` without a leading dot, e.g. `azurecr.contoso.example`:
    /// images on `<name>.<suffix>` are served.
    pub registry_suffix: Option<String>,
}

impl CustomCloud {
    /// Reads the environment file at `path`.
    pub fn load(path: &Path) -> Result<CustomCloud, String> {
        let name = path.display();
        let unreadable = |e: &dyn std::fmt::Display| {
            format!("cannot read the environment file {name} (AZURE_ENVIRONMENT_FILEPATH): {e}")
        };
        // Bounded and non-blocking, as azure.json.
        let bytes = match acr_broker::files::read_following(path, MAX_SIZE as usize) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(unreadable(&"it does not exist")),
            Err(e) => return Err(unreadable(&e)),
        };
        let value =
            parse_json_or_yaml(&bytes).map_err(|e| format!("environment file {name}: {e}"))?;
        let Value::Object(object) = value else {
            return Err(format!("environment file {name}: not a JSON object"));
        };
        let string =
            |key: &str| text(&object, key).map_err(|e| format!("environment file {name}: {e}"));
        let (authority_host, authority_error) = match string("activeDirectoryEndpoint")? {
            None => (None, None),
            Some(a) if a.to_ascii_lowercase().starts_with("https://") => {
                (Some(a.trim_end_matches('/').to_string()), None)
            }
            Some(_) => (
                None,
                Some(format!(
                    "environment file {name}: activeDirectoryEndpoint must be an https:// URL to ask Entra for a token"
                )),
            ),
        };
        let registry_suffix = match string("containerRegistryDNSSuffix")? {
            None => None,
            Some(s) => {
                let suffix = s.trim_start_matches('.').to_ascii_lowercase();
                acr_broker::login_server_entry(&format!("*.{suffix}")).map_err(|reason| {
                    format!(
                        "environment file {name}: containerRegistryDNSSuffix {suffix:?}: {reason}"
                    )
                })?;
                Some(suffix)
            }
        };
        Ok(CustomCloud {
            path: path.to_path_buf(),
            authority_host,
            authority_error,
            registry_suffix,
        })
    }
}

/// Parses JSON, else YAML (a superset the AKS plugin's loader also reads). Errors give a
/// position, never content: the file holds a client secret.
fn parse_json_or_yaml(bytes: &[u8]) -> Result<Value, String> {
    let json_err = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let looks_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    match serde_yaml_ng::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(_) if looks_json => Err(format!(
            "not valid JSON (line {}, column {})",
            json_err.line(),
            json_err.column()
        )),
        Err(e) => Err(match e.location() {
            Some(l) => format!(
                "not valid JSON or YAML (line {}, column {})",
                l.line(),
                l.column()
            ),
            None => "not valid JSON or YAML".to_string(),
        }),
    }
}

/// A field by its exact name, else by a name equal but for case (as Go's `encoding/json` does).
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A string field; absent, `null` and empty (after trimming) are `None`.
fn text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        Some(_) => Err(format!("{key} must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<AzureJson, AzureJsonError> {
        AzureJson::parse(s.as_bytes(), Path::new("/etc/kubernetes/azure.json"))
    }

    #[test]
    fn aks_managed_identity_file() {
        // The shape AKS writes, abridged; aadClientId/Secret are the literal "msi".
        let a = parse(
            r#"{
                "cloud": "AzurePublicCloud",
                "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "subscriptionId": "sub",
                "aadClientId": "msi",
                "aadClientSecret": "msi",
                "resourceGroup": "MC_rg_cluster_westeurope",
                "location": "westeurope",
                "useManagedIdentityExtension": true,
                "userAssignedIdentityID": "5a1c7f3e-0000-4000-8000-000000000001",
                "useInstanceMetadata": true
            }"#,
        )
        .unwrap();
        match a.identity().unwrap() {
            Identity::Imds { client_id } => assert_eq!(
                client_id.as_deref(),
                Some("5a1c7f3e-0000-4000-8000-000000000001")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.tenant_id.as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(
            a.authority_host(),
            Ok(Some("https://login.microsoftonline.com"))
        );
    }

    #[test]
    fn system_assigned_when_the_user_assigned_id_is_empty() {
        let a = parse(r#"{"useManagedIdentityExtension": true, "userAssignedIdentityID": ""}"#)
            .unwrap();
        assert!(matches!(
            a.identity().unwrap(),
            Identity::Imds { client_id: None }
        ));
    }

    #[test]
    fn service_principal_file() {
        let a = parse(
            r#"{"cloud":"AzureChinaCloud","tenantId":"t","aadClientId":"c","aadClientSecret":"s3cr3t","useManagedIdentityExtension":false}"#,
        )
        .unwrap();
        match a.identity().unwrap() {
            Identity::ClientSecret {
                tenant,
                client_id,
                secret,
            } => {
                assert_eq!((tenant.as_str(), client_id.as_str()), ("t", "c"));
                assert_eq!(secret.expose(), "s3cr3t");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.authority_host(),
            Ok(Some("https://login.chinacloudapi.cn"))
        );
        assert!(!format!("{a:?}").contains("s3cr3t"));
        assert_eq!(
            a.fields(),
            [
                ("cloud", Value::from("AzureChinaCloud")),
                ("tenantId", "t".into()),
                ("aadClientId", "c".into()),
                ("aadClientSecret", "(set, hidden)".into()),
                ("useManagedIdentityExtension", false.into()),
            ]
        );
    }

    #[test]
    fn clouds() {
        for (cloud, want) in [
            (
                "AzureUSGovernmentCloud",
                Ok(Some("https://login.microsoftonline.us")),
            ),
            (
                "azurepubliccloud",
                Ok(Some("https://login.microsoftonline.com")),
            ),
            ("AzureStackCloud", Err("AzureStackCloud".to_string())),
        ] {
            let a = parse(&format!(r#"{{"cloud":"{cloud}"}}"#)).unwrap();
            assert_eq!(a.authority_host(), want, "{cloud}");
        }
        assert_eq!(parse("{}").unwrap().authority_host(), Ok(None));
    }

    #[test]
    fn incomplete_service_principal_names_what_is_missing() {
        let e = parse(r#"{"aadClientId":"c","aadClientSecret":"s3cr3t"}"#)
            .unwrap()
            .identity()
            .unwrap_err();
        assert!(e.contains("missing tenantId"), "{e}");
        let e = parse("{}").unwrap().identity().unwrap_err();
        assert!(e.contains("tenantId, aadClientId, aadClientSecret"), "{e}");
        let e = parse(
            r#"{"tenantId":"t","aadClientId":"c","aadClientCertPath":"/etc/kubernetes/sp.pfx"}"#,
        )
        .unwrap()
        .identity()
        .unwrap_err();
        assert!(e.contains("aadClientCertPath"), "{e}");
    }

    #[test]
    fn malformed_files_are_refused_without_quoting_them() {
        for (doc, why) in [
            (r#"{"aadClientSecret": "s3cr3t""#, "not valid JSON"),
            ("", "not an object of settings"),
            (r#"["s3cr3t"]"#, "not an object of settings"),
            (
                "aadClientSecret: s3cr3t\n  - x: [",
                "not valid JSON or YAML (line",
            ),
            (
                r#"{"tenantId": 42, "aadClientSecret": "s3cr3t"}"#,
                "tenantId must be a string",
            ),
            (
                r#"{"useManagedIdentityExtension": "s3cr3t"}"#,
                "useManagedIdentityExtension must be true or false",
            ),
        ] {
            let e = parse(doc).unwrap_err().to_string();
            assert!(e.contains(why), "{doc}: {e}");
            assert!(e.starts_with("/etc/kubernetes/azure.json: "), "{e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn yaml_and_any_case_field_names_are_read_as_the_aks_loader_reads_them() {
        let a = parse(
            "cloud: AzurePublicCloud\ntenantId: t\nuseManagedIdentityExtension: true\nuserAssignedIdentityID: 5a1c7f3e-0000-4000-8000-000000000001\nvmType: vmss\n",
        )
        .unwrap();
        assert!(
            matches!(a.identity().unwrap(), Identity::Imds { client_id: Some(ref c) } if c == "5a1c7f3e-0000-4000-8000-000000000001")
        );
        assert_eq!(a.tenant_id.as_deref(), Some("t"));
        let a = parse(r#"{"TenantID":"t","AADClientID":"c","aadclientsecret":"s","UseManagedIdentityExtension":false}"#).unwrap();
        assert!(
            matches!(a.identity().unwrap(), Identity::ClientSecret { ref tenant, ref client_id, .. } if tenant == "t" && client_id == "c")
        );
        // An exact match wins over one that differs only in case.
        let a = parse(r#"{"tenantid":"wrong","tenantId":"right"}"#).unwrap();
        assert_eq!(a.tenant_id.as_deref(), Some("right"));
    }

    #[test]
    fn resource_id_user_assigned_identity_is_kept_whole() {
        let id = "/subscriptions/0000/resourceGroups/MC_rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/agentpool";
        let a = parse(&format!(
            r#"{{"useManagedIdentityExtension":true,"userAssignedIdentityID":"{id}"}}"#
        ))
        .unwrap();
        assert!(
            matches!(a.identity().unwrap(), Identity::Imds { client_id: Some(ref c) } if c == id)
        );
    }

    #[test]
    fn stack_cloud_reads_the_environment_file() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("akscustom.json");
        std::fs::write(
            &env_file,
            r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.contoso.example/","containerRegistryDNSSuffix":".azurecr.contoso.example","resourceManagerEndpoint":"https://management.contoso.example/"}"#,
        )
        .unwrap();
        let a = parse(r#"{"cloud":"AzureStackCloud","useManagedIdentityExtension":true}"#).unwrap();
        let path = env_file.to_str().unwrap();
        let c = a.custom_cloud(Some(path)).unwrap().unwrap();
        assert_eq!(
            c.authority_host.as_deref(),
            Some("https://login.contoso.example")
        );
        assert_eq!(
            c.registry_suffix.as_deref(),
            Some("azurecr.contoso.example")
        );
        assert_eq!(
            a.custom_cloud(None).unwrap(),
            None,
            "no file: the public cloud, as upstream"
        );
        let public = parse(r#"{"cloud":"AzurePublicCloud"}"#).unwrap();
        assert_eq!(public.custom_cloud(Some(path)).unwrap(), None);
        let e = a
            .custom_cloud(Some("/nonexistent/akscustom.json"))
            .unwrap_err();
        assert!(e.contains("cannot read the environment file /nonexistent/akscustom.json (AZURE_ENVIRONMENT_FILEPATH)"), "{e}");
        std::fs::write(
            &env_file,
            r#"{"activeDirectoryEndpoint":"http://login.contoso.example"}"#,
        )
        .unwrap();
        // Not an error of the file: only identities that ask Entra fail for it.
        let c = a.custom_cloud(Some(path)).unwrap().unwrap();
        assert_eq!(c.authority_host, None);
        let e = c.authority_error.unwrap();
        assert!(
            e.contains("activeDirectoryEndpoint must be an https:// URL"),
            "{e}"
        );
        std::fs::write(&env_file, r#"{"containerRegistryDNSSuffix":"com"}"#).unwrap();
        let e = a.custom_cloud(Some(path)).unwrap_err();
        assert!(e.contains("containerRegistryDNSSuffix"), "{e}");
    }

    #[test]
    fn a_fifo_or_a_huge_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("azure.json");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // A blocking open of a FIFO with no writer would never return.
        let e = AzureJson::load(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = CustomCloud::load(&fifo).unwrap_err();
        assert!(
            e.starts_with("cannot read the environment file") && e.contains("not a regular file"),
            "{e}"
        );
        let huge = dir.path().join("huge.json");
        std::fs::write(&huge, vec![b' '; MAX_SIZE as usize + 1]).unwrap();
        let e = AzureJson::load(&huge).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = AzureJson::load(Path::new("/nonexistent/azure.json")).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read /nonexistent/azure.json"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parser_never_panics_and_never_echoes_values(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(e) = AzureJson::parse(&bytes, Path::new("/etc/kubernetes/azure.json")) {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n'));
            }
        }

        /// Every well-formed azure.json, as JSON or as YAML, gives the identity it describes
        /// (the parser cannot pass by refusing everything); the same file with a field of the
        /// wrong type is refused without quoting the secret.
        #[test]
        fn well_formed_files_give_their_identity(
            tenant in "[0-9a-f]{8}-[0-9a-f]{4}",
            client in "[0-9a-f]{8}-[0-9a-f]{4}",
            secret in "[A-Za-z0-9~._-]{8,40}",
            managed in any::<bool>(),
            yaml in any::<bool>(),
            extra in "[a-z]{1,12}",
        ) {
            let doc = serde_json::json!({
                "cloud": "AzurePublicCloud",
                "tenantId": tenant,
                "aadClientId": client,
                "aadClientSecret": secret,
                "useManagedIdentityExtension": managed,
                "userAssignedIdentityID": if managed { client.as_str() } else { "" },
                extra.as_str(): "ignored",
            });
            let text = if yaml {
                doc.as_object().unwrap().iter().map(|(k, v)| format!("{k}: {v}\n")).collect::<String>()
            } else {
                doc.to_string()
            };
            let parsed = AzureJson::parse(text.as_bytes(), Path::new("azure.json"));
            prop_assert!(parsed.is_ok(), "{text}");
            match parsed.unwrap().identity() {
                Ok(Identity::Imds { client_id }) => {
                    prop_assert!(managed);
                    prop_assert_eq!(client_id.as_deref(), Some(client.as_str()));
                }
                Ok(Identity::ClientSecret { tenant: t, client_id, secret: s }) => {
                    prop_assert!(!managed);
                    prop_assert_eq!((t.as_str(), client_id.as_str(), s.expose()), (tenant.as_str(), client.as_str(), secret.as_str()));
                }
                other => prop_assert!(false, "{other:?}"),
            }
            let mut wrong = doc.clone();
            wrong["tenantId"] = 5.into();
            let e = AzureJson::parse(wrong.to_string().as_bytes(), Path::new("azure.json"));
            prop_assert!(e.is_err());
            let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(msg.contains("tenantId must be a string") && !msg.contains(&secret), "{msg}");
        }

        #[test]
        fn secrets_never_reach_errors(secret in "[A-Za-z0-9~._-]{8,40}") {
            let doc = format!(r#"{{"tenantId": 5, "aadClientSecret": "{secret}"}}"#);
            if let Err(e) = AzureJson::parse(doc.as_bytes(), Path::new("a.json")) {
                prop_assert!(!e.to_string().contains(&secret));
            }
        }
    }
}
