#!/usr/bin/env bash
# Builds the two shipped binaries, docker-credential-acr and acr-credential-provider, for another
# target, release profile, with Debian's Rust (rustc-web, cargo-web) building the standard library
# from its source (rust-web-src) for that target. Prints the folder that holds them as its last
# line.
#
#   scripts/build-cross.sh aarch64-unknown-linux-gnu     # static, non-PIE, as build-release.sh
#   scripts/build-cross.sh x86_64-pc-windows-gnu         # .exe files, the C runtime linked in
#   scripts/build-cross.sh x86_64-pc-windows-gnu --clippy  # lints of the three product crates
#                                                          # (libraries and binaries) instead
#
# Honours CARGO_TARGET_DIR (default: target/cross-<target>, one folder per target so the
# native build's artifacts are never rebuilt by this one); the binaries land in
# $CARGO_TARGET_DIR/<target>/release/. Needs what scripts/install-deps.sh installs in its "cross
# targets" block: rustc-web, cargo-web, rust-web-src, and the target's C compiler and linker
# (gcc-aarch64-linux-gnu with libc6-dev-arm64-cross; gcc-mingw-w64-x86-64-posix).
#
# Why Debian's toolchain: Debian ships no prebuilt standard library for these targets, and nothing
# but the package registries can be reached here, so the standard library is built from source
# (`-Zbuild-std`, allowed on a stable compiler by RUSTC_BOOTSTRAP=1, for this build only).
set -euo pipefail

program=build-cross.sh
fail() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}
trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

[ $# -eq 1 ] || { [ $# -eq 2 ] && [ "$2" = --clippy ]; } ||
    fail "usage: scripts/build-cross.sh <target triple> [--clippy]"
triple=$1
clippy=${2:-}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Debian's toolchain, by absolute path: a rustup toolchain first on PATH has no source of the
# standard library for -Zbuild-std at the version Debian's cargo expects.
cargo=/usr/bin/cargo
rustc=/usr/bin/rustc
[ -x "$cargo" ] && [ -x "$rustc" ] ||
    fail "Debian's Rust is missing: run scripts/install-deps.sh (apt-get install rustc-web cargo-web rust-web-src)"
[ -d /usr/lib/rustlib/src/rust/library ] ||
    fail "the standard library's source is missing: run scripts/install-deps.sh (apt-get install rust-web-src)"

upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
lower=$(echo "$triple" | tr '-' '_')
case "$triple" in
aarch64-unknown-linux-gnu)
    cc=aarch64-linux-gnu-gcc
    # As scripts/build-release.sh builds for the host: static and not position-independent.
    flags="-C target-feature=+crt-static -C relocation-model=static"
    ;;
x86_64-pc-windows-gnu)
    cc=x86_64-w64-mingw32-gcc
    # libgcc and winpthreads linked in: the .exe needs no DLL beside it.
    flags="-C target-feature=+crt-static"
    ;;
*) fail "unsupported target $triple (aarch64-unknown-linux-gnu, x86_64-pc-windows-gnu)" ;;
esac
command -v "$cc" >/dev/null || fail "$cc is missing: run scripts/install-deps.sh"

target=${CARGO_TARGET_DIR:-$root/target/cross-$triple}
mkdir -p "$target"
target=$(cd "$target" && pwd)

export CARGO_TARGET_DIR="$target"
export RUSTC="$rustc" RUSTC_BOOTSTRAP=1
export "CARGO_TARGET_${upper}_LINKER=$cc" "CC_${lower}=$cc"
export "CARGO_TARGET_${upper}_RUSTFLAGS=$flags"
unset RUSTFLAGS

if [ -n "$clippy" ]; then
    # Debian's clippy (rust-web-clippy) for Debian's cargo, found first on PATH. Not the tests:
    # they drive the binaries from a Linux host (docs/TESTING-PLATFORMS.md).
    command -v /usr/bin/cargo-clippy >/dev/null ||
        fail "Debian's clippy is missing: run scripts/install-deps.sh (apt-get install rust-web-clippy)"
    PATH="/usr/bin:$PATH" "$cargo" clippy --locked -Zbuild-std=std,panic_abort --target "$triple" \
        -p acr-broker -p docker-credential-acr -p acr-credential-provider --lib --bins \
        -- -D warnings >&2
    exit 0
fi

# Only the two binary packages, as scripts/build-release.sh (the test crate's features stay out).
"$cargo" build --release --locked -Zbuild-std=std,panic_abort --target "$triple" \
    -p docker-credential-acr -p acr-credential-provider >&2
echo "$target/$triple/release"
