package sandbox

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// The texts planted on the node. They are close enough to what kubeadm
// writes for discovery code to parse them (static pod YAML, kubelet config),
// and fake wherever a real value would be secret or expensive (PEM bodies).

const nodeName = "sandbox-node"

const kubeletUnit = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

const kubeadmDropIn = `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

const etcdUnit = `[Unit]
Description=etcd key-value store (external etcd for kubeadm)
After=network.target

[Service]
ExecStart=/usr/local/bin/etcd --data-dir=/var/lib/etcd --listen-client-urls=https://127.0.0.1:2379
Restart=always

[Install]
WantedBy=multi-user.target
`

const sshUnit = `[Unit]
Description=OpenBSD Secure Shell server
After=network.target

[Service]
ExecStart=/usr/sbin/sshd -D
Restart=on-failure

[Install]
WantedBy=multi-user.target
Alias=sshd.service
`

// kube-watch is the user's own tool: its name and flags mention Kubernetes
// but nothing Kubernetes installed it.
const kubeWatchUnit = `[Unit]
Description=kube-watch: the operator's own cluster watcher
After=network.target

[Service]
ExecStart=/opt/tools/kube-watch --kubeconfig /etc/kubernetes/admin.conf --watch kube-apiserver
Restart=always

[Install]
WantedBy=multi-user.target
`

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
healthzPort: 10248
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`

const kubeadmFlags = `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"
`

// podmanConflist belongs to podman, which shares /etc/cni/net.d.
const podmanConflist = `{
  "cniVersion": "0.4.0",
  "name": "podman",
  "plugins": [
    {"type": "bridge", "bridge": "cni-podman0", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"},
    {"type": "tuning"}
  ]
}
`

// fakePEM is PEM framing around a body that names what it stands for.
func fakePEM(typ, what string) string {
	body := base64.StdEncoding.EncodeToString([]byte("nodesim fake " + what + " " + strings.Repeat("x", 48)))
	return fmt.Sprintf("-----BEGIN %s-----\n%s\n-----END %s-----\n", typ, body, typ)
}

func kubeconfig(user string) string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: %s
    server: https://10.0.0.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: %s
  name: %s@kubernetes
current-context: %s@kubernetes
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
`, b64(fakePEM("CERTIFICATE", "ca")), user, user, user, user,
		b64(fakePEM("CERTIFICATE", user)), b64(fakePEM("RSA PRIVATE KEY", user)))
}

// hostPathVol is one hostPath volume of a static pod.
type hostPathVol struct{ name, path string }

// staticPod renders a kubeadm-style static pod manifest.
func staticPod(name, image string, command []string, vols []hostPathVol) string {
	var s strings.Builder
	fmt.Fprintf(&s, `apiVersion: v1
kind: Pod
metadata:
  labels:
    component: %s
    tier: control-plane
  name: %s
  namespace: kube-system
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
  - name: %s
    image: %s
    command:
`, name, name, name, image)
	for _, c := range command {
		fmt.Fprintf(&s, "    - %s\n", c)
	}
	s.WriteString("    volumeMounts:\n")
	for _, v := range vols {
		fmt.Fprintf(&s, "    - mountPath: %s\n      name: %s\n", v.path, v.name)
	}
	s.WriteString("  volumes:\n")
	for _, v := range vols {
		typ := "DirectoryOrCreate"
		if strings.HasSuffix(v.path, ".conf") {
			typ = "FileOrCreate"
		}
		fmt.Fprintf(&s, "  - hostPath:\n      path: %s\n      type: %s\n    name: %s\n", v.path, typ, v.name)
	}
	return s.String()
}

// staticPods are the four control-plane manifests, by file name.
func staticPods() map[string]string {
	pki := hostPathVol{"k8s-certs", "/etc/kubernetes/pki"}
	return map[string]string{
		"etcd.yaml": staticPod("etcd", "registry.k8s.io/etcd:3.5.15-0",
			[]string{"etcd", "--data-dir=/var/lib/etcd", "--name=" + nodeName,
				"--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.10:2379",
				"--initial-advertise-peer-urls=https://10.0.0.10:2380"},
			[]hostPathVol{{"etcd-data", "/var/lib/etcd"}, {"etcd-certs", "/etc/kubernetes/pki/etcd"}}),
		"kube-apiserver.yaml": staticPod("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.31.0",
			[]string{"kube-apiserver", "--advertise-address=10.0.0.10", "--secure-port=6443",
				"--etcd-servers=https://127.0.0.1:2379", "--service-cluster-ip-range=10.96.0.0/12"},
			[]hostPathVol{pki}),
		"kube-controller-manager.yaml": staticPod("kube-controller-manager", "registry.k8s.io/kube-controller-manager:v1.31.0",
			[]string{"kube-controller-manager", "--kubeconfig=/etc/kubernetes/controller-manager.conf"},
			[]hostPathVol{pki, {"kubeconfig", "/etc/kubernetes/controller-manager.conf"}}),
		"kube-scheduler.yaml": staticPod("kube-scheduler", "registry.k8s.io/kube-scheduler:v1.31.0",
			[]string{"kube-scheduler", "--kubeconfig=/etc/kubernetes/scheduler.conf"},
			[]hostPathVol{{"kubeconfig", "/etc/kubernetes/scheduler.conf"}}),
	}
}
