#!/usr/bin/env bash
# See docker-credential-acr push and pull a real image, on this machine, with no Azure account.
#
# Builds the binaries, then, inside a private network and mount namespace (nothing leaves it and
# nothing on the machine changes): starts the Entra + ACR emulator on port 443 under the real
# name myregistry.azurecr.io, a real registry (Debian's docker-registry) behind it, writes a
# throw-away Docker config whose credHelpers send myregistry.azurecr.io to docker-credential-acr,
# pushes and pulls a tiny image with skopeo, and prints the emulator's request counts.
#
# Needs root (for the namespace) and the tools ./scripts/install-deps.sh installs.
# DEMO_BIN_DIR=<folder holding docker-credential-acr and acr-emulator> skips the build.
set -euo pipefail

REGISTRY=myregistry.azurecr.io
# Where the service names resolve inside the namespace: TEST-NET-1 (RFC 5737), nobody's real
# address, and not loopback (the docker CLI would treat a loopback registry as insecure).
SERVICE_ADDRESS=192.0.2.10
TENANT=72f988bf-86f1-41af-91ab-2d7cd011db47
CLIENT_ID=11111111-1111-1111-1111-111111111111
CLIENT_SECRET=demo-secret-not-a-real-one
IMAGE="$REGISTRY/demo/hello:1"

step() { printf '\n==> %s\n' "$*"; }
die() {
  echo "demo.sh: $*" >&2
  exit 1
}

script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

if [ "${1:-}" != "--inside-namespace" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "run me as root (sudo ./demo.sh): I create a private network and mount namespace" \
      "(unshare --net --mount) so that $REGISTRY resolves to a local emulator without touching" \
      "this machine's network or files."
  fi
  missing=()
  for tool in skopeo docker-registry unshare ip mount curl tar gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    die "missing tools: ${missing[*]}; install them with ./scripts/install-deps.sh"
  fi
  cd "$(dirname "$script")"
  if [ -z "${DEMO_BIN_DIR:-}" ]; then
    step "Building docker-credential-acr and the emulator (cargo build --bins)"
    cargo build --bins
    target="${CARGO_TARGET_DIR:-target}"
    case "$target" in
      /*) DEMO_BIN_DIR="$target/debug" ;;
      *) DEMO_BIN_DIR="$PWD/$target/debug" ;;
    esac
  fi
  for bin in docker-credential-acr acr-emulator; do
    [ -x "$DEMO_BIN_DIR/$bin" ] || die "$DEMO_BIN_DIR/$bin is missing: run cargo build --bins"
  done
  export DEMO_BIN_DIR
  step "Entering a private network and mount namespace (unshare --net --mount)"
  exec unshare --net --mount -- bash "$script" --inside-namespace
fi

# ---- inside the namespace -------------------------------------------------------------------

work="$(mktemp -d /tmp/acr-demo.XXXXXX)"
pids=()
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    echo "demo.sh: failed (exit $status); emulator and registry logs follow" >&2
    cat "$work/emulator.log" "$work/registry.log" >&2 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  # The hosts bind mount and the addresses vanish with the namespace.
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

counters() {
  curl -fsS --cacert "$work/ca.pem" https://localhost/_emulator/counters
}

# Prints the emulator's request counts per endpoint, one per line.
show_counts() {
  local json kind n label
  json="$(counters)"
  for kind in entra app_service imds exchange acr_token challenge; do
    n="$(printf '%s' "$json" | sed -n "s/.*\"by_kind\":{[^}]*\"$kind\":\([0-9]*\).*/\1/p")"
    case "$kind" in
      entra) label="Entra token requests (client credentials)" ;;
      app_service) label="managed identity, App Service endpoint" ;;
      imds) label="managed identity, IMDS" ;;
      exchange) label="ACR /oauth2/exchange (Entra token -> refresh token)" ;;
      acr_token) label="ACR /oauth2/token (refresh token -> access token)" ;;
      challenge) label="registry API requests (/v2/..., proxied)" ;;
    esac
    printf '  %-52s %s=%s\n' "$label" "$kind" "${n:-0}"
  done
}

wait_for() {
  local what="$1" tries=0
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 200 ] || die "$what did not start"
    sleep 0.05
  done
}

step "Network: loopback up; $REGISTRY and login.microsoftonline.com -> $SERVICE_ADDRESS"
ip link set lo up
ip addr add "$SERVICE_ADDRESS/32" dev lo
printf '127.0.0.1 localhost\n%s %s login.microsoftonline.com\n' "$SERVICE_ADDRESS" "$REGISTRY" \
  >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts
cat /etc/hosts

step "Starting the Entra + ACR emulator on port 443 (service principal $CLIENT_ID has AcrPush)"
cat >"$work/emulator.json" <<EOF
{
  "listen": "0.0.0.0:443",
  "registries": ["$REGISTRY"],
  "secret_principals": [{"tenant": "$TENANT", "client_id": "$CLIENT_ID", "secret": "$CLIENT_SECRET"}],
  "grants": [{"principal": "$CLIENT_ID", "registry": "$REGISTRY", "role": "AcrPush"}],
  "upstreams": {"$REGISTRY": "http://127.0.0.1:5000"}
}
EOF
"$DEMO_BIN_DIR/acr-emulator" --config "$work/emulator.json" --ca-out "$work/ca.pem" \
  --token-cert-out "$work/token-signing.pem" --ignore-stdin \
  >"$work/emulator.ready" 2>"$work/emulator.log" &
