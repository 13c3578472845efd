//! The real `acr-credential-provider` binary, fed the documents the kubelet writes, against an
//! HTTPS emulator of Entra and ACR. Responses are checked field by field, and the returned
//! username and password are used with the registry's token service as a registry client would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::Role;
use serde_json::Value;

/// Checks every field of a response carrying a fresh credential for `login_server`, keyed by
/// `keys`; returns the password.
fn check_response(r: &Value, version: &str, keys: &[&str], login_server: &str) -> String {
    let object = r.as_object().unwrap();
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "apiVersion",
            "auth",
            "cacheDuration",
            "cacheKeyType",
            "kind"
        ],
        "{r}"
    );
    assert_eq!(r["apiVersion"], version);
    assert_eq!(r["kind"], "CredentialProviderResponse");
    assert_eq!(r["cacheKeyType"], "Registry");
    let auth = r["auth"].as_object().unwrap();
    let mut got: Vec<&str> = auth.keys().map(String::as_str).collect();
    got.sort_unstable();
    // Every ACR answer also carries the AKS plugin's anonymous fallback entry.
    let mut want = keys.to_vec();
    want.push("*.azurecr.*");
    want.sort_unstable();
    assert_eq!(got, want, "{r}");
    assert_eq!(
        auth["*.azurecr.*"],
        serde_json::json!({"username": "", "password": ""}),
        "{r}"
    );
    let password = auth[keys[0]]["password"].as_str().unwrap().to_string();
    for key in keys {
        let entry = auth[*key].as_object().unwrap();
        assert_eq!(entry.len(), 2, "{r}");
        assert_eq!(entry["username"], USERNAME);
        assert_eq!(entry["password"], password.as_str());
    }
    // The password is an ACR refresh token for the login server.
    let c = claims(&password);
    assert_eq!(c["aud"], login_server, "{c}");
    assert_eq!(c["grant_type"], "refresh_token", "{c}");
    // cacheDuration: the AKS plugin's five minutes, never past the refresh point (a third of
    // the 3 h lifetime before expiry), so exactly 5m0s for a fresh token.
    let exp = c["exp"].as_i64().unwrap();
    let iat = c["iat"].as_i64().unwrap();
    let duration = go_seconds(r["cacheDuration"].as_str().unwrap()) as i64;
    let refresh_point = exp - (exp - iat) / 3 - unix_now();
    assert!(refresh_point > 300, "{refresh_point}");
    assert_eq!(
        r["cacheDuration"], "5m0s",
        "refresh point in {refresh_point}s"
    );
    assert_eq!(duration, 300);
    password
}

#[test]
fn azure_json_service_principal_answers_every_api_version() {
    let (w, node) = sandbox_with_node_principal();
    let image = format!("{}/team/app:1.0", w.registry);
    let mut passwords = Vec::new();
    for version in [V1, V1BETA1, V1ALPHA1] {
        let out = w.run(&[&w.azure_json(), EXCHANGE], &request(version, &image));
        assert_eq!(stderr(&out), "", "nothing on stderr");
        let r = response(&out);
        let password = check_response(&r, version, &[&w.registry], &w.registry);
        assert_eq!(claims(&password)["appid"], node.client_id.as_str());
        passwords.push(password);
        let text = stdout(&out);
        assert!(!text.contains(NODE_SECRET));
    }
    // One fetch; the other two runs were answered from the cache.
    assert!(passwords.iter().all(|p| *p == passwords[0]));
    let c = w.emu.counters();
    assert_eq!((c.entra(), c.exchange()), (1, 1), "{c:?}");
    // The registry takes the answer as username and password.
    w.check_pull(&w.registry, USERNAME, &passwords[0], "team/app");
    // The exact shape of the document, with the variable parts put back.
    let out = w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image));
    let r = response(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "{{\"apiVersion\":\"{V1}\",\"kind\":\"CredentialProviderResponse\",\"cacheKeyType\":\"Registry\",\"cacheDuration\":\"{}\",\"auth\":{{\"*.azurecr.*\":{{\"username\":\"\",\"password\":\"\"}},\"{}\":{{\"username\":\"{USERNAME}\",\"password\":\"{}\"}}}}}}\n",
            r["cacheDuration"].as_str().unwrap(),
            w.registry,
            passwords[0]
        )
    );
}

