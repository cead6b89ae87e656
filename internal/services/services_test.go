package services

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

type file struct{ path, link, content string }

func build(t *testing.T, files []file) *engine.Env {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if f.link != "" {
			err = os.Symlink(f.link, p)
		} else {
			err = os.WriteFile(p, []byte(f.content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// offline: the test root has no /run/systemd/system, as on this machine.
func offline(context.Context, *host.Host) (Manager, error) { return nil, nil }

var units = []string{"kubelet.service", "etcd.service", "kube-proxy.service"}

func TestDiscover(t *testing.T) {
	tests := []struct {
		name  string
		files []file
		want  map[string]int // unit -> number of links
	}{
		{"nothing installed", nil, map[string]int{}},
		{"installed but not enabled", []file{{path: "/lib/systemd/system/kubelet.service", content: "[Unit]"}}, map[string]int{}},
		{"enabled in two targets", []file{
			{path: "/lib/systemd/system/kubelet.service", content: "[Unit]"},
			{path: "/etc/systemd/system/multi-user.target.wants/kubelet.service", link: "/lib/systemd/system/kubelet.service"},
			{path: "/etc/systemd/system/graphical.target.requires/kubelet.service", link: "/lib/systemd/system/kubelet.service"},
		}, map[string]int{"kubelet.service": 2}},
		{"masked", []file{
			{path: "/etc/systemd/system/etcd.service", link: "/dev/null"},
			{path: "/etc/systemd/system/multi-user.target.wants/etcd.service", link: "/etc/systemd/system/etcd.service"},
		}, map[string]int{}},
		{"similar names are not ours", []file{
			{path: "/lib/systemd/system/kubelet-old.service", content: "[Unit]"},
			{path: "/etc/systemd/system/multi-user.target.wants/kubelet-old.service", link: "/lib/systemd/system/kubelet-old.service"},
			{path: "/etc/systemd/system/multi-user.target.wants/ssh.service", link: "/lib/systemd/system/ssh.service"},
		}, map[string]int{}},
		{"a regular file in wants is not a link", []file{
			{path: "/etc/systemd/system/kube-proxy.service", content: "[Unit]"},
			{path: "/etc/systemd/system/multi-user.target.wants/kube-proxy.service", content: "x"},
		}, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := build(t, tc.files)
			items, err := New(Options{Units: units, Connect: offline}).Discover(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, it := range items {
				if it.Kind != plan.KindService || it.Action != plan.ActionStopDisable {
					t.Errorf("item %+v", it)
				}
				got[it.Target] = len(it.Detail.(Detail).Links)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for u, n := range tc.want {
				if got[u] != n {
					t.Errorf("%s: %d links, want %d", u, got[u], n)
				}
			}
		})
	}
}

type recorder struct {
	mu   sync.Mutex
	errs map[string]error
}

func (r *recorder) Start(plan.Item) {}
func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[it.Target] = err
}

func TestApplyOffline(t *testing.T) {
	env := build(t, []file{
		{path: "/lib/systemd/system/kubelet.service", content: "[Unit]"},
		{path: "/etc/systemd/system/multi-user.target.wants/kubelet.service", link: "/lib/systemd/system/kubelet.service"},
		{path: "/lib/systemd/system/ssh.service", content: "[Unit]"},
		{path: "/etc/systemd/system/multi-user.target.wants/ssh.service", link: "/lib/systemd/system/ssh.service"},
	})
	k := New(Options{Units: units, Connect: offline})
	items, err := k.Discover(context.Background(), env)
	if err != nil || len(items) != 1 {
		t.Fatalf("discover: %v %v", items, err)
	}
	rec := &recorder{errs: map[string]error{}}
	k.Apply(context.Background(), env, items, rec)
	if err, ok := rec.errs["kubelet.service"]; !ok || err != nil {
		t.Fatalf("kubelet.service: reported=%v err=%v", ok, err)
	}
	root := env.Host.Root()
	if _, err := os.Lstat(filepath.Join(root, "/etc/systemd/system/multi-user.target.wants/kubelet.service")); !os.IsNotExist(err) {
		t.Errorf("enablement link still there: %v", err)
	}
	for _, keep := range []string{"/lib/systemd/system/kubelet.service", "/etc/systemd/system/multi-user.target.wants/ssh.service"} {
		if _, err := os.Lstat(filepath.Join(root, keep)); err != nil {
			t.Errorf("%s must survive: %v", keep, err)
		}
	}
	again, err := k.Discover(context.Background(), env)
	if err != nil || len(again) != 0 {
		t.Errorf("second discover: %v %v", again, err)
	}
}
