package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// RuleKind is the "iptables-rule" kind: owned rules in chains that stay.
type RuleKind struct{ opts Options }

var _ engine.Kind = (*RuleKind)(nil)

// Kind implements engine.Kind.
func (k *RuleKind) Kind() plan.Kind { return plan.KindRule }

// Discover implements engine.Kind: one *-save per backend, nothing changed.
func (k *RuleKind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	snaps, err := readAll(ctx, k.opts, k.opts.Backends, foreignChain)
	fl := k.opts.flannel(env)
	var items []plan.Item
	for _, s := range snaps {
		items = append(items, ownedRules(s, fl)...)
	}
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
	if d, ok := decode[RuleDetail](it); ok && d.Chain != "" {
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

// Apply implements engine.Kind: per backend, re-read, delete what is still
// there with one restore, and report what vanished meanwhile as done.
func (k *RuleKind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	groups := map[Backend][]plan.Item{}
	var order []Backend
	details := map[string]RuleDetail{}
	for _, it := range items {
		d, err := ruleDetail(it)
		if err != nil {
			rec.Done(it, err)
			continue
		}
		details[it.Key()] = d
		b := d.backend()
		if _, ok := groups[b]; !ok {
			order = append(order, b)
		}
		groups[b] = append(groups[b], it)
	}
	if len(order) == 0 {
		return
	}
	if err := Backup(ctx, env, k.opts); err != nil {
		for _, b := range order {
			failAll(rec, groups[b], err)
		}
		return
	}
	for _, b := range order {
		k.applyBackend(ctx, env, b, groups[b], details, rec)
	}
}

func (k *RuleKind) applyBackend(ctx context.Context, env *engine.Env, b Backend, items []plan.Item, details map[string]RuleDetail, rec engine.Recorder) {
	chains := map[tableChain]bool{}
	for _, it := range items {
		d := details[it.Key()]
		chains[tableChain{d.Table, d.Chain}] = true
	}
	present, err := k.countRules(ctx, b, chains)
	if err != nil {
		failAll(rec, items, err)
		return
	}
	var batch []plan.Item
	byTable := map[string][]RuleDetail{}
	var tables []string
	for _, it := range items {
		d := details[it.Key()]
		key := ruleKey{d.Table, d.Chain, d.Spec}
		if present[key] == 0 {
			rec.Done(it, nil) // gone already: a rerun or its owner removed it
			continue
		}
		present[key]--
		if _, ok := byTable[d.Table]; !ok {
			tables = append(tables, d.Table)
		}
		byTable[d.Table] = append(byTable[d.Table], d)
		batch = append(batch, it)
	}
	if len(batch) == 0 {
		return
	}
	var script bytes.Buffer
	for _, t := range tables {
		fmt.Fprintf(&script, "*%s\n", t)
		for _, d := range byTable[t] {
			fmt.Fprintf(&script, "-D %s %s\n", d.Chain, d.Spec)
		}
		script.WriteString("COMMIT\n")
	}
	for _, it := range batch {
		rec.Start(it)
	}
	cctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	rerr := restore(cctx, k.opts.Runner, b, script.Bytes())
	cancel()
	if rerr == nil {
		for _, it := range batch {
			rec.Done(it, nil)
		}
		return
	}
	env.Log.Debug("rule batch failed; re-reading to tell what is left", "backend", b.String(), "err", rerr)
	// Legacy commits table by table: some deletes may have landed.
	after, err := k.countRules(ctx, b, chains)
	if err != nil {
		failAll(rec, batch, errors.Join(rerr, err))
		return
	}
	for _, it := range batch {
		d := details[it.Key()]
		key := ruleKey{d.Table, d.Chain, d.Spec}
		if after[key] > 0 {
			after[key]--
			rec.Done(it, &BatchError{Backend: b, Err: rerr})
			continue
		}
		rec.Done(it, nil)
	}
}

// countRules counts each rule of the given chains as it is now.
func (k *RuleKind) countRules(ctx context.Context, b Backend, chains map[tableChain]bool) (map[ruleKey]int, error) {
	want := func(table string, c Chain) bool { return chains[tableChain{table, c.Name}] }
	snaps, err := readAll(ctx, k.opts, []Backend{b}, want)
	if err != nil {
		return nil, err
	}
	m := map[ruleKey]int{}
	for _, s := range snaps {
		for _, t := range s.tables {
			for _, r := range t.Rules {
				m[ruleKey{t.Name, r.Chain, r.Spec}]++
			}
		}
	}
	return m, nil
}

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

func failAll(rec engine.Recorder, items []plan.Item, err error) {
	for _, it := range items {
		rec.Done(it, err)
	}
}
