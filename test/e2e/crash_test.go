package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
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
			n := node(t, 3, 4)
			// reset takes ~0.4 s here (etcd ignores SIGTERM for 300 ms):
			// spread the kills over all of it and a little beyond.
			delay := time.Duration(rng.Int64N(int64(600 * time.Millisecond)))
			finished := killAfter(t, n, delay, append([]string{"reset", "--yes"}, fast...)...)
			if !finished {
				killedMidway++
			}
			r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
			if r.code != 0 {
				t.Fatalf("rerun after kill at %s: %s", delay, r)
			}
			if v, code := verifyJSON(t, n); code != 0 || !v.Clean {
				t.Fatalf("verify after kill at %s and rerun: exit %d %+v", delay, code, v)
			}
			checkDecoys(t, n)
		})
	}
	t.Logf("%d of %d runs were killed before they finished", killedMidway, runs)
	if killedMidway < runs/2 {
		t.Errorf("only %d of %d runs were killed midway: the kill points do not cover the reset", killedMidway, runs)
	}
}

// killAfter starts nodereset in the sandbox and SIGKILLs it after delay. It
// reports whether nodereset had finished by itself first.
func killAfter(t *testing.T, n *sandbox.Node, delay time.Duration, args ...string) bool {
	t.Helper()
	cmd := n.Command(t.Context(), bins.nodereset, append([]string{"--host-root", n.Manifest().Root}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// nsenter forks nodereset into the sandbox's PID namespace; the kill
	// must reach nodereset itself, not only nsenter.
	child, err := childOf(cmd.Process.Pid, 5*time.Second)
	if err != nil {
		t.Fatalf("find nodereset under nsenter: %v", err)
	}
	select {
	case <-done:
		return true
	case <-time.After(delay):
	}
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		t.Fatalf("kill nodereset: %v", err)
	}
	<-done
	t.Logf("killed after %s: %s", delay, lastLine(out.String()))
	return false
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
