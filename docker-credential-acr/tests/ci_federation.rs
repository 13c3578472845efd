//! The CI federation sources with the real binary: GitHub Actions and Azure Pipelines jobs whose
//! OIDC endpoints the emulator serves, and a federated token in `AZURE_FEDERATED_TOKEN`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::{CiJob, EndpointKind, Fault, FaultAction, Role};
use acr_tests::sandbox::assert_no_secret;
use std::time::Duration;

const GITHUB_APP: &str = "77777777-7777-7777-7777-777777777777";
const PIPELINES_APP: &str = "88888888-8888-8888-8888-888888888888";
const GITLAB_APP: &str = "99999999-9999-9999-9999-999999999999";
const REPO_SUBJECT: &str = "repo:org/repo:ref:refs/heads/main";

/// A sandbox running as a GitHub Actions job whose OIDC tokens live `lifetime`, federated with
/// an app that may pull from the first registry.
fn github_job(lifetime: Duration) -> (Sandbox, CiJob) {
    let mut w = sandbox();
    let job = w.emu.add_github_job(REPO_SUBJECT, lifetime);
    let p = w
        .emu
        .add_federated_principal(TENANT, GITHUB_APP, &job.issuer, REPO_SUBJECT);
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", GITHUB_APP);
    w.set("ACTIONS_ID_TOKEN_REQUEST_URL", &job.request_url);
    w.set("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &job.request_token);
    (w, job)
}

/// The cache's entries (not its lock files).
fn entries(w: &Sandbox) -> Vec<String> {
    std::fs::read_dir(w.cache_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

/// Makes every registry entry due for refresh while it can still be handed out, as it is a third
/// of its lifetime before it expires (the entry's recorded lifetime made longer).
fn make_refresh_due(w: &Sandbox) {
    for name in entries(w).iter().filter(|n| n.starts_with("reg-")) {
        let path = w.cache_dir().join(name);
        let mut e: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let left = e["expires_at"].as_i64().unwrap() - e["obtained_at"].as_i64().unwrap();
        e["lifetime"] = serde_json::json!(left * 3 + 600);
        std::fs::write(&path, e.to_string()).unwrap();
    }
}

#[test]
fn a_github_job_keeps_pulling_after_its_first_assertion_expired_and_the_token_was_refreshed() {
    let (mut w, job) = github_job(Duration::from_secs(3));
    // Entra tokens shorter than the broker's reuse margin: every refresh needs a new one, and so
    // a new assertion, as when an hour-long Entra token has run out in a long job.
    w.emu
        .set_lifetimes(Duration::from_secs(240), Duration::from_secs(3 * 3600));
    w.set("ACR_LOG", "trace");
    let first = answer(&get(&w, &w.registry));
    let c = w.emu.counters();
    assert_eq!((c.github_oidc(), c.entra(), c.exchange()), (1, 1, 1));
    assert_eq!(c.kind_for(EndpointKind::GitHubOidc, &job.id), 1);

    // A cache hit asks nothing, the OIDC endpoint included.
    answer(&get(&w, &w.registry));
    assert_eq!(w.emu.counters().total(), c.total());

    // The first assertion expires (for Entra: the emulator's clock moves past it); later the ACR
    // token is due for refresh.
    w.emu.set_clock_offset(5);
    make_refresh_due(&w);
    let o = get(&w, &w.registry);
    let second = answer(&o);
    let c = w.emu.counters();
    assert_eq!(
        (c.github_oidc(), c.entra(), c.exchange()),
        (2, 2, 2),
        "a fresh assertion for the new Entra token"
    );
    assert_ne!(first["Secret"], second["Secret"], "the token was refreshed");
    assert!(!stderr(&o).contains("WARN"), "{}", stderr(&o));
    assert!(!stdout(&o).contains(&job.request_token));
}

#[test]
fn a_github_job_on_an_azure_vm_uses_the_job_identity_and_doctor_says_why() {
    let (mut w, job) = github_job(Duration::from_secs(300));
    let tag = w.path("asset-tag");
    std::fs::write(&tag, "7783-7084-3265-9085\n").unwrap();
    w.set("ACR_DMI_ASSET_TAG_FILE", tag.to_str().unwrap());
    let o = w.run(&["doctor", &w.registry], "");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "identity: GitHub Actions OIDC (client id {GITHUB_APP}, tenant {TENANT})"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "skipped federated token (AZURE_FEDERATED_TOKEN): AZURE_FEDERATED_TOKEN is not set"
        ),
        "{out}"
    );
    assert!(
        out.contains("ACTIONS_ID_TOKEN_REQUEST_TOKEN=(set, hidden)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("ACTIONS_ID_TOKEN_REQUEST_URL={}", job.request_url)),
        "{out}"
    );
    assert!(out.contains("  token: ok"), "{out}");
    assert_no_secret(&w.emu, &o.stdout, "doctor's stdout");
    assert_eq!(w.emu.counters().imds(), 0);
    assert_eq!(w.emu.counters().github_oidc(), 1);
}

#[test]
fn a_failing_or_garbled_oidc_endpoint_is_one_line_with_what_to_check_and_nothing_cached() {
    let ok_body = |body: &str| FaultAction::Status {
        code: 200,
        retry_after: None,
        body: Some(body.to_string()),
    };
    let cases: Vec<(Vec<Fault>, &str)> = vec![
        (
            vec![Fault::once(
                EndpointKind::GitHubOidc,
                FaultAction::Status {
                    code: 403,
                    retry_after: None,
                    body: None,
                },
            )],
            "answered HTTP 403",
        ),
        (
            vec![Fault::times(
                EndpointKind::GitHubOidc,
                5,
                FaultAction::Status {
                    code: 503,
                    retry_after: None,
                    body: None,
                },
            )],
            "answered HTTP 503",
        ),
        (
            vec![Fault::times(
                EndpointKind::GitHubOidc,
                5,
                FaultAction::DropConnection,
            )],
            "did not answer",
        ),
        (
            vec![Fault::once(
                EndpointKind::GitHubOidc,
                FaultAction::MalformedBody,
            )],
            "answered something that is not JSON",
        ),
        (
            vec![Fault::once(
                EndpointKind::GitHubOidc,
                ok_body(r#"{"count":1}"#),
            )],
            "answered JSON without a `value`",
        ),
        (
            vec![Fault::once(
                EndpointKind::GitHubOidc,
                ok_body(r#"{"count":1,"value":"opaque-value-not-a-jwt"}"#),
            )],
            "answered a `value` that is not a JWT",
        ),
        (
            vec![Fault::once(
                EndpointKind::GitHubOidc,
                FaultAction::Latency(Duration::from_secs(8)),
            )],
            "did not answer within 3 s",
        ),
    ];
    for (faults, says) in cases {
        let (mut w, job) = github_job(Duration::from_secs(300));
        // Room for the retries, except where the deadline is the point.
        let slow = says.contains("within");
        w.set("ACR_TIMEOUT", if slow { "4" } else { "15" });
        for f in faults {
            w.emu.set_fault(f);
        }
        check_failure(&w, &job, says);
    }
    // Nothing listens there.
    let (mut w, job) = github_job(Duration::from_secs(300));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    w.set(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        &format!("https://localhost:{port}/actions/x/idtoken?api-version=2.0"),
    );
    check_failure(&w, &job, "Connection refused");
    assert_eq!(w.emu.counters().entra(), 0);
}

/// `get` fails with one line that names the endpoint's host, says `says` and what to check, and
/// leaves no entry in the cache; no secret in any output (the sandbox checks stderr and stdout).
fn check_failure(w: &Sandbox, job: &CiJob, says: &str) {
    let o = get(w, &w.registry);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(
            "GitHub Actions OIDC could not get an Entra token: the OIDC token endpoint localhost "
        ),
        "{out}"
    );
    assert!(out.contains(says), "{says}: {out}");
    assert!(out.contains("`permissions: id-token: write`"), "{out}");
    assert!(!out.contains(&job.request_token) && !stderr(&o).contains(&job.request_token));
    assert!(!out.contains("opaque-value"), "never the answer: {out}");
    assert_eq!(entries(w), Vec::<String>::new(), "{says}");
    assert_eq!(w.emu.counters().entra(), 0, "{says}");
}

#[test]
fn an_azure_pipelines_job_signs_in_with_its_service_connection() {
    let mut w = sandbox();
    let subject = "sc://org/project/acr-connection";
    let job = w
        .emu
        .add_pipelines_job("sc-0001", subject, Duration::from_secs(600));
    let p = w
        .emu
        .add_federated_principal(TENANT, PIPELINES_APP, &job.issuer, subject);
    w.emu.grant(&p.client_id, &w.registry, Role::AcrPull);
    for (k, v) in [
        ("SYSTEM_OIDCREQUESTURI", job.request_url.as_str()),
        ("SYSTEM_ACCESSTOKEN", job.request_token.as_str()),
        ("SYSTEM_PLANID", "plan-1"),
        ("SYSTEM_JOBID", "job-1"),
        ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc-0001"),
        ("AZURESUBSCRIPTION_TENANT_ID", TENANT),
        ("AZURESUBSCRIPTION_CLIENT_ID", PIPELINES_APP),
        ("ACR_LOG", "trace"),
    ] {
        w.set(k, v);
    }
    let a = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(a["Secret"].as_str().unwrap())["sub"],
        p.object_id.as_str()
    );
    assert_eq!(w.emu.counters().pipelines_oidc(), 1);
    let o = w.run(&["doctor"], "");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "identity: Azure Pipelines OIDC (client id {PIPELINES_APP}, tenant {TENANT})"
        )),
        "{out}"
    );
    assert!(
        out.contains("skipped GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL is not set"),
        "{out}"
    );
    assert!(out.contains("SYSTEM_ACCESSTOKEN=(set, hidden)"), "{out}");
    assert_no_secret(&w.emu, &o.stdout, "doctor's stdout");

    // Another service connection: the endpoint refuses, one line with Azure DevOps' ids.
    let mut w2 = w;
    w2.set("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc-other");
    w2.set("SYSTEM_JOBID", "job-2");
    let o = get(&w2, &w2.registry);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("the OIDC token endpoint localhost answered HTTP 404")
            && out.contains("x-vss-e2eid: ")
            && out.contains("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"),
        "{out}"
    );
}

