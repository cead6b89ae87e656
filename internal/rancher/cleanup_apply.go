package rancher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// ApplyCleanup carries out the plan once, item by item in plan order, then
// waits (bounded) for the deleted namespaces to go. Something already gone
// is done; an object recreated since the plan (another UID) is left and
// reported. The error joins the ItemErrors.
func ApplyCleanup(ctx context.Context, d Downstream, p *CleanupPlan) (*Report, error) {
	log := p.opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{}
	var errs []error
	var deleted []CleanupItem
	for _, it := range p.Items {
		detail, err := applyItem(ctx, d, it)
		log.Info("rancher cleanup", "object", it.Object(), "action", it.Action, "err", err)
		if e := rep.add(it.Object(), it.Action, err, detail); e != nil {
			errs = append(errs, e)
			continue
		}
		// Namespaces and CRDs go only once a controller has emptied them.
		if (it.Kind == KindNamespace || it.Kind == KindCRD) && it.Action == ActionDelete {
			deleted = append(deleted, it)
		}
	}
	if err := waitNamespaces(ctx, d, deleted, p.opts, rep); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

func applyItem(ctx context.Context, d Downstream, it CleanupItem) (string, error) {
	uid := it.UID
	del := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}
	var err error
	switch it.Kind {
	case KindNamespace:
		return applyNamespace(ctx, d, it)
	case KindValidatingWebhook:
		err = d.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, it.Name, del)
	case KindMutatingWebhook:
		err = d.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, it.Name, del)
	case KindRole:
		err = d.Client.RbacV1().Roles(it.Namespace).Delete(ctx, it.Name, del)
	case KindClusterRole:
		err = d.Client.RbacV1().ClusterRoles().Delete(ctx, it.Name, del)
	case KindRoleBinding:
		err = d.Client.RbacV1().RoleBindings(it.Namespace).Delete(ctx, it.Name, del)
	case KindClusterRoleBinding:
		err = d.Client.RbacV1().ClusterRoleBindings().Delete(ctx, it.Name, del)
	case KindCRD:
		err = d.Dynamic.Resource(crdGVR).Delete(ctx, it.Name, del)
	default:
		return "", fmt.Errorf("unknown kind %q", it.Kind)
	}
	return deleteOutcome(err)
}

// deleteOutcome: gone already is done; a failed UID precondition means the
// name now belongs to a new object, which the plan did not see.
func deleteOutcome(err error) (string, error) {
	switch {
	case err == nil:
		return "deleted", nil
	case apierrors.IsNotFound(err):
		return "already gone", nil
	case apierrors.IsConflict(err):
		return "", fmt.Errorf("recreated since the plan (another UID), left alone; run the cleanup again to see it: %w", err)
	}
	return "", err
}

// applyNamespace strips the planned metadata (ActionStrip) or all
// metadata finalizers and then deletes (ActionDelete). It re-reads the
// namespace and rewrites only the planned keys, retrying on conflicts, so
// that a concurrent writer's changes are kept.
func applyNamespace(ctx context.Context, d Downstream, it CleanupItem) (string, error) {
	nsc := d.Client.CoreV1().Namespaces()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		ns, err := nsc.Get(ctx, it.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ns.UID != it.UID {
			return &recreatedError{uid: ns.UID}
		}
		changed := false
		for _, r := range it.Remove {
			what, key, _ := strings.Cut(r, " ")
			switch what {
			case "finalizer":
				if i := slices.Index(ns.Finalizers, key); i >= 0 {
					ns.Finalizers, changed = slices.Delete(ns.Finalizers, i, i+1), true
				}
			case "label":
				if _, ok := ns.Labels[key]; ok {
					delete(ns.Labels, key)
					changed = true
				}
			case "annotation":
				if _, ok := ns.Annotations[key]; ok {
					delete(ns.Annotations, key)
					changed = true
				}
			}
		}
		if !changed {
			return nil
		}
		_, err = nsc.Update(ctx, ns, metav1.UpdateOptions{})
		return err
	})
	var re *recreatedError
	switch {
	case apierrors.IsNotFound(err):
		return "already gone", nil
	case errors.As(err, &re):
		return "", fmt.Errorf("recreated since the plan (UID %s, planned %s), left alone; run the cleanup again", re.uid, it.UID)
	case err != nil:
		return "", err
	}
	if it.Action == ActionStrip {
		return "removed " + strings.Join(it.Remove, ", "), nil
	}
	uid := it.UID
	return deleteOutcome(nsc.Delete(ctx, it.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}))
}

type recreatedError struct{ uid types.UID }

func (e *recreatedError) Error() string { return "recreated as " + string(e.uid) }

// NamespaceTimeoutError: deleted namespaces or CRDs still there after the
// wait.
type NamespaceTimeoutError struct {
	After   time.Duration
	Objects []string
}

func (e *NamespaceTimeoutError) Error() string {
	return fmt.Sprintf("%s still terminating after %s: a controller is deleting their contents (see status.conditions with 'kubectl get -o yaml'); run the cleanup again later",
		strings.Join(e.Objects, ", "), e.After)
}

// waitNamespaces polls until the deleted namespaces and CRDs are gone (or
// carry another UID: the old one went), up to the plan's NamespaceTimeout.
func waitNamespaces(ctx context.Context, d Downstream, deleted []CleanupItem, o CleanupOptions, rep *Report) error {
	if len(deleted) == 0 {
		return nil
	}
	left := deleted
	err := wait.PollUntilContextTimeout(ctx, o.PollInterval, o.NamespaceTimeout, true, func(ctx context.Context) (bool, error) {
		var still []CleanupItem
		for _, it := range left {
			uid, err := currentUID(ctx, d, it)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				still = append(still, it) // transient: ask again
			case uid == it.UID:
				still = append(still, it)
			}
		}
		left = still
		return len(left) == 0, nil
	})
	if err == nil {
		return nil
	}
	te := &NamespaceTimeoutError{After: o.NamespaceTimeout}
	for _, it := range left {
		te.Objects = append(te.Objects, it.Object())
		rep.Remaining = append(rep.Remaining, it.Object()+" is still terminating")
	}
	return te
}

func currentUID(ctx context.Context, d Downstream, it CleanupItem) (types.UID, error) {
	if it.Kind == KindCRD {
		c, err := d.Dynamic.Resource(crdGVR).Get(ctx, it.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return c.GetUID(), nil
	}
	ns, err := d.Client.CoreV1().Namespaces().Get(ctx, it.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return ns.UID, nil
}
