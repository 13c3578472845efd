#!/usr/bin/env bash
# Builds the Debian package docker-credential-acr: both binaries (release profile), the kubelet
# configs, docs and shell completions; see [package.metadata.deb] in
# docker-credential-acr/Cargo.toml for the layout. Prints the .deb's path as its last line.
#
#   scripts/build-deb.sh [cargo-deb options, e.g. --deb-revision 2]
#
# Honours CARGO_TARGET_DIR (default: target/); the package lands in $CARGO_TARGET_DIR/debian/.
# Needs cargo-deb: scripts/install-deps.sh installs it.
set -euo pipefail

program=build-deb.sh
fail() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}
trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo deb --version >/dev/null 2>&1 ||
    fail "cargo-deb is not installed: run scripts/install-deps.sh (or: cargo install --locked cargo-deb)"

# An absolute target dir: cargo, cargo-deb and the completion step must agree on it.
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
export CARGO_TARGET_DIR="$target"

# The binaries, built the way they ship (static, non-PIE, for the host triple); cargo-deb looks
# for them there when given the same --target.
bin=$(scripts/build-release.sh | tail -n 1)
triple=$(basename "$(dirname "$bin")")

completions="$bin/completions"
mkdir -p "$completions"
helper="$bin/docker-credential-acr"
"$helper" completions bash >"$completions/docker-credential-acr.bash"
"$helper" completions zsh >"$completions/_docker-credential-acr"
"$helper" completions fish >"$completions/docker-credential-acr.fish"
for f in docker-credential-acr.bash _docker-credential-acr docker-credential-acr.fish; do
    [ -s "$completions/$f" ] || fail "the generated completion script $completions/$f is empty"
done

# --no-build: cargo-deb would otherwise rebuild with --workspace (one asset comes from another
# package of the workspace), pulling the test crate's features in.
deb=$(cargo deb -p docker-credential-acr --target "$triple" --no-build --locked "$@" | tail -n 1)
[ -f "$deb" ] || fail "cargo deb did not report a package file (got: '$deb')"
echo "$deb"
