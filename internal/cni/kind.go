package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Defaults, host-side.
const (
	DefaultConfDir = "/etc/cni/net.d"
	DefaultLibDir  = "/var/lib/cni"
)

// maxConfig bounds how much of a config file is read: real ones are a few
// KiB; anything larger is not a CNI config.
const maxConfig = 1 << 20

// Options configure the kind. All paths are host-side.
type Options struct {
	// ConfDir is the CNI config directory (default /etc/cni/net.d).
	ConfDir string
	// Hold, when it returns true at Apply, keeps the config files (and
	// kubeconfigs): a runtime that was down still has Kubernetes sandboxes,
	// and containerd cannot remove them without the CNI config.
	Hold func() bool
	// LibDir is libcni's state directory (default /var/lib/cni): IPAM
	// leases in networks/<net>, cached results in results/<net>-<id>-<if>.
	LibDir string
	// StateDirs are directories only a Kubernetes network plugin writes,
	// removed whole when present (/run/flannel, /var/lib/calico,
	// /run/calico, /var/lib/weave). LibDir, ConfDir and their parents are
	// ignored here: they are shared.
	StateDirs []string
	// Backup plans config files as backup-remove: Apply moves them under
	// the run's backup directory, in cni/<host path>.
	Backup bool
}

// What an item is; Apply removes them in this order, so that a run
// interrupted half way still finds the configs that tell which state
// belongs to which network.
const (
	WhatResult     = "result"
	WhatIPAM       = "ipam"
	WhatState      = "state"
	WhatKubeconfig = "kubeconfig"
	WhatConfig     = "config"
)

func rank(what string) int {
	return slices.Index([]string{WhatResult, WhatIPAM, WhatState, WhatKubeconfig, WhatConfig}, what)
}

// Detail is the item detail of a CNI file.
type Detail struct {
	What    string `json:"what"`
	Owner   string `json:"owner,omitempty"`
	Network string `json:"network,omitempty"`
}

// Kind implements engine.Kind for plan.KindCNIFile.
type Kind struct{ opts Options }

var _ engine.Kind = (*Kind)(nil)

// New returns the kind with defaults filled in.
func New(o Options) *Kind {
	if o.ConfDir == "" {
		o.ConfDir = DefaultConfDir
	}
	if o.LibDir == "" {
		o.LibDir = DefaultLibDir
	}
	o.ConfDir, o.LibDir = filepath.Clean(o.ConfDir), filepath.Clean(o.LibDir)
	return &Kind{opts: o}
}

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindCNIFile }

// ReadConfDir parses every config file in dir (host-side) on h. Files that
// are not CNI configs are skipped; a missing dir has no configs. Only
// regular files are read: a symlink is not what a plugin writes.
func ReadConfDir(h *host.Host, dir string) ([]Config, error) {
	seen, err := h.Resolve(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(seen)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CNI config dir %s: %w", dir, err)
	}
	var out []Config
	for _, e := range ents {
		if !e.Type().IsRegular() || !isConfigName(e.Name()) {
			continue
		}
		c, err := readConfig(filepath.Join(seen, e.Name()), filepath.Join(dir, e.Name()))
		if err != nil {
			continue // not a CNI config: nobody's network, nothing to do
		}
		out = append(out, c)
	}
	return out, nil
}

func readConfig(seen, hostPath string) (Config, error) {
	f, err := os.Open(seen)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfig))
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", hostPath, err)
	}
	return Parse(hostPath, b)
}

