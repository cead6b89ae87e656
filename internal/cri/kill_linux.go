package cri

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/procs"
	"github.com/nodereset/nodereset/pkg/engine"
)

// killShims kills each shim's process tree: SIGTERM to the containers
// (everything below the shim) first, so workloads get the grace period,
// then SIGKILL to what is left and to the shim itself. The shim goes last:
// as the containers' subreaper it would otherwise hand them to init alive.
func (r *runtime) killShims(ctx context.Context, env *engine.Env, shims []Shim) error {
	proc := env.Host.Proc()
	if self, err := os.Readlink(proc + "/self"); err != nil || self != fmt.Sprint(os.Getpid()) {
		return procs.ErrOtherPIDNamespace
	}
	// The start times pin each process to the one the tree was read from:
	// a child that exits and whose PID is reused before its pidfd is open
	// is not signalled.
	tree, starts, err := children(proc)
	if err != nil {
		return err
	}
	var heads, kids []*procs.Pinned
	defer func() {
		for _, p := range append(heads, kids...) {
			p.Close()
		}
	}()
	for _, s := range shims {
		p, err := procs.Pin(proc, s.PID, s.StartTime)
		if err != nil {
			return fmt.Errorf("shim %d: %w", s.PID, err)
		}
		if p == nil {
			continue // gone already
		}
		heads = append(heads, p)
		for _, c := range descendants(tree, s.PID) {
			if cp, err := procs.Pin(proc, c, starts[c]); err == nil && cp != nil {
				kids = append(kids, cp)
			}
		}
	}
	env.Log.Info("killing Kubernetes shims of a runtime that is down", "shims", len(heads), "processes", len(kids))
	signal(kids, unix.SIGTERM)
	alive := procs.Wait(ctx, proc, kids, r.opts.Grace, nil)
	signal(alive, unix.SIGKILL)
	signal(heads, unix.SIGKILL)
	left := procs.Wait(ctx, proc, append(alive, heads...), r.opts.KillTimeout, nil)
	if len(left) > 0 {
		return fmt.Errorf("process %d: %w", left[0].PID, procs.ErrStillAlive)
	}
	return ctx.Err()
}

func signal(ps []*procs.Pinned, sig unix.Signal) {
	for _, p := range ps {
		// ESRCH: exited meanwhile, which the wait sees at once.
		_ = p.Signal(sig)
	}
}
