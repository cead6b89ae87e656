// Command nodesim runs a sandbox node: a dirty kubeadm control-plane node
// planted in new mount, PID and network namespaces over a temporary root,
// for nodereset's end-to-end tests, benchmarks and demo. The same binary is
// the namespace init and, with NODESIM_ROLE set, every fake component.
package main

import (
	"os"

	"github.com/nodereset/nodereset/internal/sandbox"
)

func main() {
	// Fake components are started by the hundred in benchmarks: decide
	// before anything else runs.
	if os.Getenv(sandbox.EnvRole) != "" {
		os.Exit(sandbox.RunFake())
	}
	os.Exit(run(os.Args[1:]))
}
