package firewall

import (
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nodereset/nodereset/internal/testns"
)

func TestServiceFlow(t *testing.T) {
	flow := func(dst, replySrc string) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{Forward: netlink.IPTuple{DstIP: net.ParseIP(dst)}, Reverse: netlink.IPTuple{SrcIP: net.ParseIP(replySrc)}}
	}
	for _, tc := range []struct {
		name, cidr, dst, reply string
		want                   bool
	}{
		{"translated to a pod", "10.96.0.0/12", "10.96.0.10", "10.244.2.7", true},
		{"last address of the CIDR", "10.96.0.0/12", "10.111.255.255", "10.244.2.7", true},
		{"not translated", "10.96.0.0/12", "10.96.0.10", "10.96.0.10", false},
		{"outside the CIDR (Docker's port mapping)", "10.96.0.0/12", "192.168.1.10", "172.17.0.2", false},
		{"just past the CIDR", "10.96.0.0/12", "10.112.0.1", "10.244.2.7", false},
		{"IPv6 translated", "fd00:96::/108", "fd00:96::1", "fd00:244::7", true},
		{"IPv4 flow, IPv6 CIDR", "fd00:96::/108", "10.96.0.10", "10.244.2.7", false},
		{"IPv4-mapped destination", "10.96.0.0/12", "::ffff:10.96.0.1", "10.244.2.7", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := NewConntrack(Options{Conntrack: true, ServiceCIDRs: []string{tc.cidr}})
			if len(k.cidrs) != 1 {
				t.Fatalf("cidrs %v, warnings %v", k.cidrs, k.warn)
			}
			if got := serviceFlow(k.cidrs[0]).MatchConntrackFlow(flow(tc.dst, tc.reply)); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConntrackWarnings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cidrs []string
		warn  string
	}{
		{"none", nil, "no Service CIDR is known"},
		{"bad", []string{"10.96.0.0/33"}, `"10.96.0.0/33" is not a CIDR`},
		{"good", []string{"10.96.0.0/12"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := strings.Join(NewConntrack(Options{Conntrack: true, ServiceCIDRs: tc.cidrs}).Warnings(), "\n")
			if tc.warn == "" && w != "" || !strings.Contains(w, tc.warn) {
				t.Errorf("warnings %q, want %q", w, tc.warn)
			}
		})
	}
	off := NewConntrack(Options{ServiceCIDRs: []string{"10.96.0.0/12"}})
	if items, err := off.Discover(context.Background(), nil); len(items) != 0 || err != nil || len(off.Warnings()) != 0 {
		t.Errorf("without Conntrack: %v %v %v", items, err, off.Warnings())
	}
}

// TestConntrackRealFlows plants real conntrack entries (conntrack -I) in the
// test's network namespace: translated flows to Service IPs in both
// families go, an untranslated flow to a Service IP and Docker-like NATed
// flows stay.
func TestConntrackRealFlows(t *testing.T) {
	if !testns.Enter(t, testns.Mount|testns.Net) {
		return
	}
	env := nsSetup(t)
	testns.Command(t, "conntrack")
	insert := func(args ...string) {
		t.Helper()
		out, err := exec.Command("conntrack", append([]string{"-I", "-t", "300"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("conntrack -I %v: %v\n%s", args, err, out)
		}
	}
	udp := func(src, dst, rsrc string, sport string) {
		insert("-p", "udp", "-s", src, "-d", dst, "--sport", sport, "--dport", "53", "-r", rsrc, "-q", src, "--reply-port-src", "53", "--reply-port-dst", sport)
	}
	udp("10.244.1.5", "10.96.0.10", "10.244.2.7", "1001")     // Service → pod: goes
	udp("10.244.1.5", "10.100.0.20", "10.244.3.9", "1002")    // Service → pod: goes
	udp("10.244.1.5", "10.96.0.11", "10.96.0.11", "1003")     // to a Service IP, untranslated: stays
	udp("192.168.1.20", "192.168.1.10", "172.17.0.2", "1004") // Docker port mapping: stays
	udp("fd00::5", "fd00:96::1", "fd00:244::7", "1005")       // IPv6 Service → pod: goes
	udp("fd00::5", "fd00:1::1", "fd00:244::7", "1006")        // IPv6 outside: stays

	k := NewConntrack(Options{Conntrack: true, ServiceCIDRs: []string{"10.96.0.0/12", "fd00:96::/108"}})
	items, err := k.Discover(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, it := range items {
		got[it.Target] = it.Detail.(ConntrackDetail).Entries
	}
	if len(got) != 2 || got["ip4 10.96.0.0/12"] != 2 || got["ip6 fd00:96::/108"] != 1 {
		t.Fatalf("discovered %v", got)
	}
	applyAll(env, k, items).check(t, items)
	if left, err := k.Discover(context.Background(), env); err != nil || len(left) != 0 {
		t.Errorf("after apply: %v %v", left, err)
	}
	var kept []string
	for _, fam := range []netlink.InetFamily{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			kept = append(kept, f.Forward.DstIP.String())
		}
	}
	slices.Sort(kept)
	if strings.Join(kept, " ") != "10.96.0.11 192.168.1.10 fd00:1::1" {
		t.Errorf("flows left: %v, want 10.96.0.11 192.168.1.10 fd00:1::1", kept)
	}
	// A rerun finds nothing and applying the old plan again is done.
	applyAll(env, k, items).check(t, items)
}
