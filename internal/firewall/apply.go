package firewall

import (
	"context"
	"fmt"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Apply implements engine.Kind: the plan's owned rules and chains, grouped
// by backend×family, after one backup of the firewall; each group is one
// batch (apply).
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
	for _, it := range items {
		var err error
		switch it.Kind {
		case plan.KindRule:
			var d RuleDetail
			if d, err = ruleDetail(it); err == nil {
				w := get(d.backend())
				w.rules = append(w.rules, ruleWork{it, d})
			}
		case plan.KindChain:
			var d ChainDetail
			if d, err = chainDetail(it); err == nil {
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
