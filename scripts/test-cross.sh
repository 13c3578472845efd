#!/usr/bin/env bash
# The other platforms, built and tested here (.ci/run runs it after scripts/test.sh):
#
# - arm64 Linux (aarch64-unknown-linux-gnu): both binaries built as they ship (static, non-PIE:
#   scripts/build-cross.sh), their .deb (cargo-deb --target), and the tests that drive the
#   binaries from outside run against them under qemu-user (`qemu-aarch64`).
# - Windows (x86_64-pc-windows-gnu), NOT FINISHED and not run by default: both .exe files built
#   (scripts/build-cross.sh), the release zip, and the same kind of tests run against them under
#   Wine, with the emulator on the machine's loopback (docs/TESTING-PLATFORMS.md says what is
#   left).
#
# The tests are this workspace's own integration tests, built for the host as scripts/test.sh
# builds them; ACR_TEST_BIN_DIR makes them run the other target's binaries instead of the host's,
# each through ACR_TEST_RUNNER (tests/src/sandbox.rs). Which suites run on which target, and why
# the others do not, is listed below and in docs/TESTING-PLATFORMS.md.
#
#   scripts/test-cross.sh                 # arm64, and Windows' clippy (what .ci/run runs)
#   ACR_CROSS_TARGETS=x86_64-pc-windows-gnu scripts/test-cross.sh   # Windows: unfinished
#
# Needs root (the end-to-end suites make network namespaces) and what scripts/install-deps.sh
# installs in its "cross targets" block. Ends with one line of test counts and the time of each
# phase.
set -euo pipefail

program=test-cross.sh
fail() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# arm64, and the Windows port's lints, by default: the Windows branch (build, zip, tests under
# Wine) has never run to its end (docs/TESTING-PLATFORMS.md).
targets=${ACR_CROSS_TARGETS:-aarch64-unknown-linux-gnu windows-clippy}
target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target_dir"
target_dir=$(cd "$target_dir" && pwd)

timings=""
note() { timings+="$(printf '  %-44s %5d s' "$1" "$2")"$'\n'; }
started=$SECONDS
log=$(mktemp)
status=0
trap 'rm -f "$log"' EXIT

# run_suites PACKAGE FOLDER SKIPS FILE...: the integration tests of PACKAGE (in FOLDER) that the
# named files of FOLDER/tests hold, with the environment set by the caller; SKIPS is a
# space-separated list of test names left out (each with its reason where the list is made).
# Works with either test layout: one test target per file, or one target `integration` whose
# modules are the files (then each file's tests are selected by `file::`).
run_suites() {
    local package=$1 folder=$2 skips=$3
    shift 3
    local args=() filters=() s
    if [ -f "$folder/tests/main.rs" ]; then
        args=(--test integration)
        for s in "$@"; do filters+=("$s::"); done
    else
        for s in "$@"; do args+=(--test "$s"); done
    fi
    for s in $skips; do filters+=(--skip "$s"); done
    # As scripts/test.sh runs them: as on an Azure VM (scripts/as-azure-vm.sh), so no test leans
    # on this machine's own facts.
    # Every suite runs even when one fails; the first failure is the script's status.
    set +e
    scripts/as-azure-vm.sh cargo test --locked -p "$package" "${args[@]}" -- "${filters[@]}" 2>&1 |
        tee -a "$log"
    local st=${PIPESTATUS[0]}
    set -e
    if [ "$st" -ne 0 ] && [ "$status" -eq 0 ]; then status=$st; fi
}

# The suites that drive the binaries from outside, on every target:
# - docker-credential-acr: the Docker helper protocol (helper), file safety, the cache and its
#   locks, killed writers and concurrent processes (security), secrets never printed
#   (no_secrets), hostile registries, config file rules, minimum validity, CI federation,
#   doctor, managed identity (imds: a network namespace of its own).
# - acr-credential-provider: the kubelet protocol (provider), its cache, doctor, minimum
#   validity, managed identity.
# - acr-tests: mixed helper and provider processes on one cache (mixed_concurrency).
HELPER_SUITES="helper security no_secrets hostile_registry rules validity ci_federation doctor imds"
PROVIDER_SUITES="provider cache doctor min_validity imds"

