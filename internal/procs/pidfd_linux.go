package procs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Pinned is a process held by a pidfd. Its start time is checked after the
// pidfd is open, so from then on the descriptor names that one process and
// a PID reused after it exited is never signalled.
type Pinned struct {
	PID       int
	StartTime uint64
	fd        int
}

// ErrNoStartTime refuses to pin a process known by its PID alone (an item
// of an older or hand-edited plan): that PID may be another process now.
var ErrNoStartTime = errors.New("no start time recorded for the process, so its PID cannot be trusted: run plan again")

// Pin opens a pidfd on pid and checks that pid still is the process that
// started at start (clock ticks after boot, as Stat has it) and is not a
// zombie. It returns nil, nil when that process is gone, and an error when
// start is 0, the pidfd cannot be opened or the stat read for another
// reason.
func Pin(proc string, pid int, start uint64) (*Pinned, error) {
	if start == 0 {
		return nil, ErrNoStartTime
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	st, err := ReadStat(proc, pid)
	if err != nil || st.State == 'Z' || st.StartTime != start {
		unix.Close(fd)
		if err != nil && !vanished(err) {
			return nil, fmt.Errorf("read stat: %w", err)
		}
		return nil, nil
	}
	return &Pinned{PID: pid, StartTime: st.StartTime, fd: fd}, nil
}

// Signal sends sig through the pidfd; ESRCH means the process exited
// meanwhile, which Wait sees at once.
func (p *Pinned) Signal(sig unix.Signal) error { return unix.PidfdSendSignal(p.fd, sig, nil, 0) }

// Close releases the pidfd.
func (p *Pinned) Close() { unix.Close(p.fd) }

func (p *Pinned) pinned() *Pinned { return p }

// exited reports whether the process ended. A zombie counts: in a PID
// namespace its parent may never reap it, but it runs no more.
func (p *Pinned) exited(proc string) bool {
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents != 0 {
		return true
	}
	st, err := ReadStat(proc, p.PID)
	return err != nil || st.StartTime != p.StartTime || st.State == 'Z'
}

// Wait polls the pidfds (readable once the process exited) until all
// exited, the timeout passed or ctx ended, calling gone (if not nil) for
// each as it exits, and returns those still running. P is *Pinned, or a
// type of this package that embeds one.
func Wait[P interface{ pinned() *Pinned }](ctx context.Context, proc string, ps []P, timeout time.Duration, gone func(P)) []P {
	deadline := time.Now().Add(timeout)
	alive := ps
	for {
		var next []P
		for _, p := range alive {
			if !p.pinned().exited(proc) {
				next = append(next, p)
			} else if gone != nil {
				gone(p)
			}
		}
		alive = next
		left := time.Until(deadline)
		if len(alive) == 0 || left <= 0 || ctx.Err() != nil {
			return alive
		}
		fds := make([]unix.PollFd, len(alive))
		for i, p := range alive {
			fds[i] = unix.PollFd{Fd: int32(p.pinned().fd), Events: unix.POLLIN}
		}
		// Short slices so ctx is honoured and zombies are rechecked.
		ms := int(min(left, 100*time.Millisecond) / time.Millisecond)
		if _, err := unix.Poll(fds, max(ms, 1)); err != nil && !errors.Is(err, unix.EINTR) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
