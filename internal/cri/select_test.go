package cri

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rt "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodereset/nodereset/pkg/host"
)

func TestKubeletPod(t *testing.T) {
	kub := map[string]string{LabelPodName: "web", LabelPodNamespace: "default", LabelPodUID: "u1"}
	md := &rt.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"}
	tests := []struct {
		name   string
		labels map[string]string
		md     *rt.PodSandboxMetadata
		want   bool
	}{
		{"kubelet", kub, md, true},
		{"no labels (another CRI client)", nil, md, false},
		{"uid missing", map[string]string{LabelPodName: "web", LabelPodNamespace: "default"}, md, false},
		{"labels disagree with metadata", kub, &rt.PodSandboxMetadata{Name: "web", Namespace: "other", Uid: "u1"}, false},
		{"no metadata", kub, nil, false},
		{"label key only similar", map[string]string{"io.kubernetes.pod.name.x": "web", LabelPodNamespace: "default", LabelPodUID: "u1"}, md, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kubeletPod(tc.labels, tc.md); got != tc.want {
				t.Errorf("kubeletPod = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKubeletContainer(t *testing.T) {
	l := map[string]string{LabelContainerName: "app", LabelPodName: "web", LabelPodNamespace: "default", LabelPodUID: "u1"}
	tests := []struct {
		name string
		md   *rt.ContainerMetadata
		l    map[string]string
		want bool
	}{
		{"kubelet", &rt.ContainerMetadata{Name: "app"}, l, true},
		{"name differs", &rt.ContainerMetadata{Name: "other"}, l, false},
		{"no pod labels", &rt.ContainerMetadata{Name: "app"}, map[string]string{LabelContainerName: "app"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kubeletContainer(tc.l, tc.md); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPodClass(t *testing.T) {
	tests := []struct {
		name              string
		labels, ann       map[string]string
		static, daemonSet bool
	}{
		{"plain", nil, nil, false, false},
		{"static from file", nil, map[string]string{AnnotationConfigSource: "file"}, true, false},
		{"static from http", nil, map[string]string{AnnotationConfigSource: "http"}, true, false},
		{"api pod", nil, map[string]string{AnnotationConfigSource: "api"}, false, false},
		{"mirror", nil, map[string]string{AnnotationConfigMirror: "h"}, true, false},
		{"daemonset", map[string]string{LabelTemplateGeneration: "3", LabelRevisionHash: "abc"}, nil, false, true},
		{"statefulset", map[string]string{LabelRevisionHash: "abc", LabelStatefulSetPod: "db-0", LabelTemplateGeneration: "1"}, nil, false, false},
		{"revision hash alone", map[string]string{LabelRevisionHash: "abc"}, nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := staticPod(tc.ann); got != tc.static {
				t.Errorf("static = %v, want %v", got, tc.static)
			}
			if got := daemonSetPod(tc.labels); got != tc.daemonSet {
				t.Errorf("daemonSet = %v, want %v", got, tc.daemonSet)
			}
		})
	}
}

func TestPodOrder(t *testing.T) {
	ds := []PodDetail{
		{Namespace: "kube-system", Name: "etcd-n", HostNetwork: true, Static: true, SandboxID: "1"},
		{Namespace: "kube-system", Name: "kube-flannel-ds-x", HostNetwork: true, DaemonSet: true, SandboxID: "2"},
		{Namespace: "default", Name: "web", SandboxID: "3"},
		{Namespace: "kube-system", Name: "coredns", SandboxID: "4"},
		{Namespace: "default", Name: "web", SandboxID: "0"},
		{Namespace: "kube-system", Name: "kube-proxy-a", HostNetwork: true, DaemonSet: true, SandboxID: "5"},
		{Namespace: "default", Name: "static-pod-net", Static: true, SandboxID: "6"},
	}
	sortPods(ds)
	var got []string
	for _, d := range ds {
		got = append(got, d.Name+"#"+d.SandboxID)
	}
	want := []string{"web#0", "web#3", "coredns#4", "static-pod-net#6", "kube-flannel-ds-x#2", "kube-proxy-a#5", "etcd-n#1"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v\nwant  %v", got, want)
	}
}

func TestPodReason(t *testing.T) {
	tests := []struct {
		d    PodDetail
		want string
	}{
		{PodDetail{Kubelet: true, Static: true, Source: "file", HostNetwork: true, Containers: []string{"a"}, State: "SANDBOX_READY"},
			"static pod (kubernetes.io/config.source=file), host network, 1 container, ready on unix:///s"},
		{PodDetail{Kubelet: true, DaemonSet: true, HostNetwork: true},
			"DaemonSet pod (labels pod-template-generation and controller-revision-hash), host network on unix:///s"},
		{PodDetail{Kubelet: true, Containers: []string{"a", "b"}, State: "SANDBOX_NOTREADY"},
			"kubelet pod (io.kubernetes.pod.* labels), pod network, 2 containers, notready on unix:///s"},
		{PodDetail{}, "not created by the kubelet (no io.kubernetes.pod.* labels); removed because of --all-containers, pod network on unix:///s"},
	}
	for _, tc := range tests {
		t.Run(tc.want[:12], func(t *testing.T) {
			if got := podReason(tc.d, "unix:///s"); got != tc.want {
				t.Errorf("reason %q\nwant   %q", got, tc.want)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"unix:///run/containerd/containerd.sock", "/run/containerd/containerd.sock", ""},
		{"/var/run/crio/crio.sock", "/var/run/crio/crio.sock", ""},
		{"unix:///run//x/../k3s.sock", "/run/k3s.sock", ""},
		{"tcp://10.0.0.1:1234", "", "only unix sockets"},
		{"npipe:////./pipe/x", "", "only unix sockets"},
		{"run/containerd.sock", "", "absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseEndpoint(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestFlagsFileEndpoints(t *testing.T) {
	tests := []struct{ file, want string }{
		{"kubeadm-flags.env", "unix:///var/run/containerd/containerd.sock"},
		{"flags-spaced.env", "unix:///run/crio/crio.sock"},
		{"config-endpoint.yaml", ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(flagsFileEndpoints(b), " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The endpoints of a host: profile sockets, the kubelet's flags file and
// config, deduplicated through the /var/run -> /run link.
func TestEndpoints(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "var/lib/kubelet"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(os.Symlink("../run", filepath.Join(root, "var/run")))
	for src, dst := range map[string]string{"kubeadm-flags.env": "kubeadm-flags.env", "config-endpoint.yaml": "config.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", src))
		must(err)
		must(os.WriteFile(filepath.Join(root, "var/lib/kubelet", dst), b, 0o644))
	}
	h, err := host.New(root)
	must(err)
	r := &runtime{opts: Options{Sockets: []string{"/run/containerd/containerd.sock"}, Explicit: []string{"unix:///run/crio/crio.sock"},
		KubeletRoot: "/var/lib/kubelet"}.withDefaults()}
	eps, err := r.endpoints(h)
	must(err)
	var got []string
	for _, e := range eps {
		s := e.HostPath
		if e.Explicit {
			s += "!"
		}
		got = append(got, s)
	}
	want := "/run/crio/crio.sock! /run/containerd/containerd.sock /run/k3s/containerd/containerd.sock"
	if strings.Join(got, " ") != want {
		t.Errorf("endpoints %q, want %q", strings.Join(got, " "), want)
	}
	if eps[1].Path != filepath.Join(root, "run/containerd/containerd.sock") {
		t.Errorf("dial path %s", eps[1].Path)
	}
}

func TestGraceSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{300 * time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, 30 * time.Second: 30} {
		if got := graceSeconds(d); got != want {
			t.Errorf("graceSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
