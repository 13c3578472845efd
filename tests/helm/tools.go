//go:build tools

// Helm v4 as a test tool: the real `helm` of helm.sh/helm/v4 at the version go.mod pins, built by
// scripts/build-test-tools.sh into the test tools folder (`go build helm.sh/helm/v4/cmd/helm`).
// tests/tests/e2e_helm.rs runs it against the emulator and a real registry: Helm reads its own
// registry config before Docker's, which `configure-docker --helm` and `doctor` handle.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
