package e2e

import (
	"testing"

	"github.com/nodereset/nodereset/pkg/plan"
)

// TestEscapedMountNames: mount points with a space, a tab, a backslash and
// a newline are escaped in mountinfo (\040, \011, \134, \012). nodereset
// must plan them by their real names and unmount them; a look-alike outside
// the kubelet root stays.
func TestEscapedMountNames(t *testing.T) {
	n := node(t, 1, 1)
	root := n.Manifest().Root
	vol := "/var/lib/kubelet/pods/5b1dffff-0000-4000-8000-000000000000/volumes/kubernetes.io~secret/"
	names := []string{vol + "a b", vol + "tab\there", vol + `back\slash`, vol + "new\nline"}
	decoy := "/var/lib/kubelet-old/a b"
	for _, p := range append(names, decoy) {
		// Planted inside the sandbox's mount namespace (its /run is
		// private, so mount(8) writes nothing of the host's).
		if out, err := n.Command(t.Context(), "/bin/sh", "-c", `mkdir -p "$1" && mount -t tmpfs tmpfs "$1"`, "sh", root+p).CombinedOutput(); err != nil {
			t.Fatalf("plant %q: %v %s", p, err, out)
		}
	}
	p := planJSON(t, n)
	planned := map[string]bool{}
	for _, it := range p.Items() {
		if it.Kind == plan.KindMount {
			planned[it.Target] = true
		}
	}
	for _, name := range names {
		if !planned[name] {
			t.Errorf("mount %q is not planned", name)
		}
	}
	if planned[decoy] {
		t.Errorf("decoy %q planned", decoy)
	}
	if r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...); r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	mounted := mountPoints(t, n)
	for _, name := range names {
		if mounted[root+name] {
			t.Errorf("%q still mounted", name)
		}
	}
	if !mounted[root+decoy] {
		t.Errorf("decoy %q was unmounted", decoy)
	}
	checkDecoys(t, n)
}