cross_aarch64() {
    local triple=aarch64-unknown-linux-gnu t0 bin
    t0=$SECONDS
    bin=$(scripts/build-cross.sh "$triple" | tail -n 1)
    note "$triple: build" $((SECONDS - t0))
    # Really the other architecture: a host binary here would test nothing new.
    for b in docker-credential-acr acr-credential-provider; do
        readelf -h "$bin/$b" | grep -q 'Machine:.*AArch64' || fail "$bin/$b is not an aarch64 binary"
    done

    t0=$SECONDS
    # The .deb of the arm64 build (its completions come from running the binary under qemu).
    ACR_DEB_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
        CARGO_TARGET_DIR="$(dirname "$(dirname "$bin")")" scripts/build-deb.sh --target "$triple" |
        tail -n 1 >"$target_dir/cross-$triple.deb.path"
    local deb
    deb=$(cat "$target_dir/cross-$triple.deb.path")
    dpkg-deb --field "$deb" Architecture | grep -qx arm64 || fail "$deb is not an arm64 package"
    note "$triple: .deb" $((SECONDS - t0))

    t0=$SECONDS
    export ACR_TEST_BIN_DIR="$bin"
    export ACR_TEST_RUNNER="/usr/bin/qemu-aarch64 -L /usr/aarch64-linux-gnu"
    # The end-to-end suites too: real clients (skopeo, the docker CLI, podman, buildah, the
    # kubelet's own code) run the arm64 helper and provider through a small script on PATH.
    run_suites docker-credential-acr docker-credential-acr "" $HELPER_SUITES keychain unwritable_cache
    run_suites acr-credential-provider kubelet-provider "" $PROVIDER_SUITES
    run_suites acr-tests tests "" mixed_concurrency e2e_identities e2e_docker_cli \
        e2e_roles_and_cache e2e_kubelet e2e_containers_tools e2e_registry_rules kubelet_harness
    unset ACR_TEST_BIN_DIR ACR_TEST_RUNNER
    note "$triple: tests under qemu-aarch64" $((SECONDS - t0))
}

cross_windows() {
    local triple=x86_64-pc-windows-gnu t0 bin
    t0=$SECONDS
    bin=$(scripts/build-cross.sh "$triple" | tail -n 1)
    note "$triple: build" $((SECONDS - t0))
    for b in docker-credential-acr acr-credential-provider; do
        x86_64-w64-mingw32-objdump -f "$bin/$b.exe" | grep -q 'file format pei-x86-64' ||
            fail "$bin/$b.exe is not a Windows x86-64 program"
    done

    # The release zip: both programs, the README and the kubelet docs.
    local zip="$target_dir/cross-$triple/docker-credential-acr-windows-x86_64.zip" stage
    stage=$(mktemp -d)
    cp "$bin/docker-credential-acr.exe" "$bin/acr-credential-provider.exe" "$stage/"
    cp README.md "$stage/README.md"
    cp packaging/README.md "$stage/README.kubelet.md"
    rm -f "$zip"
    (cd "$stage" && zip -q -X "$zip" ./*)
    rm -rf "$stage"
    unzip -l "$zip" | grep -q 'docker-credential-acr.exe' || fail "$zip lacks the helper"

    # A Wine prefix of the test run's own, with the bcryptprimitives.dll Debian's Wine 8 lacks.
    t0=$SECONDS
    local prefix="$target_dir/cross-$triple/wine-prefix" wine=/usr/lib/wine/wine64
    export WINEPREFIX="$prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    if [ ! -f "$prefix/system.reg" ]; then
        "$wine" wineboot --init >/dev/null 2>&1 || fail "wineboot could not make $prefix"
    fi
    x86_64-w64-mingw32-gcc -O2 -shared -o "$prefix/drive_c/windows/system32/bcryptprimitives.dll" \
        tests/wine/bcryptprimitives.c tests/wine/bcryptprimitives.def -ladvapi32
    local runner="$target_dir/cross-$triple/wine-run"
    cat >"$runner" <<EOF
#!/bin/sh
# Runs a Windows program of the cross tests under Wine, in the test prefix (scripts/test-cross.sh).
export WINEPREFIX='$prefix' WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
exec $wine "\$@"
EOF
    chmod 755 "$runner"
    "$runner" "$bin/docker-credential-acr.exe" version >/dev/null || fail "the helper does not start under Wine"
    note "$triple: Wine prefix" $((SECONDS - t0))

    t0=$SECONDS
    export ACR_TEST_BIN_DIR="$bin" ACR_TEST_RUNNER="$runner"
    run_suites docker-credential-acr docker-credential-acr "$WINDOWS_SKIPS" $HELPER_SUITES
    run_suites acr-credential-provider kubelet-provider "$WINDOWS_SKIPS" $PROVIDER_SUITES
    run_suites acr-tests tests "$WINDOWS_SKIPS" mixed_concurrency e2e_docker_cli e2e_identities
    unset ACR_TEST_BIN_DIR ACR_TEST_RUNNER
    note "$triple: tests under Wine" $((SECONDS - t0))
}

# Tests left out under Wine, each because it checks something Unix-only (filled in below).
WINDOWS_SKIPS=""

for triple in $targets; do
    case "$triple" in
    aarch64-unknown-linux-gnu) cross_aarch64 ;;
    x86_64-pc-windows-gnu) cross_windows ;;
    windows-clippy)
        # The Windows port compiles and is clippy-clean for its target (no link, no test).
        t0=$SECONDS
        scripts/build-cross.sh x86_64-pc-windows-gnu --clippy || status=1
        note "x86_64-pc-windows-gnu: clippy" $((SECONDS - t0))
        ;;
    *) fail "unknown target $triple" ;;
    esac
done

awk '/^test result:/ { p += $4; f += $6 } END { printf "cross tests: %d passed, %d failed\n", p, f }' "$log"
printf 'test-cross.sh: where the time went (wall clock):\n%s' "$timings"
printf '  %-44s %5d s\n' "total" $((SECONDS - started))
exit "$status"
