package firewall

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// countingRunner records which programs ran, to prove the batch shape.
type countingRunner struct {
	ExecRunner
	mu  sync.Mutex
	ran []string
}

func (r *countingRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	r.mu.Lock()
	r.ran = append(r.ran, name+" "+strings.Join(args, " "))
	r.mu.Unlock()
	return r.ExecRunner.Run(ctx, name, args, stdin)
}

func (r *countingRunner) reset() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ran
	r.ran = nil
	return out
}

// TestOneBatchPerBackend: applying a whole plan removes rules and chains
// of a backend with one restore (legacy: and no read at all; nft: the
// chains through netlink), the chain kind only reports, and the decoys
// stay byte for byte.
func TestOneBatchPerBackend(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	env.BackupDir = ""
	backends := []Backend{{"ip4", "nft"}, {"ip6", "legacy"}}
	for _, b := range backends {
		load(t, b, fixture.Decoys(b.Family).String())
	}
	decoys := state(t)
	for _, b := range backends {
		load(t, b, fixture.Owned(b.Family, b.Name, 20).String())
	}
	run := &countingRunner{}
	kinds := New(Options{Backends: backends, Runner: run})
	found := map[plan.Kind][]plan.Item{}
	for _, k := range kinds {
		items, err := k.Discover(context.Background(), env)
		if err != nil || len(items) == 0 {
			t.Fatalf("discover %s: %d items, %v", k.Kind(), len(items), err)
		}
		found[k.Kind()] = items
	}
	run.reset()
	var recs []*recorder
	for i, k := range kinds {
		rec := newRecorder()
		recs = append(recs, rec)
		k.Apply(context.Background(), env, found[k.Kind()], rec)
		rec.check(t, found[k.Kind()])
		ran := run.reset()
		if i == 1 && len(ran) != 0 {
			t.Errorf("the chain kind ran programs itself: %q", ran)
		}
		if i == 0 {
			restores := slices.DeleteFunc(slices.Clone(ran), func(s string) bool { return !strings.Contains(s, "-restore ") })
			want := []string{"iptables-nft-restore --noflush -w 5", "ip6tables-legacy-restore --noflush -w 5"}
			if !slices.Equal(restores, want) {
				t.Errorf("restores = %q, want %q", restores, want)
			}
			for _, s := range ran {
				if strings.HasPrefix(s, "ip6tables-legacy-save") {
					t.Errorf("legacy backend read before its restore although the plan applied: %q", ran)
				}
			}
		}
	}
	// Every item is journalled as started once, when the batch began
	// (the chains through the rule kind's recorder: the journal is one).
	for _, items := range found {
		for _, it := range items {
			if n := recs[0].start[it.Key()] + recs[1].start[it.Key()]; n != 1 {
				t.Errorf("%s: started %d times", it.Target, n)
			}
		}
	}
	if got := state(t); got != decoys {
		t.Fatalf("decoys changed:\n%s", lineDiff(decoys, got))
	}
}

