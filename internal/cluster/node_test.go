package cluster

import (
	"os"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func fixtureNodes(t *testing.T) map[string]*corev1.Node {
	t.Helper()
	b, err := os.ReadFile("testdata/nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]metav1.ObjectMeta
	if err := yaml.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*corev1.Node{}
	for name, m := range meta {
		m.Name = name
		nodes[name] = &corev1.Node{ObjectMeta: m}
	}
	return nodes
}

func TestDetectAndRoles(t *testing.T) {
	nodes := fixtureNodes(t)
	for _, tc := range []struct {
		node    string
		etcdPod bool
		dist    Distribution
		roles   []Role
	}{
		{"kubeadm-cp", true, DistKubeadm, []Role{RoleControlPlane, RoleEtcd}},
		{"k3s-server", false, DistK3s, []Role{RoleControlPlane, RoleEtcd}},
		{"rke2-agent", false, DistRKE2, []Role{RoleWorker}},
		{"rke1-etcd", false, DistRKE1, []Role{RoleEtcd}},
		{"plain-worker", false, DistUnknown, []Role{RoleWorker}},
		{"lookalike", false, DistUnknown, []Role{RoleWorker}},
	} {
		t.Run(tc.node, func(t *testing.T) {
			n := nodes[tc.node]
			if d, ev := detectDistribution(n, tc.etcdPod); d != tc.dist {
				t.Errorf("distribution %s (%v), want %s", d, ev, tc.dist)
			}
			if r := roles(n, tc.etcdPod); !slices.Equal(r, tc.roles) {
				t.Errorf("roles %v, want %v", r, tc.roles)
			}
		})
	}
}

func TestReachability(t *testing.T) {
	now := time.Now()
	node := func(s corev1.ConditionStatus, since time.Duration) *corev1.Node {
		ts := metav1.NewTime(now.Add(-since))
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s, LastTransitionTime: ts, LastHeartbeatTime: ts}}}}
	}
	lease := func(age time.Duration) *coordinationv1.Lease {
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: ptr.To(metav1.NewMicroTime(now.Add(-age))), LeaseDurationSeconds: ptr.To(int32(40))}}
	}
	for _, tc := range []struct {
		name                 string
		n                    *corev1.Node
		l                    *coordinationv1.Lease
		unreachable, posting bool
	}{
		{"ready, fresh lease", node(corev1.ConditionTrue, time.Hour), lease(time.Second), false, true},
		{"ready, stale lease (kubelet stopped)", node(corev1.ConditionTrue, time.Hour), lease(5 * time.Minute), true, false},
		{"ready, lease past its duration but not unreachable yet", node(corev1.ConditionTrue, time.Hour), lease(50 * time.Second), false, false},
		{"unknown for long", node(corev1.ConditionUnknown, 10*time.Minute), lease(10 * time.Minute), true, false},
		{"not ready briefly", node(corev1.ConditionFalse, 5*time.Second), lease(time.Second), false, false},
		{"no condition, no lease", &corev1.Node{}, nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var info NodeInfo
			reachability(&info, tc.n, tc.l, now, time.Minute)
			if info.Unreachable != tc.unreachable || info.KubeletPosting != tc.posting {
				t.Errorf("unreachable=%v posting=%v, want %v %v (%+v)", info.Unreachable, info.KubeletPosting, tc.unreachable, tc.posting, info)
			}
		})
	}
}
