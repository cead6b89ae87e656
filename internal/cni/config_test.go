package cni

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestParseFixtures classifies real-world configs: those written by
// Kubernetes network add-ons are owned, podman's and CRI-O's (which also use
// the cni0 bridge) and generic ones are not.
func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file, owner, name string
		bridges           []string
		kubeconfigs       []string
		notCNI            bool
	}{
		{file: "10-flannel.conflist", owner: "flannel", name: "cbr0"},
		{file: "10-calico.conflist", owner: "calico", name: "k8s-pod-network", kubeconfigs: []string{"/etc/cni/net.d/calico-kubeconfig"}},
		{file: "05-cilium.conflist", owner: "cilium", name: "cilium"},
		{file: "10-weave.conflist", owner: "weave", name: "weave"},
		{file: "00-multus.conf", owner: "multus", name: "multus-cni-network", kubeconfigs: []string{"/etc/cni/net.d/multus.d/multus.kubeconfig"}},
		{file: "10-kuberouter.conflist", owner: "kube-router", name: "mynet", bridges: []string{"kube-bridge"}},
		{file: "10-cbr0.conflist", owner: "kubernetes bridge (cbr0)", name: "cbr0", bridges: []string{"cni0"}},
		{file: "87-podman-bridge.conflist", name: "podman", bridges: []string{"cni-podman0"}},
		{file: "100-crio-bridge.conflist", name: "crio", bridges: []string{"cni0"}},
		{file: "200-loopback.conf"},
		{file: "10-containerd-net.conflist", name: "containerd-net", bridges: []string{"cni0"}},
		{file: "99-podman-disguised-as-flannel.conflist", name: "podman"},
		{file: "50-broken.conf", notCNI: true},
		{file: "60-notype.conf", notCNI: true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/net.d", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse("/etc/cni/net.d/"+tc.file, b)
			if tc.notCNI {
				if !errors.Is(err, ErrNotCNI) {
					t.Fatalf("Parse = %+v, %v; want ErrNotCNI", c, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Owner != tc.owner || c.Name != tc.name || c.Owned() != (tc.owner != "") {
				t.Errorf("owner %q name %q, want %q %q", c.Owner, c.Name, tc.owner, tc.name)
			}
			if !slices.Equal(c.Bridges, tc.bridges) {
				t.Errorf("bridges %v, want %v", c.Bridges, tc.bridges)
			}
			if !slices.Equal(c.Kubeconfigs, tc.kubeconfigs) {
				t.Errorf("kubeconfigs %v, want %v", c.Kubeconfigs, tc.kubeconfigs)
			}
		})
	}
}

func TestResultOf(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, file, data, want string
	}{
		{"json names the network", "k8s-pod-network-" + id + "-eth0", `{"kind":"cniCacheV1","networkName":"k8s-pod-network","ifName":"eth0"}`, "k8s-pod-network"},
		{"json beats the name", "k8s-" + id + "-eth0", `{"networkName":"k8s-pod-network"}`, "k8s-pod-network"},
		{"old file: name before the id", "cbr0-" + id + "-eth0", `{"cniVersion":"0.4.0","ips":[]}`, "cbr0"},
		{"old file with dashes in the network", "k8s-pod-network-" + id + "-eth0", `{}`, "k8s-pod-network"},
		{"short id is not an id", "cbr0-abc-eth0", `{}`, ""},
		{"upper-case hex is not containerd's", "cbr0-" + "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef" + "-eth0", `{}`, ""},
		{"garbage", "cbr0", `nope`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResultOf(tc.file, []byte(tc.data)); got != tc.want {
				t.Errorf("ResultOf(%q) = %q, want %q", tc.file, got, tc.want)
			}
		})
	}
}
