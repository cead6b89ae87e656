package links

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fixture is a recorded node: its links' attributes, the markers found on
// it, and the links a reset must delete. Several record kinds this
// kernel cannot create (dummy, ipip, wireguard, openvswitch), so those are
// tested here only, against recorded attributes.
type fixture struct {
	Comment string   `json:"comment"`
	Markers Markers  `json:"markers"`
	Links   []Attrs  `json:"links"`
	Want    []string `json:"want"`
}

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func TestSelectRecordedNodes(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 5 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f := loadFixture(t, file)
			var got []string
			for _, c := range Select(f.Links, f.Markers) {
				got = append(got, c.Attrs.Name)
				if c.Reason == "" || c.Owner == "" {
					t.Errorf("%s: no reason or owner: %+v", c.Attrs.Name, c)
				}
			}
			slices.Sort(got)
			want := slices.Clone(f.Want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s\nselected %v\nwant     %v", f.Comment, got, want)
			}
		})
	}
}

// TestSelectOrder: pod veths before their bridge, tunnels before bridges,
// cilium_vxlan before the cilium_host/cilium_net pair.
func TestSelectOrder(t *testing.T) {
	tests := []struct {
		file          string
		before, after string
	}{
		{"testdata/flannel-node.json", "veth3a9c01b2", "cni0"},
		{"testdata/flannel-node.json", "flannel.1", "cni0"},
		{"testdata/cilium-node.json", "cilium_vxlan", "cilium_host"},
		{"testdata/cilium-node.json", "cilium_vxlan", "cilium_net"},
		{"testdata/cilium-node.json", "cilium_wg0", "cilium_host"},
		{"testdata/weave-node.json", "vethwepl1234", "weave"},
		{"testdata/kuberouter-node.json", "veth0a1b2c3d", "kube-bridge"},
	}
	for _, tc := range tests {
		t.Run(tc.before+" before "+tc.after, func(t *testing.T) {
			f := loadFixture(t, tc.file)
			stage := map[string]int{}
			for _, c := range Select(f.Links, f.Markers) {
				stage[c.Attrs.Name] = c.Stage
			}
			b, okb := stage[tc.before]
			a, oka := stage[tc.after]
			if !okb || !oka || b >= a {
				t.Errorf("stage %s=%d (%v), %s=%d (%v)", tc.before, b, okb, tc.after, a, oka)
			}
		})
	}
}

// TestSelectTunl0 removes only Calico's /32 from tunl0, never the device.
func TestSelectTunl0(t *testing.T) {
	tests := []struct {
		name   string
		addrs  []string
		calico bool
		want   []string
	}{
		{"calico tunnel address", []string{"192.168.84.128/32"}, true, []string{"192.168.84.128/32"}},
		{"user address kept", []string{"10.9.0.1/24", "192.168.84.128/32"}, true, []string{"192.168.84.128/32"}},
		{"no calico, nothing", []string{"192.168.84.128/32"}, false, nil},
		{"no address, nothing", nil, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := Attrs{Name: "tunl0", Index: 3, Kind: "ipip", Addrs: tc.addrs}
			cs := Select([]Attrs{l}, Markers{Calico: tc.calico})
			var got []string
			if len(cs) == 1 {
				got = cs[0].Addrs
				if it := item(cs[0]); it.Action != ActionRemoveAddresses {
					t.Errorf("action %s", it.Action)
				}
			}
			if !slices.Equal(got, tc.want) || len(cs) > 1 {
				t.Errorf("choices %+v, want addrs %v", cs, tc.want)
			}
		})
	}
}

func TestFlannelVNI(t *testing.T) {
	tests := []struct {
		name string
		vni  int
		ok   bool
	}{
		{"flannel.1", 1, true}, {"flannel-v6.1", 1, true}, {"flannel.4096", 4096, true},
		{"flannel.01", 0, false}, {"flannel.", 0, false}, {"flannel.x", 0, false},
		{"flannel.0", 0, false}, {"flannel-wg", 0, false}, {"xflannel.1", 0, false}, {"flannel.-1", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vni, ok := flannelVNI(tc.name)
			if ok != tc.ok || (ok && vni != tc.vni) {
				t.Errorf("flannelVNI(%q) = %d, %v", tc.name, vni, ok)
			}
		})
	}
}
