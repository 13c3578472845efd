#!/usr/bin/env bash
# Builds the test tools that come from the Go module proxy into the test tools folder
# ($ACR_TEST_TOOLS, default ~/.local/share/acr-test-tools; never on PATH). Nothing here is part
# of the product. Each tool is rebuilt only when its pinned module changes, so a second run is a
# few file reads. Called by scripts/install-deps.sh (which downloads and builds) and by
# scripts/test.sh (which then finds everything current).
#
# - bin/acr-credential-provider: the upstream AKS kubelet credential provider at the version
#   tests/upstream/go.mod pins, the oracle of tests/tests/e2e_aks_differential.rs.
# - bin/kubectl: kubectl (k8s.io/kubectl at the version tests/kubectl/go.mod pins), the real
#   consumer of `docker-credential-acr token --output dockerconfigjson` in
#   tests/tests/e2e_token.rs. Built, not taken from the machine: Debian 12's kubernetes-client is
#   1.20 and conflicts with other kubectl packages, and a test must not depend on what else a
#   machine has installed.
# - bin/helm: Helm v4 (helm.sh/helm/v4 at the version tests/helm/go.mod pins), which reads its own
#   registry config before Docker's: tests/tests/e2e_helm.rs (configure-docker --helm, doctor's
#   warning about a stale `helm registry login` entry).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v go >/dev/null 2>&1; then
  echo "build-test-tools.sh: error: Go (1.26) is needed to build the test tools; install it (or put /usr/local/go/bin on PATH)" >&2
  exit 1
fi
TOOLS=${ACR_TEST_TOOLS:-$HOME/.local/share/acr-test-tools}
mkdir -p "$TOOLS/bin"

# build NAME MODULE_DIR PACKAGE: go build PACKAGE in MODULE_DIR into $TOOLS/bin/NAME, unless the
# stamp of MODULE_DIR's go.mod, go.sum and Go files says it is current.
build() {
  local name=$1 dir=$2 package=$3 stamp
  stamp=$(cd "$dir" && cat go.mod go.sum $(find . -name '*.go' | sort) | sha256sum | cut -c1-16)
  if [ -x "$TOOLS/bin/$name" ] && [ "$(cat "$TOOLS/bin/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  echo "build-test-tools.sh: building $name" >&2
  (cd "$dir" && go build -trimpath -o "$TOOLS/bin/$name" "$package") ||
    { echo "build-test-tools.sh: error: building $name failed" >&2; exit 1; }
  echo "$stamp" >"$TOOLS/bin/$name.stamp"
}

build acr-credential-provider "$ROOT/tests/upstream" sigs.k8s.io/cloud-provider-azure/cmd/acr-credential-provider
build kubectl "$ROOT/tests/kubectl" .
build helm "$ROOT/tests/helm" helm.sh/helm/v4/cmd/helm
