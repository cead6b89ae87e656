package firewall

import (
	"context"
	"errors"
	"maps"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// work is one backend's share of a batch: owned rules in chains that stay,
// and owned chains, each with its decoded detail, in plan order.
type work struct {
	b      Backend
	rules  []ruleWork
	chains []chainWork
}

type ruleWork struct {
	it plan.Item
	d  RuleDetail
}

type chainWork struct {
	it plan.Item
	d  ChainDetail
}

func (w *work) chainSet() map[tableChain]bool {
	m := map[tableChain]bool{}
	for _, c := range w.chains {
		m[tableChain{c.d.Table, c.d.Chain}] = true
	}
	return m
}

// staying wants the rules of every chain the batch does not remove: they
// are where planned rules live and what may still jump to planned chains.
func (w *work) staying() wantRules {
	mine := w.chainSet()
	return func(table string, c Chain) bool { return !mine[tableChain{table, c.Name}] }
}

// startOnce calls Start at most once per item: the legacy fast path starts
// everything, and its fallback must not journal a second start.
type startOnce struct {
	rec     engine.Recorder
	started map[string]bool
}

func (s *startOnce) start(it plan.Item) {
	if !s.started[it.Key()] {
		s.started[it.Key()] = true
		s.rec.Start(it)
	}
}

// apply removes one backend's rules and chains with one read and one
// restore. Legacy: the plan is tried first as one iptables-restore without
// any read, since libiptc commits a table whole or not at all — a rule
// already gone or a chain a staying rule still jumps to fails that table's
// commit and nothing of it changes; only then is the backend read and the
// exact remainder applied. nft: the backend is read first (the chains go
// through netlink in several transactions, so a chain still referenced must
// be known before it is flushed), then one iptables-nft-restore deletes the
// rules and nf_tables transactions remove the chains.
func (k *Kind) apply(ctx context.Context, env *engine.Env, w *work, rec engine.Recorder) {
	so := &startOnce{rec: rec, started: map[string]bool{}}
	if w.b.Name == "legacy" {
		for _, r := range w.rules {
			so.start(r.it)
		}
		for _, c := range w.chains {
			so.start(c.it)
		}
		err := k.restore(ctx, w.b, script(w.rules, w.chains))
		if err == nil {
			reportAll(w, rec, nil)
			return
		}
		env.Log.Debug("firewall batch did not apply as planned; reading what is left", "backend", w.b.String(), "err", err)
	}
	tables, err := k.readTables(ctx, w.b, w.staying())
	if err != nil {
		reportAll(w, rec, err)
		return
	}
	present := countRules(tables)
	var rules []ruleWork
	gone := map[ruleKey]int{} // the batch's deletes, to leave out of the reference check
	for _, r := range w.rules {
		key := ruleKey{r.d.Table, r.d.Chain, r.d.Spec}
		if present[key] == 0 {
			rec.Done(r.it, nil) // gone already: a rerun, or its owner removed it
			continue
		}
		present[key]--
		gone[key]++
		rules = append(rules, r)
	}
	del := map[tableChain]bool{}
	user := userChains(tables)
	for tc := range w.chainSet() {
		if user[tc] {
			del[tc] = true
		}
	}
	blocked := keepFilledAdmin(tables, del)
	maps.Copy(blocked, keepReferenced(withoutRules(tables, gone), del))
	var chains []chainWork
	for _, c := range w.chains {
		tc := tableChain{c.d.Table, c.d.Chain}
		switch {
		case blocked[tc] != nil:
			rec.Done(c.it, blocked[tc])
		case !del[tc]:
			rec.Done(c.it, nil) // gone already
		default:
			chains = append(chains, c)
		}
	}
	if len(rules)+len(chains) == 0 {
		return
	}
	for _, r := range rules {
		so.start(r.it)
	}
	for _, c := range chains {
		so.start(c.it)
	}
	rest := &work{b: w.b, rules: rules, chains: chains}
	if err := k.change(ctx, rest); err != nil {
		k.reportLeft(ctx, env, rest, rec, err)
		return
	}
	reportAll(rest, rec, nil)
}

// change applies an exact batch that the current state admits.
func (k *Kind) change(ctx context.Context, w *work) error {
	if w.b.Name == "legacy" {
		return k.restore(ctx, w.b, script(w.rules, w.chains))
	}
	if len(w.rules) > 0 {
		if err := k.restore(ctx, w.b, script(w.rules, nil)); err != nil {
			return err
		}
	}
	var tcs []tableChain
	var admin []chainWork
	for _, c := range w.chains {
		if c.d.Chain == AdminChain {
			admin = append(admin, c)
			continue
		}
		tcs = append(tcs, tableChain{c.d.Table, c.d.Chain})
	}
	if len(tcs) > 0 {
		if err := deleteNftChains(w.b, tcs); err != nil {
			return err
		}
	}
	if len(admin) == 0 {
		return nil
	}
	// Last, once CNI-FORWARD no longer jumps to it, and with -X alone:
	// iptables-nft deletes only an empty chain (EBUSY otherwise), where a
	// netlink delete would take rules added since the read along.
	return k.restore(ctx, w.b, script(nil, admin))
}

func (k *Kind) restore(ctx context.Context, b Backend, s []byte) error {
	cctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	return restore(cctx, k.opts.Runner, b, s)
}

// reportLeft re-reads after a failed batch (legacy commits table by table,
// nft rules and chains go separately: part of it may have landed) and
// fails exactly the items still there.
func (k *Kind) reportLeft(ctx context.Context, env *engine.Env, w *work, rec engine.Recorder, rerr error) {
	env.Log.Debug("firewall batch failed; re-reading to tell what is left", "backend", w.b.String(), "err", rerr)
	berr := &BatchError{Backend: w.b, Err: rerr}
	after, err := k.readTables(ctx, w.b, w.staying())
	if err != nil {
		reportAll(w, rec, errors.Join(berr, err))
		return
	}
	left := countRules(after)
	for _, r := range w.rules {
		key := ruleKey{r.d.Table, r.d.Chain, r.d.Spec}
		if left[key] > 0 {
			left[key]--
			rec.Done(r.it, berr)
			continue
		}
		rec.Done(r.it, nil)
	}
	user := userChains(after)
	filled := keepFilledAdmin(after, maps.Clone(user)) // filled since the read: the administrator's
	for _, c := range w.chains {
		tc := tableChain{c.d.Table, c.d.Chain}
		switch {
		case filled[tc] != nil:
			rec.Done(c.it, filled[tc])
		case user[tc]:
			rec.Done(c.it, berr)
		default:
			rec.Done(c.it, nil)
		}
	}
}

func reportAll(w *work, rec engine.Recorder, err error) {
	for _, r := range w.rules {
		rec.Done(r.it, err)
	}
	for _, c := range w.chains {
		rec.Done(c.it, err)
	}
}

// readTables reads one backend, keeping the rules of the wanted chains.
func (k *Kind) readTables(ctx context.Context, b Backend, want wantRules) (map[string]Table, error) {
	snaps, err := readAll(ctx, k.opts, []Backend{b}, want)
	if err != nil {
		return nil, err
	}
	m := map[string]Table{}
	for _, s := range snaps {
		for _, t := range s.tables {
			m[t.Name] = t
		}
	}
	return m, nil
}

// countRules counts each rule as it is now.
func countRules(tables map[string]Table) map[ruleKey]int {
	m := map[ruleKey]int{}
	for name, t := range tables {
		for _, r := range t.Rules {
			m[ruleKey{name, r.Chain, r.Spec}]++
		}
	}
	return m
}

// withoutRules returns the tables less the given number of occurrences of
// each rule (the ones the batch deletes before removing chains).
func withoutRules(tables map[string]Table, gone map[ruleKey]int) map[string]Table {
	if len(gone) == 0 {
		return tables
	}
	left := map[ruleKey]int{}
	for k, n := range gone {
		left[k] = n
	}
	out := make(map[string]Table, len(tables))
	for name, t := range tables {
		var rules []Rule
		for _, r := range t.Rules {
			key := ruleKey{name, r.Chain, r.Spec}
			if left[key] > 0 {
				left[key]--
				continue
			}
			rules = append(rules, r)
		}
		t.Rules = rules
		out[name] = t
	}
	return out
}
