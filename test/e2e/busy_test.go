package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/mounts"
	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/pkg/plan"
	"golang.org/x/sys/unix"
)

// TestBusyMount: a volume mount held by a process that is not Kubernetes'
// makes reset unmount the rest, report that one with its holder, delete
// nothing below it, keep its data, and exit non-zero. Once the holder is
// gone a rerun finishes the job.
func TestBusyMount(t *testing.T) {
	n := node(t, 3, 4)
	root := n.Manifest().Root
	var busy string
	for _, e := range n.Manifest().Expected {
		if e.Kind == plan.KindMount && strings.Contains(e.Target, "kubernetes.io~secret") {
			busy = e.Target
			break
		}
	}
	if busy == "" {
		t.Fatal("sandbox planted no secret volume")
	}
	// The holder: a shell whose cwd is inside the mount, started in the
	// sandbox (it is a user's process, not a Kubernetes component).
	holder := n.Command(t.Context(), "/bin/sh", "-c", "cd "+root+busy+" && echo ready && exec sleep 300")
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("holder did not start: %q %v", buf, err)
	}
	sleeper, err := childOf(holder.Process.Pid, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sleeperFD, err := unix.PidfdOpen(sleeper, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sleeperFD)
	inside := nsPID(t, sleeper)

	r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if r.code != 1 {
		t.Fatalf("reset with a busy mount: want exit 1: %s", r)
	}
	wantHolder := fmt.Sprintf("pid %d", inside)
	if !strings.Contains(r.stdout+r.stderr, busy) || !strings.Contains(r.stdout+r.stderr, wantHolder) {
		t.Errorf("reset must name the busy mount %s and its holder %q: %s", busy, wantHolder, r)
	}
	mounted := mountPoints(t, n)
	if !mounted[root+busy] {
		t.Fatalf("busy mount %s is no longer mounted", busy)
	}
	for _, e := range n.Manifest().Expected {
		if e.Kind == plan.KindMount && e.Target != busy && !strings.HasPrefix(busy, e.Target+"/") && mounted[root+e.Target] {
			t.Errorf("%s is still mounted", e.Target)
		}
	}
	// The data behind the busy mount is intact.
	cat := n.Command(t.Context(), "/bin/sh", "-c", "ls -A "+root+busy)
	if out, err := cat.Output(); err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("busy mount lost its content: %q %v", out, err)
	}
	checkDecoys(t, n)

	// nsenter forked the shell into the sandbox: kill the sleeper itself.
	if err := unix.PidfdSendSignal(sleeperFD, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	again := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if again.code != 0 {
		t.Fatalf("rerun once the holder is gone: %s", again)
	}
	checkDecoys(t, n)
}

// nsPID maps a host PID to its PID inside the sandbox (last NSpid field).
func nsPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "NSpid:" {
			p, _ := strconv.Atoi(f[len(f)-1])
			return p
		}
	}
	t.Fatalf("no NSpid for %d", pid)
	return 0
}

// mountPoints lists the mount points inside the sandbox.
func mountPoints(t testing.TB, n *sandbox.Node) map[string]bool {
	t.Helper()
	out, err := n.Command(context.Background(), "/bin/cat", "/proc/self/mountinfo").Output()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := mounts.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	points := map[string]bool{}
	for _, m := range ms {
		points[m.Point] = true
	}
	return points
}
