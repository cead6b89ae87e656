// Package links is the kind "link": the network interfaces a Kubernetes
// network plugin or kube-proxy created on the host — CNI bridges and their
// pod veths, flannel/Calico/Cilium/Weave tunnels, kube-ipvs0 and friends.
//
// A link is chosen by its kind plus an owner marker (its master bridge, its
// VXLAN VNI and port, where its veth peer lives, the plugin's config or
// state on the host), never by a name pattern alone: kube-ipvs0 that is a
// bridge rather than a dummy is somebody else's, and so are docker0,
// virbr0, a user's veth pair and a bridge called cni0x (anchors' failure 8).
// Select is a pure function over recorded attributes so that it can be
// tested for link kinds this kernel cannot create.
package links

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nodereset/nodereset/pkg/plan"
)

// Attrs are the attributes of one link that selection looks at.
type Attrs struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	// Kind is the rtnetlink kind: bridge, veth, vxlan, dummy, ipip,
	// wireguard, openvswitch, tuntap, device (a NIC).
	Kind string `json:"kind"`
	// Master is the name of the bridge (or OVS datapath) it is enslaved to.
	Master string `json:"master,omitempty"`
	// PeerIndex is a veth's peer ifindex (IFLA_LINK); the peer lives in this
	// namespace unless PeerElsewhere.
	PeerIndex     int  `json:"peerIndex,omitempty"`
	PeerElsewhere bool `json:"peerElsewhere,omitempty"`
	// VxlanID, Port and FlowBased describe a vxlan device (FlowBased is
	// "external": no VNI of its own, as Cilium's and Weave's are).
	VxlanID   int  `json:"vxlanId,omitempty"`
	Port      int  `json:"port,omitempty"`
	FlowBased bool `json:"flowBased,omitempty"`
	Up        bool `json:"up,omitempty"`
	// Addrs are the link's addresses in CIDR form.
	Addrs []string `json:"addrs,omitempty"`
}

// Markers are what the host says about which network plugins ran, found
// outside the links themselves.
type Markers struct {
	// Bridges are bridge names owned by a Kubernetes CNI: cni0 and those
	// named by a Kubernetes CNI config's bridge plugin.
	Bridges []string
	// Calico and Weave are set when their config or state is on the host;
	// tunl0 and Weave's devices are only taken then.
	Calico, Weave bool
	// FlannelPorts are the UDP ports flannel's vxlan devices use (8472,
	// the kernel's default when flannel leaves Port at 0).
	FlannelPorts []int
	// CalicoVNI and CalicoPort are Calico's vxlan VNI and port (Felix
	// defaults 4096 and 4789).
	CalicoVNI, CalicoPort int
}

// Stages order the deletions: pod veths, then tunnels and dummies, then the
// bridges they hang off, and the cilium_host/cilium_net pair last, after
// cilium_vxlan, so the host keeps its route to Cilium's datapath until the
// overlay is gone (k3s#8347). Stages run one after another; items of one
// stage run in parallel.
const (
	StagePodLinks = iota
	StageTunnels
	StageBridges
	StageCiliumHost
)

// ActionRemoveAddresses removes the listed addresses and deletes the device
// only when the kernel lets it (tunl0 is the ipip module's own device).
const ActionRemoveAddresses plan.Action = "remove-addresses"

// Choice is one selected link and what to do with it.
type Choice struct {
	Attrs  Attrs
	Owner  string
	Reason string
	Stage  int
	// Addrs is set for ActionRemoveAddresses: the addresses to remove.
	Addrs []string
}

// Select returns the links of ls that a Kubernetes network plugin owns, in
// ls order. It is pure: the same attributes always give the same answer.
func Select(ls []Attrs, m Markers) []Choice {
	byName := map[string]Attrs{}
	for _, l := range ls {
		byName[l.Name] = l
	}
	masters := map[string]string{} // owned master name -> owner
	for _, l := range ls {
		if o := ownedMaster(l, m); o != "" {
			masters[l.Name] = o
		}
	}
	var out []Choice
	for _, l := range ls {
		if c, ok := choose(l, m, masters, byName); ok {
			c.Attrs = l
			out = append(out, c)
		}
	}
	return out
}

// ownedMaster names the owner of a link that pod veths are enslaved to.
func ownedMaster(l Attrs, m Markers) string {
	switch {
	case l.Kind == "bridge" && (l.Name == "cni0" || slices.Contains(m.Bridges, l.Name)):
		return "CNI bridge plugin"
	case l.Kind == "bridge" && l.Name == "kube-bridge":
		return "kube-router"
	case l.Kind == "bridge" && l.Name == "weave" && m.Weave:
		return "weave"
	case l.Kind == "openvswitch" && l.Name == "datapath" && m.Weave:
		return "weave"
	}
	return ""
}