/// A service-principal node answers as the AKS plugin: its id and secret for every ACR domain,
/// five minutes, with no request at all (cloud-provider-azure v1.35.3
/// pkg/credentialprovider/azure_credentials.go:230-256).
#[test]
fn service_principal_node_answers_its_id_and_secret_without_any_request() {
    let (w, node) = sandbox_with_node_principal();
    let image = format!("{}/team/app:1.0", w.registry);
    let out = w.run(&[&w.azure_json()], &request(V1, &image));
    let r = response(&out);
    assert_eq!(w.emu.counters().total(), 0, "{:?}", w.emu.counters());
    assert_eq!(r["cacheDuration"], "5m0s", "{r}");
    assert_eq!(r["cacheKeyType"], "Registry", "{r}");
    let auth = r["auth"].as_object().unwrap();
    let keys: Vec<&str> = auth.keys().map(String::as_str).collect();
    // The sandbox's registry (localhost:PORT) is matched by none of the ACR patterns, so it is
    // answered too (as a geo-replica would be).
    let mut want = vec![
        "*.azurecr.*",
        "*.azurecr.cn",
        "*.azurecr.de",
        "*.azurecr.io",
        "*.azurecr.us",
        w.registry.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "{r}");
    for key in want.iter().filter(|k| **k != "*.azurecr.*") {
        assert_eq!(auth[*key]["username"], node.client_id.as_str(), "{key}");
        assert_eq!(auth[*key]["password"], NODE_SECRET, "{key}");
    }
    assert_eq!(
        auth["*.azurecr.*"],
        serde_json::json!({"username": "", "password": ""})
    );
    assert_eq!(stderr(&out), "");
    // The registry checks the id and secret itself.
    w.check_pull(&w.registry, &node.client_id, NODE_SECRET, "team/app");
}

#[test]
fn cache_hit_makes_no_request_and_five_minutes_each_time() {
    let (w, _) = sandbox_with_node_principal();
    let image = format!("{}/app@sha256:{}", w.registry, "a".repeat(64));
    let first = response(&w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image)));
    w.emu.reset_counters();
    let second = response(&w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image)));
    assert_eq!(w.emu.counters().total(), 0, "{:?}", w.emu.counters());
    assert_eq!(
        first["auth"][&w.registry]["password"],
        second["auth"][&w.registry]["password"]
    );
    // Five minutes each time while the token is far from its refresh point (the countdown to
    // that point is a unit test of `provider::cache_duration`).
    assert_eq!(first["cacheDuration"], "5m0s");
    assert_eq!(second["cacheDuration"], "5m0s");
    // The cache is where ACR_CACHE_DIR says, and --cache-dir overrides it.
    assert!(std::fs::read_dir(w.cache_dir()).unwrap().count() > 0);
    let other = w.path("other-cache");
    let out = w.run(
        &[
            "--cache-dir",
            other.to_str().unwrap(),
            &w.azure_json(),
            EXCHANGE,
        ],
        &request(V1, &image),
    );
    response(&out);
    assert_eq!(w.emu.counters().exchange(), 1, "a cold cache fetched");
    assert!(std::fs::read_dir(&other).unwrap().count() > 0);
}

