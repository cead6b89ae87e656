package sandbox

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodereset/nodereset/internal/netns/netnstest"
	"github.com/nodereset/nodereset/pkg/plan"
)

// decoyLinkNames names the links plantNetwork plants for the user; probeLinks
// prints exactly these. kube-ipvs0 and nodelocaldns are bridges here: this
// kernel has no dummy devices, and a same-named device of another kind is
// not Kubernetes', so a correct reset keeps them.
func decoyLinkNames() []string {
	return []string{"ens3", "ens3-wire", "docker0", "virbr0", "vnet0", "veth-user0", "veth-user1",
		"cni0x", "kube-ipvs0", "nodelocaldns"}
}

// plantNetwork plants a flannel-style pod network (cni0 with one veth per
// pod into /run/netns/cni-<uuid>, flannel.1, its CNI config, leases and
// cached results), Calico's vxlan.calico and a cali veth, next to the host's
// own links, whose state it records first.
func plantNetwork(b *builder) {
	if b.err != nil {
		return
	}
	b.fail(plantDecoyLinks())
	if b.err != nil {
		return
	}
	want, err := probeLinks(*b.m)
	b.fail(err)
	b.m.Decoys.States = append(b.m.Decoys.States, DecoyState{Name: "links", Want: want})
	b.decoyFile("/var/lib/cni/networks/podman/10.88.0.5", "podman-container-id\neth0")

	cni0 := addLink(b, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}}, "10.244.0.1/24")
	b.expect(plan.KindLink, "cni0")
	for i := 0; i < b.m.Pods && b.err == nil && cni0 != nil; i++ {
		uid := podUID(i)
		id := digest([]byte("sandbox " + uid))
		veth := "veth" + id[:8]
		fd := podNetns(b, "cni-"+uid)
		if fd < 0 {
			return
		}
		addLink(b, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: veth, MasterIndex: cni0.Attrs().Index},
			PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}, "")
		unix.Close(fd)
		b.expect(plan.KindLink, veth)
		ip := fmt.Sprintf("10.244.0.%d", i+2)
		b.file("/var/lib/cni/networks/cbr0/"+ip, id+"\neth0", 0o644)
		res := "/var/lib/cni/results/cbr0-" + id + "-eth0"
		b.file(res, `{"kind":"cniCacheV1","containerId":"`+id+`","ifName":"eth0","networkName":"cbr0"}`, 0o600)
		b.expect(plan.KindCNIFile, res)
	}
	if b.m.Pods > 0 {
		b.file("/var/lib/cni/networks/cbr0/last_reserved_ip.0", fmt.Sprintf("10.244.0.%d", b.m.Pods+1), 0o644)
		b.file("/var/lib/cni/networks/cbr0/lock", "", 0o600)
		b.expect(plan.KindCNIFile, "/var/lib/cni/networks/cbr0")
	}
	addLink(b, &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.1"}, VxlanId: 1, Port: 8472}, "10.244.0.0/32")
	addLink(b, &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan.calico"}, VxlanId: 4096, Port: 4789}, "")
	if fd := podNetns(b, "cni-5ca1ab1e-0000-4000-8000-00000000ca11"); fd >= 0 {
		addLink(b, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cali1b2c3d4e5f6"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}, "")
		unix.Close(fd)
	}
	for _, n := range []string{"flannel.1", "vxlan.calico", "cali1b2c3d4e5f6"} {
		b.expect(plan.KindLink, n)
	}
	b.file("/etc/cni/net.d/10-flannel.conflist", flannelConflist, 0o644)
	b.file("/run/flannel/subnet.env", "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", 0o644)
	b.expect(plan.KindCNIFile, "/etc/cni/net.d/10-flannel.conflist")
	b.expect(plan.KindCNIFile, "/run/flannel")
}

// plantDecoyLinks plants the host's links: a stand-in NIC (a veth: real
// NICs cannot be made) with an address, Docker's bridge, libvirt's bridge
// with a tap, a user's veth pair, a bridge named cni0x, and kube-ipvs0 and
// nodelocaldns of the wrong kind.
func plantDecoyLinks() error {
	steps := []struct {
		l    netlink.Link
		addr string
	}{
		{&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ens3"}, PeerName: "ens3-wire"}, "192.168.122.10/24"},
		{&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "docker0"}}, "172.17.0.1/16"},
		{&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "virbr0"}}, "192.168.124.1/24"},
		{&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "vnet0"}, Mode: netlink.TUNTAP_MODE_TAP}, ""},
		{&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-user0"}, PeerName: "veth-user1"}, ""},
		{&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0x"}}, ""},
		{&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "kube-ipvs0"}}, "10.96.0.1/32"},
		{&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "nodelocaldns"}}, "169.254.20.10/32"},
	}
	for _, s := range steps {
		if err := netlink.LinkAdd(s.l); err != nil {
			return fmt.Errorf("add decoy link %s: %w", s.l.Attrs().Name, err)
		}
		if err := setUp(s.l.Attrs().Name, s.addr); err != nil {
			return err
		}
	}
	virbr, err := netlink.LinkByName("virbr0")
	if err != nil {
		return err
	}
	vnet, err := netlink.LinkByName("vnet0")
	if err != nil {
		return err
	}
	return netlink.LinkSetMaster(vnet, virbr)
}

