// Package firewall removes the iptables and ip6tables state Kubernetes, its
// kube-proxy and its CNI created — in both the legacy and the nft backend —
// and nothing else. One engine kind (New) owns both item kinds,
// "iptables-rule" and "iptables-chain" (an engine.MultiKind), because a
// rule and the chain it jumps to go in one batch; the opt-in "conntrack"
// kind (NewConntrack) is a kind of its own.
//
// It reads each backend×family once, decides by exact identity:
// a user-defined chain is owned by its name's owner prefix (KUBE-, CNI-,
// FLANNEL-, cali-, CILIUM_, RKE2-CILIUM-, WEAVE-...), except the CNI
// firewall plugin's CNI-ADMIN once an administrator put rules in it; a
// rule in any other chain (built-in, Docker's, the user's) is owned when
// it jumps to an owned chain, carries an owner's exact comment ("flanneld
// masq"), matches an owned ipset, or has the exact shape of flannel's
// comment-less masquerade rules for the cluster network; Apply judges each
// item again by the same rules. It applies rules and chains together, one
// `iptables-restore --noflush` per backend×family: explicit -D of the
// owned rules, -F of every owned chain but CNI-ADMIN, then -X of each, one
// COMMIT per table (the nft backend's chains go through nf_tables netlink
// instead, and CNI-ADMIN through iptables-nft's -X, which refuses a chain
// that holds rules). Every restore of the legacy backend
// re-reads and rewrites whole tables, so one batch instead of one per item
// kind matters (10,000 Services, 70k lines: two batches 1.3 s against 0.4 s
// for the anchors' save|grep|restore). It never flushes a table nor changes
// a policy, so Docker's, libvirt's, firewalld's and the user's rules stay
// byte for byte.
//
// Item targets (host-side, stable, documented in docs):
//
//	iptables-chain: "<family>/<backend> <table> <chain>"
//	                ip4/nft filter KUBE-SERVICES
//	iptables-rule:  "<family>/<backend> <table> <chain> <spec as iptables-save prints it>"
//	                ip4/nft nat PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
package firewall

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// DefaultTimeout bounds each iptables program run.
const DefaultTimeout = 60 * time.Second

// DefaultFlannelSubnetEnv is where flannel records the cluster network.
const DefaultFlannelSubnetEnv = "/run/flannel/subnet.env"

// Options configure the iptables and the conntrack kind.
type Options struct {
	// FlannelSubnetEnv is the host path of flannel's subnet.env, whose
	// FLANNEL_NETWORK identifies flannel's comment-less masquerade rules
	// (default /run/flannel/subnet.env; a missing file is fine).
	FlannelSubnetEnv string
	// ClusterCIDRs are pod network CIDRs known otherwise (profile or flag)
	// for the same purpose.
	ClusterCIDRs []string
	// ServiceCIDRs are the cluster's Service CIDRs (profile, kube-proxy
	// config, --service-cidr); only Conntrack uses them.
	ServiceCIDRs []string
	// Conntrack turns on the kind NewConntrack returns (--conntrack): the
	// flows kube-proxy translated to Service IPs in ServiceCIDRs.
	Conntrack bool
	// Backends to handle (default AllBackends()); one whose programs are
	// not installed is skipped.
	Backends []Backend
	// Timeout bounds each program run (default 60 s).
	Timeout time.Duration
	// Runner runs the iptables programs (default ExecRunner).
	Runner Runner
}

func (o Options) withDefaults() Options {
	if o.FlannelSubnetEnv == "" {
		o.FlannelSubnetEnv = DefaultFlannelSubnetEnv
	}
	if len(o.Backends) == 0 {
		o.Backends = AllBackends()
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	return o
}

// Kind is the iptables kind: owned rules in chains that stay
// ("iptables-rule") and owned chains ("iptables-chain"), discovered with
// one read and applied in one batch per backend×family.
type Kind struct{ opts Options }

var (
	_ engine.MultiKind   = (*Kind)(nil)
	_ engine.Snapshotter = (*Kind)(nil)
)

// New returns the iptables kind. NewConntrack is the conntrack kind, to
// be listed after it in the phase.
func New(o Options) *Kind { return &Kind{opts: o.withDefaults()} }

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindRule }

// Kinds implements engine.MultiKind.
func (k *Kind) Kinds() []plan.Kind { return []plan.Kind{plan.KindRule, plan.KindChain} }

