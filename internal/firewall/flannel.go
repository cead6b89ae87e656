package firewall

import (
	"bufio"
	"bytes"
	"net/netip"
	"slices"
	"strings"
)

// flannelNets are the cluster networks flannel masquerades for, each with
// the node's own subnet when known (FLANNEL_NETWORK and FLANNEL_SUBNET of
// subnet.env, or a CIDR passed in Options).
type flannelNets []flannelNet

type flannelNet struct {
	network string // canonical CIDR, "10.244.0.0/16"
	subnet  string // this node's lease, "10.244.1.0/24", or ""
}

// parseSubnetEnv reads flannel's /run/flannel/subnet.env
// (FLANNEL_NETWORK=10.244.0.0/16, FLANNEL_SUBNET=10.244.1.1/24, and the
// FLANNEL_IPV6_* pair for dual stack).
func parseSubnetEnv(b []byte) flannelNets {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok {
			vals[k] = strings.Trim(v, `"'`)
		}
	}
	var out flannelNets
	for _, pre := range []string{"FLANNEL_", "FLANNEL_IPV6_"} {
		n := canonicalCIDR(vals[pre+"NETWORK"])
		if n == "" {
			continue
		}
		out = append(out, flannelNet{network: n, subnet: canonicalCIDR(vals[pre+"SUBNET"])})
	}
	return out
}

// canonicalCIDR masks a prefix the way iptables-save prints it
// (10.244.1.1/24 → 10.244.1.0/24); "" when s is not a prefix.
func canonicalCIDR(s string) string {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return p.Masked().String()
}

// masqRule reports whether r is one of the POSTROUTING rules flannel's
// ip-masq writes without a comment (older flannel, rke2#2599), by the exact
// shape of each for this cluster network:
//
//	-s NET -d NET -j RETURN
//	-s NET ! -d 224.0.0.0/4 -j MASQUERADE [--random-fully]
//	! -s NET -d SUBNET -j RETURN
//	! -s NET -d NET -j MASQUERADE [--random-fully]
//
// (IPv6: ff00::/8 instead of 224.0.0.0/4). Anything else — another target,
// an interface match, a user's CIDR — is not flannel's.
func (fl flannelNets) masqRule(r Rule) (string, bool) {
	if r.Chain != "POSTROUTING" {
		return "", false
	}
	a := r.Args
	if n := len(a); n > 0 && a[n-1] == "--random-fully" {
		a = a[:n-1]
	}
	for _, f := range fl {
		N := f.network
		multicast := "224.0.0.0/4"
		if strings.Contains(N, ":") {
			multicast = "ff00::/8"
		}
		shapes := [][]string{
			{"-s", N, "-d", N, "-j", "RETURN"},
			{"-s", N, "!", "-d", multicast, "-j", "MASQUERADE"},
			{"!", "-s", N, "-d", N, "-j", "MASQUERADE"},
		}
		if f.subnet != "" {
			shapes = append(shapes, []string{"!", "-s", N, "-d", f.subnet, "-j", "RETURN"})
		}
		for _, s := range shapes {
			if slices.Equal(a, s) {
				return N, true
			}
		}
	}
	return "", false
}
