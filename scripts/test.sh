#!/usr/bin/env bash
# Runs every test of the workspace, after the format and lint checks. Tests that need network
# namespaces (IMDS at 169.254.169.254, the end-to-end tests) need root, as CI has.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Public docs must not link to private items or to nothing.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q
# The test tools built with Go (the upstream AKS plugin): current after install-deps.sh, rebuilt
# here only if their pinned modules changed.
./scripts/build-test-tools.sh
# The cross-binary tests in tests/ run the binaries of the other crates: build them all first.
cargo build --workspace --bins --locked
# The kubelet harness (Go, tests/kubelet-harness): formatted and vetted. Its test builds it into the
# target folder (quick once scripts/install-deps.sh warmed Go's cache).
(
  cd tests/kubelet-harness
  export GOFLAGS=-mod=readonly GOTOOLCHAIN=local
  unformatted=$(gofmt -l .)
  if [ -n "$unformatted" ]; then echo "gofmt: not formatted: $unformatted" >&2; exit 1; fi
  go vet .
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The fuzz targets (their own workspace, fuzz/): build them and replay their seeds on stable Rust.
cargo test --locked --manifest-path fuzz/Cargo.toml 2>&1 | tee -a "$log"
fuzz_status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ]; then status=$fuzz_status; fi
# One closing line for the whole run (cargo's last line is only the last crate's doc tests).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
