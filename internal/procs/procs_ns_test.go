package procs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// recorder collects what Apply reports.
type recorder struct {
	mu     sync.Mutex
	starts []string
	done   map[string][]error
}

func (r *recorder) Start(it plan.Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, it.Target)
}

func (r *recorder) Done(it plan.Item, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		r.done = map[string][]error{}
	}
	r.done[it.Target] = append(r.done[it.Target], err)
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// nsSetup brings lo up in the test's network namespace and mounts a tmpfs
// (exec allowed, whatever /tmp is) as the fake host root.
func nsSetup(t *testing.T) *engine.Env {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	h, err := host.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

func TestDiscoverApply(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID|testns.Net) {
		return
	}
	env := nsSetup(t)
	root := env.Host.Root()
	for _, p := range []string{"/usr/bin/kubelet", "/usr/local/bin/etcd", "/opt/k8s/kube-proxy",
		"/opt/tools/kube-watch", "/usr/sbin/webd", "/home/u/bin/kubelet", "/opt/other/kube-proxy",
		"/usr/bin/kube-scheduler"} {
		installBinary(t, root+p)
	}
	kubelet := startFake(t, root+"/usr/bin/kubelet", nil, "10250,10248", false)
	etcd := startFake(t, root+"/usr/local/bin/etcd", nil, "127.0.0.1:2379", true)
	proxy := startFake(t, root+"/opt/k8s/kube-proxy", nil, "10256", false)
	// An upgraded binary: the running process's file was replaced.
	sched := startFake(t, root+"/usr/bin/kube-scheduler", nil, "", false)
	if err := os.Remove(root + "/usr/bin/kube-scheduler"); err != nil {
		t.Fatal(err)
	}
	installBinary(t, root+"/usr/bin/kube-scheduler")

	decoys := map[string]*fake{
		"kube-watch":    startFake(t, root+"/opt/tools/kube-watch", []string{"kube-apiserver", "--kubeconfig", "/etc/kubernetes/admin.conf"}, "", false),
		"webd:80":       startFake(t, root+"/usr/sbin/webd", nil, "80", false),
		"webd:8080":     startFake(t, root+"/usr/sbin/webd", nil, "8080", false),
		"home kubelet":  startFake(t, root+"/home/u/bin/kubelet", []string{"--port=10250"}, "18250", false),
		"proxy on 1025": startFake(t, root+"/opt/other/kube-proxy", nil, "1025", false),
	}

	k := New(Options{
		Executables: []string{"/usr/bin/kubelet", "/usr/local/bin/etcd", "/usr/bin/kube-scheduler"},
		Ports:       map[string][]int{"kubelet": {10250, 10248}, "kube-proxy": {10256}, "etcd": {2379, 2380}},
		TermTimeout: 1500 * time.Millisecond,
		KillTimeout: 3 * time.Second,
	})
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]struct {
		reason, exe string
		ports       []int
	}{
		kubelet.pid(): {"executable /usr/bin/kubelet", "/usr/bin/kubelet", []int{10248, 10250}},
		etcd.pid():    {"executable /usr/local/bin/etcd", "/usr/local/bin/etcd", []int{2379}},
		proxy.pid():   {"kube-proxy listening on :10256", "/opt/k8s/kube-proxy", []int{10256}},
		sched.pid():   {"executable /usr/bin/kube-scheduler (deleted or replaced since it started)", "/usr/bin/kube-scheduler", nil},
	}
	if len(items) != len(want) {
		t.Errorf("Discover found %d items, want %d: %+v", len(items), len(want), items)
	}
	for _, it := range items {
		pid, _ := strconv.Atoi(it.Target)
		w, ok := want[pid]
		if !ok {
			t.Errorf("Discover selected a process it must not: %+v", it)
			continue
		}
		d := it.Detail.(Detail)
		slices.Sort(d.Ports)
		if it.Kind != plan.KindProcess || it.Action != plan.ActionKill || it.Reason != w.reason ||
			d.PID != pid || d.Exe != w.exe || d.StartTime == 0 || !slices.Equal(d.Ports, w.ports) {
			t.Errorf("item %+v, want reason %q exe %q ports %v", it, w.reason, w.exe, w.ports)
		}
	}

	t.Run("listeners exact ports", func(t *testing.T) {
		for _, tc := range []struct {
			port int
			want *fake
		}{{80, decoys["webd:80"]}, {8080, decoys["webd:8080"]}, {1025, decoys["proxy on 1025"]},
			{10250, kubelet}, {2379, etcd}} {
			ls, err := Listeners(env.Host.Proc(), []int{tc.port})
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != 1 || ls[0].PID != tc.want.pid() || ls[0].Port != tc.port || ls[0].Exe != tc.want.cmd.Path {
				t.Errorf("Listeners(:%d) = %+v, want only pid %d (%s)", tc.port, ls, tc.want.pid(), tc.want.cmd.Path)
			}
		}
		if ls, err := Listeners(env.Host.Proc(), []int{8, 102, 10249}); err != nil || len(ls) != 0 {
			t.Errorf("Listeners on unused ports = %+v, %v; want none", ls, err)
		}
	})

	t.Run("listener held by no process", func(t *testing.T) {
		// A listening socket in flight in a unix socket queue: no process
		// has an fd on it, yet the port is taken.
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(s, &unix.SockaddrInet4{Port: 9999, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(s, 1); err != nil {
			t.Fatal(err)
		}
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(sp[0])
		defer unix.Close(sp[1])
		if err := unix.Sendmsg(sp[0], []byte{0}, unix.UnixRights(s), nil, 0); err != nil {
			t.Fatal(err)
		}
		unix.Close(s)
		ls, err := Listeners(env.Host.Proc(), []int{9999})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != 1 || ls[0].PID != 0 || ls[0].Port != 9999 || ls[0].IP.String() != "127.0.0.1" {
			t.Errorf("Listeners(:9999) = %+v, want one held by PID 0", ls)
		}
	})

	t.Run("stale or incomplete items", func(t *testing.T) {
		web := decoys["webd:80"]
		st, err := ReadStat("/proc", web.pid())
		if err != nil {
			t.Fatal(err)
		}
		pid := strconv.Itoa(web.pid())
		stale := plan.Item{Kind: plan.KindProcess, Target: pid, Action: plan.ActionKill,
			Detail: Detail{PID: web.pid(), StartTime: st.StartTime + 1}}
		bare := plan.Item{Kind: plan.KindProcess, Target: "4000000", Action: plan.ActionKill}
		var rec recorder
		k.Apply(context.Background(), env, []plan.Item{stale, bare}, &rec)
		if errs := rec.done[pid]; len(errs) != 1 || errs[0] != nil {
			t.Errorf("reused PID: Done = %v, want one nil (the planned process is gone)", errs)
		}
		if errs := rec.done["4000000"]; len(errs) != 1 || !errors.Is(errs[0], ErrNoDetail) {
			t.Errorf("item without detail: Done = %v, want ErrNoDetail", errs)
		}
		time.Sleep(100 * time.Millisecond)
		if !web.alive() {
			t.Fatal("a process whose PID matched but start time did not was signalled")
		}
	})

	var rec recorder
	var logged syncBuffer
	k.noticeAfter = 500 * time.Millisecond
	loud := *env
	loud.Log = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logged), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	k.Apply(context.Background(), &loud, items, &rec)
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("Apply took %v; etcd ignores SIGTERM, so it must wait the TERM timeout", took)
	}
	// Announced once, at Warn (shown without -v), naming only etcd: the
	// others exited at once; the SIGKILL wait is too short to announce.
	wantNotice := "waiting up to 1.5s for etcd (pid " + strconv.Itoa(etcd.pid()) + ") after SIGTERM, then SIGKILL"
	if got := logged.String(); strings.Count(got, "waiting up to") != 1 || !strings.Contains(got, wantNotice) {
		t.Errorf("want one notice %q at Warn, logged:\n%s", wantNotice, got)
	}
	if len(rec.starts) != len(items) {
		t.Errorf("Start called for %v, want each of %d items", rec.starts, len(items))
	}
	for _, it := range items {
		if errs := rec.done[it.Target]; len(errs) != 1 || errs[0] != nil {
			t.Errorf("item %s: Done = %v, want exactly one nil", it.Target, errs)
		}
	}
	for name, tc := range map[string]struct {
		f   *fake
		sig syscall.Signal
	}{"kubelet": {kubelet, syscall.SIGTERM}, "kube-proxy": {proxy, syscall.SIGTERM},
		"kube-scheduler": {sched, syscall.SIGTERM}, "etcd": {etcd, syscall.SIGKILL}} {
		if sig := tc.f.waitExit(t, 5*time.Second); sig != tc.sig {
			t.Errorf("%s ended by %v, want %v", name, sig, tc.sig)
		}
	}
	for name, f := range decoys {
		if !f.alive() || syscall.Kill(f.pid(), 0) != nil {
			t.Errorf("decoy %s (pid %d) was killed", name, f.pid())
		}
	}
	ls, err := Listeners(env.Host.Proc(), []int{80, 8080, 18250, 1025})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, filepath.Base(l.Exe)+":"+strconv.Itoa(l.Port))
	}
	slices.Sort(got)
	if strings.Join(got, " ") != "kube-proxy:1025 kubelet:18250 webd:80 webd:8080" {
		t.Errorf("decoys listening after Apply: %v", got)
	}
}

