#!/usr/bin/env bash
# Builds the two shipped binaries, docker-credential-acr and acr-credential-provider, the way they
# ship (the .deb, the benchmarks): release profile, static, not position-independent. Prints the
# folder that holds them as its last line.
#
#   scripts/build-release.sh [-p PACKAGE]...
#
# Packages named with -p are built the same way besides the two (bench/run.sh: the floor).
#
# Honours CARGO_TARGET_DIR (default: target/); the binaries land in $CARGO_TARGET_DIR/<host
# triple>/release/.
#
# Static and non-PIE: no dynamic loader, no relocations, no shared libraries to map, which makes a
# cache-hit `get` about 2x faster (docs/BENCHMARKS.md). glibc >= 2.34 resolves the `files` and
# `dns` NSS sources inside a static binary. An explicit --target keeps these flags away from
# build scripts and proc-macros (which cannot be static); `cargo install` and the tests build the
# ordinary dynamic way.
set -euo pipefail

program=build-release.sh
fail() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}
trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
export CARGO_TARGET_DIR="$target"

triple=$(rustc -vV | sed -n 's/^host: //p')
case "$triple" in
*-linux-gnu) ;;
*) fail "unsupported build host $triple: the static build is for *-linux-gnu" ;;
esac
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static -C relocation-model=static"

# Only the two binary packages: building the whole workspace would unify the test crate's
# features (fuller tokio, rustls) into the binaries and make them bigger.
cargo build --release --locked --target "$triple" -p docker-credential-acr -p acr-credential-provider "$@" >&2
echo "$target/$triple/release"
