package etcdmember

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Member is one etcd member as seen while planning: what the member list
// says about it and what its own Status answer said.
type Member struct {
	ID         uint64
	Name       string // empty for a member that was added but never started
	PeerURLs   []string
	ClientURLs []string
	Learner    bool

	// Healthy: a Status call to one of its client URLs answered within the
	// timeout, from this member (by ID), naming a leader, with no alarm.
	Healthy  bool
	Endpoint string // the client URL that answered, empty when none did
	Problem  string // why it is not healthy
}

// Label is how messages name a member: its name and ID, since a member that
// never started has no name.
func (m Member) Label() string {
	if m.Name == "" {
		return fmt.Sprintf("(unstarted) %016x", m.ID)
	}
	return fmt.Sprintf("%s (%016x)", m.Name, m.ID)
}

// Target is the node whose member is to go: its Node name (kubeadm names the
// member after the node) and the addresses its peer URLs may use (the Node's
// InternalIP and hostnames).
type Target struct {
	Name      string
	PeerHosts []string
}

func (t Target) String() string {
	return fmt.Sprintf("node %q (peer hosts %s)", t.Name, strings.Join(t.PeerHosts, ", "))
}

// match finds the target's member. It returns -1 when none matches.
//
// The rule, exactly: a member matches by name when its name equals t.Name,
// and by peer when the host of one of its peer URLs equals one of
// t.PeerHosts (IP addresses compared as addresses, names case-insensitively;
// never a substring). When both select something they must select the same
// single member, and several members for the name or for the peer hosts
// are refused as ambiguous; a name match with no peer match is taken (the node's
// address may have changed), and so is a single peer match with no name
// match (node and member names may differ, e.g. hostname vs node name).
func match(members []Member, t Target) (int, *RefusedError) {
	if t.Name == "" && len(t.PeerHosts) == 0 {
		return -1, refuse(t.String(), ErrNoTarget, "give the node name or its addresses")
	}
	byName, byPeer := []int{}, []int{}
	for i, m := range members {
		if t.Name != "" && m.Name == t.Name {
			byName = append(byName, i)
		}
		if peerHostMatch(m.PeerURLs, t.PeerHosts) {
			byPeer = append(byPeer, i)
		}
	}
	if len(byName) > 1 {
		return -1, refuse(t.String(), ErrAmbiguous,
			fmt.Sprintf("%d members are named %q; remove the right one by hand with etcdctl member remove ID", len(byName), t.Name))
	}
	if len(byPeer) > 1 {
		// Two members on one host is not a layout kubeadm makes; a name
		// cannot settle which of them is this node's.
		return -1, refuse(t.String(), ErrAmbiguous,
			fmt.Sprintf("the peer hosts select %s; remove the right one by hand with etcdctl member remove ID", labels(members, byPeer)))
	}
	switch {
	case len(byName) == 1 && len(byPeer) == 0:
		return byName[0], nil
	case len(byName) == 0 && len(byPeer) == 1:
		return byPeer[0], nil
	case len(byName) == 0:
		return -1, nil
	}
	n := byName[0]
	if byPeer[0] == n {
		return n, nil
	}
	return -1, refuse(t.String(), ErrConflict,
		fmt.Sprintf("the name selects %s but the peer hosts select %s; check the node's addresses and the member list (etcdctl member list)",
			members[n].Label(), labels(members, byPeer)))
}

func peerHostMatch(peerURLs, hosts []string) bool {
	for _, u := range peerURLs {
		pu, err := url.Parse(u)
		if err != nil {
			continue
		}
		for _, h := range hosts {
			if sameHost(pu.Hostname(), h) {
				return true
			}
		}
	}
	return false
}

// sameHost compares two hosts as IP addresses when both are, otherwise as
// DNS names (case-insensitive, a trailing dot ignored).
func sameHost(a, b string) bool {
	a, b = strings.Trim(a, "[]"), strings.Trim(b, "[]")
	if a == "" || b == "" {
		return false
	}
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if errA == nil || errB == nil {
		return errA == nil && errB == nil && ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func labels(members []Member, idx []int) string {
	s := make([]string, len(idx))
	for i, j := range idx {
		s[i] = members[j].Label()
	}
	return strings.Join(s, ", ")
}
