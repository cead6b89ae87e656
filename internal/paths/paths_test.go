package paths

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// newEnv builds a host root from files (path -> content; a trailing "/"
// makes a directory, "-> target" a symlink).
func newEnv(t *testing.T, files map[string]string) *engine.Env {
	t.Helper()
	root := t.TempDir()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, p := range keys {
		c := files[p]
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(c, "-> "):
			err = os.Symlink(strings.TrimPrefix(c, "-> "), full)
		default:
			err = os.WriteFile(full, []byte(c), 0o644)
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

var kubeFiles = map[string]string{
	"/etc/kubernetes/manifests/etcd.yaml": "pod",
	"/etc/kubernetes/admin.conf":          "conf",
	"/etc/kubernetes/pki/ca.crt":          "ca",
	"/etc/only-manifests/manifests/x":     "x",
	"/var/lib/kubelet/config.yaml":        "cfg",
	"/var/lib/kubelet/pods/":              "",
	"/var/lib/kubelet-old/keep":           "user",
	"/var/lib/empty/":                     "",
	"/etc/file.conf":                      "f",
	"/run":                                "",
	"/var/run":                            "-> ../run",
	"/srv/data/important":                 "user",
	"/opt/cni":                            "-> /srv/data",
	"/opt/cni-missing":                    "-> /nope",
}

func TestDiscover(t *testing.T) {
	tests := []struct {
		name   string
		spec   Spec
		backup bool
		want   *plan.Item // nil: no item
	}{
		{"remove dir counts entries", Spec{Path: "/var/lib/kubelet", Action: plan.ActionRemove, Reason: "kubelet root"}, false,
			&plan.Item{Target: "/var/lib/kubelet", Action: plan.ActionRemove, Reason: "kubelet root (2 entries)"}},
		{"missing path", Spec{Path: "/var/lib/etcd", Action: plan.ActionRemove}, false, nil},
		{"empty honours keep", Spec{Path: "/etc/kubernetes", Action: plan.ActionBackupEmpty, Keep: []string{"manifests"}, Reason: "kubeadm"}, true,
			&plan.Item{Target: "/etc/kubernetes", Action: plan.ActionBackupEmpty, Reason: "kubeadm (2 entries)"}},
		{"backup off plans the plain action", Spec{Path: "/etc/kubernetes", Action: plan.ActionBackupEmpty, Keep: []string{"manifests"}}, false,
			&plan.Item{Target: "/etc/kubernetes", Action: plan.ActionEmpty, Reason: "2 entries"}},
		{"only keep entries left", Spec{Path: "/etc/only-manifests", Action: plan.ActionEmpty, Keep: []string{"manifests"}}, false, nil},
		{"empty dir needs no emptying", Spec{Path: "/var/lib/empty", Action: plan.ActionEmpty}, false, nil},
		{"empty dir is removed", Spec{Path: "/var/lib/empty", Action: plan.ActionRemove}, false,
			&plan.Item{Target: "/var/lib/empty", Action: plan.ActionRemove, Reason: "0 entries"}},
		{"file", Spec{Path: "/etc/file.conf", Action: plan.ActionBackupRemove, Reason: "r"}, true,
			&plan.Item{Target: "/etc/file.conf", Action: plan.ActionBackupRemove, Reason: "r (file)"}},
		{"final symlink is listed as a link", Spec{Path: "/opt/cni", Action: plan.ActionRemove}, false,
			&plan.Item{Target: "/opt/cni", Action: plan.ActionRemove, Reason: "symlink"}},
		{"emptying a file is skipped", Spec{Path: "/etc/file.conf", Action: plan.ActionEmpty}, false, nil},
		{"symlink above is shown as refused", Spec{Path: "/opt/cni/important", Action: plan.ActionRemove, Reason: "cni"}, false,
			&plan.Item{Target: "/opt/cni/important", Action: plan.ActionRemove,
				Reason: "cni (refused: /opt/cni is a symlink (to /srv/data); name the path it leads to in the profile instead of /opt/cni/important)"}},
		{"symlink above to nothing", Spec{Path: "/opt/cni-missing/x", Action: plan.ActionRemove}, false, nil},
		{"unclean path is cleaned", Spec{Path: "/var/lib//kubelet/", Action: plan.ActionRemove}, false,
			&plan.Item{Target: "/var/lib/kubelet", Action: plan.ActionRemove, Reason: "2 entries"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, kubeFiles)
			k := New(Options{Specs: []Spec{tt.spec}, Backup: tt.backup})
			got, err := k.Discover(context.Background(), env)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("got %+v, want no item", got)
				}
				return
			}
			tt.want.Kind = plan.KindPath
			if len(got) != 1 || got[0].Kind != tt.want.Kind || got[0].Target != tt.want.Target ||
				got[0].Action != tt.want.Action || got[0].Reason != tt.want.Reason {
				t.Fatalf("got %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestDiscoverRejectsBadSpecs(t *testing.T) {
	env := newEnv(t, kubeFiles)
	for _, s := range []Spec{{Path: "relative", Action: plan.ActionRemove}, {Path: "/", Action: plan.ActionRemove}, {Path: "/etc", Action: "burn"}} {
		if _, err := New(Options{Specs: []Spec{s}}).Discover(context.Background(), env); err == nil {
			t.Errorf("spec %+v accepted", s)
		}
	}
}

type recorder struct {
	mu      sync.Mutex
	started []string
	done    map[string]error
}

func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, it.Key())
}

func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		r.done = map[string]error{}
	}
	if _, dup := r.done[it.Key()]; dup {
		panic("Done twice for " + it.Key())
	}
	r.done[it.Key()] = err
}
