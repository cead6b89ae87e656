package cluster

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubectl/pkg/drain"
)

// now is the clock; a variable of the Runner would be nicer, but the
// apiserver's timestamps are wall clock anyway.
func now() time.Time { return time.Now() }

// helper is kubectl's drain helper with every field set on purpose: its
// zero values mean "delete immediately" (GracePeriodSeconds), "retry 429
// in a busy loop" (EvictErrorRetryDelay) and "wait forever" (Timeout).
func (r *Runner) helper(ctx context.Context, unreachable bool) *drain.Helper {
	grace, skip := r.o.GracePeriodSeconds, 0
	if unreachable {
		// No kubelet will confirm the deletions (Cluster API: grace 1 s,
		// skip-wait 1 s): pods terminating longer than that count as gone.
		grace = max(1, int(r.o.UnreachableGrace.Seconds()))
		skip = grace
	}
	return &drain.Helper{
		Ctx:                             ctx,
		Client:                          r.c,
		Force:                           r.o.Force,
		GracePeriodSeconds:              grace,
		IgnoreAllDaemonSets:             true, // the node reset stops them
		Timeout:                         r.o.DrainTimeout,
		DeleteEmptyDirData:              r.o.DeleteEmptyDirData,
		ChunkSize:                       500,
		SkipWaitForDeleteTimeoutSeconds: skip,
		EvictErrorRetryDelay:            r.o.EvictRetryDelay,
		AdditionalFilters:               []drain.PodFilter{skipFinished},
		Out:                             io.Discard,
		ErrOut:                          io.Discard,
	}
}

// skipFinished leaves Succeeded and Failed pods alone: nothing runs, and
// evicting them would only wait on the kubelet for nothing.
func skipFinished(p corev1.Pod) drain.PodDeleteStatus {
	if finished(&p) {
		return drain.MakePodDeleteStatusSkip()
	}
	return drain.MakePodDeleteStatusOkay()
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// systemCriticalPriority is scheduling.SystemCriticalPriority.
const systemCriticalPriority = 2000000000

// critical pods (system-cluster-critical, system-node-critical) are
// evicted last: DNS, CNI and the like keep the others working meanwhile.
func critical(p *corev1.Pod) bool {
	switch p.Spec.PriorityClassName {
	case "system-cluster-critical", "system-node-critical":
		return true
	}
	return p.Spec.Priority != nil && *p.Spec.Priority >= systemCriticalPriority
}

// podNote says why a pod is evicted, left or blocked, in the terms of
// kubectl drain's filters.
func podNote(p *corev1.Pod, evicted bool, o Options) (note string, blocked bool) {
	ctl := metav1.GetControllerOf(p)
	emptyDir := false
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil {
			emptyDir = true
		}
	}
	switch {
	case has(p.Annotations, corev1.MirrorPodAnnotationKey):
		return "mirror (static) pod: left to the node reset", false
	case finished(p):
		return "finished (" + string(p.Status.Phase) + "): ignored", false
	case !evicted && p.DeletionTimestamp != nil:
		return "already terminating", false
	case ctl != nil && ctl.Kind == "DaemonSet" && !evicted:
		return "DaemonSet pod: left to the node reset", false
	case !evicted && emptyDir && !o.DeleteEmptyDirData:
		return "has emptyDir data: evict only with --delete-emptydir-data (the data is lost)", true
	case !evicted && ctl == nil && !o.Force:
		return "no controller manages it: evict only with --force (it is not recreated)", true
	case !evicted:
		return "kubectl drain refuses it", true
	}
	var notes []string
	if critical(p) {
		notes = append(notes, "critical: evicted last")
	}
	if ctl == nil {
		notes = append(notes, "no controller: not recreated (--force)")
	} else {
		notes = append(notes, ctl.Kind+" "+ctl.Name)
	}
	if emptyDir {
		notes = append(notes, "emptyDir data is lost (--delete-emptydir-data)")
	}
	return strings.Join(notes, "; "), false
}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func errorsJoin(errs []error) error { return errors.Join(errs...) }

// EtcdTarget names the member of a node.
type EtcdTarget struct {
	Name       string
	PeerHosts  []string
	ClientURLs []string
}

// EtcdPlanner plans a member removal (internal/etcdmember, through an
// adapter in the CLI). PlanRemoval only reads; it refuses a removal that
// would lose quorum.
type EtcdPlanner interface {
	PlanRemoval(ctx context.Context, t EtcdTarget) (EtcdRemoval, error)
}

// EtcdRemoval is a planned member removal. Apply moves leadership away and
// removes the member; a member already gone is success. It returns a line
// for the report.
type EtcdRemoval interface {
	Describe() []string
	Apply(ctx context.Context) (string, error)
}
