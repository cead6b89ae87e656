package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// SpareNodeAnnotation on a ReplicaSet makes the harness's ReplicaSet
// controller replace its deleted pods with Ready pods on that node.
const SpareNodeAnnotation = "clustertest.nodereset.io/spare-node"

func createReadOnly(ctx context.Context, c kubernetes.Interface, user string) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "nodereset-test-readonly"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes", "pods"}, Verbs: []string{"get", "list"}}},
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "nodereset-test-readonly"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{})
	return err
}

// NodeSpec describes a node the harness creates.
type NodeSpec struct {
	Name        string
	Ready       bool
	Labels      map[string]string
	Annotations map[string]string
	// LeaseDuration of the node's Lease (the kubelet's default is 40 s).
	LeaseDuration time.Duration
	// NotReadyFor backdates the Ready condition of a node that is not Ready.
	NotReadyFor time.Duration
}

// CreateNode creates the Node, its status and, for a Ready node, its Lease.
func CreateNode(t testing.TB, c kubernetes.Interface, s NodeSpec) *corev1.Node {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: s.Labels, Annotations: s.Annotations},
		Spec: corev1.NodeSpec{ProviderID: "fake://" + s.Name}}
	n, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", s.Name, err)
	}
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}
	if !s.Ready {
		since := metav1.NewTime(now.Add(-s.NotReadyFor))
		cond = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown", LastHeartbeatTime: since, LastTransitionTime: since}
	}
	n.Status.Conditions = []corev1.NodeCondition{cond}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeHostName, Address: s.Name}}
	if n, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node %s status: %v", s.Name, err)
	}
	d := s.LeaseDuration
	if d == 0 {
		d = 40 * time.Second
	}
	renew := metav1.NewMicroTime(time.Now())
	if !s.Ready {
		renew = metav1.NewMicroTime(time.Now().Add(-s.NotReadyFor))
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(s.Name), LeaseDurationSeconds: ptr.To(int32(d / time.Second)), RenewTime: &renew}}
	if _, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("lease %s: %v", s.Name, err)
	}
	return n
}

// Namespace creates a namespace.
func Namespace(t testing.TB, c kubernetes.Interface, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// PodSpec is a minimal pod on a node.
func PodSpec(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, TerminationGracePeriodSeconds: ptr.To(int64(30)),
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// Owned makes the pod controlled by the object.
func Owned(p *corev1.Pod, kind, name string, uid string) *corev1.Pod {
	apiVersion := "apps/v1"
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: ptr.To(true)}}
	return p
}

// CreatePods creates the pods (in parallel) and marks them Running and Ready.
func CreatePods(t testing.TB, c kubernetes.Interface, pods ...*corev1.Pod) []*corev1.Pod {
	t.Helper()
	out := make([]*corev1.Pod, len(pods))
	errs := make([]error, len(pods))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = createRunning(context.Background(), c, p)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pod %s/%s: %v", pods[i].Namespace, pods[i].Name, err)
		}
	}
	return out
}

func createRunning(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) (*corev1.Pod, error) {
	return createStatus(ctx, c, p, corev1.ConditionTrue)
}

// createStatus creates a Running pod whose Ready condition is ready.
func createStatus(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, ready corev1.ConditionStatus) (*corev1.Pod, error) {
	p, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	if p.Status.Phase != "" && p.Status.Phase != corev1.PodPending {
		return p, nil // created finished on purpose
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: now}}
	return c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

// ReplicaSet creates a ReplicaSet (no controller runs it unless it has
// SpareNodeAnnotation) and returns it.
func ReplicaSet(t testing.TB, c kubernetes.Interface, ns, name string, replicas int32, labels map[string]string, spareNode string) *appsv1.ReplicaSet {
	t.Helper()
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}
	if spareNode != "" {
		rs.Annotations = map[string]string{SpareNodeAnnotation: spareNode}
	}
	rs, err := c.AppsV1().ReplicaSets(ns).Create(context.Background(), rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("replicaset %s/%s: %v", ns, name, err)
	}
	return rs
}

// DaemonSet creates a DaemonSet and returns it.
func DaemonSet(t testing.TB, c kubernetes.Interface, ns, name string, labels map[string]string) *appsv1.DaemonSet {
	t.Helper()
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}
	ds, err := c.AppsV1().DaemonSets(ns).Create(context.Background(), ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("daemonset %s/%s: %v", ns, name, err)
	}
	return ds
}

// Names returns "ns/name" of pods.
func Names(pods []*corev1.Pod) []string {
	var s []string
	for _, p := range pods {
		s = append(s, fmt.Sprintf("%s/%s", p.Namespace, p.Name))
	}
	return s
}
