package cni

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type recorder struct {
	mu      sync.Mutex
	started []string
	done    map[string]error
}

func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, it.Target)
}

func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		r.done = map[string]error{}
	}
	if _, dup := r.done[it.Target]; dup {
		panic("reported twice: " + it.Target)
	}
	r.done[it.Target] = err
}

// node plants a host root with a flannel and a Calico network next to
// podman's and CRI-O's, and returns the decoys that must survive.
func node(t *testing.T) (*engine.Env, []string) {
	t.Helper()
	root := t.TempDir()
	put := func(p, content string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fixture := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata/net.d", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, f := range []string{"10-flannel.conflist", "10-calico.conflist", "87-podman-bridge.conflist", "100-crio-bridge.conflist", "200-loopback.conf"} {
		put("/etc/cni/net.d/"+f, fixture(f))
	}
	put("/etc/cni/net.d/calico-kubeconfig", "apiVersion: v1\nkind: Config\n")
	put("/etc/cni/net.d/README", "the user's notes\n")
	put("/var/lib/cni/networks/cbr0/10.244.0.2", cid)
	put("/var/lib/cni/networks/cbr0/last_reserved_ip.0", "10.244.0.2")
	put("/var/lib/cni/networks/cbr0/lock", "")
	put("/var/lib/cni/networks/podman/10.88.0.2", cid)
	put("/var/lib/cni/networks/crio/10.85.0.2", cid)
	put("/var/lib/cni/results/cbr0-"+cid+"-eth0", `{"kind":"cniCacheV1","networkName":"cbr0"}`)
	put("/var/lib/cni/results/cbr0-user-"+cid+"-eth0", `{"kind":"cniCacheV1","networkName":"cbr0-user"}`)
	put("/var/lib/cni/results/podman-"+cid+"-eth0", `{"kind":"cniCacheV1","networkName":"podman"}`)
	put("/var/lib/cni/flannel/"+cid, `{"type":"bridge"}`)
	put("/run/flannel/subnet.env", "FLANNEL_NETWORK=10.244.0.0/16\n")
	put("/var/lib/calico/nodename", "node-1")
	put("/home/user/flannel.conflist", fixture("10-flannel.conflist"))
	// A user's link dressed as a flannel config: never read, never removed,
	// and what it points to survives.
	if err := os.Symlink("/home/user/flannel.conflist", filepath.Join(root, "/etc/cni/net.d/11-flannel.conflist")); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	decoys := []string{"/etc/cni/net.d/87-podman-bridge.conflist", "/etc/cni/net.d/100-crio-bridge.conflist",
		"/etc/cni/net.d/200-loopback.conf", "/etc/cni/net.d/README", "/etc/cni/net.d/11-flannel.conflist",
		"/var/lib/cni/networks/podman/10.88.0.2", "/var/lib/cni/networks/crio/10.85.0.2",
		"/var/lib/cni/results/cbr0-user-" + cid + "-eth0", "/var/lib/cni/results/podman-" + cid + "-eth0",
		"/home/user/flannel.conflist"}
	return &engine.Env{Host: h, BackupDir: filepath.Join(root, "/var/lib/nodereset/backups/run")}, decoys
}

func targets(items []plan.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Target)
	}
	return out
}

