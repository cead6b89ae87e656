package staticpods

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

func TestStaticPodPath(t *testing.T) {
	tests := []struct {
		file    string
		want    string
		wantErr bool
	}{
		{"kubelet-config.yaml", "/etc/kubernetes/manifests", false},
		{"kubelet-config-nostatic.yaml", "", false},
		{"kubelet-config-malformed.yaml", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := StaticPodPath(b)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("StaticPodPath = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// newEnv makes a host root with the testdata manifests in
// /etc/kubernetes/manifests, plus things the kubelet ignores.
func newEnv(t *testing.T) *engine.Env {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "etc/kubernetes/manifests")
	for _, d := range []string{dir + "/subdir", root + "/srv"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etcd.yaml", "nons.yaml", "broken.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, ".etcd.yaml.swp"), []byte("x"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "subdir/inner.yaml"), []byte("x"), 0o600))
	must(t, os.WriteFile(root+"/srv/user.yaml", []byte("metadata: {name: mine, namespace: user}"), 0o600))
	// An absolute link: resolved inside the host root, not on this machine.
	must(t, os.Symlink("/srv/user.yaml", filepath.Join(dir, "linked.yaml")))
	h, err := host.New(root)
	must(t, err)
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDiscover(t *testing.T) {
	const dir = "/etc/kubernetes/manifests"
	tests := []struct {
		name   string
		opts   Options
		action plan.Action
		want   map[string]string // target -> reason
	}{
		{
			name: "backup", opts: Options{Dirs: []string{dir}, Backup: true}, action: plan.ActionBackupRemove,
			want: map[string]string{
				dir + "/etcd.yaml":   "static pod kube-system/etcd (kubelet staticPodPath " + dir + ")",
				dir + "/nons.yaml":   "static pod default/web (kubelet staticPodPath " + dir + ")",
				dir + "/broken.yaml": "static pod file broken.yaml (kubelet staticPodPath " + dir + ")",
				dir + "/linked.yaml": "static pod user/mine (kubelet staticPodPath " + dir + ")",
			},
		},
		{
			name: "no backup, missing dir ignored", opts: Options{Dirs: []string{"/var/lib/rancher/rke2/agent/pod-manifests", dir}}, action: plan.ActionRemove,
			want: map[string]string{dir + "/etcd.yaml": "", dir + "/nons.yaml": "", dir + "/broken.yaml": "", dir + "/linked.yaml": ""},
		},
		{name: "no dirs", opts: Options{}, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			items, err := New(tt.opts).Discover(context.Background(), env)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			got := map[string]bool{}
			for _, it := range items {
				got[it.Target] = true
				want, ok := tt.want[it.Target]
				if !ok {
					t.Errorf("unexpected item %+v", it)
					continue
				}
				if it.Kind != plan.KindStaticPod || it.Action != tt.action || (want != "" && it.Reason != want) {
					t.Errorf("item %+v, want action %s reason %q", it, tt.action, want)
				}
			}
			for target := range tt.want {
				if !got[target] {
					t.Errorf("missing item %s", target)
				}
			}
		})
	}
}

type recorder struct{ done map[string]error }

func (r *recorder) Start(plan.Item) {}
func (r *recorder) Done(it plan.Item, err error) {
	if _, dup := r.done[it.Key()]; dup {
		panic("Done twice for " + it.Key())
	}
	r.done[it.Key()] = err
}

func TestApply(t *testing.T) {
	const dir = "/etc/kubernetes/manifests"
	for _, backup := range []bool{false, true} {
		t.Run(map[bool]string{false: "remove", true: "backup"}[backup], func(t *testing.T) {
			env := newEnv(t)
			env.BackupDir = env.Host.Path("/var/lib/nodereset/backup/1")
			k := New(Options{Dirs: []string{dir}, Backup: backup})
			items, err := k.Discover(context.Background(), env)
			must(t, err)
			rec := &recorder{done: map[string]error{}}
			k.Apply(context.Background(), env, items, rec)
			for _, it := range items {
				if err := rec.done[it.Key()]; err != nil {
					t.Errorf("%s: %v", it.Target, err)
				}
			}
			left, _ := os.ReadDir(env.Host.Path(dir))
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, []string{".etcd.yaml.swp", "subdir"}) {
				t.Errorf("left %v, want the dotfile and the subdir", names)
			}
			if b, err := os.ReadFile(env.Host.Path("/srv/user.yaml")); err != nil || !strings.Contains(string(b), "mine") {
				t.Errorf("symlink target touched: %q %v", b, err)
			}
			_, err = os.Lstat(filepath.Join(env.BackupDir, "static-pods", "etcd.yaml"))
			if backup && err != nil {
				t.Errorf("etcd.yaml not backed up: %v", err)
			}
			if !backup && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("backup written without backups: %v", err)
			}
			if backup {
				if l, err := os.Readlink(filepath.Join(env.BackupDir, "static-pods", "linked.yaml")); err != nil || l != "/srv/user.yaml" {
					t.Errorf("link backed up as %q, %v", l, err)
				}
			}
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	env := newEnv(t)
	k := New(Options{Dirs: []string{"/etc/kubernetes/manifests"}, Backup: true})
	items := []plan.Item{
		{Kind: plan.KindStaticPod, Target: "/srv/user.yaml", Action: plan.ActionRemove},
		{Kind: plan.KindStaticPod, Target: "/etc/kubernetes/manifests/subdir", Action: plan.ActionRemove},
		{Kind: plan.KindStaticPod, Target: "/etc/kubernetes/manifests/etcd.yaml", Action: plan.ActionBackupRemove},
	}
	rec := &recorder{done: map[string]error{}}
	k.Apply(context.Background(), env, items, rec) // env.BackupDir is ""
	for _, it := range items {
		if rec.done[it.Key()] == nil {
			t.Errorf("%s: applied, want refusal", it.Target)
		}
	}
	for _, p := range []string{"/srv/user.yaml", "/etc/kubernetes/manifests/subdir/inner.yaml", "/etc/kubernetes/manifests/etcd.yaml"} {
		if _, err := os.Lstat(env.Host.Path(p)); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
