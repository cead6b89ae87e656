package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/sandbox"
	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/plan"
)

// firewallKinds are the kinds of issue 4's part B.
var firewallKinds = []plan.Kind{plan.KindChain, plan.KindRule, plan.KindNftTable, plan.KindIPSet, plan.KindIPVS}

// firewallNode starts a sandbox node with the "network" feature: a host
// firewall, Docker's chains and a user's rules in iptables-legacy and
// iptables-nft, IPv4 and IPv6, plus kube-proxy's, flannel's, Calico's and
// the CNI plugins' state over them.
func firewallNode(t *testing.T) *sandbox.Node {
	t.Helper()
	testns.Root(t)
	for _, c := range []string{"nsenter", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-restore", "nft"} {
		testns.Command(t, c)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := sandbox.Start(ctx, sandbox.Options{
		Nodesim: bins.nodesim, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Pods: 2, Volumes: 2, Features: []string{"network"},
	})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close sandbox: %v", err)
		}
	})
	return n
}

func isFirewallKind(k plan.Kind) bool {
	for _, f := range firewallKinds {
		if f == k {
			return true
		}
	}
	return false
}

// TestResetFirewall: the plan lists exactly the planted owned chains,
// rules, nft tables and ipsets (no decoy), a dry run changes no rule,
// reset removes them all with every decoy rule byte for byte intact
// (sandbox check "firewall"), verify finds none, and the run's backup
// holds the firewall as it was.
func TestResetFirewall(t *testing.T) {
	n := firewallNode(t)
	m := n.Manifest()
	planted := map[string]int{}
	for _, e := range m.Expected {
		if isFirewallKind(e.Kind) {
			planted[string(e.Kind)+" "+e.Target]++
		}
	}
	if len(planted) < 100 {
		t.Fatalf("the sandbox planted only %d firewall items", len(planted))
	}
	for _, it := range planJSON(t, n).Items() {
		if isFirewallKind(it.Kind) {
			planted[string(it.Kind)+" "+it.Target]--
		}
	}
	for key, c := range planted {
		switch {
		case c > 0:
			t.Errorf("planted but not planned: %s", key)
		case c < 0:
			t.Errorf("planned but not planted (a decoy?): %s", key)
		}
	}
	if r := nodereset(t, n, "reset", "--dry-run"); r.code != 0 {
		t.Fatalf("reset --dry-run: %s", r)
	}
	checkDecoysAndOwned(t, n, false)

	r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...)
	if r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	checkDecoysAndOwned(t, n, true)
	v, _ := verifyJSON(t, n)
	for _, it := range v.Residue {
		if isFirewallKind(it.Kind) {
			t.Errorf("verify after reset: %s %s left", it.Kind, it.Target)
		}
	}
	ls := n.Command(t.Context(), "find", m.Root+"/var/lib/nodereset/backups", "-path", "*/firewall/*")
	out, err := ls.Output()
	for _, f := range []string{"ip4-nft.rules", "ip6-legacy.rules", "nft.ruleset"} {
		if err != nil || !strings.Contains(string(out), "/firewall/"+f) {
			t.Errorf("firewall backup %s missing: %q %v", f, out, err)
		}
	}
}

// checkDecoysAndOwned: after a reset the firewall probe equals the decoys'
// state; before it (dry run) it must still differ, or the check proves
// nothing.
func checkDecoysAndOwned(t *testing.T, n *sandbox.Node, reset bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := n.Check(ctx)
	if reset && err != nil {
		t.Fatalf("decoys damaged: %v", err)
	}
	if !reset && (err == nil || !strings.Contains(err.Error(), "state firewall changed")) {
		t.Fatalf("before reset the firewall must still hold Kubernetes' rules (dry run changed it?): %v", err)
	}
}
