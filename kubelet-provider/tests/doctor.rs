//! `--doctor`: the real binary, run with a node's provider arguments against the emulator. A
//! working node and each broken one, in text and JSON, never a secret, never reading stdin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::sandbox::assert_no_secret;
use serde_json::{Value, json};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs `args` and checks the run printed no secret on stdout (`Sandbox::run` checks stderr).
/// The node's service principal derives tokens (`--exchange-sp-secret`), so the challenge and
/// token checks are what a request does; `a_service_principal_node_answers_without_a_request`
/// checks the AKS plugin's answer.
fn doctor(w: &Sandbox, args: &[&str]) -> Output {
    let mut args = args.to_vec();
    args.push(EXCHANGE);
    doctor_as_given(w, &args)
}

/// [`doctor`] with exactly `args`.
fn doctor_as_given(w: &Sandbox, args: &[&str]) -> Output {
    let o = w.run(args, "");
    assert_no_secret(&w.emu, &o.stdout, &format!("stdout of --doctor {args:?}"));
    assert!(!stdout(&o).contains(NODE_SECRET), "{}", stdout(&o));
    o
}

/// A failed doctor run: status 1, and the report names the failure.
fn failed(o: &Output) -> String {
    let out = stdout(o);
    assert_eq!(o.status.code(), Some(1), "{out}\nstderr: {}", stderr(o));
    assert!(
        out.ends_with("result: a pull would fail; see the ERROR lines\n"),
        "{out}"
    );
    out
}

/// The line of `out` that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