// Discover implements engine.Kind. It only reads.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	confs, err := ReadConfDir(env.Host, k.opts.ConfDir)
	if err != nil {
		return nil, err
	}
	var items []plan.Item
	add := func(target string, a plan.Action, d Detail, reason string) {
		items = append(items, plan.Item{Kind: plan.KindCNIFile, Target: target, Action: a, Reason: reason, Detail: d})
	}
	cfgAction := plan.ActionRemove
	if k.opts.Backup {
		cfgAction = plan.ActionBackupRemove
	}
	owned, foreign := map[string]string{}, map[string]bool{}
	for _, c := range confs {
		if !c.Owned() {
			foreign[c.Name] = true
			continue
		}
		add(c.Path, cfgAction, Detail{What: WhatConfig, Owner: c.Owner, Network: c.Name},
			fmt.Sprintf("CNI config of network %q written by %s (plugins %s)", c.Name, c.Owner, strings.Join(c.Types, ",")))
		if c.Name != "" {
			owned[c.Name] = c.Owner
		}
		for _, kc := range c.Kubeconfigs {
			if !host.Under(kc, k.opts.ConfDir) || kc == k.opts.ConfDir || slices.ContainsFunc(items, func(it plan.Item) bool { return it.Target == kc }) {
				continue // outside the CNI dir: not the plugin's own file
			}
			if isRegular(env.Host, kc) {
				add(kc, cfgAction, Detail{What: WhatKubeconfig, Owner: c.Owner, Network: c.Name},
					fmt.Sprintf("kubeconfig referenced by %s's CNI config %s", c.Owner, filepath.Base(c.Path)))
			}
		}
	}
	var errs []error
	for _, net := range sortedKeys(owned) {
		if foreign[net] {
			logger(env).Warn("a Kubernetes and a foreign CNI config share a network name; its IPAM state is kept",
				"kind", plan.KindCNIFile, "network", net)
			continue
		}
		if !validNetName(net) {
			continue
		}
		d := Detail{What: WhatIPAM, Owner: owned[net], Network: net}
		if p := filepath.Join(k.opts.LibDir, "networks", net); isDir(env.Host, p) {
			add(p, plan.ActionRemove, d, fmt.Sprintf("IPAM leases of Kubernetes network %q", net))
		}
		res, err := k.results(env.Host, net)
		errs = append(errs, err)
		d.What = WhatResult
		for _, p := range res {
			add(p, plan.ActionRemove, d, fmt.Sprintf("libcni cached result of Kubernetes network %q", net))
		}
	}
	for _, p := range k.stateDirs() {
		if isDir(env.Host, p) {
			add(p, plan.ActionRemove, Detail{What: WhatState}, "state directory of a Kubernetes network plugin")
		}
	}
	slices.SortStableFunc(items, func(a, b plan.Item) int { return rank(detailOf(a).What) - rank(detailOf(b).What) })
	logger(env).Debug("CNI files discovered", "kind", plan.KindCNIFile, "count", len(items))
	return items, errors.Join(errs...)
}

// stateDirs are the configured state directories plus the plugins' own
// directories below LibDir, named after the plugin (flannel keeps its
// delegate configs in /var/lib/cni/flannel, multus in /var/lib/cni/multus).
func (k *Kind) stateDirs() []string {
	var out []string
	for _, d := range k.opts.StateDirs {
		d = filepath.Clean(d)
		// The shared directories themselves (or a parent of them, or /)
		// are never removed whole: podman and CRI-O keep state there too.
		if !filepath.IsAbs(d) || host.Under(k.opts.LibDir, d) || host.Under(k.opts.ConfDir, d) {
			continue
		}
		out = append(out, d)
	}
	for _, p := range []string{"flannel", "multus"} {
		out = append(out, filepath.Join(k.opts.LibDir, p))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// results lists LibDir/results/<net>-<containerID>-<ifname> files whose
// network is exactly net: the name alone cannot tell network "k8s" from
// "k8s-pod-network", so the cached JSON's networkName decides, and a file
// without one must have a 64-hex container ID right after "<net>-".
func (k *Kind) results(h *host.Host, net string) ([]string, error) {
	dir := filepath.Join(k.opts.LibDir, "results")
	seen, err := h.Resolve(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(seen)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read libcni results %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), net+"-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(seen, e.Name()))
		if err != nil {
			continue
		}
		if ResultOf(e.Name(), b) == net {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}
