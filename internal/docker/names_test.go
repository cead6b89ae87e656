package docker

import "testing"

func TestParseShimName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ShimName
		ok   bool
	}{
		{"k8s_POD_web-1_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{"POD", "web-1", "default", "7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8", 0}, true},
		{"/k8s_etcd_etcd-node1.example_kube-system_9f86d081884c7d659a2feaa0c55ad015_12", ShimName{"etcd", "etcd-node1.example", "kube-system", "9f86d081884c7d659a2feaa0c55ad015", 12}, true},
		{"k8s_notes", ShimName{}, false},
		{"k8s_a_b_c", ShimName{}, false},
		{"k8s_web_web_default_notauid_0", ShimName{}, false},                                      // UID not hex
		{"k8s_web_Web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},         // upper case pod
		{"k8s_web_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_01", ShimName{}, false},        // attempt not canonical
		{"k8s_web_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_-1", ShimName{}, false},        // negative attempt
		{"k8s_web_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0_x", ShimName{}, false},       // seven fields
		{"K8s_web_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},         // prefix case
		{"k8s_-web_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},        // label starts with -
		{"k8s_web_web_default.ns_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},      // namespace is a label
		{"xk8s_web_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},        // not a prefix match
		{"my-k8s_POD_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},      // nor a substring
		{"k8s_web_web_default_7d1e0b3a_0", ShimName{}, false},                                     // UID too short
		{"k8s_web__default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false},            // empty pod
		{"/webapp/k8s_POD_web_default_7d1e0b3a-9c8f-4e2d-a1b0-c3d4e5f6a7b8_0", ShimName{}, false}, // a link alias
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ParseShimName(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseShimName(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if ok && got.Sandbox() != (got.Container == "POD") {
				t.Fatal("Sandbox disagrees with the container field")
			}
		})
	}
}

func TestImageRepo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rancher/hyperkube:v1.20.15-rancher1", "rancher/hyperkube"},
		{"docker.io/rancher/rke-tools:v0.1.80", "rancher/rke-tools"},
		{"registry.example.com:5000/rancher/rancher-agent:v2.7.1", "rancher/rancher-agent"},
		{"localhost/rancher/hyperkube", "rancher/hyperkube"},
		{"rancher/rancher-agent@sha256:" + "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd", "rancher/rancher-agent"},
		{"busybox", "library/busybox"},
		{"rancher/rancher:v2.6.9", "rancher/rancher"},
		{"mirror.local/library/rancher/rancher-agent:v2", "library/rancher/rancher-agent"}, // another path: not the agent
		{"sha256:" + "a0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", ""},
		{"Not A Ref", ""},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := ImageRepo(tc.in); got != tc.want {
				t.Fatalf("ImageRepo(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
