package cluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// deleteNode deletes the planned Node (by UID: a re-registered Node of the
// same name is not touched), retrying transient errors until
// DeleteTimeout, then waits for its finalizers within the same bound.
func (r *Runner) deleteNode(ctx context.Context, p *Plan) (string, error) {
	dctx, cancel := context.WithTimeout(ctx, r.o.DeleteTimeout)
	defer cancel()
	node, err := r.c.CoreV1().Nodes().Get(dctx, p.Node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "already gone", nil
	}
	if err != nil {
		return "", err
	}
	if string(node.UID) != p.Node.UID {
		return "", &ReregisteredError{Node: node.Name, PlannedUID: p.Node.UID, UID: string(node.UID)}
	}
	// Read the kubelet's state again: the host may have been reset since
	// the plan, or its kubelet restarted.
	lease, err := r.c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(dctx, node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease, err = nil, nil
	}
	if err != nil {
		return "", err
	}
	var info NodeInfo
	reachability(&info, node, lease, now(), r.o.UnreachableAfter)
	if info.KubeletPosting && !r.o.IgnoreKubelet {
		return "", &KubeletAliveError{Node: node.Name, LeaseAge: info.LeaseAge}
	}
	uid := types.UID(p.Node.UID)
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = r.c.CoreV1().Nodes().Delete(dctx, node.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err == nil || apierrors.IsNotFound(err) {
			break
		}
		if apierrors.IsConflict(err) {
			return "", fmt.Errorf("node %s changed UID while being deleted (re-registered?): %w", node.Name, err)
		}
		if !isRetryable(err) || dctx.Err() != nil {
			return "", fmt.Errorf("delete node %s (attempt %d): %w", node.Name, attempt, err)
		}
		r.o.log().Warn("deleting the Node failed; retrying", "node", node.Name, "attempt", attempt, "err", err)
		select {
		case <-dctx.Done():
			return "", fmt.Errorf("delete node %s: %w (last error: %v)", node.Name, dctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return r.waitNodeGone(dctx, p)
}

// waitNodeGone waits for the Node object to disappear: its finalizers (K3s
// and RKE2 remove their etcd member in one) have run.
func (r *Runner) waitNodeGone(ctx context.Context, p *Plan) (string, error) {
	etcdSelf := p.Node.Has(RoleEtcd) && (p.Node.Distribution == DistK3s || p.Node.Distribution == DistRKE2)
	for {
		node, err := r.c.CoreV1().Nodes().Get(ctx, p.Node.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && string(node.UID) != p.Node.UID) {
			if etcdSelf {
				return "deleted; the Node's finalizers ran, " + string(p.Node.Distribution) + " removes its etcd member then (the member list itself was not read: check it with etcdctl member list)", nil
			}
			return "deleted", nil
		}
		if err != nil && ctx.Err() == nil {
			return "", err
		}
		select {
		case <-ctx.Done():
			fin := []string{}
			if node != nil {
				fin = node.Finalizers
			}
			return "", fmt.Errorf("node %s is deleting but still there after %s, finalizers %v: the controllers that own them must finish (for K3s/RKE2 etcd members, check the servers' logs)", p.Node.Name, r.o.DeleteTimeout, fin)
		case <-time.After(r.o.PollInterval):
		}
	}
}

// todo is what the operator must still do, from the report.
func todo(rep *Report, p *Plan, o Options) []string {
	n := p.Node.Name
	var t []string
	status := map[string]StepResult{}
	for _, s := range rep.Steps {
		status[s.Name] = s
	}
	if d := rep.Drain; d != nil {
		for _, pn := range d.Remaining {
			t = append(t, "pod "+pn.Pod+" is still on the node: "+pn.Note)
		}
		for _, pn := range d.Failed {
			t = append(t, "pod "+pn.Pod+" could not be evicted: "+pn.Note)
		}
	}
	if p.Node.Unreachable && !o.NodeIsDown {
		t = append(t, "the node is unreachable: if the machine is off, run again with --node-is-down so its volumes are detached")
	}
	t = append(t, "reset the host: run 'nodereset reset' on "+n+" (stops the kubelet, DaemonSet and static pods, and cleans the node)")
	if rep.Mode == ModeDrain {
		t = append(t, "then remove the Node: 'nodereset remove "+n+"'")
		return t
	}
	if s := status[StepEtcd]; s.Status == StatusFailed {
		t = append(t, "the etcd member of "+n+" is still in the cluster: "+s.Error)
	} else if s.Status == StatusSkipped && p.Node.Has(RoleEtcd) {
		t = append(t, "etcd member not removed here: "+s.Detail)
	}
	if s := status[StepDelete]; s.Status != StatusDone {
		t = append(t, "after the reset, run 'nodereset remove "+n+"' again to delete the Node")
	}
	return t
}
