package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ErrStillAlive means a process survived SIGKILL and KillTimeout; it is
// usually blocked in the kernel (state D, on a dead NFS server or disk).
var ErrStillAlive = errors.New("still alive after SIGKILL (likely blocked in the kernel, state D: check /proc/PID/stack and the storage it waits on)")

// ErrOtherPIDNamespace means nodereset cannot signal the host's processes
// because it does not share their PID namespace.
var ErrOtherPIDNamespace = errors.New("nodereset runs in another PID namespace than the host procfs shows; run it with the host's PID namespace (hostPID: true, or --pid=host)")

// Error is the failure of one process item.
type Error struct {
	PID int
	Exe string
	Op  string
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("process %d (%s): %s: %v", e.PID, e.Exe, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// victim is one process being stopped, held by a pidfd so that a PID reused
// after it exited is never signalled.
type victim struct {
	*Pinned
	item plan.Item
	d    Detail
	// sigErr is why the last signal could not be sent (EPERM, say).
	sigErr error
}

// Apply implements engine.Kind: SIGTERM to every process at once, one
// deadline for all of them, then SIGKILL to the rest.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	proc := env.Host.Proc()
	sameNS := selfPID(proc) == os.Getpid()
	var all []*victim
	defer func() {
		for _, v := range all {
			v.Close()
		}
	}()
	for _, it := range items {
		rec.Start(it)
		if !sameNS {
			rec.Done(it, &Error{PID: -1, Exe: it.Target, Op: "open", Err: ErrOtherPIDNamespace})
			continue
		}
		v, err := open(proc, it)
		if err != nil || v == nil {
			rec.Done(it, err) // nil error and no victim: already gone
			continue
		}
		all = append(all, v)
	}
	live := k.round(ctx, env, all, unix.SIGTERM, k.opts.TermTimeout, rec)
	if len(live) == 0 {
		return
	}
	live = k.round(ctx, env, live, unix.SIGKILL, k.opts.KillTimeout, rec)
	for _, v := range live {
		err := ErrStillAlive
		if v.sigErr != nil {
			err = fmt.Errorf("send SIGKILL: %w", v.sigErr)
		}
		rec.Done(v.item, &Error{PID: v.d.PID, Exe: v.d.Exe, Op: "kill", Err: err})
	}
}

// open pins the item's process, checking it is still the process Discover
// saw. It returns nil, nil when the process is gone.
func open(proc string, it plan.Item) (*victim, error) {
	d, err := detailOf(it)
	if err != nil {
		return nil, &Error{PID: -1, Exe: it.Target, Op: "read plan item", Err: err}
	}
	p, err := Pin(proc, d.PID, d.StartTime)
	if err != nil {
		return nil, &Error{PID: d.PID, Exe: d.Exe, Op: "open", Err: err}
	}
	if p == nil {
		return nil, nil
	}
	return &victim{Pinned: p, item: it, d: d}, nil
}

// round signals every victim, waits until timeout for them to exit and
// reports those that did. It returns the ones still alive.
func (k *Kind) round(ctx context.Context, env *engine.Env, vs []*victim, sig unix.Signal, timeout time.Duration, rec engine.Recorder) []*victim {
	var sent []*victim
	for _, v := range vs {
		err := v.Signal(sig)
		v.sigErr = nil
		switch {
		case err == nil:
			env.Log.Info("signalled process", "pid", v.d.PID, "exe", v.d.Exe, "signal", unix.SignalName(sig))
		case errors.Is(err, unix.ESRCH):
			// Exited between rounds; the wait below sees it at once.
		default:
			v.sigErr = err
			env.Log.Warn("signal failed", "pid", v.d.PID, "exe", v.d.Exe, "signal", unix.SignalName(sig), "err", err)
		}
		sent = append(sent, v)
	}
	n := k.announce(env, sent, sig, timeout)
	// Reported as each exits, so the journal shows progress during the wait.
	alive := Wait(ctx, env.Host.Proc(), sent, timeout, func(v *victim) {
		n.exited(v)
		env.Log.Info("process exited", "pid", v.d.PID, "exe", v.d.Exe, "after", unix.SignalName(sig))
		rec.Done(v.item, nil)
	})
	n.stop()
	if err := ctx.Err(); err != nil && len(alive) > 0 {
		for _, v := range alive {
			rec.Done(v.item, &Error{PID: v.d.PID, Exe: v.d.Exe, Op: "wait after " + unix.SignalName(sig), Err: err})
		}
		return nil
	}
	return alive
}

// detailOf returns the Detail of an item built by Discover, or decoded from
// a plan read back from JSON, once it names one process.
func detailOf(it plan.Item) (Detail, error) {
	d, ok := plan.DetailAs[Detail](it)
	if !ok || d.StartTime == 0 || d.PID <= 0 {
		return Detail{}, ErrNoDetail
	}
	if strconv.Itoa(d.PID) != it.Target {
		return Detail{}, fmt.Errorf("item target %q does not match detail PID %d; run plan again", it.Target, d.PID)
	}
	return d, nil
}
