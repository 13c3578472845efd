//! packaging/: the installer run into a temporary root, and the shipped configs checked against
//! what the provider accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(file)
}

fn install(args: &[&str]) -> Output {
    Command::new("sh")
        .arg(packaging("install-node.sh"))
        .arg(format!("--binary={BIN}"))
        .args(args)
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

const FLAGS: &str = "
Set these kubelet flags, then restart the kubelet (systemctl restart kubelet):
  --image-credential-provider-config=/var/lib/kubelet/credential-provider-config.yaml
  --image-credential-provider-bin-dir=/var/lib/kubelet/credential-provider
";

#[test]
fn installer_dry_run_changes_nothing_and_prints_the_flags() {
    let root = tempfile::tempdir().unwrap();
    let out = install(&["--dry-run", "--prefix", root.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.ends_with(FLAGS), "{text}");
    assert!(text.contains("would run: mv -f"), "{text}");
    assert!(files(root.path()).is_empty());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn installer_copies_binary_and_config_and_keeps_the_old_config() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().to_str().unwrap();
    let out = install(&["--prefix", prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with(FLAGS), "{}", stdout(&out));
    let bin = root
        .path()
        .join("var/lib/kubelet/credential-provider/acr-credential-provider");
    let config = root
        .path()
        .join("var/lib/kubelet/credential-provider-config.yaml");
    assert_eq!(
        files(root.path()),
        [
            "var/lib/kubelet/credential-provider/acr-credential-provider",
            "var/lib/kubelet/credential-provider-config.yaml",
        ]
        .map(PathBuf::from)
    );
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(BIN).unwrap());
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(packaging("credential-provider-config.yaml")).unwrap()
    );
    assert_eq!(mode(&config), 0o644);
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(v.status.success());

    // Again, unchanged: no backup.
    let out = install(&["--prefix", prefix]);
    assert!(
        stdout(&out).contains("is already up to date"),
        "{}",
        stdout(&out)
    );
    assert_eq!(files(root.path()).len(), 2);

    // The per-pod variant replaces it; the previous one is kept.
    let out = install(&["--per-pod", "--prefix", prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(packaging("credential-provider-config-per-pod.yaml")).unwrap()
    );
    assert_eq!(
        std::fs::read(config.with_extension("yaml.bak")).unwrap(),
        std::fs::read(packaging("credential-provider-config.yaml")).unwrap()
    );
}

#[test]
fn installer_binary_only_and_custom_paths() {
    let root = tempfile::tempdir().unwrap();
    let out = install(&[
        "--skip-config",
        "--prefix",
        root.path().to_str().unwrap(),
        "--bin-dir=/opt/kubelet/plugins",
        "--config-path",
        "/etc/kubernetes/cp.yaml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        files(root.path()),
        [PathBuf::from("opt/kubelet/plugins/acr-credential-provider")]
    );
    let text = stdout(&out);
    assert!(
        text.contains("--image-credential-provider-config=/etc/kubernetes/cp.yaml\n"),
        "{text}"
    );
    assert!(
        text.contains("--image-credential-provider-bin-dir=/opt/kubelet/plugins\n"),
        "{text}"
    );
}

#[test]
fn installer_refuses_bad_invocations() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().to_str().unwrap();
    for (args, why) in [
        (vec!["--bogus"], "unknown option --bogus"),
        (vec!["--prefix"], "--prefix needs a value"),
        (
            vec!["--bin-dir", "relative"],
            "--bin-dir must be an absolute path",
        ),
        (
            vec!["--binary=/nonexistent/x", "--prefix", prefix],
            "/nonexistent/x does not exist",
        ),
        (
            vec!["--config=/nonexistent/c.yaml", "--prefix", prefix],
            "/nonexistent/c.yaml does not exist",
        ),
    ] {
        let out = install(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert!(files(root.path()).is_empty());
}

/// The args of the provider entry in a shipped config (lines `- ...` under `args:`).
fn config_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t == "args:" {
            inside = true;
            continue;
        }
        if inside {
            if t.starts_with('#') {
                continue;
            }
            match t.strip_prefix("- ") {
                Some(a) => args.push(a.to_string()),
                None => break,
            }
        }
    }
    args
}

#[test]
fn shipped_configs_name_the_provider_and_use_flags_it_accepts() {
    for file in [
        "credential-provider-config.yaml",
        "credential-provider-config-per-pod.yaml",
        "credential-provider-config-identity-bindings.yaml",
    ] {
        let text = std::fs::read_to_string(packaging(file)).unwrap();
        for needle in [
            "apiVersion: kubelet.config.k8s.io/v1\n",
            "kind: CredentialProviderConfig\n",
            "- name: acr-credential-provider\n",
            "apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
            "- \"*.azurecr.io\"\n",
            "- \"*.azurecr.cn\"\n",
            "- \"*.azurecr.us\"\n",
            "- \"*.*.geo.azurecr.io\"\n",
            "defaultCacheDuration: \"10m\"\n",
        ] {
            assert!(text.contains(needle), "{file}: {needle:?}");
        }
        let args = config_args(&text);
        assert_eq!(args[0], "/etc/kubernetes/azure.json", "{file}");
        // The provider takes these args (azure.json replaced by a test file); a non-ACR image
        // needs no identity, so this runs offline.
        let (w, _) = sandbox_with_node_principal();
        let mut run_args: Vec<String> = args[1..].to_vec();
        run_args.push(w.azure_json());
        let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
        let out = w.run(&run_args, &request(V1, "docker.io/library/nginx:1"));
        assert!(out.status.success(), "{file}: {}", stderr(&out));
    }
    let per_pod =
        std::fs::read_to_string(packaging("credential-provider-config-per-pod.yaml")).unwrap();
    for needle in [
        "serviceAccountTokenAudience: api://AzureADTokenExchange\n",
        "requireServiceAccount: false\n",
        "cacheType: ServiceAccount\n",
        "optionalServiceAccountAnnotationKeys:\n",
        &format!("- {CLIENT_ID_ANNOTATION}\n"),
        &format!("- {TENANT_ID_ANNOTATION}\n"),
        "- --fallback-to-node-identity\n",
    ] {
        assert!(per_pod.contains(needle), "{needle:?}");
    }
    // The identity-bindings variant: what AKS's node bootstrap writes.
    let ib = std::fs::read_to_string(packaging(
        "credential-provider-config-identity-bindings.yaml",
    ))
    .unwrap();
    for needle in [
        "serviceAccountTokenAudience: api://AKSIdentityBinding\n",
        "requireServiceAccount: false\n",
        "cacheType: ServiceAccount\n",
        &format!("- {CLIENT_ID_ANNOTATION}\n"),
        "- --ib-sni-name=",
        "- --ib-default-client-id=",
        "- --ib-default-tenant-id=",
        "- --ib-apiserver-ip=",
    ] {
        assert!(ib.contains(needle), "{needle:?}");
    }
}

#[test]
fn daemonset_runs_the_installer_the_image_ships() {
    let ds = std::fs::read_to_string(packaging("daemonset.yaml")).unwrap();
    let dockerfile = std::fs::read_to_string(packaging("Dockerfile")).unwrap();
    for needle in [
        "kind: DaemonSet\n",
        "privileged: true\n",
        "- /opt/acr-credential-provider/install-node.sh\n",
        "- --prefix=/host\n",
        "mountPath: /host/var/lib/kubelet\n",
        "path: /var/lib/kubelet\n",
    ] {
        assert!(ds.contains(needle), "{needle:?}");
    }
    for needle in [
        "packaging/install-node.sh",
        "/opt/acr-credential-provider/acr-credential-provider",
        "packaging/credential-provider-config.yaml",
    ] {
        assert!(dockerfile.contains(needle), "{needle:?}");
    }
}
