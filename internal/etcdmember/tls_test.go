package etcdmember

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
)

func TestDefaultTLS(t *testing.T) {
	files := []string{"ca.crt", "healthcheck-client.crt", "healthcheck-client.key"}
	tests := []struct {
		name   string
		create []string
		link   bool // pki/etcd is a symlink inside the root
		wantOK bool
	}{
		{"all three", files, false, true},
		{"through a symlink inside the root", files, true, true},
		{"key missing", files[:2], false, false},
		{"nothing", nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "etc/kubernetes/pki/etcd")
			if tt.link {
				dir = filepath.Join(root, "srv/etcd-pki")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.link {
				if err := os.MkdirAll(filepath.Join(root, "etc/kubernetes/pki"), 0o755); err != nil {
					t.Fatal(err)
				}
				// An absolute link, as on the host: it must resolve inside the root.
				if err := os.Symlink("/srv/etcd-pki", filepath.Join(root, "etc/kubernetes/pki/etcd")); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.create {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			h, err := host.New(root)
			if err != nil {
				t.Fatal(err)
			}
			ca, cert, key, ok := DefaultTLS(h)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				if ca != "" || cert != "" || key != "" {
					t.Errorf("paths without ok: %q %q %q", ca, cert, key)
				}
				return
			}
			for i, p := range []string{ca, cert, key} {
				if want := filepath.Join(dir, files[i]); p != want {
					t.Errorf("path %d = %q, want %q", i, p, want)
				}
			}
		})
	}
}

func TestPlanRemovalBadOptions(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.crt")
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no endpoints", Options{}, "no etcd endpoints"},
		{"unreadable client certificate", Options{Endpoints: []string{"https://127.0.0.1:1"}, CACert: missing, Cert: missing, Key: missing}, "client certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanRemoval(t.Context(), tt.o, Target{Name: "n"})
			var ce *ClusterError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a *ClusterError about %q", err, tt.want)
			}
		})
	}
}
