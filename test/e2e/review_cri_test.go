package e2e

import (
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/pkg/plan"
)

// TestPodsOnSystemContainerd: on K3s and RKE1 nodes whose kubelet ran on
// the system containerd (a socket their profile does not list), the plan
// and verify show the kubelet's pods on it, reset removes them (so no path
// is left held by containerd), verify is clean and containerd's own
// containers (the decoys) survive. The network feature's netns bind mounts
// are in the snapshots, which must be takeable.
func TestPodsOnSystemContainerd(t *testing.T) {
	for _, profile := range []string{"k3s", "rke1"} {
		t.Run(profile, func(t *testing.T) {
			n := ctrNode(t, profile, "network")
			want := n.Manifest().Count(plan.KindPod)
			if want == 0 {
				t.Fatal("the sandbox planted no CRI pods")
			}
			before := snapshot(t, n)
			p := planJSON(t, n)
			if after := snapshot(t, n); after != before {
				t.Fatalf("plan changed the node:\n%s", sandbox.FirstDiff(before, after))
			}
			pods := 0
			for _, it := range p.Items() {
				if it.Kind == plan.KindPod {
					pods++
					if !strings.Contains(it.Reason, "unix://"+sandbox.ContainerdSocket) {
						t.Errorf("pod %s: reason %q does not name %s", it.Target, it.Reason, sandbox.ContainerdSocket)
					}
				}
			}
			if pods != want {
				t.Fatalf("%d pods planned on the system containerd, want %d (profiles %v)", pods, want, p.Profiles)
			}
			v, code := verifyJSON(t, n)
			residue := 0
			for _, it := range v.Residue {
				if it.Kind == plan.KindPod {
					residue++
				}
			}
			if code == 0 || residue != want {
				t.Fatalf("verify before reset: exit %d, %d pods in the residue, want %d", code, residue, want)
			}

			r := nodereset(t, n, append([]string{"reset", "--yes", "--grace", "2s"}, fast...)...)
			if r.code != 0 {
				t.Fatalf("reset: %s", r)
			}
			if v, code := verifyJSON(t, n); code != 0 || !v.Clean {
				t.Fatalf("verify after reset: exit %d %+v", code, v)
			}
			checkDecoys(t, n)
			snapshot(t, n)
		})
	}
}
