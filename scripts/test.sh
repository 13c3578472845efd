#!/usr/bin/env bash
# Runs every test of the workspace, after the format and lint checks. Tests that need network
# namespaces (IMDS at 169.254.169.254, the end-to-end tests) need root, as CI has.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The cross-binary tests in tests/ run the binaries of the other crates: build them all first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
