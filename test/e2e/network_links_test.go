package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// networkNode starts a sandbox node with the "network" feature: a flannel
// pod network and Calico links next to the host's own links and podman's
// CNI config.
func networkNode(t testing.TB, pods int) *sandbox.Node {
	t.Helper()
	testns.Root(t)
	testns.Command(t, "nsenter")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := sandbox.Start(ctx, sandbox.Options{
		Nodesim: bins.nodesim, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Pods: pods, Volumes: 1, Features: []string{"network"},
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

// linkKinds are the kinds this test owns; other network kinds (firewall)
// have tests of their own.
var linkKinds = []plan.Kind{plan.KindLink, plan.KindCNIFile}

func countOwn(items []plan.Item) map[string]int {
	out := map[string]int{}
	for _, it := range items {
		if slices.Contains(linkKinds, it.Kind) {
			out[string(it.Kind)+" "+it.Target]++
		}
	}
	return out
}

// TestNetworkLinksAndCNIFiles: the plan lists exactly the planted links and
// CNI files, no decoy (docker0, virbr0/vnet0, a user's veth pair, cni0x,
// kube-ipvs0 and nodelocaldns of the wrong kind, podman's config and
// leases); reset removes them all, verify has none left, and every decoy
// link and file is as it was.
func TestNetworkLinksAndCNIFiles(t *testing.T) {
	const pods = 3
	n := networkNode(t, pods)
	m := n.Manifest()
	if got := m.Count(plan.KindLink); got != pods+4 {
		t.Fatalf("sandbox planted %d links, want %d", got, pods+4)
	}

	planned := countOwn(planJSON(t, n).Items())
	for _, e := range m.Expected {
		if slices.Contains(linkKinds, e.Kind) {
			planned[string(e.Kind)+" "+e.Target]--
		}
	}
	for key, c := range planned {
		switch {
		case c < 0:
			t.Errorf("planted %s is missing from the plan", key)
		case c > 0:
			t.Errorf("plan has %s, which was not planted as owned", key)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	for _, line := range strings.Split(r.stderr+r.stdout, "\n") {
		if strings.Contains(line, string(plan.KindLink)+" ") && strings.Contains(line, "failed") ||
			strings.Contains(line, string(plan.KindCNIFile)+" ") && strings.Contains(line, "failed") {
			t.Errorf("reset failed an item: %s", line)
		}
	}
	v, _ := verifyJSON(t, n)
	if left := countOwn(v.Residue); len(left) != 0 {
		t.Errorf("verify after reset still finds %v\n%s", left, r)
	}
	out, err := n.Command(t.Context(), "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show in the sandbox: %v\n%s", err, out)
	}
	for _, name := range []string{"cni0:", "flannel.1:", "vxlan.calico:", "cali1b2c3d4e5f6@"} {
		if strings.Contains(string(out), " "+name) {
			t.Errorf("%s still there after reset:\n%s", name, out)
		}
	}
	checkDecoys(t, n)
}
