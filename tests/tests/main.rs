//! Every integration test of `acr-tests` in one binary: each file of `tests/` is a
//! module (one link instead of one per file, and the harness runs all of them in parallel).
//! `package_deb.rs` stays a test target of its own: `scripts/test.sh` runs it last, on its own.
//! Cargo does not discover test files here (`autotests = false`): a file must be named below,
//! which `every_test_file_is_a_module` checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acr_emulator_bin;
mod azure_identity_compat;
mod e2e_aks_compat;
mod e2e_aks_differential;
mod e2e_ci_federation;
mod e2e_clouds;
mod e2e_containers_tools;
mod e2e_demo;
mod e2e_docker_cli;
mod e2e_identities;
mod e2e_kubelet;
mod e2e_registry_rules;
mod e2e_roles_and_cache;
mod e2e_validity_audience;
mod kubelet_harness;
mod mixed_concurrency;

#[test]
fn every_test_file_is_a_module() {
    acr_tests::suite::assert_every_test_file_is_a_module(
        env!("CARGO_MANIFEST_DIR"),
        include_str!("main.rs"),
        &["package_deb.rs"],
    );
}
