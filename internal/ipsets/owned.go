package ipsets

import "strings"

// setOwners are the ipset name prefixes of the components whose sets a
// reset destroys: kube-proxy's IPVS mode and kube-router (KUBE-...),
// Calico (cali40/cali60 for its IPv4/IPv6 sets, cali4t/cali6t for the
// temporary sets it swaps in: Calico names every set "cali" + version +
// name, so a user's "calibration" set is not matched), Weave Net's network
// policy controller (weave-...).
var setOwners = []struct{ prefix, owner string }{
	{"KUBE-", "kube-proxy/kube-router"},
	{"cali40", "Calico"},
	{"cali60", "Calico"},
	{"cali4t", "Calico"},
	{"cali6t", "Calico"},
	{"weave-", "Weave Net"},
}

// Owned says whether an ipset belongs to Kubernetes or its CNI, and whose
// it is. The prefix must be followed by a name: a set called just "cali40"
// or "KUBE-" is not Calico's or kube-proxy's.
func Owned(name string) (owner string, ok bool) {
	for _, o := range setOwners {
		if strings.HasPrefix(name, o.prefix) && len(name) > len(o.prefix) {
			return o.owner, true
		}
	}
	return "", false
}