func TestDiscoverApply(t *testing.T) {
	env, decoys := node(t)
	k := New(Options{StateDirs: []string{"/run/flannel", "/var/lib/calico", "/run/calico", "/var/lib/weave", "/var/lib/cni", "/var/lib", "/etc/cni"}, Backup: true})
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/var/lib/cni/results/cbr0-" + cid + "-eth0",
		"/var/lib/cni/networks/cbr0",
		"/run/flannel", "/var/lib/calico", "/var/lib/cni/flannel",
		"/etc/cni/net.d/calico-kubeconfig",
		"/etc/cni/net.d/10-calico.conflist", "/etc/cni/net.d/10-flannel.conflist",
	}
	if got := targets(items); !slices.Equal(got, want) {
		t.Fatalf("planned\n %v\nwant\n %v", got, want)
	}
	for _, it := range items {
		d := detailOf(it)
		wantAction := plan.ActionRemove
		if d.What == WhatConfig || d.What == WhatKubeconfig {
			wantAction = plan.ActionBackupRemove
		}
		if it.Action != wantAction || it.Reason == "" {
			t.Errorf("%s: action %s reason %q", it.Target, it.Action, it.Reason)
		}
	}

	rec := &recorder{}
	k.Apply(context.Background(), env, items, rec)
	for _, it := range items {
		if err, ok := rec.done[it.Target]; !ok || err != nil {
			t.Errorf("%s: reported %v, err %v", it.Target, ok, err)
		}
		if _, err := os.Lstat(env.Host.Path(it.Target)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", it.Target, err)
		}
	}
	for _, d := range decoys {
		if _, err := os.Lstat(env.Host.Path(d)); err != nil {
			t.Errorf("decoy %s: %v", d, err)
		}
	}
	backup := filepath.Join(env.BackupDir, "cni/etc/cni/net.d/10-flannel.conflist")
	if b, err := os.ReadFile(backup); err != nil || len(b) == 0 {
		t.Errorf("flannel config not backed up at %s: %v", backup, err)
	}
	again, err := k.Discover(context.Background(), env)
	if err != nil || len(again) != 0 {
		t.Errorf("after apply: %v %v", targets(again), err)
	}
	// A re-run of the same plan after a crash: everything is already gone.
	rec = &recorder{}
	k.Apply(context.Background(), env, items, rec)
	for _, it := range items {
		if err := rec.done[it.Target]; err != nil {
			t.Errorf("re-run %s: %v", it.Target, err)
		}
	}
}

func TestApplyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		target string
		change func(env *engine.Env, full string) error
		opts   Options
		noBack bool
	}{
		{name: "config rewritten by podman", target: "/etc/cni/net.d/10-flannel.conflist", change: func(_ *engine.Env, full string) error {
			b, err := os.ReadFile("testdata/net.d/87-podman-bridge.conflist")
			if err != nil {
				return err
			}
			return os.WriteFile(full, b, 0o644)
		}},
		{name: "lease dir swapped for a link", target: "/var/lib/cni/networks/cbr0", change: func(env *engine.Env, full string) error {
			if err := os.RemoveAll(full); err != nil {
				return err
			}
			return os.Symlink(env.Host.Path("/home/user"), full)
		}},
		{name: "backup asked, none configured", target: "/etc/cni/net.d/10-flannel.conflist", noBack: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := node(t)
			k := New(Options{Backup: true})
			items, err := k.Discover(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(items, func(it plan.Item) bool { return it.Target == tc.target })
			if i < 0 {
				t.Fatalf("%s not planned: %v", tc.target, targets(items))
			}
			full := env.Host.Path(tc.target)
			if tc.change != nil {
				if err := tc.change(env, full); err != nil {
					t.Fatal(err)
				}
			}
			if tc.noBack {
				env.BackupDir = ""
			}
			rec := &recorder{}
			k.Apply(context.Background(), env, items[i:i+1], rec)
			if rec.done[tc.target] == nil {
				t.Fatalf("%s applied, want a refusal", tc.target)
			}
			if _, err := os.Lstat(full); err != nil {
				t.Errorf("refused %s is gone: %v", tc.target, err)
			}
		})
	}
}

func TestApplyRefusesForeignTarget(t *testing.T) {
	env, _ := node(t)
	k := New(Options{})
	it := plan.Item{Kind: plan.KindCNIFile, Target: "/home/user", Action: plan.ActionRemove, Detail: Detail{What: WhatState}}
	rec := &recorder{}
	k.Apply(context.Background(), env, []plan.Item{it}, rec)
	if rec.done["/home/user"] == nil {
		t.Fatal("removed a path that is no CNI state")
	}
	if _, err := os.Stat(env.Host.Path("/home/user/flannel.conflist")); err != nil {
		t.Fatal(err)
	}
}
