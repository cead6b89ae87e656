package firewall

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseSaveFixture(t *testing.T) {
	f, err := os.Open("testdata/nft-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tables, err := ParseSave(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[0].Name != "filter" || tables[1].Name != "nat" {
		t.Fatalf("tables %+v", tables)
	}
	flt := tables[0]
	if c := flt.Chains[0]; c.Name != "INPUT" || c.Policy != "DROP" || !c.Builtin() {
		t.Errorf("INPUT chain %+v", c)
	}
	if c := flt.Chains[3]; c.Name != "DOCKER-USER" || c.Builtin() {
		t.Errorf("DOCKER-USER chain %+v", c)
	}
	r := flt.Rules[1]
	if r.Spec != `-p tcp -m tcp --dport 22 -m comment --comment "a \"quoted\" \\ flannel" -j ACCEPT` {
		t.Errorf("spec not kept verbatim: %q", r.Spec)
	}
	if c := r.Comments(); len(c) != 1 || c[0] != `a "quoted" \ flannel` || r.Target() != "ACCEPT" {
		t.Errorf("comments %q target %q", c, r.Target())
	}
	if r := tables[1].Rules[1]; r.Chain != "POSTROUTING" || r.Spec != "" || r.Target() != "" {
		t.Errorf("empty rule %+v", r)
	}
}

func TestParseSaveErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"rule outside table", "-A INPUT -j ACCEPT\n", "outside a table"},
		{"no commit", "*filter\n:INPUT ACCEPT [0:0]\n", "no COMMIT"},
		{"nested table", "*filter\n*nat\nCOMMIT\n", "before table filter"},
		{"stray commit", "COMMIT\n", "COMMIT outside"},
		{"bad chain", "*filter\n:INPUT\nCOMMIT\n", "bad chain line"},
		{"unterminated quote", "*filter\n-A INPUT -m comment --comment \"x -j ACCEPT\nCOMMIT\n", "unterminated quote"},
		{"unknown line", "*filter\n-I INPUT -j ACCEPT\nCOMMIT\n", "unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSave(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct{ in, want string }{
		{`-s 10.0.0.0/8 -j RETURN`, `-s|10.0.0.0/8|-j|RETURN`},
		{`-m comment --comment "two words" -j X`, `-m|comment|--comment|two words|-j|X`},
		{`--comment "say \"hi\""`, `--comment|say "hi"`},
		{`--comment "back\\slash"`, `--comment|back\slash`},
		{`--comment ""`, `--comment|`},
		{`  spaced   out  `, `spaced|out`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := splitArgs(tc.in)
			if err != nil || strings.Join(got, "|") != tc.want {
				t.Errorf("got %q (%v), want %q", strings.Join(got, "|"), err, tc.want)
			}
		})
	}
}

func TestOwnedChain(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"KUBE-SERVICES", true}, {"KUBE-SVC-ABCDEF0123456789", true}, {"KUBE-", false},
		{"CNI-HOSTPORT-DNAT", true}, {"CNI-0123abcd", true}, {"FLANNEL-POSTRTG", true},
		{"cali-INPUT", true}, {"CILIUM_INPUT", true}, {"OLD_CILIUM_FORWARD", true},
		{"RKE2-CILIUM-FORWARD", true}, {"WEAVE", true}, {"WEAVE-NPC-INGRESS", true},
		{"DOCKER", false}, {"DOCKER-USER", false}, {"DOCKER-ISOLATION-STAGE-1", false},
		{"LIBVIRT_INP", false}, {"f2b-sshd", false}, {"USER-LOGDROP", false},
		{"kube-services", false}, {"CALI-INPUT", false}, {"MY-CILIUM", false}, {"WEAVER", false},
		{"INPUT_direct", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := OwnedChain(tc.name); ok != tc.want {
				t.Errorf("OwnedChain(%q) = %v, want %v", tc.name, ok, tc.want)
			}
		})
	}
}

