package engine

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/pkg/plan"
)

// multiKind owns items of several plan kinds, as the firewall kind owns
// rules and chains; items are "kind:target" and every Apply call is kept.
type multiKind struct {
	kinds []plan.Kind
	items []string
	calls [][]string
}

func (k *multiKind) Kind() plan.Kind    { return k.kinds[0] }
func (k *multiKind) Kinds() []plan.Kind { return k.kinds }
func (k *multiKind) Discover(context.Context, *Env) ([]plan.Item, error) {
	var out []plan.Item
	for _, s := range k.items {
		kind, target, _ := strings.Cut(s, ":")
		out = append(out, plan.Item{Kind: plan.Kind(kind), Target: target, Action: plan.ActionRemove})
	}
	return out, nil
}
func (k *multiKind) Apply(_ context.Context, _ *Env, items []plan.Item, rec Recorder) {
	var call []string
	for _, it := range items {
		call = append(call, string(it.Kind)+":"+it.Target)
		rec.Start(it)
		rec.Done(it, nil)
	}
	k.calls = append(k.calls, call)
}

var _ MultiKind = (*multiKind)(nil)

func TestRoute(t *testing.T) {
	ph := Phase{Name: "p", Kinds: []Kind{
		&listKind{kind: "container"},                    // 1
		&listKind{kind: "container"},                    // 2
		&multiKind{kinds: []plan.Kind{"rule", "chain"}}, // 3
		&listKind{kind: "chain"},                        // 4
	}}
	for _, tc := range []struct {
		name string
		kind plan.Kind
		via  int
		want int // 1-based kind, 0 for an orphan
	}{
		{"via picks its discoverer", "container", 2, 2},
		{"no via (read from JSON): first kind of its Kind", "container", 0, 1},
		{"multi kind: its first kind by via", "rule", 3, 3},
		{"multi kind: its second kind by via", "chain", 3, 3},
		{"no via: the first kind claiming it is a multi kind", "chain", 0, 3},
		{"no via: a multi kind's first kind", "rule", 0, 3},
		{"via names a kind that does not claim it", "chain", 1, 3},
		{"via past the phase", "rule", 9, 3},
		{"a single kind after a multi kind keeps its own", "chain", 4, 4},
		{"no kind claims it", "ipset", 0, 0},
		{"no kind claims it, via or not", "ipset", 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := plan.Item{Kind: tc.kind, Target: "x", Via: tc.via}
			byKind, orphans := route(ph, []plan.Item{it})
			got := 0
			for n, items := range byKind {
				if len(items) == 1 {
					got = n + 1
				}
			}
			if tc.want == 0 && len(orphans) != 1 || tc.want != 0 && len(orphans) != 0 {
				t.Errorf("orphans %v", orphans)
			}
			if got != tc.want {
				t.Errorf("routed to kind %d, want %d", got, tc.want)
			}
		})
	}
}

// A multi kind gets its items of every plan kind in one Apply, also from a
// plan read back from JSON (no Via), and never another kind's.
func TestApplyMultiKindFromJSON(t *testing.T) {
	env := testEnv(t)
	fw := &multiKind{kinds: []plan.Kind{"rule", "chain"}, items: []string{"rule:r1", "chain:c1", "rule:r2"}}
	sets := &listKind{kind: "ipset", items: []string{"s1"}}
	phases := []Phase{{"firewall", []Kind{fw, sets}}}
	read := planThroughJSON(t, env, phases)
	if i := slices.IndexFunc(read.Items(), func(it plan.Item) bool { return it.Via != 0 }); i >= 0 {
		t.Fatalf("Via survived JSON: %+v", read.Items()[i])
	}
	if _, err := Apply(context.Background(), env, phases, &read, ApplyOptions{BackupRoot: filepath.Join(env.Host.Root(), "b")}); err != nil {
		t.Fatal(err)
	}
	if len(fw.calls) != 1 || strings.Join(fw.calls[0], ",") != "rule:r1,chain:c1,rule:r2" {
		t.Errorf("multi kind applied %q, want one call with rule:r1,chain:c1,rule:r2", fw.calls)
	}
	if strings.Join(sets.applied, ",") != "s1" {
		t.Errorf("ipset kind applied %v", sets.applied)
	}
}

// An item of a kind its discoverer does not claim is a bug: routing would
// hand it to another kind, so the plan leaves it out and has an error.
func TestPlanRejectsUnclaimedItems(t *testing.T) {
	fw := &multiKind{kinds: []plan.Kind{"rule", "chain"}, items: []string{"rule:r1", "ipset:s1"}}
	sets := &listKind{kind: "ipset"}
	p, err := Plan(context.Background(), testEnv(t), []Phase{{"firewall", []Kind{fw, sets}}})
	var de *DiscoverError
	if !errors.Is(err, ErrUnclaimedItem) || !errors.As(err, &de) || de.Kind != "rule" || !strings.Contains(err.Error(), "ipset s1") {
		t.Errorf("err %v, want a DiscoverError of rule naming ipset s1 and wrapping ErrUnclaimedItem", err)
	}
	if items := p.Items(); len(items) != 1 || items[0].Target != "r1" {
		t.Errorf("plan items %v, want r1 only", items)
	}
}

// twinKind discovers two items with one target, told apart by their
// detail's Key (two identical rules in one chain).
type twinKind struct{ keys []string }

type twinDetail struct {
	N int `json:"n"`
}

func (d twinDetail) Key() string { return strconv.Itoa(d.N) }

func (k *twinKind) Kind() plan.Kind { return "rule" }
func (k *twinKind) Discover(context.Context, *Env) ([]plan.Item, error) {
	return []plan.Item{{Kind: "rule", Target: "INPUT -j X", Detail: twinDetail{1}}, {Kind: "rule", Target: "INPUT -j X", Detail: twinDetail{2}}}, nil
}
func (k *twinKind) Apply(_ context.Context, _ *Env, items []plan.Item, rec Recorder) {
	for i, it := range items {
		rec.Start(it)
		k.keys = append(k.keys, it.Key())
		if i == 1 {
			rec.Done(it, errBoom)
			continue
		}
		rec.Done(it, nil)
	}
}

// Items with one target stay two items in a plan read back from JSON,
// where their details are maps and no longer Keyers.
func TestTwinItemsThroughJSON(t *testing.T) {
	env := testEnv(t)
	k := &twinKind{}
	phases := []Phase{{"firewall", []Kind{k}}}
	read := planThroughJSON(t, env, phases)
	rep, _ := Apply(context.Background(), env, phases, &read, ApplyOptions{BackupRoot: filepath.Join(env.Host.Root(), "b")})
	if len(k.keys) != 2 || k.keys[0] == k.keys[1] {
		t.Fatalf("keys %q, want two different ones", k.keys)
	}
	if len(rep.Results) != 2 || len(rep.Failed()) != 1 {
		t.Errorf("results %+v, want two with one failed", rep.Results)
	}
}

// planThroughJSON plans and reads the plan back from its JSON, as a plan
// saved to a file is.
func planThroughJSON(t *testing.T, env *Env, phases []Phase) plan.Plan {
	t.Helper()
	p, err := Plan(context.Background(), env, phases)
	if err != nil {
		t.Fatal(err)
	}
	var read plan.Plan
	if b, err := json.Marshal(p); err != nil || json.Unmarshal(b, &read) != nil {
		t.Fatalf("plan through JSON: %v", err)
	}
	return read
}
