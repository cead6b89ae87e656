// Package nftables removes the nf_tables tables that Kubernetes components
// create natively (kind "nft-table"): kube-proxy's nftables mode
// (ip/ip6 "kube-proxy"), Calico's and Cilium's — by family and exact table
// name, one table at a time, never `flush ruleset`. The tables iptables-nft
// manages (ip/ip6 filter, nat, mangle, raw, security) are the firewall
// package's: their chains are removed one by one there.
package nftables

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/firewall"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Owners maps "<family> <name>" of a table to who creates it.
var owners = map[string]string{
	"ip kube-proxy":  "kube-proxy (nftables mode)",
	"ip6 kube-proxy": "kube-proxy (nftables mode)",
	"ip calico":      "Calico (nftables dataplane)",
	"ip6 calico":     "Calico (nftables dataplane)",
	"inet calico":    "Calico (nftables dataplane)",
	"ip cilium":      "Cilium",
	"ip6 cilium":     "Cilium",
	"inet cilium":    "Cilium",
}

// Owned says whether a table (family as nft names it: ip, ip6, inet)
// belongs to Kubernetes, and whose it is.
func Owned(family, name string) (string, bool) {
	o, ok := owners[family+" "+name]
	return o, ok
}

// Options configure the kind.
type Options struct {
	// Firewall is passed to firewall.Backup, which runs before the first
	// table is deleted.
	Firewall firewall.Options
}

// Kind is the "nft-table" kind.
type Kind struct{ opts Options }

// New returns the kind.
func New(o Options) *Kind { return &Kind{opts: o} }

var _ engine.Kind = (*Kind)(nil)

// Kind implements engine.Kind.
func (k *Kind) Kind() plan.Kind { return plan.KindNftTable }

// Detail is the item detail of a table.
type Detail struct {
	Family string `json:"family"`
	Name   string `json:"name"`
	Owner  string `json:"owner"`
}

// Discover implements engine.Kind: one netlink table dump.
func (k *Kind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	tables, err := listTables()
	if err != nil {
		return nil, err
	}
	var items []plan.Item
	for _, t := range tables {
		fam := firewall.FamilyName(t.Family)
		owner, ok := Owned(fam, t.Name)
		if !ok {
			continue
		}
		items = append(items, plan.Item{Kind: plan.KindNftTable, Target: fam + " " + t.Name, Action: plan.ActionRemove,
			Reason: "nftables table of " + owner, Detail: Detail{Family: fam, Name: t.Name, Owner: owner}})
	}
	return items, nil
}

func listTables() ([]*nftables.Table, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nf_tables netlink: %w", err)
	}
	tables, err := conn.ListTables()
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return nil, nil // no nf_tables in this kernel: nothing to remove
	}
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	return tables, nil
}

var families = map[string]nftables.TableFamily{
	"ip": nftables.TableFamilyIPv4, "ip6": nftables.TableFamilyIPv6, "inet": nftables.TableFamilyINet,
}

// ErrNotOwned is returned for an item naming a table this kind does not own
// (an edited plan): it is never deleted.
var ErrNotOwned = errors.New("not a Kubernetes nftables table: refusing to delete it")

// Apply implements engine.Kind: the tables still there are deleted in one
// nf_tables transaction; ones already gone are done.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	present := map[string]bool{}
	tables, err := listTables()
	if err != nil {
		for _, it := range items {
			rec.Done(it, err)
		}
		return
	}
	for _, t := range tables {
		present[firewall.FamilyName(t.Family)+" "+t.Name] = true
	}
	var batch []plan.Item
	for _, it := range items {
		fam, name, _ := strings.Cut(it.Target, " ")
		switch _, owned := Owned(fam, name); {
		case !owned:
			rec.Done(it, fmt.Errorf("table %q: %w", it.Target, ErrNotOwned))
		case !present[it.Target]:
			rec.Done(it, nil)
		default:
			batch = append(batch, it)
		}
	}
	if len(batch) == 0 {
		return
	}
	if err := firewall.Backup(ctx, env, k.opts.Firewall); err != nil {
		for _, it := range batch {
			rec.Done(it, err)
		}
		return
	}
	conn, err := nftables.New()
	if err == nil {
		for _, it := range batch {
			rec.Start(it)
			fam, name, _ := strings.Cut(it.Target, " ")
			conn.DelTable(&nftables.Table{Family: families[fam], Name: name})
		}
		err = conn.Flush()
	}
	for _, it := range batch {
		if err != nil {
			rec.Done(it, fmt.Errorf("delete nftables table %s (one transaction with %d tables, none was deleted): %w; run reset again, or nft delete table %s", it.Target, len(batch), err, it.Target))
			continue
		}
		rec.Done(it, nil)
	}
}