// addLink adds l, gives it addr (CIDR, may be "") and brings it up.
func addLink(b *builder, l netlink.Link, addr string) netlink.Link {
	if b.err != nil {
		return nil
	}
	if err := netlink.LinkAdd(l); err != nil {
		b.fail(fmt.Errorf("add %s %s: %w", l.Type(), l.Attrs().Name, err))
		return nil
	}
	b.fail(setUp(l.Attrs().Name, addr))
	got, err := netlink.LinkByName(l.Attrs().Name)
	b.fail(err)
	return got
}

func setUp(name, addr string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if addr != "" {
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", addr, name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

// podNetns creates a pod network namespace bind-mounted at
// /run/netns/<name> (the sandbox's /run, so <root>/run/netns on the host
// side), as containerd's CRI does, and returns a descriptor of it.
func podNetns(b *builder, name string) int {
	if b.err != nil {
		return -1
	}
	p := b.path("/run/netns/" + name)
	b.file("/run/netns/"+name, "", 0o444)
	if b.err != nil {
		return -1
	}
	fd, err := netnstest.New(p)
	if err != nil {
		b.fail(fmt.Errorf("pod netns %s: %w", name, err))
		return -1
	}
	return fd
}

// startNetwork has nothing to start: the links and files are the state.
func startNetwork(b *builder, self []byte) (func(), error) { return nil, nil }

// probeLinks prints the decoy links' state, one sorted line each: name,
// kind, index, master, up and addresses. A decoy deleted and re-created
// shows as changed through its index.
func probeLinks(m Manifest) (string, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("list links: %w", err)
	}
	byIndex := map[int]string{}
	for _, l := range ls {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	var lines []string
	for _, name := range decoyLinkNames() {
		i := indexOf(ls, name)
		if i < 0 {
			lines = append(lines, name+" missing")
			continue
		}
		l := ls[i]
		as, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return "", fmt.Errorf("addresses of %s: %w", name, err)
		}
		var addrs []string
		for _, a := range as {
			addrs = append(addrs, a.IPNet.String())
		}
		sort.Strings(addrs)
		lines = append(lines, fmt.Sprintf("%s %s #%d master=%s up=%v addrs=%s", name, l.Type(), l.Attrs().Index,
			byIndex[l.Attrs().MasterIndex], l.Attrs().Flags&net.FlagUp != 0, strings.Join(addrs, ",")))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n", nil
}

func indexOf(ls []netlink.Link, name string) int {
	for i, l := range ls {
		if l.Attrs().Name == name {
			return i
		}
	}
	return -1
}

// flannelConflist is what kube-flannel's install-cni container writes.
const flannelConflist = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`
