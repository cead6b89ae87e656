package cluster

import (
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The errors below that Preflight returns mean nothing was changed in the
// cluster; IsPreflight tells them apart from a failure half way.

// NodeNotFoundError: there is no Node of that name.
type NodeNotFoundError struct{ Name string }

func (e *NodeNotFoundError) Error() string {
	return fmt.Sprintf("node %q not found in the cluster (check the name with 'kubectl get nodes', and --context); nothing was changed", e.Name)
}

// UnreachableError: the API server could not be reached or did not answer.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the API server %s: %v (check --kubeconfig, --context, --server); nothing was changed", e.Server, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// PermissionError: the credentials lack a permission the run needs; Missing
// lists every one of them, found before anything was changed.
type PermissionError struct {
	User    string
	Missing []string
}

func (e *PermissionError) Error() string {
	who := "the current user"
	if e.User != "" {
		who = fmt.Sprintf("user %q", e.User)
	}
	return fmt.Sprintf("%s may not %s (grant them, or use another --context/--kubeconfig); nothing was changed", who, strings.Join(e.Missing, ", "))
}

// BlockedPodsError: pods that the drain may only evict with a flag.
type BlockedPodsError struct{ Pods []PodNote }

func (e *BlockedPodsError) Error() string {
	var b strings.Builder
	b.WriteString("the drain would have to evict pods it may not without a flag; nothing was changed:")
	for _, p := range e.Pods {
		fmt.Fprintf(&b, "\n  %s: %s", p.Pod, p.Note)
	}
	return b.String()
}

// DrainTimeoutError: the drain deadline passed with pods still on the node.
type DrainTimeoutError struct {
	After     time.Duration
	Remaining []PodNote
}

func (e *DrainTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drain did not finish within %s: %d pods remain (raise --drain-timeout, fix what blocks them, or choose --on-timeout force-delete|skip)", e.After, len(e.Remaining))
	for _, p := range e.Remaining {
		fmt.Fprintf(&b, "\n  %s: %s", p.Pod, p.Note)
	}
	return b.String()
}

// KubeletAliveError: the Node's kubelet still posts status, so a deleted
// Node would come back.
type KubeletAliveError struct {
	Node     string
	LeaseAge time.Duration
}

func (e *KubeletAliveError) Error() string {
	return fmt.Sprintf("node %q is Ready and its kubelet renewed its Lease %s ago: deleted now, the Node would re-register. Reset the host first ('nodereset reset' on it) and run remove again, or pass --ignore-kubelet", e.Node, e.LeaseAge.Round(time.Second))
}

// ReregisteredError: the Node was recreated (new UID) since the plan.
type ReregisteredError struct {
	Node            string
	PlannedUID, UID string
}

func (e *ReregisteredError) Error() string {
	return fmt.Sprintf("node %q was re-registered (UID %s, planned %s): its kubelet still runs; reset the host, then run remove again", e.Node, e.UID, e.PlannedUID)
}

// IsPreflight reports whether err means the run stopped before it changed
// anything: unknown node, unreachable API server, missing permission,
// blocked pods, bad options.
func IsPreflight(err error) bool {
	var (
		nf *NodeNotFoundError
		ur *UnreachableError
		pe *PermissionError
		bp *BlockedPodsError
		oe *OptionsError
	)
	return errors.As(err, &nf) || errors.As(err, &ur) || errors.As(err, &pe) || errors.As(err, &bp) || errors.As(err, &oe)
}

// OptionsError wraps an invalid Options.
type OptionsError struct{ Err error }

func (e *OptionsError) Error() string { return "invalid options: " + e.Err.Error() }
func (e *OptionsError) Unwrap() error { return e.Err }

// Classify turns a client error from a run's first (read-only) calls into
// the typed preflight error it means: a status from the server is a
// refusal or a plain failure; anything else (refused connection, TLS,
// timeout) means the server was not reached.
func Classify(err error, server, what string) error {
	if err == nil {
		return nil
	}
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return &UnreachableError{Server: server, Err: err}
	}
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return &PermissionError{Missing: []string{what + " (" + err.Error() + ")"}}
	}
	return fmt.Errorf("%s on %s: %w", what, server, err)
}
