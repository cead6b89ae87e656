package links

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nodereset/nodereset/pkg/plan"
)

const flannelConf = `{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel", "delegate": {"isDefaultGateway": true}}, {"type": "portmap"}]}`

// decoys plants what a reset must leave alone: a stand-in NIC, Docker's and
// libvirt's bridges with their ports, a user's veth pair, a bridge named
// cni0x with a container veth, owned names on devices of another kind
// (this kernel has no dummy, so kube-ipvs0 is a bridge here: it must stay),
// a vxlan named like Calico's with another VNI, and podman's bridge, whose
// config sits next to Kubernetes' ones.
func decoys(m *linkMaker) []string {
	ens3 := m.add(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ens3"}, PeerName: "ens3-wire"})
	addr, _ := netlink.ParseAddr("192.168.122.10/24")
	if err := netlink.AddrAdd(ens3, addr); err != nil {
		m.t.Fatal(err)
	}
	m.podVeth("veth7d1e2f0", m.bridge("docker0"))
	virbr := m.bridge("virbr0")
	m.add(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "vnet0", MasterIndex: virbr.Attrs().Index}, Mode: netlink.TUNTAP_MODE_TAP})
	m.add(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-user0"}, PeerName: "veth-user1"})
	m.podVeth("vethcni0x", m.bridge("cni0x"))
	m.bridge("kube-ipvs0")
	m.bridge("nodelocaldns")
	m.add(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan-v6.calico"}, VxlanId: 100, Port: 4789})
	m.add(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.2"}, VxlanId: 7, Port: 8472})
	m.podVeth("veth9podman", m.bridge("cni-podman0"))
	return []string{"ens3", "ens3-wire", "docker0", "veth7d1e2f0", "virbr0", "vnet0", "veth-user0", "veth-user1",
		"cni0x", "vethcni0x", "kube-ipvs0", "nodelocaldns", "vxlan-v6.calico", "flannel.2", "cni-podman0", "veth9podman"}
}

// owned plants a flannel + Calico + Cilium mix with pods and returns the
// names a reset must delete.
func owned(m *linkMaker, pods int) []string {
	cni0 := m.bridge("cni0")
	want := []string{"cni0", "flannel.1", "vxlan.calico", "calia1b2c3d4e5f", "cilium_vxlan", "cilium_host", "cilium_net", "mybr0", "vethmine"}
	for i := range pods {
		n := "vethpod" + string(rune('a'+i))
		m.podVeth(n, cni0)
		want = append(want, n)
	}
	m.add(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.1"}, VxlanId: 1, Port: 8472})
	m.add(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan.calico"}, VxlanId: 4096, Port: 4789})
	m.podVeth("calia1b2c3d4e5f", nil)
	m.add(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "cilium_vxlan"}, FlowBased: true, Port: 8472})
	m.add(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cilium_host"}, PeerName: "cilium_net"})
	m.podVeth("vethmine", m.bridge("mybr0"))
	slices.Sort(want)
	return want
}

// TestApplyRealLinks: real bridges, veths into pod netns and vxlans in a
// network namespace the test creates; exactly the owned ones go, every
// decoy stays as it was, and a second run of the same plan is a no-op.
func TestApplyRealLinks(t *testing.T) {
	if !enterNet(t) {
		return
	}
	m := &linkMaker{t: t}
	defer m.close()
	decoyNames := decoys(m)
	before := state(t, decoyNames)
	want := owned(m, 5)
	env := testEnv(t, map[string]string{"/etc/cni/net.d/10-flannel.conflist": flannelConf, "/etc/cni/net.d/20-mine.conflist": `{"name": "k8s-pod-network", "plugins": [{"type": "bridge", "bridge": "mybr0"}]}`})
	k := New(Options{Parallel: 4})
	items := discover(t, k, env)
	if got := names(items); !slices.Equal(got, want) {
		t.Fatalf("planned\n %v\nwant\n %v", got, want)
	}
	rec := newRecorder()
	k.Apply(context.Background(), env, items, rec)
	rec.check(t, items)
	for _, n := range want {
		if linkExists(n) {
			t.Errorf("%s still exists", n)
		}
	}
	if after := state(t, decoyNames); after != before {
		t.Errorf("decoys changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	if left := discover(t, k, env); len(left) != 0 {
		t.Errorf("left after apply: %v", names(left))
	}
	rec = newRecorder()
	k.Apply(context.Background(), env, items, rec)
	rec.check(t, items)
}

// TestApplyRefusesReplacedLink: a link deleted and created again under the
// planned name (another index) is not touched.
func TestApplyRefusesReplacedLink(t *testing.T) {
	if !enterNet(t) {
		return
	}
	m := &linkMaker{t: t}
	defer m.close()
	old := m.bridge("cni0")
	env := testEnv(t, nil)
	k := New(Options{})
	items := discover(t, k, env)
	if len(items) != 1 {
		t.Fatalf("planned %v", names(items))
	}
	if err := netlink.LinkDel(old); err != nil {
		t.Fatal(err)
	}
	m.bridge("cni0")
	rec := newRecorder()
	k.Apply(context.Background(), env, items, rec)
	var le *LinkError
	if err := rec.done["cni0"]; !errors.Is(err, ErrChanged) || !errors.As(err, &le) || rec.started["cni0"] {
		t.Errorf("replaced cni0: %v (started %v)", err, rec.started["cni0"])
	}
	if !linkExists("cni0") {
		t.Error("the new cni0 was deleted")
	}
}

// TestApplyWithoutDetail: a plan read back without details decides again
// on the current attributes, so a decoy named in it is refused.
func TestApplyWithoutDetail(t *testing.T) {
	if !enterNet(t) {
		return
	}
	m := &linkMaker{t: t}
	defer m.close()
	m.bridge("cni0")
	m.bridge("kube-ipvs0")
	env := testEnv(t, nil)
	k := New(Options{})
	items := []plan.Item{
		{Kind: plan.KindLink, Target: "cni0", Action: plan.ActionRemove},
		{Kind: plan.KindLink, Target: "kube-ipvs0", Action: plan.ActionRemove},
	}
	rec := newRecorder()
	k.Apply(context.Background(), env, items, rec)
	if err := rec.done["cni0"]; err != nil || linkExists("cni0") {
		t.Errorf("cni0: %v, exists %v", err, linkExists("cni0"))
	}
	if err := rec.done["kube-ipvs0"]; err == nil || !linkExists("kube-ipvs0") {
		t.Errorf("kube-ipvs0 (a bridge): %v, exists %v", err, linkExists("kube-ipvs0"))
	}
}