#[test]
fn sixteen_concurrent_cold_processes_make_one_entra_request_and_one_exchange() {
    let (w, _) = sandbox_with_node_principal();
    let doc = request(V1, &format!("{}/app:1", w.registry));
    let azure_json = w.azure_json();
    let children: Vec<_> = (0..16)
        .map(|_| w.spawn(&[&azure_json, EXCHANGE], &doc))
        .collect();
    let passwords: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let r = response(&out);
            check_response(&r, V1, &[&w.registry], &w.registry)
        })
        .collect();
    assert!(passwords.iter().all(|p| *p == passwords[0]));
    let c = w.emu.counters();
    assert_eq!(c.entra(), 1, "{c:?}");
    assert_eq!(c.exchange(), 1, "{c:?}");
}

#[test]
fn per_pod_identities_get_their_own_tokens_and_roles() {
    let (w, node) = sandbox_with_node_principal();
    // shop/web pulls as app A, with AcrPull on the registry.
    let (a, token_a) = w.pod_identity("aaaaaaaa-0000-4000-8000-00000000000a", "shop", "web");
    w.emu.grant(&a.client_id, &w.registry, Role::AcrPull);
    // batch/jobs pulls as app B, with AcrPush on the second registry only.
    let (b, token_b) = w.pod_identity("bbbbbbbb-0000-4000-8000-00000000000b", "batch", "jobs");
    w.emu.grant(&b.client_id, &w.registry2, Role::AcrPush);
    let image = format!("{}/shop/web:2", w.registry);

    // A, with the tenant from its annotation.
    let out = w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(
            &image,
            &token_a,
            &[
                (CLIENT_ID_ANNOTATION, &a.client_id),
                (TENANT_ID_ANNOTATION, TENANT),
            ],
        ),
    );
    let r = response(&out);
    let pa = check_response(&r, V1, &[&w.registry], &w.registry);
    assert_eq!(claims(&pa)["appid"], a.client_id.as_str());
    assert_ne!(claims(&pa)["appid"], node.client_id.as_str());
    w.check_pull(&w.registry, USERNAME, &pa, "shop/web");

    // B on the registry: refused by ACR, the message names the account, the identity and the
    // role to grant. The tenant comes from azure.json.
    let out = w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(&image, &token_b, &[(CLIENT_ID_ANNOTATION, &b.client_id)]),
    );
    let err = failure(&out);
    for part in [
        "service account batch/jobs",
        &b.client_id,
        &w.registry,
        "AcrPull",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    assert!(!err.contains(&token_b));

    // B on its own registry works, with its own token.
    let out = w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(
            &format!("{}/batch/jobs:1", w.registry2),
            &token_b,
            &[(CLIENT_ID_ANNOTATION, &b.client_id)],
        ),
    );
    let pb = check_response(&response(&out), V1, &[&w.registry2], &w.registry2);
    assert_eq!(claims(&pb)["appid"], b.client_id.as_str());

    // A again: from the cache, and still A's token; the node identity was never used.
    w.emu.reset_counters();
    let out = w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(
            &image,
            &token_a,
            &[
                (CLIENT_ID_ANNOTATION, &a.client_id),
                (TENANT_ID_ANNOTATION, TENANT),
            ],
        ),
    );
    assert_eq!(response(&out)["auth"][&w.registry]["password"], pa.as_str());
    assert_eq!(w.emu.counters().total(), 0);
    assert_eq!(w.emu.counters().entra_for(&node.client_id), 0);

    // A node pull right after gets the node's own token, not a pod's.
    let out = w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image));
    let pn = check_response(&response(&out), V1, &[&w.registry], &w.registry);
    assert_eq!(claims(&pn)["appid"], node.client_id.as_str());
}