pids+=("$!")
wait_for "the emulator" test -s "$work/emulator.ready"
wait_for "the emulator" counters
echo "  listening; its CA is $work/ca.pem"

step "Starting a real registry (docker-registry, distribution 2.8) behind it on 127.0.0.1:5000"
mkdir -p "$work/storage"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: "$work/storage"
http:
  addr: "127.0.0.1:5000"
  secret: "demo-$RANDOM$RANDOM"
auth:
  token:
    realm: "https://$REGISTRY/oauth2/token"
    service: "$REGISTRY"
    issuer: "Azure Container Registry"
    rootcertbundle: "$work/token-signing.pem"
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=("$!")
registry_up() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/)" = 401 ]
}
wait_for "the registry" registry_up
echo "  up; it accepts only tokens signed by the emulator's ACR token service"

step "Writing a throw-away Docker config (docker-credential-acr configure-docker)"
# Only the demo's own settings reach the helper: none of the identity, cache or proxy variables
# of the shell that started it (an ACR_IDENTITY, a workload identity's token file, a proxy).
for v in $(compgen -e); do
  case "$v" in
    ACR_* | AZURE_* | IDENTITY_* | IMDS_* | ACTIONS_ID_TOKEN_* | AZURESUBSCRIPTION_* | SYSTEM_* | \
      DBUS_* | REGISTRY_AUTH_FILE | *_PROXY | *_proxy) unset "$v" ;;
  esac
done
export HOME="$work/home"
export DOCKER_CONFIG="$HOME/.docker"
export XDG_CONFIG_HOME="$HOME/.config" XDG_CACHE_HOME="$HOME/.cache" XDG_RUNTIME_DIR="$work/run"
mkdir -p "$DOCKER_CONFIG" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export PATH="$DEMO_BIN_DIR:$PATH"
docker-credential-acr configure-docker --registries "$REGISTRY" >/dev/null
cat "$DOCKER_CONFIG/config.json"
echo
# The identity docker-credential-acr uses, and the CA it trusts (the emulator's).
export AZURE_TENANT_ID="$TENANT" AZURE_CLIENT_ID="$CLIENT_ID" AZURE_CLIENT_SECRET="$CLIENT_SECRET"
export SSL_CERT_FILE="$work/ca.pem" ACR_LOG=info
echo "  identity: service principal $CLIENT_ID (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)"
mkdir -p "$work/certs"
cp "$work/ca.pem" "$work/certs/ca.crt"

step "Building a tiny image (an OCI layout: one layer with hello.txt)"
img="$work/image"
mkdir -p "$img/blobs/sha256" "$work/rootfs"
printf 'Hello from docker-credential-acr\n' >"$work/rootfs/hello.txt"
tar -C "$work/rootfs" --owner=0 --group=0 --mtime=@0 -cf "$work/layer.tar" hello.txt
gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"
sha() { sha256sum "$1" | cut -d' ' -f1; }
blob() {
  local d
  d="$(sha "$1")"
  cp "$1" "$img/blobs/sha256/$d"
  echo "$d"
}
size() { stat -c %s "$1"; }
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha "$work/layer.tar")" >"$work/config.json"
layer="$(blob "$work/layer.tar.gz")"
config="$(blob "$work/config.json")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$(size "$work/config.json")" "$layer" "$(size "$work/layer.tar.gz")" \
  >"$work/manifest.json"
manifest="$(blob "$work/manifest.json")"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
  "$manifest" "$(size "$work/manifest.json")" >"$img/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$img/oci-layout"
echo "  image digest sha256:$manifest"

step "Pushing it: skopeo copy oci:image:1 docker://$IMAGE"
skopeo copy --dest-cert-dir "$work/certs" --digestfile "$work/pushed" "oci:$img:1" "docker://$IMAGE"
echo "  pushed $(cat "$work/pushed")"
echo "Emulator requests for the push:"
show_counts

step "Pulling it back with a new skopeo process: skopeo copy docker://$IMAGE oci:pulled:1"
curl -fsS -X DELETE --cacert "$work/ca.pem" https://localhost/_emulator/counters
skopeo copy --src-cert-dir "$work/certs" "docker://$IMAGE" "oci:$work/pulled:1"
pulled="$(skopeo inspect --format '{{.Digest}}' "oci:$work/pulled:1")"
echo "  pulled $pulled"
[ "$pulled" = "sha256:$manifest" ] || die "the pulled digest $pulled is not sha256:$manifest"
echo "Emulator requests for the pull (no Entra token, no exchange: docker-credential-acr answered"
echo "from its cache in $XDG_CACHE_HOME/docker-credential-acr):"
show_counts

step "Done: pushed and pulled sha256:$manifest through docker-credential-acr; cleaning up"
