package cri

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/cri/critest"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

const testSocket = "/run/containerd/containerd.sock"

// prereqs checks, before entering namespaces, what real-containerd tests need.
func prereqs(t testing.TB) {
	t.Helper()
	testns.Root(t)
	for _, c := range critest.Commands() {
		testns.Command(t, c)
	}
}

// node is a containerd started inside the test's namespaces.
type node struct {
	ctrd   *critest.Containerd
	cfg    critest.Config
	cgroup string
	dir    string
}

// startNode gives the namespaces a private /run and /var/lib (containerd
// and CNI hard-code /run/containerd, /run/netns and /var/lib/cni), brings
// lo up and starts containerd with root and config under a temp dir.
func startNode(t testing.TB) *node { return startNodeCNI(t, false) }

func startNodeCNI(t testing.TB, bridgeOnly bool) *node {
	t.Helper()
	// The first mount with x/sys/unix: util-linux mount would create
	// /run/mount on the host's /run first.
	for _, d := range []string{"/run", "/var/lib"} {
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=755"); err != nil {
			t.Fatalf("private %s: %v", d, err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up: %v", err)
	}
	dir := t.TempDir()
	n := &node{dir: dir, cgroup: fmt.Sprintf("/nodereset-critest-%d", time.Now().UnixNano())}
	n.cfg = critest.Config{Root: filepath.Join(dir, "root"), State: "/run/containerd", Socket: testSocket,
		ConfigFile: filepath.Join(dir, "config.toml"), CNIConfDir: filepath.Join(dir, "net.d"), BridgeOnly: bridgeOnly,
		Subnet: "10.244.0.0/22"}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	n.cfg.Log = logf
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n.ctrd, err = critest.Start(ctx, n.cfg); err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("start containerd: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		n.ctrd.Stop()
		if err := critest.RemoveCgroups(n.cgroup); err != nil {
			t.Errorf("cgroups left: %v", err)
		}
		logf.Close()
	})
	return n
}

// restart starts containerd again on the same root and state.
func (n *node) restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if n.ctrd, err = critest.Start(ctx, n.cfg); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
}

func (n *node) pod(ns, name string, i int, hostNet bool, labels, ann map[string]string, ctrs ...string) critest.Pod {
	p := critest.Pod{Namespace: ns, Name: name, UID: fmt.Sprintf("0000%04x-0000-4000-8000-%012x", i, i), HostNetwork: hostNet,
		Labels: labels, Annotations: ann, LogRoot: filepath.Join(n.dir, "pods"), CgroupParent: n.cgroup + "/kubepods"}
	for _, c := range ctrs {
		p.Containers = append(p.Containers, critest.Container{Name: c})
	}
	return p
}

func testEnv(t testing.TB) *engine.Env {
	t.Helper()
	h, err := host.New("/")
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// recorder collects outcomes, and fails on a second report of one item.
type recorder struct {
	t       testing.TB
	mu      sync.Mutex
	started map[string]bool
	done    map[string]error
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, started: map[string]bool{}, done: map[string]error{}}
}

func (r *recorder) Start(it plan.Item) { r.mu.Lock(); r.started[it.Key()] = true; r.mu.Unlock() }

func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.done[it.Key()]; dup {
		r.t.Errorf("%s reported twice", it.Key())
	}
	r.done[it.Key()] = err
}

// check fails unless every item was reported done without error.
func (r *recorder) check(items []plan.Item) {
	r.t.Helper()
	for _, it := range items {
		err, ok := r.done[it.Key()]
		switch {
		case !ok:
			r.t.Errorf("%s not reported", it.Key())
		case err != nil:
			r.t.Errorf("%s failed: %v", it.Key(), err)
		}
	}
}

func targets(items []plan.Item) string {
	var s []string
	for _, it := range items {
		s = append(s, it.Target)
	}
	return strings.Join(s, " ")
}
