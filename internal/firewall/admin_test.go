package firewall

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/plan"
)

// cniFirewall is what the CNI firewall plugin writes: its forward chain,
// and the admin chain it jumps to, empty.
const cniFirewall = "*filter\n:CNI-FORWARD - [0:0]\n:CNI-ADMIN - [0:0]\n-A FORWARD -j CNI-FORWARD\n-A CNI-FORWARD -j CNI-ADMIN\nCOMMIT\n"

// adminRule is an administrator's rule in CNI-ADMIN.
const adminRule = "-A CNI-ADMIN -s 192.0.2.7/32 -j DROP"

// fillingRunner adds adminRule to CNI-ADMIN just before the first restore
// of each backend: an administrator writing while the reset runs, after
// the batch's read.
type fillingRunner struct {
	ExecRunner
	mu     sync.Mutex
	filled map[string]bool
}

func (r *fillingRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, error) {
	for _, b := range ip4Backends() {
		r.mu.Lock()
		first := name == b.RestoreCommand() && !r.filled[name]
		r.filled[name] = r.filled[name] || first
		r.mu.Unlock()
		if first {
			if out, err := r.ExecRunner.Run(ctx, b.tool(), strings.Fields(adminRule), nil); err != nil {
				return out, err
			}
		}
	}
	return r.ExecRunner.Run(ctx, name, args, stdin)
}

// TestAdminChain: the CNI firewall plugin's CNI-ADMIN is the CNI's while
// empty and the administrator's once it holds a rule, whenever that rule
// came: before the plan, between plan and apply, or during the apply's own
// batch (never flushed: legacy's -X fails the commit, nft's is an
// iptables-nft -X, which refuses a chain with rules, where a netlink
// delete would take them along). The chains planned with it go.
func TestAdminChain(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	backends := ip4Backends()
	env := nsSetup(t)
	env.BackupDir = ""
	kept := func(t *testing.T, b Backend, want string) {
		t.Helper()
		out, err := exec.Command(b.tool(), "-t", "filter", "-S").CombinedOutput()
		if s := string(out); err != nil || !strings.Contains(s, want) || strings.Contains(s, "CNI-FORWARD") {
			t.Errorf("%s after apply (%v):\n%s", b, err, s)
		}
	}
	// adminFailed: every CNI-ADMIN item failed with AdminChainError, every
	// other item succeeded.
	adminFailed := func(t *testing.T, rec *recorder, items []plan.Item) {
		t.Helper()
		for _, it := range items {
			errs := rec.done[it.Key()]
			var ae *AdminChainError
			if len(errs) != 1 || errors.As(errs[0], &ae) != strings.HasSuffix(it.Target, " CNI-ADMIN") || (ae == nil && errs[0] != nil) {
				t.Errorf("%s: %v", it.Target, errs)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		before string // rules added after planting, before the plan
		after  string // rules added between plan and apply
		runner func() Runner
	}{
		{name: "empty is the plugin's"},
		{name: "filled before the plan", before: "*filter\n" + adminRule + "\nCOMMIT\n"},
		{name: "filled after the plan", after: "*filter\n" + adminRule + "\nCOMMIT\n"},
		{name: "filled during the apply", runner: func() Runner { return &fillingRunner{filled: map[string]bool{}} }},
		{name: "a jump to a filled one stays", before: "*filter\n" + adminRule + "\n-A INPUT -j CNI-ADMIN\nCOMMIT\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearAll(t)
			loadAll(t, backends, cniFirewall)
			if tc.before != "" {
				loadAll(t, backends, tc.before)
			}
			o := Options{Backends: backends}
			if tc.runner != nil {
				o.Runner = tc.runner()
			}
			k := New(o)
			found := discover(t, env, k)
			chains := targets(ofKind(found, plan.KindChain))
			if planned := chains["ip4/nft filter CNI-ADMIN"] && chains["ip4/legacy filter CNI-ADMIN"]; planned != (tc.before == "") {
				t.Fatalf("CNI-ADMIN planned %v, want %v: %v", planned, tc.before == "", found)
			}
			for tgt := range targets(ofKind(found, plan.KindRule)) {
				if strings.HasSuffix(tgt, "-j CNI-ADMIN") {
					t.Errorf("the administrator's jump planned: %s", tgt)
				}
			}
			if tc.after != "" {
				loadAll(t, backends, tc.after)
			}
			rec := applyAll(env, k, found)
			if tc.before == "" && (tc.after != "" || tc.runner != nil) {
				adminFailed(t, rec, found)
			} else {
				rec.check(t, found)
			}
			for _, b := range backends {
				if tc.before == "" && tc.after == "" && tc.runner == nil {
					out, _ := exec.Command(b.tool(), "-t", "filter", "-S").CombinedOutput()
					if strings.Contains(string(out), "CNI-") {
						t.Errorf("%s: the plugin's chains left:\n%s", b, out)
					}
				} else {
					kept(t, b, adminRule)
				}
			}
			if left := discover(t, env, New(Options{Backends: backends})); len(left) != 0 {
				t.Errorf("planned again: %v", left)
			}
		})
	}

	// Rules written with nft, which iptables-nft cannot print: a person's.
	t.Run("nft rules iptables-nft cannot print", func(t *testing.T) {
		clearAll(t)
		b := Backend{"ip4", "nft"}
		load(t, b, cniFirewall)
		nft(t, "add rule ip filter CNI-ADMIN meta nftrace set 1\n")
		k := New(Options{Backends: []Backend{b}})
		found := discover(t, env, k)
		if chains := targets(ofKind(found, plan.KindChain)); len(chains) != 1 || !chains["ip4/nft filter CNI-FORWARD"] {
			t.Fatalf("chains %v, want CNI-FORWARD only", chains)
		}
		applyAll(env, k, found).check(t, found)
		if out, err := exec.Command("nft", "list", "chain", "ip", "filter", "CNI-ADMIN").CombinedOutput(); err != nil || !strings.Contains(string(out), "nftrace") {
			t.Errorf("the nft rule did not stay (%v):\n%s", err, out)
		}
	})

	// A plan edited by hand cannot name the host's own chains and rules.
	t.Run("items that are not Kubernetes' are refused at apply", func(t *testing.T) {
		clearAll(t)
		b := Backend{"ip4", "legacy"}
		load(t, b, "*filter\n:USER-LOGDROP - [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A USER-LOGDROP -j DROP\nCOMMIT\n")
		before := state(t)
		items := []plan.Item{
			{Kind: plan.KindChain, Target: "ip4/legacy filter USER-LOGDROP", Action: plan.ActionRemove},
			{Kind: plan.KindRule, Target: "ip4/legacy filter INPUT -p tcp -m tcp --dport 22 -j ACCEPT", Action: plan.ActionRemove},
		}
		rec := applyAll(env, New(Options{Backends: []Backend{b}}), items)
		for _, it := range items {
			if errs := rec.done[it.Key()]; len(errs) != 1 || !errors.Is(errs[0], ErrNotOwned) {
				t.Errorf("%s: %v, want ErrNotOwned", it.Target, errs)
			}
		}
		if got := state(t); got != before {
			t.Errorf("refused items changed the firewall:\n%s", lineDiff(before, got))
		}
	})
}

// clearAll empties the test namespace's firewall, both backends.
func clearAll(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{{"nft", "flush", "ruleset"}, {"iptables-legacy", "-F"}, {"iptables-legacy", "-X"}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}

var _ engine.Kind = (*Kind)(nil)
