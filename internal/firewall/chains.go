package firewall

import (
	"fmt"

	"github.com/nodereset/nodereset/pkg/plan"
)

// chainItems lists a table's owned chains (owned is its ownedChains).
func chainItems(b Backend, t Table, owned map[string]string) []plan.Item {
	var items []plan.Item
	for _, c := range t.Chains {
		owner, ok := owned[c.Name]
		if !ok {
			continue
		}
		items = append(items, plan.Item{Kind: plan.KindChain, Target: chainTarget(b, t.Name, c.Name),
			Action: plan.ActionRemove, Reason: "chain of " + owner,
			Detail: ChainDetail{Family: b.Family, Backend: b.Name, Table: t.Name, Chain: c.Name, Owner: owner}})
	}
	return items
}

// ownedChains is the set of a table's owned user-defined chains, with
// their owners. AdminChain counts only while it holds no rule (read
// always reads its rules).
func (t Table) ownedChains() map[string]string {
	filled := false
	for _, r := range t.Rules {
		filled = filled || r.Chain == AdminChain
	}
	m := map[string]string{}
	for _, c := range t.Chains {
		if c.Builtin() || c.Name == AdminChain && filled {
			continue
		}
		if owner, ok := OwnedChain(c.Name); ok {
			m[c.Name] = owner
		}
	}
	return m
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