#[test]
fn a_service_account_cannot_borrow_an_identity_another_one_cached() {
    let (w, _) = sandbox_with_node_principal();
    let (a, token_a) = w.pod_identity("aaaaaaaa-0000-4000-8000-00000000000a", "shop", "web");
    w.emu.grant(&a.client_id, &w.registry, Role::AcrPull);
    let image = format!("{}/shop/web:2", w.registry);
    let annotations = [(CLIENT_ID_ANNOTATION, a.client_id.as_str())];
    response(&w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(&image, &token_a, &annotations),
    ));
    // evil/web names A's client id, but A's federated credential trusts shop/web only: the
    // warm cache must not answer; Entra is asked, and refuses.
    w.emu.reset_counters();
    let evil = w.token("evil", "web");
    let err = failure(&w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(&image, &evil, &annotations),
    ));
    assert!(err.contains("service account evil/web"), "{err}");
    assert!(err.contains("could not get an Entra token"), "{err}");
    assert_eq!(w.emu.counters().entra_for(&a.client_id), 1);
    assert_eq!(w.emu.counters().exchange(), 0);
}

#[test]
fn token_without_annotation_fails_unless_falling_back_to_the_node() {
    let (w, node) = sandbox_with_node_principal();
    let token = w.token("shop", "web");
    let image = format!("{}/shop/web:2", w.registry);
    let err = failure(&w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(&image, &token, &[]),
    ));
    assert!(
        err.contains(
            "service account shop/web has no kubernetes.azure.com/acr-client-id annotation"
        ),
        "{err}"
    );
    assert!(err.contains("--fallback-to-node-identity"), "{err}");
    assert!(!err.contains(&token));
    assert_eq!(w.emu.counters().total(), 0);

    let out = w.run(
        &["--fallback-to-node-identity", &w.azure_json(), EXCHANGE],
        &pod_request(&image, &token, &[]),
    );
    let p = check_response(&response(&out), V1, &[&w.registry], &w.registry);
    assert_eq!(claims(&p)["appid"], node.client_id.as_str());
}

#[test]
fn registry_mirror_keys_the_source_and_uses_the_destination() {
    let (w, node) = sandbox_with_node_principal();
    let mirror = format!("mirror.example:5000:{}", w.registry);
    let out = w.run(
        &["--registry-mirror", &mirror, &w.azure_json(), EXCHANGE],
        &request(V1, "mirror.example:5000/library/nginx:1.27"),
    );
    let p = check_response(
        &response(&out),
        V1,
        &["mirror.example:5000", &w.registry],
        &w.registry,
    );
    assert_eq!(claims(&p)["appid"], node.client_id.as_str());
    // Several mappings in one flag; the other source is not served by them.
    let out = w.run(
        &[
            &format!(
                "--registry-mirror=mcr.microsoft.com:{},{mirror}",
                w.registry2
            ),
            &w.azure_json(),
            EXCHANGE,
        ],
        &request(V1, "mirror.example:5000/library/nginx:1.27"),
    );
    check_response(
        &response(&out),
        V1,
        &["mirror.example:5000", &w.registry],
        &w.registry,
    );
    // Without the mirror, the same image is not ACR's: no credentials.
    let out = w.run(
        &[&w.azure_json(), EXCHANGE],
        &request(V1, "mirror.example:5000/library/nginx:1.27"),
    );
    assert_eq!(response(&out)["auth"], serde_json::json!({}));
}

#[test]
fn environment_identity_without_azure_json() {
    let mut w = sandbox();
    let p = w.emu.add_secret_principal(
        TENANT,
        "22222222-2222-2222-2222-222222222222",
        "env-secret-1",
    );
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_CLIENT_SECRET", "env-secret-1");
    let out = w.run(&[], &request(V1BETA1, &format!("{}/app:1", w.registry)));
    let pw = check_response(&response(&out), V1BETA1, &[&w.registry], &w.registry);
    assert_eq!(claims(&pw)["appid"], p.client_id.as_str());
    // Per-pod identity without azure.json takes AZURE_TENANT_ID.
    let (a, token) = w.pod_identity("aaaaaaaa-0000-4000-8000-00000000000a", "shop", "web");
    w.emu.grant(&a.client_id, &w.registry, Role::AcrPull);
    let out = w.run(
        &[],
        &pod_request(
            &format!("{}/app:1", w.registry),
            &token,
            &[(CLIENT_ID_ANNOTATION, &a.client_id)],
        ),
    );
    let pw = check_response(&response(&out), V1, &[&w.registry], &w.registry);
    assert_eq!(claims(&pw)["appid"], a.client_id.as_str());
}

