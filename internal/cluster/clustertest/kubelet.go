package clustertest

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Sim plays, for the nodes and namespaces of one test, what the kubelet
// and the controller manager would do:
//   - on each node it runs (Run), a fake kubelet renews the Lease, posts
//     the Ready heartbeat and completes graceful deletions (delete with
//     grace 0 once a pod has a deletionTimestamp); nodes it does not run
//     get nothing, so a drain waiting on them really hangs;
//   - in each namespace it manages, PodDisruptionBudget status as the
//     disruption controller computes it, and replacement pods for
//     ReplicaSets carrying SpareNodeAnnotation.
type Sim struct {
	c          kubernetes.Interface
	mu         sync.Mutex
	nodes      map[string]bool
	namespaces map[string]bool
	cancel     context.CancelFunc
	done       chan struct{}
	interval   time.Duration
	// born is when each replacement pod was created: it turns Ready
	// startDelay later, as a real pod takes time to start.
	born map[types.UID]time.Time
}

const startDelay = 500 * time.Millisecond

// NewSim starts the loop; it stops at the end of the test.
func NewSim(t testing.TB, c kubernetes.Interface) *Sim {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{c: c, nodes: map[string]bool{}, namespaces: map[string]bool{}, cancel: cancel, done: make(chan struct{}), interval: 100 * time.Millisecond, born: map[types.UID]time.Time{}}
	go s.loop(ctx)
	t.Cleanup(func() { s.cancel(); <-s.done })
	return s
}

// Run starts the fake kubelet of node.
func (s *Sim) Run(node string) { s.mu.Lock(); s.nodes[node] = true; s.mu.Unlock() }

// Stop stops the fake kubelet of node, as a host reset does.
func (s *Sim) Stop(node string) { s.mu.Lock(); delete(s.nodes, node); s.mu.Unlock() }

// Manage plays the controllers in namespace ns.
func (s *Sim) Manage(ns string) { s.mu.Lock(); s.namespaces[ns] = true; s.mu.Unlock() }

func (s *Sim) loop(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		s.mu.Lock()
		nodes, nss := maps.Clone(s.nodes), maps.Clone(s.namespaces)
		s.mu.Unlock()
		for n := range nodes {
			s.kubelet(ctx, n)
		}
		for ns := range nss {
			s.replicaSets(ctx, ns)
			s.budgets(ctx, ns)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Sim) kubelet(ctx context.Context, node string) {
	if l, err := s.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{}); err == nil {
		l.Spec.RenewTime = ptr.To(metav1.NewMicroTime(time.Now()))
		_, _ = s.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
	}
	pods, err := s.c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			continue
		}
		uid := p.UID
		_ = s.c.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
	}
}

// replicaSets recreates the missing pods of annotated ReplicaSets on their
// spare node, Running and Ready.
func (s *Sim) replicaSets(ctx context.Context, ns string) {
	rss, err := s.c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	pods, err := s.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, rs := range rss.Items {
		spare := rs.Annotations[SpareNodeAnnotation]
		if spare == "" || rs.Spec.Replicas == nil {
			continue
		}
		have := 0
		for _, p := range pods.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID && p.DeletionTimestamp == nil {
				have++
				if t, ok := s.born[p.UID]; ok && time.Since(t) > startDelay {
					delete(s.born, p.UID)
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
					_, _ = s.c.CoreV1().Pods(ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{})
				}
			}
		}
		for i := have; i < int(*rs.Spec.Replicas); i++ {
			p := PodSpec(ns, "", spare, rs.Spec.Template.Labels)
			p.GenerateName = rs.Name + "-"
			Owned(p, "ReplicaSet", rs.Name, string(rs.UID))
			if np, err := createStatus(ctx, s.c, p, corev1.ConditionFalse); err == nil {
				s.born[np.UID] = time.Now()
			}
		}
	}
}

// budgets computes PodDisruptionBudget status like the disruption
// controller: expected pods from the owners' replicas, healthy = Ready,
// not deleting and not just disrupted by an eviction.
func (s *Sim) budgets(ctx context.Context, ns string) {
	pdbs, err := s.c.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pdbs.Items) == 0 {
		return
	}
	pods, err := s.c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range pdbs.Items {
		b := &pdbs.Items[i]
		st := computeStatus(ctx, s.c, b, pods.Items)
		if st.ObservedGeneration == b.Status.ObservedGeneration && st.DisruptionsAllowed == b.Status.DisruptionsAllowed &&
			st.CurrentHealthy == b.Status.CurrentHealthy && st.DesiredHealthy == b.Status.DesiredHealthy &&
			st.ExpectedPods == b.Status.ExpectedPods && len(st.DisruptedPods) == len(b.Status.DisruptedPods) {
			continue // no write: keeps resourceVersions still
		}
		b.Status = st
		if _, err := s.c.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			continue
		}
	}
}

func computeStatus(ctx context.Context, c kubernetes.Interface, b *policyv1.PodDisruptionBudget, pods []corev1.Pod) policyv1.PodDisruptionBudgetStatus {
	sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
	if err != nil {
		return b.Status
	}
	disrupted := map[string]metav1.Time{}
	healthy, matching := 0, 0
	owners := map[string]int32{}
	for _, p := range pods {
		if !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		matching++
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.Kind == "ReplicaSet" {
			if _, ok := owners[ref.Name]; !ok {
				if rs, err := c.AppsV1().ReplicaSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil && rs.Spec.Replicas != nil {
					owners[ref.Name] = *rs.Spec.Replicas
				}
			}
		}
		if t, ok := b.Status.DisruptedPods[p.Name]; ok && p.DeletionTimestamp == nil {
			disrupted[p.Name] = t
			continue
		}
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && ready(&p) {
			healthy++
		}
	}
	expected := int32(matching)
	if len(owners) > 0 {
		expected = 0
		for _, r := range owners {
			expected += r
		}
	}
	desired := expected
	switch {
	case b.Spec.MaxUnavailable != nil:
		desired = expected - int32(b.Spec.MaxUnavailable.IntValue())
	case b.Spec.MinAvailable != nil:
		desired = int32(b.Spec.MinAvailable.IntValue())
	}
	return policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: b.Generation, DisruptedPods: disrupted,
		DisruptionsAllowed: max(0, int32(healthy)-desired), CurrentHealthy: int32(healthy),
		DesiredHealthy: max(0, desired), ExpectedPods: expected,
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
