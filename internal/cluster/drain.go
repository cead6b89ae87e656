package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubectl/pkg/drain"
)

// DrainResult is what the drain did.
type DrainResult struct {
	Total        int       `json:"total"`
	Gone         int       `json:"gone"`
	ForceDeleted []string  `json:"forceDeleted,omitempty"`
	Remaining    []PodNote `json:"remaining,omitempty"`
	Failed       []PodNote `json:"failed,omitempty"`
	TimedOut     bool      `json:"timedOut,omitempty"`
	// NotWaited: the node is unreachable, so terminating pods were not
	// waited for (their containers stop when the host is reset).
	NotWaited []string `json:"notWaited,omitempty"`
}

type podState int

const (
	podPending podState = iota
	podDeleting
	podGone
	podFailed
)

type podRun struct {
	pod   corev1.Pod
	ref   string
	state podState
	next  time.Time
	note  string
}

// drain evicts the planned pods, critical ones in a second wave, within
// one deadline. kubectl's DeleteOrEvictPods is not used for the loop: it
// only prints a 429 (no hook to name the budget), polls every pod on its
// own each second, and its timeout error does not say which pods are left.
// The per-pod calls (EvictPod, DeletePod) and the filters are kubectl's.
func (r *Runner) drain(ctx context.Context, p *Plan) (DrainResult, error) {
	res := DrainResult{Total: len(p.evict)}
	dctx, cancel := context.WithTimeout(ctx, r.o.DrainTimeout)
	defer cancel()
	h := r.helper(dctx, p.unreachable)
	gv, err := drain.CheckEvictionSupport(r.c)
	if err != nil {
		return res, fmt.Errorf("eviction API discovery: %w", err)
	}
	var first, last []*podRun
	for _, pod := range p.evict {
		pr := &podRun{pod: pod, ref: pod.Namespace + "/" + pod.Name}
		if critical(&pod) {
			last = append(last, pr)
		} else {
			first = append(first, pr)
		}
	}
	all := append(append([]*podRun{}, first...), last...)
	for _, wave := range [][]*podRun{first, last} {
		if err := r.wave(dctx, h, gv, p, wave, all, &res); err != nil {
			break
		}
	}
	for _, pr := range all {
		switch pr.state {
		case podGone:
			res.Gone++
		case podFailed:
			res.Failed = append(res.Failed, PodNote{Pod: pr.ref, Note: pr.note})
		default:
			note := pr.note
			if note == "" {
				note = map[podState]string{podPending: "not evicted yet", podDeleting: "evicted, still terminating"}[pr.state]
			}
			res.Remaining = append(res.Remaining, PodNote{Pod: pr.ref, Note: note})
		}
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.TimedOut = len(res.Remaining) > 0
	if res.TimedOut {
		return r.onTimeout(ctx, all, res)
	}
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("%d pods could not be evicted: %v", len(res.Failed), res.Failed)
	}
	return res, nil
}

// wave runs until every pod of the wave is gone or failed, or ctx ends.
func (r *Runner) wave(ctx context.Context, h *drain.Helper, gv schema.GroupVersion, p *Plan, wave, all []*podRun, res *DrainResult) error {
	obs := r.o.observer()
	for {
		r.evictDue(ctx, h, gv, wave)
		if err := r.poll(ctx, p, wave, res); err != nil && ctx.Err() == nil {
			r.o.log().Warn("listing pods on the node failed; retrying", "node", p.Node.Name, "err", err)
		}
		obs.Drain(progress(all))
		open := 0
		for _, pr := range wave {
			if pr.state == podPending || pr.state == podDeleting {
				open++
			}
		}
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.o.PollInterval):
		}
	}
}

// evictDue sends the evictions that are due, at most Parallel at once.
func (r *Runner) evictDue(ctx context.Context, h *drain.Helper, gv schema.GroupVersion, wave []*podRun) {
	sem := make(chan struct{}, r.o.Parallel)
	var wg sync.WaitGroup
	t := now()
	for _, pr := range wave {
		if pr.state != podPending || t.Before(pr.next) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.evictOne(ctx, h, gv, pr)
		}()
	}
	wg.Wait()
}

