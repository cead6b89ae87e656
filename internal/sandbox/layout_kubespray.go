package sandbox

import (
	"github.com/nodereset/nodereset/pkg/plan"
)

// layoutKubespray is kubeadm's node plus Kubespray's etcd host service
// settings and PKI (its etcd.service and /var/lib/etcd are in the kubeadm
// layout already).
func layoutKubespray(b *builder, pods, volumes int) {
	buildLayout(b, pods, volumes)
	b.file("/etc/etcd.env", "ETCD_DATA_DIR=/var/lib/etcd\nETCD_NAME=etcd1\nETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:2379\n", 0o640)
	b.expect(plan.KindPath, "/etc/etcd.env")
	for _, f := range []string{"ca.pem", "admin-node1.pem", "member-node1.pem"} {
		b.file("/etc/ssl/etcd/ssl/"+f, fakePEM("CERTIFICATE", "kubespray-"+f), 0o640)
	}
	b.expect(plan.KindPath, "/etc/ssl/etcd")
	// The rest of /etc/ssl is the host's.
	b.decoyFile("/etc/ssl/certs/local-ca.pem", fakePEM("CERTIFICATE", "host-local-ca"))
}
