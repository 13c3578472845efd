//! Helm v4 (built from helm.sh/helm/v4 by scripts/build-test-tools.sh) reads its own registry
//! config before Docker's: a stale `helm registry login` entry there hides the helper that
//! Docker's config names. `doctor` warns about it with the command that removes it, and
//! `configure-docker --helm` sends Helm to the helper through its own file. Helm's TLS trust is
//! Go's: `SSL_CERT_FILE` (the world's, the emulator's CA).

use acr_tests::e2e::{self, REGISTRY, World, check};
use acr_tests::emulator::Role;
use std::path::PathBuf;
use std::process::Output;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn helm(w: &World, args: &[&str], stdin: &str) -> Result<Output, Box<dyn std::error::Error>> {
    let helm = e2e::test_tool("helm")?;
    w.run(&helm.to_string_lossy(), args, stdin)
}

/// `helm pull` of the chart into a new folder.
fn pull(w: &World, into: &str) -> Result<Output, Box<dyn std::error::Error>> {
    let dest = w.path(into);
    std::fs::create_dir_all(&dest)?;
    let dest = dest.to_string_lossy().into_owned();
    helm(
        w,
        &[
            "pull",
            &format!("oci://{REGISTRY}/charts/hello"),
            "--version",
            "0.1.0",
            "--destination",
            &dest,
        ],
        "",
    )
}

/// The doctor line about Helm's registry config.
fn doctor_helm_line(w: &World) -> Result<String, Box<dyn std::error::Error>> {
    let out = w.helper(&["doctor", REGISTRY], "")?;
    let report = text(&out.stdout);
    Ok(report
        .lines()
        .find(|l| l.trim_start().starts_with("helm: "))
        .ok_or_else(|| format!("no helm line in doctor's report:\n{report}"))?
        .trim()
        .to_owned())
}

#[test]
fn a_stale_helm_login_hides_the_helper_until_doctors_command_removes_it() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY])?;
    w.use_secret_principal(Role::AcrPush);
    let helm_config = PathBuf::from(&w.env["XDG_CONFIG_HOME"]).join("helm/registry/config.json");

    // A chart, pushed through the helper that Docker's config names (Helm's own file is absent,
    // so Helm falls back to Docker's config).
    let charts = w.path("charts");
    std::fs::create_dir_all(&charts)?;
    let dir = charts.to_string_lossy().into_owned();
    let chart = charts.join("hello").to_string_lossy().into_owned();
    check(&helm(&w, &["create", &chart], "")?, "helm create")?;
    check(
        &helm(&w, &["package", &chart, "--destination", &dir], "")?,
        "helm package",
    )?;
    let package = charts
        .join("hello-0.1.0.tgz")
        .to_string_lossy()
        .into_owned();
    let before = w.emu.counters().exchange_for(REGISTRY);
    check(
        &helm(
            &w,
            &["push", &package, &format!("oci://{REGISTRY}/charts")],
            "",
        )?,
        "helm push through Docker's credHelpers",
    )?;
    assert!(
        w.emu.counters().exchange_for(REGISTRY) > before,
        "the helper ran"
    );
    assert!(!helm_config.exists());
    let line = doctor_helm_line(&w)?;
    assert!(
        line.contains("names no helper for it, so Helm reads Docker's config"),
        "{line}"
    );

    // `helm registry login` with a token of `token --output basic`: Helm writes an auths entry
    // into its own file.
    let basic = w.helper(&["token", REGISTRY, "--output", "basic"], "")?;
    check(&basic, "token --output basic")?;
    let basic = text(&basic.stdout);
    let (user, password) = basic.trim_end().split_once(':').ok_or("no ':'")?;
    check(
        &helm(
            &w,
            &[
                "registry",
                "login",
                REGISTRY,
                "--username",
                user,
                "--password-stdin",
            ],
            password,
        )?,
        "helm registry login",
    )?;
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&helm_config)?)?;
    assert!(saved["auths"][REGISTRY].is_object(), "{saved}");

    // Hours later the logged-in token has expired (the emulator's clock moves on; the helper's
    // cache is emptied so that its tokens are new in that time): Helm uses the stale entry and
    // never asks the helper.
    w.emu.set_clock_offset(4 * 3600);
    let _ = std::fs::remove_dir_all(w.cache_dir());
    let before = w.emu.counters().exchange_for(REGISTRY);
    let stale = pull(&w, "pulled-stale")?;
    assert!(!stale.status.success(), "pulled with an expired token");
    assert_eq!(
        w.emu.counters().exchange_for(REGISTRY),
        before,
        "Helm asked the helper"
    );

    // doctor names the entry and the command that removes it.
    let line = doctor_helm_line(&w)?;
    assert_eq!(
        line,
        format!(
            "helm: WARNING {} has an auths entry \"{REGISTRY}\" (a past `helm registry login`) that Helm uses before Docker's config, so the helper is never asked; remove it with `helm registry logout {REGISTRY}`, then run `docker-credential-acr configure-docker --helm --registries {REGISTRY}`",
            helm_config.display()
        )
    );
    let json = w.helper(&["doctor", REGISTRY, "--json"], "")?;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    let files = json.to_string();
    assert!(
        files.contains(&format!("\"remove\":\"helm registry logout {REGISTRY}\"")),
        "{files}"
    );
    e2e::check(
        &w.helper(&["doctor", REGISTRY], "")?,
        "doctor (a warning is no failure)",
    )?;
    // The registry behind the emulator checks access tokens against the machine's clock: the
    // emulator's comes back before the next pulls (the stale entry goes first, so it stays
    // unused), and the helper's tokens of the later hours are dropped.
    w.emu.set_clock_offset(0);
    let _ = std::fs::remove_dir_all(w.cache_dir());

    // The command doctor gave, run: Helm falls back to Docker's config and the helper.
    check(
        &helm(&w, &["registry", "logout", REGISTRY], "")?,
        "helm registry logout",
    )?;
    check(&pull(&w, "pulled-after-logout")?, "helm pull after logout")?;
    assert!(w.emu.counters().exchange_for(REGISTRY) > before);

    // configure-docker --helm: Helm finds the helper in its own file, with Docker's config
    // naming none.
    let out = w.helper(
        &["configure-docker", "--helm", "--registries", REGISTRY],
        "",
    )?;
    check(&out, "configure-docker --helm")?;
    assert!(
        text(&out.stdout).contains(&format!(
            "{}: added credHelpers[\"{REGISTRY}\"] = \"acr\"",
            helm_config.display()
        )),
        "{}",
        text(&out.stdout)
    );
    std::fs::write(
        PathBuf::from(&w.env["DOCKER_CONFIG"]).join("config.json"),
        "{}",
    )?;
    check(&pull(&w, "pulled-configured")?, "helm pull with --helm")?;
    let line = doctor_helm_line(&w)?;
    assert_eq!(
        line,
        format!("helm: {} names this helper", helm_config.display())
    );
    Ok(())
}
