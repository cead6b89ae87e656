package e2e

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
)

// Scale of the benchmark node: 250 pods with 4 volumes each, 1,000 volume
// mounts (plus the sandbox's few extras).
const benchPods, benchVolumes = 250, 4

// seedLoop is the anchors' shell loop: mount | grep | awk, one umount fork
// per mount, deepest path first.
const seedLoop = `for m in $(mount | grep /var/lib/kubelet/ | awk '{print $3}' | sort -r); do umount "$m"; done`

// BenchmarkReset measures, on one 250×4 sandbox node each, nodereset's plan
// (time and peak RSS) and reset (total and the unmount phase), and on a
// second node of the same scale in the same run the seeds' shell loop.
// Targets: plan < 1 s and < 100 MiB; unmount phase ≥ 10× faster than the loop.
func BenchmarkReset(b *testing.B) {
	for range b.N {
		n := node(b, benchPods, benchVolumes)
		mounts := n.Manifest().Count("mount")

		start := time.Now()
		cmd := n.Command(context.Background(), bins.nodereset, "--host-root", n.Manifest().Root, "plan", "-o", "json")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("plan: %v", err)
		}
		planTime := time.Since(start)
		// nsenter waited for nodereset, so its max RSS covers nodereset's.
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB

		start = time.Now()
		r := nodereset(b, n, append([]string{"reset", "--yes", "--parallel", parallel()}, fast...)...)
		resetTime := time.Since(start)
		if r.code != 0 {
			b.Fatalf("reset: %s", r)
		}
		unmount := phaseTime(b, r.stderr, "unmount")

		loopNode := node(b, benchPods, benchVolumes)
		start = time.Now()
		if out, err := loopNode.Command(context.Background(), "/bin/sh", "-c", seedLoop).CombinedOutput(); err != nil {
			b.Fatalf("seed loop: %v\n%s", err, out)
		}
		loop := time.Since(start)
		if left := volumeMountsLeft(b, loopNode); left != 0 {
			b.Fatalf("the seed loop left %d mounts: the comparison is not like for like", left)
		}

		b.ReportMetric(float64(mounts), "mounts")
		b.ReportMetric(ms(planTime), "plan-ms")
		b.ReportMetric(float64(rss)/1024, "plan-maxrss-MiB")
		b.ReportMetric(ms(resetTime), "reset-ms")
		b.ReportMetric(ms(unmount), "unmount-ms")
		b.ReportMetric(ms(loop), "shell-loop-ms")
		b.ReportMetric(float64(loop)/float64(unmount), "unmount-speedup-x")
		b.Logf("%d mounts: plan %s (max RSS %.1f MiB), reset %s, unmount phase %s; seed shell loop %s (%.1f×)",
			mounts, planTime.Round(time.Millisecond), float64(rss)/1024, resetTime.Round(time.Millisecond),
			unmount.Round(time.Microsecond), loop.Round(time.Millisecond), float64(loop)/float64(unmount))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// phaseTime reads a phase's duration from reset's progress output.
func phaseTime(b *testing.B, stderr, phase string) time.Duration {
	b.Helper()
	m := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(phase) + `: \d+ done, 0 failed in (\S+)$`).FindStringSubmatch(stderr)
	if m == nil {
		b.Fatalf("no %s phase line in:\n%s", phase, stderr)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func volumeMountsLeft(b *testing.B, n *sandbox.Node) int {
	b.Helper()
	left := 0
	for p := range mountPoints(b, n) {
		if strings.HasPrefix(p, n.Manifest().Root+"/var/lib/kubelet/") {
			left++
		}
	}
	return left
}

func parallel() string {
	if p := os.Getenv("BENCH_PARALLEL"); p != "" {
		return p
	}
	return "8"
}
