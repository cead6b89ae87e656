package firewall

import (
	"context"
	"fmt"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// RuleKind is the "iptables-rule" kind: owned rules in chains that stay.
type RuleKind struct{ k *kinds }

var _ engine.Kind = (*RuleKind)(nil)

// Kind implements engine.Kind.
func (k *RuleKind) Kind() plan.Kind { return plan.KindRule }

// Discover implements engine.Kind: one *-save per backend, nothing changed.
func (k *RuleKind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	snaps, err := readAll(ctx, k.k.opts, k.k.opts.Backends, foreignChain)
	fl := k.k.opts.flannel(env)
	var items []plan.Item
	for _, s := range snaps {
		items = append(items, ownedRules(s, fl)...)
	}
	k.k.discoveredRules(items)
	return items, err
}

// ownedRules lists the owned rules of a snapshot outside owned chains
// (rules inside an owned chain go with the chain).
func ownedRules(s snapshot, fl flannelNets) []plan.Item {
	var items []plan.Item
	for _, t := range s.tables {
		owned := t.ownedChains()
		seen := map[string]int{}
		for _, r := range t.Rules {
			if _, ok := owned[r.Chain]; ok {
				continue
			}
			key := r.Chain + " " + r.Spec
			seen[key]++
			reason, ok := ruleOwner(r, fl)
			if !ok {
				continue
			}
			d := RuleDetail{Family: s.backend.Family, Backend: s.backend.Name, Table: t.Name, Chain: r.Chain, Spec: r.Spec, Occurrence: seen[key]}
			items = append(items, plan.Item{Kind: plan.KindRule, Target: ruleTarget(s.backend, t.Name, r.Chain, r.Spec),
				Action: plan.ActionRemove, Reason: reason, Detail: d})
		}
	}
	return items
}

// ruleDetail recovers the detail, or rebuilds it from the target.
func ruleDetail(it plan.Item) (RuleDetail, error) {
	if d, ok := plan.DetailAs[RuleDetail](it); ok && d.Chain != "" {
		return d, nil
	}
	b, table, chain, spec, err := parseTarget(it.Target)
	if err != nil {
		return RuleDetail{}, err
	}
	return RuleDetail{Family: b.Family, Backend: b.Name, Table: table, Chain: chain, Spec: spec, Occurrence: 1}, nil
}

// ruleKey identifies identical rules of one chain.
type ruleKey struct{ table, chain, spec string }

// BatchError is the failure of one backend's restore batch; the item it is
// reported for is still present.
type BatchError struct {
	Backend Backend
	Err     error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("%s batch failed and this one is still there (run reset again, or remove it with %s): %v",
		e.Backend, e.Backend.tool(), e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }
