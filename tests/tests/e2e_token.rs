//! `docker-credential-acr token`, each output fed to the real tool that consumes it, with no
//! helper in any config those tools read: `skopeo login --password-stdin` (basic and json), and
//! `kubectl create secret docker-registry --dry-run=client -o json` (dockerconfigjson) whose
//! Secret then pulls with skopeo; `--scope` gives an access token that skopeo's
//! `--registry-token` can pull with and not push with.

use acr_tests::e2e::{self, REGISTRY, World, check, oci};
use acr_tests::emulator::Role;
use acr_tests::sandbox::assert_no_secret;
use base64::Engine;
use std::process::Output;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const USERNAME: &str = "00000000-0000-0000-0000-000000000000";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `token` with `args`; checks that it succeeded, that stderr holds no secret, and that
/// stdout is the one answer (ending in one newline).
fn token(w: &World, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let mut all = vec!["token", REGISTRY];
    all.extend(args);
    let out = w.helper(&all, "")?;
    check(&out, &format!("token {args:?}"))?;
    assert_no_secret(&w.emu, &out.stderr, "token's stderr");
    let stdout = text(&out.stdout);
    assert!(
        stdout.ends_with('\n') && !stdout.ends_with("\n\n"),
        "{stdout:?}"
    );
    Ok(stdout.trim_end().to_owned())
}

/// skopeo with the emulator's CA and the auth file `authfile` (and no other credentials).
fn skopeo(
    w: &World,
    authfile: &str,
    args: &[&str],
    stdin: &str,
) -> Result<Output, Box<dyn std::error::Error>> {
    let certs = w.cert_dir().to_string_lossy().into_owned();
    let mut all = vec![args[0]];
    match args[0] {
        "copy" => all.extend([
            "--src-cert-dir",
            &certs,
            "--dest-cert-dir",
            &certs,
            "--src-authfile",
            authfile,
            "--dest-authfile",
            authfile,
        ]),
        _ => all.extend(["--cert-dir", &certs, "--authfile", authfile]),
    }
    all.extend(&args[1..]);
    w.run("skopeo", &all, stdin)
}

/// The digest `skopeo inspect` with `authfile` reports for `reference`.
fn inspect(
    w: &World,
    authfile: &str,
    reference: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let out = skopeo(
        w,
        authfile,
        &["inspect", &format!("docker://{reference}")],
        "",
    )?;
    check(
        &out,
        &format!("skopeo inspect --authfile {authfile} {reference}"),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["Digest"].as_str().ok_or("no Digest")?.to_owned())
}

/// The world with an image pushed through the helper, then Docker's config emptied: from here
/// only the auth files the test writes can authenticate anyone.
fn world_with_image(role: Role) -> Result<(World, String, String), Box<dyn std::error::Error>> {
    let mut w = World::start(&[REGISTRY])?;
    let sp = w.use_secret_principal(Role::AcrPush);
    let layout = w.path("image");
    let image = oci::write_layout(&layout, "1", b"hello from token\n")?;
    let reference = format!("{REGISTRY}/tools/hello:1");
    w.push(&layout, "1", &reference)?;
    w.emu.revoke(&sp.client_id, REGISTRY);
    w.emu.grant(&sp.client_id, REGISTRY, role);
    let docker_config = std::path::PathBuf::from(&w.env["DOCKER_CONFIG"]).join("config.json");
    std::fs::write(&docker_config, "{}")?;
    // The helper's cached token stays: it holds the push role's refresh token. Clear it so each
    // test's tokens are the role's own.
    for f in w.cached_refresh_tokens() {
        std::fs::remove_file(f)?;
    }
    let _ = std::fs::remove_dir_all(w.cache_dir());
    Ok((w, reference, image.manifest_digest))
}

