package paths

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/plan"
)

func TestApply(t *testing.T) {
	kubelet := Spec{Path: "/var/lib/kubelet", Action: plan.ActionBackupRemove}
	kube := Spec{Path: "/etc/kubernetes", Action: plan.ActionBackupEmpty, Keep: []string{"manifests"}}
	tests := []struct {
		name      string
		spec      Spec
		backup    bool
		noBackDir bool
		wantErr   string
		gone      []string // host paths
		present   []string // host paths
		backedUp  []string // paths below <backup>/files
	}{
		{name: "remove", spec: kubelet, gone: []string{"/var/lib/kubelet"}, present: []string{"/var/lib/kubelet-old/keep"}},
		{name: "empty keeps keep", spec: kube, gone: []string{"/etc/kubernetes/pki", "/etc/kubernetes/admin.conf"},
			present: []string{"/etc/kubernetes/manifests/etcd.yaml"}},
		{name: "backup remove", spec: kubelet, backup: true, gone: []string{"/var/lib/kubelet"},
			backedUp: []string{"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/pods"}},
		{name: "backup empty", spec: kube, backup: true, gone: []string{"/etc/kubernetes/pki"},
			present: []string{"/etc/kubernetes/manifests/etcd.yaml"}, backedUp: []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/admin.conf"}},
		{name: "backup without a directory deletes nothing", spec: kube, backup: true, noBackDir: true,
			wantErr: "needs a backup directory", present: []string{"/etc/kubernetes/pki/ca.crt"}},
		{name: "remove symlink, not its target", spec: Spec{Path: "/opt/cni", Action: plan.ActionRemove},
			gone: []string{"/opt/cni"}, present: []string{"/srv/data/important"}},
		{name: "symlink above refused", spec: Spec{Path: "/opt/cni/important", Action: plan.ActionRemove},
			wantErr: "/opt/cni is a symlink", present: []string{"/srv/data/important"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, kubeFiles)
			if !tt.noBackDir {
				env.BackupDir = env.Host.Path("/var/lib/nodereset/backup/run1")
			}
			k := New(Options{Specs: []Spec{tt.spec}, Backup: tt.backup})
			items, err := k.Discover(context.Background(), env)
			if err != nil || len(items) != 1 {
				t.Fatalf("Discover: %v %v", items, err)
			}
			rec := &recorder{}
			k.Apply(context.Background(), env, items, rec)
			if len(rec.started) != 1 || len(rec.done) != 1 {
				t.Fatalf("started %v, done %v", rec.started, rec.done)
			}
			err = rec.done[items[0].Key()]
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Apply error %v, want %q", err, tt.wantErr)
			}
			for _, p := range tt.gone {
				if _, err := os.Lstat(env.Host.Path(p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there (%v)", p, err)
				}
			}
			for _, p := range tt.present {
				if _, err := os.Lstat(env.Host.Path(p)); err != nil {
					t.Errorf("%s gone: %v", p, err)
				}
			}
			for _, p := range tt.backedUp {
				if _, err := os.Lstat(filepath.Join(env.BackupDir, "files", p)); err != nil {
					t.Errorf("%s not in backup: %v", p, err)
				}
			}
			if !tt.backup && !tt.noBackDir {
				if _, err := os.Lstat(env.BackupDir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("backup directory created without backups (%v)", err)
				}
			}
		})
	}
}

func TestApplyUnknownTarget(t *testing.T) {
	env := newEnv(t, kubeFiles)
	k := New(Options{})
	it := plan.Item{Kind: plan.KindPath, Target: "/etc/kubernetes", Action: plan.ActionRemove}
	rec := &recorder{}
	k.Apply(context.Background(), env, []plan.Item{it}, rec)
	if err := rec.done[it.Key()]; err == nil || !strings.Contains(err.Error(), "not in this profile") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(env.Host.Path("/etc/kubernetes/admin.conf")); err != nil {
		t.Errorf("removed a path no spec names: %v", err)
	}
}

// TestApplyRefusesPathInUse: a process working below a path (an etcd that
// survived) keeps the path whole; once it is gone a rerun removes it.
func TestApplyRefusesPathInUse(t *testing.T) {
	env := newEnv(t, kubeFiles)
	dir := env.Host.Path("/var/lib/etcd/member")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("sleep", "60")
	holder.Dir = dir
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()

	k := New(Options{Specs: []Spec{{Path: "/var/lib/etcd", Action: plan.ActionEmpty}}})
	it := plan.Item{Kind: plan.KindPath, Target: "/var/lib/etcd", Action: plan.ActionEmpty}
	rec := &recorder{}
	k.Apply(context.Background(), env, []plan.Item{it}, rec)
	if err := rec.done[it.Key()]; err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", holder.Process.Pid)) {
		t.Fatalf("want a refusal naming pid %d, got %v", holder.Process.Pid, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("path in use was changed: %v", err)
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	rec = &recorder{}
	k.Apply(context.Background(), env, []plan.Item{it}, rec)
	if err := rec.done[it.Key()]; err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("rerun left %s: %v", dir, err)
	}
}