#[test]
fn a_working_node_is_explained_and_its_token_is_the_one_a_request_gets() {
    let (w, node) = sandbox_with_node_principal();
    let image = format!("{}/team/app:1.0", w.registry);
    let azure_json = w.azure_json();
    let o = doctor(&w, &[&azure_json, &format!("--doctor={image}")]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\nstderr: {}", stderr(&o));
    assert_eq!(
        line(&out, "azure.json: "),
        format!(
            "azure.json: {azure_json} (cloud=AzurePublicCloud, tenantId={TENANT}, aadClientId={NODE_CLIENT}, aadClientSecret=(set, hidden), useManagedIdentityExtension=false)"
        )
    );
    assert_eq!(
        line(&out, "identity: "),
        format!(
            "identity: service principal (secret) (client id {}, tenant {TENANT}), from {azure_json}",
            node.client_id
        )
    );
    // azure.json replaces the environment's chain: nothing was skipped.
    assert!(!out.contains("\nskipped "), "{out}");
    assert_eq!(
        line(&out, "image: "),
        format!("image: {image}: registry {}", w.registry)
    );
    assert_eq!(
        line(&out, "cache folder: "),
        format!("cache folder: {} (ok)", w.cache_dir().display())
    );
    assert_eq!(
        line(&out, "registry: "),
        format!(
            "registry: {} (Entra authority {})",
            w.registry,
            w.emu.base_url()
        )
    );
    assert!(
        line(&out, "  challenge: ").starts_with("  challenge: ok, token service https://"),
        "{out}"
    );
    assert!(
        line(&out, "  token: ").starts_with("  token: ok, expires in "),
        "{out}"
    );
    assert!(
        line(&out, "pods: ").contains(&format!("default tenant {TENANT}"))
            && line(&out, "pods: ").ends_with("are refused (no --fallback-to-node-identity)"),
        "{out}"
    );
    assert!(out.ends_with("result: ok\n"), "{out}");
    assert!(!out.contains("ERROR"), "{out}");
    // The token check really went to Entra and the registry, as the node identity.
    let c = w.emu.counters();
    assert_eq!((c.entra_for(NODE_CLIENT), c.exchange()), (1, 1), "{c:?}");

    // A real request with the same arguments is answered from the cache the doctor filled: the
    // doctor used the same folder, identity and authority.
    w.emu.reset_counters();
    let r = response(&w.run(&[&azure_json, EXCHANGE], &request(V1, &image)));
    assert_eq!(w.emu.counters().total(), 0, "{:?}", w.emu.counters());
    let password = r["auth"][&w.registry]["password"].as_str().unwrap();
    assert_eq!(claims(password)["appid"], NODE_CLIENT);

    // The JSON report says the same, for scripts; a second run lists the cached token.
    let o = doctor(
        &w,
        &[
            "--json",
            "--fallback-to-node-identity",
            &azure_json,
            &format!("--doctor={image}"),
        ],
    );
    assert!(o.status.success(), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["azure_json"]["path"], azure_json.as_str());
    assert_eq!(
        v["azure_json"]["fields"]["aadClientSecret"],
        "(set, hidden)"
    );
    assert_eq!(v["azure_json"]["fields"]["tenantId"], TENANT);
    assert_eq!(
        v["azure_json"]["fields"]["useManagedIdentityExtension"],
        false
    );
    assert_eq!(v["identity"]["client_id"], NODE_CLIENT);
    assert_eq!(v["identity"]["from"], azure_json.as_str());
    assert_eq!(v["image"]["registry_host"], w.registry.as_str());
    assert_eq!(v["image"]["mirrored_to"], Value::Null);
    assert_eq!(v["registry"]["login_server"], w.registry.as_str());
    assert_eq!(v["registry"]["token"]["ok"], true);
    assert_eq!(v["pods"]["fallback_to_node_identity"], true);
    assert_eq!(v["cache_usable"], true);
    let cached = v["cached"].as_array().unwrap();
    assert_eq!(cached.len(), 1, "{v}");
    assert_eq!(cached[0]["login_server"], w.registry.as_str());
    assert_eq!(
        cached[0]["identity"],
        format!("service principal (secret) {NODE_CLIENT}")
    );
}

#[test]
fn mirrors_and_cache_dir_are_honoured_as_a_request_would() {
    let (w, _) = sandbox_with_node_principal();
    let azure_json = w.azure_json();
    let other = w.path("other-cache");
    let mirror = format!("--registry-mirror=mcr.microsoft.com:{}", w.registry);
    let o = doctor(
        &w,
        &[
            &azure_json,
            &mirror,
            "--cache-dir",
            other.to_str().unwrap(),
            "--doctor=MCR.microsoft.com/dotnet/runtime:8.0",
        ],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        line(&out, "mirror: "),
        format!(
            "mirror: images on mcr.microsoft.com are pulled with the credentials of {}",
            w.registry
        )
    );
    assert_eq!(
        line(&out, "image: "),
        format!(
            "image: MCR.microsoft.com/dotnet/runtime:8.0: registry MCR.microsoft.com, mirrored to {0} (--registry-mirror): pulled with the credentials of {0}",
            w.registry
        )
    );
    assert_eq!(
        line(&out, "registry: "),
        format!(
            "registry: {} (Entra authority {})",
            w.registry,
            w.emu.base_url()
        )
    );
    assert!(line(&out, "  token: ").starts_with("  token: ok"), "{out}");
    // --cache-dir wins over ACR_CACHE_DIR, as for a request.
    assert_eq!(
        line(&out, "cache folder: "),
        format!("cache folder: {} (ok)", other.display())
    );
    assert!(std::fs::read_dir(&other).unwrap().count() > 0);
    assert!(!w.cache_dir().exists(), "ACR_CACHE_DIR was not used");

    // A mirror whose destination is not ACR fails as the provider itself would.
    let o = doctor(
        &w,
        &[
            &azure_json,
            "--registry-mirror=mcr.microsoft.com:quay.io",
            "--doctor=mcr.microsoft.com/dotnet/runtime:8.0",
        ],
    );
    let out = failed(&o);
    assert!(
        line(&out, "mirror mcr.microsoft.com: ").starts_with(
            "mirror mcr.microsoft.com: ERROR --registry-mirror destination quay.io is not an Azure Container Registry login server"
        ),
        "{out}"
    );
    // A mirror value that cannot be read.
    let o = doctor(
        &w,
        &[&azure_json, "--registry-mirror=a.example", "--doctor"],
    );
    let out = failed(&o);
    assert!(
        line(&out, "mirrors: ").starts_with(
            "mirrors: ERROR --registry-mirror entry \"a.example\": expected <source>:<destination>"
        ),
        "{out}"
    );
}

#[test]
fn a_broken_azure_json_is_named_and_never_quoted() {
    let (w, _) = sandbox_with_node_principal();
    let image = format!("--doctor={}/app:1", w.registry);

    // Missing file.
    let missing = w.path("nowhere/azure.json");
    let missing = missing.to_str().unwrap();
    let out = failed(&doctor(&w, &[missing, &image]));
    assert!(
        line(&out, "azure.json: ").starts_with(&format!(
            "azure.json: ERROR cannot read {missing}: the file does not exist"
        )),
        "{out}"
    );
    assert!(
        line(&out, "identity: ").starts_with(
            "identity: ERROR none, the node identity comes from azure.json: cannot read"
        ),
        "{out}"
    );
    // The rest is still checked: the registry answers, no token without an identity.
    assert!(
        line(&out, "  challenge: ").starts_with("  challenge: ok"),
        "{out}"
    );
    assert!(!out.contains("  token: "), "{out}");

    // Not JSON (and holding the secret, which must not be echoed).
    w.write(
        "azure.json",
        &format!(r#"{{"aadClientSecret": "{NODE_SECRET}", "tenantId": "#),
    );
    let out = failed(&doctor(&w, &[&w.azure_json(), &image]));
    assert!(
        line(&out, "azure.json: ").starts_with(&format!(
            "azure.json: ERROR {}: not valid JSON",
            w.azure_json()
        )),
        "{out}"
    );

    // Valid JSON, incomplete service principal.
    w.write(
        "azure.json",
        &json!({"aadClientId": NODE_CLIENT, "aadClientSecret": NODE_SECRET}).to_string(),
    );
    let o = doctor(&w, &[&w.azure_json(), &image, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["azure_json"]["fields"]["aadClientSecret"],
        "(set, hidden)"
    );
    assert_eq!(
        v["identity"]["error"],
        format!(
            "{}: neither useManagedIdentityExtension is true nor a service principal is complete (missing tenantId)",
            w.azure_json()
        )
    );
    assert!(v["registry"]["challenge"]["realm"].is_string(), "{v}");
}

#[test]
fn an_identity_without_acrpull_is_refused_and_says_which_role() {
    let w = sandbox();
    let client = "66666666-6666-6666-6666-666666666666";
    let secret = "no-role-node-secret-2";
    w.emu.add_secret_principal(TENANT, client, secret);
    w.write(
        "azure.json",
        &json!({"tenantId": TENANT, "aadClientId": client, "aadClientSecret": secret}).to_string(),
    );
    let o = doctor(
        &w,
        &[&w.azure_json(), &format!("--doctor={}/app:1", w.registry)],
    );
    let out = failed(&o);
    assert!(!out.contains(secret), "{out}");
    assert!(
        line(&out, "  challenge: ").starts_with("  challenge: ok"),
        "{out}"
    );
    let token = line(&out, "  token: ");
    for part in [
        "  token: ERROR ",
        &w.registry,
        &format!("refused the token of service principal (secret) {client}"),
        "grant it AcrPull",
    ] {
        assert!(token.contains(part), "{part:?} in {token}");
    }
    // The same in JSON.
    let o = doctor(
        &w,
        &[
            "--json",
            &w.azure_json(),
            &format!("--doctor={}/app:1", w.registry),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["registry"]["token"]["ok"], false);
    assert!(
        v["registry"]["token"]["error"]
            .as_str()
            .unwrap()
            .contains("AcrPull"),
        "{v}"
    );
}

#[test]
fn unreachable_and_non_acr_registries_fail() {
    let (mut w, _) = sandbox_with_node_principal();
    let azure_json = w.azure_json();

    // A registry that does not answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("127.0.0.1:{closed}");
    w.set("ACR_LOGIN_SERVERS", &format!("{},{dead}", w.registry));
    w.set("ACR_TIMEOUT", "3");
    let out = failed(&doctor(&w, &[&azure_json, &format!("--doctor={dead}")]));
    assert_eq!(
        line(&out, "image: "),
        format!("image: {dead}: registry {dead}")
    );
    assert!(
        line(&out, "  challenge: ").starts_with("  challenge: ERROR "),
        "{out}"
    );

    // An image on a host that is not ACR: the provider would give it no credentials.
    w.emu.reset_counters();
    let out = failed(&doctor(&w, &[&azure_json, "--doctor=ghcr.io/org/app:1"]));
    assert!(
        line(&out, "registry ghcr.io: ")
            .starts_with("registry ghcr.io: ERROR not an Azure Container Registry login server")
            && out.contains("or map it to one with --registry-mirror"),
        "{out}"
    );
    assert_eq!(w.emu.counters().total(), 0, "no request for a non-ACR host");

    // A Docker Hub image names no registry at all.
    let out = failed(&doctor(&w, &[&azure_json, "--doctor=library/nginx:1.27"]));
    assert!(
        line(&out, "image library/nginx:1.27: ")
            .starts_with("image library/nginx:1.27: ERROR it names no registry host"),
        "{out}"
    );
    assert!(!out.contains("\nregistry"), "{out}");
}

#[test]
fn an_unusable_cache_folder_fails_with_the_reason() {
    let (w, _) = sandbox_with_node_principal();
    // A file where the cache folder should be.
    let in_the_way = w.path("not-a-folder");
    std::fs::write(&in_the_way, "").unwrap();
    let dir = in_the_way.to_str().unwrap();
    let o = doctor(
        &w,
        &[
            &w.azure_json(),
            "--cache-dir",
            dir,
            &format!("--doctor={}/app:1", w.registry),
        ],
    );
    let out = failed(&o);
    assert_eq!(
        line(&out, "cache folder: "),
        format!(
            "cache folder: {dir}: ERROR refusing to use {dir}: not a real folder (a symlink or a file is in the way); tokens would not be cached, so every pull would ask Entra and the registry; fix the folder or choose another with --cache-dir"
        )
    );
    // Everything else works: the cache is the only failure.
    assert_eq!(out.matches(": ERROR ").count(), 1, "{out}");
    assert!(line(&out, "  token: ").starts_with("  token: ok"), "{out}");
}

#[test]
fn without_azure_json_the_environment_chain_is_explained() {
    // No identity anywhere: every source and what it lacked.
    let w = sandbox();
    let out = failed(&doctor(&w, &["--doctor"]));
    assert_eq!(
        line(&out, "azure.json: "),
        "azure.json: none given (no AZURE_JSON argument); the node identity comes from the environment"
    );
    assert_eq!(
        line(&out, "skipped service principal (secret): "),
        "skipped service principal (secret): AZURE_CLIENT_SECRET is not set"
    );
    assert!(
        line(&out, "identity: ").starts_with("identity: ERROR no Azure identity found"),
        "{out}"
    );
    assert!(
        !out.contains("\nregistry"),
        "no registry was asked about: {out}"
    );
    // A service principal in the environment: the chain's choice, not from a file.
    let (w, p) = acr_tests::sandbox::Sandbox::with_secret_principal(BIN);
    let o = doctor(&w, &[&format!("--doctor={}", w.registry2)]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("  AZURE_CLIENT_SECRET=(set, hidden)\n"),
        "{out}"
    );
    assert_eq!(
        line(&out, "identity: "),
        format!(
            "identity: service principal (secret) (client id {}, tenant {TENANT})",
            p.client_id
        )
    );
    assert!(line(&out, "  token: ").starts_with("  token: ok"), "{out}");
    // A bad setting stops the checks, but azure.json is still reported.
    let mut w = w;
    w.set("ACR_TIMEOUT", "soon");
    let out = failed(&doctor(&w, &["--doctor"]));
    assert!(
        out.starts_with("configuration: ERROR invalid configuration: ACR_TIMEOUT=\"soon\""),
        "{out}"
    );
    assert!(out.contains("\nazure.json: none given"), "{out}");
}

#[test]
fn doctor_reads_no_stdin_and_the_flags_have_one_shape() {
    let (w, _) = sandbox_with_node_principal();
    let azure_json = w.azure_json();
    // stdin stays open and empty: a doctor that read it would never finish.
    let mut child = acr_tests::sandbox::spawn(&w.bin, &w.env, &["--doctor", &azure_json]);
    let stdin = child.stdin.take();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "--doctor waited for stdin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    // `--doctor PATH` is the flag without a value, then the AZURE_JSON argument.
    assert!(
        out.contains(&format!("\nazure.json: {azure_json} (")),
        "{out}"
    );
    assert!(!out.contains("\nimage"), "{out}");
    assert_no_secret(&w.emu, &o.stdout, "stdout of --doctor");

    // --json belongs to --doctor.
    let err = failure(&w.run(&["--json", &azure_json], &request(V1, "x.azurecr.io/a")));
    assert_eq!(
        err,
        "acr-credential-provider: error: the following required arguments were not provided: --doctor[=<IMAGE_OR_REGISTRY>]; run with --help for usage\n"
    );
}

/// azure.json naming a cloud the provider does not know, with no `AZURE_AUTHORITY_HOST`: the
/// report and the warning say which authority is used (the identity's cloud chooses it, never the
/// registry's domain).
#[test]
fn an_unknown_cloud_in_azure_json_says_which_authority_is_used() {
    let (mut w, _) = sandbox_with_node_principal();
    w.unset("AZURE_AUTHORITY_HOST");
    w.write(
        "azure.json",
        &json!({"cloud": "AzureMarsCloud", "tenantId": TENANT, "aadClientId": NODE_CLIENT,
                "aadClientSecret": NODE_SECRET, "useManagedIdentityExtension": false})
        .to_string(),
    );
    let azure_json = w.azure_json();
    let o = doctor(&w, &[&azure_json, "--doctor"]);
    let out = stdout(&o);
    let want = "is unknown, so the Entra authority is ACR_CLOUD's, else the public cloud's (set AZURE_AUTHORITY_HOST or ACR_CLOUD)";
    assert!(line(&out, "azure.json: ").ends_with(want), "{out}");
    // A request (for an image that is not ACR's: nothing is sent anywhere) warns the same way.
    let o = w.run(&[&azure_json], &request(V1, "docker.io/library/alpine:3"));
    let err = stderr(&o);
    assert!(
        err.contains("\"AzureMarsCloud\"") && err.contains(want),
        "{err}"
    );
    assert!(!out.contains("registry's domain") && !err.contains("registry's domain"));
}

/// A service-principal node without `--exchange-sp-secret` answers the principal's id and secret
/// and makes no request, so the report says that and checks no challenge or token.
#[test]
fn a_service_principal_node_answers_without_a_request() {
    let (w, node) = sandbox_with_node_principal();
    let image = format!("{}/app:1", w.registry);
    let o = doctor_as_given(&w, &[&w.azure_json(), &format!("--doctor={image}")]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        line(&out, "node answer: "),
        format!(
            "node answer: service principal {}'s id and secret for *.azurecr.io, *.azurecr.cn, *.azurecr.de, *.azurecr.us (no request; the registry checks them; --exchange-sp-secret answers a derived token instead)",
            node.client_id
        )
    );
    assert!(!out.contains("\nregistry: "), "{out}");
    assert_eq!(w.emu.counters().total(), 0, "{:?}", w.emu.counters());
    // Without the secret, the answer would carry an empty password: a failure to fix.
    w.write(
        "nosecret.json",
        &format!("{{\"aadClientId\": \"{NODE_CLIENT}\"}}"),
    );
    let nosecret = w.path("nosecret.json");
    let out = failed(&doctor_as_given(
        &w,
        &[nosecret.to_str().unwrap(), &format!("--doctor={image}")],
    ));
    assert!(
        line(&out, "node answer: ")
            .ends_with("ERROR azure.json has no aadClientSecret, so the password is empty"),
        "{out}"
    );
}
