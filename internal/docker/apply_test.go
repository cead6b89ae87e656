package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// fakeAPI is a daemon that logs calls; only the removal paths matter.
type fakeAPI struct {
	mu       sync.Mutex
	calls    []string
	pingErr  error
	stopErr  map[string]error
	rmErr    map[string]error
	conflict map[string]int // removals refused as "in progress" this often
	running  atomic.Int32
	peak     atomic.Int32
}

func (f *fakeAPI) log(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }

func (f *fakeAPI) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{}, f.pingErr
}
func (f *fakeAPI) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{}, nil
}
func (f *fakeAPI) ContainerStop(_ context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	f.log(fmt.Sprintf("stop %s t=%d", id, *o.Timeout))
	return client.ContainerStopResult{}, f.stopErr[id]
}
func (f *fakeAPI) ContainerRemove(_ context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !o.RemoveVolumes || !o.Force {
		return client.ContainerRemoveResult{}, errors.New("removal without v=1 and force")
	}
	if f.conflict[id] > 0 {
		f.conflict[id]--
		return client.ContainerRemoveResult{}, fmt.Errorf("removal of container %s is already in progress: %w", id, cerrdefs.ErrConflict)
	}
	f.calls = append(f.calls, "remove "+id)
	return client.ContainerRemoveResult{}, f.rmErr[id]
}
func (f *fakeAPI) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	return client.ImageListResult{}, nil
}
func (f *fakeAPI) ImageRemove(_ context.Context, id string, o client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	if o.Force {
		return client.ImageRemoveResult{}, errors.New("forced image removal")
	}
	f.log("rmi " + id)
	return client.ImageRemoveResult{}, nil
}
func (f *fakeAPI) Close() error { return nil }

// fakeRec checks the Recorder contract: Start before Done, Done once.
type fakeRec struct {
	t       *testing.T
	mu      sync.Mutex
	started map[string]bool
	done    map[string]error
}

func newRec(t *testing.T) *fakeRec {
	return &fakeRec{t: t, started: map[string]bool{}, done: map[string]error{}}
}

func (r *fakeRec) Start(it plan.Item) { r.mu.Lock(); r.started[it.Target] = true; r.mu.Unlock() }
func (r *fakeRec) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started[it.Target] {
		r.t.Errorf("Done before Start: %s", it.Target)
	}
	if _, dup := r.done[it.Target]; dup {
		r.t.Errorf("Done twice: %s", it.Target)
	}
	r.done[it.Target] = err
}

func testEnv(t *testing.T) *engine.Env {
	h, err := host.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: quiet()}
}

func item(name string, g Group) plan.Item {
	d := Detail{Socket: "/run/docker.sock", ID: "id-" + name, Name: name, Group: g}
	return plan.Item{Kind: plan.KindContainer, Target: Target(name), Action: plan.ActionRemove, Detail: d}
}

func TestApplyOrderAndOutcomes(t *testing.T) {
	f := &fakeAPI{
		stopErr:  map[string]error{"id-gone": fmt.Errorf("no such container: %w", cerrdefs.ErrNotFound), "id-stuck": errors.New("daemon busy")},
		rmErr:    map[string]error{"id-gone": fmt.Errorf("no such container: %w", cerrdefs.ErrNotFound)},
		conflict: map[string]int{"id-racing": 2},
	}
	k := New(Options{Grace: 1500 * time.Millisecond})
	k.dial = func(string) (api, error) { return f, nil }
	items := []plan.Item{
		item("etcd", GroupSystem), item("pod", GroupPodContainers), item("sandbox", GroupPodSandboxes),
		item("kubelet", GroupControllers), item("gone", GroupPodContainers), item("stuck", GroupPodContainers),
		item("racing", GroupHostContainers),
	}
	// A plan read back from JSON carries the detail as a map.
	b, _ := json.Marshal(items[0].Detail)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	items[0].Detail = m
	items = append(items, plan.Item{Kind: plan.KindContainer, Target: "docker:nodetail", Detail: map[string]any{"name": "x"}})

	rec := newRec(t)
	k.Apply(context.Background(), testEnv(t), items, rec)
	for _, it := range items {
		err, ok := rec.done[it.Target]
		switch {
		case !ok:
			t.Errorf("%s not reported", it.Target)
		case it.Target == "docker:stuck":
			var ce *ContainerError
			if !errors.As(err, &ce) || ce.Op != "stop" || ce.Name != "stuck" {
				t.Errorf("stuck: %v", err)
			}
		case it.Target == "docker:nodetail":
			if !errors.Is(err, ErrNoDetail) {
				t.Errorf("nodetail: %v", err)
			}
		case err != nil:
			t.Errorf("%s: %v", it.Target, err)
		}
	}
	pos := map[string]int{}
	for i, c := range f.calls {
		pos[c] = i
	}
	if pos["stop id-kubelet t=2"] > pos["stop id-pod t=2"] || pos["remove id-pod"] > pos["stop id-sandbox t=2"] ||
		pos["remove id-sandbox"] > pos["stop id-racing t=2"] || pos["remove id-racing"] > pos["stop id-etcd t=2"] {
		t.Errorf("groups out of order (grace rounds up to 2 s): %v", f.calls)
	}
	if _, ok := pos["remove id-stuck"]; ok {
		t.Error("a container that failed to stop was removed")
	}
}

