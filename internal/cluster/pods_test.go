package cluster

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestPodNote(t *testing.T) {
	ctl := []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web", Controller: ptr.To(true)}}
	ds := []metav1.OwnerReference{{Kind: "DaemonSet", Name: "agent", Controller: ptr.To(true)}}
	empty := []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	for _, tc := range []struct {
		name    string
		pod     corev1.Pod
		evicted bool
		o       Options
		want    string
		blocked bool
	}{
		{"replicaset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: ctl}}, true, Options{}, "ReplicaSet web", false},
		{"critical", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: ctl}, Spec: corev1.PodSpec{PriorityClassName: "system-node-critical"}}, true, Options{}, "critical: evicted last", false},
		{"daemonset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: ds}}, false, Options{}, "DaemonSet pod", false},
		{"mirror", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "x"}}}, false, Options{}, "mirror (static) pod", false},
		{"finished", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, false, Options{}, "finished (Succeeded)", false},
		{"emptydir without flag", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: ctl}, Spec: corev1.PodSpec{Volumes: empty}}, false, Options{}, "--delete-emptydir-data", true},
		{"emptydir with flag", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: ctl}, Spec: corev1.PodSpec{Volumes: empty}}, true, Options{DeleteEmptyDirData: true}, "emptyDir data is lost", false},
		{"unmanaged without --force", corev1.Pod{}, false, Options{}, "evict only with --force", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			note, blocked := podNote(&tc.pod, tc.evicted, tc.o)
			if blocked != tc.blocked || !strings.Contains(note, tc.want) {
				t.Errorf("note %q blocked %v, want %q %v", note, blocked, tc.want, tc.blocked)
			}
		})
	}
}

func TestDescribeBudgets(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}}
	budget := func(name string, sel map[string]string, gen, observed int64, allowed, desired, healthy int32) policyv1.PodDisruptionBudget {
		return policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: gen},
			Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: sel}, MaxUnavailable: ptr.To(intstr.FromInt32(0))},
			Status:     policyv1.PodDisruptionBudgetStatus{ObservedGeneration: observed, DisruptionsAllowed: allowed, DesiredHealthy: desired, CurrentHealthy: healthy, ExpectedPods: 2},
		}
	}
	for _, tc := range []struct {
		name string
		pdbs []policyv1.PodDisruptionBudget
		want string
	}{
		{"blocking", []policyv1.PodDisruptionBudget{budget("db", map[string]string{"app": "db"}, 1, 1, 0, 2, 2)}, "PodDisruptionBudget ns/db allows no disruption now: needs 2 healthy pods, has 2 (expected 2, maxUnavailable 0)"},
		{"not processed", []policyv1.PodDisruptionBudget{budget("db", map[string]string{"app": "db"}, 2, 1, 0, 2, 2)}, "not yet processed by the disruption controller"},
		{"other selector", []policyv1.PodDisruptionBudget{budget("web", map[string]string{"app": "web"}, 1, 1, 0, 2, 2)}, "eviction refused (429): api says no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeBudgets(tc.pdbs, pod, "api says no"); !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidateRejectsZeroValues(t *testing.T) {
	o := Options{Node: "n", Mode: ModeDrain, OnTimeout: TimeoutFail}
	err := o.Validate()
	for _, want := range []string{"drain timeout", "eviction retry delay", "parallel"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zero options accepted or %q not named: %v", want, err)
		}
	}
	d := Defaults()
	d.Node = "n"
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}
