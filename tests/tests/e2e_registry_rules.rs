//! One config file, two registries owned by two tenants, each pulled (and pushed) by `skopeo`
//! with its own identity through `docker-credential-acr`; the environment's identity, which has
//! no role on either, is never asked for.

use acr_tests::e2e::{self, REGISTRY, REGISTRY2, TENANT, World, oci};
use acr_tests::emulator::Role;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The second tenant, which owns [`REGISTRY2`].
const TENANT2: &str = "0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5";

#[test]
fn two_registries_of_two_tenants_each_with_its_own_identity_from_one_file() -> TestResult {
    if !e2e::isolated() {
        return Ok(());
    }
    let mut w = World::start(&[REGISTRY, REGISTRY2])?;
    w.emu.set_registry_tenant(REGISTRY, TENANT);
    w.emu.set_registry_tenant(REGISTRY2, TENANT2);
    // Registry 2 takes only ARM-audience tokens, and its rule says so: no refused first try.
    w.emu
        .set_registry_audiences(REGISTRY2, acr_tests::emulator::RegistryAudiences::ArmOnly);
    // The environment's identity: valid, but with no role anywhere.
    let default =
        w.emu
            .add_secret_principal(TENANT, "99999999-9999-9999-9999-999999999999", "env-secret");
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &default.client_id);
    w.set("AZURE_CLIENT_SECRET", "env-secret");
    // Registry 1: a service principal of tenant 1 whose secret is in PROD_ACR_SECRET.
    let prod = w.emu.add_secret_principal(
        TENANT,
        "11111111-1111-1111-1111-111111111111",
        "prod-secret-value",
    );
    w.emu.grant(&prod.client_id, REGISTRY, Role::AcrPush);
    w.set("PROD_ACR_SECRET", "prod-secret-value");
    // Registry 2: a certificate principal of tenant 2, its PEM beside the config file.
    let (team, pair) = w
        .emu
        .add_certificate_principal(TENANT2, "22222222-2222-2222-2222-222222222222")?;
    w.emu.grant(&team.client_id, REGISTRY2, Role::AcrPush);
    let folder = std::path::PathBuf::from(&w.env["XDG_CONFIG_HOME"]).join("docker-credential-acr");
    let rel = folder
        .strip_prefix(w.path(""))
        .map_err(|_| "the config folder is inside the world")?
        .to_string_lossy()
        .into_owned();
    w.write_file(
        &format!("{rel}/team.pem"),
        &format!("{}\n{}", pair.cert_pem, pair.key_pem),
        0o600,
    )?;
    w.write_file(
        &format!("{rel}/config.toml"),
        &format!(
            "# One identity per registry.\n\
             [[registry]]\n\
             match = \"{REGISTRY}\"\n\
             tenant = \"{TENANT}\"\n\
             client_id = \"{}\"\n\
             secret_env = \"PROD_ACR_SECRET\"\n\
             \n\
             [[registry]]\n\
             match = \"{REGISTRY2}\"\n\
             tenant = \"{TENANT2}\"\n\
             client_id = \"{}\"\n\
             certificate = \"team.pem\"\n\
             audience = \"arm\"\n",
            prod.client_id, team.client_id
        ),
        0o600,
    )?;

    for (registry, text) in [(REGISTRY, "prod"), (REGISTRY2, "team")] {
        let layout = w.path(&format!("image-{text}"));
        let image = oci::write_layout(&layout, "1", format!("hello {text}\n").as_bytes())?;
        let reference = format!("{registry}/rules/{text}:1");
        assert_eq!(w.push(&layout, "1", &reference)?, image.manifest_digest);
        let back = w.path(&format!("pulled-{text}"));
        assert_eq!(w.pull(&reference, &back, "1")?, image.manifest_digest);
    }
    let c = w.emu.counters();
    assert_eq!(c.entra_for(&prod.client_id), 1, "{c:?}");
    assert_eq!(c.entra_for(&team.client_id), 1, "{c:?}");
    assert_eq!(c.entra_for(&default.client_id), 0, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY), 1, "{c:?}");
    assert_eq!(c.exchange_for(REGISTRY2), 1, "{c:?}");

    // doctor names the rule and the identity it gives each registry.
    let out = w.helper(&["doctor", REGISTRY2], "")?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("config file: ") && text.contains("(2 registry rules)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rule: {} line 8 (match = \"{REGISTRY2}\")",
            folder.join("config.toml").display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rule's identity: service principal (certificate) (client id {}, tenant {TENANT2})",
            team.client_id
        )),
        "{text}"
    );
    Ok(())
}