func TestApplyParallelBound(t *testing.T) {
	f := &fakeAPI{}
	k := New(Options{Parallel: 3})
	k.dial = func(string) (api, error) { return f, nil }
	var items []plan.Item
	for i := range 20 {
		items = append(items, item(fmt.Sprintf("c%d", i), GroupPodContainers))
	}
	rec := newRec(t)
	k.Apply(context.Background(), testEnv(t), items, rec)
	if p := f.peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak parallel stops %d, want 2..3", p)
	}
	if len(rec.done) != 20 {
		t.Errorf("%d reported, want 20", len(rec.done))
	}
}

func TestApplyRuntimeDown(t *testing.T) {
	f := &fakeAPI{pingErr: errors.New("connection refused")}
	k := New(Options{})
	dials := 0
	k.dial = func(string) (api, error) { dials++; return f, nil }
	items := []plan.Item{item("a", GroupSystem), item("b", GroupSystem), item("c", GroupPodSandboxes)}
	rec := newRec(t)
	k.Apply(context.Background(), testEnv(t), items, rec)
	for _, it := range items {
		var se *SocketError
		if err := rec.done[it.Target]; !errors.As(err, &se) || se.Socket != "/run/docker.sock" {
			t.Errorf("%s: %v, want a SocketError naming the socket", it.Target, err)
		}
	}
	if dials != 1 {
		t.Errorf("dialled %d times, want once per socket", dials)
	}
}

func TestImagesApply(t *testing.T) {
	f := &fakeAPI{}
	k := NewImages(Options{Images: true})
	k.dial = func(string) (api, error) { return f, nil }
	it := plan.Item{Kind: plan.KindImage, Target: "docker:a:1", Detail: ImageDetail{Socket: "/run/docker.sock", ID: "sha256:x", Tags: []string{"a:1", "b:2"}}}
	rec := newRec(t)
	k.Apply(context.Background(), testEnv(t), []plan.Item{it}, rec)
	if err := rec.done[it.Target]; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.calls) != "[rmi a:1 rmi b:2 rmi sha256:x]" {
		t.Errorf("calls %v: want each tag, then the ID, never forced", f.calls)
	}
	if items, err := NewImages(Options{}).Discover(context.Background(), testEnv(t)); items != nil || err != nil {
		t.Errorf("without Images: %v %v", items, err)
	}
}

func TestDetailOf(t *testing.T) {
	d := Detail{Socket: "/run/docker.sock", ID: "abc", Name: "k8s_app"}
	var fromJSON map[string]any
	b, _ := json.Marshal(d)
	if err := json.Unmarshal(b, &fromJSON); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		detail any
		noDet  bool
	}{
		{"value", d, false},
		{"pointer", &d, false},
		{"plan read back from JSON", fromJSON, false},
		{"no detail", nil, true},
		{"nil pointer", (*Detail)(nil), true},
		{"without the ID", map[string]any{"name": "k8s_app", "socket": "/run/docker.sock"}, true},
		{"does not decode", map[string]any{"id": 7}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := detailOf(plan.Item{Target: "docker:k8s_app", Detail: tc.detail})
			if tc.noDet {
				if !errors.Is(err, ErrNoDetail) {
					t.Fatalf("detailOf = %+v, %v; want ErrNoDetail", got, err)
				}
				return
			}
			if err != nil || got.ID != d.ID || got.Socket != d.Socket || got.Name != d.Name {
				t.Fatalf("detailOf = %+v, %v; want %+v", got, err, d)
			}
		})
	}
}
