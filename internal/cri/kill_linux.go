package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
)

// ErrOtherPIDNamespace means the shims cannot be signalled: nodereset does
// not share the PID namespace of the procfs it reads.
var ErrOtherPIDNamespace = errors.New("nodereset runs in another PID namespace than the host procfs shows; run it with the host's PID namespace (hostPID: true, or --pid=host)")

// ErrSurvived means a process outlived SIGKILL and the kill timeout
// (usually blocked in the kernel, state D).
var ErrSurvived = errors.New("still alive after SIGKILL (likely blocked in the kernel, state D: check /proc/PID/stack)")

// pinned is a process held by a pidfd, so a reused PID is never signalled.
type pinned struct {
	pid int
	fd  int
}

// pin opens a pidfd on pid and checks its start time after opening (from
// then on the fd names that one process). want 0 accepts any start time:
// for a child found by walking from a pinned parent.
func pin(proc string, pid int, want uint64) (*pinned, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	st, err := readStat(proc, pid)
	if err != nil || st.state == 'Z' || (want != 0 && st.start != want) {
		unix.Close(fd)
		return nil, nil
	}
	return &pinned{pid: pid, fd: fd}, nil
}

// killShims kills each shim's process tree: SIGTERM to the containers
// (everything below the shim) first, so workloads get the grace period,
// then SIGKILL to what is left and to the shim itself. The shim goes last:
// as the containers' subreaper it would otherwise hand them to init alive.
func (r *runtime) killShims(ctx context.Context, env *engine.Env, shims []Shim) error {
	proc := env.Host.Proc()
	if self, err := os.Readlink(proc + "/self"); err != nil || self != fmt.Sprint(os.Getpid()) {
		return ErrOtherPIDNamespace
	}
	// The start times pin each process to the one the tree was read from:
	// a child that exits and whose PID is reused before its pidfd is open
	// is not signalled.
	tree, starts, err := children(proc)
	if err != nil {
		return err
	}
	var heads, kids []*pinned
	defer func() {
		for _, p := range append(heads, kids...) {
			unix.Close(p.fd)
		}
	}()
	for _, s := range shims {
		p, err := pin(proc, s.PID, s.StartTime)
		if err != nil {
			return err
		}
		if p == nil {
			continue // gone already
		}
		heads = append(heads, p)
		for _, c := range descendants(tree, s.PID) {
			if cp, err := pin(proc, c, starts[c]); err == nil && cp != nil {
				kids = append(kids, cp)
			}
		}
	}
	env.Log.Info("killing Kubernetes shims of a runtime that is down", "shims", len(heads), "processes", len(kids))
	signal(kids, unix.SIGTERM)
	kids = waitExit(ctx, kids, r.opts.Grace)
	signal(kids, unix.SIGKILL)
	signal(heads, unix.SIGKILL)
	left := waitExit(ctx, append(kids, heads...), r.opts.KillTimeout)
	if len(left) > 0 {
		return fmt.Errorf("process %d: %w", left[0].pid, ErrSurvived)
	}
	return ctx.Err()
}

func signal(ps []*pinned, sig unix.Signal) {
	for _, p := range ps {
		// ESRCH: exited meanwhile, which the wait sees at once.
		_ = unix.PidfdSendSignal(p.fd, sig, nil, 0)
	}
}

// waitExit polls the pidfds until all processes exited (a zombie counts:
// its parent may be dead too) or the timeout passed; it returns the rest.
func waitExit(ctx context.Context, ps []*pinned, timeout time.Duration) []*pinned {
	deadline := time.Now().Add(timeout)
	for {
		var alive []*pinned
		for _, p := range ps {
			fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
				continue
			}
			alive = append(alive, p)
		}
		ps = alive
		if len(ps) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return ps
		}
		time.Sleep(10 * time.Millisecond)
	}
}
