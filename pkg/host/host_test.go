package host

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestUnder(t *testing.T) {
	tests := []struct {
		p, dir string
		want   bool
	}{
		{"/var/lib/kubelet", "/var/lib/kubelet", true},
		{"/var/lib/kubelet/pods/x", "/var/lib/kubelet", true},
		{"/var/lib/kubelet-old", "/var/lib/kubelet", false},
		{"/var/lib/kubelet-old/x", "/var/lib/kubelet", false},
		{"/var/lib", "/var/lib/kubelet", false},
		{"/var/lib/kubelet/", "/var/lib/kubelet", true},
		{"/anything", "/", true},
	}
	for _, tc := range tests {
		t.Run(tc.p+" in "+tc.dir, func(t *testing.T) {
			if got := Under(tc.p, tc.dir); got != tc.want {
				t.Errorf("Under(%q, %q) = %v", tc.p, tc.dir, got)
			}
		})
	}
}

func TestPathsUnderRoot(t *testing.T) {
	root := t.TempDir()
	h, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	// An absolute symlink inside the root must resolve inside it.
	if err := os.MkdirAll(filepath.Join(root, "data/kubelet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/data/kubelet", filepath.Join(root, "var/lib/kubelet")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, got, want string
	}{
		{"path is lexical", h.Path("/var/lib/kubelet"), filepath.Join(root, "var/lib/kubelet")},
		{"path cannot climb out", h.Path("/../../etc/passwd"), filepath.Join(root, "etc/passwd")},
		{"resolve follows links inside the root", must(h.Resolve("/var/lib/kubelet")), filepath.Join(root, "data/kubelet")},
		{"rel strips the root", must(h.Rel(filepath.Join(root, "var/lib/kubelet/pods"))), "/var/lib/kubelet/pods"},
		{"rel of the root", must(h.Rel(root)), "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
	if _, err := h.Rel("/etc/passwd"); !errors.Is(err, ErrOutside) {
		t.Errorf("Rel outside the root: %v", err)
	}
}

func must(s string, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

func TestNew(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"/does/not/exist", file} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
	h, err := New("")
	if err != nil || h.Root() != "/" {
		t.Errorf("New(\"\") = %v, %v", h, err)
	}
}