// TestApplyZombie: in a PID namespace an exited process whose parent does
// not reap it stays a zombie; Apply and Discover must treat it as gone.
func TestApplyZombie(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.PID|testns.Net) {
		return
	}
	env := nsSetup(t)
	installBinary(t, env.Host.Root()+"/usr/bin/kubelet")
	z := startProc(t, env.Host.Root()+"/usr/bin/kubelet", nil, "10250", false, false)
	k := New(Options{Executables: []string{"/usr/bin/kubelet"}, TermTimeout: 10 * time.Second})
	items, err := k.Discover(context.Background(), env)
	if err != nil || len(items) != 1 || items[0].Target != strconv.Itoa(z.pid()) {
		t.Fatalf("Discover = %+v, %v; want the kubelet %d", items, err, z.pid())
	}
	var rec recorder
	start := time.Now()
	k.Apply(context.Background(), env, items, &rec)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Apply waited %v for a zombie", took)
	}
	if errs := rec.done[items[0].Target]; len(errs) != 1 || errs[0] != nil {
		t.Errorf("Done = %v, want one nil", errs)
	}
	st, err := ReadStat("/proc", z.pid())
	if err != nil || st.State != 'Z' {
		t.Fatalf("test setup: process %d state %c, %v; want a zombie", z.pid(), st.State, err)
	}
	if again, err := k.Discover(context.Background(), env); err != nil || len(again) != 0 {
		t.Errorf("Discover after Apply = %+v, %v; want nothing (zombies are gone)", again, err)
	}
}