func TestRuleOwner(t *testing.T) {
	fl := parseSubnetEnv([]byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\n"))
	tests := []struct {
		name, chain, spec string
		want              bool
	}{
		{"jump to KUBE", "PREROUTING", `-m comment --comment "kubernetes service portals" -j KUBE-SERVICES`, true},
		{"goto cali", "FORWARD", `-i cali+ -g cali-from-wl`, true},
		{"flannel comment only", "POSTROUTING", `-s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN`, true},
		{"flannel forward", "FORWARD", `-s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT`, true},
		{"user comment mentions flannel", "INPUT", `-p udp -m udp --dport 8472 -m comment --comment "allow flannel vxlan" -j ACCEPT`, false},
		{"user comment contains the marker", "INPUT", `-m comment --comment "flanneld masq (mine)" -j ACCEPT`, false},
		{"calico comment", "FORWARD", `-m comment --comment "cali:S93hcgKJrXEqnTfs" -m mark --mark 0x10000/0x10000 -j ACCEPT`, true},
		{"not a calico hash", "FORWARD", `-m comment --comment "cali:short" -j ACCEPT`, false},
		{"owned ipset", "FORWARD", `-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT`, true},
		{"user ipset", "INPUT", `-m set --match-set f2b-sshd src -j DROP`, false},
		{"docker", "FORWARD", `-o docker0 -j DOCKER`, false},
		{"flannel commentless masq", "POSTROUTING", `-s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully`, true},
		{"flannel commentless return", "POSTROUTING", `-s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN`, true},
		{"flannel commentless subnet", "POSTROUTING", `! -s 10.244.0.0/16 -d 10.244.1.0/24 -j RETURN`, true},
		{"flannel commentless v6", "POSTROUTING", `-s fd00:10:244::/56 ! -d ff00::/8 -j MASQUERADE --random-fully`, true},
		{"user masq of another network", "POSTROUTING", `-s 10.245.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE`, false},
		{"user masq with an interface", "POSTROUTING", `-s 10.244.0.0/16 -o eth0 -j MASQUERADE`, false},
		{"flannel shape in another chain", "OUTPUT", `-s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, err := splitArgs(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			reason, ok := ruleOwner(Rule{Chain: tc.chain, Spec: tc.spec, Args: args}, fl)
			if ok != tc.want {
				t.Errorf("owned = %v (%s), want %v", ok, reason, tc.want)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ip4/nft filter KUBE-SERVICES", "ip4/nft|filter|KUBE-SERVICES|"},
		{`ip6/legacy nat PREROUTING -m comment --comment "a b" -j KUBE-X`, `ip6/legacy|nat|PREROUTING|-m comment --comment "a b" -j KUBE-X`},
		{"ip5/nft filter X", "error"},
		{"ip4/iptables filter X", "error"},
		{"ip4/nft filter", "error"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			b, table, chain, spec, err := parseTarget(tc.in)
			got := b.String() + "|" + table + "|" + chain + "|" + spec
			if err != nil {
				got = "error"
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKeepReferenced(t *testing.T) {
	parse := func(s string) map[string]Table {
		ts, err := ParseSave(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]Table{}
		for _, t := range ts {
			m[t.Name] = t
		}
		return m
	}
	tables := parse("*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n:KUBE-C - [0:0]\n:USER - [0:0]\n-A KUBE-A -j KUBE-B\n-A USER -j KUBE-C\n-A KUBE-C -j KUBE-B\nCOMMIT\n")
	del := map[tableChain]bool{{"nat", "KUBE-A"}: true, {"nat", "KUBE-B"}: true, {"nat", "KUBE-C"}: true}
	blocked := keepReferenced(tables, del)
	// USER keeps KUBE-C, and KUBE-C (staying) keeps KUBE-B; KUBE-A goes.
	if !del[tableChain{"nat", "KUBE-A"}] || del[tableChain{"nat", "KUBE-B"}] || del[tableChain{"nat", "KUBE-C"}] || len(blocked) != 2 {
		t.Errorf("del %v blocked %v", del, blocked)
	}
}

func TestParseRuleset(t *testing.T) {
	b, err := os.ReadFile("testdata/nft-ruleset.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tb := range ParseRuleset(b) {
		got = append(got, tb.Family+" "+tb.Name+" "+map[bool]string{true: "iptables", false: "native"}[tb.Iptables])
	}
	if g := strings.Join(got, ","); g != "ip filter iptables,ip mangle iptables,inet filter native,ip kube-proxy native" {
		t.Errorf("tables %s", g)
	}
	script := string(nftRestoreScript(b))
	if !strings.HasPrefix(script, "add table inet filter\ndelete table inet filter\ntable inet filter {\n") || strings.Contains(script, "table ip filter") {
		t.Errorf("restore script:\n%s", script)
	}
}

// TestParseSaveWanted: the filtered parse keeps every table and chain
// declaration but only the wanted chains' rules, in order.
func TestParseSaveWanted(t *testing.T) {
	b, err := os.ReadFile("testdata/nft-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	rulesOf := func(tables []Table) string {
		var out []string
		for _, tb := range tables {
			for _, r := range tb.Rules {
				out = append(out, tb.Name+" "+r.Chain)
			}
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name string
		want wantRules
		out  string
	}{
		{"all", nil, "filter INPUT,filter INPUT,filter INPUT,filter FORWARD,filter KUBE-FIREWALL,nat PREROUTING,nat POSTROUTING"},
		{"foreign chains", foreignChain, "filter INPUT,filter INPUT,filter INPUT,filter FORWARD,nat PREROUTING,nat POSTROUTING"},
		{"none", func(string, Chain) bool { return false }, ""},
		{"one chain of one table", func(table string, c Chain) bool { return table == "nat" && c.Name == "POSTROUTING" }, "nat POSTROUTING"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tables, err := parseSave(bytes.NewReader(b), tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := rulesOf(tables); got != tc.out {
				t.Errorf("rules %q, want %q", got, tc.out)
			}
			if len(tables) != 2 || len(tables[0].Chains) != 5 || len(tables[1].Chains) != 3 {
				t.Errorf("declarations lost: %+v", tables)
			}
		})
	}
}
