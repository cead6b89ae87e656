package cri

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/internal/cri/critest"
)

const benchChildEnv = "NODERESET_CRI_BENCH_CHILD"

// benchPods is the kubelet's default maxPods, with two containers each.
const benchPods = 110

// enterBench re-runs the benchmark alone in new mount, PID and network
// namespaces (testns.Enter serves tests only); false in the parent.
func enterBench(b *testing.B) bool {
	if os.Getenv(benchChildEnv) == b.Name() {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			b.Fatalf("make / private: %v", err)
		}
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			b.Fatalf("mount /proc: %v", err)
		}
		return true
	}
	prereqs(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^"+regexp.QuoteMeta(b.Name())+"$", "-test.benchtime=1x", "-test.v")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+b.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	b.Logf("in namespaces:\n%s", out)
	if err != nil {
		b.Fatalf("benchmark in namespaces failed: %v", err)
	}
	return false
}

func benchPodSet(n *node, prefix string) []critest.Pod {
	var pods []critest.Pod
	for i := 0; i < benchPods; i++ {
		// A tenth on the host network, as DaemonSets are.
		p := n.pod("bench", fmt.Sprintf("%s-%03d", prefix, i), i+len(prefix)*1000, i%10 == 0, nil, nil, "app", "sidecar")
		pods = append(pods, p)
	}
	return pods
}

// BenchmarkRemovePods: 110 kubelet pods × 2 containers on a real
// containerd. Discovery + plan, then this kind's Apply (parallel, pod
// network first), against a second set of 110 pods removed one at a time
// with StopPodSandbox + RemovePodSandbox, as kubeadm reset and `crictl rmp`
// loops do. Targets: plan < 1 s, reset < 5 s, ≥ 4× faster than the loop.
func BenchmarkRemovePods(b *testing.B) {
	if !enterBench(b) {
		return
	}
	n := startNodeCNI(b, os.Getenv("NODERESET_BENCH_BRIDGE_ONLY") == "1")
	ctx := context.Background()
	env := testEnv(b)
	pods, ctrs := New(Options{Sockets: []string{testSocket}, Grace: 10 * time.Second})
	for range b.N {
		t0 := time.Now()
		if _, err := n.ctrd.RunPods(ctx, benchPodSet(n, "p"), 8); err != nil {
			b.Fatal(err)
		}
		b.Logf("created %d pods in %v", benchPods, time.Since(t0).Round(time.Millisecond))

		var before goruntime.MemStats
		goruntime.ReadMemStats(&before)
		t0 = time.Now()
		ps, err := pods.Discover(ctx, env)
		if err != nil {
			b.Fatal(err)
		}
		cs, err := ctrs.Discover(ctx, env)
		if err != nil {
			b.Fatal(err)
		}
		planTime := time.Since(t0)
		var after goruntime.MemStats
		goruntime.ReadMemStats(&after)
		if len(ps) != benchPods || len(cs) != 2*benchPods {
			b.Fatalf("planned %d pods and %d containers", len(ps), len(cs))
		}

		t0 = time.Now()
		rec := newRecorder(b)
		pods.Apply(ctx, env, ps, rec)
		ctrs.Apply(ctx, env, cs, rec)
		resetTime := time.Since(t0)
		rec.check(append(ps, cs...))

		if _, err := n.ctrd.RunPods(ctx, benchPodSet(n, "q"), 8); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		loop := removeOneByOne(b, n)
		loopTime := time.Since(t0)
		if loop != benchPods {
			b.Fatalf("the loop removed %d pods", loop)
		}

		b.ReportMetric(ms(planTime), "plan-ms")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "plan-alloc-MiB")
		b.ReportMetric(ms(resetTime), "reset-ms")
		b.ReportMetric(ms(loopTime), "one-by-one-ms")
		b.ReportMetric(float64(loopTime)/float64(resetTime), "speedup-x")
		b.Logf("%d pods × 2 containers: plan %v (%.1f MiB allocated, heap in use %.1f MiB), reset %v; one at a time %v (%.1f×)",
			benchPods, planTime.Round(time.Millisecond), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20),
			float64(after.HeapInuse)/(1<<20), resetTime.Round(time.Millisecond), loopTime.Round(time.Millisecond),
			float64(loopTime)/float64(resetTime))
	}
}

// removeOneByOne is the seeds' loop: for each sandbox, stop then remove.
func removeOneByOne(b *testing.B, n *node) int {
	ctx := context.Background()
	list, err := n.ctrd.RS.ListPodSandbox(ctx, &rt.ListPodSandboxRequest{})
	if err != nil {
		b.Fatal(err)
	}
	for _, sb := range list.GetItems() {
		if _, err := n.ctrd.RS.StopPodSandbox(ctx, &rt.StopPodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			b.Fatal(err)
		}
		if _, err := n.ctrd.RS.RemovePodSandbox(ctx, &rt.RemovePodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			b.Fatal(err)
		}
	}
	return len(list.GetItems())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
