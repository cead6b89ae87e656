// Package procs finds and stops the processes Kubernetes runs on a host
// (kind "process"): the binaries of its components, decided by the identity
// of the executable file or by exact listening ports, never by matching
// command-line text. It also parses /proc/net/tcp so that verify can say who
// holds a port.
package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Default timeouts for Apply.
const (
	DefaultTermTimeout = 10 * time.Second
	DefaultKillTimeout = 5 * time.Second
)

// Options says which processes belong to Kubernetes and how long to wait.
type Options struct {
	// Executables are host-side paths of component binaries
	// (/usr/bin/kubelet). A process running one of these files is owned.
	Executables []string
	// Ports maps a component's executable basename (kube-proxy) to its
	// exact ports. A process with that basename listening on one of them is
	// owned even when its binary lives elsewhere.
	Ports map[string][]int
	// TermTimeout is how long to wait after SIGTERM (default 10s).
	TermTimeout time.Duration
	// KillTimeout is how long to wait after SIGKILL (default 5s).
	KillTimeout time.Duration
}

// Kind is the "process" kind.
type Kind struct {
	opts Options
	// noticeAfter is defaultNoticeAfter; tests shorten it.
	noticeAfter time.Duration
}

// New returns the process kind for the given options.
func New(o Options) *Kind {
	if o.TermTimeout <= 0 {
		o.TermTimeout = DefaultTermTimeout
	}
	if o.KillTimeout <= 0 {
		o.KillTimeout = DefaultKillTimeout
	}
	return &Kind{opts: o, noticeAfter: defaultNoticeAfter}
}

var _ engine.Kind = (*Kind)(nil)

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindProcess }

// Detail is the item detail of a process: the start time rules out acting
// on a reused PID.
type Detail struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	// Exe is the host-side executable path.
	Exe   string `json:"exe"`
	Ports []int  `json:"ports,omitempty"`
}

// fileID is the identity of a file: same device and inode means same file,
// whatever path reaches it.
type fileID struct{ dev, ino uint64 }

func statID(p string) (fileID, bool) {
	st, err := os.Stat(p)
	if err != nil {
		return fileID{}, false
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(s.Dev), ino: s.Ino}, true
}

// exeTarget is one configured executable as the scan compares it.
type exeTarget struct {
	hostPath string
	id       fileID
	hasID    bool
	// paths are the link texts a deleted binary can show: the path as
	// nodereset sees it (host root joined) and the host-side path.
	paths []string
}

func (k *Kind) targets(env *engine.Env) []exeTarget {
	var out []exeTarget
	for _, exe := range k.opts.Executables {
		t := exeTarget{hostPath: filepath.Clean("/" + exe)}
		t.paths = []string{env.Host.Path(exe), t.hostPath}
		if p, err := env.Host.Resolve(exe); err == nil {
			t.id, t.hasID = statID(p)
			t.paths = append(t.paths, p)
		}
		out = append(out, t)
	}
	return out
}

// Discover implements engine.Kind. It only reads procfs.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	proc := env.Host.Proc()
	pids, err := ListPIDs(proc)
	if err != nil {
		return nil, err
	}
	targets := k.targets(env)
	listen, lerr := k.componentListeners(proc)
	if lerr != nil {
		// Exe matching still works; say what port matching missed.
		env.Log.Warn("reading listening sockets failed; port-based process matching may be incomplete", "err", lerr)
	}
	self := selfPID(proc)
	var items []plan.Item
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if pid == self {
			continue
		}
		it, ok := k.match(env, proc, pid, targets, listen[pid])
		if ok {
			items = append(items, it)
		}
	}
	return items, nil
}

// componentListeners maps PID to the ports it listens on among all
// components' ports.
func (k *Kind) componentListeners(proc string) (map[int][]int, error) {
	var all []int
	for _, ps := range k.opts.Ports {
		all = append(all, ps...)
	}
	if len(all) == 0 {
		return nil, nil
	}
	ls, err := Listeners(proc, all)
	m := map[int][]int{}
	for _, l := range ls {
		if l.PID != 0 && !slices.Contains(m[l.PID], l.Port) {
			m[l.PID] = append(m[l.PID], l.Port)
		}
	}
	return m, err
}

// match decides whether one process is owned; a process that vanished or
// is a kernel thread is not.
func (k *Kind) match(env *engine.Env, proc string, pid int, targets []exeTarget, ports []int) (plan.Item, bool) {
	st, err := ReadStat(proc, pid)
	if err != nil || st.Flags&pfKthread != 0 || st.State == 'Z' {
		return plan.Item{}, false
	}
	link, err := readExe(proc, pid)
	if err != nil {
		return plan.Item{}, false
	}
	d := Detail{PID: pid, StartTime: st.StartTime, Exe: hostSide(env, link)}
	reason := ""
	id, hasID := statID(filepath.Join(pidDir(proc, pid), "exe"))
	bare, deleted := strings.CutSuffix(link, deletedSuffix)
	for _, t := range targets {
		if (hasID && t.hasID && id == t.id) || (deleted && slices.Contains(t.paths, bare)) {
			reason = "executable " + t.hostPath
			if deleted {
				reason += " (deleted or replaced since it started)"
			}
			d.Exe = t.hostPath
			break
		}
	}
	base := filepath.Base(bare)
	for _, p := range ports {
		if slices.Contains(k.opts.Ports[base], p) {
			d.Ports = append(d.Ports, p)
		}
	}
	if reason == "" && len(d.Ports) > 0 {
		reason = fmt.Sprintf("%s listening on :%s", base, joinInts(d.Ports, ", :"))
	}
	if reason == "" {
		return plan.Item{}, false
	}
	return plan.Item{Kind: plan.KindProcess, Target: strconv.Itoa(pid), Action: plan.ActionKill,
		Reason: reason, Detail: d}, true
}

// hostSide turns an exe link text into the host-side path where it is under
// the host root; otherwise the text is already host-side (seen from another
// mount namespace) and kept.
func hostSide(env *engine.Env, link string) string {
	bare, deleted := strings.CutSuffix(link, deletedSuffix)
	if rel, err := env.Host.Rel(bare); err == nil {
		bare = rel
	}
	if deleted {
		return bare + deletedSuffix
	}
	return bare
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// ErrNoDetail is returned for an item without the start time Discover
// records: without it a reused PID could be killed.
var ErrNoDetail = errors.New("process item has no start time; run plan again to rediscover it")
