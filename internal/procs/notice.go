package procs

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
)

const (
	// defaultNoticeAfter is how long a wait for processes to exit lasts
	// before it is announced.
	defaultNoticeAfter = 2 * time.Second
	// noticeNames bounds the processes one notice names.
	noticeNames = 4
)

// notice announces a long wait once: after SIGTERM the wait lasts up to
// TermTimeout (10 s by default) for a process that ignores it, as etcd
// does, and at verbosity 0 the phase would otherwise be silent that long.
// It logs at Warn, the level the CLI shows without -v.
type notice struct {
	mu    sync.Mutex
	left  []*victim
	timer *time.Timer
}

// announce starts the notice for a wait of up to timeout on vs after sig.
// Waits shorter than the Kind's noticeAfter are never announced.
func (k *Kind) announce(env *engine.Env, vs []*victim, sig unix.Signal, timeout time.Duration) *notice {
	n := &notice{}
	for _, v := range vs {
		// One the signal did not reach is not waited for; its failure is
		// logged already.
		if v.sigErr == nil {
			n.left = append(n.left, v)
		}
	}
	if len(n.left) == 0 || timeout <= k.noticeAfter {
		return n
	}
	n.timer = time.AfterFunc(k.noticeAfter, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if len(n.left) == 0 {
			return
		}
		then := ""
		if sig == unix.SIGTERM {
			then = ", then SIGKILL"
		}
		env.Log.Warn(fmt.Sprintf("waiting up to %s for %s after %s%s", timeout, names(n.left), unix.SignalName(sig), then))
	})
	return n
}

// exited takes v off the processes still waited for.
func (n *notice) exited(v *victim) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, l := range n.left {
		if l == v {
			n.left = append(n.left[:i], n.left[i+1:]...)
			break
		}
	}
}

// stop ends the notice: the wait is over, so a notice not yet given is
// dropped (left empties under the lock a firing timer holds).
func (n *notice) stop() {
	if n.timer != nil {
		n.timer.Stop()
	}
	n.mu.Lock()
	n.left = nil
	n.mu.Unlock()
}

// names is "etcd (pid 36), kube-apiserver (pid 33)", the first noticeNames
// of vs and how many more.
func names(vs []*victim) string {
	var s []string
	for _, v := range vs[:min(len(vs), noticeNames)] {
		exe, _ := strings.CutSuffix(v.d.Exe, deletedSuffix)
		s = append(s, fmt.Sprintf("%s (pid %d)", filepath.Base(exe), v.d.PID))
	}
	if len(vs) > noticeNames {
		s = append(s, fmt.Sprintf("%d more", len(vs)-noticeNames))
	}
	return strings.Join(s, ", ")
}
