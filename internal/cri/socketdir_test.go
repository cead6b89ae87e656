package cri

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSameSocketDir: a shim is the endpoint's only when its -address, seen
// from the shim's own root, is in the same directory (by inode) as the
// endpoint's socket; the same text in another root is not enough.
func TestSameSocketDir(t *testing.T) {
	proc := t.TempDir()
	ours, other := t.TempDir(), t.TempDir()
	for _, r := range []string{ours, other} {
		if err := os.MkdirAll(filepath.Join(r, "run/containerd"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// proc/1/root is the shim's root: a symlink, as in procfs.
	link := func(pid, root string) {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(root, filepath.Join(proc, pid, "root")); err != nil {
			t.Fatal(err)
		}
	}
	link("1", ours)
	link("2", other)
	ep := endpoint{Path: filepath.Join(ours, "run/containerd/containerd.sock")}
	tests := []struct {
		name    string
		pid     int
		address string
		want    bool
	}{
		{"same root, socket gone", 1, "/run/containerd/containerd.sock", true},
		{"unix URL", 1, "unix:///run/containerd/containerd.sock", true},
		{"same text in another root", 2, "/run/containerd/containerd.sock", false},
		{"another directory", 1, "/run/k3s/containerd/containerd.sock", false},
		{"no such process", 3, "/run/containerd/containerd.sock", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameSocketDir(proc, tc.pid, tc.address, ep); got != tc.want {
				t.Errorf("sameSocketDir(%d, %q) = %v, want %v", tc.pid, tc.address, got, tc.want)
			}
		})
	}
}

// TestCRICreated: only bundles the CRI plugin annotated are the kubelet's;
// a task started by hand in the k8s.io namespace is not.
func TestCRICreated(t *testing.T) {
	tests := []struct {
		name string
		spec map[string]string
		want bool
	}{
		{"sandbox", map[string]string{annContainerType: "sandbox", annSandboxName: "web", annSandboxNamespace: "default"}, true},
		{"container", map[string]string{annContainerType: "container", annSandboxID: "abc"}, true},
		{"sandbox without its pod", map[string]string{annContainerType: "sandbox"}, false},
		{"container without its sandbox", map[string]string{annContainerType: "container"}, false},
		{"nerdctl task", map[string]string{"nerdctl/name": "mine"}, false},
		{"no spec", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := criCreated(tc.spec); got != tc.want {
				t.Errorf("criCreated = %v, want %v", got, tc.want)
			}
		})
	}
}
