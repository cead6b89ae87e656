package rancher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// NodePresentError: the Node a record names exists (again), so its record
// is not an orphan and its finalizers are not cleared.
type NodePresentError struct {
	Node string
	Why  string
}

func (e *NodePresentError) Error() string {
	return fmt.Sprintf("node %s is in the downstream cluster (%s): record left alone; delete the Node first ('nodereset remove %s')", e.Node, e.Why, e.Node)
}

// RecordTimeoutError: a record was still there after the bounded wait.
type RecordTimeoutError struct {
	Record     string
	Finalizers []string
}

func (e *RecordTimeoutError) Error() string {
	return fmt.Sprintf("%s still there, with finalizers %v: another controller holds it; look at that controller's logs on the local cluster", e.Record, e.Finalizers)
}

// confirmGone checks, right before a change, that no Node of the record's
// identity is in the downstream cluster; a same-name Node of another
// identity also stops the change (Rancher's finalizer deletes by name).
func confirmGone(ctx context.Context, d Downstream, r Record) error {
	n, err := d.Client.CoreV1().Nodes().Get(ctx, r.Node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("confirm node %s is gone: %w", r.Node.Name, err)
	}
	return &NodePresentError{Node: n.Name, Why: "UID " + string(n.UID)}
}

// fixRecord deletes a management node record whose Node is gone and
// waits for it; after FinalizerGrace it clears the user-node-remove_*
// finalizers (only those), re-confirming first that the Node is gone,
// and waits again. Idempotent: a record already gone is done.
func fixRecord(ctx context.Context, m Management, d Downstream, r Record, o RecordOptions, rep *Report) error {
	obj, act := r.Object(), "delete record"
	if err := confirmGone(ctx, d, r); err != nil {
		return rep.add(obj, act, err, "")
	}
	rc := m.Dynamic.Resource(NodeGVR).Namespace(r.Namespace)
	uid := r.UID
	err := rc.Delete(ctx, r.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return rep.add(obj, act, nil, "already gone")
	}
	if err != nil {
		return rep.add(obj, act, err, "")
	}
	o.log().Info("deleted rancher record", "record", obj)
	if gone(ctx, m, r, o.FinalizerGrace, o) {
		return rep.add(obj, act, nil, "deleted")
	}
	if err := confirmGone(ctx, d, r); err != nil {
		return rep.add(obj, act, err, "")
	}
	var cleared []string
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := rc.Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.GetUID() != r.UID {
			return apierrors.NewNotFound(NodeGVR.GroupResource(), r.Name) // the planned one went
		}
		fs := cur.GetFinalizers()
		cleared = userNodeRemove(fs)
		if len(cleared) == 0 {
			return nil
		}
		cur.SetFinalizers(slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return strings.HasPrefix(f, UserNodeRemovePrefix) }))
		_, err = rc.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return rep.add(obj, act, nil, "deleted")
	}
	if err != nil {
		return rep.add(obj, act, fmt.Errorf("clear finalizers: %w", err), "")
	}
	o.log().Info("cleared stuck finalizers", "record", obj, "finalizers", cleared)
	if !gone(ctx, m, r, o.RecordTimeout, o) {
		cur, _ := rc.Get(ctx, r.Name, metav1.GetOptions{})
		var fs []string
		if cur != nil {
			fs = cur.GetFinalizers()
		}
		rep.Remaining = append(rep.Remaining, obj+" is still there")
		return rep.add(obj, act, &RecordTimeoutError{Record: obj, Finalizers: fs}, "")
	}
	return rep.add(obj, act, nil, fmt.Sprintf("deleted; cleared stuck finalizers %v after confirming node %s is gone", cleared, r.Node.Name))
}

// gone polls until the record (this UID) is gone, up to timeout.
func gone(ctx context.Context, m Management, r Record, timeout time.Duration, o RecordOptions) bool {
	gvr := NodeGVR
	if r.Kind == RecordMachine {
		gvr = MachineGVR
	}
	err := wait.PollUntilContextTimeout(ctx, o.PollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		cur, err := m.Dynamic.Resource(gvr).Namespace(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && cur.GetUID() != r.UID, nil
	})
	return err == nil
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
