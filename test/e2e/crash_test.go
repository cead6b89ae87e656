package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"golang.org/x/sys/unix"
)

// TestResetKilledAndRerun kills reset with SIGKILL at random points, then
// runs it again: every time verify is clean and the decoys are intact.
func TestResetKilledAndRerun(t *testing.T) {
	const runs = 20
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	killedMidway := 0
	for i := range runs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			n := node(t, 20, 4)
			// Half the kills come after a random number of journal lines,
			// so that every phase is hit however short it is; the other
			// half after a random time, which lands anywhere, inside
			// syscalls included.
			var when killPoint
			if i%2 == 0 {
				when = afterLines(n, 1+rng.IntN(220))
			} else {
				when = afterTime(time.Duration(rng.Int64N(int64(600 * time.Millisecond))))
			}
			finished := killWhen(t, n, when, append([]string{"reset", "--yes"}, fast...)...)
			if !finished {
				killedMidway++
			}
			r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
			if r.code != 0 {
				t.Fatalf("rerun after kill %s: %s", when, r)
			}
			if v, code := verifyJSON(t, n); code != 0 || !v.Clean {
				t.Fatalf("verify after kill %s and rerun: exit %d %+v", when, code, v)
			}
			checkDecoys(t, n)
		})
	}
	t.Logf("%d of %d runs were killed before they finished", killedMidway, runs)
	if killedMidway < runs/2 {
		t.Errorf("only %d of %d runs were killed midway: the kill points do not cover the reset", killedMidway, runs)
	}
}

// killPoint says when to kill: it is polled until it returns true.
type killPoint struct {
	desc  string
	ready func() bool
}

func (k killPoint) String() string { return k.desc }

func afterTime(d time.Duration) killPoint {
	var start time.Time
	return killPoint{"after " + d.String(), func() bool {
		if start.IsZero() {
			start = time.Now()
		}
		return time.Since(start) >= d
	}}
}

// afterLines fires once the run's journal has n lines. The journal lives in
// the sandbox's tmpfs; /proc/PID/root shows it from here, read-only.
func afterLines(node *sandbox.Node, n int) killPoint {
	m := node.Manifest()
	glob := filepath.Join("/proc", strconv.Itoa(m.InitPID), "root", m.Root, "var/lib/nodereset/backups/*/journal.jsonl")
	return killPoint{fmt.Sprintf("after %d journal lines", n), func() bool {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Count(b, []byte("\n")) >= n {
				return true
			}
		}
		return false
	}}
}

// killWhen starts nodereset in the sandbox and SIGKILLs it at the kill
// point. It reports whether nodereset had finished by itself first.
func killWhen(t *testing.T, n *sandbox.Node, when killPoint, args ...string) bool {
	t.Helper()
	r, finished := signalWhen(t, n, when, unix.SIGKILL, args...)
	if !finished {
		t.Logf("killed %s: %s", when, lastLine(r.stdout+r.stderr))
	}
	return finished
}

// signalWhen starts nodereset in the sandbox and sends it sig at the kill
// point, unless it finished first (then finished is true).
func signalWhen(t *testing.T, n *sandbox.Node, when killPoint, sig unix.Signal, args ...string) (r run, finished bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := n.Command(ctx, bins.nodereset, append([]string{"--host-root", n.Manifest().Root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// nsenter forks nodereset into the sandbox's PID namespace; the signal
	// must reach nodereset itself, not only nsenter.
	child, err := childOf(cmd.Process.Pid, 5*time.Second)
	if err != nil {
		t.Fatalf("find nodereset under nsenter: %v", err)
	}
	// Pinned at once: if nodereset exits first, its PID may be reused.
	pidfd, err := unix.PidfdOpen(child, 0)
	if err != nil {
		t.Fatalf("pidfd of nodereset %d: %v", child, err)
	}
	defer unix.Close(pidfd)
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	for !when.ready() && !finished {
		select {
		case err = <-done:
			finished = true
		case <-tick.C:
		}
	}
	if !finished {
		if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil && err != unix.ESRCH {
			t.Fatalf("signal nodereset: %v", err)
		}
		err = <-done
	}
	r = run{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	}
	return r, finished
}

// childOf polls for the single child of pid (we started pid ourselves).
func childOf(pid int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "children"))
		if err != nil {
			return 0, err
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("pid %d has no child after %s", pid, within)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
