#!/usr/bin/env bash
# Runs every check and test of the workspace: format, lints, public docs (and gofmt and go vet of
# the Go kubelet harness), every test (the fuzz targets' seeds, the kubelet harness and the
# differential suite against the upstream AKS plugin included), as on an Azure VM with the Azure
# CLI installed (scripts/as-azure-vm.sh), and the Debian package built the way it ships. Tests that need
# network namespaces (IMDS at 169.254.169.254, the end-to-end tests) need root, as CI has.
# Ends with one line of test counts and where the time went; docs/TESTING.md explains the phases.
set -euo pipefail
cd "$(dirname "$0")/.."

# The package test runs last, on its own: it waits for the shipped build started below.
PACKAGE_TEST=deb_installs_answers_version_and_removes

timings=""
note() { timings+="$(printf '  %-34s %5d s' "$1" "$2")"$'\n'; }
started=$SECONDS

t0=$SECONDS
cargo fmt --all -- --check
note "format" $((SECONDS - t0))

# The shipped build (release profile, static: scripts/build-deb.sh) for the package test, started
# first, in the background and at low priority, in the target folder the package test builds in
# (target/deb): it takes the cores the other phases leave idle (its link-time optimisation runs
# on one core per binary, the tests mostly wait on processes and sockets), and the package test
# finds it built: its own run of scripts/build-deb.sh only checks that it is up to date and
# packages it. Job control gives it a process group of its own, so an early exit stops it.
mkdir -p target
deb_log=target/build-deb.log
set -m
(
    t=$SECONDS
    CARGO_TARGET_DIR="$PWD/target/deb" nice -n 10 scripts/build-deb.sh >"$deb_log" 2>&1
    echo $((SECONDS - t)) >target/build-deb.seconds
) &
deb_pid=$!
set +m
log=$(mktemp)
trap 'rm -f "$log"; kill -- -"$deb_pid" 2>/dev/null || true' EXIT

# The test tools built with Go (the upstream AKS plugin, tests/upstream): current after
# install-deps.sh, rebuilt here only if their pinned modules changed. The kubelet harness (Go,
# tests/kubelet-harness): formatted and vetted here; its test builds it into the target folder
# (quick once scripts/install-deps.sh warmed Go's cache).
t0=$SECONDS
./scripts/build-test-tools.sh
(
    cd tests/kubelet-harness
    export GOFLAGS=-mod=readonly GOTOOLCHAIN=local
    unformatted=$(gofmt -l .)
    if [ -n "$unformatted" ]; then
        echo "gofmt: not formatted: $unformatted" >&2
        exit 1
    fi
    go vet .
)
note "Go: test tools, gofmt, vet" $((SECONDS - t0))

t0=$SECONDS
cargo clippy --workspace --all-targets --locked -- -D warnings
note "clippy" $((SECONDS - t0))

# Public docs must not link to private items or to nothing.
t0=$SECONDS
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q
note "doc" $((SECONDS - t0))

# One build of every test and binary (the cross-binary tests run the binaries it makes).
t0=$SECONDS
cargo test --workspace --locked --no-run
note "test build" $((SECONDS - t0))

set +e
t0=$SECONDS
scripts/as-azure-vm.sh cargo test --workspace --locked --no-fail-fast -- --skip "$PACKAGE_TEST" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
note "tests (as on an Azure VM)" $((SECONDS - t0))

t0=$SECONDS
wait "$deb_pid"
deb_status=$?
note "waiting for the shipped build" $((SECONDS - t0))
if [ "$deb_status" -ne 0 ]; then
    echo "test.sh: scripts/build-deb.sh failed (status $deb_status):" >&2
    cat "$deb_log" >&2
fi
t0=$SECONDS
scripts/as-azure-vm.sh cargo test --locked -p acr-tests --test package_deb 2>&1 | tee -a "$log"
package_status=${PIPESTATUS[0]}
note "package test" $((SECONDS - t0))
set -e

for s in "$deb_status" "$package_status"; do
    if [ "$status" -eq 0 ]; then status=$s; fi
done
# One closing line for the whole run (cargo's last line is only the last crate's doc tests).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
printf 'test.sh: where the time went (wall clock; the shipped build ran %s s in the background):\n%s' \
    "$(cat target/build-deb.seconds 2>/dev/null || echo '?')" "$timings"
printf '  %-34s %5d s\n' "total" $((SECONDS - started))
exit "$status"
