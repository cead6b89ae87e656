package sandbox

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/nodereset/nodereset/internal/firewall"
	"github.com/nodereset/nodereset/internal/firewall/fixture"
	"github.com/nodereset/nodereset/pkg/plan"
)

// sandboxServices is how many kube-proxy Services the node has.
const sandboxServices = 5

// Decoy nft table and ipset that only look like Kubernetes' neighbours.
const decoyNft = `table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "lo" accept
		tcp dport 22 accept
	}
}
`

const kubeProxyNft = `table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips {
		type ipv4_addr
		elements = { 10.96.0.1, 10.96.0.10 }
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
}
table ip6 kube-proxy {
	comment "rules for kube-proxy"
	chain services {
	}
}
`

var decoySets = []string{"fail2ban-sshd", "calibration"}

var ownedSets = []struct{ name, typ string }{
	{"KUBE-CLUSTER-IP", "hash:ip,port"}, {"KUBE-LOOP-BACK", "hash:ip,port,ip"},
	{"KUBE-NODE-PORT-TCP", "bitmap:port"}, {"cali40all-ipam-pools", "hash:net"},
}

// plantFirewall plants, in the sandbox's own network namespace, a host
// firewall (INPUT policy DROP, lo and SSH accepted), Docker's chains, a
// user chain and a user rule mentioning flannel in all four backend×family
// combinations, a user nft table and user ipsets; records their state;
// then plants kube-proxy (iptables mode in every backend, nftables-mode
// tables), flannel's, Calico's (nft backend) and the CNI plugins' rules and
// kube-proxy's ipsets, each expected with the kinds' exact targets.
func plantFirewall(b *builder) {
	if b.err != nil {
		return
	}
	for _, be := range firewall.AllBackends() {
		b.fail(run(nil, be.RestoreCommand(), "--noflush", "-w", "5", stdin(fixture.Decoys(be.Family).String())))
	}
	b.fail(run(nil, "nft", "-f", "-", stdin(decoyNft)))
	for _, s := range decoySets {
		b.fail(createSet(s, "hash:ip"))
	}
	if b.err != nil {
		b.fail(fmt.Errorf("plant the host firewall: %w", b.err))
		return
	}
	want, err := probeFirewall(*b.m)
	if err != nil {
		b.fail(err)
		return
	}
	b.m.Decoys.States = append(b.m.Decoys.States, DecoyState{Name: "firewall", Want: want})

	for _, be := range firewall.AllBackends() {
		s := fixture.New()
		fixture.KubeProxy(s, be.Family, sandboxServices)
		fixture.CNI(s, be.Family)
		fixture.Flannel(s, be.Family, false)
		if be.Name == "nft" {
			fixture.Calico(s)
		}
		b.fail(run(nil, be.RestoreCommand(), "--noflush", "-w", "5", stdin(s.String())))
		for _, c := range s.Chains {
			b.expect(plan.KindChain, be.String()+" "+c)
		}
		for _, r := range s.Rules {
			b.expect(plan.KindRule, be.String()+" "+r)
		}
	}
	b.fail(run(nil, "nft", "-f", "-", stdin(kubeProxyNft)))
	b.expect(plan.KindNftTable, "ip kube-proxy")
	b.expect(plan.KindNftTable, "ip6 kube-proxy")
	for _, s := range ownedSets {
		b.fail(createSet(s.name, s.typ))
		b.expect(plan.KindIPSet, s.name)
	}
	if b.err != nil {
		b.fail(fmt.Errorf("plant Kubernetes' firewall state: %w", b.err))
	}
}

type stdin string

// run runs a program with an optional stdin; its output goes to out.
func run(out *bytes.Buffer, name string, args ...any) error {
	var in string
	var sargs []string
	for _, a := range args {
		switch v := a.(type) {
		case stdin:
			in = string(v)
		case string:
			sargs = append(sargs, v)
		}
	}
	cmd := exec.Command(name, sargs...)
	cmd.Stdin = strings.NewReader(in)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if out != nil {
		cmd.Stdout = out
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(sargs, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
}

func createSet(name, typ string) error {
	o := netlink.IpsetCreateOptions{}
	if typ == "bitmap:port" {
		o.PortFrom, o.PortTo = 0, 65535
	}
	if err := netlink.IpsetCreate(name, typ, o); err != nil {
		return fmt.Errorf("create ipset %s %s: %w", name, typ, err)
	}
	return nil
}

// probeFirewall prints the canonical firewall state inside the sandbox:
// every backend's *-save without counters and comment lines, the nft
// tables iptables-nft does not manage, and the ipset names. After a reset
// it must equal what plantFirewall recorded before planting Kubernetes'.
func probeFirewall(m Manifest) (string, error) {
	var s strings.Builder
	for _, be := range firewall.AllBackends() {
		var out bytes.Buffer
		if err := run(&out, be.SaveCommand()); err != nil {
			return "", err
		}
		c, err := firewall.Canonical(out.Bytes())
		if err != nil {
			return "", fmt.Errorf("%s: %w", be.SaveCommand(), err)
		}
		s.WriteString("# " + be.String() + "\n" + c)
	}
	var out bytes.Buffer
	if err := run(&out, "nft", "list", "ruleset"); err != nil {
		return "", err
	}
	s.WriteString("# nft\n")
	for _, t := range firewall.ParseRuleset(out.Bytes()) {
		if !t.Iptables {
			s.WriteString(t.Text)
		}
	}
	sets, err := netlink.IpsetListAll()
	if err != nil {
		return "", fmt.Errorf("list ipsets: %w", err)
	}
	var names []string
	for _, set := range sets {
		names = append(names, set.SetName+" "+set.TypeName)
	}
	sort.Strings(names)
	s.WriteString("# ipsets\n" + strings.Join(names, "\n") + "\n")
	return s.String(), nil
}
