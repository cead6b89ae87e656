package firewall

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// benchServices is the node scale of the issue: kube-proxy rules for
// 10,000 Services (~70k iptables lines).
const benchServices = 10000

// TestBenchmarkCleanup measures, per backend and in the test's own
// namespaces, the exact cleanup (re-read + batch of both kinds, the
// backup apart) beside the anchors' `iptables-save | grep -v KUBE- |
// iptables-restore` on the same state in the same run. It is a test, not
// a Benchmark, because it must re-run itself in new namespaces; run it with
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
	for _, b := range []Backend{{"ip4", "nft"}, {"ip4", "legacy"}} {
		decoys := fixture.Decoys(b.Family).String()
		dirty := fixture.Owned(b.Family, b.Name, benchServices).String()
		load(t, b, decoys)
		want := state(t)
		load(t, b, dirty)
		lines := strings.Count(dirty, "\n")
		kinds := New(Options{Backends: []Backend{b}})

		start := time.Now()
		found := map[plan.Kind][]plan.Item{}
		for _, k := range kinds {
			items, err := k.Discover(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			found[k.Kind()] = items
		}
		discover := time.Since(start)

		start = time.Now()
		if err := Backup(context.Background(), env, Options{Backends: []Backend{b}}); err != nil {
			t.Fatal(err)
		}
		backup := time.Since(start)
		noBackup := *env
		noBackup.BackupDir = ""

		start = time.Now()
		var each []string
		for _, k := range kinds {
			rec := newRecorder()
			t0 := time.Now()
			k.Apply(context.Background(), &noBackup, found[k.Kind()], rec)
			each = append(each, string(k.Kind())+" "+time.Since(t0).Round(time.Millisecond).String())
			rec.check(t, found[k.Kind()])
		}
		cleanup := time.Since(start)
		t.Logf("%s apply: %s", b, strings.Join(each, ", "))
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
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
		t.Logf("%s, %d lines, %d chains + %d rules planned: discover %s, backup %s, exact cleanup %s; anchors' save|grep -v KUBE-|restore %s (%.1fx); largest child max RSS %d MiB",
			b, lines, len(found[plan.KindChain]), len(found[plan.KindRule]), discover.Round(time.Millisecond), backup.Round(time.Millisecond),
			cleanup.Round(time.Millisecond), anchorTime.Round(time.Millisecond), float64(anchorTime)/float64(cleanup), ru.Maxrss/1024)
		// Leave the backend clean for the next one.
		for _, k := range kinds {
			items, _ := k.Discover(context.Background(), env)
			k.Apply(context.Background(), &engine.Env{Host: env.Host, Log: env.Log}, items, newRecorder())
		}
		_ = os.RemoveAll(env.BackupDir + "/" + BackupDirName)
	}
}
