package preflight

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
)

func env(t *testing.T, root string) *engine.Env {
	t.Helper()
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestFilesAndDirs(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"etc/kubernetes/kubelet.conf", "etc/kubernetes/manifests/etcd.yaml"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := env(t, root)
	tests := []struct {
		name  string
		check engine.Check
		want  []string
	}{
		{"present file", FilesAbsent{"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt"}, []string{"/etc/kubernetes/kubelet.conf exists"}},
		{"nothing present", FilesAbsent{"/nope"}, nil},
		{"non-empty dir", DirsEmpty{"/etc/kubernetes/manifests", "/empty", "/missing"}, []string{"/etc/kubernetes/manifests is not empty (1 entries)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.check.Run(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPorts listens in a network namespace of its own and expects exactly
// that port reported, with this process as its holder.
func TestPorts(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID|testns.Net) {
		return
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:10250")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := Ports{10250, 1025, 2379}.Run(context.Background(), env(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("port 10250 is in use by pid %d ", os.Getpid())) {
		t.Errorf("got %q", got)
	}
}
