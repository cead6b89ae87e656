// Package cluster is the cluster side of taking a node out: preflight,
// cordon, drain that never hangs, the etcd member, and the Node delete.
//
// Like the host side it works in two steps: Plan reads the cluster and
// returns a value (printed by --dry-run); Apply consumes it once and
// returns a Report of what was done, skipped (and why) and what is left to
// the operator. The package never prints; live progress goes to an
// Observer.
package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Mode says which steps run: drain is preflight, cordon and drain; remove
// adds the etcd member and the Node delete.
type Mode string

// The modes.
const (
	ModeDrain  Mode = "drain"
	ModeRemove Mode = "remove"
)

// OnTimeout is what happens to the pods still on the node when the drain
// deadline passes.
type OnTimeout string

// The escalations, chosen by --on-timeout.
const (
	// TimeoutFail stops: the drain failed, the Node is kept.
	TimeoutFail OnTimeout = "fail"
	// TimeoutForceDelete deletes the remaining pods with grace 0, past
	// their PodDisruptionBudgets; their containers may still run on the
	// host until it is reset.
	TimeoutForceDelete OnTimeout = "force-delete"
	// TimeoutSkip leaves the remaining pods and goes on with the next steps.
	TimeoutSkip OnTimeout = "skip"
)

// ParseOnTimeout checks an --on-timeout value.
func ParseOnTimeout(s string) (OnTimeout, error) {
	switch o := OnTimeout(s); o {
	case TimeoutFail, TimeoutForceDelete, TimeoutSkip:
		return o, nil
	}
	return "", fmt.Errorf("--on-timeout %q: use fail, force-delete or skip", s)
}

// Options configure a run. kubectl's drain helper treats zero values as
// "immediately" or "forever"; here every duration must be set (Defaults
// gives the ones the CLI starts from) and Validate rejects a zero.
type Options struct {
	Node string
	Mode Mode

	// DeleteEmptyDirData and Force mean what kubectl drain's
	// --delete-emptydir-data and --force mean: evict pods with emptyDir
	// volumes (their data is lost), and pods no controller manages (they
	// are not recreated).
	DeleteEmptyDirData bool
	Force              bool
	// GracePeriodSeconds for each evicted pod; -1 uses the pod's own
	// terminationGracePeriodSeconds (kubectl's --grace-period default).
	GracePeriodSeconds int
	// DrainTimeout bounds the whole drain; OnTimeout says what then.
	DrainTimeout time.Duration
	OnTimeout    OnTimeout
	// EvictRetryDelay is the pause before retrying an eviction a
	// PodDisruptionBudget refused (429).
	EvictRetryDelay time.Duration
	// PollInterval is how often the pods on the node are listed while
	// waiting for evicted pods to go.
	PollInterval time.Duration
	// Parallel bounds the eviction requests in flight.
	Parallel int

	// UnreachableAfter: a node whose Ready condition is not True (or whose
	// Lease was not renewed) for longer is unreachable; its kubelet will
	// not confirm deletions, so evicted pods get UnreachableGrace and are
	// not waited for.
	UnreachableAfter time.Duration
	UnreachableGrace time.Duration
	// NodeIsDown: the operator knows the machine is off; taint the Node
	// node.kubernetes.io/out-of-service so that volumes are detached.
	NodeIsDown bool
	// VolumeDetachTimeout bounds the wait for the node's VolumeAttachments.
	VolumeDetachTimeout time.Duration

	// IgnoreKubelet deletes the Node although its kubelet still posts
	// status (it would re-register the Node).
	IgnoreKubelet bool
	// DeleteTimeout bounds the Node delete with its retries, and the wait
	// for the Node's finalizers.
	DeleteTimeout time.Duration

	// Etcd plans the etcd member removal of a kubeadm control-plane node;
	// nil means no etcd client is configured (the step is then reported
	// as not done, with what to run).
	Etcd EtcdPlanner

	Observer Observer
	Log      *slog.Logger
}

// Defaults are the options the CLI starts from.
func Defaults() Options {
	return Options{
		Mode:                ModeDrain,
		GracePeriodSeconds:  -1,
		DrainTimeout:        5 * time.Minute,
		OnTimeout:           TimeoutFail,
		EvictRetryDelay:     5 * time.Second,
		PollInterval:        500 * time.Millisecond,
		Parallel:            16,
		UnreachableAfter:    40 * time.Second,
		UnreachableGrace:    time.Second,
		VolumeDetachTimeout: 2 * time.Minute,
		DeleteTimeout:       time.Minute,
	}
}

// Validate rejects the options kubectl's zero values would make dangerous.
func (o *Options) Validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %s", name, d))
		}
	}
	if o.Node == "" {
		errs = append(errs, errors.New("no node name given"))
	}
	if o.Mode != ModeDrain && o.Mode != ModeRemove {
		errs = append(errs, fmt.Errorf("mode %q: use drain or remove", o.Mode))
	}
	if _, err := ParseOnTimeout(string(o.OnTimeout)); err != nil {
		errs = append(errs, err)
	}
	if o.GracePeriodSeconds < -1 {
		errs = append(errs, fmt.Errorf("grace period %d: use -1 (the pod's own) or seconds >= 0", o.GracePeriodSeconds))
	}
	pos("drain timeout", o.DrainTimeout)
	pos("eviction retry delay", o.EvictRetryDelay)
	pos("poll interval", o.PollInterval)
	pos("unreachable-after", o.UnreachableAfter)
	pos("unreachable grace", o.UnreachableGrace)
	pos("volume detach timeout", o.VolumeDetachTimeout)
	pos("delete timeout", o.DeleteTimeout)
	if o.Parallel <= 0 {
		errs = append(errs, fmt.Errorf("parallel must be positive, not %d", o.Parallel))
	}
	return errors.Join(errs...)
}

func (o *Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

func (o *Options) observer() Observer {
	if o.Observer == nil {
		return nopObserver{}
	}
	return o.Observer
}

// Observer receives live progress. Calls come from one goroutine at a time.
type Observer interface {
	// Step is called when a step starts (StatusRunning) and when it ends.
	Step(s StepResult)
	// Drain is called whenever the drain's counts or blocked pods change.
	Drain(p DrainProgress)
}

// DrainProgress is the state of a running drain.
type DrainProgress struct {
	Total   int       `json:"total"`
	Gone    int       `json:"gone"`
	Blocked []PodNote `json:"blocked,omitempty"`
}

type nopObserver struct{}

func (nopObserver) Step(StepResult)     {}
func (nopObserver) Drain(DrainProgress) {}
