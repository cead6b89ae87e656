package links

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// job is one planned link still present under its name.
type job struct {
	item  plan.Item
	link  netlink.Link
	stage int
	addrs []string
}

// Apply implements engine.Kind: it re-reads the links once, checks each
// planned one is still the same device (index and kind), then deletes them
// stage by stage (see StagePodLinks), each stage in parallel with one
// netlink socket per worker.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	h, err := newHandle(k.opts.Timeout)
	var cur current
	if err == nil {
		cur, err = readAttrs(h)
		h.Close()
	}
	if err != nil {
		for _, it := range items {
			rec.Done(it, &LinkError{Name: it.Target, Op: "read", Err: err})
		}
		return
	}
	var chosen map[string]Choice // only for items without a detail
	stages := map[int][]job{}
	for _, it := range items {
		j, err := k.match(env, it, cur, &chosen)
		switch {
		case err != nil:
			rec.Done(it, err)
		case j == nil:
			logger(env).Debug("link already gone", "kind", plan.KindLink, "target", it.Target)
			rec.Done(it, nil)
		default:
			stages[j.stage] = append(stages[j.stage], *j)
		}
	}
	order := make([]int, 0, len(stages))
	for s := range stages {
		order = append(order, s)
	}
	slices.Sort(order)
	for _, s := range order {
		k.runStage(ctx, env, stages[s], rec)
	}
}

// match finds the device an item planned. nil, nil: it is gone.
func (k *Kind) match(env *engine.Env, it plan.Item, cur current, chosen *map[string]Choice) (*job, error) {
	if it.Action != plan.ActionRemove && it.Action != ActionRemoveAddresses {
		return nil, &LinkError{Name: it.Target, Op: "apply", Err: fmt.Errorf("unknown action %q", it.Action)}
	}
	l, ok := cur.byName[it.Target]
	if !ok {
		return nil, nil
	}
	kind := l.Type()
	d, ok := detail(it)
	if !ok {
		// A plan without details (hand-written, or from another version):
		// decide again on the current attributes.
		if *chosen == nil {
			m, err := k.Markers(env)
			if err != nil {
				return nil, &LinkError{Name: it.Target, Kind: kind, Op: "check", Err: err}
			}
			*chosen = map[string]Choice{}
			for _, c := range Select(cur.attrs, m) {
				(*chosen)[c.Attrs.Name] = c
			}
		}
		c, ok := (*chosen)[it.Target]
		if !ok {
			return nil, &LinkError{Name: it.Target, Kind: kind, Op: "check", Err: errors.New("not a Kubernetes-owned link by its current attributes; refusing")}
		}
		d = Detail{Index: c.Attrs.Index, Kind: c.Attrs.Kind, Owner: c.Owner, Stage: c.Stage, Addrs: c.Addrs}
	}
	if l.Attrs().Index != d.Index || kind != d.Kind {
		return nil, &LinkError{Name: it.Target, Kind: kind, Op: "check",
			Err: fmt.Errorf("%w (planned index %d kind %s, now index %d kind %s)", ErrChanged, d.Index, d.Kind, l.Attrs().Index, kind)}
	}
	return &job{item: it, link: l, stage: d.Stage, addrs: d.Addrs}, nil
}

// runStage deletes one stage's links with up to Parallel workers.
func (k *Kind) runStage(ctx context.Context, env *engine.Env, jobs []job, rec engine.Recorder) {
	work := make(chan job)
	var wg sync.WaitGroup
	for range min(k.opts.Parallel, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := newHandle(k.opts.Timeout)
			if h != nil {
				defer h.Close()
			}
			for j := range work {
				if err != nil {
					rec.Done(j.item, &LinkError{Name: j.item.Target, Kind: j.link.Type(), Op: "delete", Err: err})
					continue
				}
				if cerr := ctx.Err(); cerr != nil {
					rec.Done(j.item, &LinkError{Name: j.item.Target, Kind: j.link.Type(), Op: "delete", Err: cerr})
					continue
				}
				rec.Start(j.item)
				rec.Done(j.item, k.apply(env, h, j))
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
}

func (k *Kind) apply(env *engine.Env, h *netlink.Handle, j job) error {
	name, kind := j.item.Target, j.link.Type()
	if j.item.Action == ActionRemoveAddresses {
		return k.removeAddrs(env, h, j)
	}
	err := h.LinkDel(j.link)
	if errors.Is(err, unix.ENODEV) {
		// Gone with its peer (cilium_net with cilium_host) or by someone
		// else since the dump.
		err = nil
	}
	if err != nil {
		return &LinkError{Name: name, Kind: kind, Op: "delete", Err: err}
	}
	logger(env).Info("link deleted", "kind", plan.KindLink, "target", name, "link", kind)
	return nil
}

// removeAddrs removes the planned addresses, then deletes the device if
// the kernel allows it: tunl0 is the ipip module's fallback device, which
// stays as long as the module does.
func (k *Kind) removeAddrs(env *engine.Env, h *netlink.Handle, j job) error {
	name, kind := j.item.Target, j.link.Type()
	var errs []error
	for _, s := range j.addrs {
		a, err := netlink.ParseAddr(s)
		if err != nil {
			errs = append(errs, &LinkError{Name: name, Kind: kind, Op: "remove address " + s + " from", Err: err})
			continue
		}
		err = h.AddrDel(j.link, a)
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, &LinkError{Name: name, Kind: kind, Op: "remove address " + s + " from", Err: err})
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := h.LinkDel(j.link); err != nil {
		logger(env).Debug("device kept: the kernel does not let it go", "kind", plan.KindLink, "target", name, "err", err)
	}
	logger(env).Info("link addresses removed", "kind", plan.KindLink, "target", name, "addrs", j.addrs)
	return nil
}
