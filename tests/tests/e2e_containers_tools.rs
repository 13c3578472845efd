//! podman and buildah (Debian's packages, with their own copy of containers/image) push and pull
//! through `docker-credential-acr`, found only through the `credHelpers` that
//! `configure-docker --containers` writes into their auth.json: Docker's config names no helper.

use acr_tests::e2e::{self, REGISTRY, World, check, oci};
use acr_tests::emulator::Role;
use std::process::Output;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Points podman and buildah at storage, engine, registry and signature settings inside the
/// world, so nothing of the machine's own `/etc/containers` counts: the vfs driver (works in any
/// namespace), no systemd, no short-name lookups, images accepted unsigned (the policy file is
/// passed to each run by [`tool`]).
fn private_containers_config(w: &mut World) -> TestResult {
    let storage = w.path("containers-storage");
    let files = [
        (
            "storage.conf",
            Some("CONTAINERS_STORAGE_CONF"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                storage.join("graph").display(),
                storage.join("run").display()
            ),
        ),
        (
            "containers.conf",
            Some("CONTAINERS_CONF"),
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\ntmp_dir = \"{}\"\n",
                w.path("containers/events.log").display(),
                w.path("containers/tmp").display()
            ),
        ),
        (
            "registries.conf",
            Some("CONTAINERS_REGISTRIES_CONF"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n".to_owned(),
        ),
        (
            "policy.json",
            None,
            r#"{"default": [{"type": "insecureAcceptAnything"}]}"#.to_owned(),
        ),
    ];
    for (name, variable, content) in files {
        let path = w.write_file(&format!("containers/{name}"), &content, 0o644)?;
        if let Some(variable) = variable {
            w.set(variable, &path.to_string_lossy());
        }
    }
    Ok(())
}

/// Runs `tool` (podman or buildah) with `args`, trusting the emulator's CA and with the world's
/// signature policy.
fn tool(
    w: &World,
    tool: &str,
    cmd: &str,
    args: &[&str],
) -> Result<Output, Box<dyn std::error::Error>> {
    let certs = w.cert_dir().to_string_lossy().into_owned();
    let policy = w
        .path("containers/policy.json")
        .to_string_lossy()
        .into_owned();
    let mut all = vec![cmd, "--cert-dir", &certs, "--signature-policy", &policy];
    all.extend(args);
    w.run(tool, &all, "")
}

#[test]
fn podman_and_buildah_push_and_pull_through_the_helper() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    let sp = w.use_secret_principal(Role::AcrPush);
    private_containers_config(&mut w)?;

    // An image in the registry (skopeo, through Docker's credHelpers as the world starts).
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"hello from the containers tools\n")?;
    let first = format!("{REGISTRY}/tools/hello:1");
    w.push(&layout, "1", &first)?;
    let image_id = image.config_digest.trim_start_matches("sha256:").to_owned();

    // Docker's config names no helper now: podman has no credentials, and the registry's token
    // service refuses it (401, ACR's "authentication required").
    let docker_config = std::path::PathBuf::from(&w.env["DOCKER_CONFIG"]).join("config.json");
    std::fs::write(&docker_config, "{}")?;
    let before = w.emu.counters();
    let refused = tool(&w, "podman", "pull", &[&format!("docker://{first}")])?;
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && said.contains(
                "unauthorized: authentication required, visit https://aka.ms/acr/authorization"
            ),
        "podman was not refused by the registry ({}): {said}",
        refused.status
    );
    let after = w.emu.counters();
    assert!(
        after.acr_token_for(REGISTRY) > before.acr_token_for(REGISTRY),
        "podman asked the token service: {after:?}"
    );
    assert_eq!(
        after.exchange_for(REGISTRY),
        before.exchange_for(REGISTRY),
        "no helper ran"
    );

    // doctor says which file names no helper, and the command that fixes it.
    let auth_file =
        std::path::PathBuf::from(&w.env["XDG_CONFIG_HOME"]).join("containers/auth.json");
    let clients_line =
        |names: &str| format!("podman, buildah, skopeo: {} {names}", auth_file.display());
    let out = w.helper(&["doctor", REGISTRY], "")?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&clients_line(&format!(
            "names no helper for it; run `docker-credential-acr configure-docker --containers --registries {REGISTRY}`"
        ))),
        "{text}"
    );

    // configure-docker --containers, with Docker's config elsewhere so that only the containers
    // auth file can lead podman and buildah to the helper.
    let mut configure = w.env.clone();
    configure.insert(
        "DOCKER_CONFIG".into(),
        w.path("other-docker").to_string_lossy().into_owned(),
    );
    let out = acr_tests::sandbox::run(
        &w.bin_dir().join("docker-credential-acr"),
        &configure,
        &["configure-docker", "--containers", "--registries", REGISTRY],
        "",
    );
    check(&out, "configure-docker --containers")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{}: added credHelpers[\"{REGISTRY}\"] = \"acr\"",
            auth_file.display()
        )),
        "{stdout}"
    );
    let auth: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth_file)?)?;
    assert_eq!(auth["credHelpers"][REGISTRY], "acr", "{auth}");
    assert_eq!(std::fs::read_to_string(&docker_config)?, "{}");
    let out = w.helper(&["doctor", REGISTRY], "")?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&clients_line("names this helper")), "{text}");

    // Forget the tokens skopeo's and doctor's runs cached, so the tools' runs of the helper show
    // as requests.
    std::fs::remove_dir_all(w.cache_dir())?;
    let exchanges = w.emu.counters().exchange_for(REGISTRY);
    let entra = w.emu.counters().entra_for(&sp.client_id);

    // podman pulls the image and pushes it under another tag; buildah pulls that and pushes it
    // under a third; skopeo reads the third. Each image keeps its config, so its ID.
    let out = tool(&w, "podman", "pull", &[&format!("docker://{first}")])?;
    check(&out, "podman pull")?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&image_id),
        "podman pulled the image"
    );
    let by_podman = format!("{REGISTRY}/tools/hello:podman");
    check(
        &tool(
            &w,
            "podman",
            "push",
            &[&image_id, &format!("docker://{by_podman}")],
        )?,
        "podman push",
    )?;
    let out = tool(&w, "buildah", "pull", &[&format!("docker://{by_podman}")])?;
    check(&out, "buildah pull")?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&image_id),
        "buildah pulled the image"
    );
    let by_buildah = format!("{REGISTRY}/tools/hello:buildah");
    check(
        &tool(
            &w,
            "buildah",
            "push",
            &[&image_id, &format!("docker://{by_buildah}")],
        )?,
        "buildah push",
    )?;
    let out = w.skopeo(&["inspect", "--config", &format!("docker://{by_buildah}")])?;
    check(&out, "skopeo inspect --config")?;

    let c = w.emu.counters();
    assert_eq!(
        c.exchange_for(REGISTRY),
        exchanges + 1,
        "the tools' runs of the helper exchanged once, then used its cache: {c:?}"
    );
    assert_eq!(c.entra_for(&sp.client_id), entra + 1, "{c:?}");
    Ok(())
}
