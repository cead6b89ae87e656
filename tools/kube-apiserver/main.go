// Command kube-apiserver is the real kube-apiserver, built from the Go module
// proxy for the cluster-side tests (see hack/build-tools.sh).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
