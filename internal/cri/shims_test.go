package cri

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
)

func TestShimArgs(t *testing.T) {
	tests := []struct {
		file                 string
		namespace, id, addr  string
		wantDebug, wantOther string
	}{
		{"cmdline-shim-v2", "k8s.io", "abc123", "/run/containerd/containerd.sock", "", ""},
		// A workdir path holding "k8s.io" is not the namespace.
		{"cmdline-shim-v1-moby", "moby", "", "/run/containerd/containerd.sock", "true", "/usr/bin/containerd"},
		{"cmdline-shim-eq", "k8s.io", "k8s.io", "/run/k3s/containerd/containerd.sock", "true", ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			a := ShimFlags(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
			if a["namespace"] != tc.namespace || a["id"] != tc.id || a["address"] != tc.addr || a["debug"] != tc.wantDebug || a["containerd-binary"] != tc.wantOther {
				t.Errorf("parsed %v", a)
			}
		})
	}
}

func TestIsShimExe(t *testing.T) {
	for exe, want := range map[string]bool{
		"/usr/bin/containerd-shim-runc-v2":                                  true,
		"/usr/bin/containerd-shim":                                          true,
		"/var/lib/rancher/k3s/data/x/bin/containerd-shim-runc-v2 (deleted)": true,
		"/usr/bin/containerd-shimmer":                                       false,
		"/usr/bin/containerd":                                               false,
		"/home/user/containerd-shim-runc-v2.sh.bak/tool":                    false,
	} {
		if got := IsShimExe(exe); got != want {
			t.Errorf("IsShimExe(%q) = %v, want %v", exe, got, want)
		}
	}
}

func TestSameSocket(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "run/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run", filepath.Join(root, "var-run")); err != nil {
		t.Fatal(err)
	}
	h, _ := host.New(root)
	ep := endpoint{HostPath: "/run/containerd/containerd.sock", Path: filepath.Join(root, "run/containerd/containerd.sock")}
	tests := []struct {
		addr string
		want bool
	}{
		{"/run/containerd/containerd.sock", true},        // host-side, seen from a container over /host
		{root + "/run/containerd/containerd.sock", true}, // already under the root (same mount namespace)
		{"unix:///run/containerd/containerd.sock", true}, // URL form
		{"/var-run/containerd/containerd.sock", true},    // through a link
		{"/run/k3s/containerd/containerd.sock", false},   // another runtime
		{"/run/containerd/containerd.sock.ttrpc", false}, // not a prefix match
		{"run/containerd/containerd.sock", false},        // relative
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := sameSocket(h, tc.addr, ep); got != tc.want {
				t.Errorf("sameSocket(%q) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

func TestDescendants(t *testing.T) {
	tree := map[int][]int{1: {10, 20}, 10: {11, 12}, 12: {13}, 20: {21}}
	got := descendants(tree, 10)
	if len(got) != 3 || got[0] != 11 || got[1] != 12 || got[2] != 13 {
		t.Errorf("descendants(10) = %v", got)
	}
	if d := descendants(tree, 99); len(d) != 0 {
		t.Errorf("descendants of a leaf: %v", d)
	}
}
