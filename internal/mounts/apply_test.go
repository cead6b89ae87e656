package mounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// key tells stacked mounts apart: they share a Target, so plan.Item.Key
// alone is not unique for this kind.
func key(it plan.Item) string {
	d, _ := detail(it)
	return fmt.Sprintf("%s#%d", it.Target, d.ID)
}

// recorder checks the Recorder contract: Done once per item, Start first.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	started map[string]bool
	done    map[string]error
	order   []string
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, started: map[string]bool{}, done: map[string]error{}}
}

func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[key(it)]; ok {
		r.t.Errorf("Start after Done for %s", key(it))
	}
	r.started[key(it)] = true
}

func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[key(it)]; ok {
		r.t.Errorf("Done twice for %s", key(it))
	}
	r.done[key(it)] = err
	r.order = append(r.order, it.Target)
}

// check fails unless every item was reported.
func (r *recorder) check(items []plan.Item) {
	r.t.Helper()
	for _, it := range items {
		if _, ok := r.done[key(it)]; !ok {
			r.t.Errorf("%s never reported", key(it))
		}
	}
}

// err returns the outcomes of the items at target (stacked mounts share
// one), joined: nil when all succeeded.
func (r *recorder) err(target string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, err := range r.done {
		if strings.HasPrefix(k, target+"#") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// errOf returns the outcome of the item for mount id at target.
func (r *recorder) errOf(target string, id int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[fmt.Sprintf("%s#%d", target, id)]
}

func (r *recorder) wasStarted(target string) bool {
	for k := range r.started {
		if strings.HasPrefix(k, target+"#") {
			return true
		}
	}
	return false
}

// fakeUnmounter unmounts from a map and fails the test on any unmount of a
// mount whose children are still there.
type fakeUnmounter struct {
	t        *testing.T
	mu       sync.Mutex
	mounted  map[int]Mount
	busy     map[int]bool
	delay    time.Duration
	inflight int
	max      int
	calls    int
}

func (f *fakeUnmounter) Unmount(point string, id int, lazy bool) error {
	f.mu.Lock()
	f.calls++
	m, ok := f.mounted[id]
	if !ok || m.Point != point {
		f.mu.Unlock()
		return unix.EINVAL
	}
	for _, c := range f.mounted {
		if c.Parent == id {
			f.t.Errorf("unmounted %s (%d) before its child %s (%d)", point, id, c.Point, c.ID)
		}
	}
	f.inflight++
	f.max = max(f.max, f.inflight)
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if f.busy[id] && !lazy {
		return unix.EBUSY
	}
	delete(f.mounted, id)
	return nil
}

type fixture struct {
	env   *engine.Env
	kind  *Kind
	um    *fakeUnmounter
	items []plan.Item
	root  string
}

// newFixture writes a mount table whose points are relative to a temporary
// host root and discovers it with a fake unmounter.
func newFixture(t *testing.T, table []Mount, proc string, parallel int) *fixture {
	t.Helper()
	root := t.TempDir()
	for i := range table {
		table[i].Point = filepath.Join(root, table[i].Point)
		if table[i].FSType == "" {
			table[i].FSType = "tmpfs"
		}
		table[i].Source, table[i].Options = "tmpfs", "rw"
	}
	mi := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(mi, []byte(format(table)), 0o644); err != nil {
		t.Fatal(err)
	}
	if proc == "" {
		proc = t.TempDir()
	}
	h, err := host.New(root, host.WithProc(proc))
	if err != nil {
		t.Fatal(err)
	}
	env := &engine.Env{Host: h}
	um := &fakeUnmounter{t: t, mounted: map[int]Mount{}, busy: map[int]bool{}, delay: 5 * time.Millisecond}
	for _, m := range table {
		um.mounted[m.ID] = m
	}
	k := New(Options{Roots: []string{"/var/lib/kubelet"}, MountInfo: mi, Parallel: parallel})
	k.um = um
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, kind: k, um: um, items: items, root: root}
}

const kl = "/var/lib/kubelet"

func baseTable() []Mount {
	ms := []Mount{
		{ID: 1, Parent: 1, Point: "/"},
		{ID: 2, Parent: 1, Point: kl},
		{ID: 3, Parent: 2, Point: kl + "/pods/a"},
		{ID: 4, Parent: 3, Point: kl + "/pods/a/v1"},
		{ID: 5, Parent: 4, Point: kl + "/pods/a/v1/deep"},
		{ID: 6, Parent: 5, Point: kl + "/pods/a/v1/deep"}, // stacked on 5
		{ID: 7, Parent: 3, Point: kl + "/pods/a/v2"},
		{ID: 8, Parent: 1, Point: kl + "-old/pods/b"},
	}
	for i := 0; i < 20; i++ {
		ms = append(ms, Mount{ID: 100 + i, Parent: 2, Point: fmt.Sprintf("%s/pods/s/v%d", kl, i)})
	}
	return ms
}

func TestDiscoverFake(t *testing.T) {
	f := newFixture(t, baseTable(), "", 4)
	if len(f.items) != 25 {
		t.Fatalf("discovered %d items, want 25", len(f.items))
	}
	for _, it := range f.items {
		if !strings.HasPrefix(it.Target, kl+"/") || it.Action != plan.ActionUnmount || it.Kind != plan.KindMount {
			t.Errorf("bad item %+v", it)
		}
		if it.Reason != "tmpfs mounted under Kubernetes root /var/lib/kubelet" {
			t.Errorf("reason %q", it.Reason)
		}
	}
	if d := f.items[3].Detail.(Detail); d.ID != 6 || d.Parent != 5 {
		t.Errorf("stacked detail = %+v", d)
	}
}

func TestApplyFake(t *testing.T) {
	t.Run("children first, siblings bounded", func(t *testing.T) {
		f := newFixture(t, baseTable(), "", 4)
		rec := newRecorder(t)
		f.kind.Apply(context.Background(), f.env, f.items, rec)
		rec.check(f.items)
		for k, err := range rec.done {
			if err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
		if f.um.max < 2 || f.um.max > 4 {
			t.Errorf("max concurrent unmounts = %d, want 2..4", f.um.max)
		}
		if _, ok := f.um.mounted[8]; !ok {
			t.Error("kubelet-old decoy was unmounted")
		}
		if _, ok := f.um.mounted[2]; !ok {
			t.Error("kubelet root itself was unmounted")
		}
	})
	t.Run("busy blocks its parents only", func(t *testing.T) {
		proc := fakeProc(t, map[int]map[string]string{
			321: {"comm": "sleep\n", "cwd": "/var/lib/kubelet/pods/a/v1/deep"},
		})
		f := newFixture(t, baseTable(), proc, 4)
		f.um.busy[5] = true
		rec := newRecorder(t)
		f.kind.Apply(context.Background(), f.env, f.items, rec)
		rec.check(f.items)
		var busy *BusyError
		err := rec.errOf(kl+"/pods/a/v1/deep", 5)
		if !errors.As(err, &busy) || !errors.Is(err, unix.EBUSY) {
			t.Fatalf("busy item error = %v, want a BusyError", err)
		}
		want := "unmount /var/lib/kubelet/pods/a/v1/deep: busy: held by pid 321 (sleep) cwd; stop it or rerun with --lazy-unmount"
		if err.Error() != want {
			t.Errorf("error = %q\nwant    %q", err, want)
		}
		for _, p := range []string{"/pods/a/v1", "/pods/a"} {
			err := rec.err(kl + p)
			if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "still mounted") {
				t.Errorf("%s: error = %v, want blocked", p, err)
			}
			if rec.wasStarted(kl + p) {
				t.Errorf("%s was attempted", p)
			}
		}
		for _, p := range []string{"/pods/a/v2", "/pods/s/v3"} {
			if err := rec.err(kl + p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		// The stacked mount on top of the busy one came off first.
		if err := rec.errOf(kl+"/pods/a/v1/deep", 6); err != nil {
			t.Errorf("stacked top: %v", err)
		}
		if _, ok := f.um.mounted[6]; ok {
			t.Error("stacked top mount still there")
		}
	})
	t.Run("rerun after all gone", func(t *testing.T) {
		f := newFixture(t, baseTable(), "", 4)
		// A plan read back from JSON carries its details as maps.
		b, _ := json.Marshal(f.items)
		var items []plan.Item
		if err := json.Unmarshal(b, &items); err != nil {
			t.Fatal(err)
		}
		// IDs that the table no longer holds mean gone.
		items = append(items, plan.Item{Kind: plan.KindMount, Target: kl + "/pods/gone", Detail: Detail{ID: 999}})
		f.kind.Apply(context.Background(), f.env, items, newRecorder(t))
		if len(f.um.mounted) != 3 {
			t.Fatalf("left %d mounts, want 3", len(f.um.mounted))
		}
		// The table file still lists what the fake already removed: the
		// kernel's EINVAL must then surface, not be taken for success.
		rec := newRecorder(t)
		var leaf []plan.Item
		for _, it := range items {
			if it.Target == kl+"/pods/s/v0" {
				leaf = append(leaf, it)
			}
		}
		f.kind.Apply(context.Background(), f.env, leaf, rec)
		if err := rec.err(leaf[0].Target); err == nil || !strings.Contains(err.Error(), "invalid argument") {
			t.Errorf("unmount of a mount the table still lists: %v", err)
		}
		rec = newRecorder(t)
		gone := items[len(items)-1]
		f.kind.Apply(context.Background(), f.env, []plan.Item{gone}, rec)
		if err := rec.err(gone.Target); err != nil || rec.wasStarted(gone.Target) {
			t.Errorf("gone item: err %v, started %v", err, rec.wasStarted(gone.Target))
		}
	})
	t.Run("item without detail goes by point", func(t *testing.T) {
		f := newFixture(t, baseTable(), "", 4)
		it := plan.Item{Kind: plan.KindMount, Target: kl + "/pods/s/v1", Action: plan.ActionUnmount}
		rec := newRecorder(t)
		f.kind.Apply(context.Background(), f.env, []plan.Item{it}, rec)
		if err := rec.err(it.Target); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.um.mounted[101]; ok {
			t.Error("mount 101 still there")
		}
	})
	t.Run("refuses outside roots and unplanned children", func(t *testing.T) {
		f := newFixture(t, baseTable(), "", 4)
		decoy := plan.Item{Kind: plan.KindMount, Target: kl + "-old/pods/b", Detail: Detail{ID: 8}}
		var items []plan.Item
		for _, it := range f.items {
			if it.Target != kl+"/pods/a/v2" {
				items = append(items, it)
			}
		}
		items = append(items, decoy)
		rec := newRecorder(t)
		f.kind.Apply(context.Background(), f.env, items, rec)
		rec.check(items)
		if err := rec.err(decoy.Target); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("decoy: %v", err)
		}
		if err := rec.err(kl + "/pods/a"); !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "child mount /var/lib/kubelet/pods/a/v2") {
			t.Errorf("parent of unplanned child: %v", err)
		}
		if _, ok := f.um.mounted[8]; !ok {
			t.Error("decoy unmounted")
		}
		if _, ok := f.um.mounted[7]; !ok {
			t.Error("unplanned child unmounted")
		}
	})
	t.Run("cancelled context changes nothing", func(t *testing.T) {
		f := newFixture(t, baseTable(), "", 4)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec := newRecorder(t)
		f.kind.Apply(ctx, f.env, f.items, rec)
		rec.check(f.items)
		if f.um.calls != 0 {
			t.Errorf("%d unmount calls after cancel", f.um.calls)
		}
		if err := rec.err(kl + "/pods/a"); err == nil {
			t.Error("cancelled parent reported done")
		}
	})
	t.Run("shadowed mount waits for the one on top", func(t *testing.T) {
		table := []Mount{
			{ID: 1, Parent: 1, Point: "/"},
			{ID: 2, Parent: 1, Point: kl},
			{ID: 3, Parent: 2, Point: kl + "/pods/x/v"},
			{ID: 4, Parent: 2, Point: kl + "/pods"}, // hides 3
		}
		f := newFixture(t, table, "", 4)
		um := &orderUnmounter{fakeUnmounter: f.um}
		f.kind.um = um
		rec := newRecorder(t)
		f.kind.Apply(context.Background(), f.env, f.items, rec)
		rec.check(f.items)
		if len(um.order) != 2 || um.order[0] != 4 {
			t.Fatalf("unmount order = %v, want 4 first", um.order)
		}
	})
}

type orderUnmounter struct {
	*fakeUnmounter
	order []int
}

func (o *orderUnmounter) Unmount(point string, id int, lazy bool) error {
	o.mu.Lock()
	o.order = append(o.order, id)
	o.mu.Unlock()
	return o.fakeUnmounter.Unmount(point, id, lazy)
}