// TestScript: the batch text, per table -D, -F, -X, one COMMIT.
func TestScript(t *testing.T) {
	r := func(table, chain, spec string) ruleWork {
		return ruleWork{d: RuleDetail{Table: table, Chain: chain, Spec: spec}}
	}
	c := func(table, chain string) chainWork { return chainWork{d: ChainDetail{Table: table, Chain: chain}} }
	for _, tc := range []struct {
		name   string
		rules  []ruleWork
		chains []chainWork
		want   string
	}{
		{"empty", nil, nil, ""},
		{"rules only", []ruleWork{r("nat", "PREROUTING", "-j KUBE-SERVICES")}, nil,
			"*nat\n-D PREROUTING -j KUBE-SERVICES\nCOMMIT\n"},
		{"rules and chains over two tables",
			[]ruleWork{r("nat", "PREROUTING", "-j KUBE-SERVICES"), r("filter", "INPUT", "-j KUBE-FIREWALL")},
			[]chainWork{c("nat", "KUBE-SERVICES"), c("nat", "KUBE-SVC-1"), c("filter", "KUBE-FIREWALL"), c("mangle", "KUBE-KUBELET-CANARY")},
			"*nat\n-D PREROUTING -j KUBE-SERVICES\n-F KUBE-SERVICES\n-F KUBE-SVC-1\n-X KUBE-SERVICES\n-X KUBE-SVC-1\nCOMMIT\n" +
				"*filter\n-D INPUT -j KUBE-FIREWALL\n-F KUBE-FIREWALL\n-X KUBE-FIREWALL\nCOMMIT\n" +
				"*mangle\n-F KUBE-KUBELET-CANARY\n-X KUBE-KUBELET-CANARY\nCOMMIT\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(script(tc.rules, tc.chains)); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestOneBatchStateChanged: between plan and apply a planned rule vanished
// and a user rule started jumping to a planned chain. The legacy fast path
// fails its commit whole, the exact remainder is applied, and each item
// gets its own outcome: the vanished rule done, the chain in use failed
// and kept with its rules, everything else gone.
func TestOneBatchStateChanged(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	env.BackupDir = ""
	backends := []Backend{{"ip4", "nft"}, {"ip4", "legacy"}}
	for _, b := range backends {
		load(t, b, "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n:USER - [0:0]\n-A PREROUTING -j KUBE-A\n-A OUTPUT -j KUBE-A\n-A KUBE-A -j KUBE-B\n-A KUBE-B -j RETURN\nCOMMIT\n")
	}
	kinds := New(Options{Backends: backends})
	found := map[plan.Kind][]plan.Item{}
	for _, k := range kinds {
		items, err := k.Discover(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		found[k.Kind()] = items
	}
	if len(found[plan.KindRule]) != 4 || len(found[plan.KindChain]) != 4 {
		t.Fatalf("plan: %v", found)
	}
	for _, b := range backends {
		load(t, b, "*nat\n-D OUTPUT -j KUBE-A\n-A USER -j KUBE-B\nCOMMIT\n")
	}
	recs := map[plan.Kind]*recorder{}
	for _, k := range kinds {
		recs[k.Kind()] = newRecorder()
		k.Apply(context.Background(), env, found[k.Kind()], recs[k.Kind()])
	}
	for kind, items := range found {
		for _, it := range items {
			errs := recs[kind].done[it.Key()]
			inUse := strings.HasSuffix(it.Target, " KUBE-B")
			if len(errs) != 1 || (errs[0] != nil) != inUse {
				t.Errorf("%s: %v (in use: %v)", it.Target, errs, inUse)
			}
			if inUse && len(errs) == 1 && !strings.Contains(errs[0].Error(), "-A USER -j KUBE-B") {
				t.Errorf("%s: error does not name the user's rule: %v", it.Target, errs[0])
			}
		}
	}
	for _, b := range backends {
		out, err := ExecRunner{}.Run(context.Background(), b.SaveCommand(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Canonical(out)
		want := "*nat\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\n:KUBE-B -\n:USER -\n-A KUBE-B -j RETURN\n-A USER -j KUBE-B\nCOMMIT\n"
		if got != want {
			t.Errorf("%s after apply:\n%s\nwant\n%s", b, got, want)
		}
	}
}

// TestChainsFor: the rule kind takes the chains along only when it applies
// exactly the rules its discovery found (the plan engine.Plan built).
func TestChainsFor(t *testing.T) {
	item := func(kind plan.Kind, target string) plan.Item { return plan.Item{Kind: kind, Target: target} }
	r1, r2 := item(plan.KindRule, "ip4/nft nat PREROUTING -j KUBE-A"), item(plan.KindRule, "ip4/nft nat OUTPUT -j KUBE-A")
	c1 := item(plan.KindChain, "ip4/nft nat KUBE-A")
	for _, tc := range []struct {
		name  string
		apply []plan.Item
		want  int
	}{
		{"the discovered rules", []plan.Item{r2, r1}, 1},
		{"a subset", []plan.Item{r1}, 0},
		{"another rule", []plan.Item{r1, item(plan.KindRule, "ip4/nft nat INPUT -j KUBE-A")}, 0},
		{"more", []plan.Item{r1, r2, item(plan.KindRule, "x")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &kinds{}
			k.discoveredRules([]plan.Item{r1, r2})
			k.discoveredChains([]plan.Item{c1})
			if got := k.chainsFor(tc.apply); len(got) != tc.want {
				t.Errorf("chains %v, want %d", got, tc.want)
			}
			if _, ok := k.take(c1); ok != (tc.want == 1) {
				t.Errorf("outcome slot for the chain: %v", ok)
			}
			if again := k.chainsFor([]plan.Item{r1, r2}); len(again) != 0 {
				t.Errorf("chains handed out twice: %v", again)
			}
		})
	}
}

func TestWithoutRules(t *testing.T) {
	rule := func(chain, spec string) Rule { return Rule{Chain: chain, Spec: spec} }
	tables := map[string]Table{"nat": {Name: "nat", Rules: []Rule{rule("USER", "-j KUBE-A"), rule("USER", "-j KUBE-A"), rule("OUTPUT", "-j KUBE-A")}}}
	for _, tc := range []struct {
		name string
		gone map[ruleKey]int
		want int
	}{
		{"nothing", nil, 3},
		{"one of two identical", map[ruleKey]int{{"nat", "USER", "-j KUBE-A"}: 1}, 2},
		{"both identical and another", map[ruleKey]int{{"nat", "USER", "-j KUBE-A"}: 2, {"nat", "OUTPUT", "-j KUBE-A"}: 1}, 0},
		{"other table", map[ruleKey]int{{"filter", "USER", "-j KUBE-A"}: 1}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(withoutRules(tables, tc.gone)["nat"].Rules); got != tc.want {
				t.Errorf("%d rules left, want %d", got, tc.want)
			}
		})
	}
	if len(tables["nat"].Rules) != 3 {
		t.Error("withoutRules changed its input")
	}
}