func choose(l Attrs, m Markers, masters map[string]string, byName map[string]Attrs) (Choice, bool) {
	if o := masters[l.Name]; o != "" {
		return Choice{Owner: o, Stage: StageBridges, Reason: fmt.Sprintf("%s %s of %s", l.Kind, l.Name, o)}, true
	}
	switch l.Kind {
	case "veth":
		if o := masters[l.Master]; o != "" {
			return Choice{Owner: o, Stage: StagePodLinks, Reason: fmt.Sprintf("veth enslaved to %s's bridge %s", o, l.Master)}, true
		}
		if strings.HasPrefix(l.Name, "cali") && l.Master == "" && l.PeerElsewhere {
			return Choice{Owner: "calico", Stage: StagePodLinks, Reason: "Calico pod veth, its peer in a pod network namespace"}, true
		}
		if ciliumPair(l, byName) {
			return Choice{Owner: "cilium", Stage: StageCiliumHost, Reason: "Cilium's cilium_host/cilium_net veth pair"}, true
		}
	case "vxlan":
		return vxlanOwner(l, m)
	case "wireguard":
		switch l.Name {
		case "flannel-wg", "flannel-wg-v6":
			return Choice{Owner: "flannel", Stage: StageTunnels, Reason: "flannel's wireguard device"}, true
		case "wireguard.cali", "wg-v6.cali":
			return Choice{Owner: "calico", Stage: StageTunnels, Reason: "Calico's wireguard device"}, true
		case "cilium_wg0":
			return Choice{Owner: "cilium", Stage: StageTunnels, Reason: "Cilium's wireguard device"}, true
		}
	case "dummy":
		switch l.Name {
		case "kube-ipvs0":
			return Choice{Owner: "kube-proxy", Stage: StageTunnels, Reason: "kube-proxy's IPVS dummy device"}, true
		case "nodelocaldns":
			return Choice{Owner: "node-local-dns", Stage: StageTunnels, Reason: "NodeLocal DNSCache's dummy device"}, true
		case "kube-dummy-if":
			return Choice{Owner: "kube-router", Stage: StageTunnels, Reason: "kube-router's dummy device"}, true
		}
	case "ipip":
		if l.Name == "tunl0" && m.Calico {
			if a := calicoTunnelAddrs(l.Addrs); len(a) > 0 {
				return Choice{Owner: "calico", Stage: StageTunnels, Addrs: a,
					Reason: "Calico's IPIP tunnel addresses on tunl0 (the device is the ipip module's)"}, true
			}
		}
	}
	return Choice{}, false
}

func vxlanOwner(l Attrs, m Markers) (Choice, bool) {
	if vni, ok := flannelVNI(l.Name); ok && vni == l.VxlanID && slices.Contains(m.FlannelPorts, l.Port) {
		return Choice{Owner: "flannel", Stage: StageTunnels, Reason: fmt.Sprintf("flannel's vxlan device (VNI %d, port %d)", l.VxlanID, l.Port)}, true
	}
	switch {
	case (l.Name == "vxlan.calico" || l.Name == "vxlan-v6.calico") && l.VxlanID == m.CalicoVNI && l.Port == m.CalicoPort:
		return Choice{Owner: "calico", Stage: StageTunnels, Reason: fmt.Sprintf("Calico's vxlan device (VNI %d, port %d)", l.VxlanID, l.Port)}, true
	case l.Name == "cilium_vxlan" && l.FlowBased:
		return Choice{Owner: "cilium", Stage: StageTunnels, Reason: "Cilium's flow-based vxlan device"}, true
	case l.Name == "vxlan-6784" && l.FlowBased && l.Port == 6784 && m.Weave:
		return Choice{Owner: "weave", Stage: StageTunnels, Reason: "Weave's fast-datapath vxlan device (port 6784)"}, true
	}
	return Choice{}, false
}

// flannelVNI parses flannel.<vni> and flannel-v6.<vni>.
func flannelVNI(name string) (int, bool) {
	for _, p := range []string{"flannel.", "flannel-v6."} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			n, err := strconv.Atoi(rest)
			return n, err == nil && n > 0 && strconv.Itoa(n) == rest
		}
	}
	return 0, false
}

// ciliumPair: cilium_host and cilium_net are each other's veth peer in
// this namespace.
func ciliumPair(l Attrs, byName map[string]Attrs) bool {
	other := map[string]string{"cilium_host": "cilium_net", "cilium_net": "cilium_host"}[l.Name]
	if other == "" || l.PeerElsewhere {
		return false
	}
	p, ok := byName[other]
	return ok && p.Kind == "veth" && !p.PeerElsewhere && p.Index == l.PeerIndex && p.PeerIndex == l.Index
}

// calicoTunnelAddrs are the addresses Calico puts on tunl0: single IPv4
// host addresses (/32) taken from its IP pool.
func calicoTunnelAddrs(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if strings.HasSuffix(a, "/32") && strings.Count(a, ".") == 3 {
			out = append(out, a)
		}
	}
	return out
}
