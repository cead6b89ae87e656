package mounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Options configures the mount kind.
type Options struct {
	// Roots are the Kubernetes-owned directories as host-side paths
	// (/var/lib/kubelet, /run/k3s). Each is resolved through symlinks inside
	// the host root, because the kubelet root is often a link to a data disk.
	Roots []string
	// Lazy detaches busy mounts (MNT_DETACH) instead of failing them. Off by
	// default: a detached mount keeps its data reachable by its holders and
	// hides it from checks. MNT_FORCE is never used.
	Lazy bool
	// Parallel bounds concurrent unmount syscalls (default 8).
	Parallel int
	// MountInfo is the mountinfo file of nodereset's own mount namespace
	// (default /proc/self/mountinfo); its paths are as nodereset sees them.
	MountInfo string
}

// Kind discovers and unmounts mounts below Kubernetes roots.
type Kind struct {
	opts Options
	um   unmounter
}

// New returns the mount kind with defaults filled in.
func New(o Options) *Kind {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.MountInfo == "" {
		o.MountInfo = "/proc/self/mountinfo"
	}
	return &Kind{opts: o, um: sysUnmounter{}}
}

// Detail is the plan item detail of a mount: the identity Apply checks
// before unmounting.
type Detail struct {
	ID     int    `json:"id"`
	Parent int    `json:"parent"`
	FSType string `json:"fstype"`
	Source string `json:"source"`
}

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindMount }

// root is one configured root: as given (host-side) and as nodereset sees it.
type root struct{ host, seen string }

func (k *Kind) roots(env *engine.Env) ([]root, error) {
	var (
		out  []root
		errs []error
	)
	for _, r := range k.opts.Roots {
		seen, err := env.Host.Resolve(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("mount root %s: %w", r, err))
			continue
		}
		out = append(out, root{host: r, seen: seen})
	}
	return out, errors.Join(errs...)
}

func (k *Kind) read() ([]Mount, error) {
	f, err := os.Open(k.opts.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.opts.MountInfo, err)
	}
	return ms, nil
}

// Discover implements engine.Kind. It only reads the mount table.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	roots, err := k.roots(env)
	if err != nil {
		return nil, err
	}
	all, err := k.read()
	if err != nil {
		return nil, err
	}
	seen := make([]string, len(roots))
	for i, r := range roots {
		seen[i] = r.seen
	}
	seen = cleanRoots(seen)
	var (
		items []plan.Item
		errs  []error
	)
	for _, m := range Select(all, seen) {
		target, err := env.Host.Rel(m.Point)
		if err != nil {
			errs = append(errs, fmt.Errorf("mount %d at %s: %w", m.ID, m.Point, err))
			continue
		}
		r, _ := below(m.Point, seen)
		items = append(items, plan.Item{
			Kind:   plan.KindMount,
			Target: target,
			Action: plan.ActionUnmount,
			Reason: fmt.Sprintf("%s mounted under Kubernetes root %s", m.FSType, hostRoot(roots, r)),
			Detail: Detail{ID: m.ID, Parent: m.Parent, FSType: m.FSType, Source: m.Source},
		})
	}
	logger(env).Debug("mounts discovered", "kind", plan.KindMount, "count", len(items))
	return items, errors.Join(errs...)
}

// hostRoot names a resolved root by the host-side path it was configured as.
func hostRoot(roots []root, seen string) string {
	for _, r := range roots {
		if r.seen == seen {
			return r.host
		}
	}
	return seen
}

// Key tells apart mounts stacked on one point (plan.Keyer).
func (d Detail) Key() string { return strconv.Itoa(d.ID) }

// detail recovers an item's Detail, also from a plan read back from JSON.
func detail(it plan.Item) (Detail, bool) {
	d, ok := plan.DetailAs[Detail](it)
	return d, ok && d.ID != 0
}

func logger(env *engine.Env) *slog.Logger {
	if env != nil && env.Log != nil {
		return env.Log
	}
	return slog.New(slog.DiscardHandler)
}