// Discover implements engine.Kind: one read per backend, nothing changed.
// Rules come first, as they always did in a plan: they jump to the chains.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	snaps, err := readAll(ctx, k.opts, k.opts.Backends, foreignChain)
	fl := k.opts.flannel(env)
	var rules, chains []plan.Item
	for _, s := range snaps {
		for _, t := range s.tables {
			owned := t.ownedChains()
			rules = append(rules, ownedRules(s.backend, t, owned, fl)...)
			chains = append(chains, chainItems(s.backend, t, owned)...)
		}
	}
	return append(rules, chains...), err
}

// Snapshot implements engine.Snapshotter: the firewall backup is taken
// before the run's first phase, because removing pods (the runtime's CNI
// DEL) changes rules phases before the firewall's own. Only a plan that
// changes the firewall (rules, chains, nft tables, ipsets) needs one.
func (k *Kind) Snapshot(ctx context.Context, env *engine.Env, p *plan.Plan) error {
	for _, it := range p.Items() {
		switch it.Kind {
		case plan.KindRule, plan.KindChain, plan.KindNftTable, plan.KindIPSet:
			return Backup(ctx, env, k.opts)
		}
	}
	return nil
}

// ChainDetail is the item detail of an owned chain.
type ChainDetail struct {
	Family  string `json:"family"`
	Backend string `json:"backend"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Owner   string `json:"owner"`
}

// RuleDetail is the item detail of an owned rule in a foreign chain.
// Occurrence tells identical rules in one chain apart (1-based).
type RuleDetail struct {
	Family     string `json:"family"`
	Backend    string `json:"backend"`
	Table      string `json:"table"`
	Chain      string `json:"chain"`
	Spec       string `json:"spec"`
	Occurrence int    `json:"occurrence"`
}

// Key implements plan.Keyer.
func (d RuleDetail) Key() string { return strconv.Itoa(d.Occurrence) }

func (d RuleDetail) backend() Backend  { return Backend{Family: d.Family, Name: d.Backend} }
func (d ChainDetail) backend() Backend { return Backend{Family: d.Family, Name: d.Backend} }

func chainTarget(b Backend, table, chain string) string {
	return b.String() + " " + table + " " + chain
}

func ruleTarget(b Backend, table, chain, spec string) string {
	return strings.TrimSuffix(b.String()+" "+table+" "+chain+" "+spec, " ")
}

// ErrBadTarget is returned for an item whose target is not in this
// package's format (a hand-edited plan).
var ErrBadTarget = errors.New("not an iptables item target: run plan again")

// parseTarget splits "<family>/<backend> <table> <chain>[ <spec>]".
func parseTarget(t string) (b Backend, table, chain, spec string, err error) {
	f := strings.SplitN(t, " ", 4)
	fam, name, ok := strings.Cut(f[0], "/")
	if len(f) < 3 || !ok || (fam != "ip4" && fam != "ip6") || (name != "nft" && name != "legacy") {
		return Backend{}, "", "", "", fmt.Errorf("%q: %w", t, ErrBadTarget)
	}
	if len(f) == 4 {
		spec = f[3]
	}
	return Backend{Family: fam, Name: name}, f[1], f[2], spec, nil
}

// snapshot is what one read of a backend showed.
type snapshot struct {
	backend Backend
	tables  []Table
}

// readAll reads every installed backend once.
func readAll(ctx context.Context, o Options, backends []Backend, want wantRules) ([]snapshot, error) {
	var out []snapshot
	var errs []error
	for _, b := range backends {
		tables, ok, err := read(ctx, o, b, want)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, snapshot{backend: b, tables: tables})
		}
	}
	return out, errors.Join(errs...)
}

// flannel returns the cluster networks for comment-less flannel rules.
func (o Options) flannel(env *engine.Env) flannelNets {
	var nets flannelNets
	if p, err := env.Host.Resolve(o.FlannelSubnetEnv); err == nil {
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			nets = parseSubnetEnv(b)
		case !errors.Is(err, fs.ErrNotExist):
			env.Log.Warn("cannot read flannel's subnet.env; comment-less flannel rules will not be found", "path", o.FlannelSubnetEnv, "err", err)
		}
	}
	for _, c := range o.ClusterCIDRs {
		if n := canonicalCIDR(c); n != "" {
			nets = append(nets, flannelNet{network: n})
		}
	}
	return nets
}
