package firewall

import (
	"context"
	"fmt"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ChainKind is the "iptables-chain" kind: owned user-defined chains.
type ChainKind struct{ k *kinds }

var _ engine.Kind = (*ChainKind)(nil)

// Kind implements engine.Kind.
func (k *ChainKind) Kind() plan.Kind { return plan.KindChain }

// Discover implements engine.Kind.
func (k *ChainKind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	snaps, err := readAll(ctx, k.k.opts, k.k.opts.Backends, noRules)
	var items []plan.Item
	for _, s := range snaps {
		for _, t := range s.tables {
			owned := t.ownedChains()
			for _, c := range t.Chains {
				owner, ok := owned[c.Name]
				if !ok {
					continue
				}
				items = append(items, plan.Item{Kind: plan.KindChain, Target: chainTarget(s.backend, t.Name, c.Name),
					Action: plan.ActionRemove, Reason: "chain of " + owner,
					Detail: ChainDetail{Family: s.backend.Family, Backend: s.backend.Name, Table: t.Name, Chain: c.Name, Owner: owner}})
			}
		}
	}
	k.k.discoveredChains(items)
	return items, err
}

func chainDetail(it plan.Item) (ChainDetail, error) {
	if d, ok := plan.DetailAs[ChainDetail](it); ok && d.Chain != "" {
		return d, nil
	}
	b, table, chain, spec, err := parseTarget(it.Target)
	if err == nil && spec != "" {
		err = fmt.Errorf("%q: %w", it.Target, ErrBadTarget)
	}
	return ChainDetail{Family: b.Family, Backend: b.Name, Table: table, Chain: chain}, err
}

// ChainInUseError says why an owned chain was left: a rule that stays
// (in a chain that is not being removed) still jumps to it.
type ChainInUseError struct {
	Chain string
	Rule  string
}

func (e *ChainInUseError) Error() string {
	return fmt.Sprintf("chain %s is still referenced by %q, which is not Kubernetes': remove that rule, then run reset again", e.Chain, e.Rule)
}

// AdminChainError says why AdminChain was left although planned: rules
// were added to it after the plan, and those are the administrator's.
type AdminChainError struct {
	Table string
	Rules int
}

func (e *AdminChainError) Error() string {
	return fmt.Sprintf("chain %s (table %s) now holds %d rules an administrator added after the plan: kept; run plan again", AdminChain, e.Table, e.Rules)
}

type tableChain struct{ table, chain string }

// userChains is the set of user-defined chains of every table.
func userChains(tables map[string]Table) map[tableChain]bool {
	m := map[tableChain]bool{}
	for name, t := range tables {
		for _, c := range t.Chains {
			if !c.Builtin() {
				m[tableChain{name, c.Name}] = true
			}
		}
	}
	return m
}

// keepReferenced takes out of del every chain that a rule staying behind
// still jumps to, until none is left: -X of it would fail the whole table's
// commit. Rules inside chains being removed do not count, they go first.
func keepReferenced(tables map[string]Table, del map[tableChain]bool) map[tableChain]error {
	blocked := map[tableChain]error{}
	for changed := true; changed; {
		changed = false
		for name, t := range tables {
			for _, r := range t.Rules {
				if del[tableChain{name, r.Chain}] {
					continue
				}
				tc := tableChain{name, r.Target()}
				if del[tc] {
					delete(del, tc)
					blocked[tc] = &ChainInUseError{Chain: tc.chain, Rule: "-A " + r.Chain + " " + r.Spec}
					changed = true
				}
			}
		}
	}
	return blocked
}

// keepFilledAdmin takes AdminChain out of del in every table where it
// holds rules now (before keepReferenced: those rules then count).
func keepFilledAdmin(tables map[string]Table, del map[tableChain]bool) map[tableChain]error {
	blocked := map[tableChain]error{}
	for name, t := range tables {
		tc := tableChain{name, AdminChain}
		if !del[tc] {
			continue
		}
		n := 0
		for _, r := range t.Rules {
			if r.Chain == AdminChain {
				n++
			}
		}
		if n > 0 {
			delete(del, tc)
			blocked[tc] = &AdminChainError{Table: name, Rules: n}
		}
	}
	return blocked
}