#[test]
fn non_acr_images_get_an_empty_answer_without_any_request() {
    // No identity at all: nothing is needed to say "no credentials".
    let w = sandbox();
    for image in [
        "nginx",
        "library/nginx:1.27",
        "docker.io/library/nginx:1.27",
        "quay.io/prometheus/prometheus:v3",
        "myregistry.azurecr.io.evil.example/app:1",
        "localhost:1/app",
    ] {
        let out = w.run(&[], &request(V1, image));
        assert!(out.status.success(), "{image}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!(
                "{{\"apiVersion\":\"{V1}\",\"kind\":\"CredentialProviderResponse\",\"cacheKeyType\":\"Registry\",\"cacheDuration\":\"0s\",\"auth\":{{}}}}\n"
            ),
            "{image}"
        );
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("acr-credential-provider: warn: no credentials for "),
            "{err}"
        );
    }
    assert_eq!(w.emu.counters().total(), 0);
}

#[test]
fn bad_input_exits_1_with_one_line_and_nothing_on_stdout() {
    let (w, _) = sandbox_with_node_principal();
    let image = format!("{}/app:1", w.registry);
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "not valid JSON"),
        ("{\"apiVersion\":".into(), "not valid JSON"),
        ("[]".into(), "not a JSON object"),
        (
            format!(
                r#"{{"apiVersion":"{V1}","kind":"CredentialProviderResponse","image":"{image}"}}"#
            ),
            "kind is \"CredentialProviderResponse\"",
        ),
        (
            format!(
                r#"{{"apiVersion":"credentialprovider.kubelet.k8s.io/v2","kind":"CredentialProviderRequest","image":"{image}"}}"#
            ),
            "unsupported apiVersion",
        ),
        (
            format!(
                r#"{{"apiVersion":"v1","kind":"CredentialProviderRequest","image":"{image}"}}"#
            ),
            "unsupported apiVersion",
        ),
        (
            format!(r#"{{"apiVersion":"{V1}","kind":"CredentialProviderRequest","image":""}}"#),
            "image is empty",
        ),
        (
            format!(r#"{{"apiVersion":"{V1}","kind":"CredentialProviderRequest"}}"#),
            "no \"image\" field",
        ),
    ];
    for (doc, why) in &cases {
        let err = failure(&w.run(&[&w.azure_json(), EXCHANGE], doc));
        assert!(err.contains(why), "{doc}: {err}");
    }
    // Bad configuration fails the same way.
    w.write(
        "broken.json",
        &format!("{{\"aadClientSecret\": \"{NODE_SECRET}\""),
    );
    w.write("incomplete.json", r#"{"aadClientId": "c"}"#);
    let doc = request(V1, &image);
    for (args, why) in [
        (vec!["--no-such-flag"], "--no-such-flag"),
        (
            vec!["/nonexistent/azure.json"],
            "cannot read /nonexistent/azure.json",
        ),
        (
            vec![w.path("broken.json").to_str().unwrap()],
            "not valid JSON",
        ),
        (
            vec![w.path("incomplete.json").to_str().unwrap(), EXCHANGE],
            "missing tenantId",
        ),
    ] {
        let out = w.run(&args, &doc);
        let err = failure(&out);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!err.contains(NODE_SECRET), "{err}");
    }
    assert_eq!(w.emu.counters().total(), 0);
}

