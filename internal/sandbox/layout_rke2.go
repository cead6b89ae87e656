package sandbox

import (
	"github.com/nodereset/nodereset/pkg/plan"
)

const (
	rke2Data    = "/var/lib/rancher/rke2"
	rke2Version = "v1.31.1-rke2r1"
	// rke2Snapshot is a containerd snapshot: the control plane's binaries
	// live in images, so only name and exact port identify them.
	rke2Snapshot = rke2Data + "/agent/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs"
)

const rke2ServerUnit = `[Unit]
Description=Rancher Kubernetes Engine v2 (server)
Wants=network-online.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/usr/local/lib/systemd/system/rke2-server.env
ExecStart=/usr/local/bin/rke2 server
Restart=always

[Install]
WantedBy=multi-user.target
`

func rke2Procs() []procSpec {
	bin := rke2Data + "/data/" + rke2Version + "/bin/"
	return []procSpec{
		{exe: "/usr/local/bin/rke2", ports: []int{9345}, argv: []string{"/usr/local/bin/rke2", "server"}},
		{exe: bin + "kubelet", ports: []int{10250, 10248}, argv: []string{"kubelet", "--root-dir=/var/lib/kubelet"}},
		{exe: bin + "containerd", argv: []string{"containerd", "-c", rke2Data + "/agent/etc/containerd/config.toml"}},
		{exe: rke2Snapshot + "/usr/local/bin/kube-apiserver", ports: []int{6443}, argv: []string{"kube-apiserver", "--secure-port=6443"}},
		{exe: rke2Snapshot + "/usr/local/bin/etcd", ports: []int{2379, 2380}, ignoreTerm: true, argv: []string{"etcd",
			"--data-dir=" + rke2Data + "/server/db/etcd"}},
	}
}

// layoutRKE2 is an RKE2 server with a K3s install's leftovers beside it:
// reset with --profile rke2 must leave every K3s file alone.
func layoutRKE2(b *builder, pods, _ int) {
	plantRKE2(b, pods)
	b.decoyFile("/etc/rancher/k3s/k3s.yaml", kubeconfig("k3s-leftover"))
	b.decoyFile("/etc/rancher/k3s/config.yaml", "token: from-an-earlier-k3s\n")
	b.decoyFile("/var/lib/rancher/k3s/server/db/state.db", pseudoRandom("k3s-sqlite", 4096))
	b.decoyFile("/var/lib/rancher/k3s/server/token", "K10old::server:old\n")
	b.decoyFile("/var/lib/rancher/k3s/agent/client-kubelet.crt", fakePEM("CERTIFICATE", "k3s-old-kubelet"))
}

func plantRKE2(b *builder, pods int) {
	layoutHostBasics(b)
	layoutRancherDecoys(b)
	b.unit("/usr/local/lib/systemd/system/rke2-server.service", rke2ServerUnit)
	b.file("/usr/local/lib/systemd/system/rke2-server.env", "HOME=/root\n", 0o644)
	b.expect(plan.KindService, "rke2-server.service")
	b.decoyFile("/etc/rancher/rke2/config.yaml", "cni: canal\n")
	b.file("/etc/rancher/rke2/rke2.yaml", kubeconfig("default"), 0o600)
	b.expect(plan.KindPath, "/etc/rancher/rke2")
	b.file("/etc/rancher/node/password", "fedcba9876543210\n", 0o600)
	b.expect(plan.KindPath, "/etc/rancher/node")
	plantRancherData(b, rke2Data, "rke2")
	b.link(rke2Data+"/bin", rke2Data+"/data/"+rke2Version+"/bin")
	for _, name := range []string{"etcd.yaml", "kube-apiserver.yaml"} {
		p := rke2Data + "/agent/pod-manifests/" + name
		b.file(p, staticPods()[name], 0o600)
		b.expect(plan.KindStaticPod, p)
	}
	b.file("/etc/cni/net.d/10-canal.conflist", `{"name":"k8s-pod-network","cniVersion":"1.0.0","plugins":[{"type":"calico"}]}`, 0o644)
	b.expect(plan.KindCNIFile, "/etc/cni/net.d/10-canal.conflist")
	layoutKubeletPods(b, "/var/lib/kubelet", pods)
}
