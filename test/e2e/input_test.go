package e2e

import (
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/sandbox"
)

// TestBadInput: wrong flags, a missing host root, a corrupt journal and a
// missing confirmation give a clear error, exit 2 and change nothing.
func TestBadInput(t *testing.T) {
	n := node(t, 2, 2)
	root := n.Manifest().Root
	before := snapshot(t, n)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"host root does not exist", []string{"--host-root", "/nonexistent/host", "plan"}, "/nonexistent/host"},
		{"bad output format", []string{"plan", "-o", "xml"}, "use text, json or yaml"},
		{"no terminal, no --yes", []string{"reset"}, "pass --yes"},
		{"unknown flag", []string{"plan", "--frobnicate"}, "frobnicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := nodereset(t, n, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit 2 naming %q: %s", tc.want, r)
			}
			if strings.Contains(r.stderr, "panic") {
				t.Errorf("panicked: %s", r)
			}
		})
	}
	if after := snapshot(t, n); after != before {
		t.Fatalf("bad input changed the node:\n%s", sandbox.FirstDiff(before, after))
	}

	t.Run("corrupt journal", func(t *testing.T) {
		const run = "/var/lib/nodereset/backups/20260101T000000Z"
		// Written inside the sandbox's mount namespace: its root is a tmpfs there.
		script := "mkdir -p " + root + run + " && printf '{\"event\":\"begin\"}\\ngarbage\\n{\"event\":\"start\"}\\n' > " + root + run + "/journal.jsonl"
		if out, err := n.Command(t.Context(), "/bin/sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("plant journal: %v %s", err, out)
		}
		snap := snapshot(t, n)
		r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "journal") || !strings.Contains(r.stderr, "corrupt") {
			t.Errorf("want exit 2 naming the corrupt journal: %s", r)
		}
		if after := snapshot(t, n); after != snap {
			t.Errorf("a corrupt journal must stop the run before any change:\n%s", sandbox.FirstDiff(snap, after))
		}
	})
}