#[test]
fn each_token_output_authenticates_its_real_consumer() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (w, reference, digest) = world_with_image(Role::AcrPull)?;

    // Without credentials skopeo is refused: the auth files below are all that it has.
    let none = w.path("none.json").to_string_lossy().into_owned();
    std::fs::write(&none, "{}")?;
    let refused = skopeo(
        &w,
        &none,
        &["inspect", &format!("docker://{reference}")],
        "",
    )?;
    assert!(!refused.status.success(), "{}", text(&refused.stderr));

    // basic: USERNAME:PASSWORD, the password to `skopeo login --password-stdin`.
    let basic = token(&w, &["--output", "basic"])?;
    let (user, password) = basic.split_once(':').ok_or("no ':' in basic")?;
    assert_eq!(user, USERNAME);
    assert!(!basic.contains('\n'));
    let from_basic = w.path("basic-auth.json").to_string_lossy().into_owned();
    let login = skopeo(
        &w,
        &from_basic,
        &["login", "--username", user, "--password-stdin", REGISTRY],
        password,
    )?;
    check(&login, "skopeo login --password-stdin (basic)")?;
    assert_eq!(inspect(&w, &from_basic, &reference)?, digest);

    // json: the shape of `az acr login --expose-token`.
    let json: serde_json::Value = serde_json::from_str(&token(&w, &["--output", "json"])?)?;
    assert_eq!(json["loginServer"], REGISTRY);
    assert_eq!(json["username"], USERNAME);
    assert_eq!(
        json["accessToken"].as_str(),
        Some(password),
        "the same cached token"
    );
    assert!(json["expiresAt"].as_i64().is_some_and(|e| e > 0), "{json}");
    let from_json = w.path("json-auth.json").to_string_lossy().into_owned();
    let login = skopeo(
        &w,
        &from_json,
        &[
            "login",
            "--username",
            USERNAME,
            "--password-stdin",
            REGISTRY,
        ],
        json["accessToken"].as_str().ok_or("no accessToken")?,
    )?;
    check(&login, "skopeo login --password-stdin (json)")?;
    assert_eq!(inspect(&w, &from_json, &reference)?, digest);

    // dockerconfigjson: kubectl makes the Secret of it; the Secret's data pulls with skopeo.
    let config = token(&w, &["--output", "dockerconfigjson"])?;
    let config_file = w.write_file("dockerconfig.json", &config, 0o600)?;
    let kubectl = e2e::test_tool("kubectl")?;
    let from_file = format!(".dockerconfigjson={}", config_file.display());
    let secret = w.run(
        &kubectl.to_string_lossy(),
        &[
            "create",
            "secret",
            "docker-registry",
            "acr-pull",
            "--from-file",
            &from_file,
            "--dry-run=client",
            "-o",
            "json",
        ],
        "",
    )?;
    check(&secret, "kubectl create secret docker-registry")?;
    let secret: serde_json::Value = serde_json::from_slice(&secret.stdout)?;
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let data = base64::engine::general_purpose::STANDARD.decode(
        secret["data"][".dockerconfigjson"]
            .as_str()
            .ok_or("no .dockerconfigjson in the Secret")?,
    )?;
    let from_secret = w.write_file("secret-auth.json", &text(&data), 0o600)?;
    let from_secret = from_secret.to_string_lossy().into_owned();
    let pulled = w.path("pulled");
    let copy = skopeo(
        &w,
        &from_secret,
        &[
            "copy",
            &format!("docker://{reference}"),
            &format!("oci:{}:1", pulled.display()),
        ],
        "",
    )?;
    check(&copy, "skopeo copy with the Secret's .dockerconfigjson")?;
    assert_eq!(oci::layout_digest(&pulled, "1")?, digest);

    // Nothing of the token reaches stderr even at debug level.
    let mut debug = w.env.clone();
    debug.insert("ACR_LOG".into(), "debug".into());
    let out = acr_tests::sandbox::run(
        &w.bin_dir().join("docker-credential-acr"),
        &debug,
        &["token", REGISTRY, "--output", "basic"],
        "",
    );
    check(&out, "token at debug level")?;
    assert_no_secret(&w.emu, &out.stderr, "token's debug log");
    assert!(
        !text(&out.stderr).contains(password),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_scoped_token_pulls_its_repository_and_nothing_more() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (w, reference, digest) = world_with_image(Role::AcrPush)?;
    let scoped: serde_json::Value =
        serde_json::from_str(&token(&w, &["--scope", "repository:tools/hello:pull"])?)?;
    assert_eq!(scoped["loginServer"], REGISTRY);
    assert_eq!(
        scoped["access"],
        serde_json::json!([{"type": "repository", "name": "tools/hello", "actions": ["pull"]}])
    );
    let bearer = scoped["accessToken"].as_str().ok_or("no accessToken")?;
    assert_eq!(acr_tests::sandbox::claims(bearer)["aud"], REGISTRY);
    let none = w.path("none.json").to_string_lossy().into_owned();
    std::fs::write(&none, "{}")?;

    // skopeo sends it as the bearer token: the repository's image reads.
    let out = skopeo(
        &w,
        &none,
        &[
            "inspect",
            "--registry-token",
            bearer,
            &format!("docker://{reference}"),
        ],
        "",
    )?;
    check(&out, "skopeo inspect --registry-token")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["Digest"], digest.as_str());

    // The identity may push, the token may not.
    let layout = w.path("image");
    let push = skopeo(
        &w,
        &none,
        &[
            "copy",
            "--dest-registry-token",
            bearer,
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{REGISTRY}/tools/hello:2"),
        ],
        "",
    )?;
    assert!(!push.status.success(), "a pull-scoped token pushed");
    let other = skopeo(
        &w,
        &none,
        &[
            "inspect",
            "--registry-token",
            bearer,
            &format!("docker://{REGISTRY}/tools/other:1"),
        ],
        "",
    )?;
    assert!(
        !other.status.success(),
        "a token for tools/hello read tools/other"
    );

    // With pull,push the same identity pushes with a token of its own.
    let both: serde_json::Value = serde_json::from_str(&token(
        &w,
        &["--scope", "repository:tools/hello:pull,push"],
    )?)?;
    let push = skopeo(
        &w,
        &none,
        &[
            "copy",
            "--dest-registry-token",
            both["accessToken"].as_str().ok_or("no accessToken")?,
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{REGISTRY}/tools/hello:2"),
        ],
        "",
    )?;
    check(&push, "skopeo copy --dest-registry-token (pull,push)")?;
    Ok(())
}

