package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ErrInUse means a process still uses the namespace: unmounting would only
// hide it, so it is kept.
var ErrInUse = errors.New("still used by a live process")

// Error is the failure of one namespace item.
type Error struct {
	Target string
	Op     string
	PIDs   []int
	Err    error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("netns %s: %s: %v", e.Target, e.Op, e.Err)
	if len(e.PIDs) > 0 {
		s += " (pids " + join(e.PIDs) + "; stop them, or the pods they serve, and run reset again)"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// maxStacked bounds the unmounts of one path: a namespace file can carry
// several nsfs mounts stacked on each other.
const maxStacked = 8

// Apply implements engine.Kind: for each namespace that no process uses
// now, unmount the nsfs bind mount (every one stacked there), then unlink
// the file. One procfs scan serves all items.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	use, uerr := users(env.Host.Proc())
	engine.ApplyEach(ctx, items, rec, func(it plan.Item) error {
		if uerr != nil {
			return &Error{Target: it.Target, Op: "find its users", Err: uerr}
		}
		return k.remove(env, it, use)
	})
}

func (k *Kind) remove(env *engine.Env, it plan.Item, use map[uint64][]int) error {
	p := env.Host.Path(it.Target)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &Error{Target: it.Target, Op: "stat", Err: err}
	}
	if !fi.Mode().IsRegular() {
		return &Error{Target: it.Target, Op: "check", Err: fmt.Errorf("is a %s now, not a namespace file: run plan again", fi.Mode().Type())}
	}
	for n := 0; n < maxStacked; n++ {
		mounted, err := nsfsMounts(filepath.Dir(p))
		if err != nil {
			return &Error{Target: it.Target, Op: "read mounts", Err: err}
		}
		if !mounted[p] {
			break
		}
		ino, err := inode(p)
		if err == nil && len(use[ino]) > 0 {
			return &Error{Target: it.Target, Op: "unmount", PIDs: use[ino], Err: ErrInUse}
		}
		if err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
			return &Error{Target: it.Target, Op: "unmount", Err: err}
		}
	}
	if err := unix.Unlink(p); err != nil && !errors.Is(err, unix.ENOENT) {
		return &Error{Target: it.Target, Op: "unlink", Err: err}
	}
	env.Log.Info("removed network namespace", "netns", it.Target)
	return nil
}
