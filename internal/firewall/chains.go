package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// ChainKind is the "iptables-chain" kind: owned user-defined chains.
type ChainKind struct{ opts Options }

var _ engine.Kind = (*ChainKind)(nil)

// Kind implements engine.Kind.
func (k *ChainKind) Kind() plan.Kind { return plan.KindChain }

// Discover implements engine.Kind.
func (k *ChainKind) Discover(ctx context.Context, env *engine.Env) ([]plan.Item, error) {
	snaps, err := readAll(ctx, k.opts, k.opts.Backends, noRules)
	var items []plan.Item
	for _, s := range snaps {
		for _, t := range s.tables {
			for _, c := range t.Chains {
				if c.Builtin() {
					continue
				}
				owner, ok := OwnedChain(c.Name)
				if !ok {
					continue
				}
				items = append(items, plan.Item{Kind: plan.KindChain, Target: chainTarget(s.backend, t.Name, c.Name),
					Action: plan.ActionRemove, Reason: "chain of " + owner,
					Detail: ChainDetail{Family: s.backend.Family, Backend: s.backend.Name, Table: t.Name, Chain: c.Name, Owner: owner}})
			}
		}
	}
	return items, err
}

func chainDetail(it plan.Item) (ChainDetail, error) {
	if d, ok := decode[ChainDetail](it); ok && d.Chain != "" {
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

// Apply implements engine.Kind: per backend, one restore that flushes every
// owned chain still there and then deletes each (they jump to each other,
// so all are emptied before the first -X), one COMMIT per table.
func (k *ChainKind) Apply(ctx context.Context, env *engine.Env, items []plan.Item, rec engine.Recorder) {
	groups := map[Backend][]plan.Item{}
	var order []Backend
	details := map[string]ChainDetail{}
	for _, it := range items {
		d, err := chainDetail(it)
		if err != nil {
			rec.Done(it, err)
			continue
		}
		details[it.Key()] = d
		if _, ok := groups[d.backend()]; !ok {
			order = append(order, d.backend())
		}
		groups[d.backend()] = append(groups[d.backend()], it)
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

type tableChain struct{ table, chain string }

func (k *ChainKind) applyBackend(ctx context.Context, env *engine.Env, b Backend, items []plan.Item, details map[string]ChainDetail, rec engine.Recorder) {
	mine := map[tableChain]bool{}
	for _, it := range items {
		d := details[it.Key()]
		mine[tableChain{d.Table, d.Chain}] = true
	}
	// The rules of every chain that stays: they may still jump to ours.
	tables, err := k.read(ctx, b, func(table string, c Chain) bool { return !mine[tableChain{table, c.Name}] })
	if err != nil {
		failAll(rec, items, err)
		return
	}
	user := userChains(tables)
	del := map[tableChain]bool{}
	for tc := range mine {
		if user[tc] {
			del[tc] = true
		}
	}
	blocked := keepReferenced(tables, del)
	var batch []plan.Item
	for _, it := range items {
		d := details[it.Key()]
		tc := tableChain{d.Table, d.Chain}
		switch {
		case blocked[tc] != nil:
			rec.Done(it, blocked[tc])
		case !del[tc]:
			rec.Done(it, nil) // gone already
		default:
			batch = append(batch, it)
		}
	}
	if len(batch) == 0 {
		return
	}
	for _, it := range batch {
		rec.Start(it)
	}
	rerr := k.deleteChains(ctx, b, batch, details)
	if rerr == nil {
		for _, it := range batch {
			rec.Done(it, nil)
		}
		return
	}
	env.Log.Debug("chain batch failed; re-reading to tell what is left", "backend", b.String(), "err", rerr)
	after, err := k.read(ctx, b, noRules)
	left := userChains(after)
	for _, it := range batch {
		d := details[it.Key()]
		switch {
		case err != nil:
			rec.Done(it, errors.Join(&BatchError{Backend: b, Err: rerr}, err))
		case left[tableChain{d.Table, d.Chain}]:
			rec.Done(it, &BatchError{Backend: b, Err: rerr})
		default:
			rec.Done(it, nil)
		}
	}
}

// deleteChains removes a batch: through one nf_tables transaction for the
// nft backend, one restore for legacy.
func (k *ChainKind) deleteChains(ctx context.Context, b Backend, batch []plan.Item, details map[string]ChainDetail) error {
	if b.Name == "nft" {
		tcs := make([]tableChain, len(batch))
		for i, it := range batch {
			d := details[it.Key()]
			tcs[i] = tableChain{d.Table, d.Chain}
		}
		return deleteNftChains(b, tcs)
	}
	cctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	return restore(cctx, k.opts.Runner, b, chainScript(batch, details))
}

func (k *ChainKind) read(ctx context.Context, b Backend, want wantRules) (map[string]Table, error) {
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

// chainScript is "-F" of every chain, then "-X" of every chain, per table.
func chainScript(batch []plan.Item, details map[string]ChainDetail) []byte {
	var tables []string
	byTable := map[string][]string{}
	for _, it := range batch {
		d := details[it.Key()]
		if _, ok := byTable[d.Table]; !ok {
			tables = append(tables, d.Table)
		}
		byTable[d.Table] = append(byTable[d.Table], d.Chain)
	}
	var s bytes.Buffer
	for _, t := range tables {
		fmt.Fprintf(&s, "*%s\n", t)
		for _, c := range byTable[t] {
			fmt.Fprintf(&s, "-F %s\n", c)
		}
		for _, c := range byTable[t] {
			fmt.Fprintf(&s, "-X %s\n", c)
		}
		s.WriteString("COMMIT\n")
	}
	return s.Bytes()
}