/// A `--registry-mirror` entry the provider cannot use is left out with one warning, as the AKS
/// plugin skips it: images on ACR still get their credentials (an unreadable flag must not stop
/// a node's pulls).
#[test]
fn bad_mirror_entries_are_skipped_with_a_warning_and_acr_images_still_pull() {
    let (w, _) = sandbox_with_node_principal();
    let image = format!("{}/app:1", w.registry);
    let doc = request(V1, &image);
    for (mirror, warning) in [
        (
            "mcr.microsoft.com",
            "--registry-mirror entry \"mcr.microsoft.com\": expected <source>:<destination>",
        ),
        (
            "mcr.microsoft.com:quay.io",
            "--registry-mirror destination quay.io is not an Azure Container Registry login server",
        ),
    ] {
        let out = w.run(
            &["--registry-mirror", mirror, &w.azure_json(), EXCHANGE],
            &doc,
        );
        let v = response(&out);
        assert!(
            v["auth"][w.registry.as_str()]["password"]
                .as_str()
                .is_some_and(|p| !p.is_empty()),
            "{v}"
        );
        let err = stderr(&out);
        assert!(err.contains(warning) && err.contains("ignoring"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one warning: {err}");
    }
}

#[test]
fn secrets_never_reach_stderr_even_at_trace_level() {
    let (mut w, _) = sandbox_with_node_principal();
    w.set("ACR_LOG", "trace");
    let (a, token) = w.pod_identity("aaaaaaaa-0000-4000-8000-00000000000a", "shop", "web");
    w.emu.grant(&a.client_id, &w.registry, Role::AcrPull);
    let image = format!("{}/app:1", w.registry);
    let node = w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image));
    let pod = w.run(
        &[&w.azure_json(), EXCHANGE],
        &pod_request(&image, &token, &[(CLIENT_ID_ANNOTATION, &a.client_id)]),
    );
    let mut secrets = vec![NODE_SECRET.to_string(), token.clone()];
    for out in [&node, &pod] {
        secrets.push(
            response(out)["auth"][&w.registry]["password"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for out in [&node, &pod] {
        let err = stderr(out);
        assert!(
            err.contains("acr-credential-provider: "),
            "logs at trace: {err}"
        );
        for s in &secrets {
            assert!(!err.contains(s.as_str()), "a secret in stderr: {err}");
        }
    }
}

#[test]
fn version_and_help() {
    let w = sandbox();
    let out = w.run(&["--version"], "");
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        format!("acr-credential-provider {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = w.run(&["--help"], "");
    assert!(out.status.success());
    let help = stdout(&out);
    for flag in [
        "--registry-mirror",
        "--cache-dir",
        "--fallback-to-node-identity",
        "[AZURE_JSON]",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

#[test]
fn a_token_claiming_a_lifetime_of_years_is_refused_not_cached_for_ever() {
    // The node identity from the environment (with a service-principal azure.json the provider
    // would answer with the principal's id and secret instead, as AKS does).
    let mut w = sandbox();
    let p = w.emu.add_secret_principal(
        TENANT,
        "22222222-2222-2222-2222-222222222223",
        "env-secret-2",
    );
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &p.client_id);
    w.set("AZURE_CLIENT_SECRET", "env-secret-2");
    // A registry (or something in its place) issuing a refresh token that "expires" in ten years:
    // before, it was cached as never expiring and the kubelet told to keep it for years.
    w.emu.set_lifetimes(
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(10 * 365 * 24 * 3600),
    );
    let image = format!("{}/app:1", w.registry);
    let err = failure(&w.run(&[], &request(V1, &image)));
    assert!(
        err.contains("the refresh token it issued claims to live more than 7 days"),
        "{err}"
    );
    // Nothing was cached: the next run asks again (and, with sane lifetimes, is answered).
    w.emu.set_lifetimes(
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(3 * 3600),
    );
    let before = w.emu.counters().exchange();
    let out = w.run(&[], &request(V1, &image));
    let r = response(&out);
    assert_eq!(w.emu.counters().exchange(), before + 1);
    assert!(go_seconds(r["cacheDuration"].as_str().unwrap()) <= 3 * 3600);
}
