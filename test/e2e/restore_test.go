package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodereset/nodereset/internal/firewall"
	"github.com/nodereset/nodereset/internal/sandbox"
)

// firewallState prints the sandbox's firewall as a restore must bring it
// back: each backend×family's *-save without counters and comment lines,
// and every nft table iptables-nft does not manage (`nft -s`: no counters).
func firewallState(t *testing.T, n *sandbox.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var s strings.Builder
	for _, b := range firewall.AllBackends() {
		out, err := n.Command(ctx, b.SaveCommand()).Output()
		if err != nil {
			t.Fatalf("%s: %v", b.SaveCommand(), err)
		}
		c, err := firewall.Canonical(out)
		if err != nil {
			t.Fatalf("%s: %v", b.SaveCommand(), err)
		}
		s.WriteString("# " + b.String() + "\n" + c)
	}
	out, err := n.Command(ctx, "nft", "-s", "list", "ruleset").Output()
	if err != nil {
		t.Fatalf("nft list ruleset: %v", err)
	}
	s.WriteString("# nft\n")
	for _, tb := range firewall.ParseRuleset(out) {
		if !tb.Iptables {
			s.WriteString(tb.Text)
		}
	}
	return s.String()
}

// TestRestoreFirewall: after a reset of the sandbox node with Kubernetes'
// firewall state, `nodereset restore --firewall RUN_DIR` brings back
// exactly the rules and nft tables saved before the reset, in both
// backends and both families.
func TestRestoreFirewall(t *testing.T) {
	n := firewallNode(t)
	before := firewallState(t, n)
	for _, want := range []string{"KUBE-SERVICES", "table ip kube-proxy", "FLANNEL-POSTRTG", "cali-INPUT", "DOCKER-USER"} {
		if !strings.Contains(before, want) {
			t.Fatalf("the sandbox planted no %s: nothing to restore", want)
		}
	}
	if r := nodereset(t, n, append([]string{"reset", "--yes"}, fast...)...); r.code != 0 {
		t.Fatalf("reset: %s", r)
	}
	reset := firewallState(t, n)
	if reset == before || strings.Contains(reset, "KUBE-SERVICES") || strings.Contains(reset, "table ip kube-proxy") {
		t.Fatalf("reset left Kubernetes' firewall state, restoring proves nothing:\n%s", reset)
	}

	root := "/var/lib/nodereset/backups"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, "ls", n.Manifest().Root+root).Output()
	runs := strings.Fields(string(out))
	if err != nil || len(runs) != 1 {
		t.Fatalf("want one run directory in %s: %q %v", root, out, err)
	}
	r := nodereset(t, n, "restore", "--firewall", root+"/"+runs[0])
	if r.code != 0 {
		t.Fatalf("restore: %s", r)
	}
	if got := firewallState(t, n); got != before {
		t.Fatalf("restore did not bring back the saved firewall:\n%s", sandbox.FirstDiff(before, got))
	}
	// Restoring twice is the same state: each table is replaced whole.
	if r := nodereset(t, n, "restore", "--firewall", root+"/"+runs[0]+"/firewall"); r.code != 0 {
		t.Fatalf("restore again: %s", r)
	}
	if got := firewallState(t, n); got != before {
		t.Fatalf("a second restore changed the firewall:\n%s", sandbox.FirstDiff(before, got))
	}
	if r := nodereset(t, n, "restore", "--firewall", root); r.code == 0 || !strings.Contains(r.stderr, "no firewall backup") {
		t.Errorf("restore from a directory without a backup: %s", r)
	}
}
