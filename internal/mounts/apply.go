package mounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ErrBlocked means an item was not attempted because a mount on top of it
// or below it is still there.
var ErrBlocked = errors.New("not attempted")

// BusyError is an unmount that failed with EBUSY, with the processes found
// holding the mount.
type BusyError struct {
	Target  string
	Holders []Holder
	Lazy    bool
}

func (e *BusyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unmount %s: busy: ", e.Target)
	if len(e.Holders) == 0 {
		b.WriteString("no process in /proc holds it (a process in another PID namespace or a kernel user such as a loop device may)")
	} else {
		b.WriteString("held by ")
		for i, h := range e.Holders {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(h.String())
		}
	}
	if e.Lazy {
		b.WriteString("; stop it and rerun")
	} else {
		b.WriteString("; stop it or rerun with --lazy-unmount")
	}
	return b.String()
}

// Unwrap lets errors.Is(err, unix.EBUSY) see the cause.
func (e *BusyError) Unwrap() error { return unix.EBUSY }

// job is one planned mount still in the current mount table.
type job struct {
	item    plan.Item
	m       Mount
	deps    int    // blockers not yet unmounted
	waiters []*job // jobs this one blocks
	done    bool
}

// Apply implements engine.Kind: it unmounts children before parents, the
// mounts on top of a point before the ones below, siblings in parallel.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	log := logger(env)
	roots, rerr := k.roots(env)
	current, err := k.read()
	if err = errors.Join(rerr, err); err != nil {
		for _, it := range items {
			rec.Done(it, fmt.Errorf("unmount %s: %w", it.Target, err))
		}
		return
	}
	seen := make([]string, len(roots))
	for i, r := range roots {
		seen[i] = r.seen
	}
	seen = cleanRoots(seen)
	tree := NewTree(current)
	jobs := map[int]*job{}
	var order []*job
	for _, it := range items {
		m, ok := match(tree, current, env.Host.Path(it.Target), it, jobs)
		switch {
		case !ok:
			log.Debug("mount already gone", "kind", plan.KindMount, "target", it.Target)
			rec.Done(it, nil)
		case !isBelow(m.Point, seen):
			rec.Done(it, fmt.Errorf("unmount %s: refusing: mount %d is not below any Kubernetes root %v", it.Target, m.ID, k.opts.Roots))
		default:
			j := &job{item: it, m: m}
			jobs[m.ID] = j
			order = append(order, j)
		}
	}
	s := &sched{k: k, env: env, rec: rec, ctx: ctx, sem: make(chan struct{}, k.opts.Parallel)}
	var ready []*job
	s.mu.Lock()
	// Link every job before failing any, so that a failure reaches
	// waiters linked after it.
	failed := map[*job]error{}
	for _, j := range order {
		if err := s.link(tree, j, jobs); err != nil {
			failed[j] = err
		}
	}
	for _, j := range order {
		if err := failed[j]; err != nil {
			s.finish(j, err)
		}
	}
	for _, j := range order {
		if !j.done && j.deps == 0 {
			ready = append(ready, j)
		}
	}
	s.mu.Unlock()
	for _, j := range ready {
		s.launch(j)
	}
	s.wg.Wait()
	// Only a dependency cycle, which a sane mount table cannot have, leaves
	// jobs waiting; report them rather than lose them.
	for _, j := range order {
		if !j.done {
			s.finish(j, fmt.Errorf("unmount %s: %w: could not order it among the mounts around it", j.item.Target, ErrBlocked))
		}
	}
}

// match finds the current mount an item planned: the same ID at the same
// point. Items without a detail take the topmost unclaimed mount at the point.
func match(t *Tree, current []Mount, point string, it plan.Item, claimed map[int]*job) (Mount, bool) {
	if d, ok := detail(it); ok {
		m, ok := t.Get(d.ID)
		if !ok || m.Point != point || claimed[m.ID] != nil {
			return Mount{}, false
		}
		return m, true
	}
	for i := len(current) - 1; i >= 0; i-- {
		if m := current[i]; m.Point == point && claimed[m.ID] == nil {
			return m, true
		}
	}
	return Mount{}, false
}

