#!/usr/bin/env bash
# Installs what building and testing this project needs on a fresh Debian 12 machine (run as root,
# or with sudo available). The Rust toolchain itself (cargo, rustc >= 1.89) must already be there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# build-essential: the C compiler aws-lc-sys (rustls' crypto) builds with.
# iproute2, util-linux: private network namespaces for the IMDS and end-to-end tests.
# skopeo, docker-registry (Docker distribution 2.8): the real client and registry of the
# end-to-end tests and ./demo.sh; curl: the demo reads the emulator's counters with it.
# podman, buildah: the other containers/image clients, pushing and pulling through the helper
# after `configure-docker --containers` (tests/tests/e2e_containers_tools.rs).
# dbus, gnome-keyring, libsecret-tools: a real Secret Service (on a private session bus) for the
# keychain tests, and libsecret's secret-tool to check what landed in it.
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential ca-certificates \
  iproute2 util-linux \
  skopeo docker-registry curl \
  podman buildah \
  dbus gnome-keyring libsecret-tools
# The docker CLI (the end-to-end tests run it without a daemon). Keep one that is already there
# (e.g. Docker's own packages); otherwise Debian's.
if ! command -v docker >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends docker.io
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then
  rustup component add clippy rustfmt 2>/dev/null || true
fi
# The Debian package (scripts/build-deb.sh, tests/tests/package_deb.rs): cargo-deb builds it
# (its binaries are static, so no dpkg-shlibdeps), the test installs it with dpkg inside an
# overlay (mount: util-linux and mount, above and essential). Pinned; skipped when present.
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION" ||
    { echo "install-deps.sh: error: cargo install cargo-deb $CARGO_DEB_VERSION failed" >&2; exit 1; }
fi
# Test tools built with Go from the Go module proxy (the upstream AKS plugin, the oracle of the
# differential suite): downloaded and built once here, so the test command finds them ready.
"$ROOT/scripts/build-test-tools.sh"
# The kubelet's own credential-provider code (k8s.io/kubernetes v1.36.3) as a test client of
# acr-credential-provider (tests/kubelet-harness, tests/tests/kubelet_harness.rs): download its
# modules (as go.sum pins them) and build it once, filling Go's build cache, so the tests build it
# into the target folder in seconds and a clean clone needs only the module proxy here.
(
  cd "$ROOT/tests/kubelet-harness"
  export GOFLAGS=-mod=readonly GOTOOLCHAIN=local
  go mod download
  go build -o /dev/null .
) || { echo "install-deps.sh: error: building tests/kubelet-harness failed" >&2; exit 1; }

# ---- cross targets (scripts/test-cross.sh, scripts/build-cross.sh) --------------------------------
# arm64 Linux and Windows, built with Debian's Rust building the standard library from its source
# (rustc-web, cargo-web, rust-web-src; rust-web-clippy lints the Windows half), the targets' C
# compilers and linkers for aws-lc (gcc-aarch64-linux-gnu with libc6-dev-arm64-cross;
# mingw-w64's x86-64 POSIX-threads gcc), and where the arm64 binaries run here: qemu-user
# (qemu-aarch64). The Windows branch of scripts/test-cross.sh (not yet run by CI: see
# docs/TESTING-PLATFORMS.md) also needs `apt-get install wine64 zip unzip`; they are not installed
# here until CI runs it.
$SUDO apt-get install -y -qq --no-install-recommends \
  rustc-web cargo-web rust-web-src rust-web-clippy \
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
  gcc-mingw-w64-x86-64-posix mingw-w64-x86-64-dev
# ---- end of cross targets ---------------------------------------------------------------------------
