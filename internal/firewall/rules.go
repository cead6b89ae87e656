package firewall

import (
	"fmt"

	"github.com/nodereset/nodereset/pkg/plan"
)

// ownedRules lists the owned rules of a table outside its owned chains
// (rules inside an owned chain go with the chain; owned is ownedChains).
func ownedRules(b Backend, t Table, owned map[string]string, fl flannelNets) []plan.Item {
	var items []plan.Item
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
		d := RuleDetail{Family: b.Family, Backend: b.Name, Table: t.Name, Chain: r.Chain, Spec: r.Spec, Occurrence: seen[key]}
		items = append(items, plan.Item{Kind: plan.KindRule, Target: ruleTarget(b, t.Name, r.Chain, r.Spec),
			Action: plan.ActionRemove, Reason: reason, Detail: d})
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
