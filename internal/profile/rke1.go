package profile

import (
	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// RKE1 runs every component as a Docker container (kubelet, etcd,
// kube-apiserver... from rancher/hyperkube and rancher/mirrored-* images),
// so it has no units and no host binaries: its processes are known by
// name and exact port, its containers by the Docker socket (the container
// kinds decide which containers are RKE's).
func RKE1(h *host.Host) (Profile, error) {
	_ = h // RKE1's paths are fixed by rke; nothing on the host moves them
	return Profile{
		Name:        "rke1",
		KubeletRoot: defaultKubeletRoot,
		Ports: map[string][]int{
			"kubelet":                 {10250, 10248},
			"kube-apiserver":          {6443},
			"kube-controller-manager": {10257, 10252},
			"kube-scheduler":          {10259, 10251},
			"kube-proxy":              {10256, 10249},
			"etcd":                    {2379, 2380},
		},
		MountRoots:    []string{defaultKubeletRoot},
		DockerSockets: []string{"/run/docker.sock"},
		RejoinPorts:   []int{10250, 6443, 2379, 2380},
		RejoinFiles:   []string{"/etc/kubernetes/ssl/kube-ca.pem", "/etc/kubernetes/ssl/kube-node.pem"},
		CNIConfDir:    "/etc/cni/net.d",
		CNIStateDirs:  []string{"/var/lib/cni", "/run/flannel", "/var/lib/calico", "/run/calico"},
		ServiceCIDRs:  []string{"10.43.0.0/16"},
		Paths: []paths.Spec{
			{Path: "/etc/kubernetes/ssl", Action: plan.ActionBackupRemove, Reason: "RKE's certificates and kubeconfigs (precious: backed up)"},
			{Path: "/etc/kubernetes/.tmp", Action: plan.ActionRemove, Reason: "RKE's temporary cert files"},
			// etcd snapshots: the only copy of the cluster's data once
			// the cluster is gone. Backed up, never silently deleted.
			{Path: "/opt/rke", Action: plan.ActionBackupRemove, Reason: "RKE etcd snapshots (precious: backed up)"},
			{Path: "/var/lib/etcd", Action: plan.ActionBackupEmpty, Reason: "data of RKE's etcd container (precious: backed up)"},
			{Path: "/var/lib/rancher/rke/log", Action: plan.ActionRemove, Reason: "RKE's container log links"},
			{Path: defaultKubeletRoot, Action: plan.ActionEmpty, Reason: "kubelet root dir"},
			{Path: "/var/log/pods", Action: plan.ActionEmpty, Reason: "pod logs written by the kubelet"},
			{Path: "/var/log/containers", Action: plan.ActionEmpty, Reason: "container log links written by the kubelet"},
			{Path: "/var/log/kube-audit", Action: plan.ActionRemove, Reason: "RKE's kube-apiserver audit log"},
			{Path: "/run/secrets/kubernetes.io", Action: plan.ActionRemove, Reason: "service account token dir"},
		},
	}, nil
}
