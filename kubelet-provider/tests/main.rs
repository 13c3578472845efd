//! Every integration test of `acr-credential-provider` in one binary: each file of `tests/` is a
//! module (one link instead of one per file, and the harness runs all of them in parallel).
//! Cargo does not discover test files here (`autotests = false`): a file must be named below,
//! which `every_test_file_is_a_module` checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod common;
mod doctor;
mod imds;
mod min_validity;
mod packaging;
mod provider;

#[test]
fn every_test_file_is_a_module() {
    acr_tests::suite::assert_every_test_file_is_a_module(
        env!("CARGO_MANIFEST_DIR"),
        include_str!("main.rs"),
        &[],
    );
}
