package links

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
)

const benchChildEnv = "NODERESET_LINKS_BENCH_CHILD"

// benchPods is the node scale of the issue: 250 pod veths + cni0 + flannel.1.
const benchPods = 250

// seedLoop is the anchors' (k3s-killall.sh's) link cleanup: one ip fork
// per veth enslaved to cni0, then the bridge and the vxlan.
const seedLoop = `for i in $(ip -o link show master cni0 | awk -F': ' '{print $2}' | sed -e 's/@.*//'); do ip link delete "$i"; done; ip link delete cni0; ip link delete flannel.1`

// enterBench re-runs the benchmark alone in new mount and network
// namespaces (testns.Enter serves tests only) and returns false in the
// parent, which prints the child's results.
func enterBench(b *testing.B) bool {
	if os.Getenv(benchChildEnv) == b.Name() {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			b.Fatalf("make / private: %v", err)
		}
		if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"); err != nil {
			b.Fatalf("private /run: %v", err)
		}
		return true
	}
	testns.Root(b)
	testns.Command(b, "ip")
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^"+regexp.QuoteMeta(b.Name())+"$", "-test.benchtime=1x", "-test.v")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+b.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	b.Logf("in namespaces:\n%s", out)
	if err != nil {
		b.Fatalf("benchmark in namespaces failed: %v", err)
	}
	return false
}

// BenchmarkDeleteLinks: 250 pod veths (peers in 250 pod netns) + cni0 +
// flannel.1, deleted by the seeds' ip loop and by this kind's Apply, each
// on a fresh copy of that state in the same run. Target: Apply < 0.5 s.
// The loop runs first so that any teardown it leaves in the kernel's
// queues can only slow Apply down, never the loop.
func BenchmarkDeleteLinks(b *testing.B) {
	if !enterBench(b) {
		return
	}
	for range b.N {
		b.StopTimer()
		m := &linkMaker{t: b}
		plantBench(m)
		start := time.Now()
		if out, err := exec.Command("/bin/sh", "-c", seedLoop).CombinedOutput(); err != nil {
			b.Fatalf("seed loop: %v\n%s", err, out)
		}
		loop := time.Since(start)
		if linkExists("cni0") || linkExists("flannel.1") {
			b.Fatal("the seed loop left links: not like for like")
		}

		plantBench(m)
		env := testEnv(b, nil)
		k := New(Options{Parallel: benchParallel()})
		start = time.Now()
		b.StartTimer()
		items, err := k.Discover(context.Background(), env)
		if err != nil {
			b.Fatal(err)
		}
		rec := newRecorder()
		k.Apply(context.Background(), env, items, rec)
		b.StopTimer()
		took := time.Since(start)
		rec.check(b, items)
		if len(items) != benchPods+2 {
			b.Fatalf("planned %d links, want %d", len(items), benchPods+2)
		}
		m.close()
		b.ReportMetric(float64(len(items)), "links")
		b.ReportMetric(ms(took), "discover+apply-ms")
		b.ReportMetric(ms(loop), "seed-ip-loop-ms")
		b.ReportMetric(float64(loop)/float64(took), "speedup-x")
		fmt.Printf("links: %d pod veths + cni0 + flannel.1: nodereset discover+apply %v (parallel %d); seeds' ip link delete loop %v (%.1fx)\n",
			benchPods, took.Round(time.Millisecond), k.opts.Parallel, loop.Round(time.Millisecond), float64(loop)/float64(took))
	}
}

func plantBench(m *linkMaker) {
	cni0 := m.bridge("cni0")
	for i := range benchPods {
		m.podVeth(fmt.Sprintf("veth%08x", i), cni0)
	}
	m.add(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.1"}, VxlanId: 1, Port: 8472})
}

// benchParallel is BENCH_PARALLEL, or the kind's default.
func benchParallel() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_PARALLEL"))
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
