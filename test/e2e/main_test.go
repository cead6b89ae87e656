// Package e2e runs the nodereset binary against sandbox nodes: real mounts,
// processes, listeners and files inside mount, PID and network namespaces
// that each test creates over a temporary root. Nothing here touches the
// machine the tests run on.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// bins holds the binaries TestMain builds once.
var bins struct{ nodereset, nodesim, dir string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodereset-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bins.dir = dir
	bins.nodereset = filepath.Join(dir, "nodereset")
	bins.nodesim = filepath.Join(dir, "nodesim")
	for out, pkg := range map[string]string{bins.nodereset: "../../cmd/nodereset", bins.nodesim: "../../cmd/nodesim"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
			os.Exit(2)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node starts a sandbox node for the test and tears it down afterwards.
func node(t testing.TB, pods, volumes int) *sandbox.Node {
	t.Helper()
	testns.Root(t)
	testns.Command(t, "nsenter")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := sandbox.Start(ctx, sandbox.Options{
		Nodesim: bins.nodesim, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Pods: pods, Volumes: volumes,
	})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close sandbox: %v", err)
		}
	})
	return n
}

// run is one nodereset invocation inside the sandbox.
type run struct {
	stdout, stderr string
	code           int
}

// fast keeps escalations short: etcd in the sandbox ignores SIGTERM.
var fast = []string{"--term-timeout", "300ms", "--kill-timeout", "2s"}

func nodereset(t testing.TB, n *sandbox.Node, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"--host-root", n.Manifest().Root}, args...)
	cmd := n.Command(ctx, bins.nodereset, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := run{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run nodereset %v: %v", args, err)
	}
	return r
}

func (r run) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.code, r.stdout, r.stderr)
}

func planJSON(t testing.TB, n *sandbox.Node) *plan.Plan {
	t.Helper()
	r := nodereset(t, n, "plan", "-o", "json")
	if r.code != 0 {
		t.Fatalf("plan: %s", r)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, r.stdout)
	}
	return &p
}

func verifyJSON(t testing.TB, n *sandbox.Node) (*engine.VerifyReport, int) {
	t.Helper()
	r := nodereset(t, n, "verify", "-o", "json")
	var v engine.VerifyReport
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("verify JSON: %v\n%s", err, r)
	}
	return &v, r.code
}

func snapshot(t testing.TB, n *sandbox.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := n.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

func checkDecoys(t testing.TB, n *sandbox.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Check(ctx); err != nil {
		t.Fatalf("decoys damaged: %v", err)
	}
}
