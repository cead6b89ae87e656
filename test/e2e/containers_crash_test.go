package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/pkg/plan"
)

// TestContainersResetKilledAndRerun SIGKILLs reset at random points of the
// pods phase on a real containerd (CRI calls in flight are cancelled with
// the dead client), then runs it again: no pod, container or netns is left,
// verify is clean, the ports are free and the decoys (a default-namespace
// container, a user netns) are intact.
func TestContainersResetKilledAndRerun(t *testing.T) {
	const runs = 6
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	args := append([]string{"reset", "--yes", "--grace", "2s"}, fast...)
	inPods, unfinished := 0, 0
	for i := range runs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			n := ctrNode(t, "")
			m := n.Manifest()
			total := 2 * (m.Count(plan.KindPod) + m.Count(plan.KindContainer) + m.Count(plan.KindNetns))
			// Half the kills come after a random number of pod lines
			// (each pod journals its start and its outcome), before the
			// last pod is done; the other half a random time after the
			// phase's first line, which lands inside CRI calls and the
			// runtime's teardown of a sandbox (cancelled with the dead
			// client).
			when := afterPodLines(n, []string{"pod"}, 1+rng.IntN(2*m.Count(plan.KindPod)-1), 0)
			if i%2 == 1 {
				when = afterPodLines(n, podPhaseKinds, 1, time.Duration(rng.Int64N(int64(450*time.Millisecond))))
			}
			killWhen(t, n, when, args...)
			if c := podPhaseLines(n, podPhaseKinds); c < total {
				inPods++
			}
			if left := criItems(planJSON(t, n)); len(left) > 0 {
				unfinished++
				t.Logf("%d pods, containers and netns left for the re-run", len(left))
			}
			r := nodereset(t, n, args...)
			if left := criItems(planJSON(t, n)); len(left) != 0 {
				t.Fatalf("left after the re-run: %v\n%s", keys(left), r)
			}
			if r.code != 0 {
				t.Fatalf("re-run after the kill: %s", r)
			}
			if v, code := verifyJSON(t, n); code != 0 || !v.Clean {
				t.Fatalf("verify after the kill and re-run: exit %d %+v", code, v)
			}
			for _, port := range []int{443, 8443} {
				if portOpen(t, n, port) {
					t.Errorf("port %d still held", port)
				}
			}
			checkDecoys(t, n)
		})
	}
	t.Logf("%d of %d runs were killed inside the pods phase, %d left CRI state for the re-run", inPods, runs, unfinished)
	if inPods < runs/2 || unfinished == 0 {
		t.Errorf("%d of %d runs were killed inside the pods phase and %d left anything to finish: the kill points miss it", inPods, runs, unfinished)
	}
}

// podPhaseKinds are the kinds of the pods phase.
var podPhaseKinds = []string{"pod", "container", "netns"}

// afterPodLines fires delay after the journal has n lines of the kinds.
func afterPodLines(node *sandbox.Node, kinds []string, n int, delay time.Duration) killPoint {
	var reached time.Time
	return killPoint{fmt.Sprintf("after %d %v journal lines and %v", n, kinds, delay.Round(time.Millisecond)), func() bool {
		if reached.IsZero() && podPhaseLines(node, kinds) >= n {
			reached = time.Now()
		}
		return !reached.IsZero() && time.Since(reached) >= delay
	}}
}

// podPhaseLines counts the journal lines of the kinds in the sandbox's
// runs so far (the journal lives in the sandbox's tmpfs; /proc/PID/root
// shows it from here, read-only).
func podPhaseLines(node *sandbox.Node, kinds []string) int {
	m := node.Manifest()
	files, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(m.InitPID), "root", m.Root, "var/lib/nodereset/backups/*/journal.jsonl"))
	c := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			for _, k := range kinds {
				if bytes.Contains(l, []byte(`"kind":"`+k+`"`)) {
					c++
					break
				}
			}
		}
	}
	return c
}
