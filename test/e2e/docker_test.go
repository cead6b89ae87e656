package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// dockerNode starts a sandbox node with a real dockerd (feature "docker"):
// RKE1 system containers, the Rancher agent, dockershim pods, and the
// user's containers and volume as decoys.
func dockerNode(t *testing.T) *sandbox.Node {
	t.Helper()
	testns.Root(t)
	testns.Command(t, "nsenter")
	testns.Command(t, "dockerd")
	testns.Command(t, "busybox")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	n, err := sandbox.Start(ctx, sandbox.Options{
		Nodesim: bins.nodesim, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Pods: 1, Volumes: 1, Features: []string{"docker"}, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Logf("docker sandbox up in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close sandbox: %v", err)
		}
	})
	return n
}

// dockerDecoys are the user's container names, from the decoy state.
func dockerDecoys(t *testing.T, m sandbox.Manifest) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, st := range m.Decoys.States {
		if st.Name != "docker" {
			continue
		}
		for _, l := range strings.Split(st.Want, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "container" {
				out["docker:"+strings.TrimPrefix(f[1], "/")] = true
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the sandbox recorded no Docker decoys")
	}
	return out
}

// TestDockerReset: on an RKE1-style node with a real dockerd the plan lists
// every kubelet, RKE and Rancher agent container as kind container and no
// user container; a dry run changes nothing; reset removes them all while
// the user's containers keep running with their volume; verify is clean.
func TestDockerReset(t *testing.T) {
	n := dockerNode(t)
	m := n.Manifest()
	decoys := dockerDecoys(t, m)
	want := map[string]bool{}
	for _, e := range m.Expected {
		if e.Kind == plan.KindContainer {
			want[e.Target] = true
		}
	}
	if len(want) < 15 {
		t.Fatalf("the sandbox planted only %d Docker containers", len(want))
	}

	planned := func() map[string]bool {
		got := map[string]bool{}
		for _, it := range planJSON(t, n).Items() {
			if it.Kind != plan.KindContainer {
				continue
			}
			if decoys[it.Target] {
				t.Errorf("user container planned: %+v", it)
			}
			got[it.Target] = true
		}
		return got
	}
	got := planned()
	for w := range want {
		if !got[w] {
			t.Errorf("planted %s is missing from the plan", w)
		}
	}
	for g := range got {
		if !want[g] {
			t.Errorf("plan has %s, which was not planted", g)
		}
	}

	if r := nodereset(t, n, "reset", "--dry-run"); r.code != 0 {
		t.Fatalf("reset --dry-run: %s", r)
	}
	if again := planned(); len(again) != len(got) {
		t.Fatalf("dry run changed the containers: %d planned before, %d after", len(got), len(again))
	}

	start := time.Now()
	r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	t.Logf("reset in %v", time.Since(start).Round(time.Millisecond))
	if left := planned(); len(left) != 0 {
		t.Errorf("containers left after reset: %v", left)
	}
	if v, code := verifyJSON(t, n); code != 0 || !v.Clean {
		t.Errorf("verify after reset: exit %d %+v", code, v)
	}
	checkDecoys(t, n) // the user's containers run, their volume is there
}
