//go:build tools

// Package upstream pins the upstream AKS kubelet credential provider, the oracle of
// tests/tests/e2e_aks_differential.rs. Nothing here is part of the product: scripts/install-deps.sh
// builds sigs.k8s.io/cloud-provider-azure/cmd/acr-credential-provider at the version go.mod
// requires into the test tools folder (never onto PATH).
//
// v1.35.3 is the newest release the Go module proxy serves here; it requires
// sigs.k8s.io/cloud-provider-azure/pkg/azclient v0.13.0, which the proxy does not serve, so
// go.mod replaces it with the neighbouring patch release v0.13.1.
package upstream

import _ "sigs.k8s.io/cloud-provider-azure/cmd/acr-credential-provider"
