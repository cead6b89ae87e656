package links

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/netns/netnstest"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// enterNet runs the test in new mount, network and PID namespaces with a
// private /run (mounted with the syscall, not util-linux mount, which
// would first write /run/mount on the host).
func enterNet(t *testing.T) bool {
	t.Helper()
	if !testns.Enter(t, testns.Mount|testns.Net|testns.PID) {
		return false
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
		t.Fatalf("private /run: %v", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up: %v", err)
	}
	return true
}

type linkMaker struct {
	t   testing.TB
	fds []int
}

func (m *linkMaker) add(l netlink.Link) netlink.Link {
	m.t.Helper()
	if err := netlink.LinkAdd(l); err != nil {
		m.t.Fatalf("add %s %s: %v", l.Type(), l.Attrs().Name, err)
	}
	got, err := netlink.LinkByName(l.Attrs().Name)
	if err != nil {
		m.t.Fatal(err)
	}
	return got
}

func (m *linkMaker) bridge(name string) netlink.Link {
	return m.add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}})
}

// podVeth adds a veth whose peer (eth0) lives in a new pod namespace.
func (m *linkMaker) podVeth(name string, master netlink.Link) {
	m.t.Helper()
	fd, err := netnstest.New("")
	if err != nil {
		m.t.Fatalf("pod netns: %v", err)
	}
	m.fds = append(m.fds, fd)
	la := netlink.LinkAttrs{Name: name}
	if master != nil {
		la.MasterIndex = master.Attrs().Index
	}
	m.add(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)})
}

func (m *linkMaker) close() {
	for _, fd := range m.fds {
		unix.Close(fd)
	}
	m.fds = nil
}

// state is the canonical text of the named links (kind, index, master,
// addresses), to compare decoys before and after.
func state(t testing.TB, names []string) string {
	t.Helper()
	h, err := newHandle(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cur, err := readAttrs(h)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range cur.attrs {
		for _, n := range names {
			if a.Name == n {
				sort.Strings(a.Addrs)
				lines = append(lines, fmt.Sprintf("%s %s #%d master=%s up=%v %v", a.Name, a.Kind, a.Index, a.Master, a.Up, a.Addrs))
			}
		}
	}
	sort.Strings(lines)
	if len(lines) != len(names) {
		t.Fatalf("decoys missing: have %d of %d:\n%s", len(lines), len(names), strings.Join(lines, "\n"))
	}
	return strings.Join(lines, "\n")
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// testEnv is a host root holding CNI configs (host-side path -> content).
func testEnv(t testing.TB, files map[string]string) *engine.Env {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

type recorder struct {
	mu      sync.Mutex
	started map[string]bool
	done    map[string]error
	dup     []string
}

func newRecorder() *recorder { return &recorder{started: map[string]bool{}, done: map[string]error{}} }

func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started[it.Target] = true
}

func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[it.Target]; ok {
		r.dup = append(r.dup, it.Target)
	}
	r.done[it.Target] = err
}

func (r *recorder) check(t testing.TB, items []plan.Item) {
	t.Helper()
	if len(r.dup) > 0 {
		t.Errorf("reported twice: %v", r.dup)
	}
	for _, it := range items {
		err, ok := r.done[it.Target]
		if !ok {
			t.Errorf("%s not reported", it.Target)
		} else if err != nil {
			t.Errorf("%s: %v", it.Target, err)
		}
	}
}

func discover(t testing.TB, k *Kind, env *engine.Env) []plan.Item {
	t.Helper()
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func names(items []plan.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Target)
	}
	sort.Strings(out)
	return out
}