func (r *Runner) evictOne(ctx context.Context, h *drain.Helper, gv schema.GroupVersion, pr *podRun) {
	err := h.EvictPod(pr.pod, gv)
	switch {
	case err == nil:
		pr.state, pr.note = podDeleting, "evicted, terminating"
	case apierrors.IsNotFound(err):
		pr.state, pr.note = podGone, ""
	case apierrors.IsTooManyRequests(err):
		pr.note = r.budgetNote(ctx, &pr.pod, err)
		pr.next = now().Add(r.o.EvictRetryDelay)
		r.o.log().Info("eviction refused", "pod", pr.ref, "why", pr.note)
	case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		// kubectl retries these until the namespace deletion gets to the pod.
		pr.note = "namespace terminating, retrying"
		pr.next = now().Add(r.o.EvictRetryDelay)
	case ctx.Err() != nil || !isStatus(err):
		// Not the server's answer (deadline, client rate limiter, a
		// connection blip): retry. Keep what blocked it before (the
		// budget), it says more.
		if pr.note == "" {
			pr.note = "eviction not answered: " + err.Error()
		}
		pr.next = now().Add(r.o.EvictRetryDelay)
	default:
		pr.state, pr.note = podFailed, "eviction failed: "+err.Error()
	}
}

// poll lists the node's pods once and marks the deleted ones gone: a
// missing UID (a recreated pod of the same name is another pod), or, on an
// unreachable node, a deletion older than the skip-wait threshold.
func (r *Runner) poll(ctx context.Context, p *Plan, wave []*podRun, res *DrainResult) error {
	list, err := r.c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", p.Node.Name).String(),
	})
	if err != nil {
		return err
	}
	live := make(map[types.UID]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		live[list.Items[i].UID] = &list.Items[i]
	}
	skip := time.Duration(max(1, int(r.o.UnreachableGrace.Seconds()))) * time.Second
	for _, pr := range wave {
		if pr.state == podGone || pr.state == podFailed {
			continue
		}
		cur, ok := live[pr.pod.UID]
		switch {
		case !ok:
			pr.state, pr.note = podGone, ""
		case p.unreachable && cur.DeletionTimestamp != nil && now().Sub(cur.DeletionTimestamp.Time) > skip:
			pr.state, pr.note = podGone, ""
			res.NotWaited = append(res.NotWaited, pr.ref)
		}
	}
	return nil
}

// onTimeout applies --on-timeout to the pods left at the deadline.
func (r *Runner) onTimeout(ctx context.Context, all []*podRun, res DrainResult) (DrainResult, error) {
	terr := &DrainTimeoutError{After: r.o.DrainTimeout, Remaining: res.Remaining}
	switch r.o.OnTimeout {
	case TimeoutSkip:
		return res, nil
	case TimeoutForceDelete:
		// The drain's deadline is spent: the deletes get their own bound.
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		zero := int64(0)
		var errs []error
		var left []PodNote
		for _, pr := range all {
			if pr.state == podGone || pr.state == podFailed {
				continue
			}
			uid := pr.pod.UID
			err := r.c.CoreV1().Pods(pr.pod.Namespace).Delete(fctx, pr.pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("force-delete pod %s: %w", pr.ref, err))
				left = append(left, PodNote{Pod: pr.ref, Note: "force-delete failed: " + err.Error()})
				continue
			}
			res.ForceDeleted = append(res.ForceDeleted, pr.ref)
		}
		res.Remaining = left
		if len(errs) > 0 {
			return res, errors.Join(append([]error{terr}, errs...)...)
		}
		return res, nil
	}
	return res, terr
}

func progress(all []*podRun) DrainProgress {
	p := DrainProgress{Total: len(all)}
	for _, pr := range all {
		switch {
		case pr.state == podGone:
			p.Gone++
		case pr.state == podPending && pr.note != "":
			p.Blocked = append(p.Blocked, PodNote{Pod: pr.ref, Note: pr.note})
		}
	}
	return p
}
