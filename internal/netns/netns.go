// Package netns removes the network namespaces CNI and container runtimes
// pin as files (kind "netns"): /run/netns/cni-* and the runtime's own
// netns directories, when no live process uses them. Never `ip netns
// delete` of everything: another namespace in /run/netns is the user's.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// DefaultDir is where CNI runtimes pin pod network namespaces.
const DefaultDir = "/run/netns"

// CNIPrefix is the name prefix of the namespaces CNI runtimes create there
// (containerd, CRI-O: cni-<uuid>).
const CNIPrefix = "cni-"

// PodProcesses tells which processes serve pods that an earlier phase
// removes (the CRI kind's shims and their trees): a namespace used only by
// them is planned, since it will be free by the time it is removed.
type PodProcesses interface {
	PodProcesses(env *engine.Env) (map[int]bool, error)
}

// Options say where the namespaces are.
type Options struct {
	// Dir holds the CNI namespaces (default /run/netns); only entries named
	// cni-* are owned.
	Dir string
	// RuntimeDirs are netns directories a runtime owns alone: every entry
	// is owned.
	RuntimeDirs []string
	// Pods may be nil: then only namespaces no process uses are planned.
	Pods PodProcesses
}

// Kind is the "netns" kind.
type Kind struct{ opts Options }

// New returns the netns kind.
func New(o Options) *Kind {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	return &Kind{opts: o}
}

var _ engine.Kind = (*Kind)(nil)

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindNetns }

// Detail is the item detail of a namespace file.
type Detail struct {
	// Inode of the namespace (nsfs) while mounted, 0 for a bare file left
	// behind by an unmount.
	Inode   uint64 `json:"inode,omitempty"`
	Mounted bool   `json:"mounted"`
	// PodPIDs are pod processes that used it at plan time.
	PodPIDs []int `json:"podPids,omitempty"`
}

// candidate is one namespace file found in an owned directory.
type candidate struct {
	target  string // host-side
	path    string // as nodereset sees it
	inode   uint64
	mounted bool
}

// candidates lists the owned entries of the configured directories.
func (k *Kind) candidates(env *engine.Env) ([]candidate, error) {
	type dir struct {
		d   string
		all bool
	}
	dirs := []dir{{k.opts.Dir, false}}
	for _, d := range k.opts.RuntimeDirs {
		dirs = append(dirs, dir{d, true})
	}
	var out []candidate
	var errs []error
	for _, d := range dirs {
		p := env.Host.Path(d.d)
		ents, err := os.ReadDir(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list network namespaces in %s: %w", d.d, err))
			continue
		}
		mounted, err := nsfsMounts(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			if !d.all && !strings.HasPrefix(e.Name(), CNIPrefix) {
				continue
			}
			if !e.Type().IsRegular() { // a symlink or directory is nobody's netns pin
				continue
			}
			c := candidate{target: filepath.Join(filepath.Clean("/"+d.d), e.Name()), path: filepath.Join(p, e.Name())}
			if mounted[c.path] {
				c.mounted = true
				c.inode, _ = inode(c.path)
			}
			out = append(out, c)
		}
	}
	return out, errors.Join(errs...)
}

// nsfsMounts returns the nsfs mount points directly in dir.
func nsfsMounts(dir string) (map[string]bool, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("nsfs"))
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	out := map[string]bool{}
	for _, m := range ms {
		if filepath.Dir(m.Mountpoint) == dir {
			out[m.Mountpoint] = true
		}
	}
	return out, nil
}

func inode(p string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// users maps each network namespace inode to the processes in it or
// holding it open, from every task's ns/net and every open fd.
func users(proc string) (map[uint64][]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", proc, err)
	}
	out := map[uint64][]int{}
	add := func(ino uint64, pid int) {
		if !slices.Contains(out[ino], pid) {
			out[ino] = append(out[ino], pid)
		}
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		base := filepath.Join(proc, e.Name())
		tasks, _ := os.ReadDir(filepath.Join(base, "task"))
		for _, t := range tasks {
			if ino, err := inode(filepath.Join(base, "task", t.Name(), "ns", "net")); err == nil {
				add(ino, pid)
			}
		}
		fds, _ := os.ReadDir(filepath.Join(base, "fd"))
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(base, "fd", fd.Name()))
			if s, ok := strings.CutPrefix(l, "net:["); err == nil && ok {
				if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
					add(ino, pid)
				}
			}
		}
	}
	return out, nil
}

// Discover implements engine.Kind. It changes nothing.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	cands, err := k.candidates(env)
	if len(cands) == 0 {
		return nil, err
	}
	errs := []error{err}
	use, uerr := users(env.Host.Proc())
	if uerr != nil {
		return nil, errors.Join(err, uerr)
	}
	var pods map[int]bool
	if k.opts.Pods != nil {
		var perr error
		if pods, perr = k.opts.Pods.PodProcesses(env); perr != nil {
			errs = append(errs, perr)
		}
	}
	var items []plan.Item
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it := plan.Item{Kind: plan.KindNetns, Target: c.target, Action: plan.ActionRemove,
			Detail: Detail{Inode: c.inode, Mounted: c.mounted}}
		pids := use[c.inode]
		switch {
		case !c.mounted:
			it.Reason = "network namespace file left behind, no longer mounted"
		case len(pids) == 0:
			it.Reason = "CNI network namespace no process uses"
		case all(pids, pods):
			it.Reason = fmt.Sprintf("CNI network namespace of pods removed before it (%d pod processes use it now)", len(pids))
			it.Detail = Detail{Inode: c.inode, Mounted: true, PodPIDs: pids}
		default:
			env.Log.Info("network namespace in use by a process outside Kubernetes pods; kept", "netns", c.target, "pids", pids)
			continue
		}
		items = append(items, it)
	}
	return items, errors.Join(errs...)
}

func all(pids []int, set map[int]bool) bool {
	for _, p := range pids {
		if !set[p] {
			return false
		}
	}
	return true
}

func join(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}
