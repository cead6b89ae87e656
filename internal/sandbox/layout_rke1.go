package sandbox

import (
	"github.com/nodereset/nodereset/pkg/plan"
)

// rke1Merged is a Docker container's root: RKE1 runs every component in
// a container, so host paths do not name their binaries.
const rke1Merged = "/var/lib/docker/overlay2/3f2a/merged"

func rke1Procs() []procSpec {
	return []procSpec{
		{exe: rke1Merged + "/usr/local/bin/kubelet", ports: []int{10250, 10248}, argv: []string{"kubelet", "--root-dir=/var/lib/kubelet"}},
		{exe: rke1Merged + "/usr/local/bin/kube-apiserver", ports: []int{6443}, argv: []string{"kube-apiserver"}},
		{exe: rke1Merged + "/usr/local/bin/etcd", ports: []int{2379, 2380}, ignoreTerm: true, argv: []string{"etcd"}},
	}
}

// layoutRKE1 is an RKE1 node: certificates in /etc/kubernetes/ssl, etcd
// snapshots in /opt/rke (backed up, never silently deleted), RKE's log
// links, the kubelet's pods.
func layoutRKE1(b *builder, pods, _ int) {
	layoutHostBasics(b)
	layoutRancherDecoys(b)
	for _, c := range []string{"kube-ca", "kube-node", "kube-apiserver", "kube-etcd-10-0-0-10"} {
		b.file("/etc/kubernetes/ssl/"+c+".pem", fakePEM("CERTIFICATE", c), 0o644)
		b.file("/etc/kubernetes/ssl/"+c+"-key.pem", fakePEM("RSA PRIVATE KEY", c), 0o600)
	}
	b.file("/etc/kubernetes/ssl/kubecfg-kube-node.yaml", kubeconfig("kube-node"), 0o600)
	b.expect(plan.KindPath, "/etc/kubernetes/ssl")
	// Not RKE's: a user's file beside ssl in /etc/kubernetes.
	b.decoyFile("/etc/kubernetes/README.local", "notes about this node\n")
	b.file("/opt/rke/etcd-snapshots/2024-01-01T00:00:00Z_etcd.zip", pseudoRandom("rke-snapshot", 8192), 0o600)
	b.expect(plan.KindPath, "/opt/rke")
	b.decoyFile("/opt/tools/backup.sh", "#!/bin/sh\n")
	b.file("/var/lib/etcd/member/snap/db", pseudoRandom("rke1-etcd", 8192), 0o600)
	b.expect(plan.KindPath, "/var/lib/etcd")
	b.link("/var/lib/rancher/rke/log/kubelet_3f2a.log", "/var/lib/docker/containers/3f2a/3f2a-json.log")
	b.file("/var/lib/docker/containers/3f2a/3f2a-json.log", "{}\n", 0o640)
	b.expect(plan.KindPath, "/var/lib/rancher/rke/log")
	layoutKubeletPods(b, "/var/lib/kubelet", pods)
}
