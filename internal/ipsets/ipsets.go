// Package ipsets destroys the ipsets Kubernetes components create (kind
// "ipset"), through netlink: kube-proxy's IPVS mode and kube-router
// (KUBE-*), Calico (cali40*/cali60*), Weave Net (weave-*). Its phase runs
// after the firewall's, because the kernel refuses to destroy a set an
// iptables rule still matches.
package ipsets

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Options configure the kind (none yet; kept for the constructor's shape).
type Options struct{}

// Kind is the "ipset" kind.
type Kind struct{ opts Options }

// New returns the kind.
func New(o Options) *Kind { return &Kind{opts: o} }

var _ engine.Kind = (*Kind)(nil)

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindIPSet }

// Detail is the item detail of a set.
type Detail struct {
	Type  string `json:"type"`
	Owner string `json:"owner"`
}

// Discover implements engine.Kind: one netlink dump of every set's header.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	sets, err := netlink.IpsetListAll()
	if absent(err) {
		env.Log.Debug("no ipset support in this kernel: no sets", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list ipsets: %w", err)
	}
	return selectSets(sets), nil
}

// selectSets picks the owned sets from a listing.
func selectSets(sets []netlink.IPSetResult) []plan.Item {
	var items []plan.Item
	for _, s := range sets {
		owner, ok := Owned(s.SetName)
		if !ok {
			continue
		}
		items = append(items, plan.Item{Kind: plan.KindIPSet, Target: s.SetName, Action: plan.ActionRemove,
			Reason: "ipset of " + owner + " (" + s.TypeName + ", " + strconv.Itoa(int(s.NumEntries)) + " entries)",
			Detail: Detail{Type: s.TypeName, Owner: owner}})
	}
	return items
}

// absent reports a kernel without ip_set (nfnetlink subsystem missing).
func absent(err error) bool {
	return errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ENOPROTOOPT)
}

// InUseError is a set the kernel refuses to destroy: a rule that is not
// Kubernetes' (or one whose removal failed) still matches it.
type InUseError struct {
	Set string
	Err error
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("ipset %s is still used by an iptables rule or another set (%v): find it with iptables-save | grep -w -- %s, remove it, then run reset again", e.Set, e.Err, e.Set)
}

func (e *InUseError) Unwrap() error { return e.Err }

// Apply implements engine.Kind: each set is destroyed by name over one
// netlink socket; a set already gone is done.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			rec.Done(it, err)
			continue
		}
		if _, ok := Owned(it.Target); !ok {
			rec.Done(it, fmt.Errorf("ipset %q is not a Kubernetes set: refusing to destroy it (run plan again)", it.Target))
			continue
		}
		rec.Start(it)
		rec.Done(it, destroy(it.Target))
	}
}

func destroy(name string) error {
	err := netlink.IpsetDestroy(name)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY) || errors.Is(err, nl.IPSetError(nl.IPSET_ERR_BUSY)):
		return &InUseError{Set: name, Err: err}
	}
	return fmt.Errorf("destroy ipset %s: %w", name, err)
}