#[test]
fn a_federated_token_in_the_environment_is_keyed_by_its_subject_and_never_shown() {
    let mut w = sandbox();
    let issuer = "https://gitlab.example.com";
    let main = "project_path:group/project:ref_type:branch:ref:main";
    let tag = "project_path:group/project:ref_type:tag:ref:v1";
    for subject in [main, tag] {
        w.emu
            .add_federated_principal(TENANT, GITLAB_APP, issuer, subject);
    }
    w.emu.grant(GITLAB_APP, &w.registry, Role::AcrPull);
    let token = |subject: &str| {
        w.emu.mint_service_account_token(
            issuer,
            subject,
            "api://AzureADTokenExchange",
            Duration::from_secs(600),
        )
    };
    // Two tokens of the first subject, as two jobs on the same branch get.
    let (on_main, on_main_again, on_tag) = (token(main), token(main), token(tag));
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", GITLAB_APP);
    w.set("AZURE_FEDERATED_TOKEN", &on_main);
    w.set("ACR_LOG", "trace");
    let first = answer(&get(&w, &w.registry));
    answer(&get(&w, &w.registry));
    assert_eq!(w.emu.counters().entra(), 1, "the second get is a cache hit");
    // A fresh token of the same subject (as the CI system issues for each job) is the same
    // identity: still a cache hit, with the same registry token.
    assert_ne!(on_main_again, on_main);
    w.set("AZURE_FEDERATED_TOKEN", &on_main_again);
    assert!(
        answer(&get(&w, &w.registry))["Secret"] == first["Secret"],
        "the same subject was handed another token"
    );
    assert_eq!(
        w.emu.counters().entra(),
        1,
        "the same subject is a cache hit"
    );
    // Another subject is another identity: not served the first one's token.
    w.set("AZURE_FEDERATED_TOKEN", &on_tag);
    answer(&get(&w, &w.registry));
    assert_eq!(w.emu.counters().entra(), 2);

    let o = w.run(&["doctor"], "");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "identity: federated token (AZURE_FEDERATED_TOKEN) (client id {GITLAB_APP}, tenant {TENANT})"
        )),
        "{out}"
    );
    assert!(out.contains("AZURE_FEDERATED_TOKEN=(set, hidden)"), "{out}");
    assert_no_secret(&w.emu, &o.stdout, "doctor's stdout");

    // An expired token: Entra's refusal, one line, nothing cached for it.
    let mut w2 = sandbox();
    w2.emu
        .add_federated_principal(TENANT, GITLAB_APP, issuer, main);
    let expired = w2.emu.mint_service_account_token(
        issuer,
        main,
        "api://AzureADTokenExchange",
        Duration::ZERO,
    );
    w2.set("AZURE_TENANT_ID", TENANT);
    w2.set("AZURE_CLIENT_ID", GITLAB_APP);
    w2.set("AZURE_FEDERATED_TOKEN", &expired);
    let o = get(&w2, &w2.registry);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("AADSTS700024"), "{out}");
    assert_eq!(entries(&w2), Vec::<String>::new());
}
