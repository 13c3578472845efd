// kubectl as a test tool: the command of k8s.io/kubernetes/cmd/kubectl (v1.36.3), built from the
// k8s.io/kubectl module at the version go.mod pins, so the tests run the same kubectl on every
// machine whatever (if any) the machine has installed. Built by scripts/build-test-tools.sh into
// the test tools folder; tests/tests/e2e_token.rs feeds it `docker-credential-acr token`'s
// dockerconfigjson (`kubectl create secret docker-registry --dry-run=client -o json`).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
