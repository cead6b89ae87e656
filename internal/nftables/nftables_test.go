package nftables

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/testns"
	"github.com/nodereset/nodereset/pkg/engine"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

func TestOwned(t *testing.T) {
	tests := []struct {
		family, name string
		want         bool
	}{
		{"ip", "kube-proxy", true},
		{"ip6", "kube-proxy", true},
		{"inet", "kube-proxy", false}, // kube-proxy never uses inet
		{"ip", "kube-proxy-old", false},
		{"inet", "filter", false},
		{"ip", "nat", false}, // iptables-nft's
		{"ip", "calico", true},
		{"inet", "cilium", true},
		{"ip", "cilium_feas", false},
	}
	for _, tc := range tests {
		t.Run(tc.family+" "+tc.name, func(t *testing.T) {
			if _, ok := Owned(tc.family, tc.name); ok != tc.want {
				t.Errorf("Owned = %v, want %v", ok, tc.want)
			}
		})
	}
}

type rec struct{ done map[string]error }

func (r *rec) Start(plan.Item)              {}
func (r *rec) Done(it plan.Item, err error) { r.done[it.Target] = err }

func nft(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

func ruleset(t *testing.T) string {
	out, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestDeleteOwnedTables: kube-proxy's nftables-mode tables go, the user's
// inet filter and iptables-nft's tables stay exactly as they were.
func TestDeleteOwnedTables(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	testns.Command(t, "nft")
	testns.Command(t, "iptables-nft")
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	nft(t, `table inet filter {
	chain input { type filter hook input priority 0; policy accept; tcp dport 22 accept; }
}
table ip kube-proxy-backup {
	chain x {
	}
}
`)
	if out, err := exec.Command("iptables-nft", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	decoys := ruleset(t)
	nft(t, `table ip kube-proxy {
	map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
	set cluster-ips { type ipv4_addr; elements = { 10.96.0.1 } }
	chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }
	chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }
}
table ip6 kube-proxy {
	chain services {
	}
}
table inet calico {
	chain x {
	}
}
`)
	h, _ := host.New(t.TempDir())
	env := &engine.Env{Host: h, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	k := New(Options{})
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Target)
	}
	if strings.Join(got, ",") != "ip kube-proxy,ip6 kube-proxy,inet calico" {
		t.Fatalf("discovered %v", got)
	}
	items = append(items, plan.Item{Kind: plan.KindNftTable, Target: "inet filter"}) // an edited plan
	r := &rec{done: map[string]error{}}
	k.Apply(context.Background(), env, items, r)
	for _, tgt := range got {
		if r.done[tgt] != nil {
			t.Errorf("%s: %v", tgt, r.done[tgt])
		}
	}
	if r.done["inet filter"] == nil {
		t.Error("an unowned table in the plan was not refused")
	}
	if after := ruleset(t); after != decoys {
		t.Errorf("ruleset after apply:\n%s\nwant:\n%s", after, decoys)
	}
	// A rerun finds the tables gone and reports them done.
	r = &rec{done: map[string]error{}}
	k.Apply(context.Background(), env, items[:3], r)
	for _, tgt := range got {
		if err, ok := r.done[tgt]; !ok || err != nil {
			t.Errorf("rerun %s: %v %v", tgt, ok, err)
		}
	}
}
