package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// KindConntrack names the conntrack items.
const KindConntrack = plan.KindConntrack

// ConntrackKind is the opt-in "conntrack" kind (Options.Conntrack): the
// connection tracking entries kube-proxy's rules created, i.e. flows whose
// original destination is a Service IP (inside a Service CIDR) and that
// were DNATed (the reply comes from somewhere else: a pod endpoint that is
// gone now). A flow to a Service IP that was not translated, and Docker's
// or the host's NATed flows, stay. One item per Service CIDR, so a plan
// does not list thousands of short-lived flows; Apply deletes them in one
// netlink dump-and-delete per family.
type ConntrackKind struct {
	on    bool
	cidrs []netip.Prefix
	warn  []string
}

var (
	_ engine.Kind   = (*ConntrackKind)(nil)
	_ engine.Warner = (*ConntrackKind)(nil)
)

// NewConntrack returns the conntrack kind. List it last in the phase of
// the firewall kinds, after every kind that removes NAT rules (iptables,
// nft tables, IPVS), so no rule translates a new flow after its entries are
// gone. Without Options.Conntrack it finds nothing.
func NewConntrack(o Options) *ConntrackKind {
	if !o.Conntrack {
		return &ConntrackKind{}
	}
	k := &ConntrackKind{on: true}
	for _, c := range o.ServiceCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			k.warn = append(k.warn, fmt.Sprintf("--conntrack: Service CIDR %q is not a CIDR and is ignored: %v", c, err))
			continue
		}
		k.cidrs = append(k.cidrs, p.Masked())
	}
	if len(k.cidrs) == 0 {
		k.warn = append(k.warn, "--conntrack: no Service CIDR is known, so no conntrack entry is removed: pass --service-cidr")
	}
	return k
}

// Kind implements engine.Kind.
func (k *ConntrackKind) Kind() plan.Kind { return KindConntrack }

// Warnings implements engine.Warner.
func (k *ConntrackKind) Warnings() []string { return k.warn }

// ConntrackDetail is the item detail: the Service CIDR and how many
// translated flows into it discovery saw.
type ConntrackDetail struct {
	Family  string `json:"family"`
	CIDR    string `json:"cidr"`
	Entries int    `json:"entries"`
}

// serviceFlow is the selection: original destination inside the CIDR and
// translated (the reply's source is not that destination).
type serviceFlow netip.Prefix

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (p serviceFlow) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	dst, ok := netip.AddrFromSlice(f.Forward.DstIP)
	if !ok || !netip.Prefix(p).Contains(dst.Unmap()) {
		return false
	}
	reply, ok := netip.AddrFromSlice(f.Reverse.SrcIP)
	return ok && reply.Unmap() != dst.Unmap()
}

func family(p netip.Prefix) (string, netlink.InetFamily) {
	if p.Addr().Is4() {
		return "ip4", netlink.FAMILY_V4
	}
	return "ip6", netlink.FAMILY_V6
}

// Discover implements engine.Kind: one conntrack dump per family.
func (k *ConntrackKind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	if !k.on {
		return nil, nil
	}
	flows := map[netlink.InetFamily][]*netlink.ConntrackFlow{}
	var items []plan.Item
	var errs []error
	for _, p := range k.cidrs {
		fam, nf := family(p)
		fl, ok := flows[nf]
		if !ok {
			var err error
			fl, err = listFlows(nf)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s conntrack entries: %w", fam, err))
				continue
			}
			flows[nf] = fl
		}
		n := 0
		for _, f := range fl {
			if serviceFlow(p).MatchConntrackFlow(f) {
				n++
			}
		}
		if n == 0 {
			continue
		}
		items = append(items, plan.Item{Kind: KindConntrack, Target: fam + " " + p.String(), Action: plan.ActionRemove,
			Reason: fmt.Sprintf("%d flows kube-proxy translated to Service IPs in %s", n, p),
			Detail: ConntrackDetail{Family: fam, CIDR: p.String(), Entries: n}})
	}
	return items, errors.Join(errs...)
}

// listFlows dumps a family's table, again when the dump was interrupted by
// a concurrent change (the flows are only counted, a rare miss is fine).
func listFlows(nf netlink.InetFamily) ([]*netlink.ConntrackFlow, error) {
	var fl []*netlink.ConntrackFlow
	var err error
	for range 3 {
		fl, err = netlink.ConntrackTableList(netlink.ConntrackTable, nf)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		err = nil
	}
	return fl, err
}

// ConntrackError is a failed deletion of a Service CIDR's flows.
type ConntrackError struct {
	CIDR string
	Err  error
}

func (e *ConntrackError) Error() string {
	return fmt.Sprintf("delete conntrack entries to Service IPs in %s: %v (run reset again, or `conntrack -D -d %s`)", e.CIDR, e.Err, e.CIDR)
}

func (e *ConntrackError) Unwrap() error { return e.Err }

// Apply implements engine.Kind: per family, one netlink dump that deletes
// every matching flow (the kernel decides per flow, so flows that ended
// meanwhile are simply not there; none left is done).
func (k *ConntrackKind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	byFamily := map[netlink.InetFamily][]plan.Item{}
	filters := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	var order []netlink.InetFamily
	for _, it := range items {
		d, ok := plan.DetailAs[ConntrackDetail](it)
		p, err := netip.ParsePrefix(d.CIDR)
		if !ok || err != nil {
			rec.Done(it, fmt.Errorf("%q: not a conntrack item: run plan again", it.Target))
			continue
		}
		_, nf := family(p)
		if _, seen := byFamily[nf]; !seen {
			order = append(order, nf)
		}
		byFamily[nf] = append(byFamily[nf], it)
		filters[nf] = append(filters[nf], serviceFlow(p.Masked()))
	}
	for _, nf := range order {
		for _, it := range byFamily[nf] {
			rec.Start(it)
		}
		n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, nf, filters[nf]...)
		env.Log.Debug("conntrack entries deleted", "family", nf, "entries", n, "err", err)
		for _, it := range byFamily[nf] {
			if err != nil {
				d, _ := plan.DetailAs[ConntrackDetail](it)
				rec.Done(it, &ConntrackError{CIDR: d.CIDR, Err: err})
				continue
			}
			rec.Done(it, nil)
		}
	}
}
