package firewall

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// benchServices is the node scale of the issue: kube-proxy rules for
// 10,000 Services (~70k iptables lines).
const benchServices = 10000

// TestBenchmarkCleanup measures, per backend and in the test's own
// namespaces, the exact cleanup (Apply, the backup apart) beside the
// anchors' `iptables-save | grep -v KUBE- | iptables-restore` on the same
// state in the same run. BenchmarkCleanup runs it (a benchmark
// cannot re-run itself in new namespaces, a test can); alone:
//
//	NODERESET_BENCH=1 go test -run TestBenchmarkCleanup -v ./internal/firewall/
func TestBenchmarkCleanup(t *testing.T) {
	if os.Getenv("NODERESET_BENCH") != "1" {
		t.Skip("set NODERESET_BENCH=1 to run the 10,000-Service benchmark")
	}
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	for _, b := range ip4Backends() {
		want := decoyed(t, []Backend{b})
		dirty := fixture.Owned(b.Family, b.Name, benchServices).String()
		load(t, b, dirty)
		lines := strings.Count(dirty, "\n")
		k := New(Options{Backends: []Backend{b}})

		start := time.Now()
		found := discover(t, env, k)
		discovered := time.Since(start)

		start = time.Now()
		if err := Backup(context.Background(), env, Options{Backends: []Backend{b}}); err != nil {
			t.Fatal(err)
		}
		backup := time.Since(start)
		noBackup := *env
		noBackup.BackupDir = ""

		start = time.Now()
		rec := applyAll(&noBackup, k, found)
		cleanup := time.Since(start)
		rec.check(t, found)
		if got := state(t); got != want {
			t.Fatalf("%s: decoys changed:\n%s", b, lineDiff(want, got))
		}

		load(t, b, dirty)
		start = time.Now()
		anchor := exec.Command("sh", "-c", b.SaveCommand()+" | grep -v KUBE- | "+b.RestoreCommand())
		if out, err := anchor.CombinedOutput(); err != nil {
			t.Fatalf("anchor: %v\n%s", err, out)
		}
		anchorTime := time.Since(start)
		var ru, self syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		t.Logf("%s, %d lines, %d chains + %d rules planned: discover %s, backup %s, exact cleanup %s; anchors' save|grep -v KUBE-|restore %s (%.1fx); max RSS: nodereset %d MiB, largest child %d MiB",
			b, lines, len(ofKind(found, plan.KindChain)), len(ofKind(found, plan.KindRule)), discovered.Round(time.Millisecond), backup.Round(time.Millisecond),
			cleanup.Round(time.Millisecond), anchorTime.Round(time.Millisecond), float64(anchorTime)/float64(cleanup), self.Maxrss/1024, ru.Maxrss/1024)
		t.Logf("BENCH %s-%s exact-ms=%d anchors-ms=%d", b.Family, b.Name, cleanup.Milliseconds(), anchorTime.Milliseconds())
		// The anchors left the other owners' chains of this backend; the
		// next backend's tables are separate, so nothing to clean up.
		_ = os.RemoveAll(env.BackupDir + "/" + BackupDirName)
	}
}

// BenchmarkCleanup runs TestBenchmarkCleanup (in its own namespaces) once
// per iteration and reports its figures side by side, e.g.
//
//	go test -run '^$' -bench Cleanup -benchtime 1x ./internal/firewall/
//
// One iteration takes 50 s on a 2-core machine at load 15, 120 s at load
// 27 — most of it planting the 70k lines, iptables-nft-save for the
// backup and the anchors' run on the nft backend — so it too waits for
// NODERESET_BENCH=1 (which make bench and make test set) rather than slow
// down every `go test -bench .`.
func BenchmarkCleanup(b *testing.B) {
	if os.Getenv("NODERESET_BENCH") != "1" {
		b.Skip("set NODERESET_BENCH=1 to run the 10,000-Service benchmark (about a minute)")
	}
	testns.Root(b)
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBenchmarkCleanup$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "NODERESET_BENCH=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("benchmark run failed: %v\n%s", err, out)
		}
		n := 0
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "exact cleanup") {
				b.Log(strings.TrimSpace(line))
			}
			_, rest, ok := strings.Cut(line, "BENCH ")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				ms, err := strconv.ParseFloat(v, 64)
				if err == nil {
					b.ReportMetric(ms, f[0]+"-"+k)
					n++
				}
			}
		}
		if n == 0 {
			b.Fatalf("no figures in the output:\n%s", out)
		}
	}
}
