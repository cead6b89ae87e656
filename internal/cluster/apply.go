package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/drain"
)

// Status of a step.
type Status string

// The statuses.
const (
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusSkipped Status = "skipped"
	StatusFailed  Status = "failed"
)

// StepResult is the outcome of one step.
type StepResult struct {
	Name     string        `json:"name"`
	Status   Status        `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Report is what Apply did, and what the operator must still do.
type Report struct {
	Mode  Mode         `json:"mode"`
	Node  NodeInfo     `json:"node"`
	Steps []StepResult `json:"steps"`
	Drain *DrainResult `json:"drain,omitempty"`
	Todo  []string     `json:"todo"`
}

// Failed reports whether a step failed.
func (r *Report) Failed() bool {
	for _, s := range r.Steps {
		if s.Status == StatusFailed {
			return true
		}
	}
	return false
}

// Apply runs the plan's steps in order; after a failed step the later
// ones are skipped. The error joins the failed steps' errors.
func (r *Runner) Apply(ctx context.Context, p *Plan) (*Report, error) {
	if len(p.Blocked) > 0 {
		return nil, &BlockedPodsError{Pods: p.Blocked}
	}
	rep := &Report{Mode: p.Mode, Node: p.Node}
	n := &p.Node
	rep.Steps = append(rep.Steps, StepResult{Name: StepPreflight, Status: StatusDone, Detail: describeNode(n)})
	r.o.observer().Step(rep.Steps[0])
	var errs []error
	stopped := false
	run := func(name string, fn func() (string, error)) {
		if stopped {
			rep.add(r.o.observer(), StepResult{Name: name, Status: StatusSkipped, Detail: "an earlier step failed"})
			return
		}
		start := time.Now()
		r.o.observer().Step(StepResult{Name: name, Status: StatusRunning})
		detail, err := fn()
		s := StepResult{Name: name, Status: StatusDone, Detail: detail, Duration: time.Since(start)}
		var sk skipped
		switch {
		case errors.As(err, &sk):
			s.Status, s.Detail = StatusSkipped, sk.why
		case err != nil:
			s.Status, s.Error = StatusFailed, err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			stopped = true
		}
		rep.add(r.o.observer(), s)
	}
	run(StepCordon, func() (string, error) { return r.cordon(ctx, p) })
	run(StepDrain, func() (string, error) {
		d, err := r.drain(ctx, p)
		rep.Drain = &d
		return drainDetail(d, p), err
	})
	run(StepOutOfService, func() (string, error) {
		if !r.o.NodeIsDown {
			return "", skipped{"the machine is not known to be off (--node-is-down)"}
		}
		return r.taint(ctx, p)
	})
	run(StepVolumes, func() (string, error) { return r.waitVolumes(ctx, p) })
	if p.Mode == ModeRemove {
		run(StepEtcd, func() (string, error) { return r.etcdStep(ctx, p) })
		run(StepDelete, func() (string, error) { return r.deleteNode(ctx, p) })
	}
	rep.Todo = todo(rep, p, r.o)
	return rep, errors.Join(errs...)
}

func (rep *Report) add(o Observer, s StepResult) {
	rep.Steps = append(rep.Steps, s)
	o.Step(s)
}

// skipped is returned by a step that decided not to run.
type skipped struct{ why string }

func (s skipped) Error() string { return s.why }

func describeNode(n *NodeInfo) string {
	roles := make([]string, len(n.Roles))
	for i, r := range n.Roles {
		roles[i] = string(r)
	}
	lease := "no Lease"
	if n.LeaseAge >= 0 {
		lease = "Lease renewed " + n.LeaseAge.Round(time.Second).String() + " ago"
	}
	reach := "reachable"
	if n.Unreachable {
		reach = "UNREACHABLE"
	}
	s := fmt.Sprintf("node %s uid %s, %s, %s, Ready=%s, %s, %s", n.Name, n.UID, strings.Join(roles, "+"), n.Distribution, n.Ready, lease, reach)
	if n.ProviderID != "" {
		s += ", providerID " + n.ProviderID
	}
	return s
}

func (r *Runner) cordon(ctx context.Context, p *Plan) (string, error) {
	node, err := r.c.CoreV1().Nodes().Get(ctx, p.Node.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if string(node.UID) != p.Node.UID {
		return "", &ReregisteredError{Node: node.Name, PlannedUID: p.Node.UID, UID: string(node.UID)}
	}
	h := drain.NewCordonHelper(node)
	if !h.UpdateIfRequired(true) {
		return "already cordoned", nil
	}
	err, perr := h.PatchOrReplaceWithContext(ctx, r.c, false)
	if err = errors.Join(err, perr); err != nil {
		return "", err
	}
	return "marked unschedulable", nil
}

func drainDetail(d DrainResult, p *Plan) string {
	s := fmt.Sprintf("%d/%d pods gone, %d left to the node reset", d.Gone, d.Total, len(p.Left))
	if len(d.NotWaited) > 0 {
		s += fmt.Sprintf(", %d not waited for (node unreachable)", len(d.NotWaited))
	}
	if len(d.ForceDeleted) > 0 {
		s += fmt.Sprintf(", %d force-deleted at the deadline", len(d.ForceDeleted))
	}
	if d.TimedOut && len(d.Remaining) > 0 {
		s += fmt.Sprintf(", %d remain (timed out)", len(d.Remaining))
	}
	return s
}

func (r *Runner) taint(ctx context.Context, p *Plan) (string, error) {
	added := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := r.c.CoreV1().Nodes().Get(ctx, p.Node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, t := range node.Spec.Taints {
			if t.Key == TaintOutOfService {
				return nil
			}
		}
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: TaintOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute})
		_, err = r.c.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		added = err == nil
		return err
	})
	if err != nil {
		return "", err
	}
	if !added {
		return "already tainted " + TaintOutOfService, nil
	}
	return "tainted " + TaintOutOfService + "=nodeshutdown:NoExecute", nil
}

// waitVolumes waits, bounded, until no VolumeAttachment names the node.
func (r *Runner) waitVolumes(ctx context.Context, p *Plan) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, r.o.VolumeDetachTimeout)
	defer cancel()
	seen := 0
	for {
		list, err := r.c.StorageV1().VolumeAttachments().List(wctx, metav1.ListOptions{})
		if err != nil && wctx.Err() == nil {
			return "", err
		}
		var left []string
		if err == nil {
			for _, va := range list.Items {
				if va.Spec.NodeName == p.Node.Name {
					left = append(left, va.Name+" (PV "+ptrStr(va.Spec.Source.PersistentVolumeName)+")")
				}
			}
			seen = max(seen, len(left))
			if len(left) == 0 {
				if seen == 0 {
					return "no VolumeAttachments", nil
				}
				return fmt.Sprintf("%d VolumeAttachments detached", seen), nil
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			hint := "check the CSI driver's controller"
			if !r.o.NodeIsDown && p.Node.Unreachable {
				hint = "if the machine is off, run again with --node-is-down"
			}
			return "", fmt.Errorf("VolumeAttachments still on the node after %s: %s (%s)", r.o.VolumeDetachTimeout, strings.Join(left, ", "), hint)
		case <-time.After(r.o.PollInterval):
		}
	}
}

func ptrStr(s *string) string {
	if s == nil {
		return "inline"
	}
	return *s
}

func (r *Runner) etcdStep(ctx context.Context, p *Plan) (string, error) {
	if p.etcdErr != nil {
		return "", fmt.Errorf("member removal refused: %w; the Node is kept so the member can still be found", p.etcdErr)
	}
	for _, s := range p.Steps {
		if s.Name == StepEtcd && s.Skip != "" {
			return "", skipped{s.Skip}
		}
	}
	if p.etcd == nil {
		return "", skipped{"no member removal planned"}
	}
	return p.etcd.Apply(ctx)
}

// IsRetryable is what the Node delete retries on.
func isRetryable(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || !isStatus(err)
}

func isStatus(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s)
}
