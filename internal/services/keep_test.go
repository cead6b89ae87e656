package services

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// fakeManager is systemd with every unit in active state and a log of
// the calls.
type fakeManager struct {
	active map[string]string
	calls  []string
}

func (m *fakeManager) ActiveState(_ context.Context, u string) (string, error) {
	if s, ok := m.active[u]; ok {
		return s, nil
	}
	return "inactive", nil
}
func (m *fakeManager) Stop(_ context.Context, u string) error {
	m.calls = append(m.calls, "stop "+u)
	m.active[u] = "inactive"
	return nil
}
func (m *fakeManager) Disable(_ context.Context, u string) error {
	m.calls = append(m.calls, "disable "+u)
	return nil
}
func (m *fakeManager) Close() {}

// TestKeepEnabled: a unit to keep enabled is planned only while it runs,
// as a stop that says why; applying it stops it and leaves its link. The
// others are stopped and disabled.
func TestKeepEnabled(t *testing.T) {
	files := []file{
		{path: "/lib/systemd/system/kubelet.service", content: "[Unit]"},
		{path: "/etc/systemd/system/multi-user.target.wants/kubelet.service", link: "/lib/systemd/system/kubelet.service"},
		{path: "/etc/systemd/system/etcd.service", content: "[Unit]"},
		{path: "/etc/systemd/system/multi-user.target.wants/etcd.service", link: "/etc/systemd/system/etcd.service"},
	}
	keep := map[string]string{"kubelet.service": "left enabled: the package owns it"}
	for _, tc := range []struct {
		name   string
		active map[string]string
		want   map[string]plan.Action
		calls  []string
	}{
		{"running", map[string]string{"kubelet.service": "active", "etcd.service": "active"},
			map[string]plan.Action{"kubelet.service": plan.ActionStop, "etcd.service": plan.ActionStopDisable},
			[]string{"stop kubelet.service", "stop etcd.service", "disable etcd.service"}},
		{"enabled, not running", map[string]string{},
			map[string]plan.Action{"etcd.service": plan.ActionStopDisable}, []string{"stop etcd.service", "disable etcd.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := build(t, files)
			m := &fakeManager{active: tc.active}
			k := New(Options{Units: units, KeepEnabled: keep,
				Connect: func(context.Context, *host.Host) (Manager, error) { return m, nil }})
			items, err := k.Discover(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]plan.Action{}
			for _, it := range items {
				got[it.Target] = it.Action
				if it.Action == plan.ActionStop && !strings.Contains(it.Reason, keep[it.Target]) {
					t.Errorf("%s: reason %q does not say why it stays enabled", it.Target, it.Reason)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("planned %v, want %v", got, tc.want)
			}
			for u, a := range tc.want {
				if got[u] != a {
					t.Errorf("%s: %q, want %q", u, got[u], a)
				}
			}
			rec := &recorder{errs: map[string]error{}}
			k.Apply(context.Background(), env, items, rec)
			for u, err := range rec.errs {
				if err != nil {
					t.Errorf("%s: %v", u, err)
				}
			}
			slices.Sort(m.calls)
			want := slices.Clone(tc.calls)
			slices.Sort(want)
			if !slices.Equal(m.calls, want) {
				t.Errorf("calls %q, want %q", m.calls, want)
			}
			root := env.Host.Root()
			if _, err := os.Lstat(filepath.Join(root, "/etc/systemd/system/multi-user.target.wants/kubelet.service")); err != nil {
				t.Errorf("kubelet.service's link is gone: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(root, "/etc/systemd/system/multi-user.target.wants/etcd.service")); !os.IsNotExist(err) {
				t.Errorf("etcd.service still enabled: %v", err)
			}
		})
	}
}
