package profile

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

const kubesprayEtcdEnv = "/etc/etcd.env"

// Kubespray is kubeadm plus what Kubespray runs beside it: etcd as a host
// service (etcd.service, /etc/etcd.env, /etc/ssl/etcd, its data dir from
// ETCD_DATA_DIR) and calico-node as a host service where present.
// nodelocaldns runs as a DaemonSet; its dummy link is the network kinds'.
func Kubespray(h *host.Host) (Profile, error) {
	base, err := Kubeadm(h)
	if err != nil {
		return Profile{}, err
	}
	etcdDir := defaultEtcdDataDir
	env, err := readEnvFile(h, kubesprayEtcdEnv)
	switch {
	case err == nil:
		if d := env["ETCD_DATA_DIR"]; d != "" && filepath.IsAbs(d) {
			etcdDir = filepath.Clean(d)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return Profile{}, err
	}
	extra := Profile{
		Name:        "kubespray",
		Units:       []string{"etcd.service", "calico-node.service"},
		Executables: []string{"/usr/local/bin/etcd", "/usr/local/bin/calico-node"},
		Ports:       map[string][]int{"etcd": {2379, 2380, 2381}},
		RejoinPorts: []int{2379, 2380},
		RejoinFiles: []string{"/etc/ssl/etcd/ssl/ca.pem"},
		Paths: []paths.Spec{
			{Path: kubesprayEtcdEnv, Action: plan.ActionBackupRemove, Reason: "Kubespray's etcd service settings (backed up)"},
			{Path: "/etc/ssl/etcd", Action: plan.ActionBackupRemove, Reason: "Kubespray's etcd PKI (precious: backed up)"},
			{Path: etcdDir, Action: plan.ActionBackupEmpty, Reason: "data of Kubespray's etcd host service (precious: backed up)"},
		},
		// calico-node's state is a CNI hint, for the CNI kind to decide.
		CNIStateDirs: []string{"/var/lib/calico", "/run/calico"},
	}
	if etcdDir != defaultEtcdDataDir {
		extra.Evidence = []string{"etcd data dir " + etcdDir + " (ETCD_DATA_DIR in " + kubesprayEtcdEnv + ")"}
	}
	p := Merge(base, extra)
	p.Name = "kubespray"
	return p, nil
}
