package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

const backups = "/var/lib/nodereset/backups"

// interruptWhen starts nodereset in the sandbox and sends it SIGINT (what
// Ctrl-C does) at the kill point; it fails the test if nodereset finished
// first.
func interruptWhen(t *testing.T, n *sandbox.Node, when killPoint, args ...string) run {
	t.Helper()
	r, finished := signalWhen(t, n, when, unix.SIGINT, args...)
	if finished {
		t.Fatalf("nodereset finished before %s:\n%s\n%s", when, r.stdout, r.stderr)
	}
	return r
}

// runDirs lists the run directories of the sandbox's backup directory.
func runDirs(t *testing.T, n *sandbox.Node) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, "ls", n.Manifest().Root+backups).Output()
	if err != nil {
		t.Fatalf("ls %s: %v", backups, err)
	}
	return strings.Fields(string(out))
}

func exists(t *testing.T, n *sandbox.Node, path string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return n.Command(ctx, "test", "-e", n.Manifest().Root+path).Run() == nil
}

func sandboxRun(t *testing.T, n *sandbox.Node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

var printedRunDir = regexp.MustCompile(`Journal and backups: (\S+)`)

// TestReviewInterruptedReset: Ctrl-C during the first phase of a reset.
// The firewall is already saved (before anything changed); verify is
// skipped and the message says to run reset again; the rerun resumes the
// same run directory and says so, printing it as a host path that
// restore --firewall takes, as it takes the path under --host-root; a run
// directory that does not exist changes nothing and lists the ones that
// hold a firewall backup.
func TestReviewInterruptedReset(t *testing.T) {
	n := firewallNode(t)
	r := interruptWhen(t, n, afterLines(n, 2), append([]string{"reset", "--yes"}, fast...)...)
	dirs := runDirs(t, n)
	if len(dirs) != 1 {
		t.Fatalf("run directories %v after the interrupted reset", dirs)
	}
	runDir := backups + "/" + dirs[0]
	wantMsg := "interrupted: run reset again to finish (journal " + runDir + "/" + engine.JournalName + ")"
	if r.code != 1 || !strings.Contains(r.stderr, wantMsg) || strings.Contains(r.stdout+r.stderr, "could not check") || strings.Contains(r.stdout, "Verify") {
		t.Fatalf("interrupted reset: want exit 1, %q and no verify: %s", wantMsg, r)
	}
	entries, err := engine.ReadJournal(filepath.Join("/proc", strconv.Itoa(n.Manifest().InitPID), "root", n.Manifest().Root, runDir, engine.JournalName))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Kind == plan.KindRule || e.Kind == plan.KindChain {
			t.Fatalf("the interrupt came too late to test the early backup: the firewall phase had begun (%+v)", e)
		}
	}
	if !exists(t, n, runDir+"/firewall") {
		t.Errorf("no firewall backup in %s although the reset changed things before it was interrupted", runDir)
	}
	if !exists(t, n, runDir+"/firewall/ipset.save") {
		t.Errorf("the firewall backup holds no ipsets")
	}

	r = nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "resumed") {
		t.Fatalf("rerun after the interrupt: want exit 0 and a resumed run: %s", r)
	}
	if d := runDirs(t, n); len(d) != 1 || d[0] != dirs[0] {
		t.Fatalf("the rerun did not resume %s: run directories %v", runDir, d)
	}
	m := printedRunDir.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != runDir {
		t.Fatalf("reset printed the run directory as %q, want the host path %s", m, runDir)
	}
	checkDecoys(t, n)

	for _, arg := range []string{m[1], n.Manifest().Root + m[1]} {
		if r := nodereset(t, n, "restore", "--firewall", arg); r.code != 0 {
			t.Errorf("restore --firewall %s: %s", arg, r)
		}
	}
	r = nodereset(t, n, "restore", "--firewall", backups+"/20200101T000000Z")
	if r.code != 2 || !strings.Contains(r.stderr, "nothing was changed") || !strings.Contains(r.stderr, "\n  "+runDir) {
		t.Errorf("restore from a run directory that does not exist: want exit 2, nothing changed, and %s listed: %s", runDir, r)
	}
}

// TestReviewRestoreIPSets: a rule that matches kube-proxy's ipset is
// restored with the set and its members, the set first.
func TestReviewRestoreIPSets(t *testing.T) {
	n := firewallNode(t)
	sandboxRun(t, n, "ipset", "add", "KUBE-CLUSTER-IP", "10.96.0.1,tcp:443")
	sandboxRun(t, n, "iptables-nft", "-A", "INPUT", "-m", "set", "--match-set", "KUBE-CLUSTER-IP", "dst,dst", "-j", "ACCEPT")
	before := firewallState(t, n)
	if r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...); r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	if strings.Contains(firewallState(t, n), "--match-set KUBE-CLUSTER-IP") {
		t.Fatal("reset left the rule that matches KUBE-CLUSTER-IP: restoring proves nothing")
	}
	dirs := runDirs(t, n)
	if r := nodereset(t, n, "restore", "--firewall", backups+"/"+dirs[len(dirs)-1]); r.code != 0 {
		t.Fatalf("restore: %s", r)
	}
	if got := firewallState(t, n); got != before {
		t.Errorf("restore did not bring back the saved firewall:\n%s", sandbox.FirstDiff(before, got))
	}
	if out := sandboxRun(t, n, "ipset", "list", "KUBE-CLUSTER-IP"); !strings.Contains(out, "10.96.0.1,tcp:443") {
		t.Errorf("KUBE-CLUSTER-IP came back without its member:\n%s", out)
	}
}

// TestReviewPlanSaysWhatNext: plan and reset --dry-run end with the
// command that applies the plan, in text only.
func TestReviewPlanSaysWhatNext(t *testing.T) {
	n := node(t, 1, 1)
	for _, args := range [][]string{{"plan"}, {"reset", "--dry-run"}} {
		r := nodereset(t, n, args...)
		last := lastLine(r.stdout)
		if r.code != 0 || !strings.Contains(last, "run `nodereset reset`") {
			t.Errorf("%v: last line %q, want what to run next: %s", args, last, r)
		}
		r = nodereset(t, n, append(args, "-o", "json")...)
		if r.code != 0 || strings.Contains(r.stdout, "nodereset reset`") {
			t.Errorf("%v -o json carries the hint: %s", args, r)
		}
	}
}
