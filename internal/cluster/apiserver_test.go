package cluster

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/nodereset/nodereset/internal/cluster/clustertest"
)

// The tests in *_apiserver_test.go files run against a real kube-apiserver
// and etcd on loopback (clustertest), started once for the test binary.
var cluster clustertest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// recorder is an Observer that keeps every blocked note.
type recorder struct {
	mu      sync.Mutex
	blocked []string
	steps   []StepResult
}

func (r *recorder) Step(s StepResult) { r.mu.Lock(); r.steps = append(r.steps, s); r.mu.Unlock() }
func (r *recorder) Drain(p DrainProgress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range p.Blocked {
		r.blocked = append(r.blocked, b.Pod+": "+b.Note)
	}
}

func (r *recorder) sawBlocked(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.blocked {
		if strings.Contains(b, sub) {
			return true
		}
	}
	return false
}

// testOptions are fast but still deliberate settings.
func testOptions(node string, mode Mode) Options {
	o := Defaults()
	o.Node, o.Mode = node, mode
	o.DrainTimeout = 20 * time.Second
	o.EvictRetryDelay = 200 * time.Millisecond
	o.PollInterval = 100 * time.Millisecond
	o.UnreachableAfter = 30 * time.Second
	o.VolumeDetachTimeout = 5 * time.Second
	o.DeleteTimeout = 10 * time.Second
	return o
}

func run(t *testing.T, c kubernetes.Interface, o Options) (*Plan, *Report, error) {
	t.Helper()
	r, err := New(c, "test", o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Plan(context.Background())
	if err != nil {
		return nil, nil, err
	}
	rep, err := r.Apply(context.Background(), p)
	return p, rep, err
}

func step(t *testing.T, rep *Report, name string) StepResult {
	t.Helper()
	for _, s := range rep.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q in %+v", name, rep.Steps)
	return StepResult{}
}

func podExists(t *testing.T, c kubernetes.Interface, ns, name string) bool {
	t.Helper()
	_, err := c.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func pdb(t *testing.T, c kubernetes.Interface, ns, name string, maxUnavailable int, sel map[string]string) {
	t.Helper()
	b := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(int32(maxUnavailable))), Selector: &metav1.LabelSelector{MatchLabels: sel}}}
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// rsPods creates a ReplicaSet and n of its pods on node.
func rsPods(t *testing.T, c kubernetes.Interface, ns, name, node string, n int, spare string) []*corev1.Pod {
	t.Helper()
	lbl := map[string]string{"app": name}
	rs := clustertest.ReplicaSet(t, c, ns, name, int32(n), lbl, spare)
	var pods []*corev1.Pod
	for i := range n {
		p := clustertest.PodSpec(ns, name+"-"+strconv.Itoa(i), node, lbl)
		pods = append(pods, clustertest.Owned(p, "ReplicaSet", rs.Name, string(rs.UID)))
	}
	return clustertest.CreatePods(t, c, pods...)
}

func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
