package firewall

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
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
	r.ran = append(r.ran, strings.TrimSpace(name+" "+strings.Join(args, " ")))
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

// TestOneBatchPerBackend: discovery reads each backend once (legacy: one
// *-save; nft: each wanted chain listed once) and a whole plan, read back
// from JSON as the engine gets it from a file (no Via), removes rules and
// chains of a backend with one restore (legacy: and no read at all; nft:
// the chains through netlink), each item journalled as started once, and
// the decoys stay byte for byte.
func TestOneBatchPerBackend(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	env.BackupDir = ""
	backends := []Backend{{"ip4", "nft"}, {"ip6", "legacy"}}
	decoys := decoyed(t, backends)
	for _, b := range backends {
		load(t, b, fixture.Owned(b.Family, b.Name, 20).String())
	}
	run := &countingRunner{}
	phases := []engine.Phase{{Name: "firewall", Kinds: []engine.Kind{New(Options{Backends: backends, Runner: run})}}}
	p, err := engine.Plan(context.Background(), env, phases)
	if err != nil || len(p.Items()) == 0 {
		t.Fatalf("plan: %d items, %v", len(p.Items()), err)
	}
	ran := run.reset()
	if !slices.Contains(ran, "ip6tables-legacy-save") {
		t.Errorf("the legacy backend was not read: %q", ran)
	}
	for n, s := range ran {
		if slices.Contains(ran[n+1:], s) {
			t.Errorf("discovery read twice: %q", s)
		}
	}
	var read plan.Plan
	if b, err := json.Marshal(p); err != nil || json.Unmarshal(b, &read) != nil {
		t.Fatalf("plan through JSON: %v", err)
	}
	rep, err := engine.Apply(context.Background(), env, phases, &read, engine.ApplyOptions{BackupRoot: t.TempDir()})
	if err != nil || len(rep.Results) != len(p.Items()) {
		t.Fatalf("apply: %d results for %d items, %v", len(rep.Results), len(p.Items()), err)
	}
	ran = run.reset()
	restores := slices.DeleteFunc(slices.Clone(ran), func(s string) bool { return !strings.Contains(s, "-restore ") })
	if want := []string{"iptables-nft-restore --noflush -w 5", "ip6tables-legacy-restore --noflush -w 5"}; !slices.Equal(restores, want) {
		t.Errorf("restores = %q, want %q", restores, want)
	}
	if slices.ContainsFunc(ran, func(s string) bool { return strings.HasPrefix(s, "ip6tables-legacy-save") }) {
		t.Errorf("legacy backend read before its restore although the plan applied: %q", ran)
	}
	entries, err := engine.ReadJournal(filepath.Join(rep.RunDir, engine.JournalName))
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]int{}
	for _, e := range entries {
		if e.Event == engine.EventStart {
			starts[string(e.Kind)+" "+e.Target]++
		}
	}
	for _, it := range p.Items() {
		starts[string(it.Kind)+" "+it.Target]--
	}
	for key, n := range starts {
		if n != 0 {
			t.Errorf("%s: started %d times more than planned", key, n)
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
		{"the admin chain is never flushed", nil, []chainWork{c("filter", "CNI-FORWARD"), c("filter", "CNI-ADMIN")},
			"*filter\n-F CNI-FORWARD\n-X CNI-FORWARD\n-X CNI-ADMIN\nCOMMIT\n"},
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
	backends := ip4Backends()
	env, k := planted(t, backends, "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n:USER - [0:0]\n-A PREROUTING -j KUBE-A\n-A OUTPUT -j KUBE-A\n-A KUBE-A -j KUBE-B\n-A KUBE-B -j RETURN\nCOMMIT\n")
	found := discover(t, env, k)
	if len(ofKind(found, plan.KindRule)) != 4 || len(ofKind(found, plan.KindChain)) != 4 {
		t.Fatalf("plan: %v", found)
	}
	loadAll(t, backends, "*nat\n-D OUTPUT -j KUBE-A\n-A USER -j KUBE-B\nCOMMIT\n")
	checkInUse(t, applyAll(env, k, found), found)
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

// checkInUse fails unless every item was reported once, and failed
// exactly when it is chain KUBE-B, which the rule "-A USER -j KUBE-B"
// keeps (the error names it). The nft backend checks references before
// touching anything, so it never started that chain; legacy first tries
// the plan as one restore (the table's commit fails whole) and does.
func checkInUse(t *testing.T, rec *recorder, items []plan.Item) {
	t.Helper()
	for _, it := range items {
		errs := rec.done[it.Key()]
		inUse := strings.HasSuffix(it.Target, " KUBE-B")
		if len(errs) != 1 || (errs[0] != nil) != inUse {
			t.Errorf("%s: %v (in use: %v)", it.Target, errs, inUse)
			continue
		}
		if inUse && !strings.Contains(errs[0].Error(), "-A USER -j KUBE-B") {
			t.Errorf("%s: error does not name the user's rule: %v", it.Target, errs[0])
		}
		if inUse && strings.HasPrefix(it.Target, "ip4/nft") && rec.start[it.Key()] != 0 {
			t.Errorf("%s: started though it is in use", it.Target)
		}
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

// TestApplyForeignItems: an item that is not an iptables item, or whose
// target is not in this package's format, fails alone and runs nothing.
func TestApplyForeignItems(t *testing.T) {
	items := []plan.Item{
		{Kind: plan.KindIPSet, Target: "KUBE-CLUSTER-IP"},
		{Kind: plan.KindChain, Target: "ip4/iptables filter KUBE-SERVICES"},
		{Kind: plan.KindRule, Target: "ip4/nft nat"},
	}
	run := &countingRunner{}
	rec := applyAll(&engine.Env{}, New(Options{Runner: run}), items)
	for _, it := range items {
		if errs := rec.done[it.Key()]; len(errs) != 1 || !errors.Is(errs[0], ErrBadTarget) {
			t.Errorf("%s %s: %v", it.Kind, it.Target, errs)
		}
	}
	if ran := run.reset(); len(ran) != 0 {
		t.Errorf("ran %q", ran)
	}
}
