package cluster

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// budgetNote names the PodDisruptionBudgets behind a 429 and what they
// need, read from their status (the eviction's own message is kept when
// no budget can be read).
func (r *Runner) budgetNote(ctx context.Context, pod *corev1.Pod, evictErr error) string {
	list, err := r.c.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "eviction refused (429): " + apiMessage(evictErr) + " (budgets not readable: " + err.Error() + ")"
	}
	return describeBudgets(list.Items, pod, apiMessage(evictErr))
}

func apiMessage(err error) string {
	if s, ok := err.(apierrors.APIStatus); ok {
		st := s.Status()
		msgs := []string{st.Message}
		if st.Details != nil {
			for _, c := range st.Details.Causes {
				msgs = append(msgs, c.Message)
			}
		}
		return strings.Join(msgs, ": ")
	}
	return err.Error()
}

// describeBudgets says, for each budget whose selector matches pod, what
// it needs and has.
func describeBudgets(pdbs []policyv1.PodDisruptionBudget, pod *corev1.Pod, apiMsg string) string {
	var notes []string
	for i := range pdbs {
		b := &pdbs[i]
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || b.Spec.Selector == nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		name := "PodDisruptionBudget " + b.Namespace + "/" + b.Name
		st := b.Status
		switch {
		case st.ObservedGeneration < b.Generation:
			notes = append(notes, name+": not yet processed by the disruption controller (is kube-controller-manager running?)")
		case st.DisruptionsAllowed > 0:
			notes = append(notes, fmt.Sprintf("%s: allows %d disruption(s) again (needs %d healthy, has %d); retrying", name, st.DisruptionsAllowed, st.DesiredHealthy, st.CurrentHealthy))
		default:
			notes = append(notes, fmt.Sprintf("%s allows no disruption now: needs %d healthy pods, has %d (expected %d, %s); waits for replacements to become Ready on other nodes, or relax the budget",
				name, st.DesiredHealthy, st.CurrentHealthy, st.ExpectedPods, budgetSpec(b)))
		}
	}
	if len(notes) == 0 {
		return "eviction refused (429): " + apiMsg
	}
	return strings.Join(notes, "; ")
}

func budgetSpec(b *policyv1.PodDisruptionBudget) string {
	switch {
	case b.Spec.MaxUnavailable != nil:
		return "maxUnavailable " + b.Spec.MaxUnavailable.String()
	case b.Spec.MinAvailable != nil:
		return "minAvailable " + b.Spec.MinAvailable.String()
	}
	return "no limit set"
}
