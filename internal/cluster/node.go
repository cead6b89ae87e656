package cluster

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
)

// Distribution is the installer that made the node, as its labels and
// annotations show.
type Distribution string

// The distributions told apart.
const (
	DistKubeadm Distribution = "kubeadm"
	DistK3s     Distribution = "k3s"
	DistRKE2    Distribution = "rke2"
	DistRKE1    Distribution = "rke1"
	DistUnknown Distribution = "unknown"
)

// Role is what the node runs.
type Role string

// The roles.
const (
	RoleWorker       Role = "worker"
	RoleControlPlane Role = "control-plane"
	RoleEtcd         Role = "etcd"
)

// NodeInfo is what preflight learnt about the Node.
type NodeInfo struct {
	Name         string       `json:"name"`
	UID          string       `json:"uid"`
	ProviderID   string       `json:"providerID,omitempty"`
	Distribution Distribution `json:"distribution"`
	Evidence     []string     `json:"evidence,omitempty"`
	Roles        []Role       `json:"roles"`
	// Ready is the Ready condition's status (True, False, Unknown, or
	// "" when there is none) and ReadySince when it last changed.
	Ready      corev1.ConditionStatus `json:"ready"`
	ReadySince time.Time              `json:"readySince,omitempty"`
	// LeaseAge is how long ago the kubelet renewed its Lease; -1 without one.
	LeaseAge      time.Duration `json:"leaseAge"`
	LeaseDuration time.Duration `json:"leaseDuration,omitempty"`
	Unreachable   bool          `json:"unreachable"`
	// KubeletPosting: Ready and a Lease renewed within its duration.
	KubeletPosting bool     `json:"kubeletPosting"`
	Unschedulable  bool     `json:"unschedulable"`
	PeerHosts      []string `json:"peerHosts,omitempty"`
	// EtcdClientURLs are the client URLs of every kubeadm etcd member
	// (from the etcd static pods), for the member removal.
	EtcdClientURLs []string `json:"etcdClientURLs,omitempty"`
}

// Has reports whether the node has role r.
func (n *NodeInfo) Has(r Role) bool {
	for _, x := range n.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Label and annotation keys read exactly (never by substring).
const (
	labelControlPlane    = "node-role.kubernetes.io/control-plane"
	labelMaster          = "node-role.kubernetes.io/master"
	labelEtcd            = "node-role.kubernetes.io/etcd"
	labelInstanceType    = "node.kubernetes.io/instance-type"
	annoK3sNodeArgs      = "k3s.io/node-args"
	annoRKE2NodeArgs     = "rke2.io/node-args"
	annoRKEExternalIP    = "rke.cattle.io/external-ip"
	annoRKEInternalIP    = "rke.cattle.io/internal-ip"
	annoKubeadmCRISocket = "kubeadm.alpha.kubernetes.io/cri-socket"
	// annoEtcdClientURLs is set by kubeadm on its etcd static pods.
	annoEtcdClientURLs = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
	// TaintOutOfService makes the control plane detach the volumes of a
	// node known to be off (non-graceful node shutdown).
	TaintOutOfService = "node.kubernetes.io/out-of-service"
)

// detectDistribution reads the node's labels and annotations, and whether
// kubeadm static pods (etcd, kube-apiserver…) run on it.
func detectDistribution(n *corev1.Node, kubeadmStaticPods bool) (Distribution, []string) {
	a, l := n.Annotations, n.Labels
	switch {
	case has(a, annoRKE2NodeArgs):
		return DistRKE2, []string{"annotation " + annoRKE2NodeArgs}
	case l[labelInstanceType] == "rke2":
		return DistRKE2, []string{"label " + labelInstanceType + "=rke2"}
	case has(a, annoK3sNodeArgs):
		return DistK3s, []string{"annotation " + annoK3sNodeArgs}
	case l[labelInstanceType] == "k3s":
		return DistK3s, []string{"label " + labelInstanceType + "=k3s"}
	case has(a, annoRKEExternalIP) || has(a, annoRKEInternalIP):
		return DistRKE1, []string{"annotation rke.cattle.io/{external,internal}-ip"}
	case has(a, annoKubeadmCRISocket):
		return DistKubeadm, []string{"annotation " + annoKubeadmCRISocket}
	case kubeadmStaticPods:
		return DistKubeadm, []string{"kubeadm static pods (" + annoEtcdClientURLs + " or component labels) on the node"}
	}
	return DistUnknown, nil
}

func has(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// roles classifies the node. etcdPod: a kubeadm etcd static pod runs on it.
func roles(n *corev1.Node, etcdPod bool) []Role {
	var r []Role
	if has(n.Labels, labelControlPlane) || has(n.Labels, labelMaster) {
		r = append(r, RoleControlPlane)
	}
	// K3s, RKE2 and RKE1 label etcd nodes "true".
	if n.Labels[labelEtcd] == "true" || etcdPod {
		r = append(r, RoleEtcd)
	}
	if len(r) == 0 {
		r = append(r, RoleWorker)
	}
	return r
}

// reachability fills the Ready and Lease fields. A node is unreachable
// when Ready has not been True for longer than after, or when its Lease was
// not renewed for longer than after (the node controller may be down too).
func reachability(info *NodeInfo, n *corev1.Node, lease *coordinationv1.Lease, now time.Time, after time.Duration) {
	info.LeaseAge = -1
	var heartbeat time.Time
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			info.Ready, info.ReadySince = c.Status, c.LastTransitionTime.Time
			heartbeat = c.LastHeartbeatTime.Time
		}
	}
	info.LeaseDuration = 40 * time.Second // the kubelet's default
	if lease != nil && lease.Spec.RenewTime != nil {
		info.LeaseAge = now.Sub(lease.Spec.RenewTime.Time)
		if d := lease.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
			info.LeaseDuration = time.Duration(*d) * time.Second
		}
	} else if !heartbeat.IsZero() {
		// No Lease (very old kubelets): the status heartbeat stands in.
		info.LeaseAge = now.Sub(heartbeat)
	}
	notReadyFor := time.Duration(0)
	if info.Ready != corev1.ConditionTrue {
		notReadyFor = after + 1 // no Ready condition at all: never reported
		if !info.ReadySince.IsZero() {
			notReadyFor = now.Sub(info.ReadySince)
		}
	}
	info.Unreachable = notReadyFor > after || info.LeaseAge > after
	info.KubeletPosting = info.Ready == corev1.ConditionTrue && info.LeaseAge >= 0 && info.LeaseAge <= info.LeaseDuration
}

// peerHosts are the addresses an etcd member of this node would advertise.
func peerHosts(n *corev1.Node) []string {
	hosts := []string{n.Name}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeHostName || a.Type == corev1.NodeExternalIP {
			hosts = appendUnique(hosts, a.Address)
		}
	}
	return hosts
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
