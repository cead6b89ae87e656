package docker

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"

	"github.com/nodereset/nodereset/pkg/plan"
)

// fixture is /containers/json?all=1 of the sandbox's dockerd (RKE1 node,
// dockershim pods, user decoys) plus a few hand-written edge cases.
func fixture(t *testing.T) []container.Summary {
	t.Helper()
	b, err := os.ReadFile("testdata/containers.json")
	if err != nil {
		t.Fatal(err)
	}
	var cs []container.Summary
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSelect(t *testing.T) {
	const kept = Group(-1)
	want := map[string]struct {
		group  Group
		source Source
	}{
		// The user's.
		"kind-control-plane":            {kept, ""}, // one io.kubernetes label is not the kubelet's three
		"k8s_web_web_default_notauid_0": {kept, ""},
		"k8s_notes":                     {kept, ""},
		"my-etcd":                       {kept, ""}, // RKE's label, not RKE's name
		"nginx-proxy":                   {kept, ""}, // RKE's name, neither label nor image
		"rancher":                       {kept, ""}, // the Rancher server, not its agent
		"webapp":                        {kept, ""},
		"userdb":                        {kept, ""}, // its link alias looks like a kubelet name
		"rke-cp-port-listener":          {kept, ""}, // RKE's name, image unknown (only an ID)
		// Would recreate the rest.
		"festive_hopper": {GroupControllers, SourceAgent},
		"agent_x":        {GroupControllers, SourceAgent},
		"kubelet":        {GroupControllers, SourceRKE},
		// Pods: pod network, then host network; containers before sandboxes.
		"debug-copy": {GroupPodContainers, SourceKubelet},
		"k8s_controller_nginx-ingress-controller-2xkq9_ingress-nginx_5b2c9d1e0f3a4b6c8d7e9f0a1b2c3d4e_0": {GroupPodContainers, SourceKubelet},
		"k8s_web_web-5d9c7b8f6-abcde_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0":                     {GroupPodContainers, SourceKubelet},
		"k8s_web_web-5d9c7b8f6-abcde_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_1":                     {GroupPodContainers, SourceKubelet},
		"k8s_POD_web-5d9c7b8f6-abcde_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0":                     {GroupPodSandboxes, SourceKubelet},
		"k8s_calico-node_canal-x7k2p_kube-system_0c5f2a9e-3b1d-4c6e-8f7a-1d2e3f4a5b6c_0":                 {GroupHostContainers, SourceKubelet},
		"k8s_kube-flannel_canal-x7k2p_kube-system_0c5f2a9e-3b1d-4c6e-8f7a-1d2e3f4a5b6c_0":                {GroupHostContainers, SourceKubelet},
		"k8s_etcd_etcd-node1_kube-system_9f86d081884c7d659a2feaa0c55ad015_3":                             {GroupHostContainers, SourceKubelet},
		"k8s_POD_canal-x7k2p_kube-system_0c5f2a9e-3b1d-4c6e-8f7a-1d2e3f4a5b6c_0":                         {GroupHostSandboxes, SourceKubelet},
		// RKE's system containers.
		"etcd":                     {GroupSystem, SourceRKE},
		"kube-apiserver":           {GroupSystem, SourceRKE},
		"kube-controller-manager":  {GroupSystem, SourceRKE},
		"kube-scheduler":           {GroupSystem, SourceRKE},
		"kube-proxy":               {GroupSystem, SourceRKE},
		"old-kube-proxy":           {GroupSystem, SourceRKE},
		"service-sidekick":         {GroupSystem, SourceRKE},
		"share-mnt":                {GroupSystem, SourceRKE},
		"rke-log-linker":           {GroupSystem, SourceRKE}, // no label: name and image
		"rke-worker-port-listener": {GroupSystem, SourceRKE}, // the same, from a private registry
	}
	cs := fixture(t)
	for _, all := range []bool{false, true} {
		items := selectItems(quiet(), "/var/run/docker.sock", cs, all)
		got := map[string]Detail{}
		for _, it := range items {
			d := it.Detail.(Detail)
			if it.Kind != plan.KindContainer || it.Action != plan.ActionRemove || it.Target != Target(d.Name) || it.Reason == "" {
				t.Errorf("malformed item %+v", it)
			}
			got[d.Name] = d
		}
		for i := 1; i < len(items); i++ {
			if items[i-1].Detail.(Detail).Group > items[i].Detail.(Detail).Group {
				t.Errorf("items not in group order: %s before %s", items[i-1].Target, items[i].Target)
			}
		}
		for _, c := range cs {
			n := name(c)
			w, ok := want[n]
			if !ok {
				t.Errorf("fixture container %s has no expectation", n)
				continue
			}
			t.Run(n, func(t *testing.T) {
				d, planned := got[n]
				switch {
				case w.group == kept && all:
					if !planned || d.Source != SourceAll || d.Group != GroupOther {
						t.Errorf("--all-containers: %s not planned as other: %+v", n, d)
					}
				case w.group == kept && planned:
					t.Errorf("user container %s planned: %+v", n, d)
				case w.group != kept && (!planned || d.Group != w.group || d.Source != w.source):
					t.Errorf("%s: planned %v as %+v, want group %d source %s", n, planned, d, w.group, w.source)
				}
			})
		}
	}
}

func TestSelectDetail(t *testing.T) {
	items := selectItems(quiet(), "/run/docker.sock", fixture(t), false)
	by := map[string]plan.Item{}
	for _, it := range items {
		by[it.Detail.(Detail).Name] = it
	}
	web := by["k8s_web_web-5d9c7b8f6-abcde_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_1"]
	d := web.Detail.(Detail)
	if d.Pod != "default/web-5d9c7b8f6-abcde" || d.Sandbox || d.HostNetwork || len(d.Volumes) != 1 || d.Socket != "/run/docker.sock" || len(d.ID) != 64 {
		t.Errorf("web container detail: %+v", d)
	}
	if !strings.Contains(web.Reason, "1 anonymous volume") {
		t.Errorf("reason does not name the volume: %q", web.Reason)
	}
	if sb := by["k8s_POD_canal-x7k2p_kube-system_0c5f2a9e-3b1d-4c6e-8f7a-1d2e3f4a5b6c_0"].Detail.(Detail); !sb.Sandbox || !sb.HostNetwork {
		t.Errorf("canal sandbox detail: %+v", sb)
	}
	if d.Key() == by["kubelet"].Detail.(Detail).Key() {
		t.Error("two containers share a key")
	}
}

func TestSelectImages(t *testing.T) {
	cs := fixture(t)
	shared := "sha256:2e5d06f78377c3dac6394e4e63d1400304b96799e0575abdde844e596d92a9fd"
	is := []image.Summary{
		{ID: shared, RepoTags: []string{"busybox:1.36", "rancher/hyperkube:v1.20.15-rancher1"}},
		{ID: "sha256:" + strings.Repeat("e", 64), RepoTags: []string{"registry.k8s.io/etcd:3.5.9-0"}},
		{ID: "sha256:" + strings.Repeat("b", 64), RepoTags: []string{"registry.example.com:5000/rancher/rke-tools:v0.1.80"}},
		{ID: "sha256:" + strings.Repeat("c", 64)},
	}
	got := map[string]ImageDetail{}
	for _, it := range selectImages("/run/docker.sock", cs, is, false) {
		if it.Kind != plan.KindImage || it.Action != plan.ActionRemove {
			t.Errorf("malformed item %+v", it)
		}
		got[it.Target] = it.Detail.(ImageDetail)
	}
	for target, used := range map[string]string{
		"docker:registry.k8s.io/etcd:3.5.9-0":                        "k8s_etcd_etcd-node1_kube-system_9f86d081884c7d659a2feaa0c55ad015_3",
		"docker:registry.example.com:5000/rancher/rke-tools:v0.1.80": "rke-worker-port-listener",
		"docker:sha256:" + strings.Repeat("c", 64):                   "agent_x", // untagged: by ID
	} {
		if d, ok := got[target]; !ok || len(d.UsedBy) != 1 || d.UsedBy[0] != used {
			t.Errorf("image %s: %+v (planned %v), want used by %s", target, d, ok, used)
		}
	}
	if len(got) != 3 {
		// The shared image runs user containers too; "f…" runs userdb and
		// "a…" the unverified rke-cp-port-listener: all kept.
		t.Errorf("planned %d images, want 3: %v", len(got), got)
	}
	if all := selectImages("/run/docker.sock", cs, is, true); len(all) != 6 {
		t.Errorf("--all-containers: %d images, want every used one (6)", len(all))
	}
}
