package e2e

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// TestPlanFindsEveryOwnedItemAndNoDecoy: the plan lists every planted
// Kubernetes item, nothing a decoy owns, and plan and reset --dry-run
// change nothing.
func TestPlanFindsEveryOwnedItemAndNoDecoy(t *testing.T) {
	n := node(t, 4, 4)
	m := n.Manifest()
	before := snapshot(t, n)

	p := planJSON(t, n)
	// Counted, not just looked up: stacked mounts share a target.
	planned := map[string]int{}
	for _, it := range p.Items() {
		if it.Kind == "" || it.Target == "" || it.Action == "" {
			t.Errorf("item without kind, target or action: %+v", it)
		}
		planned[string(it.Kind)+" "+it.Target]++
	}
	for _, e := range m.Expected {
		planned[string(e.Kind)+" "+e.Target]--
	}
	for key, n := range planned {
		switch {
		case n < 0:
			t.Errorf("planted %s is missing from the plan (%d times)", key, -n)
		case n > 0:
			t.Errorf("plan has %s %d more times than planted", key, n)
		}
	}
	assertNoDecoyPlanned(t, m, p)

	if r := nodereset(t, n, "reset", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "Plan for sandbox-node") {
		t.Fatalf("reset --dry-run: %s", r)
	}
	if after := snapshot(t, n); after != before {
		t.Fatalf("plan or dry run changed the node:\n%s", sandbox.FirstDiff(before, after))
	}
	checkDecoys(t, n)
}

func assertNoDecoyPlanned(t *testing.T, m sandbox.Manifest, p *plan.Plan) {
	t.Helper()
	decoyPIDs := map[string]bool{}
	for _, d := range m.Decoys.Processes {
		decoyPIDs[strconv.Itoa(d.PID)] = true
	}
	var decoyPaths []string
	for _, f := range m.Decoys.Files {
		decoyPaths = append(decoyPaths, f.Path)
	}
	for _, d := range m.Decoys.Mounts {
		decoyPaths = append(decoyPaths, d.Point)
	}
	for _, u := range m.Decoys.Units {
		decoyPaths = append(decoyPaths, u.Symlink)
	}
	for _, it := range p.Items() {
		if it.Kind == plan.KindProcess && decoyPIDs[it.Target] {
			t.Errorf("decoy process planned: %+v", it)
		}
		for _, d := range decoyPaths {
			// A decoy below a planned directory is fine only when it is a
			// link's target, which the path kind never follows; a decoy
			// that is itself planned, or that contains a planned item, is not.
			if it.Target == d || host.Under(d, it.Target) && it.Kind != plan.KindPath {
				t.Errorf("decoy %s planned by %+v", d, it)
			}
		}
		if it.Kind == plan.KindService && (it.Target == "ssh.service" || it.Target == "kube-watch.service") {
			t.Errorf("decoy unit planned: %+v", it)
		}
	}
}

// TestResetCleansAndKeepsDecoys is the main job: reset --yes removes every
// owned item, verify exits 0, every decoy is intact, and a second reset has
// nothing to do.
func TestResetCleansAndKeepsDecoys(t *testing.T) {
	n := node(t, 6, 4)
	r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	if !strings.Contains(r.stdout, "Verify: clean") {
		t.Errorf("reset did not report a clean verify: %s", r)
	}
	v, code := verifyJSON(t, n)
	if code != 0 || !v.Clean || len(v.Residue) != 0 {
		t.Fatalf("verify after reset: exit %d %+v", code, v)
	}
	checkDecoys(t, n)

	again := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if again.code != 0 || !strings.Contains(again.stdout, "Nothing to do") {
		t.Fatalf("second reset: %s", again)
	}

	// The precious state went to the backup, not away.
	ls := n.Command(t.Context(), "find", n.Manifest().Root+"/var/lib/nodereset/backups", "-name", "ca.crt")
	out, err := ls.Output()
	if err != nil || strings.Count(string(out), "ca.crt") < 2 { // pki/ca.crt and pki/etcd/ca.crt
		t.Errorf("backup of PKI missing: %q %v", out, err)
	}
}

// TestVerifyFindsResidue: verify on the dirty node exits 1 and names the
// leftovers and the failing rejoin checks.
func TestVerifyFindsResidue(t *testing.T) {
	n := node(t, 2, 2)
	v, code := verifyJSON(t, n)
	if code != 1 || v.Clean {
		t.Fatalf("verify on a dirty node: exit %d clean %v", code, v.Clean)
	}
	if len(v.Residue) != len(n.Manifest().Expected) {
		t.Errorf("residue %d items, planted %d", len(v.Residue), len(n.Manifest().Expected))
	}
	failing := map[string]bool{}
	for _, c := range v.Checks {
		if !c.OK {
			failing[c.Name] = true
		}
	}
	for _, name := range []string{"ports free", "join files absent", "manifest dirs empty"} {
		if !failing[name] {
			t.Errorf("check %q passed on a dirty node", name)
		}
	}
}
