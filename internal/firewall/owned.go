package firewall

import (
	"strings"

	"github.com/nodereset/nodereset/internal/ipsets"
)

// chainOwners are the chain name prefixes of the components whose chains a
// reset removes, with who writes them. A prefix is a whole name segment
// ("KUBE-", "cali-"), never an arbitrary substring.
var chainOwners = []struct{ prefix, owner string }{
	{"KUBE-", "kube-proxy/kubelet"},
	{"CNI-", "CNI plugins (bridge, portmap, firewall)"},
	{"FLANNEL-", "flannel"},
	{"cali-", "Calico"},
	{"CILIUM_", "Cilium"},
	{"OLD_CILIUM_", "Cilium (renamed during an upgrade)"},
	{"WEAVE-", "Weave Net"},
}

// OwnedChain says whether a user-defined chain belongs to Kubernetes or its
// CNI, and whose it is. Besides the prefixes above: "WEAVE" itself, and
// names with a "CILIUM" segment after a distribution's prefix
// (RKE2-CILIUM-..., rke2#10654).
func OwnedChain(name string) (owner string, ok bool) {
	for _, o := range chainOwners {
		if strings.HasPrefix(name, o.prefix) && len(name) > len(o.prefix) {
			return o.owner, true
		}
	}
	if name == "WEAVE" {
		return "Weave Net", true
	}
	seg := strings.Split(name, "-")
	for i := 1; i < len(seg)-1; i++ {
		if seg[i] == "CILIUM" && seg[0] != "" {
			return "Cilium (" + seg[0] + " prefix)", true
		}
	}
	return "", false
}

// AdminChain is the chain the CNI firewall plugin creates for the
// administrator's own rules (its iptablesAdminChainName default) and that
// CNI-FORWARD jumps to first; the plugin never writes to it. Created by the
// CNI but filled by a person, it is owned only while it is empty: a filled
// one stays, and its rules are judged like those of any chain that stays.
const AdminChain = "CNI-ADMIN"

// ownerComments are the exact comments of rules their owners place in
// built-in chains without jumping to a chain of their own: flannel's
// masquerade and forward rules (k3s#5001) and kube-proxy's and kubelet's
// markers. Matched whole, so a user comment mentioning "flannel" is not one.
var ownerComments = map[string]string{
	"flanneld masq":                                   "flannel",
	"flanneld forward":                                "flannel",
	"kubernetes service portals":                      "kube-proxy",
	"kubernetes externally-visible service portals":   "kube-proxy",
	"kubernetes postrouting rules":                    "kube-proxy",
	"kubernetes forwarding rules":                     "kube-proxy",
	"kubernetes health check service ports":           "kube-proxy",
	"kubernetes load balancer firewall":               "kube-proxy",
	"kube-proxy firewall rules":                       "kube-proxy",
	"kubernetes service nodeports":                    "kube-proxy",
	"kubernetes forwarding conntrack rule":            "kube-proxy",
	"kubernetes firewall for dropping marked packets": "kubelet",
	"block incoming localnet connections":             "kubelet",
	"kubernetes ipvs access filter":                   "kube-proxy",
}

// calicoComment reports Calico's rule marker "cali:" followed by its
// 16-character rule hash (base64url alphabet).
func calicoComment(c string) bool {
	id, ok := strings.CutPrefix(c, "cali:")
	if !ok || len(id) != 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

// ruleOwner decides whether a rule in a chain that is not owned (a built-in
// chain, Docker's, the user's) belongs to Kubernetes: it jumps to an owned
// chain, carries an owner's exact comment, matches an owned ipset, or is
// one of flannel's comment-less masquerade rules for the cluster network.
func ruleOwner(r Rule, fl flannelNets) (reason string, ok bool) {
	// The plugin jumps to AdminChain only from CNI-FORWARD, which goes
	// whole: a jump to it from a chain that stays is the administrator's.
	if t := r.Target(); t != "" && t != AdminChain {
		if owner, ok := OwnedChain(t); ok {
			return "jumps to " + t + " (" + owner + ")", true
		}
	}
	for _, c := range r.Comments() {
		if owner, ok := ownerComments[c]; ok {
			return owner + "'s rule (comment " + quote(c) + ")", true
		}
		if calicoComment(c) {
			return "Calico's rule (comment " + quote(c) + ")", true
		}
	}
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == "--match-set" {
			if owner, ok := ipsets.Owned(r.Args[i+1]); ok {
				return "matches ipset " + r.Args[i+1] + " (" + owner + ")", true
			}
		}
	}
	if net, ok := fl.masqRule(r); ok {
		return "flannel's masquerade rule for the cluster network " + net + " (no comment, rke2#2599)", true
	}
	return "", false
}

func quote(s string) string { return `"` + s + `"` }