func isBelow(p string, roots []string) bool { _, ok := below(p, roots); return ok }

type sched struct {
	k   *Kind
	env *engine.Env
	rec engine.Recorder
	ctx context.Context
	sem chan struct{}
	wg  sync.WaitGroup
	mu  sync.Mutex
}

// link records what j waits for; an unplanned blocker fails j at once.
// Called with mu held.
func (s *sched) link(t *Tree, j *job, jobs map[int]*job) error {
	children, shadows := t.blockers(j.m)
	var errs []error
	add := func(b Mount, what string) {
		if bj := jobs[b.ID]; bj != nil {
			j.deps++
			bj.waiters = append(bj.waiters, j)
			return
		}
		errs = append(errs, fmt.Errorf("unmount %s: %w: %s %s (mount %d, %s) is not in the plan; rerun nodereset to plan it",
			j.item.Target, ErrBlocked, what, s.rel(b.Point), b.ID, b.FSType))
	}
	for _, c := range children {
		add(c, "child mount")
	}
	for _, sh := range shadows {
		add(sh, "mount on top")
	}
	return errors.Join(errs...)
}

func (s *sched) rel(p string) string {
	if r, err := s.env.Host.Rel(p); err == nil {
		return r
	}
	return p
}

func (s *sched) launch(j *job) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sem <- struct{}{}
		err := s.unmount(j)
		<-s.sem
		s.mu.Lock()
		ready := s.finish(j, err)
		s.mu.Unlock()
		for _, r := range ready {
			s.launch(r)
		}
	}()
}

// finish reports j and returns the waiters it made ready; a failure fails
// every waiter up the chain, naming the mount that stayed. Called with mu held.
func (s *sched) finish(j *job, err error) []*job {
	if j.done {
		return nil
	}
	j.done = true
	s.rec.Done(j.item, err)
	var ready []*job
	for _, w := range j.waiters {
		if w.done {
			continue
		}
		if err != nil {
			ready = append(ready, s.finish(w, fmt.Errorf("unmount %s: %w: %s is still mounted", w.item.Target, ErrBlocked, j.item.Target))...)
			continue
		}
		if w.deps--; w.deps == 0 {
			ready = append(ready, w)
		}
	}
	return ready
}

func (s *sched) unmount(j *job) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("unmount %s: %w", j.item.Target, err)
	}
	s.rec.Start(j.item)
	err := s.k.um.Unmount(j.m.Point, j.m.ID, s.k.opts.Lazy)
	switch {
	case err == nil:
		logger(s.env).Info("unmounted", "kind", plan.KindMount, "target", j.item.Target, "fstype", j.m.FSType)
		return nil
	case errors.Is(err, unix.EBUSY):
		return &BusyError{Target: j.item.Target, Holders: s.holders(j), Lazy: s.k.opts.Lazy}
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// Someone else may have unmounted it since the table was read.
		if !s.present(j.m) {
			return nil
		}
	}
	return fmt.Errorf("unmount %s: %w", j.item.Target, err)
}

// holders looks for processes under both spellings of the mount point: proc
// links show paths from nodereset's root, or from the host's root for
// processes in the host's mount namespace.
func (s *sched) holders(j *job) []Holder {
	proc := s.env.Host.Proc()
	hs, err := Holders(proc, j.m.Point)
	if err != nil {
		logger(s.env).Warn("cannot look for holders", "kind", plan.KindMount, "target", j.item.Target, "err", err)
	}
	if j.item.Target == j.m.Point {
		return hs
	}
	more, _ := Holders(proc, j.item.Target)
	have := map[int]bool{}
	for _, h := range hs {
		have[h.PID] = true
	}
	for _, h := range more {
		if !have[h.PID] {
			hs = append(hs, h)
		}
	}
	return hs
}

func (s *sched) present(m Mount) bool {
	ms, err := s.k.read()
	if err != nil {
		return true
	}
	for _, c := range ms {
		if c.ID == m.ID && c.Point == m.Point {
			return true
		}
	}
	return false
}
