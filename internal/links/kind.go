package links

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/nodereset/nodereset/internal/cni"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Defaults for Options.
const (
	DefaultParallel   = 128
	DefaultTimeout    = 10 * time.Second
	DefaultCalicoVNI  = 4096
	DefaultCalicoPort = 4789
	// DefaultFlannelPort is the kernel's vxlan port, which flannel's
	// devices get when its net-conf leaves Port at 0.
	DefaultFlannelPort = 8472
)

// Options configure the link kind. Paths are host-side.
type Options struct {
	// CNIConfDir is read for the bridges Kubernetes CNI configs name and
	// for Calico's and Weave's configs (default /etc/cni/net.d).
	CNIConfDir string
	// CalicoDirs and WeaveDirs mark the plugin as present when one exists
	// (default /var/lib/calico, /run/calico and /var/lib/weave).
	CalicoDirs, WeaveDirs []string
	// FlannelPorts are flannel's vxlan ports (default 8472).
	FlannelPorts []int
	// CalicoVNI and CalicoPort are Calico's vxlan settings (default 4096
	// and 4789).
	CalicoVNI, CalicoPort int
	// Parallel bounds concurrent deletions (default 128): the kernel's
	// per-device teardown, not the request, takes the time, and it runs
	// outside the rtnl lock, so deletions overlap.
	Parallel int
	// Timeout bounds every netlink request (default 10 s).
	Timeout time.Duration
}

// Kind implements engine.Kind for plan.KindLink.
type Kind struct{ opts Options }

var _ engine.Kind = (*Kind)(nil)

// New returns the link kind with defaults filled in.
func New(o Options) *Kind {
	if o.CNIConfDir == "" {
		o.CNIConfDir = cni.DefaultConfDir
	}
	if o.CalicoDirs == nil {
		o.CalicoDirs = []string{"/var/lib/calico", "/run/calico"}
	}
	if o.WeaveDirs == nil {
		o.WeaveDirs = []string{"/var/lib/weave"}
	}
	if len(o.FlannelPorts) == 0 {
		o.FlannelPorts = []int{DefaultFlannelPort}
	}
	if o.CalicoVNI == 0 {
		o.CalicoVNI = DefaultCalicoVNI
	}
	if o.CalicoPort == 0 {
		o.CalicoPort = DefaultCalicoPort
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Kind{opts: o}
}

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindLink }

// Detail is the item detail of a link: its identity when planned, which
// Apply checks before deleting anything under that name.
type Detail struct {
	Index int      `json:"index"`
	Kind  string   `json:"kind"`
	Owner string   `json:"owner"`
	Stage int      `json:"stage"`
	Addrs []string `json:"addrs,omitempty"`
}

// Markers reads what the host says about the network plugins.
func (k *Kind) Markers(env *engine.Env) (Markers, error) {
	m := Markers{FlannelPorts: k.opts.FlannelPorts, CalicoVNI: k.opts.CalicoVNI, CalicoPort: k.opts.CalicoPort}
	confs, err := cni.ReadConfDir(env.Host, k.opts.CNIConfDir)
	for _, c := range confs {
		if !c.Owned() {
			continue
		}
		for _, b := range c.Bridges {
			if !slices.Contains(m.Bridges, b) {
				m.Bridges = append(m.Bridges, b)
			}
		}
		m.Calico = m.Calico || c.Owner == "calico"
		m.Weave = m.Weave || c.Owner == "weave"
	}
	m.Calico = m.Calico || anyDir(env, k.opts.CalicoDirs)
	m.Weave = m.Weave || anyDir(env, k.opts.WeaveDirs)
	return m, err
}

func anyDir(env *engine.Env, dirs []string) bool {
	for _, d := range dirs {
		if p, err := env.Host.Resolve(d); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return true
			}
		}
	}
	return false
}

// Discover implements engine.Kind: one link dump and one address dump.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	m, merr := k.Markers(env)
	h, err := newHandle(k.opts.Timeout)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	cur, err := readAttrs(h)
	if err != nil {
		return nil, err
	}
	var items []plan.Item
	for _, c := range Select(cur.attrs, m) {
		items = append(items, item(c))
	}
	logger(env).Debug("links discovered", "kind", plan.KindLink, "count", len(items))
	if merr != nil {
		merr = fmt.Errorf("links: reading CNI configs for bridge names: %w", merr)
	}
	return items, merr
}

func item(c Choice) plan.Item {
	a := plan.ActionRemove
	if len(c.Addrs) > 0 {
		a = ActionRemoveAddresses
	}
	return plan.Item{
		Kind: plan.KindLink, Target: c.Attrs.Name, Action: a, Reason: c.Reason,
		Detail: Detail{Index: c.Attrs.Index, Kind: c.Attrs.Kind, Owner: c.Owner, Stage: c.Stage, Addrs: c.Addrs},
	}
}

// detail recovers an item's Detail, also from a plan read back from JSON.
func detail(it plan.Item) (Detail, bool) {
	d, ok := plan.DetailAs[Detail](it)
	return d, ok && d.Index != 0 && d.Kind != ""
}

// LinkError is the failure of one link.
type LinkError struct {
	Name, Kind, Op string
	Err            error
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s link %s (%s): %v; look at it with `ip -d link show %s` and rerun", e.Op, e.Name, e.Kind, e.Err, e.Name)
}

func (e *LinkError) Unwrap() error { return e.Err }

// ErrChanged means the link under a planned name is not the planned one
// (another index or kind): it was recreated, maybe by someone else.
var ErrChanged = errors.New("the link under this name is not the one planned; run plan again")

func logger(env *engine.Env) *slog.Logger {
	if env != nil && env.Log != nil {
		return env.Log
	}
	return slog.New(slog.DiscardHandler)
}
