#!/usr/bin/env bash
# Cache-hit time of a baseline revision against the working tree, side by side (interleaved
# rounds, per-round ratios): for "no slower than before" checks of one change.
#
#   bench/compare.sh BASE_REV        e.g. bench/compare.sh HEAD~3
#
# Builds both trees' docker-credential-acr and acr-credential-provider in release (ordinary
# dynamic builds, as `cargo install` gives; bench/run.sh measures the shipped static build), runs
# the emulator on loopback, fills each version's own cache with one cold run, then times
# BENCH_RUNS (400) cache hits of each with acr-bench-driver, pinned to the last CPU. Prints the
# medians and the median of the per-round ratios current/base. Needs jq, curl, taskset, git.
# COMPARE_DIR=DIR keeps the builds there (and reuses them on the next run: rebuilds are then
# incremental); the default is a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REV=${1:?usage: bench/compare.sh BASE_REV}
RUNS=${BENCH_RUNS:-400}
KEEP=${COMPARE_DIR:+1}
W=${COMPARE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/acr-compare.XXXXXX")}
mkdir -p "$W"
EPID=""
cleanup() {
  if [ -n "$EPID" ]; then kill "$EPID" 2>/dev/null || true; fi
  git worktree remove --force "$W/base-tree" 2>/dev/null || true
  if [ -z "$KEEP" ]; then rm -rf "$W"; fi
}
trap cleanup EXIT
git worktree remove --force "$W/base-tree" 2>/dev/null || true
rm -rf "$W"/base-home "$W"/cur-home "$W"/base-cache "$W"/cur-cache "$W"/base-kcache "$W"/cur-kcache
git worktree add --detach "$W/base-tree" "$BASE_REV" >/dev/null
echo "compare: building $BASE_REV and the working tree (release)" >&2
(cd "$W/base-tree" && CARGO_TARGET_DIR=$W/base-target cargo build --release --locked -q \
  -p acr-credential-provider -p docker-credential-acr)
CARGO_TARGET_DIR=$W/cur-target cargo build --release --locked -q -p acr-credential-provider -p docker-credential-acr
cargo build --locked -q -p acr-bench-floor -p acr-tests --bins
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
EMU=$TARGET_DIR/debug/acr-emulator
DRV=$TARGET_DIR/debug/acr-bench-driver

TENANT=72f988bf-86f1-41af-91ab-2d7cd011db47
CLIENT=b3b3b3b3-0000-4000-8000-0000000000b3
SECRET=bench-secret-1
PORT=$(shuf -i 20000-60000 -n 1)
jq -n --arg port "$PORT" --arg tenant "$TENANT" --arg client "$CLIENT" --arg secret "$SECRET" '{
  listen: ("127.0.0.1:" + $port), registries: ["localhost:" + $port],
  secret_principals: [{tenant: $tenant, client_id: $client, secret: $secret}],
  grants: [{principal: $client, registry: ("localhost:" + $port), role: "AcrPull"}],
  entra_lifetime: 3600, refresh_lifetime: 10800}' >"$W/emu.json"
"$EMU" --config "$W/emu.json" --ca-out "$W/ca.pem" --ignore-stdin >"$W/ready.json" 2>"$W/emu.log" </dev/null &
EPID=$!
for _ in $(seq 100); do [ -s "$W/ready.json" ] && break; sleep 0.1; done
[ -s "$W/ready.json" ] || { cat "$W/emu.log" >&2; exit 1; }
REG=localhost:$PORT
jq -n --arg t "$TENANT" --arg c "$CLIENT" --arg s "$SECRET" \
  '{cloud: "AzurePublicCloud", tenantId: $t, aadClientId: $c, aadClientSecret: $s, useManagedIdentityExtension: false}' >"$W/azure.json"
jq -cn --arg image "$REG/app:1" \
  '{apiVersion: "credentialprovider.kubelet.k8s.io/v1", kind: "CredentialProviderRequest", image: $image}' >"$W/req-kubelet"
printf '%s\n' "$REG" >"$W/req-docker"
: >"$W/spec"
for v in base cur; do
  BIN=$W/$v-target/release
  mkdir -p "$W/$v-home"
  ENVV=(PATH=/usr/bin:/bin "HOME=$W/$v-home" "ACR_LOGIN_SERVERS=$REG" "SSL_CERT_FILE=$W/ca.pem"
    "AZURE_AUTHORITY_HOST=https://localhost:$PORT" "AZURE_TENANT_ID=$TENANT" "AZURE_CLIENT_ID=$CLIENT"
    "AZURE_CLIENT_SECRET=$SECRET" "ACR_CACHE_DIR=$W/$v-cache")
  # One cold run each fills that version's caches.
  env -i "${ENVV[@]}" "$BIN/acr-credential-provider" "$W/azure.json" --cache-dir "$W/$v-kcache" <"$W/req-kubelet" >/dev/null
  env -i "${ENVV[@]}" "$BIN/docker-credential-acr" get <"$W/req-docker" >/dev/null
  envs=$(IFS=$'\t'; echo "${ENVV[*]}")
  printf 'provider-%s\t%s\t/usr/bin/env\t-i\t%s\t%s\t%s\t--cache-dir\t%s\n' \
    "$v" "$W/req-kubelet" "$envs" "$BIN/acr-credential-provider" "$W/azure.json" "$W/$v-kcache" >>"$W/spec"
  printf 'helper-%s\t%s\t/usr/bin/env\t-i\t%s\t%s\tget\n' "$v" "$W/req-docker" "$envs" "$BIN/docker-credential-acr" >>"$W/spec"
done
before=$(curl -fsS --cacert "$W/ca.pem" "https://localhost:$PORT/_emulator/counters" | jq -c .total)
taskset -c "$(($(nproc) - 1))" "$DRV" --runs "$RUNS" --warmup 20 "$W/spec" >"$W/results.json"
after=$(curl -fsS --cacert "$W/ca.pem" "https://localhost:$PORT/_emulator/counters" | jq -c .total)
[ "$before" = "$after" ] || { echo "compare: cache hits made requests ($before -> $after)" >&2; exit 1; }
echo "cache hits, $RUNS interleaved rounds (spawn to exit, through env -i):"
jq -r '.results[] | "  \(.command)\tmedian \(.median*1e6|floor) us\tmin \(.min*1e6|floor) us"' "$W/results.json"
jq -r '.results as $r | ["provider", "helper"][] as $k
  | ($r[] | select(.command == $k + "-base") | .times) as $b
  | ($r[] | select(.command == $k + "-cur") | .times) as $c
  | [range(0; $b | length) | $c[.] / $b[.]] | sort
  | "  \($k): median per-round ratio current/base \(.[length / 2 | floor] * 1000 | round / 1000)"' "$W/results.json"
