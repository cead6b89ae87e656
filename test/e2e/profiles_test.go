package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// profileCase is one distribution's sandbox layout and how it is reset.
type profileCase struct {
	layout string
	// args select the profile for plan and reset ("" = detection).
	args []string
	// want is the profile plan -o json names (merged with "+").
	want string
	// evidence must appear in the plan's JSON.
	evidence string
	// backup is a file name that must be found in the run's backup.
	backup string
}

var profileCases = []profileCase{
	{layout: "kubespray", want: "kubeadm+kubespray", evidence: "kubespray: found /etc/etcd.env", backup: "etcd.env"},
	{layout: "rke1", want: "rke1", evidence: "rke1: found /etc/kubernetes/ssl/kube-ca.pem", backup: "2024-01-01T00:00:00Z_etcd.zip"},
	// K3s leftovers sit beside RKE2: --profile rke2 must not touch them.
	{layout: "rke2", args: []string{"--profile", "rke2"}, want: "rke2", evidence: "rke2: unit rke2-server.service", backup: "token"},
	{layout: "k3s", want: "k3s", evidence: "k3s: unit k3s.service", backup: "token"},
	{layout: "k3s-custom", want: "k3s", evidence: "k3s: data-dir /srv/k3s-data", backup: "token"},
	{layout: "rancher", want: "rke2+rancher", evidence: "rancher: unit rancher-system-agent.service", backup: "connection-info.json"},
}

func profileNode(t *testing.T, layout string) *sandbox.Node {
	t.Helper()
	testns.Root(t)
	testns.Command(t, "nsenter")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := sandbox.Start(ctx, sandbox.Options{Nodesim: bins.nodesim, Root: filepath.Join(dir, "root"),
		State: filepath.Join(dir, "state"), Pods: 2, Volumes: 2, Profile: layout})
	if err != nil {
		t.Fatalf("start %s sandbox: %v", layout, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close sandbox: %v", err)
		}
	})
	return n
}

// TestProfiles: for each distribution's layout, the plan names the
// profile with its evidence and holds every planted item and no decoy;
// reset leaves verify clean, the decoys (another distribution's files
// among them) intact and the precious state in the backup.
func TestProfiles(t *testing.T) {
	for _, tc := range profileCases {
		t.Run(tc.layout, func(t *testing.T) {
			t.Parallel()
			n := profileNode(t, tc.layout)
			m := n.Manifest()

			r := nodereset(t, n, append([]string{"plan", "-o", "json"}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("plan: %s", r)
			}
			p := decodePlan(t, r.stdout)
			if got := strings.Join(p.Profiles, "+"); got != tc.want {
				t.Errorf("plan profiles %q, want %q", got, tc.want)
			}
			if !strings.Contains(r.stdout, tc.evidence) {
				t.Errorf("plan JSON lacks the evidence %q:\n%s", tc.evidence, r.stdout)
			}
			planned := map[string]int{}
			for _, it := range p.Items() {
				planned[string(it.Kind)+" "+it.Target]++
			}
			for _, e := range m.Expected {
				planned[string(e.Kind)+" "+e.Target]--
			}
			for key, c := range planned {
				if c < 0 {
					t.Errorf("planted %s is missing from the plan", key)
				} else if c > 0 {
					t.Errorf("plan has %s, which was not planted", key)
				}
			}
			assertNoDecoyPlanned(t, m, p)

			r = nodereset(t, n, append(append([]string{"reset", "--yes"}, fast...), tc.args...)...)
			if r.code != 0 {
				t.Fatalf("reset: %s", r)
			}
			// Verify checks the same profile, which may have lost its
			// evidence with the reset (RKE1's certs): --force.
			vr := nodereset(t, n, "verify", "-o", "json", "--profile", strings.ReplaceAll(tc.want, "+", ","), "--force")
			if vr.code != 0 {
				t.Errorf("verify after reset: %s", vr)
			}
			checkDecoys(t, n)
			out, err := n.Command(t.Context(), "find", m.Root+"/var/lib/nodereset/backups", "-name", tc.backup).Output()
			if err != nil || !strings.Contains(string(out), tc.backup) {
				t.Errorf("backup of %s missing: %q %v", tc.backup, out, err)
			}
		})
	}
}

// TestProfileMismatch: --profile naming a distribution that is not on the
// host is a clear error, and --force overrides it.
func TestProfileMismatch(t *testing.T) {
	n := profileNode(t, "k3s")
	r := nodereset(t, n, "plan", "--profile", "rke1")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "--force") {
		t.Fatalf("plan --profile rke1 on a K3s node: %s", r)
	}
	before := snapshot(t, n)
	if r := nodereset(t, n, "plan", "-o", "json", "--profile", "rke1", "--force"); r.code != 0 {
		t.Fatalf("plan --profile rke1 --force: %s", r)
	}
	if after := snapshot(t, n); after != before {
		t.Fatalf("plan changed the node:\n%s", sandbox.FirstDiff(before, after))
	}
}

func decodePlan(t *testing.T, out string) *plan.Plan {
	t.Helper()
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	return &p
}
