package profile

import "github.com/nodereset/nodereset/pkg/host"

// rke2Dist differs from K3s in names, its supervisor port (9345) and its
// control plane, which runs as static pods (kube-apiserver, etcd) under
// the kubelet, not inside the supervisor. Canal writes /etc/cni/net.d.
var rke2Dist = rancherDist{
	name: "rke2", binary: "rke2", units: []string{"rke2-server.service", "rke2-agent.service"},
	dataDir: "/var/lib/rancher/rke2", etcDir: "/etc/rancher/rke2", envPrefix: "RKE2_",
	cniConfDir:      func(string) string { return "/etc/cni/net.d" },
	cniStateDirs:    []string{"/var/lib/cni", "/run/flannel", "/var/lib/calico", "/run/calico"},
	serviceCIDR:     "10.43.0.0/16",
	clusterCIDR:     "10.42.0.0/16",
	supervisorPorts: []int{9345, 6444},
}

// RKE2 returns the RKE2 profile with the host's real paths.
func RKE2(h *host.Host) (Profile, error) { return rke2Dist.build(h) }
