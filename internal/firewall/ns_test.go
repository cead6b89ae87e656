package firewall

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// TestCleanBothBackendsKeepsDecoys plants a host firewall, Docker's chains
// and a user's rules in all four backend×family combinations, then
// kube-proxy, flannel, Calico and CNI state over them; after Apply the
// save output of every backend is byte for byte the decoys' again, a
// second Discover finds nothing, and Restore brings the dirty state back.
func TestCleanBothBackendsKeepsDecoys(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	decoys := decoyed(t, AllBackends())
	nft(t, "table ip kube-proxy {\n\tset cluster-ips {\n\t\ttype ipv4_addr\n\t\telements = { 10.96.0.1 }\n\t}\n}\n")
	wantRules, wantChains := map[string]bool{}, map[string]bool{}
	for _, b := range AllBackends() {
		s := fixture.Owned(b.Family, b.Name, 3)
		load(t, b, s.String())
		for _, r := range s.Rules {
			wantRules[b.String()+" "+r] = true
		}
		for _, c := range s.Chains {
			wantChains[b.String()+" "+c] = true
		}
	}
	dirty := state(t)
	if dirty == decoys {
		t.Fatal("planting owned rules changed nothing")
	}

	k := New(Options{})
	found := discover(t, env, k)
	applyAll(env, k, found).check(t, found)
	rules, chains := targets(ofKind(found, plan.KindRule)), targets(ofKind(found, plan.KindChain))
	sameSet(t, "rules", rules, wantRules)
	sameSet(t, "chains", chains, wantChains)
	for _, want := range []string{
		`ip4/nft nat PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`ip6/legacy filter FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
		`ip4/legacy nat POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`,
		`ip4/nft nat POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN`,
		`ip4/nft filter INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT`,
	} {
		if !rules[want] {
			t.Errorf("rule not planned: %s", want)
		}
	}
	for _, want := range []string{"ip4/nft nat KUBE-SVC-0000000000000002", "ip6/nft filter cali-INPUT", "ip4/legacy nat CNI-HOSTPORT-DNAT", "ip4/nft mangle KUBE-KUBELET-CANARY", "ip6/legacy nat FLANNEL-POSTRTG"} {
		if !chains[want] {
			t.Errorf("chain not planned: %s", want)
		}
	}
	for tgt := range rules {
		if strings.Contains(tgt, "DOCKER") || strings.Contains(tgt, "allow flannel vxlan") || strings.Contains(tgt, "dport 22") {
			t.Errorf("decoy rule planned: %s", tgt)
		}
	}
	if got := state(t); got != decoys {
		t.Fatalf("after apply the decoys changed:\n%s", lineDiff(decoys, got))
	}
	if left := discover(t, env, k); len(left) != 0 {
		t.Errorf("after apply: %d left: %v", len(left), left)
	}
	// Applying the same plan again (a rerun after a crash) is all done.
	applyAll(env, k, found).check(t, found)
	nft(t, "delete table ip kube-proxy\n") // what the nftables kind does
	if err := Restore(context.Background(), env.BackupDir); err != nil {
		t.Fatal(err)
	}
	if got := state(t); got != dirty {
		t.Fatalf("restore did not bring back the saved rules:\n%s", lineDiff(dirty, got))
	}
	if out, err := exec.Command("nft", "list", "table", "ip", "kube-proxy").CombinedOutput(); err != nil || !strings.Contains(string(out), "10.96.0.1") {
		t.Errorf("restore did not bring back the nft table: %v\n%s", err, out)
	}
}

// TestApplyRuleVanished: a rule removed between plan and apply, and a
// chain a user rule still jumps to, are handled item by item without
// failing the batch for the others.
func TestApplyRuleVanished(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	backends := ip4Backends()
	env, k := planted(t, backends, "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n:USER - [0:0]\n-A PREROUTING -j KUBE-A\n-A OUTPUT -j KUBE-A\n-A USER -j KUBE-B\nCOMMIT\n")
	found := discover(t, env, k)
	if r, c := ofKind(found, plan.KindRule), ofKind(found, plan.KindChain); len(r) != 6 || len(c) != 4 { // USER -j KUBE-B is a foreign rule too
		t.Fatalf("rules %v chains %v", r, c)
	}
	loadAll(t, backends, "*nat\n-D OUTPUT -j KUBE-A\nCOMMIT\n")
	// Apply all but the USER rules: USER's jump stays.
	some := slices.DeleteFunc(slices.Clone(found), func(it plan.Item) bool { return strings.Contains(it.Target, " USER ") })
	checkInUse(t, applyAll(env, k, some), some)
	if s := state(t); strings.Contains(s, "KUBE-A") || !strings.Contains(s, ":KUBE-B") {
		t.Errorf("after apply:\n%s", s)
	}
}
