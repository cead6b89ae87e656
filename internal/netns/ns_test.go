package netns

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

type fakePods map[int]bool

func (f fakePods) PodProcesses(*engine.Env) (map[int]bool, error) { return f, nil }

type rec struct {
	mu   sync.Mutex
	done map[string]error
}

func (r *rec) Start(plan.Item) {}
func (r *rec) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[it.Target] = err
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func mounted(t *testing.T, p string) bool {
	t.Helper()
	m, err := mountinfo.Mounted(p)
	return err == nil && m
}

// TestNetns plants real namespaces with ip netns add in the test's own
// namespaces: unused cni-* (planned), one used by a pod process (planned,
// removed only once that process is gone), one used by another process, a
// user's namespace, a stale file, a symlink and a runtime-owned dir entry.
func TestNetns(t *testing.T) {
	testns.Root(t)
	testns.Command(t, "ip")
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cni-unused", "cni-pod", "cni-used", "user-vpn"} {
		run(t, "ip", "netns", "add", n)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile("/run/netns/cni-stale", nil, 0o444))
	must(os.Symlink("cni-used", "/run/netns/cni-link"))
	must(os.MkdirAll("/run/rt-netns", 0o755))
	must(os.WriteFile("/run/rt-netns/sandbox-1", nil, 0o444))
	podProc := exec.Command("ip", "netns", "exec", "cni-pod", "sleep", "60")
	other := exec.Command("ip", "netns", "exec", "cni-used", "sleep", "60")
	for _, c := range []*exec.Cmd{podProc, other} {
		must(c.Start())
		defer c.Process.Kill()
	}
	// Wait until both sleeps have entered their namespaces.
	for i := 0; i < 200; i++ {
		u, _ := users("/proc")
		if len(u) >= 3 {
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10_000_000}, nil)
	}
	h, _ := host.New("/")
	env := &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	k := New(Options{RuntimeDirs: []string{"/run/rt-netns"}, Pods: fakePods{podProc.Process.Pid: true}})
	items, err := k.Discover(context.Background(), env)
	must(err)
	var got []string
	for _, it := range items {
		got = append(got, it.Target)
	}
	want := "/run/netns/cni-pod /run/netns/cni-stale /run/netns/cni-unused /run/rt-netns/sandbox-1"
	if strings.Join(got, " ") != want {
		t.Fatalf("planned %q, want %q", strings.Join(got, " "), want)
	}

	r := &rec{done: map[string]error{}}
	k.Apply(context.Background(), env, items, r)
	if err := r.done["/run/netns/cni-pod"]; !errors.Is(err, ErrInUse) {
		t.Errorf("cni-pod while its process lives: %v, want ErrInUse", err)
	}
	for _, tgt := range []string{"/run/netns/cni-stale", "/run/netns/cni-unused", "/run/rt-netns/sandbox-1"} {
		if err := r.done[tgt]; err != nil {
			t.Errorf("%s: %v", tgt, err)
		}
		if _, err := os.Lstat(tgt); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", tgt, err)
		}
	}

	must(podProc.Process.Kill())
	_ = podProc.Wait()
	r = &rec{done: map[string]error{}}
	k.Apply(context.Background(), env, items, r) // a re-run: the rest are gone already
	for _, it := range items {
		if err := r.done[it.Target]; err != nil {
			t.Errorf("re-run %s: %v", it.Target, err)
		}
	}
	if _, err := os.Lstat("/run/netns/cni-pod"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cni-pod still there after its process exited: %v", err)
	}
	for _, keep := range []string{"/run/netns/cni-used", "/run/netns/user-vpn"} {
		if !mounted(t, keep) {
			t.Errorf("%s was unmounted", keep)
		}
	}
	if fi, err := os.Lstat("/run/netns/cni-link"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink cni-link: %v", err)
	}
}
