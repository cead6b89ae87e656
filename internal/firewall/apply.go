package firewall

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Apply implements engine.Kind: the plan's owned rules and chains, grouped
// by backend×family, after one backup of the firewall; each group is one
// batch (apply). Each item's identity is judged again first, so a plan
// edited by hand or built elsewhere cannot name the host's own rules.
func (k *Kind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	byBackend := map[Backend]*work{}
	var order []*work
	get := func(b Backend) *work {
		w := byBackend[b]
		if w == nil {
			w = &work{b: b}
			byBackend[b] = w
			order = append(order, w)
		}
		return w
	}
	var fl flannelNets
	flRead := false
	for _, it := range items {
		var err error
		switch it.Kind {
		case plan.KindRule:
			var d RuleDetail
			if d, err = ruleDetail(it); err == nil {
				if !flRead {
					fl, flRead = k.opts.flannel(env), true
				}
				err = ownedRule(d, fl)
			}
			if err == nil {
				w := get(d.backend())
				w.rules = append(w.rules, ruleWork{it, d})
			}
		case plan.KindChain:
			var d ChainDetail
			if d, err = chainDetail(it); err == nil {
				err = ownedChain(d)
			}
			if err == nil {
				w := get(d.backend())
				w.chains = append(w.chains, chainWork{it, d})
			}
		default:
			err = fmt.Errorf("%s %s: %w", it.Kind, it.Target, ErrBadTarget)
		}
		if err != nil {
			rec.Done(it, err)
		}
	}
	if len(order) == 0 {
		return
	}
	if err := Backup(ctx, env, k.opts); err != nil {
		for _, w := range order {
			reportAll(w, rec, err)
		}
		return
	}
	for _, w := range order {
		k.apply(ctx, env, w, rec)
	}
}

// ErrNotOwned refuses an item whose rule or chain is not Kubernetes' by
// the rules Discover applies (a plan edited by hand or built elsewhere).
var ErrNotOwned = errors.New("not Kubernetes' by nodereset's rules, so it is kept: run plan again")

func ownedRule(d RuleDetail, fl flannelNets) error {
	args, err := splitArgs(d.Spec)
	if err == nil {
		if _, ok := ruleOwner(Rule{Chain: d.Chain, Spec: d.Spec, Args: args}, fl); !ok {
			err = ErrNotOwned
		}
	}
	if err != nil {
		return fmt.Errorf("rule -A %s %s: %w", d.Chain, d.Spec, err)
	}
	return nil
}

func ownedChain(d ChainDetail) error {
	if _, ok := OwnedChain(d.Chain); !ok {
		return fmt.Errorf("chain %s: %w", d.Chain, ErrNotOwned)
	}
	return nil
}