/// One line on stderr, nothing on stdout, exit 1.
fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn token_refusals_are_one_line_and_name_the_fix() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (w, _, _) = world_with_image(Role::AcrPull)?;

    // A scope the role does not grant in full: what was granted, and the roles that grant it.
    let out = w.helper(
        &[
            "token",
            REGISTRY,
            "--scope",
            "repository:tools/hello:pull,push",
        ],
        "",
    )?;
    let err = refused(&out);
    assert!(
        err.contains(&format!(
            "{REGISTRY} granted pull on repository tools/hello, not push"
        )) && err.contains("AcrPush")
            && err.contains("Container Registry Repository Writer"),
        "{err}"
    );
    assert_no_secret(&w.emu, &out.stderr, "the refusal");

    for (args, says) in [
        (
            vec!["token", REGISTRY, "--scope", "registry:catalog:*"],
            "only repository scopes are supported",
        ),
        (
            vec![
                "token",
                REGISTRY,
                "--scope",
                "repository:tools/hello:pull",
                "--output",
                "basic",
            ],
            "leave out --scope",
        ),
        (vec!["token", REGISTRY, "--output", "yaml"], "yaml"),
        (vec!["token", "docker.io"], "ACR_LOGIN_SERVERS"),
        (vec!["token"], "REGISTRY"),
    ] {
        let err = refused(&w.helper(&args, "")?);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    Ok(())
}

/// An ABAC-mode registry: the registry role still exchanges, but only repository role
/// assignments give access. skopeo (through the helper) reads the repository the identity has a
/// role on and is refused the other; `doctor REGISTRY/REPOSITORY` and `token --scope` say which
/// role is missing.
#[test]
fn an_abac_registry_grants_by_repository_and_doctor_names_the_missing_role() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let (w, reference, digest) = world_with_image(Role::AcrPush)?;
    // Docker's config names the helper again (world_with_image emptied it).
    let docker_config = std::path::PathBuf::from(&w.env["DOCKER_CONFIG"]).join("config.json");
    std::fs::write(
        &docker_config,
        format!(r#"{{"credHelpers": {{"{REGISTRY}": "acr"}}}}"#),
    )?;
    let layout = w.path("image");
    let other = format!("{REGISTRY}/tools/other:1");
    w.push(&layout, "1", &other)?;
    w.emu.set_abac_mode(REGISTRY, true);
    w.emu
        .grant_repository(e2e::SP_CLIENT_ID, REGISTRY, "tools/hello", Role::AcrPull);

    assert_eq!(w.inspect_digest(&reference)?, digest);
    let denied = w.skopeo(&["inspect", &format!("docker://{other}")])?;
    assert!(!denied.status.success(), "read tools/other without a role");

    let out = w.helper(&["doctor", &format!("{REGISTRY}/tools/other")], "")?;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(
            "  repository tools/other: ERROR the token grants nothing, not pull, push, delete"
        ) && report.contains("az acr show --name myregistry --query roleAssignmentMode")
            && report.contains("\"Container Registry Repository Contributor\" on the repository"),
        "{report}"
    );
    let out = w.helper(&["doctor", &format!("{REGISTRY}/tools/hello")], "")?;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("  repository tools/hello: the token grants pull, not push, delete;"),
        "{report}"
    );

    let out = w.helper(
        &["token", REGISTRY, "--scope", "repository:tools/other:pull"],
        "",
    )?;
    let err = refused(&out);
    assert!(
        err.contains("granted nothing on repository tools/other, not pull")
            && err.contains("\"Container Registry Repository Reader\" on the repository"),
        "{err}"
    );
    Ok(())
}
