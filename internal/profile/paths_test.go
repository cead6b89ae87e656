package profile

import (
	"reflect"
	"slices"
	"testing"

	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

func testHost(t *testing.T, name string) *host.Host {
	t.Helper()
	h, err := host.New("testdata/hosts/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDiscoverKubelet(t *testing.T) {
	for _, tc := range []struct {
		host string
		want Kubelet
	}{
		{"kubeadm", Kubelet{RootDir: "/var/lib/kubelet", Config: "/var/lib/kubelet/config.yaml",
			StaticPodPath: "/etc/kubernetes/manifests", RuntimeEndpoint: "/var/run/containerd/containerd.sock"}},
		// /etc/default/kubelet comes after kubeadm-flags.env on the
		// command line, so its --root-dir wins; the flag beats the config's
		// containerRuntimeEndpoint.
		{"kubeadm-custom", Kubelet{RootDir: "/data/kubelet", Config: "/var/lib/kubelet/config.yaml",
			StaticPodPath: "/etc/kubernetes/pods", RuntimeEndpoint: "/run/custom/containerd.sock"}},
		{"empty", Kubelet{RootDir: "/var/lib/kubelet", RuntimeEndpoint: "/run/containerd/containerd.sock"}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got, err := DiscoverKubelet(testHost(t, tc.host))
			if err != nil {
				t.Fatal(err)
			}
			got.Sources = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestEtcdDataDir(t *testing.T) {
	for _, tc := range []struct{ host, dir, want string }{
		{"kubeadm", "/etc/kubernetes/manifests", "/var/lib/etcd"},
		{"kubeadm-custom", "/etc/kubernetes/pods", "/data/etcd"}, // the hostPath, not the in-container flag
		{"kubeadm", "/nowhere", ""},
	} {
		t.Run(tc.host+tc.dir, func(t *testing.T) {
			got, err := EtcdDataDir(testHost(t, tc.host), tc.dir)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func specPaths(p Profile) map[string]plan.Action {
	out := map[string]plan.Action{}
	for _, s := range p.Paths {
		out[s.Path] = s.Action
	}
	return out
}

func TestKubeadmRealPaths(t *testing.T) {
	p, err := Kubeadm(testHost(t, "kubeadm-custom"))
	if err != nil {
		t.Fatal(err)
	}
	if p.KubeletRoot != "/data/kubelet" || !reflect.DeepEqual(p.StaticPodDirs, []string{"/etc/kubernetes/pods"}) {
		t.Errorf("kubelet root %q, static pod dirs %q", p.KubeletRoot, p.StaticPodDirs)
	}
	sp := specPaths(p)
	for path, act := range map[string]plan.Action{"/data/etcd": plan.ActionBackupEmpty, "/data/kubelet": plan.ActionEmpty,
		"/var/lib/kubelet": plan.ActionEmpty, "/etc/kubernetes": plan.ActionBackupEmpty} {
		if sp[path] != act {
			t.Errorf("path %s: action %q, want %q", path, sp[path], act)
		}
	}
	if _, ok := sp["/var/lib/etcd"]; ok {
		t.Error("default etcd dir planned although the manifest names /data/etcd")
	}
	if p.Paths[0].Keep[0] != "pods" {
		t.Errorf("/etc/kubernetes keeps %q, want the static pod dir pods", p.Paths[0].Keep)
	}
	if !reflect.DeepEqual(p.ServiceCIDRs, []string{"10.100.0.0/16", "fd00:100::/108"}) {
		t.Errorf("service CIDRs %q", p.ServiceCIDRs)
	}
	if !reflect.DeepEqual(p.CRISockets, []string{"/run/custom/containerd.sock"}) ||
		!reflect.DeepEqual(p.RuntimeStateDirs, []string{"/run/custom/io.containerd.runtime.v2.task/k8s.io"}) {
		t.Errorf("CRI %q, runtime state %q", p.CRISockets, p.RuntimeStateDirs)
	}
	if !slices.Contains(p.MountRoots, "/data/kubelet") || !slices.Contains(p.MountRoots, "/var/lib/kubelet") {
		t.Errorf("mount roots %q", p.MountRoots)
	}
}

func TestKubeadmDefaultsUnchanged(t *testing.T) {
	p, err := Kubeadm(testHost(t, "kubeadm"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Paths {
		got = append(got, s.Path)
	}
	want := []string{"/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers",
		"/run/kubernetes", "/run/secrets/kubernetes.io", "/var/lib/dockershim"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths %q\nwant %q", got, want)
	}
	if !reflect.DeepEqual(p.MountRoots, []string{"/var/lib/kubelet"}) || len(p.Units) != 6 || len(p.Executables) != 12 {
		t.Errorf("mount roots %q, %d units, %d executables", p.MountRoots, len(p.Units), len(p.Executables))
	}
}

func TestRancherDataDir(t *testing.T) {
	for _, tc := range []struct {
		name, host        string
		dist              rancherDist
		data, kubeletRoot string
	}{
		// config.yaml.d/90-data.yaml is read after config.yaml and wins;
		// kubelet-arg+ appends the root dir.
		{"k3s config.yaml.d", "k3s-custom", k3sDist, "/srv/k3s", "/data/kubelet"},
		// The unit's flag beats config.yaml and the env file.
		{"rke2 unit flag", "rke2-flag", rke2Dist, "/mnt/rke2", "/mnt/kubelet"},
		{"k3s defaults", "empty", k3sDist, "/var/lib/rancher/k3s", "/var/lib/kubelet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp, err := tc.dist.discover(testHost(t, tc.host))
			if err != nil {
				t.Fatal(err)
			}
			if rp.DataDir != tc.data || rp.Kubelet.RootDir != tc.kubeletRoot {
				t.Errorf("data dir %q, kubelet root %q; want %q, %q", rp.DataDir, rp.Kubelet.RootDir, tc.data, tc.kubeletRoot)
			}
		})
	}
}

func TestK3sProfile(t *testing.T) {
	p, err := K3s(testHost(t, "k3s-custom"))
	if err != nil {
		t.Fatal(err)
	}
	sp := specPaths(p)
	for path, act := range map[string]plan.Action{"/srv/k3s/server": plan.ActionBackupRemove, "/srv/k3s/agent": plan.ActionEmpty,
		"/etc/rancher/k3s": plan.ActionBackupEmpty, "/etc/rancher/node": plan.ActionBackupRemove,
		"/data/kubelet": plan.ActionEmpty, "/run/k3s": plan.ActionRemove} {
		if sp[path] != act {
			t.Errorf("path %s: action %q, want %q", path, sp[path], act)
		}
	}
	for path := range sp {
		if path == "/var/lib/rancher" || path == "/etc/rancher" || path == "/srv/k3s" || path == "/var/lib/rancher/k3s" {
			t.Errorf("shared parent or whole data dir %s planned", path)
		}
	}
	for _, exe := range []string{"/usr/local/bin/k3s", "/srv/k3s/data/abc123/bin/containerd-shim-runc-v2", "/srv/k3s/data/abc123/bin/containerd"} {
		if !slices.Contains(p.Executables, exe) {
			t.Errorf("executable %s missing from %q", exe, p.Executables)
		}
	}
	if !reflect.DeepEqual(p.StaticPodDirs, []string{"/srv/k3s/agent/pod-manifests"}) ||
		!reflect.DeepEqual(p.CRISockets, []string{"/run/k3s/containerd/containerd.sock"}) ||
		!reflect.DeepEqual(p.ServiceCIDRs, []string{"10.45.0.0/16"}) || p.CNIConfDir != "/srv/k3s/agent/etc/cni/net.d" {
		t.Errorf("static pods %q, CRI %q, service CIDRs %q, CNI conf %q", p.StaticPodDirs, p.CRISockets, p.ServiceCIDRs, p.CNIConfDir)
	}
	if !slices.Contains(p.RejoinFiles, "/srv/k3s/server/token") || !slices.Contains(p.RejoinPorts, 9345) {
		t.Errorf("rejoin files %q ports %v", p.RejoinFiles, p.RejoinPorts)
	}
}

func TestCheckDataDir(t *testing.T) {
	for d, ok := range map[string]bool{"/srv/k3s": true, "/var/lib/rancher": false, "/": false, "relative/dir": false} {
		t.Run(d, func(t *testing.T) {
			if err := checkDataDir(d); (err == nil) != ok {
				t.Errorf("checkDataDir(%q) = %v, want ok %v", d, err, ok)
			}
		})
	}
}

func TestKubesprayProfile(t *testing.T) {
	p, err := Kubespray(testHost(t, "kubespray"))
	if err != nil {
		t.Fatal(err)
	}
	sp := specPaths(p)
	for path, act := range map[string]plan.Action{"/etc/etcd.env": plan.ActionBackupRemove, "/etc/ssl/etcd": plan.ActionBackupRemove,
		"/data/etcd": plan.ActionBackupEmpty, "/srv/kubelet": plan.ActionEmpty, "/etc/kubernetes": plan.ActionBackupEmpty} {
		if sp[path] != act {
			t.Errorf("path %s: action %q, want %q", path, sp[path], act)
		}
	}
	if p.Name != "kubespray" || !slices.Contains(p.Units, "calico-node.service") || !slices.Contains(p.Units, "kubelet.service") {
		t.Errorf("name %q units %q", p.Name, p.Units)
	}
}

func TestRKE1AndRancherOwnOnlyTheirChildren(t *testing.T) {
	h := testHost(t, "empty")
	r1, _ := RKE1(h)
	ra, _ := Rancher(h)
	for _, p := range []Profile{r1, ra} {
		for _, s := range p.Paths {
			switch s.Path {
			case "/var/lib/rancher", "/etc/rancher", "/etc/cni", "/etc/kubernetes", "/opt":
				t.Errorf("%s owns the shared parent %s", p.Name, s.Path)
			}
		}
	}
	if specPaths(r1)["/opt/rke"] != plan.ActionBackupRemove || len(r1.DockerSockets) == 0 {
		t.Errorf("rke1: /opt/rke %q, docker sockets %q", specPaths(r1)["/opt/rke"], r1.DockerSockets)
	}
}
